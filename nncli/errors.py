"""Errors a user can act on.  ``cli.py`` turns each into one stderr line and an exit code.

Raise them where the problem is found, with the file, the place in it (field path, row and
column) and what was expected.  Anything else that escapes is a bug and keeps its traceback.
"""

from __future__ import annotations

import contextlib
from typing import Iterator

EXIT_FAILED = 1  # the run itself failed: divergence, I/O failure, a quality gate
EXIT_USAGE = 2  # bad invocation, config, data or model file
EXIT_INTERRUPTED = 130  # Ctrl-C / SIGTERM, as shells report SIGINT


class NncliError(Exception):
    exit_code = EXIT_USAGE
    label = "error"  # the word after "nncli:" on stderr

    def __init__(self, message: str):
        # Always one line: messages quote user data (YAML problems, cell values) that may not be.
        super().__init__(" ".join(str(message).split()))


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
        raise error(f"{path}: cannot read the {what}: {exc.strerror or exc}") from None
