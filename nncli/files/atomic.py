"""Write files so that readers see the old version or the complete new one, never a part.

* :func:`atomic_write` — one file: a temporary file beside it, fsync, rename.
* :class:`FileSet` — several files that change together (a training run's model, history,
  metrics, config and checkpoint): every new version is written to a temporary file first;
  only then, with Ctrl-C/SIGTERM held back, a commit record is written, the temporary files
  are renamed over the old ones, and the record is removed. A process killed half-way through
  the renames (kill -9, power loss) leaves the record: whoever next takes the outputs' lock
  finishes the renames (:func:`recover`), and a reader can tell an incomplete set by it.
(:class:`nncli.files.lock.OutputLock` makes sure one process at a time writes a set of outputs;
:mod:`nncli.files.paths` checks beforehand that they can be written.)

Temporary files are named ``.NAME.PID-RANDOM.tmp``: the owner's process id tells a leftover of
a killed process (removed by the next run of the same outputs) from another process's write in
progress (never touched).
"""

from __future__ import annotations

import contextlib
import contextvars
import json
import os
import re
import signal
import tempfile
import threading
import time
from pathlib import Path
from typing import IO, Iterator

from nncli.errors import OutputError, UsageError
from nncli.files.paths import check_name_lengths, is_device

COMMIT_FORMAT = "nncli-commit"
MAX_COMMIT_RECORD_BYTES = 1 << 20  # a record names a handful of files: a few hundred bytes

# Tests only: seconds to sleep after each file of a set is written and between its renames,
# so that signals and kill -9 can be aimed at every step of a save. Unset in real use.
_TEST_PAUSE = float(os.environ.get("NNCLI_TEST_SAVE_PAUSE") or 0)

_ACTIVE: contextvars.ContextVar["FileSet | None"] = contextvars.ContextVar("nncli_file_set", default=None)


def _open_mode(mode: str) -> dict:
    return {} if "b" in mode else {"encoding": "utf-8", "newline": ""}


def _target(path: Path) -> Path:
    path = Path(path)
    if path.is_symlink():
        path = Path(os.path.realpath(path))  # replace the file the link points to, keep the link
    return path


def _cannot_write(path: Path, exc: OSError) -> OutputError:
    return OutputError(f"{path}: cannot write: {exc.strerror or exc}")


@contextlib.contextmanager
def atomic_write(path: Path, mode: str = "wb") -> Iterator[IO]:
    """Yield a temporary file beside ``path``; on success fsync it and rename it over ``path``.

    On any exception (Ctrl-C included) the temporary file is removed and ``path`` is untouched;
    an operating-system error (disk full, permissions) becomes an :class:`OutputError`. Inside
    :meth:`FileSet.collect` the file joins that set instead, and is renamed with the others.
    """
    active = _ACTIVE.get()
    if active is not None:
        with active.write(path, mode) as f:
            yield f
        return
    with FileSet() as files:
        with files.write(path, mode) as f:
            yield f
        files.commit()


