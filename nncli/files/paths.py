"""Where a file may be written, checked before the work that produces it: names the file
system accepts (with room for the temporary name every write goes through), existing folders
that can be written, devices, and whether two paths are one file."""

from __future__ import annotations

import os
from pathlib import Path

from nncli.errors import UsageError

# Bytes a temporary name adds to a file's name: "." + "." + pid (at most 10 digits) + "-" +
# 8 random characters + ".tmp". A file name must leave that much room below the file
# system's NAME_MAX (255 bytes on Linux), or its temporary file could not be created.
TEMP_NAME_EXTRA = 25


def is_device(path: Path) -> bool:
    """A device or pipe (-o /dev/stdout, /dev/null, a FIFO) cannot be replaced by renaming."""
    return path.exists() and not path.is_file()


def _name_max(folder: Path) -> int:
    try:
        return os.pathconf(folder, "PC_NAME_MAX")
    except (OSError, ValueError):
        return 255


def check_writable(path: Path) -> None:
    """Fail before the work, not after it, when its output file could not be written."""
    if not str(path):
        raise UsageError("the output path is empty")
    check_name_lengths(path)
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


def check_name_lengths(path: Path) -> None:
    """Every name in the path fits the file system (checked by length, before any system call
    could fail on it), and the file's own name leaves room for its temporary name."""
    name_max = _name_max(next((p for p in path.parents if _exists(p)), Path(".")))
    text = str(path)
    shown = text if len(text) <= 100 else f"{text[:60]}…{text[-30:]}"  # the line stays readable
    for part in path.parent.parts:
        if len(os.fsencode(part)) > name_max:
            raise UsageError(f"{shown}: a folder name is {len(os.fsencode(part))} bytes; the file system allows {name_max}")
    size = len(os.fsencode(path.name))
    if size > name_max - TEMP_NAME_EXTRA and not (_exists(path) and is_device(path)):
        raise UsageError(
            f"{shown}: the file name is {size} bytes; at most {name_max - TEMP_NAME_EXTRA} "
            f"(the file system allows {name_max}, and the file is written through a temporary name {TEMP_NAME_EXTRA} bytes longer)"
        )


def _exists(path: Path) -> bool:
    try:
        return path.exists()
    except OSError:  # a name too long, say
        return False


def same_file(a: Path, b: Path) -> bool:
    """Whether two paths name the same existing file (through links, too)."""
    try:
        return Path(a).exists() and Path(b).exists() and os.path.samefile(a, b)
    except OSError:
        return False
