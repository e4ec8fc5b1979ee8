"""Missing cells and text cells as the readers see them (issue 12): a missing-cell token is NaN
in numeric and text columns alike, by polars' fast path and NumPy's exact parser, whole file or
stream; a cell that is not a number is a NotANumber naming its column; `where` names the exact
line of a row; the parse cache keeps NaN where a cell was missing and nowhere else."""

import json
import re

import numpy as np
import pytest

from nncli.commands.parse_cache import ParseCache, stream_to_cache
from nncli.config import load_config
from nncli.errors import DataError
from nncli.files import datacache
from nncli.tabular import fast
from nncli.tabular.parse import NotANumber, parse_rows, read_header, sniff_text_columns
from nncli.tabular.source import read_csv
from nncli.tabular.stream import CsvStream

TOKENS = ("", "NA", "NaN", "null")
nan = np.nan


@pytest.fixture(params=["numpy", "polars"])
def parser(request, monkeypatch):
    """Every test twice: NumPy's parser (a small file), and polars for any file, a few lines
    per block (as a big file is read), with streams' plain blocks through polars too."""
    if request.param == "polars":
        monkeypatch.setattr(fast, "FAST_PATH_BYTES", 0)
        monkeypatch.setattr(fast, "ROW_BLOCK_BYTES", 64)
        monkeypatch.setattr(fast, "ROW_BLOCK_BYTES_PER_COLUMN", 0)
    else:
        monkeypatch.setattr(fast, "FAST_PATH_BYTES", 1 << 62)
    return request.param


def _by_polars(path, text_columns, missing_values=TOKENS):
    """Whether polars reads the file (else NumPy's parser does: the same answer either way)."""
    header = read_header(path)
    lines = path.read_bytes().count(b"\n") - 1
    return fast.read_numeric(path, header, list(text_columns), b"\r\n" in path.read_bytes(), rows=lines,
                             missing_values=missing_values) is not None


def _streamed(path, text_columns=(), missing_values=TOKENS, chunk_bytes=24):
    with CsvStream(path, chunk_bytes) as stream:
        chunks = list(stream.chunks(text_columns, missing_values=missing_values))
        header = stream.header
    values = np.concatenate([chunk.values for chunk in chunks])
    texts = {name: sum((chunk.text_column(header, name) for chunk in chunks), []) for name in text_columns}
    return values, texts, chunks


def _decoded(table, name):
    codes = table.column(name)
    return [None if np.isnan(code) else table.text_values[name][int(code)] for code in codes]


MIXED = (
    "x,y,colour\n"
    + "".join(f"{i},{i % 7 - 3},{'red green blue'.split()[i % 3]}\n" for i in range(40))
    + "NA,1,red\n"  # a token in a numeric column
    + ",2,\n"  # empty cells, numeric and text
    + "3,NaN,NA\n"  # "NaN" is a token: missing, not a number
    + "4,null, NA \n"  # spaces around a token: still the token
    + "5,  ,blue\n"  # a cell of spaces is an empty cell
    + "6.5,7,null\n"
)


def test_missing_cells_are_nan_in_numeric_and_text_columns(write, parser):
    path = write("m.csv", MIXED)
    table = read_csv(path, ["colour"], np.float64, TOKENS)
    if parser == "polars":
        assert _by_polars(path, ["colour"])
    np.testing.assert_array_equal(table.values[40:, :2], [[nan, 1], [nan, 2], [3, nan], [4, nan], [5, nan], [6.5, 7]])
    assert table.text_values == {"colour": ["red", "green", "blue"]}  # no token among the values
    assert _decoded(table, "colour")[40:] == ["red", None, None, None, "blue", None]
    assert not np.isnan(table.values[:40]).any()


