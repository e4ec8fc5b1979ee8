"""SHA-256 of the files a run depends on (its data, its init model), taken while the run reads them.

Hashing a 100 MB CSV takes a tenth of a second; hashlib releases the GIL on large updates, so
a thread hashes the data while polars parses it instead of after.
"""

from __future__ import annotations

import hashlib
import threading
from pathlib import Path

BLOCK_BYTES = 1 << 20


def file_hash(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(BLOCK_BYTES), b""):
            digest.update(block)
    return digest.hexdigest()


class BackgroundHashes:
    """The hashes of ``paths`` by resolved path, taken in a daemon thread from now on; a file
    that cannot be read is left out (whoever reads it reports the problem, and
    :meth:`result`'s caller hashes what is missing itself)."""

    def __init__(self, paths: list[Path]):
        self._paths = [Path(path) for path in paths]
        self._found: dict[str, str] = {}
        self._thread = threading.Thread(target=self._hash_all, name="nncli-hash", daemon=True)
        self._thread.start()

    def _hash_all(self) -> None:
        for path in self._paths:
            try:
                self._found[str(path.resolve())] = file_hash(path)
            except (OSError, ValueError, RuntimeError):  # (RuntimeError: a symlink loop)
                continue

    def result(self) -> dict[str, str]:
        self._thread.join()
        return dict(self._found)
