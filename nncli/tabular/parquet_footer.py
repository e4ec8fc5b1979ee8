"""A Parquet file's footer, read by nncli before polars opens the file.

Parquet keeps its metadata (the schema, and each row group's rows and sizes) in a footer at
the file's end: ``PAR1``, the data, the footer (Thrift's compact encoding), its length (4 bytes,
little-endian), ``PAR1``. :func:`read_file_footer` checks the signature, the footer's length
against the metadata budget, then reads it here, with :class:`_Thrift`, a small reader that
skips everything but the row count, the schema's size and each row group's rows and bytes,
and checks every length against the bytes left; the column count is then checked against its
budget (:mod:`nncli.budgets`).

Why not polars: polars 2.1 offers ``read_parquet_schema`` (the top-level columns and their
types: no row counts, and a nested column counts once), ``read_parquet_metadata`` (the
writer's key-value pairs only) and ``scan_parquet(...).select(pl.len())`` (the total row
count). None of them gives the row groups' rows and byte sizes, which the budget checks and
the read plan (:func:`nncli.tabular.parquet._read_ranges`) need, and each of them parses the
whole footer first, allocating for whatever it declares, so the metadata budget could not be
checked before the allocation it is meant to prevent. pyarrow would give the row groups but
is not a dependency (and also parses the footer whole).
"""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator, NamedTuple

from nncli.budgets import KiB, human_bytes, parquet_column_budget, parquet_metadata_budget
from nncli.errors import DataError, quoted, reading
from nncli.tabular.parse import LINE_BYTES_VARIABLE, line_budget

MAGIC = b"PAR1"
ENCRYPTED_MAGIC = b"PARE"  # a file whose footer is encrypted


class _Thrift:
    """Just enough of Thrift's compact protocol to read a Parquet footer: fields are walked one
    by one and skipped unless asked for; every length is checked against the bytes left, and
    nesting is limited, so a crafted footer raises ValueError instead of allocating or recursing."""

    STOP, TRUE, FALSE, BYTE, I16, I32, I64, DOUBLE, BINARY, LIST, SET, MAP, STRUCT, UUID = range(14)
    MAX_DEPTH = 64

    def __init__(self, data: bytes):
        self.data, self.at, self.depth = data, 0, 0

    def byte(self) -> int:
        if self.at >= len(self.data):
            raise ValueError("the metadata ends early")
        self.at += 1
        return self.data[self.at - 1]

    def varint(self) -> int:
        value = shift = 0
        while True:
            byte = self.byte()
            value |= (byte & 0x7F) << shift
            if not byte & 0x80:
                return value
            shift += 7
            if shift > 63:
                raise ValueError("an integer longer than 64 bits")

    def integer(self) -> int:
        value = self.varint()
        return (value >> 1) ^ -(value & 1)

    def fields(self) -> Iterator[tuple[int, int]]:
        """(field id, type) of each field of a struct, to its end; the caller reads or skips each value."""
        self.depth += 1
        if self.depth > self.MAX_DEPTH:
            raise ValueError("structures nested too deep")
        last = 0
        while True:
            header = self.byte()
            kind = header & 0x0F
            if kind == self.STOP:
                self.depth -= 1
                return
            last = last + (header >> 4) if header >> 4 else self.integer()
            yield last, kind

    def sequence(self) -> tuple[int, int]:
        """A list's (size, element type)."""
        header = self.byte()
        size = header >> 4 if header >> 4 != 15 else self.varint()
        if size > len(self.data) - self.at:  # every element takes a byte at least
            raise ValueError("a list longer than the metadata")
        return size, header & 0x0F

    def skip(self, kind: int) -> None:
        self.at = _skip(self.data, self.at, kind, self.depth)
        if self.at > len(self.data):
            raise ValueError("a value longer than the metadata")


def _varint(data: bytes, at: int) -> tuple[int, int]:
    """The unsigned varint at ``at`` and the position after it (IndexError past the end)."""
    value = shift = 0
    while True:
        byte = data[at]
        at += 1
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return value, at
        shift += 7
        if shift > 63:
            raise ValueError("an integer longer than 64 bits")


