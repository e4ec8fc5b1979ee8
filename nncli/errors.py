"""Errors a user can act on.  ``cli.py`` turns each into one stderr line and an exit code.

Raise them where the problem is found, with the file, the place in it (field path, row and
column) and what was expected; quote users' values with :func:`quoted` (short, escaped).
Anything else that escapes is a bug and keeps its traceback (cli.py also turns the operating
system's few unanswerable refusals into one line: a name too long, a full stdout, no memory).
"""

from __future__ import annotations

import contextlib
import errno
import os
import re
from typing import Any, Iterator

EXIT_FAILED = 1  # the run itself failed: divergence, I/O failure, a quality gate
EXIT_USAGE = 2  # bad invocation, config, data or model file
EXIT_INTERRUPTED = 130  # Ctrl-C / SIGTERM, as shells report SIGINT

MAX_QUOTE_CHARS = 80  # a value quoted in an error line: enough to recognise it, never a flood
# A whole error line. Values are shortened where they are quoted (quoted()); this cap is the net
# for any that are not, so a 10 MB value can never become a 10 MB line on a terminal or a CI log.
MAX_MESSAGE_CHARS = 2000
# Characters that act on a terminal or reorder what is shown: C0 and C1 controls (ESC, newline,
# carriage return, BEL …), DEL, zero-width and bidirectional marks, line/paragraph separators;
# and lone surrogates, which no output encoding can write.
_UNSAFE = re.compile(r"[\x00-\x1f\x7f-\x9f\u061c\u200b-\u200f\u2028-\u202e\u2060-\u2069\ufeff\ud800-\udfff]")


def escaped(text: str) -> str:
    r"""``text`` with every character in _UNSAFE written as Python escapes it (``\x1b``, ``\n``):
    safe to print on a terminal (the one rule for error lines and for what render shows)."""
    return _UNSAFE.sub(lambda m: m.group().encode("unicode_escape").decode("ascii"), text)


def one_line(message: Any) -> str:
    """A message made safe to print as one terminal line: whitespace runs (newlines too) folded
    to one space, control characters escaped (``\\x1b``), and at most MAX_MESSAGE_CHARS long."""
    text = str(message)
    if len(text) > 2 * MAX_MESSAGE_CHARS:  # fold and escape only what can be shown
        text = text[:MAX_MESSAGE_CHARS] + " … " + text[-MAX_MESSAGE_CHARS // 4:]
    text = escaped(" ".join(text.split()))  # (whitespace folded first: a newline becomes a space)
    if len(text) > MAX_MESSAGE_CHARS:
        keep = MAX_MESSAGE_CHARS - 30
        text = f"{text[:keep * 3 // 4]} … (shortened) … {text[-(keep // 4):]}"
    return text


def quoted(value: Any, limit: int = MAX_QUOTE_CHARS) -> str:
    """A user's value (a key, a cell, a name) quoted for an error message: in quotes, with control
    characters escaped as Python does, and cut in the middle when longer than ``limit``
    characters (its length is then given)."""
    text = str(value)
    if len(text) <= limit:
        return repr(text)
    tail = limit // 5
    return f"{text[: limit - tail - 1] + '…' + text[-tail:]!r} ({len(text):,} characters)"


class NncliError(Exception):
    exit_code = EXIT_USAGE
    label = "error"  # the word after "nncli:" on stderr

    def __init__(self, message: str):
        # Always one line: messages quote user data (YAML problems, cell values) that may not be.
        super().__init__(one_line(message))


class ConfigError(NncliError):
    """The YAML config or a --set override is wrong."""


class DataError(NncliError):
    """A CSV file is unreadable or does not fit the config/model."""


class ModelFileError(NncliError):
    """A model file is missing, corrupt, foreign or unsafe."""


class UsageError(NncliError):
    """The command line itself is wrong (a path that cannot be written, say)."""


class TrainingError(NncliError):
    """Training ran but failed (the loss diverged, the model could not be written)."""

    exit_code = EXIT_FAILED


class GateError(NncliError):
    """`evaluate --fail-under/--fail-over`: the model is worse than the bound asked for."""

    exit_code = EXIT_FAILED


class OutputError(NncliError):
    """A result could not be written (disk full, permissions, a vanished folder)."""

    exit_code = EXIT_FAILED


class InterruptedRun(NncliError):
    """Ctrl-C or SIGTERM stopped training; a checkpoint was written."""

    exit_code = EXIT_INTERRUPTED
    label = "interrupted"


@contextlib.contextmanager
def reading(path, error: type[NncliError], what: str) -> Iterator[None]:
    """Turn the operating system's complaints about reading ``path`` into one-line errors:
    ``what`` names the file as the user knows it ("config file", "CSV file", "model file")."""
    try:
        yield
    except FileNotFoundError:
        raise error(f"{path}: {what} not found") from None
    except IsADirectoryError:
        raise error(f"{path}: is a folder; expected a {what}") from None
    except OSError as exc:
        if exc.errno == errno.ENAMETOOLONG:
            raise error(name_too_long(path)) from None
        raise error(f"{path}: cannot read the {what}: {exc.strerror or exc}") from None


NAME_MAX_BYTES = 255  # one file name (a path component), on Linux, macOS and Windows alike
PATH_MAX_BYTES = 4096  # a whole path, on Linux


def name_too_long(path: Any) -> str:
    """The message for ENAMETOOLONG: which limit the path breaks, with the path shortened."""
    text = os.fsdecode(path) if isinstance(path, (bytes, os.PathLike)) else str(path)
    longest = max((len(os.fsencode(part)) for part in text.split(os.sep)), default=0)
    if longest > NAME_MAX_BYTES:
        why = f"a name in it is {longest:,} bytes long; file systems allow {NAME_MAX_BYTES}"
    else:
        why = f"the path is {len(os.fsencode(text)):,} bytes long; the system allows {PATH_MAX_BYTES:,}"
    return f"{quoted(text)}: file name too long ({why})"
