"""Which columns a config trains on, and how their text and gaps are read.

- :func:`select_columns`: `data.target`, `data.features`, `data.drop` and `data.categorical`
  against the file's header (a name that is not there is a config error with close matches).
- :func:`read_columns`: a file read with the categorical columns as text and the config's
  missing-value tokens. A column that turns out to hold text is found by the parser's
  :class:`~nncli.tabular.parse.NotANumber` (and the other text columns of the first rows with
  it, :func:`~nncli.tabular.parse.sniff_text_columns`), and the file is read again with them as
  text: a feature becomes categorical, a column nobody uses is simply not a number.
- :func:`categories_of`: a categorical column's categories, sorted, within `data.max_categories`.
- :func:`missing_cells`: `data.missing` applied to a table's used cells: the first missing one
  is an error, or the rows holding one are dropped; a column with no value at all is an error.
"""

from __future__ import annotations

import copy
import difflib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from nncli.config import Config
from nncli.core.encoding import Encoding
from nncli.core.model import TrainedModel
from nncli.errors import DataError
from nncli.tabular.parquet import parquet_layout
from nncli.tabular.parse import (
    NotANumber,
    at_line,
    find_line,
    lines_after_header,
    listed,
    parser_number,
    python_number,
    quoted,
    quoted_list,
    read_header,
)
from nncli.tabular.source import CsvColumns
from nncli.tabular.tables import is_parquet, sniff_text_columns

CLOSE_MATCH_COLUMNS = 10_000  # "did you mean" hints compare with every column name: up to this many
# A category is stored in the model file as a name, which its reader bounds: the same number
# as nncli.files.model.MAX_NAME_CHARS (a test holds them equal); longer is free text.
MAX_CATEGORY_CHARS = 1 << 16
FILLS = "mean, median, most_frequent or drop_rows"  # what data.missing can do instead of `error`

TableReader = Callable[..., CsvColumns]  # read_csv's signature: (path, text_columns, dtype, missing_values)


@dataclass
class ColumnChoice:
    """The columns of one file a run reads, and how: the training file's choice, or the same
    features and targets in a validation file (:meth:`in_file`)."""

    header: list[str]
    features: list[str]
    targets: list[str]
    classification: bool
    categorical: list[str] = field(default_factory=list)  # features read as categories
    detected: dict[str, str] = field(default_factory=dict)  # categorical because of text found: why (for messages)
    other_text: list[str] = field(default_factory=list)  # columns nobody uses that hold text

    @property
    def text_columns(self) -> list[str]:
        """Every column the parser reads as text (codes into its distinct values)."""
        labels = self.targets if self.classification else []
        return [*labels, *self.categorical, *self.other_text]

    @property
    def unused(self) -> list[str]:
        used = {*self.features, *self.targets}
        return [name for name in self.header if name not in used]

    def in_file(self, header: list[str]) -> "ColumnChoice":
        """The same columns in another file (a validation file): its own unused columns."""
        return ColumnChoice(header, self.features, self.targets, self.classification, list(self.categorical))


def table_header(path: Path) -> list[str]:
    """The column names of a CSV or Parquet file, checked."""
    return parquet_layout(path).header if is_parquet(path) else read_header(path)


def select_columns(config: Config, path: Path, reference: TrainedModel | None = None) -> ColumnChoice:
    """The target(s) the config names (else the last column), and the features: `data.features`
    in its order, else every other column not in `data.drop`, in the file's order (with
    `model.init_from`, the reference model's, in its order)."""
    header = table_header(path)
    present = set(header)  # (sets, not lists: a file may have 100,000 columns)
    data = config.data
    for key, names in (("data.features", data.features or []), ("data.drop", data.drop), ("data.categorical", data.categorical)):
        for name in names:
            _check_present(config, key, name, path, header, present)
    if data.autoencoder:  # the features are the targets: nothing is set apart
        targets = []
    else:
        targets = _target_columns(config, path, header, present)
    if data.target is None:  # the last column: it may be one the config lists for another use
        for key, names in (("data.features", data.features or []), ("data.drop", data.drop), ("data.categorical", data.categorical)):
            if targets[0] in names:
                raise config.error("data.target", f"is not set, so the target is the last column of {path}, {quoted(targets[0])}, "
                                   f"which {key} lists; set data.target")
    if reference is not None:
        features = _reference_features(config, path, header, list(reference.features) if data.autoencoder else targets, reference)
        categorical = list(reference.plan.categorical)
    else:
        taken = {*targets, *data.drop}
        features = list(data.features) if data.features is not None else [name for name in header if name not in taken]
        declared = set(data.categorical)
        categorical = [name for name in features if name in declared]
    if not features:
        raise DataError(f"{path}: no feature columns left after taking the target column(s) {quoted_list(targets)}"
                        + (" and data.drop" if data.drop else ""))
    if data.autoencoder:
        targets = list(features)
    return ColumnChoice(header, features, targets, config.is_classification, categorical)


