import numpy as np
import pytest

from nncli.core.preprocess import Scaler, split_indices
from nncli.errors import DataError
from nncli.tabular.labels import class_order
from nncli.tabular.parse import parse_rows, read_header
from nncli.tabular.source import open_csv, read_csv


def _error(path, text_columns=()):
    with pytest.raises(DataError) as info:
        read_csv(path, text_columns)
    return str(info.value)


def test_reads_numbers_and_encodes_text_columns(write):
    path = write("d.csv", 'a,b,label\n1,2.5,"x, y"\n-3,4e2,z\n5,6,"x, y"\n')
    table = read_csv(path, ["label"])
    assert table.header == ["a", "b", "label"]
    np.testing.assert_array_equal(table.columns(["a", "b"]), [[1, 2.5], [-3, 400], [5, 6]])
    assert table.text_values["label"] == ["x, y", "z"]
    np.testing.assert_array_equal(table.column("label"), [0, 1, 0])


def test_bom_crlf_blank_lines_and_spaces_are_accepted(write):
    path = write("d.csv", b"\xef\xbb\xbfa,b\r\n1, 2\r\n\r\n3 ,4\r\n")
    table = read_csv(path)
    assert table.header == ["a", "b"]
    np.testing.assert_array_equal(table.values, [[1, 2], [3, 4]])


@pytest.mark.parametrize(
    "text, expected",
    [
        ("a,b\n1,2\n3,x7\n", ":3: column 'b': 'x7' is not a number"),
        ("a,b\n1,2\n3,\n", ":3: column 'b': empty cell; expected a number"),
        ("a,b\n1,2\nnan,4\n", ":3: column 'a': 'nan' (NaN); expected a finite number"),
        ("a,b\n1,inf\n", ":2: column 'b': 'inf' is infinite or too large for float64"),
        ("a,b\n1,1e400\n", ":2: column 'b': '1e400' is infinite or too large for float64"),
        ("a,b\n1,2\n3,4,5\n", ":3: row has 3 fields but the header has 2 columns"),
        ("a,b\n1,2\n3\n", ":3: row has 1 field but the header has 2 columns"),
        ("a,b,c\n1,2\n3,4\n", ":2: row has 2 fields but the header has 3 columns"),
        ("", ": file is empty"),
        ("\n\n", ": file is empty"),
        ("a,b\n", ": has a header but no data rows"),
        ("a,a\n1,2\n", ":1: column name 'a' appears twice (columns 1 and 2)"),
        ("a,,c\n1,2,3\n", ":1: column 2 has no name"),
        ("a;b;c\n1;2;3\n", ":1: the header is a single column containing semicolons"),
        ("a,b\n1,2\n3,4#x\n", ":3: column 'b': '4#x' is not a number"),  # "#" starts no comment
        ("a,b\n1,2\n#3,4\n", ":3: column 'a': '#3' is not a number"),
        ("a,b\n1,2\n3,1_000\n", ":3: column 'b': '1_000' is not a number"),
        ("a,b\n1,2\n3\r,4\n", ":3: a carriage return (\\r) without a line feed after it; lines must end"),
        ("a,b\n1,2\r3,4\n5,6\n", ":2: a carriage return (\\r) without a line feed after it"),
        ("a,b\r\n1,2\r\r\n3,4\r\n", ":2: a carriage return (\\r) without a line feed after it"),
        ('a,b\n1,2\n3,"x\ry"\n', ":3: a carriage return (\\r) without a line feed after it"),
        ("a,b\r\n1,2\r\n3,4\r", ":3: a carriage return (\\r) without a line feed after it"),
    ],
)
@pytest.mark.parametrize("fast", [False, True], ids=["small-file", "fast-path"])
def test_bad_csv_names_file_row_column_and_value(write, text, expected, fast, monkeypatch):
    """Every message is the same whether or not the file is big enough for the polars path."""
    if fast:
        monkeypatch.setattr("nncli.tabular.fast.FAST_PATH_BYTES", 0)
    path = write("bad.csv", text)
    message = _error(path)
    assert message.startswith(str(path)), message
    assert expected in message, message


def test_binary_and_missing_files(write, tmp_path):
    assert "binary data" in _error(write("b.csv", b"PK\x03\x04\x00\x00\x01"))
    assert "not UTF-8" in _error(write("c.csv", b"\xff\xfe\xfa,b\n1,2\n"))
    assert _error(tmp_path / "none.csv") == f"{tmp_path / 'none.csv'}: CSV file not found"
    assert "is a folder" in _error(tmp_path)


