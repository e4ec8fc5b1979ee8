"""Parquet files read (nncli/tabular/parquet*.py, tables.py): the same table, values and errors
as a CSV file of the same rows; streamed in chunks; sizes refused from the footer before
anything is decoded. Writing: test_parquetsink.py; the commands: test_parquet_commands.py."""

from __future__ import annotations

import datetime
import os

import numpy as np
import polars as pl
import pytest

from nncli.errors import DataError
from nncli.tabular import parquet
from nncli.tabular.parquet import _read_ranges, open_parquet, read_parquet, sniff_text_columns
from nncli.tabular.parquet_footer import Group, read_footer
from nncli.tabular.parse import NotANumber
from nncli.tabular.source import read_csv
from nncli.tabular.tables import is_parquet, open_table, read_table

MISSING = ("", "NA", "NaN", "null")


def _mixed(rows: int = 12) -> pl.DataFrame:
    """Numbers, text and gaps: what a real table holds."""
    return pl.DataFrame({
        "id": [f"r{i}" for i in range(rows)],
        "size": [i if i % 5 else None for i in range(rows)],
        "weight": [0.1 * i if i % 4 else (None if i % 8 else float("nan")) for i in range(rows)],
        "colour": [None if i % 6 == 3 else ("red", "blue", "NA", " green")[i % 4] for i in range(rows)],
        "big": [2**40 + i for i in range(rows)],
    })


def _write(frame: pl.DataFrame, path, **options):
    frame.write_parquet(path, **options)
    return path


def _error(path, *args, **kwargs) -> str:
    with pytest.raises(DataError) as info:
        read_parquet(path, *args, **kwargs)
    assert "\n" not in str(info.value)
    return str(info.value)


def _same(a: np.ndarray, b: np.ndarray) -> None:
    np.testing.assert_array_equal(a, b)  # (NaN equals NaN here)


# --- the same table as the CSV of the same rows ----------------------------------------------------
@pytest.mark.parametrize("missing", [MISSING, ("NA", "NaN")], ids=["defaults", "no-empty-token"])
def test_a_parquet_file_reads_as_the_csv_of_the_same_table(tmp_path, missing):
    frame = _mixed()
    if "" not in missing:  # (a null is missing, an empty CSV cell is not: no nulls then)
        frame = frame.with_columns(pl.col("size").fill_null(0), pl.col("weight").fill_null(0.5), pl.col("colour").fill_null(""))
    frame.write_csv(tmp_path / "d.csv")
    _write(frame, tmp_path / "d.parquet")
    csv = read_csv(tmp_path / "d.csv", ["id", "colour"], missing_values=missing)
    table = read_parquet(tmp_path / "d.parquet", ["id", "colour"], missing_values=missing)
    assert table.header == csv.header == frame.columns
    assert table.text_values == csv.text_values
    _same(table.values, csv.values)
    assert table.values.dtype == np.float64


def test_text_columns_are_coded_in_order_of_first_appearance_and_missing_cells_are_nan(tmp_path):
    path = _write(pl.DataFrame({"c": ["b", None, "a", " NA ", "b", ""]}), tmp_path / "d.parquet")
    table = read_parquet(path, ["c"], missing_values=MISSING)
    assert table.text_values == {"c": ["b", "a"]}
    _same(table.column("c"), [0, np.nan, 1, np.nan, 0, np.nan])
    table = read_parquet(path, ["c"], missing_values=["NA"])  # a null is missing whatever the tokens
    assert table.text_values == {"c": ["b", "a", ""]}
    _same(table.column("c"), [0, np.nan, 1, np.nan, 0, 2])
    # No missing values at all (a model from before them): a null is an empty cell, "" a value.
    table = read_parquet(path, ["c"])
    assert table.text_values == {"c": ["b", "", "a", " NA "]}
    _same(table.column("c"), [0, 1, 2, 3, 0, 1])