def _skip(data: bytes, at: int, kind: int, depth: int) -> int:
    """The position after a value of type ``kind`` at ``at`` (the walk through a footer's
    column chunks, ~30 values each: kept to plain loops over bytes, ~0.3 s for 20,000 columns).
    Reading past the end raises IndexError; a length is checked against the bytes left."""
    if kind <= _Thrift.FALSE:  # (a boolean field: its value is its type)
        if kind == _Thrift.STOP:
            raise ValueError("unknown Thrift type 0")
        return at
    if kind <= _Thrift.I64:
        if kind == _Thrift.BYTE:
            return at + 1
        while data[at] & 0x80:
            at += 1
        return at + 1
    if kind in (_Thrift.DOUBLE, _Thrift.UUID):
        return at + (8 if kind == _Thrift.DOUBLE else 16)
    if kind == _Thrift.BINARY:
        size, at = _varint(data, at)
        return at + size
    if depth >= _Thrift.MAX_DEPTH:
        raise ValueError("structures nested too deep")
    if kind == _Thrift.STRUCT:
        while True:
            header = data[at]
            at += 1
            if not header:
                return at
            if not header >> 4:  # a field id written out: a zigzag varint
                while data[at] & 0x80:
                    at += 1
                at += 1
            at = _skip(data, at, header & 0x0F, depth + 1)
    if kind in (_Thrift.LIST, _Thrift.SET, _Thrift.MAP):
        if kind == _Thrift.MAP:
            size, at = _varint(data, at)
            kinds = (data[at] >> 4, data[at] & 0x0F) if size else ()
            at += bool(size)
            size *= 2
        else:
            header = data[at]
            at += 1
            size = header >> 4
            if size == 15:
                size, at = _varint(data, at)
            kinds = (header & 0x0F,)
        if size > len(data) - at:  # every element takes a byte at least
            raise ValueError("a list longer than the metadata")
        if kinds in ((_Thrift.TRUE,), (_Thrift.FALSE,)):
            return at + size  # (a list's booleans take a byte each, as a map's do)
        for k in range(size):
            element = kinds[k % len(kinds)]
            at = at + 1 if element in (_Thrift.TRUE, _Thrift.FALSE) else _skip(data, at, element, depth + 1)
        return at
    raise ValueError(f"unknown Thrift type {kind}")


class Group(NamedTuple):
    """A row group, as the footer describes it."""

    rows: int
    decoded: int  # bytes, uncompressed (total_byte_size)
    stored: int  # bytes in the file (total_compressed_size; the decoded size when not given)


class Chunk(NamedTuple):
    """A column chunk (one column of one row group), as the footer describes it: enough to
    bound the size of its largest value before anything decodes it."""

    group: int  # the row group's index
    column: str  # the column's path in the schema, its parts joined with "."
    rows: int  # the row group's rows
    decoded: int  # bytes, uncompressed (total_uncompressed_size)
    start: int  # where its first page (the dictionary page, if any) begins in the file
    stored: int  # bytes in the file, page headers included (total_compressed_size)


@dataclass
class Footer:
    rows: int
    columns: int  # schema elements below the root: the columns, and the parts of nested ones
    groups: list[Group]  # in order
    chunks: list[Chunk] = field(default_factory=list)  # in order, row group by row group


