"""The `init` service: a starter config for a data file, with every guess explained beside it.

The guesses come from the file's first rows: a column of numbers is a feature; a column holding
text is categorical (one-hot encoded) unless it has too many distinct values to be categories
(free text) or a different value in every row (an ID); a column with one value is dropped; the
target's values decide classification or regression. The config is written as text, comments
and all, so that a person can read why each key says what it says, and change it.
"""

from __future__ import annotations

import contextlib
import difflib
import json
import math
import os
import re
import shlex
import stat
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

from nncli.config.schema import DataConfig
from nncli.errors import DataError, UsageError, escaped, quoted
from nncli.files.atomic import atomic_write
from nncli.files.paths import check_writable, same_file
from nncli.tabular.labels import check_class_count
from nncli.tabular.parquet import text_blocks
from nncli.tabular.parse import as_number, listed, numbered_rows, read_line
from nncli.tabular.selection import table_header
from nncli.tabular.tables import header_place, is_parquet

# Guesses are made from at most this many cells of the file's first rows (all of a file of up
# to a million cells: 15,000 rows of 64 columns, 1,275 rows of 784). Reading them with the csv
# module takes about 2 s at worst (100,000 rows of 10 different floats each) and 80 MB; the
# distinct values of a column are kept only while they can still matter (ColumnStats.add).
SAMPLE_CELLS = 1_000_000
ROWS_PER_BLOCK = 4096  # rows read before their columns are counted (Counter per column)
# A target of whole numbers with at most this many distinct values is taken for class labels
# (digits 0-9, a 1-5 rating); more, and it is a quantity to predict (regression).
MAX_INTEGER_CLASSES = 20
# Fewer rows than this, and a column of all-different values is just a small table (and
# holding out a fifth for validation would leave too little to train on).
MIN_ROWS_FOR_ID = 20
MIN_ROWS_TO_SPLIT = 20
VALIDATION_SPLIT = 0.2
HIDDEN_NEURONS = 32
# Adam at 0.01 trains the shipped tables to their usual scores within 20-60 epochs (iris 93 %,
# digits 98 %, diabetes R² 0.41); 0.001 needs more than 100 epochs on iris.
LEARNING_RATE = 0.01
EPOCHS, BATCH_SIZE = 100, 32
# A file larger than the sample (over a million cells): an epoch takes a while, and bigger
# batches make each one cheaper.
BIG_FILE_EPOCHS, BIG_FILE_BATCH_SIZE, BIG_FILE_PATIENCE = 10, 256, 3
PATIENCE = 10  # early stopping: epochs without a better validation loss
COMMENT_COLUMN = 30  # comments start here (or two spaces after a longer line)
CLOSE_MATCH_COLUMNS = 10_000  # "did you mean": compared with every column name, up to this many
_WHOLE_NUMBER = re.compile(r"[-+]?[0-9]+")


@dataclass
class ColumnStats:
    """What the sampled rows say about one column."""

    name: str
    keep_all: bool = False  # the target: every distinct value is kept (they are its labels)
    cells: int = 0  # cells that are not missing
    missing: int = 0
    text_cells: int = 0  # cells that are not numbers
    text_example: str | None = None
    fractional: bool = False  # a number that is not written as a whole number (2.5, 1e3)
    repeated: bool = False  # a value seen twice
    distinct: dict[str, int] | None = field(default_factory=dict)  # value -> count; None: too many to matter
    ordered: bool = True  # whole numbers only, rising (or falling) from row to row, as row numbers do
    _last: int | None = None  # (for ordered: the last whole number, and whether they rise)
    _rising: bool | None = None

    def add(self, cells: tuple[str | None, ...], missing_values: frozenset[str], limit: int) -> None:
        """Count one block of the column's cells (in the file's order; None: a Parquet null)."""
        for cell, count in Counter(cells).items():
            if cell is None or cell.strip() in missing_values:
                self.missing += count
                continue
            text = cell.strip()
            self.cells += count
            if self.distinct is not None:  # (without surrounding spaces: train reads " red" as "red")
                seen = self.distinct.get(text, 0)
                self.repeated |= seen > 0 or count > 1
                self.distinct[text] = seen + count
            if not math.isfinite(as_number(text)):
                self.text_cells += count
                self.text_example = self.text_example if self.text_example is not None else cell
            elif not _WHOLE_NUMBER.fullmatch(text):
                self.fractional = True
        # Neither an ID (a value repeats) nor categories (more than the limit): counts no longer matter.
        if not self.keep_all and self.repeated and self.distinct is not None and len(self.distinct) > limit:
            self.distinct = None
        if self.ordered:
            self.ordered = not (self.repeated or self.missing or self.fractional or self.text_cells) and self._in_order(cells)

    def _in_order(self, cells: tuple[str, ...]) -> bool:
        numbers = ([] if self._last is None else [self._last]) + [int(cell) for cell in cells]
        steps = {a < b for a, b in zip(numbers, numbers[1:])}  # (no two are equal: none repeats)
        if len(steps) > 1 or (steps and self._rising is not None and steps != {self._rising}):
            return False
        self._last = numbers[-1]
        self._rising = steps.pop() if steps else self._rising
        return True

    @property
    def values(self) -> int | None:
        """How many distinct values; None: more than the limit."""
        return None if self.distinct is None else len(self.distinct)


