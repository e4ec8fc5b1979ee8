"""How much memory reading a CSV file takes beside the matrix it returns (issue #11: a
20,000-row MNIST-shaped file peaked at 6.9 x its float32 training arrays, set by the read).

:func:`nncli.tabular.source.read_csv` fills one preallocated (rows, columns) matrix: polars
parses a file of one row per line a block of lines at a time (``ROW_BLOCK_BYTES``), so the
peak is the matrix plus one block's working memory; before, polars held a frame of the whole
file (as large as the float32 matrix, for 32-bit integers, with its parse buffers around it)
while the matrix was filled from it. Polars allocates in Rust, out of tracemalloc's sight, so
that read is measured as the rise of the resident set's high-water mark (VmHWM) in a fresh
process; NumPy's parser (smaller files) is traced. ``tests/test_memory.py`` counts the copies
that loading the training data makes on top of the read.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import tracemalloc

import numpy as np
import pytest

from nncli.errors import DataError
from nncli.tabular import fast
from nncli.tabular.parse import parse_rows, read_header
from nncli.tabular.source import read_csv

ROWS, FEATURES = 40_000, 250  # a 40 MB float32 matrix (10 million integer pixels), 23 MB of text


def _pixels(path, rows: int = ROWS, features: int = FEATURES, seed: int = 0) -> None:
    """An MNIST-like CSV (integer pixels, most of them 0, and a digit label): 500 distinct
    lines repeated, which is quick to write."""
    rng = np.random.default_rng(seed)
    pixels = rng.integers(1, 256, (500, features)) * (rng.random((500, features)) < 0.2)
    table = np.column_stack([pixels, rng.integers(0, 10, 500)])
    lines = [",".join(map(str, row)) + "\n" for row in table.tolist()]
    header = ",".join([f"p{i}" for i in range(features)] + ["label"]) + "\n"
    path.write_text(header + "".join(lines * (rows // 500)))


# Run in a fresh process: polars imported and warmed up (its first parse sets up ~14 MB of its
# own, whatever the file) before the high-water mark is reset to the resident set.
_MEASURE = """
import json, sys
import numpy as np
from pathlib import Path
from nncli.tabular import fast, source

def status(key):
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) * 1024 for line in f if line.startswith(key))

fast.FAST_PATH_BYTES, fast.ROW_BLOCK_BYTES, fast.ROW_BLOCK_BYTES_PER_COLUMN = 0, 1 << 20, 0
blocks = []
add = fast._Table.add
fast._Table.add = lambda table, frame: blocks.append(frame.height) or add(table, frame)
warm = Path(sys.argv[1]).with_name("warm.csv")
warm.write_text("a,label\\n1,x\\n")
source.read_csv(warm, ["label"], np.float32)
blocks.clear()
try:
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")  # the high-water mark starts again from the resident set
except OSError:
    pass  # (not allowed here: the mark so far is the start-up's, a little above the resident set)
before = status("VmRSS")
table = source.read_csv(Path(sys.argv[1]), ["label"], np.float32)
print(json.dumps({"rise": status("VmHWM") - before, "bytes": table.values.nbytes,
                  "dtype": table.values.dtype.name, "blocks": len(blocks)}))
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc/self/status")
def test_polars_fills_the_matrix_without_holding_the_whole_file(tmp_path):
    path = tmp_path / "pixels.csv"
    _pixels(path)
    run = subprocess.run([sys.executable, "-c", _MEASURE, str(path)], capture_output=True, text=True, check=True)
    measured = json.loads(run.stdout)
    assert measured["dtype"] == "float32" and measured["bytes"] == ROWS * (FEATURES + 1) * 4
    assert measured["blocks"] > 5  # polars parsed the file, a block of lines at a time
    # The matrix (1x) and one 1 MiB block at a time: its text, polars' frame and parse buffers
    # and the values copied out, ~17 MB with what polars' allocator keeps for a while (more
    # threads may keep more): measured 1.4x. A frame of the whole file beside the matrix
    # measured 2.9x (the read before row blocks).
    ratio = measured["rise"] / measured["bytes"]
    assert ratio <= 2.2, f"reading peaked at {ratio:.1f}x the matrix it returns"


def test_numpys_parser_makes_few_copies_of_the_table(tmp_path):
    """Files under ``FAST_PATH_BYTES`` go to NumPy's parser (float64), which grows its result
    in place and reads the text a chunk at a time: measured 1.15-1.2x the table; a second
    table (a float64 copy, a list of rows) would make it 2x or more."""
    path = tmp_path / "pixels.csv"
    _pixels(path, rows=5_000, features=100)
    header = read_header(path)
    read_csv(path, ["label"])  # (imports and caches warmed outside the count)
    tracemalloc.start()
    try:
        table = read_csv(path, ["label"])
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert table.values.dtype == np.float64 and table.header == header
    ratio = peak / table.values.nbytes
    assert ratio <= 1.6, f"NumPy's parse peaked at {ratio:.1f}x the table it returns"