def _check_present(config: Config, key: str, name: str, path: Path, header: list[str], present: set[str]) -> None:
    if name not in present:
        raise config.error(key, f"column {quoted(name)} is not in {path}{_close_match(name, header)}")


def _close_match(name: str, header: list[str]) -> str:
    # (difflib compares with every name: only for headers a person could read through)
    close = difflib.get_close_matches(name, header, n=1) if len(header) <= CLOSE_MATCH_COLUMNS else []
    return f"; did you mean {quoted(close[0])}?" if close else f"; columns are: {listed(header, 6)}"


def _target_columns(config: Config, path: Path, header: list[str], present: set[str]) -> list[str]:
    targets = config.data.target_columns or [header[-1]]
    for name in targets:
        _check_present(config, "data.target", name, path, header, present)
    if len(targets) == len(header):
        raise config.error("data.target", f"takes every column of {path}; nothing is left as a feature")
    return targets


def _reference_features(config: Config, path: Path, header: list[str], targets: list[str], reference: TrainedModel) -> list[str]:
    """With `init_from`, the features are the reference model's, in its order."""
    present, known = set(header), {*reference.features, *targets, *config.data.drop}
    missing = [name for name in reference.features if name not in present]
    if missing:
        raise config.error("model.init_from", f"{path} lacks the model's feature column(s) {listed(missing, 6)}")
    if config.data.features is not None and list(config.data.features) != list(reference.features):
        raise config.error("data.features", f"differs from the features of the model.init_from model, {listed(reference.features, 6)}; "
                           "leave it out to use the model's")
    extra = [name for name in header if name not in known]
    if extra and config.data.features is None:
        raise config.error("model.init_from", f"{path} has column(s) the model was not trained on: {listed(extra, 6)} "
                           "(list them in data.drop to leave them out)")
    if targets != reference.targets:
        raise config.error("model.init_from", f"the model predicts {listed(reference.targets, 6)}, the config's target is {listed(targets, 6)}")
    return list(reference.features)


class TextFeature(DataError):
    """A feature column holds text where its kind is fixed as a number (a validation file, a
    reference model, training from disk): ``why`` says where the text was found."""

    def __init__(self, column: str, why: str):
        super().__init__(why)
        self.column, self.why = column, why


def read_columns(config: Config, path: Path, choice: ColumnChoice, read: TableReader, *, grow: bool = True) -> CsvColumns:
    """``path`` read with ``choice``'s text columns and the config's missing-value tokens,
    finding the columns that hold text: ``grow``: a feature holding text becomes categorical
    (``choice`` records it), else it is a :class:`TextFeature` error."""
    # The file is read first as the choice says: an all-numeric file costs nothing more. A
    # read that meets text stops early (at the first such cell); the other columns holding text
    # in the first rows are then found at once (a cheap look at those rows), so that a table
    # with several text columns is read again once, not once per column.
    tokens = list(config.data.missing_values)
    features, looked = set(choice.features), False
    # A Parquet file's unused columns are not decoded at all (they may hold lists, structs, dates).
    unused = {"skip": choice.unused} if is_parquet(path) else {}
    while True:
        try:
            return read(path, text_columns=choice.text_columns, dtype=np.dtype(config.model.dtype), missing_values=tokens, **unused)
        except NotANumber as exc:
            if config.data.autoencoder and exc.column in features:
                raise DataError(f"{exc} (data.target: inputs reconstructs the features, so each must be a number; "
                                "add the column to data.drop)") from None
            if exc.column in choice.targets:
                raise DataError(f"{exc} (loss {config.training.loss} makes {quoted(exc.column)} a regression target; "
                                "class labels need loss cross_entropy)") from None
            if exc.column in set(choice.text_columns):  # (a text column never raises it: a reader's bug)
                raise
            _found_text(choice, features, exc.column, str(exc), grow)
        if not looked:
            looked = True
            text = set(choice.text_columns)
            unsure = [name for name in [*choice.features, *choice.unused] if name not in text]
            for name in sniff_text_columns(path, unsure, tokens):
                _found_text(choice, features, name, f"{path}: column {quoted(name)} holds text (in its first rows)", grow)