@dataclass
class Sample:
    columns: dict[str, ColumnStats]
    rows: int
    whole_file: bool  # every row was read


@dataclass
class Guess:
    column: str
    role: str  # feature | categorical | drop
    why: str


@dataclass
class StarterConfig:
    """The config `nncli init` wrote (``path``), or prints (``path`` None)."""

    text: str
    path: Path | None
    data: Path
    target: str
    task: str  # classification | regression
    classes: list[str]
    rows: int
    whole_file: bool
    guesses: list[Guess]
    missing: str | None = None  # data.missing, when cells are missing
    missing_why: str = ""
    gaps: list[str] = field(default_factory=list)  # the columns read with missing cells

    def role(self, role: str) -> list[str]:
        return [guess.column for guess in self.guesses if guess.role == role]

    def summary(self) -> list[str]:
        """What was written and guessed, for the terminal (the file says why)."""
        numbers, categorical = self.role("feature"), self.role("categorical")
        inputs = [_count(len(numbers), "number")] if numbers else []
        inputs += [f"{len(categorical):,} categorical ({_names(categorical, 2)})"] if categorical else []
        task = f"{self.task} of {listed([self.target])}" + (f", {_values(self.classes, noun='class')}" if self.classes else "")
        lines = [f"Wrote {escaped(str(self.path))} from the {_rows_read(self.rows, self.whole_file)} of {escaped(str(self.data))}",
                 f"  task      {task}",
                 f"  features  {', '.join(inputs)}"]
        dropped = [guess for guess in self.guesses if guess.role == "drop"]
        if dropped:
            lines.append(f"  dropped   {'; '.join(f'{listed([g.column])}: {g.why}' for g in dropped[:3])}"
                         + (f"; … ({len(dropped):,} in all)" if len(dropped) > 3 else ""))
        if self.missing:
            lines.append(f"  missing   {self.missing}: empty cells in {_count(len(self.gaps), 'column')}")
        lines.append(f"Every guess is explained in the file. Next: nncli train {escaped(shlex.quote(str(self.path)))}")
        return lines


def init(data: Path, target: str, output: str | None = None, force: bool = False) -> StarterConfig:
    """`nncli init DATA --target COLUMN`: write a starter config for ``data`` to ``output``
    (default: ``<data stem>.yaml`` beside the data; ``-``: returned for stdout, nothing written).
    An existing config is replaced only with ``force``."""
    _check_data_file(data)
    destination = _destination(data, output)
    header = table_header(data)
    _check_target(data, header, target)
    defaults = DataConfig.model_fields
    missing_values = frozenset(defaults["missing_values"].get_default(call_default_factory=True))
    max_categories = defaults["max_categories"].get_default(call_default_factory=True)
    sample = read_sample(data, header, target, missing_values, max(max_categories, MAX_INTEGER_CLASSES))
    if sample.rows == 0:
        raise DataError(f"{data}: no data rows after the header; nncli init guesses the config from the data")
    task, classes, target_why = guess_task(data, sample.columns[target], sample)
    guesses = [guess_column(sample.columns[name], sample, max_categories) for name in header if name != target]
    if not any(guess.role != "drop" for guess in guesses):
        reasons = "; ".join(f"{quoted(g.column)}: {g.why}" for g in guesses[:3]) or "it has no other column"
        raise DataError(f"{data}: no column is left to learn {quoted(target)} from ({reasons})")
    result = StarterConfig("", destination, data, target, task, classes, sample.rows, sample.whole_file, guesses)
    result.gaps = [name for name in header if sample.columns[name].missing and
                   (name == target or next(g for g in guesses if g.column == name).role != "drop")]
    result.missing, result.missing_why = guess_missing(sample, target, result.gaps)
    result.text = config_text(result, sample, target_why)
    if destination is not None:
        if destination.exists() and not force:
            raise UsageError(f"{destination}: already exists; nncli init does not overwrite it (--force replaces it)")
        with atomic_write(destination, "w") as f:
            f.write(result.text)
    return result


