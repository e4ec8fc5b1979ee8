"""The BLAS thread setting a command runs with: ``--threads N``, else ``NNCLI_THREADS``, else
automatic (core/threads.py chooses per matrix product, and by how many cores other processes
leave free: :class:`IdleCores`). Read here because core/ reads nothing from the environment or
the machine, and cli.py may not reach core/ itself (tests/test_architecture.py)."""

from __future__ import annotations

import contextlib
import os
import time
from typing import Iterator, NamedTuple, Optional

from nncli.core import threads
from nncli.errors import UsageError

ENVIRONMENT = "NNCLI_THREADS"
# OpenBLAS caps the count at the number it was built for (64 in NumPy's wheels); the bound only
# keeps an absurd value (which the C call could not even hold) from reaching it.
MAX_THREADS = 1024


def thread_setting(option: Optional[str]) -> Optional[int]:
    """The user's fixed thread count, or None for the automatic choice. The option wins over
    the environment variable; ``auto`` (or an empty variable) means automatic."""
    if option is not None:
        return _parsed(option, "--threads")
    text = os.environ.get(ENVIRONMENT)
    return None if text is None else _parsed(text, f"environment variable {ENVIRONMENT}")


def _parsed(text: str, where: str) -> Optional[int]:
    value = text.strip()
    if value.lower() in ("", "auto"):
        return None
    if not (value.isascii() and value.isdigit() and len(value) <= 6) or not 1 <= int(value) <= MAX_THREADS:
        shown = f"{where} {text[:40]!r}" if where == "--threads" else f"{where}={text[:40]!r}"
        raise UsageError(f"{shown}: expected a whole number of threads from 1 to {MAX_THREADS}, or auto")
    return int(value)


@contextlib.contextmanager
def blas_threads(option: Optional[str], reading_ahead: bool = False) -> Iterator[None]:
    """Run the block under the user's thread setting; the BLAS is left as it was afterwards.

    ``reading_ahead``: the command parses its input in a thread of its own while the network
    runs (tabular/prefetch.py), so auto leaves that parser a core: on 2 cores the products run
    on one thread. Two BLAS threads beside the parser's spun against it for the cores: a
    60,000-row `predict` took 1.9–2.4 s (3.2–3.9 CPU-s) against 1.6–1.7 s (2.0 CPU-s) on one."""
    setting = thread_setting(option)
    measure = IdleCores(reserved=1 if reading_ahead else 0) if setting is None else None
    with threads.configured(setting, measure, None if measure is None else measure.before_first_look):
        yield


def stream_threads(option: Optional[str], data: str):
    """:func:`blas_threads` for a command that streams ``data`` through the network: a CSV
    stream (stdin too) reads ahead in a thread, whose parser gets a core; a Parquet one does not."""
    from nncli.tabular.tables import is_parquet

    return blas_threads(option, reading_ahead=not is_parquet(data))


class CpuTimes(NamedTuple):
    """One reading: when, the busy seconds of the cores this process may run on (all processes
    together, since boot), and this process's own CPU seconds."""

    wall: float
    busy: float
    own: float


def free_cores(before: CpuTimes, after: CpuTimes, cores: int) -> Optional[float]:
    """Cores that processes other than this one left idle between two readings: ``cores`` less
    the busy time not spent by this process, per second. (This process's own threads do not
    count: it is the load of the others that makes a second BLAS thread wait for a core.)"""
    elapsed = after.wall - before.wall
    if elapsed <= 0:
        return None
    others = max(0.0, (after.busy - before.busy) - (after.own - before.own)) / elapsed
    return max(0.0, cores - others)


class IdleCores:
    """:func:`free_cores` since the previous call (the first: since construction), from Linux's
    ``/proc/stat``, over the cores this process may run on (``sched_getaffinity``: a taskset or
    a container's cpuset, not a CPU quota), less ``reserved``. Returns None where there is no /proc/stat (macOS,
    Windows): auto then chooses by size alone. A reading costs tens of microseconds;
    core/threads.py takes one at most once a second."""

    def __init__(self, reserved: int = 0):
        self.reserved = reserved  # cores this process's own other threads need (a parser reading ahead)
        cpus = os.sched_getaffinity(0) if hasattr(os, "sched_getaffinity") else set()
        self.cores = len(cpus)
        self.names = {f"cpu{cpu}".encode() for cpu in cpus}
        self.tick = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
        self.last = self.read()

    @property
    def before_first_look(self) -> Optional[float]:
        """Free cores to assume until the first reading (core/threads.FIRST_LOOK): the others
        idle, so that a reserved core is spared from the first product on; None (the size
        rule alone) when nothing is reserved or the cores are unknown."""
        return self.cores - self.reserved if self.reserved and self.cores else None

    def read(self) -> Optional[CpuTimes]:
        try:
            with open("/proc/stat", "rb") as stat:
                lines = stat.read().splitlines()
        except OSError:
            return None
        busy = 0
        for line in lines:
            fields = line.split()
            if fields and fields[0] in self.names:
                # user nice system idle iowait irq softirq steal (guest time is inside user):
                # all but idle and iowait is a core taken — steal too, by another virtual machine.
                ticks = [int(value) for value in fields[1:9]]
                busy += sum(ticks) - ticks[3] - ticks[4]
        return CpuTimes(time.monotonic(), busy / self.tick, time.process_time())

    def __call__(self) -> Optional[float]:
        now = self.read()
        before, self.last = self.last, now
        if before is None or now is None or not self.cores:
            return None
        free = free_cores(before, now, self.cores)
        return None if free is None else max(0.0, free - self.reserved)