def _found_text(choice: ColumnChoice, features: set[str], name: str, why: str, grow: bool) -> None:
    if name not in features:
        choice.other_text.append(name)
    elif not grow:
        raise TextFeature(name, why)
    else:
        choice.categorical.append(name)
        choice.detected[name] = why


def categories_of(config: Config, table: CsvColumns, name: str, detected: str | None = None) -> tuple[str, ...]:
    """A categorical column's categories: its distinct values without surrounding spaces, sorted
    (the order of the one-hot inputs). More than `data.max_categories` is an error that says
    what the column looks like: an ID (every value distinct), numbers with a stray word, or
    free text."""
    categories = tuple(sorted({value.strip() for value in table.text_values[name]}))
    longest = max(categories, key=len, default="")
    if len(longest) > MAX_CATEGORY_CHARS:
        line = find_line(lines_after_header(table.path), table.header, name, longest, name=str(table.path))
        raise DataError(f"{at_line(str(table.path), line)}: column {quoted(name)}: {quoted(longest)} is too long for a category "
                        f"(a model file keeps names of at most {MAX_CATEGORY_CHARS:,} characters); is it free text? "
                        "add the column to data.drop")
    limit = config.data.max_categories
    if len(categories) <= limit:
        return categories
    cells = int(np.count_nonzero(~np.isnan(table.column(name))))
    # Numbers as Python's float() reads them (so "1_000" counts as one), and the cells the
    # parsers refused as numbers (which made the column categorical): "1_000" is among those.
    numbers = [value for value in categories if python_number(value)]
    words = [value for value in categories if not parser_number(value)]
    if len(categories) == cells:
        advice = "every value distinct: looks like an ID; add it to data.drop"
    elif detected is not None and len(numbers) > len(categories) // 2 and words:
        advice = (f"it holds numbers and text such as {quoted(words[0])}, so it was read as categorical: fix those cells, "
                  "list them in data.missing_values if they mean a missing value, or add the column to data.drop")
    else:
        advice = "add it to data.drop, or raise data.max_categories if these are categories"
    raise DataError(f"{table.path}: column {quoted(name)} has {len(categories):,} distinct values, more than "
                    f"data.max_categories ({limit:,}); {advice}")


# --- missing cells ----------------------------------------------------------------------------
def missing_columns(values: np.ndarray) -> np.ndarray:
    """Per column, whether it holds a NaN (a missing cell): NaN propagates through the minimum,
    so this is one pass with no temporary the size of the table (the all-numeric path's cost)."""
    if not len(values):
        return np.zeros(values.shape[1], dtype=bool)
    return np.isnan(values.min(axis=0))


@dataclass
class Kept:
    """A table after `drop_rows`: the rows kept (a copy), and where each came from in the file."""

    table: CsvColumns
    rows: np.ndarray | None = None  # the file's row of each kept row; None: every row kept
    dropped: int = 0
    lost: list[str] = field(default_factory=list)  # classes of which every row was dropped

    def where(self, row: int) -> str:
        """``file:line`` of a (kept) row, for a message."""
        return self.table.where(row if self.rows is None else int(self.rows[row]))


