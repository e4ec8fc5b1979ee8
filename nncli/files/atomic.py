"""Write files so that readers see the old version or the complete new one, never a part."""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path
from typing import IO, Iterator

from nncli.errors import OutputError, UsageError


@contextlib.contextmanager
def atomic_write(path: Path, mode: str = "wb") -> Iterator[IO]:
    """Yield a temporary file beside ``path``; on success fsync it and rename it over ``path``.

    On any exception (Ctrl-C included) the temporary file is removed and ``path`` is untouched;
    an operating-system error (disk full, permissions) becomes an :class:`OutputError`.
    """
    path = Path(path)
    if path.is_symlink():
        path = Path(os.path.realpath(path))  # replace the file the link points to, keep the link
    if path.exists() and not path.is_file():
        # A device or pipe (-o /dev/stdout, /dev/null, a FIFO) cannot be replaced by renaming:
        # write to it directly.
        try:
            with open(path, mode, **({} if "b" in mode else {"encoding": "utf-8", "newline": ""})) as f:
                yield f
        except OSError as exc:
            if isinstance(exc, BrokenPipeError):
                raise
            raise OutputError(f"{path}: cannot write: {exc.strerror or exc}") from None
        return
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, temp_name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        os.chmod(temp_name, 0o666 & ~_umask())  # mkstemp makes 0600; give the usual permissions
    except OSError as exc:
        raise OutputError(f"{path}: cannot write: {exc.strerror or exc}") from None
    try:
        with os.fdopen(fd, mode, **({} if "b" in mode else {"encoding": "utf-8", "newline": ""})) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(temp_name, path)
    except BaseException as exc:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temp_name)
        if isinstance(exc, OSError) and not isinstance(exc, BrokenPipeError):
            raise OutputError(f"{path}: cannot write: {exc.strerror or exc}") from None
        raise


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def check_writable(path: Path) -> None:
    """Fail before the work, not after it, when its output file could not be written."""
    if not str(path):
        raise UsageError("the output path is empty")
    if path.is_dir():
        raise UsageError(f"{path}: is a folder; give a file name, e.g. {path / ('out' + (path.suffix or '.out'))}")
    parent = path.parent
    for ancestor in [parent, *parent.parents]:
        if ancestor.exists():
            if not ancestor.is_dir():
                raise UsageError(f"{path}: cannot write there: {ancestor} is a file, not a folder")
            if not os.access(ancestor, os.W_OK | os.X_OK):
                raise UsageError(f"{path}: cannot write there: no write permission in {ancestor}")
            break


def same_file(a: Path, b: Path) -> bool:
    """Whether two paths name the same existing file (through links, too)."""
    try:
        return Path(a).exists() and Path(b).exists() and os.path.samefile(a, b)
    except OSError:
        return False