def test_numbers_of_every_flat_type(tmp_path):
    frame = pl.DataFrame({
        "i8": pl.Series([1, -2, 3], dtype=pl.Int8),
        "u64": pl.Series([0, 2**63, 5], dtype=pl.UInt64),
        "f32": pl.Series([0.5, 0.1, -2.0], dtype=pl.Float32),
        "flag": [True, False, None],
        "price": pl.Series(["1.25", "2.50", "-3.00"]).str.to_decimal(scale=2),
        "nothing": pl.Series([None, None, None], dtype=pl.Null),
        "digits": ["1", " 2 ", "3e2"],  # text that reads as numbers, as in a CSV file
    })
    table = read_parquet(_write(frame, tmp_path / "d.parquet"), missing_values=MISSING)
    _same(table.values, [
        [1, 0, 0.5, 1, 1.25, np.nan, 1],
        [-2, 2.0**63, float(np.float32(0.1)), 0, 2.5, np.nan, 2],
        [3, 5, -2, np.nan, -3, np.nan, 300],
    ])


def test_float32_when_every_value_is_exactly_a_float32(tmp_path):
    exact = pl.DataFrame({"pixel": pl.Series([0, 255, 2**24], dtype=pl.Int32), "x": pl.Series([0.1, 2.5, 3], dtype=pl.Float32),
                          "label": ["a", "b", "a"]})
    table = read_parquet(_write(exact, tmp_path / "a.parquet"), ["label"], np.float32)
    assert table.values.dtype == np.float32
    _same(table.values, np.array([[0, 0.1, 0], [255, 2.5, 1], [2**24, 3, 0]], dtype=np.float32))
    for column in ([0, 1, 2**24 + 1], [0.5, 0.1, 1.0]):  # not exactly float32: the same numbers in float64
        table = read_parquet(_write(pl.DataFrame({"x": column}), tmp_path / "b.parquet"), (), np.float32)
        assert table.values.dtype == np.float64
        _same(table.column("x"), column)


def test_the_float32_matrix_widens_where_a_later_read_stops_being_exact(tmp_path, monkeypatch):
    monkeypatch.setattr(parquet, "READ_BYTES", 1)  # a read per row group
    frame = pl.DataFrame({"x": [1.0] * 10 + [0.1], "t": ["a"] * 11})
    table = read_parquet(_write(frame, tmp_path / "d.parquet", row_group_size=4), ["t"], np.float32)
    assert table.values.dtype == np.float64
    _same(table.column("x"), [1.0] * 10 + [0.1])
    _same(table.column("t"), [0.0] * 11)


# --- what is refused, and how it is said ----------------------------------------------------------
def test_text_in_a_numeric_column_is_not_a_number_naming_file_row_column_and_value(tmp_path):
    path = _write(pl.DataFrame({"a": ["1", "2", "NA", "x7"], "b": [1, 2, 3, 4]}), tmp_path / "d.parquet")
    with pytest.raises(NotANumber) as info:
        read_parquet(path, missing_values=MISSING)
    assert str(info.value) == f"{path}: row 4: column 'a': 'x7' is not a number"
    assert (info.value.column, info.value.value) == ("a", "x7")
    assert read_parquet(path, ["a"], missing_values=MISSING).text_values == {"a": ["1", "2", "x7"]}


@pytest.mark.parametrize("column, missing, expected", [
    ([1.0, float("nan")], (), "row 2: column 'x': NaN; expected a finite number"),
    ([1.0, float("inf")], MISSING, "row 2: column 'x': inf (infinite); expected a finite number"),
    ([-float("inf")], MISSING, "row 1: column 'x': -inf (infinite); expected a finite number"),
    ([1, None], (), "row 2: column 'x': null (an empty cell); expected a number"),
    (["1", "nan"], MISSING, "row 2: column 'x': 'nan' (NaN); expected a finite number"),
    (["1", "1e400"], MISSING, "row 2: column 'x': '1e400' is infinite or too large for float64"),
    (["1", ""], ("NA",), "row 2: column 'x': empty cell; expected a number"),
    ([datetime.date(2024, 1, 31)], MISSING, "column 'x' holds Date values; expected numbers"),
    ([b"\x00"], MISSING, "column 'x' holds binary values"),
    ([[1, 2]], MISSING, "column 'x' holds List values; nncli reads columns of numbers or text"),
    ([{"a": 1}], MISSING, "column 'x' holds Struct values"),
])
def test_cells_and_types_that_are_not_numbers(tmp_path, column, missing, expected):
    path = _write(pl.DataFrame({"x": column}), tmp_path / "d.parquet")
    assert _error(path, missing_values=missing).startswith(f"{path}: ")
    assert expected in _error(path, missing_values=missing)