class FileSet:
    """Files that change together or not at all; see the module's docstring.

    ``with FileSet(record) as files:`` then ``files.write(path)`` for each new file (or any
    :func:`atomic_write` inside ``files.collect()``), ``files.remove(path)`` for a file the set
    no longer has, and ``files.commit()``. Leaving the block without a commit removes the
    temporary files and changes nothing.
    """

    def __init__(self, record: Path | None = None, durable: bool = True):
        self.record = record  # the commit record; None for a single file (one rename is atomic)
        # False: scratch files read back at once by this process (a sweep trial's, whose driver
        # writes the trial folder durably): no fsync, which cost a trial up to a third of its time.
        self.durable = durable
        self._pending: list[tuple[Path, Path]] = []  # (temporary file, final path)
        self._removals: list[Path] = []

    def __enter__(self) -> "FileSet":
        return self

    def __exit__(self, *exc) -> None:
        self.discard()

    @contextlib.contextmanager
    def collect(self) -> Iterator["FileSet"]:
        """While active, every :func:`atomic_write` (model files, checkpoints, CSVs) joins this set."""
        token = _ACTIVE.set(self)
        try:
            yield self
        finally:
            _ACTIVE.reset(token)

    @contextlib.contextmanager
    def write(self, path: Path, mode: str = "wb") -> Iterator[IO]:
        path = _target(path)
        if is_device(path):
            try:
                with open(path, mode, **_open_mode(mode)) as f:
                    yield f
            except OSError as exc:
                if isinstance(exc, BrokenPipeError):
                    raise
                raise _cannot_write(path, exc) from None
            return
        check_name_lengths(path)  # before mkdir: a name the file system refuses creates no folder
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            fd, temp_name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.{os.getpid()}-", suffix=".tmp")
            os.chmod(temp_name, 0o666 & ~_umask())  # mkstemp makes 0600; give the usual permissions
        except OSError as exc:
            raise _cannot_write(path, exc) from None
        try:
            with os.fdopen(fd, mode, **_open_mode(mode)) as f:
                yield f
                f.flush()
                if self.durable:
                    os.fsync(f.fileno())
        except BaseException as exc:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(temp_name)
            if isinstance(exc, OSError) and not isinstance(exc, BrokenPipeError):
                raise _cannot_write(path, exc) from None
            raise
        self._pending.append((Path(temp_name), path))
        _pause()

    def remove(self, path: Path | None) -> None:
        """``path`` is no longer part of the set: it goes when the set is committed."""
        if path is not None:
            self._removals.append(Path(path))

    def commit(self) -> None:
        """Rename every temporary file over its final name and remove what the set dropped.

        Ctrl-C and SIGTERM are held back meanwhile (and acted on afterwards), so a signal
        cannot split the set; a kill -9 can, and leaves the commit record for :func:`recover`.
        """
        with signals_held():
            record = self.record if self.record is not None and len(self._pending) + len(self._removals) > 1 else None
            try:
                if record is not None:
                    _write_record(record, self._pending, self._removals)
                for temp, final in self._pending:
                    os.replace(temp, final)
                    _pause()
                for path in self._removals:
                    with contextlib.suppress(FileNotFoundError):
                        path.unlink()
                for folder in {final.parent for _, final in self._pending} | {p.parent for p in self._removals} if self.durable else ():
                    _sync_folder(folder)
                if record is not None:
                    record.unlink()
                    _sync_folder(record.parent)
            except OSError as exc:
                raise _cannot_write(Path(exc.filename or (record or "?")), exc) from None
            self._pending, self._removals = [], []

    def discard(self) -> None:
        for temp, _ in self._pending:
            with contextlib.suppress(OSError):
                os.unlink(temp)
        self._pending, self._removals = [], []


def _pause() -> None:
    if _TEST_PAUSE:
        time.sleep(_TEST_PAUSE)


def _sync_folder(folder: Path) -> None:
    """Make renames in ``folder`` durable (a crash after a commit must not undo it)."""
    with contextlib.suppress(OSError):
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def _write_record(record: Path, pending: list[tuple[Path, Path]], removals: list[Path]) -> None:
    """The commit record, fsynced before the first rename. One that is not whole (the process
    died while writing it) means no rename had begun."""
    document = {
        "format": COMMIT_FORMAT,
        "pid": os.getpid(),
        "replace": [[str(temp.absolute()), str(final.absolute())] for temp, final in pending],
        "remove": [str(p.absolute()) for p in removals],
    }
    fd = os.open(record, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o666)
    try:
        os.write(fd, json.dumps(document).encode())
        os.fsync(fd)
    finally:
        os.close(fd)
    _sync_folder(record.parent)


def _temp_pattern(name: str) -> re.Pattern:
    return re.compile(re.escape(f".{name}.") + r"(\d+)-[a-z0-9_]+\.tmp")