def test_both_parsers_and_streams_read_the_same_table(write, monkeypatch):
    rng = np.random.default_rng(5)
    cells = rng.integers(-50, 50, (600, 3)).astype(str).astype(object)
    cells[rng.random((600, 3)) < 0.05] = "NA"
    cells[rng.random((600, 3)) < 0.05] = ""
    cells[:, 2] = rng.choice(["cat", "dog", "NA", "", "null", "éclair"], 600)
    text = "a,b,t\n" + "".join(",".join(row) + "\n" for row in cells)
    for name, content in (("lf.csv", text), ("crlf.csv", text.replace("\n", "\r\n"))):
        path = write(name, content.encode())
        exact, exact_text = parse_rows(path, ["a", "b", "t"], str(path), ["t"], missing_values=TOKENS)
        with monkeypatch.context() as patch:
            patch.setattr(fast, "FAST_PATH_BYTES", 0)
            patch.setattr(fast, "ROW_BLOCK_BYTES", 256)
            patch.setattr(fast, "ROW_BLOCK_BYTES_PER_COLUMN", 0)
            assert _by_polars(path, ["t"])
            quick = read_csv(path, ["t"], np.float32, TOKENS)
            streamed, texts, _ = _streamed(path, ["t"], chunk_bytes=300)
        np.testing.assert_array_equal(quick.values, exact)
        assert quick.text_values == exact_text == {"t": ["cat", "dog", "éclair"]} or quick.text_values == exact_text
        np.testing.assert_array_equal(streamed[:, :2], exact[:, :2])
        assert texts["t"] == [None if cell in ("NA", "", "null") else cell for cell in cells[:, 2]]
        assert np.isnan(exact[:, :2]).sum() == np.isin(cells[:, :2], ["NA", ""]).sum()


def test_quoted_cells_and_a_field_spanning_lines(write, parser):
    path = write("q.csv", 'x,note\n1,"a, b"\n"NA",""\n3,"two\nlines"\n"",NA\n5,"a, b"\n')
    table = read_csv(path, ["note"], np.float64, TOKENS)
    np.testing.assert_array_equal(table.column("x"), [1, nan, 3, nan, 5])
    assert _decoded(table, "note") == ["a, b", None, "two\nlines", None, "a, b"]
    values, texts, _ = _streamed(path, ["note"], chunk_bytes=8)
    np.testing.assert_array_equal(values[:, 0], [1, nan, 3, nan, 5])
    assert texts["note"] == ["a, b", None, "two\nlines", None, "a, b"]


def test_without_tokens_everything_reads_as_before(write, parser):
    path = write("e.csv", "a,b\n1,2\n3,\n")
    with pytest.raises(NotANumber, match=re.escape(":3: column 'b': empty cell; expected a number")) as info:
        read_csv(path)
    assert (info.value.column, info.value.value) == ("b", "")
    path = write("t.csv", "a,kind\n1,NA\n2,\n")
    table = read_csv(path, ["kind"])
    assert table.text_values == {"kind": ["NA", ""]} and not np.isnan(table.values).any()


@pytest.mark.parametrize("text, column, value, message", [
    ("a,b\n1,2\n3,x7\n", "b", "x7", ":3: column 'b': 'x7' is not a number"),
    ("a,b\n1,2\n na ,4\n", "a", "na", ":3: column 'a': 'na' is not a number"),  # tokens are case-sensitive
    ("a,b\n1,2\n3,1_000\n", "b", "1_000", ":3: column 'b': '1_000' is not a number"),
])
def test_a_cell_that_is_not_a_number_is_a_NotANumber(write, parser, text, column, value, message):
    path = write("bad.csv", text)
    for missing_values in (TOKENS, ()):
        with pytest.raises(NotANumber) as info:
            read_csv(path, (), np.float64, missing_values)
        assert str(info.value).startswith(str(path)) and message in str(info.value)
        assert (info.value.column, info.value.value) == (column, value)
        with pytest.raises(NotANumber, match=re.escape(message)):
            _streamed(path, (), missing_values)