def test_nan_and_infinity_are_missing_when_their_text_is_a_missing_value(tmp_path):
    path = _write(pl.DataFrame({"x": [1.0, float("nan"), float("-inf")]}), tmp_path / "d.parquet")
    _same(read_parquet(path, missing_values=["NaN", "-inf"]).column("x"), [1, np.nan, np.nan])


def test_dates_may_be_read_as_text(tmp_path):
    path = _write(pl.DataFrame({"day": [datetime.date(2024, 1, 31), None]}), tmp_path / "d.parquet")
    assert read_parquet(path, ["day"], missing_values=MISSING).text_values == {"day": ["2024-01-31"]}


def test_where_names_the_file_and_the_data_row(tmp_path):
    path = _write(pl.DataFrame({"x": range(20)}), tmp_path / "d.parquet")
    assert read_parquet(path).where(16) == f"{path}: row 17"


@pytest.mark.parametrize("content, expected", [
    (b"", "not a Parquet file"),
    (b"a,b\n1,2\n", "not a Parquet file"),
    (b"PAR1" + b"\x00" * 100, "not a whole Parquet file"),
    (b"PAR1\x00\x00\x00\x00PARE", "an encrypted Parquet file"),
    (b"PAR1" + b"\x1c" * 200 + (200).to_bytes(4, "little") + b"PAR1", "corrupt Parquet metadata (structures nested too deep)"),
    (b"PAR1" + b"\x19\xf5\xff\xff\xff\xff\x0f" + (7).to_bytes(4, "little") + b"PAR1", "corrupt Parquet metadata (a list longer"),
    (b"PAR1" + b"\x15\x02" + (2).to_bytes(4, "little") + b"PAR1", "corrupt Parquet metadata (the metadata ends early)"),
])
def test_a_file_that_is_not_whole_parquet_is_one_line(tmp_path, content, expected):
    path = tmp_path / "d.parquet"
    path.write_bytes(content)
    assert expected in _error(path)


