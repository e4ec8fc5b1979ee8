"""Predictions written as Parquet (nncli/files/parquetsink.py): the columns and types asked for,
spilled to disk past a size, atomically (a failure leaves the old file and no temporary files)."""

from __future__ import annotations

import io
import os

import numpy as np
import polars as pl
import pytest

from nncli.errors import DataError, OutputError
from nncli.files.atomic import atomic_write
from nncli.files.parquetsink import ParquetSink


def _same(a: np.ndarray, b: np.ndarray) -> None:
    np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("spill_bytes", [1, 1 << 30], ids=["spilled", "in-memory"])
def test_predictions_round_trip(tmp_path, spill_bytes):
    destination = tmp_path / "out" / "predictions.parquet"
    schema = {"id": str, "prediction": str, "proba_a": np.float32, "value": np.float64}
    with atomic_write(destination, "wb") as f, ParquetSink(f, schema, tmp_path, spill_bytes) as sink:
        for start in range(0, 30, 7):
            rows = range(start, min(start + 7, 30))
            sink.write([[None if i == 3 else f"r{i}" for i in rows], ["a" if i % 2 else "b" for i in rows],
                        np.array([i / 8 for i in rows], dtype=np.float32), np.array([i / 3 for i in rows])])
    assert sink.rows == 30
    frame = pl.read_parquet(destination)
    assert frame.schema == {"id": pl.String, "prediction": pl.String, "proba_a": pl.Float32, "value": pl.Float64}
    assert frame["id"].to_list() == [None if i == 3 else f"r{i}" for i in range(30)]
    _same(frame["value"].to_numpy(), np.arange(30) / 3)
    assert sorted(os.listdir(tmp_path)) == ["out"] and os.listdir(destination.parent) == ["predictions.parquet"]


def test_no_rows_still_write_the_columns(tmp_path):
    with atomic_write(tmp_path / "p.parquet", "wb") as f, ParquetSink(f, {"prediction": str, "p": np.float32}):
        pass
    frame = pl.read_parquet(tmp_path / "p.parquet")
    assert frame.height == 0 and frame.schema == {"prediction": pl.String, "p": pl.Float32}


@pytest.mark.parametrize("spill_bytes", [1, 1 << 30], ids=["spilled", "in-memory"])
def test_a_failed_prediction_leaves_no_file_and_no_spill(tmp_path, spill_bytes):
    destination = tmp_path / "p.parquet"
    destination.write_bytes(b"the old predictions")
    with pytest.raises(DataError):
        with atomic_write(destination, "wb") as f, ParquetSink(f, {"p": np.float64}, tmp_path, spill_bytes) as sink:
            sink.write([np.ones(5)])
            sink.write([np.ones(5)])
            raise DataError("a bad row")
    assert sorted(os.listdir(tmp_path)) == ["p.parquet"] and destination.read_bytes() == b"the old predictions"


def test_a_spill_folder_that_cannot_be_written_is_one_line(tmp_path):
    with pytest.raises(OutputError, match=r"^p.parquet: cannot write the Parquet file: .*No such file or directory"):
        with ParquetSink(io.BytesIO(), {"p": np.float64}, tmp_path / "gone", spill_bytes=1, name="p.parquet") as sink:
            sink.write([np.ones(3)])