def test_non_numeric_text_column_is_allowed_only_where_asked(write):
    path = write("d.csv", "a,kind\n1,cat\n2,dog\n")
    assert read_csv(path, ["kind"]).text_values["kind"] == ["cat", "dog"]
    assert ":2: column 'kind': 'cat' is not a number" in _error(path)


def test_class_order_is_numeric_for_numbers_and_alphabetical_otherwise():
    assert class_order(["10", "9", "1"]) == ["1", "9", "10"]
    assert class_order(["07", "3"]) == ["3", "07"]  # spelling kept
    assert class_order(["virginica", "setosa", "versicolor"]) == ["setosa", "versicolor", "virginica"]


@pytest.mark.parametrize("method", ["standard", "minmax", "none"])
def test_scaler_handles_constant_columns_and_round_trips(method):
    X = np.array([[1.0, 5.0, 0.0], [3.0, 5.0, 10.0], [5.0, 5.0, 20.0]])
    scaler = Scaler.fit(X, method)
    Z = scaler.transform(X)
    assert np.isfinite(Z).all()
    if method == "standard":
        np.testing.assert_allclose(Z.mean(axis=0), 0, atol=1e-12)
        np.testing.assert_allclose(Z[:, [0, 2]].std(axis=0), 1)
        np.testing.assert_array_equal(Z[:, 1], 0)  # constant column: no NaN from a zero std
    if method == "minmax":
        np.testing.assert_allclose(Z[:, [0, 2]], [[0, 0], [0.5, 0.5], [1, 1]])
    np.testing.assert_allclose(scaler.inverse(Z), X)
    again = Scaler.from_json(scaler.to_json())
    np.testing.assert_array_equal(again.transform(X), Z)


def test_split_is_seeded_and_disjoint():
    train, val = split_indices(10, 0.3, np.random.default_rng(0), shuffle=True)
    assert len(val) == 3 and len(train) == 7
    assert sorted(np.concatenate([train, val])) == list(range(10))
    train2, val2 = split_indices(10, 0.3, np.random.default_rng(0), shuffle=True)
    np.testing.assert_array_equal(val, val2)
    _, val3 = split_indices(10, 0.3, np.random.default_rng(0), shuffle=False)
    np.testing.assert_array_equal(val3, [0, 1, 2])


def test_the_fast_path_reads_exactly_what_numpy_reads(write, monkeypatch):
    rng = np.random.default_rng(0)
    ints = rng.integers(-500, 500, (3000, 5))
    floats = rng.standard_normal((3000, 3)) * 10.0 ** rng.integers(-8, 8, (3000, 3))
    labels = rng.choice(["cat", "dog", '"quoted, label"', "éclair", "日本", "Zebra"], 3000)
    lines = ["i0,i1,i2,i3,i4,f0,f1,f2,label"] + [
        ",".join([*map(str, i), *map(repr, f.tolist()), lab]) for i, f, lab in zip(ints, floats, labels)
    ]
    path = write("big.csv", "\n".join(lines) + "\n")
    slow = read_csv(path, ["label"])
    monkeypatch.setattr("nncli.tabular.fast.FAST_PATH_BYTES", 0)
    from nncli.tabular import fast as fastcsv

    assert fastcsv.read_numeric(path, slow.header, ["label"]) is not None  # the fast path did run
    fast = read_csv(path, ["label"])
    numeric = [n for n in slow.header if n != "label"]
    np.testing.assert_array_equal(fast.columns(numeric), slow.columns(numeric))
    decode = lambda table: [table.text_values["label"][int(c)] for c in table.column("label")]  # noqa: E731
    assert decode(fast) == decode(slow)
    assert fast.text_values == slow.text_values  # the same codes: labels in order of first appearance


def _numpy_read(path):
    return parse_rows(path, read_header(path), str(path))[0]


