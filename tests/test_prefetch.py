"""Reading ahead (tabular/prefetch.py) and hashing in the background (files/filehash.py): the
same items, errors and hashes as doing it in line, and nothing left running or read twice."""

from __future__ import annotations

import hashlib
import os
import threading
import time

import numpy as np
import pytest

from nncli.errors import DataError
from nncli.files.filehash import BackgroundHashes, file_hash
from nncli.tabular.prefetch import read_ahead
from nncli.tabular.stream import CsvStream


def test_items_come_in_order_and_the_error_after_the_items_before_it():
    def items():
        yield 1
        yield 2
        raise DataError("data.csv:9: bad cell")

    got = []
    with pytest.raises(DataError, match="data.csv:9"):
        for item in read_ahead(items()):
            got.append(item)
    assert got == [1, 2]


def test_the_next_item_is_made_while_the_caller_holds_this_one():
    made = []

    def items():
        for i in range(3):
            made.append(i)
            yield i

    stream = read_ahead(items())
    assert next(stream) == 0
    deadline = time.monotonic() + 5
    while len(made) < 2 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert made == [0, 1]  # item 1 is ready before it is asked for, item 2 is not started
    assert list(stream) == [1, 2]


def test_closing_early_stops_the_producer_and_closes_its_generator():
    closed = threading.Event()

    def items():
        try:
            for i in range(1000):
                yield i
        finally:
            closed.set()

    stream = read_ahead(items())
    assert next(stream) == 0
    stream.close()
    assert closed.wait(5)  # the generator was closed where it ran, so its cleanup ran
    producers = [t for t in threading.enumerate() if t.name == "nncli-read-ahead"]
    for producer in producers:
        producer.join(5)
    assert not any(producer.is_alive() for producer in producers)


def test_a_streamed_file_gives_the_same_chunks_read_ahead_or_not(tmp_path):
    rng = np.random.default_rng(0)
    values = rng.integers(0, 255, size=(3000, 20))
    path = tmp_path / "d.csv"
    path.write_text("label," + ",".join(f"x{i}" for i in range(19)) + "\n"
                    + "".join(",".join(map(str, row)) + "\n" for row in values))
    with CsvStream(path, chunk_bytes=4096) as stream:
        ahead = [chunk.values for chunk in stream.chunks()]
    with CsvStream(path, chunk_bytes=4096) as stream:
        plain = [chunk.values for chunk in stream.parsed_chunks()]
    assert len(ahead) == len(plain) > 10
    assert all(np.array_equal(a, b) for a, b in zip(ahead, plain))
    assert np.array_equal(np.concatenate(ahead), values)


def test_background_hashes_equal_sha256_and_skip_what_cannot_be_read(tmp_path):
    data = tmp_path / "d.csv"
    data.write_bytes(os.urandom(3 << 20))
    missing = tmp_path / "gone.csv"
    found = BackgroundHashes([data, missing]).result()
    assert found == {str(data.resolve()): hashlib.sha256(data.read_bytes()).hexdigest()}
    assert file_hash(data) == found[str(data.resolve())]


def test_closing_the_stream_stops_its_read_ahead_even_if_the_chunks_are_still_held(tmp_path):
    """Found in review: a caller holding the iterator (an error kept in a local, say) kept the
    read-ahead thread alive, a chunk parsed ahead, after the stream had closed its file."""
    path = tmp_path / "d.csv"
    path.write_text("a,b\n" + "".join(f"{i},{i % 7}\n" for i in range(20000)))
    with CsvStream(path, chunk_bytes=4096) as stream:
        held = stream.chunks()
        assert len(next(held).values) > 0
    producers = [t for t in threading.enumerate() if t.name == "nncli-read-ahead"]
    for producer in producers:
        producer.join(5)
    assert not any(producer.is_alive() for producer in producers)
    with pytest.raises(StopIteration):
        next(held)  # closed with the stream
