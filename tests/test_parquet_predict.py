"""`predict` on Parquet files as on CSV ones (issue 12): the same memory bound while streaming,
columns nobody uses never decoded (they may hold lists or structs), --keep copying cells as
written ("NA" too), and messages that name a Parquet file, not a line of it.
(Reading: test_parquet.py; the other commands: test_parquet_commands.py.)"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from typer.testing import CliRunner

from nncli.cli import app
from nncli.errors import DataError
from nncli.files.model import load_model
from nncli.tabular import parquet
from nncli.tabular.columns import check_columns
from nncli.tabular.tables import open_table

runner = CliRunner()
NNCLI = Path(sys.executable).with_name("nncli")


def invoke(*args):
    return runner.invoke(app, [*map(str, args)])


def _train(write, data: str, **extra) -> Path:
    keys = ", ".join(f"{key}: {value}" for key, value in extra.items())
    config = write("c.yaml", f"""
        seed: 0
        data: {{train: {data}, target: y{', ' + keys if keys else ''}}}
        model: {{layers: [auto, 4, auto]}}
        training: {{epochs: 1}}
        output: out/m.npz
        """)
    result = invoke("train", config)
    assert result.exit_code == 0, result.stderr
    return config.parent / "out" / "m.npz"


# --- the memory bound ------------------------------------------------------------------------------
def _peak_mb(args: list[str]) -> float:
    """Peak resident set (MB) of a fresh `nncli` process run to its end, started from a small
    Python process (a child's high-water mark starts at its parent's size when it forks)."""
    launch = ("import resource, subprocess, sys; subprocess.run(sys.argv[1:], check=True, stdout=subprocess.DEVNULL); "
              "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)")
    done = subprocess.run([sys.executable, "-c", launch, str(NNCLI), *args], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    return int(done.stdout) / 1024


def test_a_parquet_file_streams_within_the_csv_files_memory_bound(write, tmp_path):
    # 250,000 rows × 20 floats and a text label in row groups of 125,000 rows (20 MB decoded each,
    # as polars writes a 1 GB file): decoding a whole row group at once, and holding it while
    # converting it, once took 2.4 × the CSV's peak (265 MB against 111 at 1 GB).
    rows = 250_000
    rng = np.random.default_rng(0)
    values = np.round(rng.standard_normal((rows, 20)), 4)
    frame = pl.DataFrame({f"x{j}": values[:, j] for j in range(20)}).with_columns(
        pl.Series("y", np.where(values[:, 0] > 0, "up", "down")))
    frame.head(2000).write_csv(tmp_path / "small.csv")
    frame.write_csv(tmp_path / "big.csv")  # (38 MB: read by polars, as a CSV file of 32 MiB and more is)
    frame.write_parquet(tmp_path / "big.parquet", row_group_size=125_000)
    model = _train(write, "small.csv")
    peaks = {kind: _peak_mb(["predict", str(model), str(tmp_path / f"big.{kind}"), "-o", str(tmp_path / f"{kind}.csv")])
             for kind in ("csv", "parquet")}
    assert peaks["parquet"] <= 1.1 * peaks["csv"], peaks
    assert (tmp_path / "parquet.csv").read_bytes() == (tmp_path / "csv.csv").read_bytes()


def test_a_streams_numbers_are_decoded_a_few_columns_at_a_time(tmp_path, monkeypatch):
    monkeypatch.setattr(parquet, "COLUMN_BYTES", 3 * 8 * 300)  # three columns of a read of 300 rows (its three row groups)
    frame = pl.DataFrame({f"x{j}": np.arange(300.0) + j for j in range(7)}).with_columns(pl.Series("t", ["a", "NA", "b"] * 100))
    frame.write_parquet(tmp_path / "d.parquet", row_group_size=100)
    reads = []
    read = parquet._read
    monkeypatch.setattr(parquet, "_read", lambda name, source, first, rows: reads.append(source.collect_schema().names()) or read(name, source, first, rows))
    with open_table(tmp_path / "d.parquet") as stream:
        chunks = list(stream.chunks(["t"], missing_values=["NA"]))
    values = np.concatenate([chunk.values for chunk in chunks])
    np.testing.assert_array_equal(values[:, :7], frame.select(pl.exclude("t")).to_numpy())
    assert reads == [["x0", "x1", "x2"], ["x3", "x4", "x5"], ["x6"], ["t"]]
    assert [cell for chunk in chunks for cell in chunk.cells("t")] == ["a", "NA", "b"] * 100


# --- columns nobody uses ---------------------------------------------------------------------------
@pytest.mark.parametrize("choose", ["drop: [tags, meta, when]", "features: [a, b]"])
def test_unused_list_struct_and_date_columns_are_never_read(write, tmp_path, choose):
    rows = 40
    frame = pl.DataFrame({
        "tags": [[i, i + 1] for i in range(rows)], "a": np.arange(rows) / 7.0, "meta": [{"k": i} for i in range(rows)],
        "b": np.cos(np.arange(rows)), "when": [None] * rows, "y": ["p", "q"] * (rows // 2),
    }).with_columns(pl.col("when").cast(pl.Date))
    frame.write_parquet(tmp_path / "t.parquet")
    model = _train(write, "t.parquet", **dict([choose.split(": ")]))
    assert load_model(model).features == ["a", "b"]
    result = invoke("predict", model, tmp_path / "t.parquet", "-o", tmp_path / "p.parquet")
    assert result.exit_code == 0, result.stderr
    assert pl.read_parquet(tmp_path / "p.parquet").height == rows
    result = invoke("evaluate", model, tmp_path / "t.parquet")
    assert result.exit_code == 0, result.stderr
    # A list column asked for is still refused in one line.
    result = invoke("predict", model, tmp_path / "t.parquet", "--keep", "tags")
    assert result.exit_code == 2 and "t.parquet: column 'tags' holds List values; nncli reads columns of numbers or text" in result.stderr


# --- where messages point ---------------------------------------------------------------------------
@pytest.mark.parametrize("suffix", ["csv", "parquet"])
def test_a_missing_column_names_a_csv_files_header_line_and_a_parquet_file_itself(write, tmp_path, suffix):
    pl.DataFrame({"a": [1.0, 2.0], "b": [0.5, 1.5], "y": ["p", "q"]}).write_csv(tmp_path / "t.csv")
    model = load_model(_train(write, "t.csv"))
    data = tmp_path / f"v.{suffix}"
    frame = pl.DataFrame({"a": [1.0], "y": ["p"]})
    frame.write_csv(data) if suffix == "csv" else frame.write_parquet(data)
    place = f"{data}:1" if suffix == "csv" else f"{data}"
    with open_table(data) as stream:
        with pytest.raises(DataError, match=f"^{place}: missing feature column\\(s\\) 'b'; the model needs all 2 features"):
            check_columns(model, stream, [])
        stream.positions = {**stream.positions, "b": 1}  # (the features there: the kept columns are checked next)
        with pytest.raises(DataError, match=f"^{place}: --keep column\\(s\\) 'id' not in the file"):
            check_columns(model, stream, ["a", "id"])


# --- --keep copies cells as written ---------------------------------------------------------------------
KEPT = ["NA", "a,NA", " NA ", None, "null", "x"]  # None: an empty CSV cell, a Parquet null


@pytest.mark.parametrize(("source", "output"), [("csv", "csv"), ("csv", "parquet"), ("parquet", "csv"), ("parquet", "parquet")])
def test_keep_copies_a_cell_that_reads_as_missing_as_written(write, tmp_path, source, output):
    frame = pl.DataFrame({"id": KEPT, "x": [1.0, 2.0, None, 4.0, 5.0, 6.0], "y": ["p", "q"] * 3})
    frame.write_csv(tmp_path / "t.csv")
    frame.write_parquet(tmp_path / "t.parquet")
    model = _train(write, "t.csv", drop="[id]", missing="mean")  # (missing_values: "", NA, NaN, null)
    target = tmp_path / f"out.{output}"
    result = invoke("predict", model, tmp_path / f"t.{source}", "--keep", "id,x", "-o", target)
    assert result.exit_code == 0, result.stderr
    if output == "parquet":
        kept = pl.read_parquet(target)
        assert kept["id"].to_list() == KEPT and kept["x"].to_list() == ["1.0", "2.0", None, "4.0", "5.0", "6.0"]
    else:
        lines = target.read_text().splitlines()[1:]
        assert [line.rsplit(",", 1)[0] for line in lines] == [
            "NA,1.0", '"a,NA",2.0', '" NA ",', ",4.0", "null,5.0", "x,6.0"]


def test_a_parquet_validation_file_missing_a_column_is_named_without_a_line(write, tmp_path):
    write("t.csv", "a,b,kind\n" + "".join(f"{i},{i % 3},{'cat' if i % 2 else 'dog'}\n" for i in range(30)))
    pl.DataFrame({"a": [0.0, 1.0], "kind": ["cat", "dog"]}).write_parquet(tmp_path / "v.parquet")
    config = write("c.yaml", "data: {train: t.csv, validation: v.parquet}\n")
    result = CliRunner().invoke(app, ["train", str(config), "--dry-run"])
    assert result.exit_code == 2
    message = result.output.strip().splitlines()[-1]
    assert "v.parquet: validation file lacks column(s) 'b'" in message
    assert "v.parquet:1" not in message
