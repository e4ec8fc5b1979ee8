"""One process at a time writes a run's outputs."""

from __future__ import annotations

import contextlib
import fcntl
import os
from pathlib import Path
from typing import IO

from nncli.errors import OutputError, UsageError


class OutputLock:
    """An exclusive lock on a set of outputs, for the life of one process.

    The lock file (``.NAME.lock`` beside the model file NAME, or ``.model.npz.lock`` in a run
    folder) holds the owner's pid. ``flock`` locks belong to the open file and the kernel drops
    them when the process ends, however it ends (kill -9 included), so a lock never outlives
    its process. :meth:`release` removes the file; a killed process leaves it, holding no
    lock, and the next run takes it over.
    """

    def __init__(self, path: Path, output: Path):
        self.path = Path(path)
        self.output = output  # named in the message when the lock is taken
        self._file: IO | None = None
        self._created: list[Path] = []  # folders made for the lock, removed again if left empty

    def acquire(self) -> "OutputLock":
        missing = [p for p in [self.path.parent, *self.path.parent.parents] if not p.exists()]
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise OutputError(f"{self.output}: cannot write: cannot make the folder {self.path.parent}: {exc.strerror or exc}") from None
        self._created = missing
        while True:
            try:
                f = open(self.path, "a+", encoding="utf-8")
            except OSError as exc:
                self._remove_folders()
                raise OutputError(f"{self.output}: cannot write there (its lock file {self.path.name}): {exc.strerror or exc}") from None
            try:
                fcntl.flock(f.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                f.seek(0)
                owner = f.read(32).strip()
                f.close()
                self._remove_folders()
                who = f"pid {owner}" if owner.isdigit() else "pid unknown"
                raise UsageError(
                    f"{self.output}: another nncli process ({who}) is writing this run's files (lock {self.path}); "
                    "wait for it to finish, or choose another --output/--run-dir"
                ) from None
            # The file may have been removed by its previous owner between our open and our
            # lock: then we hold a lock on a file nobody else can find. Take the lock again.
            try:
                current = os.stat(self.path)
                mine = os.fstat(f.fileno())
                same = (current.st_dev, current.st_ino) == (mine.st_dev, mine.st_ino)
            except FileNotFoundError:
                same = False
            if same:
                break
            f.close()
        f.seek(0)
        f.truncate()
        f.write(f"{os.getpid()}\n")
        f.flush()
        self._file = f
        return self

    def release(self) -> None:
        if self._file is None:
            return
        with contextlib.suppress(OSError):
            os.unlink(self.path)  # before unlocking: a waiter then finds no file and retries
        self._file.close()
        self._file = None
        self._remove_folders()

    def _remove_folders(self) -> None:
        for folder in self._created:
            with contextlib.suppress(OSError):
                folder.rmdir()  # only if empty: the run wrote nothing there
        self._created = []