def missing_cells(config: Config, table: CsvColumns, choice: ColumnChoice, plan: Encoding | None = None) -> Kept:
    """`data.missing` on the used cells of ``table``: a column with no value at all is an error
    (whatever the strategy); `drop_rows` drops the rows with a missing feature or target cell;
    `error` refuses the first one, as do the fill strategies for a target, and for a feature a
    reference model (``plan``, `model.init_from`) has no fill value for."""
    if not config.data.missing_values:  # (nothing reads as missing: no pass over the table)
        return Kept(table)
    used = [*choice.features, *choice.targets]
    marked = missing_columns(table.values)  # (the whole table: no copy of the used columns)
    holes = [name for name in used if marked[table.positions[name]]]
    if not holes:
        return Kept(table)
    for name in holes:
        if np.isnan(table.column(name)).all():
            what = "target" if name in choice.targets else "value"
            raise DataError(f"{table.path}: column {quoted(name)}: every {what} is missing"
                            + ("; add the column to data.drop" if name in choice.features else ""))
    strategy = config.data.missing
    if strategy == "drop_rows":
        kept = _drop_rows(table, choice, holes)
        if config.is_classification:
            kept.lost = _lost_classes(table, kept, choice.targets[0])
        return kept
    fills = {column.name: column.fill is not None for column in plan.columns} if plan is not None else {}
    refused = [name for name in holes if name in choice.targets or strategy == "error" or not fills.get(name, True)]
    if refused:
        row, name = _first_missing(table, refused)
        raise DataError(f"{table.where(row)}: column {quoted(name)}: {missing_message(config, name in choice.targets, plan)}")
    return Kept(table)


def missing_message(config: Config, target: bool, plan: Encoding | None = None) -> str:
    if not target and config.data.missing != "error":  # (a reference model's column without a fill)
        return (f"missing value, and the model.init_from model has no value to fill it with (it was trained with "
                f"data.missing: {plan.missing}); give the cell a value, or set data.missing: drop_rows")
    if not target:
        return f"missing value; set data.missing to {FILLS}"
    if config.data.missing == "error":
        return "missing target value; give it a value, or set data.missing: drop_rows to leave such rows out"
    return (f"missing target value (data.missing: {config.data.missing} fills features only); give it a value, "
            "or set data.missing: drop_rows to leave such rows out")


def _first_missing(table: CsvColumns, names: list[str]) -> tuple[int, str]:
    """The first missing cell of ``names`` in the file: its row, and its column (the leftmost)."""
    firsts = {name: int(np.argmax(np.isnan(table.column(name)))) for name in names}
    firsts = {name: row for name, row in firsts.items() if np.isnan(table.column(name)[row])}
    row = min(firsts.values())
    name = min((name for name, first in firsts.items() if first == row), key=table.positions.__getitem__)
    return row, name


def _drop_rows(table: CsvColumns, choice: ColumnChoice, holes: list[str]) -> Kept:
    """The rows with no missing used cell, as a table of their own (text columns renumbered so
    that their distinct values are those of the rows kept, in order of first appearance)."""
    gaps = np.zeros(len(table.values), dtype=bool)
    for name in holes:
        gaps |= np.isnan(table.column(name))
    rows = np.flatnonzero(~gaps)
    if not len(rows):
        raise DataError(f"{table.path}: every row has a missing cell in a used column ({listed(holes, 6)}); "
                        "data.missing: drop_rows leaves nothing to train on")
    kept = copy.copy(table)  # (same kind of table: its where() still reads its own file)
    kept.values = table.values[rows]
    kept.text_values = dict(table.text_values)
    used = {*choice.features, *choice.targets}
    for name in table.text_values:
        if name in used:
            kept.text_values[name] = _renumber(kept, name)
    return Kept(kept, rows, len(table.values) - len(rows))


def _lost_classes(table: CsvColumns, kept: Kept, target: str) -> list[str]:
    """The labels of ``target`` found in ``table`` but in none of the rows ``kept``."""
    def labels(part: CsvColumns) -> set[str]:
        column = part.column(target)
        present = column[~np.isnan(column)]
        if target in part.text_values:
            distinct = part.text_values[target]
            return {distinct[int(code)].strip() for code in np.unique(present)}
        return {f"{value:g}" for value in np.unique(present)}

    return sorted(labels(table) - labels(kept.table))


def _renumber(table: CsvColumns, name: str) -> list[str]:
    """Renumber a text column of ``table`` (codes into the whole file's values) to the values it
    still holds, in order of first appearance, as a parse of these rows alone would."""
    column = table.column(name)
    codes = column.astype(np.intp)  # (no NaN left in a used column)
    present, first = np.unique(codes, return_index=True)
    order = present[np.argsort(first)]
    remap = np.empty(len(table.text_values[name]), dtype=column.dtype)
    remap[order] = np.arange(len(order))
    table.values[:, table.positions[name]] = remap[codes]
    return [table.text_values[name][code] for code in order]
