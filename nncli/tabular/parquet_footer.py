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
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, NamedTuple

from nncli.budgets import human_bytes, parquet_column_budget, parquet_metadata_budget
from nncli.errors import DataError, reading

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
        size, shift = 0, 0
        while True:
            byte = data[at]
            at += 1
            size |= (byte & 0x7F) << shift
            if not byte & 0x80:
                return at + size
            shift += 7
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
            size, shift = 0, 0
            while True:
                byte = data[at]
                at += 1
                size |= (byte & 0x7F) << shift
                if not byte & 0x80:
                    break
                shift += 7
            kinds = (data[at] >> 4, data[at] & 0x0F) if size else ()
            at += bool(size)
            size *= 2
        else:
            header = data[at]
            at += 1
            size = header >> 4
            if size == 15:
                size, shift = 0, 0
                while True:
                    byte = data[at]
                    at += 1
                    size |= (byte & 0x7F) << shift
                    if not byte & 0x80:
                        break
                    shift += 7
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


@dataclass
class Footer:
    rows: int
    columns: int  # schema elements below the root: the columns, and the parts of nested ones
    groups: list[Group]  # in order


def read_footer(data: bytes) -> Footer:
    """The rows, column count and row groups of a Parquet footer (FileMetaData); ValueError if it
    is malformed or its counts disagree."""
    thrift = _Thrift(data)
    rows, elements, groups = None, 0, []
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
                group = {}  # RowGroup: 2 total_byte_size, 3 num_rows, 6 total_compressed_size
                for inner, inner_kind in thrift.fields():
                    if inner in (2, 3, 6) and inner_kind == thrift.I64:
                        group[inner] = thrift.integer()
                    else:
                        thrift.skip(inner_kind)
                if group.get(3, -1) < 0 or group.get(2, 0) < 0 or group.get(6, 0) < 0:
                    raise ValueError("a row group without a valid number of rows")
                groups.append(Group(group[3], group.get(2, 0), group.get(6, group.get(2, 0))))
        else:
            thrift.skip(kind)
    if rows is None or rows < 0 or elements < 1:
        raise ValueError("no number of rows, or no schema")
    if sum(group.rows for group in groups) != rows:
        raise ValueError(f"its row groups hold {sum(group.rows for group in groups):,} rows, not the {rows:,} it says")
    return Footer(rows, elements - 1, groups)


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
            if size < 2 * len(MAGIC) + 4 or head != MAGIC:
                raise DataError(f"{name}: not a Parquet file (it does not start with the Parquet signature PAR1)")
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
        footer = read_footer(data)
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