def _check_data_file(data: Path) -> None:
    """init reads a file, twice (its header, then its rows), and writes the config beside it:
    standard input, a pipe or a device (``/dev/stdin``) is neither read twice nor a place for
    a config."""
    if str(data) == "-":
        raise UsageError("nncli init needs a data file: standard input ('-') is not supported; save the data to a file first")
    try:
        mode = os.stat(data).st_mode
    except OSError:
        return  # (not found, not readable: table_header says so)
    if not stat.S_ISREG(mode) and not stat.S_ISDIR(mode):
        raise DataError(f"{data}: not a regular file (a pipe or a device); nncli init reads a data file, "
                        "twice, and writes the config beside it: save the data to a file first")


def _destination(data: Path, output: str | None) -> Path | None:
    if output == "-":
        return None
    if output is not None and not output.strip():
        raise UsageError("-o: the config's file name is empty")
    path = Path(output) if output is not None else data.parent
    # An existing folder, or a name ending in a separator (a folder, created when the config
    # is written): the config's usual name, in that folder.
    if path.is_dir() or (output is not None and output.endswith(tuple(filter(None, ("/", os.sep, os.altsep))))):
        path = path / f"{data.stem}.yaml"
    if same_file(path, data):
        raise UsageError(f"{path}: is the data file; write the config elsewhere")
    check_writable(path)
    return path


def _check_target(data: Path, header: list[str], target: str) -> None:
    if target in header:
        return
    close: list[str] = []
    if len(header) <= CLOSE_MATCH_COLUMNS:
        close = [name for name in header if name.lower() == target.lower()]
        close += [name for name in difflib.get_close_matches(target, header, n=3) if name not in close]
    hint = f"did you mean {' or '.join(quoted(name) for name in close[:3])}?" if close else f"columns are: {listed(header, 8)}"
    raise DataError(f"{header_place(data)}: --target {quoted(target)}: no such column; {hint}")


