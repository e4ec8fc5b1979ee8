"""Predictions written as a Parquet file (``predict -o predictions.parquet``), chunk after
chunk, in bounded memory.

polars writes the file; the caller makes the write atomic (:func:`nncli.files.atomic.atomic_write`
gives the temporary file renamed over the destination once complete).
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path
from typing import BinaryIO, Iterator, Sequence

import numpy as np

from nncli.budgets import MiB
from nncli.errors import OutputError

# Rows are gathered in memory up to this, then written to a temporary Arrow IPC file; the Parquet
# file is written from those at the end by polars' streaming engine, which takes ~150 MB
# whatever the rows. 7 million rows of 4 columns peaked at 281 MB with 16 MiB, 379 with 64.
SPILL_BYTES = 16 * MiB


class ParquetSink:
    """Columns of predictions, chunk after chunk, to a Parquet file.

    ``out`` is a binary file (the caller's :func:`nncli.files.atomic.atomic_write`, which makes
    the write atomic); ``schema`` names each column and its type: ``str`` (text, None for a
    missing value) or a NumPy float type. Chunks are kept in memory up to ``SPILL_BYTES``, then
    written to temporary Arrow IPC files in ``spill_folder`` (beside the output, say: the system's
    temporary folder may be memory); :meth:`close` writes the Parquet file from them. Used as a
    context manager, an exception discards everything and writes nothing."""

    def __init__(self, out: BinaryIO, schema: dict[str, object], spill_folder: Path | None = None,
                 spill_bytes: int = SPILL_BYTES, name: str = "the Parquet output"):
        import polars as pl

        self.out, self.spill_bytes, self.spill_folder, self.name = out, spill_bytes, spill_folder, name
        self.schema = {column: pl.String if kind is str else _float_type(kind) for column, kind in schema.items()}
        self._frames: list = []
        self._buffered = 0
        self._folder: tempfile.TemporaryDirectory | None = None
        self._spilled: list[str] = []
        self.rows = 0

    def __enter__(self) -> "ParquetSink":
        return self

    def __exit__(self, kind, *exc) -> None:
        try:
            if kind is None:
                self.close()
        finally:
            self._discard()

    def write(self, columns: Sequence[Sequence]) -> None:
        """One chunk: a sequence per column, in the schema's order, all of the same length."""
        import polars as pl

        if len(columns) != len(self.schema):
            raise ValueError(f"{len(columns)} columns for a schema of {len(self.schema)}")
        frame = pl.DataFrame([pl.Series(name, cells, dtype=dtype) for (name, dtype), cells in zip(self.schema.items(), columns)])
        self._frames.append(frame)
        self._buffered += frame.estimated_size()
        self.rows += frame.height
        if self._buffered >= self.spill_bytes:
            self._spill()

    def _spill(self) -> None:
        import polars as pl

        if not self._frames:
            return
        with self._writing():
            if self._folder is None:
                self._folder = tempfile.TemporaryDirectory(prefix=".nncli-parquet-", dir=self.spill_folder)
            path = os.path.join(self._folder.name, f"{len(self._spilled):06d}.arrow")
            pl.concat(self._frames, rechunk=False).write_ipc(path, compression="uncompressed")
        self._spilled.append(path)
        self._frames, self._buffered = [], 0

    def close(self) -> None:
        """Write the Parquet file: from memory if nothing was spilled, else streamed from the spilled files."""
        import polars as pl

        if not self._spilled:
            with self._writing():
                pl.concat(self._frames or [pl.DataFrame(schema=self.schema)]).write_parquet(self.out)
        else:
            self._spill()
            with self._writing():
                pl.scan_ipc(self._spilled).sink_parquet(self.out)
        self.out.flush()
        self._frames = []

    @contextlib.contextmanager
    def _writing(self) -> Iterator[None]:
        """A failed write (a full disk, a folder that cannot be written) as one line."""
        import polars as pl

        try:
            yield
        except (pl.exceptions.PolarsError, OSError) as exc:
            reason = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:300]
            raise OutputError(f"{self.name}: cannot write the Parquet file: {reason}") from None

    def _discard(self) -> None:
        self._frames = []
        if self._folder is not None:
            self._folder.cleanup()
            self._folder = None


def _float_type(kind):
    import polars as pl

    return pl.Float32 if np.dtype(kind) == np.float32 else pl.Float64