def read_footer(data: bytes, chunks_above: int = -1) -> Footer:
    """The rows, column count and row groups of a Parquet footer (FileMetaData); ValueError if it
    is malformed or its counts disagree. The column chunks are listed for the row groups of
    more than ``chunks_above`` bytes (decoded) only: a smaller one has no larger chunk."""
    thrift = _Thrift(data)
    rows, elements, groups, chunks = None, 0, [], []
    for number, kind in thrift.fields():
        if number == 2 and kind == thrift.LIST:  # the schema: one element per node, the root first
            elements, _ = thrift.sequence()
            for _ in range(elements):
                thrift.skip(thrift.STRUCT)
        elif number == 3 and kind == thrift.I64:
            rows = thrift.integer()
        elif number == 4 and kind == thrift.LIST:
            size, _ = thrift.sequence()
            for _ in range(size):
                group = {}  # RowGroup: 1 columns, 2 total_byte_size, 3 num_rows, 6 total_compressed_size
                columns_at = None
                for inner, inner_kind in thrift.fields():
                    if inner in (2, 3, 6) and inner_kind == thrift.I64:
                        group[inner] = thrift.integer()
                    elif inner == 1 and inner_kind == thrift.LIST:
                        columns_at = thrift.at
                        thrift.skip(inner_kind)
                    else:
                        thrift.skip(inner_kind)
                if group.get(3, -1) < 0 or group.get(2, 0) < 0 or group.get(6, 0) < 0:
                    raise ValueError("a row group without a valid number of rows")
                if columns_at is not None and group.get(2, chunks_above + 1) > chunks_above:  # (its chunks may be larger)
                    after, thrift.at = thrift.at, columns_at
                    count, _ = thrift.sequence()
                    found = [_column_chunk(thrift) for _ in range(count)]
                    thrift.at = after
                    chunks.extend(Chunk(len(groups), column, group[3], *sizes) for column, *sizes in found)
                groups.append(Group(group[3], group.get(2, 0), group.get(6, group.get(2, 0))))
        else:
            thrift.skip(kind)
    if rows is None or rows < 0 or elements < 1:
        raise ValueError("no number of rows, or no schema")
    if sum(group.rows for group in groups) != rows:
        raise ValueError(f"its row groups hold {sum(group.rows for group in groups):,} rows, not the {rows:,} it says")
    return Footer(rows, elements - 1, groups, chunks)


def _column_chunk(thrift: _Thrift) -> tuple[str, int, int, int]:
    """A ColumnChunk's (column path, uncompressed bytes, first page's offset, stored bytes):
    its ColumnMetaData's 3 path_in_schema, 6 total_uncompressed_size, 7 total_compressed_size,
    9 data_page_offset and 11 dictionary_page_offset."""
    path: list[str] = []
    sizes: dict[int, int] = {}
    for number, kind in thrift.fields():
        if number != 3 or kind != thrift.STRUCT:
            thrift.skip(kind)
            continue
        for inner, inner_kind in thrift.fields():
            if inner in (6, 7, 9, 11) and inner_kind == thrift.I64:
                sizes[inner] = thrift.integer()
            elif inner == 3 and inner_kind == thrift.LIST:
                count, element = thrift.sequence()
                for _ in range(count):
                    if element != thrift.BINARY:
                        thrift.skip(element)
                        continue
                    size = thrift.varint()
                    if size > len(thrift.data) - thrift.at:
                        raise ValueError("a name longer than the metadata")
                    path.append(thrift.data[thrift.at:thrift.at + size].decode("utf-8", "replace"))
                    thrift.at += size
            else:
                thrift.skip(inner_kind)
    if any(value < 0 for value in sizes.values()):
        raise ValueError("a column chunk with a negative size or offset")
    dictionary = sizes.get(11, 0)
    start = dictionary if 0 < dictionary < sizes.get(9, dictionary + 1) else sizes.get(9, 0)
    return ".".join(path), sizes.get(6, 0), start, sizes.get(7, 0)


_PAGE_HEADER_BYTES = 64 * KiB  # read for a page header (its statistics are truncated by writers)
_MAX_PAGES_WALKED = 100_000  # page headers read per file, at most (~1 MiB pages: 100 GB of data)


def _page_headers(f, chunk: Chunk, size: int, walked: list[int]) -> Iterator[tuple[int, int]]:
    """(uncompressed bytes, values) of each page of ``chunk``, from the page headers in the file:
    PageHeader's 2 uncompressed_page_size, 3 compressed_page_size and the num_values (field 1)
    of its 5 data_page_header, 7 dictionary_page_header or 8 data_page_header_v2."""
    at, end = chunk.start, min(chunk.start + chunk.stored, size)
    while at < end and walked[0] < _MAX_PAGES_WALKED:
        walked[0] += 1
        f.seek(at)
        thrift = _Thrift(f.read(min(_PAGE_HEADER_BYTES, size - at)))
        sizes: dict[int, int] = {}
        values = 0
        for number, kind in thrift.fields():
            if number in (2, 3) and kind == thrift.I32:
                sizes[number] = thrift.integer()
            elif number in (5, 7, 8) and kind == thrift.STRUCT:
                for inner, inner_kind in thrift.fields():
                    if inner == 1 and inner_kind == thrift.I32:
                        values = thrift.integer()
                    else:
                        thrift.skip(inner_kind)
            else:
                thrift.skip(kind)
        if sizes.get(2, -1) < 0 or sizes.get(3, -1) < 0:
            raise ValueError(f"column {chunk.column!r}: a page header without valid sizes")
        yield sizes[2], values
        at += thrift.at + sizes[3]