def read_sample(path: Path, header: list[str], target: str, missing_values: frozenset[str], limit: int) -> Sample:
    """Count the values of the file's first rows (at most SAMPLE_CELLS cells)."""
    columns = {name: ColumnStats(name, keep_all=name == target) for name in header}
    stats = list(columns.values())
    most = max(1, SAMPLE_CELLS // len(header))
    rows, whole_file = 0, True
    blocks = _parquet_blocks(path, most + 1) if is_parquet(path) else _csv_blocks(path, header, most + 1)
    for block in blocks:  # (one more row than the sample: is there more?)
        count = len(block[0])
        if rows + count > most:
            whole_file, count = False, most - rows
        for column, cells in zip(stats, block):
            column.add(tuple(cells[:count]), missing_values, limit)
        rows += count
        if not whole_file:
            break
    return Sample(columns, rows, whole_file)


def _csv_blocks(path: Path, header: list[str], rows: int) -> Iterator[list[tuple[str, ...]]]:
    """The first ``rows`` rows of a CSV file, ROWS_PER_BLOCK at a time, as columns of cells."""
    block: list[list[str]] = []
    with contextlib.closing(numbered_rows(_lines(path), str(path))) as records:
        for line, row in records:
            if not row:
                continue  # a blank line, skipped as the readers skip it
            if len(row) != len(header):
                raise DataError(f"{path}:{line}: row has {len(row):,} field{'s' * (len(row) != 1)} but the header has {len(header):,} columns")
            block.append(row)
            rows -= 1
            if len(block) == ROWS_PER_BLOCK or rows == 0:
                yield list(zip(*block))
                block = []
            if rows == 0:
                return
    if block:
        yield list(zip(*block))


def _parquet_blocks(path: Path, rows: int) -> Iterator[list[list[str | None]]]:
    """The first ``rows`` rows of a Parquet file, ROWS_PER_BLOCK at a time, as columns of text
    cells (as a CSV file of the same table holds them; None: a null, a missing cell)."""
    for read in text_blocks(path, rows):
        for start in range(0, len(read[0]), ROWS_PER_BLOCK):
            yield [cells[start : start + ROWS_PER_BLOCK] for cells in read]


def _lines(path: Path) -> Iterator[str]:
    """The lines after the header, each within the line budget (read_line), decoded."""
    with open(path, "rb") as f:
        read_line(f, str(path), 1)
        number = 2
        while raw := read_line(f, str(path), number):
            try:
                yield raw.decode("utf-8")
            except UnicodeDecodeError as exc:
                raise DataError(f"{path}:{number}: not UTF-8 text (byte {exc.start + 1} of the line); expected a CSV file") from None
            number += 1


def guess_task(data: Path, stats: ColumnStats, sample: Sample) -> tuple[str, list[str], str]:
    """(classification | regression, the class labels, why) from the target's values."""
    name = quoted(stats.name)
    if stats.cells == 0:
        raise DataError(f"{data}: --target {name}: every cell is empty in the {_rows_read(sample.rows, sample.whole_file)}; nothing to learn")
    labels = sorted({value.strip() for value in stats.distinct})
    if stats.text_cells:
        check_class_count(len(labels), stats.name, str(data))
        if len(labels) < 2:
            raise DataError(f"{data}: --target {name}: one label ({quoted(labels[0])}) in the {_rows_read(sample.rows, sample.whole_file)}; a classifier needs two or more")
        return "classification", labels, f"text labels, {_values(labels)}: classification"
    whole = not stats.fractional and len({int(label) for label in labels}) == len(labels)  # (no "1" and "01")
    if whole and 2 <= len(labels) <= MAX_INTEGER_CLASSES:
        labels = sorted(labels, key=int)
        return "classification", labels, (f"whole numbers, {_values(labels)}: class labels, so classification "
                                          "(for a quantity, loss: mse)")
    return "regression", [], f"numbers, {_count(len(labels), 'distinct value')}: regression"


def guess_column(stats: ColumnStats, sample: Sample, max_categories: int) -> Guess:
    """feature, categorical or drop, and why, for one column that is not the target."""
    name, values, rows = stats.name, stats.values, sample.rows
    if stats.cells == 0:
        return Guess(name, "drop", f"every cell is empty in the {_rows_read(rows, sample.whole_file)}")
    # (Only in a file read whole: a sparse column, pixels at an image's edge say, may hold one
    # value in the first rows and others later.)
    if values == 1 and rows >= 2 and sample.whole_file:
        value = quoted(next(iter(stats.distinct)), 30)
        if stats.missing:
            return Guess(name, "drop", f"one value ({value}) besides empty cells: nothing to learn from")
        return Guess(name, "drop", f"the same value ({value}) in every row: nothing to learn from")
    # A different value in every row: text (a name, a code) is an ID; whole numbers are one
    # when they also rise (or fall) row after row, as row numbers do, not a measurement (a price).
    if rows >= MIN_ROWS_FOR_ID and not stats.repeated and not stats.missing and (stats.text_cells or stats.ordered):
        why = "a different value in every row" if stats.text_cells else "a different number in every row, in order"
        return Guess(name, "drop", f"{why}: looks like an ID")
    gaps = f", {stats.missing:,} empty" if stats.missing else ""
    if stats.text_cells:
        if values is None or values > max_categories:
            return Guess(name, "drop", f"free text: more than {max_categories} distinct values (data.max_categories)")
        kind = "text" if stats.text_cells == stats.cells else f"text and numbers (e.g. {quoted(stats.text_example, 30)})"
        return Guess(name, "categorical", f"{kind}, {_values(sorted(stats.distinct))}{gaps}")
    return Guess(name, "feature", f"numbers{gaps}")


def guess_missing(sample: Sample, target: str, gaps: list[str]) -> tuple[str | None, str]:
    """data.missing, and why, from the columns read with missing cells (None: there are none)."""
    missing = sample.columns[target].missing
    if missing:  # (a row without its target cannot train: no fill helps)
        return "drop_rows", f"{_count(missing, 'row')} without a target: rows with an empty cell are left out"
    if gaps:
        return "mean", (f"empty cells in {_names(gaps, 2)}: each filled with its column's mean "
                        "(text: the most frequent value)")
    return None, ""


def _values(values: list[str], shown: int = 4, noun: str = "value") -> str:
    """"3 values (a, b, c)", "12 values (a, b, c, d, …)"."""
    return f"{_count(len(values), noun)} ({_names(values, shown, total=False)})"


def _names(names: list[str], shown: int = 3, total: bool = True) -> str:
    """"a, b, c" or "a, b, c, … (12 in all)"; a single name left is shown, not hidden by "…"."""
    if len(names) <= shown + 1:
        return listed(names, shown + 1)
    return listed(names[:shown]) + (f", … ({len(names):,} in all)" if total else ", …")


def _count(number: int, noun: str) -> str:
    return f"{number:,} {noun}" if number == 1 else f"{number:,} {noun}{'es' if noun.endswith('s') else 's'}"


def _rows_read(rows: int, whole_file: bool) -> str:
    return _count(rows, "row") if whole_file else f"first {rows:,} rows"


# --- the YAML text ----------------------------------------------------------------------------
class _Lines:
    """YAML lines with their comments lined up."""

    def __init__(self) -> None:
        self.lines: list[str] = []

    def add(self, text: str, comment: str = "") -> None:
        if comment:
            comment = _comment(comment)
            text = f"{text.ljust(COMMENT_COLUMN - 1)} # {comment}" if len(text) < COMMENT_COLUMN - 1 else f"{text}  # {comment}"
        self.lines.append(text)

    def note(self, text: str) -> None:
        self.lines.append(f"# {_comment(text)}")

    def text(self) -> str:
        return "\n".join(self.lines) + "\n"


def config_text(result: StarterConfig, sample: Sample, target_why: str) -> str:
    columns = sample.columns
    target = columns[result.target]
    kept = [guess for guess in result.guesses if guess.role != "drop"]
    numbers = [guess.column for guess in kept if guess.role == "feature"]
    categorical = [guess for guess in kept if guess.role == "categorical"]
    dropped = [guess for guess in result.guesses if guess.role == "drop"]
    folder = Path(".") if result.path is None else result.path.parent
    regression = result.task == "regression"
    out = _Lines()
    where = (f"nncli train {shlex.quote(str(result.path))}" if result.path is not None else
             "save it in the folder nncli init ran in (its paths are relative to that folder)")
    out.note(f"A starter config for {result.data.name}, written by nncli init from its {_rows_read(sample.rows, sample.whole_file)}.")
    out.note("Each guess says why it was made; change anything (every key: docs/config.md), then")
    out.note(f"  {where}")
    out.add("seed: 0", "the same seed trains the same model; change it for another draw")
    out.add("data:")
    out.add(f"  train: {_scalar(_relative(result.data, folder))}",
            "relative to this file's folder" if result.path is not None else "relative to the current folder")
    out.add(f"  target: {_scalar(result.target)}", target_why)
    inputs = [f"{_count(len(numbers), 'number')} ({_names(numbers, 2)})"] if numbers else []
    inputs += [f"{len(categorical):,} text ({_names([guess.column for guess in categorical], 2)})"] if categorical else []
    out.add("  features: null", f"the other columns: {' and '.join(inputs)}")
    if dropped:
        out.add("  drop:")
        for guess in dropped:
            out.add(f"    - {_scalar(guess.column)}", guess.why)
    if categorical:
        out.add("  categorical:", "text columns: one input per value (one-hot)")
        for guess in categorical:
            out.add(f"    - {_scalar(guess.column)}", guess.why)
    if result.missing:
        out.add(f"  missing: {result.missing}", result.missing_why)
    else:
        out.add("  # missing: mean", (f"no empty cells in the {_rows_read(sample.rows, sample.whole_file)}; this would fill any"))
    split = _validation_split(result, target.cells)
    out.add(f"  validation_split: {split[0]}", split[1])
    out.add("  normalize: standard", "numbers to mean 0 and standard deviation 1 (training rows' statistics)")
    if regression:
        out.add("  normalize_target: standard", "learn in standard units; predictions come back in the target's own")
    out.add("model:")
    last = "one per class" if not regression else "one output"
    out.add(f"  layers: [auto, {HIDDEN_NEURONS}, auto]", f"inputs (one per number, one per category), {HIDDEN_NEURONS} hidden, {last}")
    out.add("  activation: relu")
    out.add("training:")
    out.add(f"  loss: {'mse' if regression else 'cross_entropy'}",
            "regression: mean squared error" if regression else "classification: softmax output, one probability per class")
    out.add("  optimizer: adam", "adapts each weight's step: forgiving of the learning rate")
    out.add(f"  learning_rate: {LEARNING_RATE}")
    epochs, batch_size = (EPOCHS, BATCH_SIZE) if result.whole_file else (BIG_FILE_EPOCHS, BIG_FILE_BATCH_SIZE)
    big = "" if result.whole_file else "a big file: a few passes to start with"
    stops = "at most; early stopping may end sooner" if split[0] else ""
    out.add(f"  epochs: {epochs}", "; ".join(part for part in (big, stops) if part))
    out.add(f"  batch_size: {batch_size}", "rows per step" + (": larger for a big file" if big else ""))
    if split[0]:
        patience = PATIENCE if result.whole_file else BIG_FILE_PATIENCE
        out.add(f"  early_stopping: {{patience: {patience}}}",
                f"stop after {patience} epochs without a better val_loss; keep the best epoch's weights")
    model_name = f"{(result.path or result.data).stem}.npz"
    out.add(f"output: {_scalar(_relative(Path('runs') / model_name, folder))}",
            "the model file (runs/ in the folder nncli init ran in)")
    return out.text()


def _validation_split(result: StarterConfig, rows: int) -> tuple[float, str]:
    if rows < MIN_ROWS_TO_SPLIT:
        return 0, f"only {_count(rows, 'row')}: all of them train (and are scored)"
    held = round(rows * VALIDATION_SPLIT)
    if result.task == "classification" and rows - held < len(result.classes):
        return 0, f"{len(result.classes):,} classes in {rows:,} rows: too few to hold some out"
    # (drop_rows: how many rows remain is known once the rows with any empty cell are left out)
    exact = result.whole_file and result.missing != "drop_rows"
    what = f"{held:,} of the {rows:,} rows" if exact else "a fifth of the rows"
    return VALIDATION_SPLIT, f"{what} held out, to measure the model on data it did not learn"


def _relative(path: Path, folder: Path) -> str:
    """``path`` relative to ``folder`` (both as seen from the current directory), / separated."""
    try:
        return Path(os.path.relpath(os.path.abspath(path), os.path.abspath(folder))).as_posix()
    except ValueError:  # another drive (Windows): no relative path leads there
        return Path(os.path.abspath(path)).as_posix()


# A value written bare in YAML only when it cannot read as anything but this text.
_PLAIN = re.compile(r"[A-Za-z_][A-Za-z0-9_./-]*|\.\.?/[A-Za-z0-9_./-]*")
_YAML_WORDS = {"null", "true", "false", "yes", "no", "on", "off", "y", "n"}  # (and YAML 1.1's booleans)
_ESCAPE = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029\ufeff]")


def _scalar(text: str) -> str:
    """``text`` as a YAML scalar: bare when plain, else double-quoted (JSON's quoting is valid
    YAML; characters a YAML reader could take for a line break escaped as well)."""
    if _PLAIN.fullmatch(text) and text.lower() not in _YAML_WORDS:
        return text
    return _ESCAPE.sub(lambda m: f"\\u{ord(m.group()):04x}", json.dumps(text, ensure_ascii=False))


def _comment(text: str) -> str:
    """Text for a YAML comment: one line whatever the file's names and values hold."""
    return _ESCAPE.sub(lambda m: m.group().encode("unicode_escape").decode("ascii"), text)
