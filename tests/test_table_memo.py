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


def test_a_parse_error_is_raised_every_time(write):
    bad = write("bad.csv", "a,b\n1,x\n")
    memo = TableMemo()
    for _ in range(2):
        with pytest.raises(DataError, match="bad.csv:2"):
            memo.read(bad, (), lambda: read_csv(bad))
    assert memo.held_bytes == 0


def test_a_parquet_table_stays_one(tmp_path):
    pl = pytest.importorskip("polars")
    path = tmp_path / "t.parquet"
    pl.DataFrame({"a": [1.0, 2.0], "b": [3.0, 4.0]}).write_parquet(path)
    memo = TableMemo()
    for _ in range(2):
        table = memo.read(path, (), lambda: read_table(path))
        assert isinstance(table, ParquetColumns) and table.where(1) == f"{path}: row 2"


def test_trials_in_one_process_parse_the_file_once(tmp_path, monkeypatch):
    """Two trials in this process: the second reads the table from memory and trains the same
    model (the first trial's weights, bit for bit, as the same settings and seed give)."""
    parses = []
    real = read_csv
    monkeypatch.setattr("nncli.commands.parse_cache.read_csv", lambda *a, **k: parses.append(a[0]) or real(*a, **k))
    monkeypatch.setattr("nncli.commands.sweeps.trial.TABLES", TableMemo())
    config = CONFIGS / "digits.yaml"
    outcomes = []
    for name in ("trial-001", "trial-002"):
        spec = TrialSpec(name, str(config), config.read_text(), (("training.epochs=2", "--set"),), str(tmp_path / f"{name}.npz"))
        outcomes.append(run_trial(spec))
    assert [o.reason for o in outcomes] == [None, None]
    assert len(parses) == 1
    assert outcomes[0].metrics == outcomes[1].metrics
    weights = [np.load(_written(tmp_path, o)) for o in outcomes]
    assert weights[0].files == weights[1].files and "W1" in weights[0].files
    for name in weights[0].files:
        if name == "meta":  # (its creation time and output path are each run's own)
            continue
        np.testing.assert_array_equal(weights[0][name], weights[1][name])


def _written(folder: Path, outcome) -> Path:
    path = folder / f"{outcome.name}-model.npz"
    path.write_bytes(outcome.files["model.npz"])
    return path