@pytest.mark.parametrize("cell, message", [
    ("nan", "'nan' (NaN); expected a finite number"),
    ("inf", "'inf' is infinite or too large for float64"),
    ("1e400", "'1e400' is infinite or too large for float64"),
])
def test_nan_and_inf_cells_stay_refused_unless_they_are_tokens(write, parser, cell, message):
    """NaN in the values means a missing cell and nothing else: a "nan" cell is a number that
    is not finite (a DataError, not a NotANumber: the column is numeric)."""
    path = write("n.csv", f"a,b\n1,2\n3,{cell}\n4,NA\n")
    with pytest.raises(DataError, match=re.escape(f":3: column 'b': {message}")) as info:
        read_csv(path, (), np.float64, TOKENS)
    assert not isinstance(info.value, NotANumber)
    np.testing.assert_array_equal(read_csv(path, (), np.float64, (*TOKENS, cell)).column("b"), [2, nan, nan])


def test_a_token_that_reads_as_a_number(write, parser):
    """``-999`` as a token: the cell written so is missing; -999.0 or -0999 are numbers."""
    path = write("s.csv", "a,b\n" + "".join(f"{i},{i}\n" for i in range(30)) + "-999,-999.0\n-0999, -999\n")
    table = read_csv(path, (), np.float64, ("", "-999"))
    np.testing.assert_array_equal(table.values[30:], [[nan, -999], [-999, nan]])
    values, _, _ = _streamed(path, (), ("", "-999"))
    np.testing.assert_array_equal(values[30:], [[nan, -999], [-999, nan]])


def test_without_the_empty_token_an_empty_cell_is_not_a_number(write, parser):
    path = write("n.csv", "a,b\n" + "".join(f"{i},{i}\n" for i in range(30)) + "NA,1\n")
    np.testing.assert_array_equal(read_csv(path, (), np.float64, ("NA",)).values[-1], [nan, 1])
    path.write_text(path.read_text() + "2,\n")
    with pytest.raises(NotANumber, match=re.escape(":33: column 'b': empty cell; expected a number")):
        read_csv(path, (), np.float64, ("NA",))


def test_one_column_blank_lines_are_skipped_and_a_cell_of_spaces_is_missing(write, parser):
    path = write("one.csv", ("a\n" + "".join(f"{i}\n" for i in range(30)) + "\n  \nNA\n7\n").encode())  # (bytes: not dedented)
    table = read_csv(path, (), np.float64, TOKENS)
    np.testing.assert_array_equal(table.column("a")[30:], [nan, nan, 7])
    assert table.where(30) == f"{path}:33"  # after the blank line 32
    values, _, chunks = _streamed(path)
    np.testing.assert_array_equal(values[30:, 0], [nan, nan, 7])


def test_a_short_row_or_a_blank_line_is_not_a_row_of_missing_cells(write, parser):
    """polars reads the absent cells of a short row, and a blank line, as nulls: never as
    missing cells (NumPy's parser then decides, as for any file)."""
    rows = "".join(f"{i},{i},{i}\n" for i in range(30))
    path = write("short.csv", "a,b,c\n" + rows + "1,,\n\n2,NA,3\n")
    np.testing.assert_array_equal(read_csv(path, (), np.float64, TOKENS).values[30:], [[1, nan, nan], [2, nan, 3]])
    path.write_text("a,b,c\n" + rows + "1,2\n")
    with pytest.raises(DataError, match=":32: row has 2 fields but the header has 3 columns"):
        read_csv(path, (), np.float64, TOKENS)
    with pytest.raises(DataError, match=":32: row has 2 fields but the header has 3 columns"):
        _streamed(path)


def test_where_names_the_line_of_a_row(write, parser):
    text = 'a,t\n1,x\n"2","two\nlines"\n\n3,NA\n4,"y"\r\n'
    path = write("w.csv", text.encode())
    table = read_csv(path, ["t"], np.float64, TOKENS)
    assert [table.where(row) for row in range(4)] == [f"{path}:{line}" for line in (2, 3, 6, 7)]
    assert table.where(9) == str(path)
    for chunk_bytes in (4, 1 << 20):
        with CsvStream(path, chunk_bytes) as stream:
            found = [chunk.where(row) for chunk in stream.chunks(["t"], missing_values=TOKENS) for row in range(len(chunk.values))]
        assert found == [f"{path}:{line}" for line in (2, 3, 6, 7)]
    plain = write("p.csv", "a,b\n" + "".join(f"{i},{i}\n" for i in range(50)))
    table = read_csv(plain, (), np.float64, TOKENS)
    assert table.rows_are_lines and table.where(49) == f"{plain}:51"