def recover(record: Path, run_files: list[Path]) -> bool:
    """Finish a commit a killed process left half-done (call with the outputs' lock held).

    Every file the record names was complete and fsynced before the record was written, so
    the renames are simply carried out. Only a temporary file of ``.NAME.PID-RANDOM.tmp`` form
    is ever renamed, onto its own NAME, in the record's folder or onto one of ``run_files``,
    and only ``run_files`` are removed, so a hand-made record can do nothing a commit of these
    outputs would not. Returns whether a record was found.
    """
    try:
        with open(record, "rb") as f:
            text = f.read(MAX_COMMIT_RECORD_BYTES + 1)
    except FileNotFoundError:
        return False
    except OSError as exc:
        raise UsageError(f"{record}: cannot read the commit record of an earlier run: {exc.strerror or exc}") from None
    try:
        document = json.loads(text) if len(text) <= MAX_COMMIT_RECORD_BYTES else None
    except (ValueError, RecursionError):
        document = None  # cut short while being written: no rename had begun
    try:
        _carry_out(document, os.path.realpath(record.parent), {os.path.realpath(p) for p in run_files})
        with contextlib.suppress(FileNotFoundError):
            record.unlink()
    except OSError as exc:
        raise OutputError(f"{record}: cannot finish the commit an earlier run left: {exc.strerror or exc}") from None
    _sync_folder(record.parent)
    return True


def _carry_out(document, folder: str, allowed: set[str]) -> None:
    if isinstance(document, dict) and document.get("format") == COMMIT_FORMAT:
        for entry in document.get("replace") or []:
            if not (isinstance(entry, list) and len(entry) == 2 and all(isinstance(p, str) for p in entry)):
                continue
            temp, final = Path(entry[0]), Path(entry[1])
            if temp.parent != final.parent or not _temp_pattern(final.name).fullmatch(temp.name):
                continue
            if os.path.realpath(final.parent) != folder and os.path.realpath(final) not in allowed:
                continue
            if temp.is_file() and not temp.is_symlink():
                os.replace(temp, final)
        for entry in document.get("remove") or []:
            if isinstance(entry, str) and os.path.realpath(entry) in allowed:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(entry)


def remove_stale_temporaries(path: Path) -> None:
    """Temporary files of ``path`` left by a killed process (kill -9). A temporary file whose
    owner (the pid in its name) still runs is another process's write in progress: kept."""
    path = _target(path)  # a link's temporary files are beside the file it points to
    try:
        names = os.listdir(path.parent)
    except OSError:
        return
    ours = _temp_pattern(path.name)
    legacy = re.compile(re.escape(f".{path.name}.") + r"[a-z0-9_]+\.tmp")  # nncli before owners were named
    for name in names:
        match = ours.fullmatch(name)
        if match is not None:
            if _alive(int(match.group(1))):
                continue
        elif not legacy.fullmatch(name):
            continue
        with contextlib.suppress(OSError):
            os.unlink(path.parent / name)


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError, ValueError):
        return pid > 0  # exists (another user's), or a number no process can have
    return True


@contextlib.contextmanager
def signals_held() -> Iterator[None]:
    """Hold Ctrl-C and SIGTERM back for a few system calls; act on them afterwards, as their
    handlers would have (a handler runs in the main thread only, so swapping it is enough)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    pending: list[int] = []
    previous = {}
    for signum in (signal.SIGINT, signal.SIGTERM):
        handler = signal.getsignal(signum)
        if handler is not None:  # None: installed outside Python, cannot be put back
            previous[signum] = signal.signal(signum, lambda s, frame: pending.append(s))
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
        for signum in pending:
            handler = previous[signum]
            if callable(handler):
                handler(signum, None)
            elif handler == signal.SIG_DFL:
                os.kill(os.getpid(), signum)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask
