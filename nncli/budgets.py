"""Budgets: sizes checked before anything is read or allocated, so that no config, CSV or
model file, however written (or edited inside a checkpoint), can exhaust memory or crash the
process. Every wing reads them from here; this module imports nothing but the errors.

Each is a named constant with the reason for its value; the ones a legitimate user could
outgrow can be raised with an environment variable (documented in docs/config.md, docs/csv.md,
docs/parquet.md and docs/model-file.md, "Limits").
"""

from __future__ import annotations

import os
import re

from nncli.errors import UsageError

KiB, MiB, GiB = 1 << 10, 1 << 20, 1 << 30

# --- the YAML text -------------------------------------------------------------------------
# A config is a few hundred bytes; 1 MiB leaves room for long class_weights mappings. The file
# and every --set value count against it (a --set value of 10 MB is refused the same way).
MAX_CONFIG_BYTES = 1 * MiB  # NNCLI_MAX_CONFIG_BYTES
MAX_CONFIG_NODES = 100_000  # values after expanding YAML aliases: stops "billion laughs" files
# Sections nest 3 deep (training.schedule.name) and lists once more; PyYAML builds its tree
# recursively, so 5,000 nested `[` would overflow Python's stack before any check ran.
MAX_CONFIG_DEPTH = 32
# Digits of an integer literal: the largest integer a config can hold (a seed < 2**63) has 19.
# Longer ones are refused before conversion (Python refuses 4,300+ decimal digits with a
# ValueError; a 5,000-digit hex literal would otherwise pass, then break printing and JSON).
MAX_INT_DIGITS = 30

# --- the network a config asks for ---------------------------------------------------------
# Weights and biases at the config's dtype. Training keeps about four copies (weights,
# gradients, optimizer state, the best epoch's weights), so the default already means ~16 GiB
# of RAM; the model file's loader accepts arrays up to 2**30 float32 values, the same 4 GiB.
MAX_NETWORK_BYTES = 4 * GiB  # NNCLI_MAX_NETWORK_BYTES
# One batch's training buffers: batch rows × every layer's width (pre-activations, gradients
# flowing back, the batch's copy of the inputs), at the config's dtype.
MAX_BATCH_BYTES = 4 * GiB  # NNCLI_MAX_BATCH_BYTES
# One layer: what a NumPy dimension can hold (the budget above is what bites in practice).
MAX_LAYER_SIZE = 2**63 - 1
# Layers from input to output: deeper plain MLPs do not train, and the model file stores two
# arrays per layer.
MAX_LAYERS = 1_000

# --- numbers: bounds a legitimate config never reaches, so every value stays printable,
# storable as JSON and cheap to compute with --------------------------------------------------
# Epochs (and every count of epochs: warmup, patience, step_size, checkpoint_every). The model
# file keeps one history record per epoch (~200 bytes): 100,000 epochs is ~20 MB of metadata,
# within what its loader accepts (64 MiB).
MAX_EPOCHS = 100_000
MAX_BATCH_SIZE = 1_000_000_000  # rows; a batch larger than the data simply means all of it
# Initial weights (constant value, uniform limit, normal std): finite in float32 with room to
# spare; weights even near this size saturate or overflow every activation.
MAX_INIT_SCALE = 1e6
# A class weight: a sample counting a million times more than another is already extreme.
MAX_CLASS_WEIGHT = 1e6
MAX_PATH_CHARS = 4096  # a path longer than the system's PATH_MAX cannot be opened

DTYPE_BYTES = {"float32": 4, "float64": 8}
# The largest budget an environment variable may set: 2**60 (1 EiB) still fits every index and
# size NumPy and the operating system take, so no budget can overflow where it is used.
MAX_BUDGET = 1 << 60

# Classes of a classification target (train) and of a model file (predict, evaluate): a column
# with more distinct labels is almost surely an ID or a regression target, and the one-hot
# targets and per-class scores grow with it.
MAX_CLASSES = 1_000  # NNCLI_MAX_CLASSES
# A categorical column with more distinct values than this cannot be allowed by raising
# data.max_categories: 10,000 one-hot inputs is already a layer of 10,000 × width weights per
# column, and a column with that many values is an ID or free text (drop it), not a category.
MAX_CATEGORIES = 10_000
# Missing-value tokens are cells such as "NA": a few short strings compared with every cell.
MAX_MISSING_TOKENS, MAX_TOKEN_CHARS = 100, 100


def class_budget() -> int:
    return budget("NNCLI_MAX_CLASSES", MAX_CLASSES)


# --- Parquet files: checked from the file's footer before polars decodes anything ------------
# The footer (schema and row groups) is read whole, by nncli and then by polars: 64 MiB holds
# ~400,000 column chunks (~160 bytes each with statistics): 100,000 columns in 4 row groups,
# 1,000 in 400.
MAX_PARQUET_METADATA_BYTES = 64 * MiB  # NNCLI_MAX_PARQUET_METADATA
# Columns (schema elements below the root): as many as the CSV readers' line budget admits of
# long floats (docs/csv.md, Limits); polars' cost grows with them (~14 µs and 2.4 KB a column
# for every read). A CSV file's columns are bounded by its line budget instead.
MAX_PARQUET_COLUMNS = 100_000  # NNCLI_MAX_COLUMNS


def parquet_metadata_budget() -> int:
    return budget("NNCLI_MAX_PARQUET_METADATA", MAX_PARQUET_METADATA_BYTES)


def parquet_column_budget() -> int:
    return budget("NNCLI_MAX_COLUMNS", MAX_PARQUET_COLUMNS)


_SIZE = re.compile(r"\s*(\d+(?:\.\d+)?)\s*([KMGT]i?B?|B)?\s*", re.IGNORECASE)


def budget(name: str, default: int) -> int:
    """A budget in bytes: ``default``, or the environment variable ``name`` (e.g. `8G`, `512MiB`,
    `1000000`; K/M/G/T are binary multiples)."""
    text = os.environ.get(name)
    if text is None or not text.strip():
        return default
    match = _SIZE.fullmatch(text) if len(text) < 40 else None
    if match is None:
        raise UsageError(f"environment variable {name}={text[:40]!r}: expected a number such as 8G, 512MiB or 5000")
    unit = (match.group(2) or "B")[0].upper()
    value = int(float(match.group(1)) * {"B": 1, "K": KiB, "M": MiB, "G": GiB, "T": 1 << 40}[unit])
    if value < 1:  # 0 would refuse everything: a typo more likely than a wish
        raise UsageError(f"environment variable {name}={text[:40]!r}: expected a positive number")
    if value > MAX_BUDGET:
        raise UsageError(f"environment variable {name}={text[:40]!r}: at most {human_bytes(MAX_BUDGET)} (a number an index can hold)")
    return value


def config_bytes() -> int:
    return budget("NNCLI_MAX_CONFIG_BYTES", MAX_CONFIG_BYTES)


def network_bytes() -> int:
    return budget("NNCLI_MAX_NETWORK_BYTES", MAX_NETWORK_BYTES)


def batch_bytes() -> int:
    return budget("NNCLI_MAX_BATCH_BYTES", MAX_BATCH_BYTES)


def human_bytes(n: int | float) -> str:
    """1 MiB, 4 GiB, 256 TiB: binary units, as the budgets are written."""
    if n >= 1 << 70:
        return "more than 1,000 EiB"
    for unit, size in (("EiB", 1 << 60), ("PiB", 1 << 50), ("TiB", 1 << 40), ("GiB", GiB), ("MiB", MiB), ("KiB", KiB)):
        if n >= size:
            value = n / size
            return f"{value:,.0f} {unit}" if value >= 100 or value == int(value) else f"{value:.1f} {unit}"
    return f"{int(n)} bytes"


# --- the machine's own budget: memory this process may still take (data.in_memory: auto) ---
def available_memory() -> int:
    """Bytes this process may still take: the least of the machine's available memory, its
    control group's limit (a container, a CI job) and its address-space limit (``ulimit -v``)."""
    limits = [_meminfo_available()]
    limits.append(_cgroup_room())
    try:
        import resource  # (Unix only)

        soft, _ = resource.getrlimit(resource.RLIMIT_AS)
        if soft != resource.RLIM_INFINITY:
            limits.append(soft - _vm_size())
    except (ImportError, OSError, ValueError):
        pass
    known = [limit for limit in limits if limit is not None]
    return max(0, min(known)) if known else MAX_BUDGET  # (nothing known, macOS say: assume room)


def _meminfo_available() -> int | None:
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return None


def memory_cgroups() -> list[tuple[str, str, str]]:
    """(folder, limit file, usage file) of each memory control group this process is in:
    cgroup v2's unified hierarchy, and v1's memory controller."""
    try:
        with open("/proc/self/cgroup") as f:
            entries = [line.rstrip("\n").split(":", 2) for line in f]
    except OSError:
        return []
    groups = []
    for hierarchy, controllers, path in entries:
        if hierarchy == "0":
            groups.append((f"/sys/fs/cgroup{path}", "memory.max", "memory.current"))
        elif "memory" in controllers.split(","):
            groups.append((f"/sys/fs/cgroup/memory{path}", "memory.limit_in_bytes", "memory.usage_in_bytes"))
    return groups


def _cgroup_room() -> int | None:
    """Room left under this process's memory control group limit, if it has one."""
    for folder, limit_file, usage_file in memory_cgroups():
        limit, usage = _read_int(f"{folder}/{limit_file}"), _read_int(f"{folder}/{usage_file}")
        if limit is not None and usage is not None and limit < 1 << 60:
            return limit - usage
    return None


def _read_int(path: str) -> int | None:
    try:
        with open(path) as f:
            return int(f.read().strip())
    except (OSError, ValueError):
        return None  # "max", or no such file


def _vm_size() -> int:
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[0]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return 0