def test_chunk_numbers_reads_missing_cells_as_nan(write, parser):
    """A column read as text that must hold numbers (a kept feature, a regression target)."""
    path = write("k.csv", "a,b\n1,2\n,3\n4,NA\n")
    with CsvStream(path) as stream:
        [chunk] = stream.chunks(["a", "b"], missing_values=TOKENS)
        np.testing.assert_array_equal(chunk.numbers(stream.header, "a", stream.name, ["a", "b"]), [1, nan, 4])
        np.testing.assert_array_equal(chunk.numbers(stream.header, "b", stream.name, ["a", "b"]), [2, 3, nan])
    path.write_text("a,b\n1,2\nx,3\n")
    with CsvStream(path) as stream:
        [chunk] = stream.chunks(["a", "b"], missing_values=TOKENS)
        with pytest.raises(NotANumber, match=re.escape(":3: column 'a': 'x' is not a number")) as info:
            chunk.numbers(stream.header, "a", stream.name, ["a", "b"])
    assert (info.value.column, info.value.value) == ("a", "x")


def test_sniff_text_columns_looks_at_the_first_rows_only(write):
    rows = [f"{i},{i * 0.5}, {i} ,c{i % 3},NA,{i}" for i in range(50)]
    rows[3] = "NA,,1e3,,null,nan"
    rows[45] = "1,2,3,4,5,late"
    path = write("s.csv", "a,b,c,d,e,f\n" + "\n".join(rows) + '\n"unclosed\n')
    assert sniff_text_columns(path, ["f", "d", "a", "b", "c", "e", "zz"], TOKENS) == ["f", "d"]  # in their order
    assert sniff_text_columns(path, ["a", "b", "d", "e", "f"], (), rows=10) == ["a", "b", "d", "e"]
    assert sniff_text_columns(path, ["a", "b", "c", "d", "e", "f"], TOKENS, rows=40) == ["d"]  # "late" is on row 46


def _config(write, folder="cache"):
    return load_config(write("c.yaml", f"data: {{train: d.csv, target: y, cache: {folder}}}\n"))


def test_the_parse_cache_keeps_missing_cells_and_its_tokens(write):
    path = write("d.csv", "x,c,y\n" + "".join(f"{i},{'ab'[i % 2]},{i % 3}\n" for i in range(20)) + "NA,,1\n3,NA,2\n")
    cache = ParseCache(_config(write))
    first = cache.read(path, ["c"], np.float32, TOKENS)
    second = ParseCache(cache.config).read(path, ["c"], np.float32, ["NA", "NaN", "null", ""])  # the same tokens
    assert [use.outcome for use in cache.uses] == ["written"]
    np.testing.assert_array_equal(second.values, first.values)
    assert second.text_values == first.text_values == {"c": ["a", "b"]}
    np.testing.assert_array_equal(second.values[20:], [[nan, nan, 1], [3, nan, 2]])
    assert second.where(21) == f"{path}:23"
    other = ParseCache(cache.config)
    with pytest.raises(NotANumber):  # another reading: not the cache above, and "NA" is no token
        other.read(path, ["c"], np.float32, ("",))
    assert other.uses == [] and len(list((path.parent / "cache").glob("*.nncli-cache"))) == 1


def test_a_file_streamed_into_its_cache_is_the_table_read_whole(write, tmp_path):
    path = write("d.csv", "x,c,y\n" + "".join(f"{i},{'abc'[i % 3]},{i % 3}\n" for i in range(30)) + "NA,,1\n3,NA,2\n,c,\n")
    request = datacache.ParseRequest(("c",), "float32", TOKENS)
    location = tmp_path / "s.nncli-cache"
    stream_to_cache(path, location, datacache.fingerprint(path), request)
    cached = datacache.read_cache(location, datacache.fingerprint(path), request, 1 << 20, read_header(path))
    whole = read_csv(path, ["c"], np.float32, TOKENS)
    assert cached.values.dtype == np.float32 and cached.text_values == whole.text_values
    np.testing.assert_array_equal(cached.values, whole.values)
    assert cached.missing_values == request.missing_values == ("", "NA", "NaN", "null")