def test_the_fast_path_widens_its_types_when_later_rows_outgrow_the_sample(write, monkeypatch):
    """The first 100 rows decide the column types; a bigger integer, a fraction or an odd but
    valid spelling further down makes polars refuse them, and the read is redone wider."""
    rows = [f"{i % 7},{i},{i % 3}" for i in range(300)]
    rows[250] = "3000000000,-2147483649,2.5"
    rows[260] = " 7,+8,1e3"
    rows[270] = "007,-0,.5"
    path = write("grow.csv", "a,b,c\n" + "\n".join(rows) + "\n")
    monkeypatch.setattr("nncli.tabular.fast.FAST_PATH_BYTES", 0)
    from nncli.tabular import fast as fastcsv

    fast = fastcsv.read_numeric(path, ["a", "b", "c"], [])
    assert fast is not None  # polars read it, on the second, wider attempt
    np.testing.assert_array_equal(fast[0], _numpy_read(path))
    np.testing.assert_array_equal(read_csv(path).values, _numpy_read(path))


def test_stream_blocks_reuse_the_first_blocks_types_and_widen_once(write):
    import polars as pl

    from nncli.tabular.fast import BlockParser

    parser = BlockParser(["a", "b"], [])
    first = parser.parse(b"".join(f"{i},{i % 5}\n".encode() for i in range(200)))
    assert first is not None and parser.types == {"a": pl.Int16, "b": pl.Int16}  # small integers: 16 bits
    np.testing.assert_array_equal(first[0][:3], [[0, 0], [1, 1], [2, 2]])
    bigger = parser.parse(b"1,2\n40000,3\n")  # beyond 16 bits: 32-bit integers, not yet float64
    np.testing.assert_array_equal(bigger[0], [[1, 2], [40000, 3]])
    assert parser.types == {"a": pl.Int32, "b": pl.Int32}
    later = parser.parse(b"1,2\n5000000000,3\n4,0.25\n")
    np.testing.assert_array_equal(later[0], [[1, 2], [5e9, 3], [4, 0.25]])
    assert parser.types == {"a": pl.Float64, "b": pl.Float64}  # widened for the rest of the stream
    assert parser.parse(b"1,x\n") is None  # the exact parser's turn, to name the bad cell
    assert parser.parse(b"6,7\n")[0].tolist() == [[6, 7]]


def test_a_stream_reads_what_a_whole_read_reads_when_types_change_between_blocks(write, monkeypatch):
    monkeypatch.setattr("nncli.tabular.fast.FAST_PATH_BYTES", 0)  # a small file's small blocks through polars too
    names = ["dog", "cat", "éclair", "日本", "Zebra", "7"]
    rows = [f"{i},{i % 9},{names[i % 6]}" for i in range(3000)] + [f"{i}.5,{2**40 + i},{names[i % 5]}" for i in range(3000)]
    path = write("s.csv", "a,b,t\n" + "\n".join(rows) + "\n")
    with open_csv(path, chunk_bytes=4096) as stream:
        chunks = list(stream.chunks(["t"]))
    values = np.concatenate([chunk.values[:, :2] for chunk in chunks])
    whole, text = parse_rows(path, ["a", "b", "t"], str(path), ["t"])
    np.testing.assert_array_equal(values, whole[:, :2])
    assert sum((chunk.text_column(["a", "b", "t"], "t") for chunk in chunks), []) == [r.split(",")[2] for r in rows]


@pytest.mark.parametrize("fast", [False, True], ids=["small-file", "fast-path"])
def test_a_hash_is_text_not_a_comment(write, fast, monkeypatch):
    if fast:
        monkeypatch.setattr("nncli.tabular.fast.FAST_PATH_BYTES", 0)
    path = write("h.csv", "x,label\n1,C#\n2,C\n3,D # minor\n")
    table = read_csv(path, ["label"])
    assert [table.text_values["label"][int(c)] for c in table.column("label")] == ["C#", "C", "D # minor"]


def test_as_number_reads_what_numpys_parser_reads():
    from nncli.tabular.parse import as_number

    assert as_number(" 7 ") == 7 and as_number("+1e3") == 1000 and as_number(".5") == 0.5
    for refused in ["1_000", "0x1A", "4#x", "", "seven"]:
        assert np.isnan(as_number(refused)), refused