# The block reader gives what NumPy's parser gives: every block is checked as the whole file
# was (a block polars does not take cleanly sends the whole file to NumPy's parser).

@pytest.fixture
def small_blocks(monkeypatch):
    """polars for every file, a few lines per block; the number of blocks parsed."""
    monkeypatch.setattr(fast, "FAST_PATH_BYTES", 0)
    monkeypatch.setattr(fast, "ROW_BLOCK_BYTES", 64)
    monkeypatch.setattr(fast, "ROW_BLOCK_BYTES_PER_COLUMN", 0)
    blocks = []
    add = fast._Table.add
    monkeypatch.setattr(fast._Table, "add", lambda table, frame: blocks.append(frame.height) or add(table, frame))
    return blocks


def _numpy_read(path, text_columns=()):
    return parse_rows(path, read_header(path), str(path), text_columns)


@pytest.mark.parametrize("crlf", [False, True], ids=["lf", "crlf"])
def test_row_blocks_read_what_numpys_parser_reads(tmp_path, small_blocks, crlf):
    """Labels first seen in later blocks keep their order of first appearance; a later block
    that outgrows the sample's 32-bit integers is read as float64, one that is not exactly
    float32 turns the whole matrix float64 (the same numbers); no line end after the last row."""
    rows = [f"{i % 7},{i % 3 * 0.5},{'abc'[i % 3] if i < 200 else 'late'}" for i in range(300)]
    rows[150] = "3000000000,0.25,b"  # beyond int32
    rows[250] = "1,0.1,c"  # 0.1 is not a float32
    end = "\r\n" if crlf else "\n"
    path = tmp_path / "blocks.csv"
    path.write_bytes((end.join(["n,x,label", *rows])).encode())
    table = read_csv(path, ["label"], np.float32)
    values, text_values = _numpy_read(path, ["label"])
    assert len(small_blocks) > 20  # read a few lines at a time
    assert fast.read_numeric(path, table.header, ["label"], crlf, np.float32, rows=300) is not None  # by polars
    assert table.values.dtype == np.float64
    np.testing.assert_array_equal(table.values, values)
    assert table.text_values == text_values == {"label": ["a", "b", "c", "late"]}


def test_row_blocks_stay_float32_when_every_value_is(tmp_path, small_blocks):
    path = tmp_path / "ints.csv"
    path.write_text("a,b\n" + "".join(f"{i},{-i * 3}\n" for i in range(200)) + f"{1 << 24},0\n")
    table = read_csv(path, (), np.float32)
    assert len(small_blocks) > 20 and table.values.dtype == np.float32
    np.testing.assert_array_equal(table.values, _numpy_read(path)[0])
    path.write_text("a,b\n" + "".join(f"{i},{-i * 3}\n" for i in range(200)) + f"{(1 << 24) + 1},0\n")
    assert read_csv(path, (), np.float32).values.dtype == np.float64  # 2**24 + 1 is not a float32


@pytest.mark.parametrize("oddity", ["\n", "\n\n", " \n"], ids=["blank-line", "blank-lines", "spaces"])
def test_a_row_that_is_not_a_line_sends_the_file_to_numpys_parser(tmp_path, small_blocks, oddity):
    """A blank line further down (or at the end) is not a row: the rows polars read are not the
    lines counted, and NumPy's parser reads (or refuses) the file as it always did."""
    lines = [f"{i},{i % 5}\n" for i in range(100)]
    path = tmp_path / "odd.csv"
    for text in ("".join(lines[:60]) + oddity + "".join(lines[60:]), "".join(lines) + oddity):
        path.write_text("a,b\n" + text)
        try:
            expected = _numpy_read(path)[0]
        except DataError as exc:
            with pytest.raises(DataError, match=re.escape(str(exc))):
                read_csv(path, (), np.float32)
        else:
            np.testing.assert_array_equal(read_csv(path, (), np.float32).values, expected)


def test_a_frame_turns_float64_where_its_values_stop_being_float32(monkeypatch):
    """A value that is not a float32 further down a frame copied out a few rows at a time:
    the rows copied before it are kept, as float64."""
    import polars as pl

    monkeypatch.setattr(fast, "BLOCK_BYTES", 64)  # four rows of two columns at a time
    a = np.arange(40, dtype=np.float64)
    a[30] = 0.1
    frame = pl.DataFrame({"a": a, "b": np.arange(40) * 2.0, "label": [f"l{i % 3}" for i in range(40)]})
    values, text_values = fast.numeric_frame(frame, ["a", "b", "label"], ["label"], np.float32)
    assert values.dtype == np.float64 and text_values == {"label": ["l0", "l1", "l2"]}
    np.testing.assert_array_equal(values, np.column_stack([a, np.arange(40) * 2.0, np.arange(40) % 3]))
