"""The BLAS thread setting a command runs with: ``--threads N``, else ``NNCLI_THREADS``, else
automatic (core/threads.py chooses per matrix product). Read here because core/ reads nothing
from the environment, and cli.py may not reach core/ itself (tests/test_architecture.py)."""

from __future__ import annotations

import contextlib
import os
from typing import Iterator, Optional

from nncli.core import threads
from nncli.errors import UsageError

ENVIRONMENT = "NNCLI_THREADS"
# OpenBLAS caps the count at the number it was built for (64 in NumPy's wheels); the bound only
# keeps an absurd value (which the C call could not even hold) from reaching it.
MAX_THREADS = 1024


def thread_setting(option: Optional[int]) -> Optional[int]:
    """The user's fixed thread count, or None for the automatic choice. The option wins over
    the environment variable; ``NNCLI_THREADS=auto`` (or empty) means automatic."""
    if option is not None:
        return option  # typer has checked its range
    text = os.environ.get(ENVIRONMENT)
    if text is None or text.strip().lower() in ("", "auto"):
        return None
    value = text.strip()
    if not (value.isascii() and value.isdigit() and len(value) <= 6) or not 1 <= int(value) <= MAX_THREADS:
        raise UsageError(f"environment variable {ENVIRONMENT}={text[:40]!r}: expected a whole number of "
                         f"threads from 1 to {MAX_THREADS}, or auto")
    return int(value)


@contextlib.contextmanager
def blas_threads(option: Optional[int]) -> Iterator[None]:
    """Run the block under the user's thread setting; the BLAS is left as it was afterwards."""
    with threads.configured(thread_setting(option)):
        yield