@pytest.mark.parametrize("fast", [False, True], ids=["small-file", "fast-path"])
def test_a_crlf_file_reads_a_quoted_line_break_as_numpys_parser_does(write, fast, monkeypatch):
    if fast:
        monkeypatch.setattr("nncli.tabular.fast.FAST_PATH_BYTES", 0)
    path = write("w.csv", b'x,label\r\n1,"two\r\nlines"\r\n2,plain\r\n3,"two\r\nlines"\r\n')
    table = read_csv(path, ["label"])
    if fast:
        from nncli.tabular import fast as fastcsv

        assert fastcsv.read_numeric(path, ["x", "label"], ["label"]) is not None  # polars did read it
    assert table.text_values["label"] == ["two\nlines", "plain"]
    np.testing.assert_array_equal(table.column("label"), [0, 1, 0])
    with open_csv(path, chunk_bytes=16) as stream:  # predict and evaluate read it the same way
        assert sum((chunk.text_column(stream.header, "label") for chunk in stream.chunks(["label"])), []) == [
            "two\nlines", "plain", "two\nlines"]




def test_streams_use_polars_only_for_big_inputs(write, monkeypatch):
    """By the file's size; for a pipe, once that much has passed."""
    import io
    import sys
    from types import SimpleNamespace

    from nncli.tabular.fast import BlockParser

    text = "a,b\n" + "".join(f"{i},{i % 7}\n" for i in range(8000))
    path = write("s.csv", text)
    calls = []
    parse = BlockParser.parse
    monkeypatch.setattr(BlockParser, "parse", lambda self, block: calls.append(len(block)) or parse(self, block))

    def blocks_through_polars(source) -> int:
        calls.clear()
        with open_csv(source, chunk_bytes=4096) as stream:
            rows = sum(len(chunk.values) for chunk in stream.chunks())
        assert rows == 8000
        return len(calls)

    monkeypatch.setattr("nncli.tabular.fast.FAST_PATH_BYTES", len(text) + 1)
    assert blocks_through_polars(path) == 0  # a file below the threshold: NumPy all along
    monkeypatch.setattr("nncli.tabular.fast.FAST_PATH_BYTES", len(text) // 2)
    every = blocks_through_polars(path)
    assert every > 10  # above it: every block
    monkeypatch.setattr(sys, "stdin", SimpleNamespace(buffer=io.BytesIO(text.encode())))
    assert 0 < blocks_through_polars("-") < every  # a pipe: the blocks after the first half


@pytest.mark.parametrize("text, line", [
    (b"a,b\n1,2\n3,4\r5,6\n", 3), (b"a,b\r\n" + b"1,2\r\n" * 40 + b"3,4\r\r\n", 42), (b'a,b\n1,"2\r"\n', 2),
])
def test_streams_refuse_a_lone_carriage_return_as_whole_reads_do(write, text, line, block_parser):
    path = write("cr.csv", text)
    with pytest.raises(DataError, match=rf"cr\.csv:{line}: a carriage return \(\\r\) without a line feed"):
        read_csv(path)
    with pytest.raises(DataError, match=rf"cr\.csv:{line}: a carriage return \(\\r\) without a line feed"):
        with open_csv(path, chunk_bytes=64) as stream:
            for _ in stream.chunks():
                pass


def test_line_ends_are_checked_across_scan_windows(monkeypatch):
    from nncli.tabular.parse import check_line_ends

    monkeypatch.setattr("nncli.tabular.parse._SCAN_WINDOW", 8)
    crlf = b"a,b\r\n" + b"12,34\r\n" * 20
    assert check_line_ends(crlf, "f") is True and check_line_ends(crlf.replace(b"\r", b""), "f") is False
    for position in (13, 14, 15, 16, 17):  # a lone CR on, before and after a window's edge
        data = crlf[:position] + b"\r" + crlf[position:]
        if data.count(b"\r") != data.count(b"\r\n"):
            line = 1 + data[:position].count(b"\n")
            with pytest.raises(DataError, match=rf"f:{line}: a carriage return"):
                check_line_ends(data, "f")


def test_csv_rows_one_column_and_several_and_empty_blocks():
    import io

    from nncli.tabular.write import write_csv_rows

    out = io.StringIO()
    assert write_csv_rows(out, ["label"], iter([[["a", "b"]], [[]], [["c"]]])) == 3
    assert out.getvalue() == "label\na\nb\nc\n"
    out = io.StringIO()
    assert write_csv_rows(out, ["id", "x,y"], iter([[[], []], [["1", "2"], ["u", '"v"']]])) == 2
    assert out.getvalue() == 'id,"x,y"\n1,u\n2,"v"\n'
    out = io.StringIO()
    assert write_csv_rows(out, ["label"], iter([[[]]])) == 0
    assert out.getvalue() == "label\n"  # the header alone when there is no row