def _cache_with(tmp_path, path, values, request, text_values):
    location = tmp_path / "h.nncli-cache"
    datacache.write_cache(location, datacache.fingerprint(path), request, read_header(path), values, text_values)
    return location, lambda: datacache.read_cache(location, datacache.fingerprint(path), request, 1 << 20, read_header(path))


def _rewrite_meta(location, change):
    data = location.read_bytes()
    trailer = len(datacache.MAGIC) + 8
    length = int.from_bytes(data[-trailer : -trailer + 8], "little")
    meta = json.loads(data[-trailer - length : -trailer])
    change(meta)
    text = json.dumps(meta).encode()
    location.write_bytes(data[: -trailer - length] + text + len(text).to_bytes(8, "little") + datacache.MAGIC)


def _poke(location, shape, row, column, value):
    """Write ``value`` over one float64 of a cache's table, as damage would."""
    data = bytearray(location.read_bytes())
    at = datacache.HEADER_BYTES + 8 * (row * shape[1] + column)
    data[at : at + 8] = np.float64(value).tobytes()
    location.write_bytes(bytes(data))


def test_a_cache_holds_nan_only_where_its_parse_found_a_missing_cell(write, tmp_path):
    """NaN is a missing cell only where the parse found one (the cache records how many and
    where): a NaN written anywhere else, or moved, is damage, as an infinity always is."""
    path = write("d.csv", "x,c\n" + "".join(f"{i},{'ab'[i % 2]}\n" for i in range(20)) + "NA,\n")
    good = read_csv(path, ["c"], np.float64, TOKENS)
    with_tokens = datacache.ParseRequest(("c",), "float64", TOKENS)
    location, read = _cache_with(tmp_path, path, good.values, with_tokens, good.text_values)
    np.testing.assert_array_equal(read().values, good.values)
    for row, column, value, problem in [(3, 0, nan, "not finite"), (4, 1, nan, "not finite"), (2, 0, np.inf, "not finite"),
                                        (20, 0, 7.0, "missing cells are not those of its parse")]:
        _cache_with(tmp_path, path, good.values, with_tokens, good.text_values)
        _poke(location, good.values.shape, row, column, value)
        with pytest.raises(datacache.CacheProblem, match=problem):
            read()
    values = good.values.copy()
    values[:, 1] = nan  # values and record agree: a text column of missing cells has no text values
    with pytest.raises(datacache.CacheProblem, match="text codes"):
        _cache_with(tmp_path, path, values, with_tokens, good.text_values)[1]()
    _cache_with(tmp_path, path, values, with_tokens, {"c": []})[1]()
    for record in ({}, {"cells": "1", "blake2b": ""}, None):
        _cache_with(tmp_path, path, good.values, with_tokens, good.text_values)
        _rewrite_meta(location, lambda meta: meta.update(missing=record) if record is not None else meta.pop("missing"))
        with pytest.raises(datacache.CacheProblem, match="does not say where its missing cells are"):
            read()
    without = datacache.ParseRequest(("c",), "float64")
    with pytest.raises(datacache.CacheProblem, match="not finite"):  # parsed without tokens: no NaN at all
        _cache_with(tmp_path, path, good.values, without, good.text_values)[1]()
    with pytest.raises(datacache.CacheProblem, match="text values"):  # a token is never a text value
        _cache_with(tmp_path, path, good.values, with_tokens, {"c": ["a", " NA"]})[1]()


def test_parse_requests_compare_tokens_as_the_parsers_do():
    assert datacache.ParseRequest((), "float64", ("NA", " ", "NA ")) == datacache.ParseRequest((), "float64", ("", "NA"))
    assert datacache.ParseRequest((), "float64").to_json() == {"text_columns": [], "dtype": "float64"}  # caches from before
    assert datacache.ParseRequest((), "float64", ("NA",)).to_json()["missing_values"] == ["NA"]