def test_a_truncated_or_damaged_file_is_one_line(tmp_path):
    frame = pl.DataFrame({"x": np.random.default_rng(0).random(50_000), "t": ["a", "b"] * 25_000})
    data = _write(frame, tmp_path / "good.parquet").read_bytes()
    cut = tmp_path / "cut.parquet"
    cut.write_bytes(data[: len(data) // 2])
    assert "not a whole Parquet file (its end is not a Parquet footer: cut short?)" in _error(cut)
    damaged = tmp_path / "damaged.parquet"  # the first page's header (garbage in plain numbers goes unseen: no checksums)
    damaged.write_bytes(data[:4] + b"\xff" * 20 + data[24:])
    assert f"{damaged}: cannot read rows 1 to 50,000: parquet: File out of specification" in _error(damaged, ["t"])


def test_not_a_file(tmp_path):
    assert "is a folder" in _error(tmp_path)
    assert "not found" in _error(tmp_path / "nothing.parquet")
    fifo = tmp_path / "pipe.parquet"
    os.mkfifo(fifo)
    assert "not a regular file" in _error(fifo)


def test_budgets_are_checked_before_anything_is_decoded(tmp_path, monkeypatch):
    path = _write(pl.DataFrame({f"c{i}": range(1000) for i in range(5)}), tmp_path / "d.parquet")
    monkeypatch.setattr(parquet, "available_memory", lambda: 39_999)
    message = f"{path}: its 1,000 rows × 5 columns take 39.1 KiB, more than the 39.1 KiB of memory this process may take"
    assert _error(path) == message
    monkeypatch.setattr(parquet, "available_memory", lambda: 60_000)  # (a read takes its decoded bytes too)
    assert read_parquet(path).values.shape == (1000, 5)
    monkeypatch.setenv("NNCLI_MAX_COLUMNS", "4")
    assert "has 5 columns, more than the 4 nncli reads (set NNCLI_MAX_COLUMNS" in _error(path)
    monkeypatch.setenv("NNCLI_MAX_COLUMNS", "5")
    monkeypatch.setenv("NNCLI_MAX_PARQUET_METADATA", "100")
    assert "its metadata is" in _error(path) and "NNCLI_MAX_PARQUET_METADATA" in _error(path)


def test_a_stream_refuses_a_row_group_that_cannot_fit(tmp_path, monkeypatch):
    path = _write(pl.DataFrame({"x": range(1000)}), tmp_path / "d.parquet")
    monkeypatch.setattr(parquet, "available_memory", lambda: 100)
    with open_parquet(path) as stream, pytest.raises(DataError, match="rows 1 to 1,000, decoded, take .* more than"):
        next(stream.chunks())


def test_footers_that_lie_about_their_rows_are_refused():
    # FileMetaData {2: schema [root], 3: num_rows 5, 4: row_groups [{3: num_rows 4}]}
    footer = bytes([0x29, 0x1C, 0x00, 0x16, 10, 0x19, 0x1C, 0x36, 8, 0x00, 0x00])
    with pytest.raises(ValueError, match="row groups hold 4 rows, not the 5"):
        read_footer(footer)
    assert read_footer(footer.replace(bytes([0x16, 10]), bytes([0x16, 8]))).groups == [Group(4, 0, 0)]


# --- streaming --------------------------------------------------------------------------------
def test_reads_take_row_groups_together_and_large_ones_in_slices():
    groups = [Group(10, 100, 50)] * 3 + [Group(100, 5000, 900), Group(10, 100, 50)]
    assert list(_read_ranges(groups, 1, read_bytes=250, slice_bytes=1000)) == [
        (0, 30, 300),  # three small groups, until 250 bytes are reached
        *[(30 + 5 * k, 5, 250 + 900) for k in range(20)],  # 5000 bytes in slices of 250 (and the stored bytes)
        (130, 10, 100),
    ]
    assert list(_read_ranges([Group(10, 500, 1), Group(10, 100, 1)], 1, 250, 1000)) == [(0, 10, 500), (10, 10, 100)]
    assert list(_read_ranges([Group(4, 0, 0)], 1000, 250, 100_000)) == [(0, 4, 32_000)]  # 8 bytes a value at least


@pytest.mark.parametrize("read_bytes", [1, 200, 1 << 30], ids=["a-group-at-a-time", "sliced", "whole"])
def test_chunks_hold_the_whole_read_row_by_row(tmp_path, monkeypatch, read_bytes):
    monkeypatch.setattr(parquet, "READ_BYTES", read_bytes)
    monkeypatch.setattr(parquet, "SLICE_BYTES", 300)
    frame = _mixed(101)
    path = _write(frame, tmp_path / "d.parquet", row_group_size=9)
    whole = read_parquet(path, ["id", "colour"], missing_values=MISSING)
    rows, texts, ids, first = [], [], [], 0
    with open_table(path, chunk_bytes=10 * 2 * 5) as stream:
        assert (stream.name, stream.header, stream.positions["weight"]) == (str(path), frame.columns, 2)
        for chunk in stream.chunks(["colour", "size"], skip=["id"], missing_values=MISSING):
            assert len(chunk.values) <= 10 and chunk.first_row == first
            assert chunk.where(1) == f"{path}: row {first + 2}" and chunk.line_of_row(1) == first + 2
            rows.append(chunk.values)
            texts += chunk.text_column(stream.header, "colour")
            ids.append(chunk.numbers(stream.header, "size", stream.name, ["colour", "size"]))
            first += len(chunk.values)
    values = np.concatenate(rows)
    _same(values[:, [2, 4]], whole.values[:, [2, 4]])
    _same(values[:, 0], np.zeros(101))  # skipped: not read
    assert texts == [None if np.isnan(code) else whole.text_values["colour"][int(code)] for code in whole.column("colour")]
    _same(np.concatenate(ids), whole.column("size"))


def test_a_chunks_numbers_of_a_column_read_as_text(tmp_path):
    path = _write(pl.DataFrame({"y": ["1.5", "NA", "oops"], "z": [1.5, None, 2.0]}), tmp_path / "d.parquet")
    with open_parquet(path) as stream:
        (chunk,) = stream.chunks(["y", "z"], missing_values=MISSING)
        assert chunk.text == {"y": ["1.5", "oops"], "z": ["1.5", "2.0"]}
        _same(chunk.numbers(stream.header, "z", stream.name, ["y", "z"]), [1.5, np.nan, 2.0])
        with pytest.raises(NotANumber, match=f"^{path}: row 3: column 'y': 'oops' is not a number$"):
            chunk.numbers(stream.header, "y", stream.name, ["y", "z"])


def test_a_stream_of_a_file_with_no_rows_has_no_chunks(tmp_path):
    path = _write(pl.DataFrame({"x": pl.Series([], dtype=pl.Float64)}), tmp_path / "d.parquet")
    with open_parquet(path) as stream:
        assert stream.header == ["x"] and list(stream.chunks()) == []
    assert _error(path) == f"{path}: has no data rows"


def test_stdin_is_never_parquet():
    assert not is_parquet("-")
    with pytest.raises(DataError, match="Parquet cannot be read from standard input"):
        open_parquet("-")


# --- choosing the reader ---------------------------------------------------------------------------
def test_tables_are_told_apart_by_suffix_or_signature(tmp_path):
    frame = pl.DataFrame({"a": [1, 2], "b": ["x", "y"]})
    frame.write_parquet(tmp_path / "upper.PARQUET")
    frame.write_parquet(tmp_path / "data.bin")
    frame.write_csv(tmp_path / "data.csv")
    assert is_parquet(tmp_path / "upper.PARQUET") and is_parquet(tmp_path / "data.bin")
    assert not is_parquet(tmp_path / "data.csv") and not is_parquet(tmp_path / "none.csv") and not is_parquet(tmp_path)
    for name in ("upper.PARQUET", "data.bin", "data.csv"):
        table = read_table(tmp_path / name, ["b"], np.float64, MISSING)
        _same(table.values, [[1, 0], [2, 1]])
        with open_table(tmp_path / name) as stream:
            (chunk,) = stream.chunks(["b"], missing_values=MISSING)
            assert chunk.text_column(stream.header, "b") == ["x", "y"]
    assert "not a Parquet file" in _error(tmp_path / "data.csv")  # (read_parquet itself)


def test_sniffing_finds_text_in_text_columns_only(tmp_path):
    path = _write(pl.DataFrame({"n": [1, 2], "digits": ["1", "NA"], "words": ["1", "red"], "nan": ["nan", "2"]}),
                  tmp_path / "d.parquet")
    assert sniff_text_columns(path, ["n", "digits", "words", "nan", "absent"], MISSING) == ["words"]


def test_a_file_polars_panics_on_is_one_line_and_nothing_else_on_stderr(tmp_path, capfd, monkeypatch):
    monkeypatch.setenv("RUST_BACKTRACE", "1")
    data = _write(pl.DataFrame({"x": np.arange(5000.0), "t": ["a", "b"] * 2500}), tmp_path / "good.parquet").read_bytes()
    footer = int.from_bytes(data[-8:-4], "little")
    path = tmp_path / "pages-cut.parquet"  # the footer whole, the pages it points to gone
    path.write_bytes(data[:200] + data[-(footer + 8):])
    capfd.readouterr()
    assert _error(path, ["t"]).startswith(f"{path}: cannot read rows 1 to 5,000: ")  # (polars 2.1 panics here)
    assert capfd.readouterr().err == ""
    read_parquet(tmp_path / "good.parquet", ["t"])  # (stderr is back)
    os.write(2, b"still here\n")
    assert capfd.readouterr().err == "still here\n"
