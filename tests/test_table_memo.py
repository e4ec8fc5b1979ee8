"""A worker's memo of parsed tables (commands/table_memo.py): a sweep's trials parse a small
file once per process, get copies of their own, and see a changed file parsed again."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from nncli.commands.sweeps.trial import TrialSpec, run_trial
from nncli.commands.table_memo import TableMemo
from nncli.errors import DataError
from nncli.tabular.parquet import ParquetColumns
from nncli.tabular.parse import NotANumber
from nncli.tabular.source import read_csv
from nncli.tabular.tables import read_table
from tests.conftest import CONFIGS


class Counted:
    """read_csv of one file, counting the parses."""

    def __init__(self, path: Path):
        self.path, self.calls = path, 0

    def __call__(self):
        self.calls += 1
        return read_csv(self.path, ["kind"], np.float64)


def test_the_second_read_comes_from_memory_as_a_copy(tiny_csv):
    memo, parse = TableMemo(), Counted(tiny_csv)
    first = memo.read(tiny_csv, ("kind",), parse)
    first.values[:] = -1  # (training scales its rows in place)
    first.text_values["kind"].append("changed")
    second = memo.read(tiny_csv, ("kind",), parse)
    assert parse.calls == 1
    np.testing.assert_array_equal(second.values, read_csv(tiny_csv, ["kind"], np.float64).values)
    assert second.text_values == {"kind": ["cat", "dog", "eel"]}
    second.values[:] = -2
    assert not (memo.read(tiny_csv, ("kind",), parse).values == -2).any()  # each read a copy of its own
    assert parse.calls == 1


def test_another_request_is_another_table(tiny_csv):
    memo, parse = TableMemo(), Counted(tiny_csv)
    memo.read(tiny_csv, ("kind",), parse)
    memo.read(tiny_csv, ("kind", "float32"), parse)
    assert parse.calls == 2


def test_a_changed_file_is_parsed_again(tiny_csv):
    memo, parse = TableMemo(), Counted(tiny_csv)
    before = memo.read(tiny_csv, (), parse)
    text = tiny_csv.read_text().replace("0.1,", "0.9,", 1)  # same size, other values
    tiny_csv.write_text(text)
    stat = tiny_csv.stat()
    os.utime(tiny_csv, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000))  # (a coarse clock could keep the time)
    after = memo.read(tiny_csv, (), parse)
    assert parse.calls == 2
    assert not np.array_equal(before.values, after.values)
    np.testing.assert_array_equal(after.values, read_csv(tiny_csv, ["kind"], np.float64).values)


def test_a_file_that_changes_while_parsed_is_not_kept(tiny_csv):
    memo = TableMemo()

    def parse_while_edited():
        table = read_csv(tiny_csv, ["kind"], np.float64)
        with open(tiny_csv, "a") as f:
            f.write("5,5,cat\n")
        return table

    memo.read(tiny_csv, (), parse_while_edited)
    assert memo.held_bytes == 0


def test_the_budget_keeps_the_most_recent_tables(write):
    paths = [write(f"t{i}.csv", "a,b\n" + "1,2\n" * 100) for i in range(3)]
    one_table = read_csv(paths[0]).values.nbytes
    memo = TableMemo(budget=2 * one_table)
    for path in paths:
        memo.read(path, (), lambda path=path: read_csv(path))
    assert memo.held_bytes == 2 * one_table
    parses = []
    memo.read(paths[0], (), lambda: parses.append(1) or read_csv(paths[0]))  # the oldest was dropped
    memo.read(paths[2], (), lambda: parses.append(3) or read_csv(paths[2]))  # the newest was kept
    assert parses == [1]
    too_big = TableMemo(budget=one_table - 1)
    too_big.read(paths[0], (), lambda: read_csv(paths[0]))
    assert too_big.held_bytes == 0


def test_text_in_a_numeric_column_is_raised_again_from_memory(write):
    """How training finds a feature holding text: each trial meets it without parsing again."""
    bad = write("bad.csv", "a,b\n1,x\n")
    memo, parses, depths, errors = TableMemo(), [], [], []
    for _ in range(4):
        with pytest.raises(NotANumber, match="bad.csv:2") as raised:
            memo.read(bad, (), lambda: parses.append(1) or read_csv(bad))
        depths.append(len(raised.traceback))
        errors.append((str(raised.value), raised.value.column, raised.value.value))
    assert parses == [1] and memo.held_bytes == 0
    assert errors == [errors[0]] * 4 and errors[0][1:] == ("b", "x")
    assert depths[1] == depths[2] == depths[3]  # (the kept error's traceback does not grow trial after trial)


def test_other_parse_errors_are_not_kept(write):
    path = write("t.csv", "a\n1\n")
    memo, parses = TableMemo(), []

    def too_big():
        parses.append(1)
        raise DataError(f"{path}: takes more memory than this process may take now")

    for _ in range(2):
        with pytest.raises(DataError, match="more memory"):
            memo.read(path, (), too_big)
    assert parses == [1, 1]


def test_text_cells_count_in_the_budget(write):
    path = write("ids.csv", "id,x\n" + "".join(f"row-{i:08d},{i}\n" for i in range(1000)))
    memo = TableMemo()
    table = memo.read(path, ("id",), lambda: read_csv(path, ["id"]))
    assert memo.held_bytes > table.values.nbytes + 1000 * len("row-00000000")
    small = TableMemo(budget=table.values.nbytes + 1000)
    small.read(path, ("id",), lambda: read_csv(path, ["id"]))
    assert small.held_bytes == 0  # the numbers alone would fit, the text does not


def test_a_changed_file_leaves_no_table_of_its_earlier_state(tiny_csv):
    memo = TableMemo()
    memo.read(tiny_csv, (), lambda: read_csv(tiny_csv, ["kind"]))
    held = memo.held_bytes
    with open(tiny_csv, "a") as f:
        f.write("9,9,cat\n")
    memo.read(tiny_csv, (), lambda: read_csv(tiny_csv, ["kind"]))
    assert memo.held_bytes == held + 3 * 8  # one table, one row longer


def test_the_parse_cache_keeps_in_memory_only_what_it_does_not_hold_on_disk(tmp_path, tiny_csv, monkeypatch):
    """Parquet files and data.cache: off go through the memo; a CSV the disk cache holds does not."""
    import polars as pl

    from nncli.commands.parse_cache import ParseCache
    from nncli.config import load_config

    parquet = tmp_path / "tiny.parquet"
    pl.read_csv(tiny_csv).write_parquet(parquet)
    config = tmp_path / "c.yaml"
    config.write_text("data: {train: tiny.csv, target: kind}\nmodel: {layers: [auto, 4, auto]}\n")
    for setting, path, kept in [("off", tiny_csv, True), ("auto", parquet, True), (str(tmp_path / "cache"), tiny_csv, False)]:
        memo = TableMemo()
        cache = ParseCache(load_config(config, [f"data.cache={setting}"]), memo=memo)
        first = cache.read(path, ["kind"], np.float64)
        second = cache.read(path, ["kind"], np.float64)
        np.testing.assert_array_equal(first.values, second.values)
        assert (memo.held_bytes > 0) == kept, (setting, path)
        assert [use.outcome for use in cache.uses] == ([] if kept else ["written", "read"])


def test_a_parquet_table_stays_one(tmp_path):
    import polars as pl

    path = tmp_path / "t.parquet"
    pl.DataFrame({"a": [1.0, 2.0], "b": [3.0, 4.0]}).write_parquet(path)
    memo = TableMemo()
    for _ in range(2):
        table = memo.read(path, (), lambda: read_table(path))
        assert isinstance(table, ParquetColumns) and table.where(1) == f"{path}: row 2"


def test_trials_in_one_process_parse_the_file_once(tmp_path, monkeypatch):
    """Three trials in this process: the later ones read the table from memory and train the same
    model (the first trial's weights, bit for bit, as the same settings and seed give)."""
    parses = []
    real = read_csv
    monkeypatch.setattr("nncli.commands.parse_cache.read_csv", lambda *a, **k: parses.append(a[0]) or real(*a, **k))
    monkeypatch.setattr("nncli.commands.sweeps.trial.TABLES", TableMemo())
    config = CONFIGS / "digits.yaml"
    outcomes = []
    for name in ("trial-001", "trial-002", "trial-003"):  # (a third: the second must not have changed what the memo keeps)
        spec = TrialSpec(name, str(config), config.read_text(), (("training.epochs=2", "--set"),), str(tmp_path / f"{name}.npz"))
        outcomes.append(run_trial(spec))
    assert [o.reason for o in outcomes] == [None, None, None]
    assert len(parses) == 1
    assert outcomes[0].metrics == outcomes[1].metrics == outcomes[2].metrics
    first, *others = [np.load(_written(tmp_path, o)) for o in outcomes]
    assert "W1" in first.files
    for other in others:
        assert other.files == first.files
        for name in first.files:
            if name != "meta":  # (its creation time and output path are each run's own)
                np.testing.assert_array_equal(first[name], other[name])


def _written(folder: Path, outcome) -> Path:
    path = folder / f"{outcome.name}-model.npz"
    path.write_bytes(outcome.files["model.npz"])
    return path