def check_cell_sizes(f, name: str, footer: Footer, size: int) -> None:
    """Refuse a file whose values may not fit the CSV readers' line budget (no cell of a CSV
    line may be longer than the line): before anything decodes them, from the sizes the file
    declares. A column chunk whose rows take more than the budget each on average holds such a
    value; so does a page (a dictionary page, or a page of values) whose values do. Only the
    chunks larger than the budget can hold one: their page headers are read, nothing else."""
    limit = line_budget()
    advice = (f"more than {human_bytes(limit)}, the longest line nncli reads from a CSV file "
              f"(set {LINE_BYTES_VARIABLE}, e.g. {LINE_BYTES_VARIABLE}=64M, if the file is right)")
    walked = [0]
    for chunk in footer.chunks:
        if chunk.decoded <= limit:
            continue
        where = f"{name}: column {quoted(chunk.column)}, row group {chunk.group + 1}"
        if chunk.decoded > limit * max(chunk.rows, 1):
            raise DataError(f"{where}: its {chunk.rows:,} rows decode to {human_bytes(chunk.decoded)}, "
                            f"so at least one value is {advice}")
        for decoded, values in _page_headers(f, chunk, size, walked):
            if decoded > limit * max(values, 1):
                raise DataError(f"{where}: a page of {values:,} values decodes to {human_bytes(decoded)}, "
                                f"so at least one value is {advice}")


def read_file_footer(path: str | Path) -> Footer:
    """The footer of the Parquet file ``path``, checked before anything else reads it: a
    regular file, starting and ending with the signature, not encrypted, its metadata within
    the metadata budget and well formed, its columns within the column budget. Every refusal
    is one DataError naming the file."""
    name = str(path)
    with reading(path, DataError, "Parquet file"):
        info = os.stat(path)  # (before open: opening a named pipe would wait for a writer)
        if not stat.S_ISREG(info.st_mode) and not Path(path).is_dir():
            raise DataError(f"{name}: not a regular file (a pipe or a device); save the Parquet data to a file first")
        with open(path, "rb") as f:
            size = os.fstat(f.fileno()).st_size
            head = f.read(len(MAGIC))
            if head != MAGIC:
                raise DataError(f"{name}: not a Parquet file (it does not start with the Parquet signature PAR1)")
            if size < 2 * len(MAGIC) + 4:
                raise DataError(f"{name}: not a whole Parquet file ({size} bytes: too short to hold a Parquet footer; cut short?)")
            f.seek(size - 8)
            tail = f.read(8)
            if tail[4:] == ENCRYPTED_MAGIC:
                raise DataError(f"{name}: an encrypted Parquet file; nncli reads unencrypted ones")
            length = int.from_bytes(tail[:4], "little")
            if tail[4:] != MAGIC or length > size - 2 * len(MAGIC) - 4:
                raise DataError(f"{name}: not a whole Parquet file (its end is not a Parquet footer: cut short?)")
            limit = parquet_metadata_budget()
            if length > limit:
                raise DataError(
                    f"{name}: its metadata is {human_bytes(length)}, more than the {human_bytes(limit)} nncli reads "
                    "(set NNCLI_MAX_PARQUET_METADATA, e.g. NNCLI_MAX_PARQUET_METADATA=256M, if the file is right)"
                )
            f.seek(size - 8 - length)
            data = f.read(length)
            try:
                footer = read_footer(data, chunks_above=line_budget())
                check_cell_sizes(f, name, footer, size)
            except (ValueError, RecursionError) as exc:
                raise DataError(f"{name}: corrupt Parquet metadata ({exc})") from None
            except IndexError:
                raise DataError(f"{name}: corrupt Parquet metadata (it ends early)") from None
    limit = parquet_column_budget()
    if footer.columns > limit:
        raise DataError(
            f"{name}: has {footer.columns:,} columns, more than the {limit:,} nncli reads "
            "(set NNCLI_MAX_COLUMNS if the file is right)"
        )
    return footer
