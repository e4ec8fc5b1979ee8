"""A trained model: the network plus everything needed to apply it to raw CSV columns."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterator

import numpy as np

from nncli.core.encoding import Encoding, MissingCell, UnknownCategory
from nncli.core.losses import Loss, get_loss
from nncli.core.network import MLP
from nncli.core.preprocess import Scaler, class_probabilities
from nncli.errors import ModelFileError

# Values per layer in one pass of the network (rows × the widest layer). A pass keeps a few
# layers' values alive at once, so 4 Mi values (16 MiB in float32, 32 MiB in float64) bound
# prediction's memory whatever the model's widths: a 2 MiB CSV chunk of short rows is half a
# million rows, which through a 4,096-wide layer would otherwise be 8 GiB. Blocks of this
# size are also large enough that splitting costs no measurable time.
FORWARD_BLOCK_VALUES = 1 << 22


class FeatureOverflow(ValueError):
    """A feature value that normalisation and the model's dtype cannot represent (1e39 in float32)."""

    def __init__(self, row: int, column: int):
        super().__init__(f"row {row}, column {column}")
        self.row, self.column = row, column


class NetworkOverflow(ModelFileError):
    """Applying the model overflows its dtype (weights near float32's maximum, say): an error,
    not a prediction of inf or NaN. ``row`` is the input row (of the rows given) it happened on."""

    def __init__(self, message: str, row: int):
        super().__init__(message)
        self.row = row


@dataclass
class TrainedModel:
    network: MLP
    loss: str
    features: list[str]
    targets: list[str]
    classes: list[str] | None  # None for regression
    feature_scaler: Scaler
    target_scaler: Scaler | None = None
    loss_params: dict = field(default_factory=dict)  # e.g. Huber's delta, as trained with
    config: dict = field(default_factory=dict)  # the resolved config it was trained with
    history: list[dict] = field(default_factory=list)
    metrics: dict = field(default_factory=dict)
    source: str = "the model"  # the file it was read from, for messages
    encoding: Encoding | None = None  # how the features become inputs; None: every feature a number (models before encodings)
    # An autoencoder (`data.target: inputs`): its targets are its features. It learns the scaled
    # features, and its target_scaler is the feature scaler, so :meth:`outputs` gives the
    # reconstructions in the features' own units, as a regression model gives its targets'.
    autoencoder: bool = False

    @property
    def plan(self) -> Encoding:
        """The features' encoding (numbers as they are when the model has none)."""
        return self.encoding if self.encoding is not None else Encoding.numeric(self.features)

    @property
    def is_classification(self) -> bool:
        return self.classes is not None

    @property
    def loss_function(self) -> Loss:
        """The loss as trained, parameters included (evaluate reports the same loss as training)."""
        return get_loss(self.loss, **self.loss_params)

    @property
    def output_width(self) -> int:
        """Columns of :meth:`outputs`: one per class (two for a binary model's one sigmoid), or per target."""
        return len(self.classes) if self.is_classification else len(self.targets)

    @property
    def rows_per_pass(self) -> int:
        """Rows the network is applied to at once (FORWARD_BLOCK_VALUES over the widest layer)."""
        return max(1, FORWARD_BLOCK_VALUES // max(*self.network.sizes, self.output_width))

    @property
    def rows_per_output_block(self) -> int:
        """Rows whose outputs fit in FORWARD_BLOCK_VALUES: what a caller should pass to
        :meth:`outputs` at once (30,000 classes: 139 rows; two classes: 2 million)."""
        return max(1, FORWARD_BLOCK_VALUES // self.output_width)

    def outputs(self, X_raw: np.ndarray) -> np.ndarray:
        """Class probabilities, or regression values in the target's own units.

        ``X_raw`` is the raw matrix of :mod:`nncli.core.encoding`: one column per feature, in
        the model's order (numbers, a category's index, NaN for a missing cell). The network
        runs over blocks of :attr:`rows_per_pass` rows, so its memory does not grow with the
        number of rows; the result is ``rows × output_width``, which the caller bounds by the
        rows it passes (the commands size their CSV chunks by ``rows_per_output_block``).
        A value the dtype cannot hold is an error: :class:`FeatureOverflow` for an input,
        :class:`NetworkOverflow` inside the network; a cell the encoding cannot take is its
        :class:`~nncli.core.encoding.MissingCell` or :class:`~nncli.core.encoding.UnknownCategory`.
        Each error names its row of ``X_raw``, and all but NetworkOverflow the feature's column.
        """
        blocks = self._input_blocks(X_raw)
        if len(X_raw) <= self.rows_per_pass:
            return self._apply(next(blocks)[1], 0)
        out = np.empty((len(X_raw), self.output_width), dtype=self.network.dtype)
        for start, X in blocks:
            out[start : start + len(X)] = self._apply(X, start)
        return out

    @property
    def hidden_sizes(self) -> list[int]:
        """The widths of the hidden layers, first to last (layer k is ``hidden_sizes[k - 1]``)."""
        return self.network.sizes[1:-1]

    def codes(self, X_raw: np.ndarray, layer: int) -> np.ndarray:
        """Each row's activations at hidden layer ``layer`` (1 = the first): rows × its width.

        The network runs over blocks of rows small enough that every layer's values of a block
        together fit FORWARD_BLOCK_VALUES (``MLP.layer_outputs`` keeps them all), so memory does
        not grow with the rows; errors are those of :meth:`outputs`."""
        if not 1 <= layer <= len(self.hidden_sizes):
            raise ValueError(f"layer {layer} is not a hidden layer of {self.hidden_sizes}")
        step = max(1, FORWARD_BLOCK_VALUES // sum(self.network.sizes))
        out = np.empty((len(X_raw), self.hidden_sizes[layer - 1]), dtype=self.network.dtype)
        for start in range(0, len(X_raw), step):
            for first, X in self._input_blocks(X_raw[start : start + step]):
                try:
                    with np.errstate(over="raise", invalid="raise", divide="raise", under="ignore"):
                        out[start + first : start + first + len(X)] = self.network.layer_outputs(X)[layer - 1]
                except FloatingPointError:
                    raise self._overflow(X, start + first) from None
        return out

    def inputs(self, X_raw: np.ndarray) -> np.ndarray:
        """The network's inputs for ``X_raw`` (encoded and scaled, in the model's dtype), all
        rows at once: what `cluster --refine` trains the encoder on. Errors as :meth:`outputs`."""
        return np.concatenate([X for _, X in self._input_blocks(X_raw)])

    def _input_blocks(self, X_raw: np.ndarray) -> Iterator[tuple[int, np.ndarray]]:
        """The network's inputs for ``X_raw``, :attr:`rows_per_pass` rows at a time: (first row, inputs)."""
        step, starts = self.rows_per_pass, range(0, max(1, len(X_raw)), self.rows_per_pass)
        if self.encoding is None or self.encoding.is_plain:
            X = self._scaled(X_raw)  # the raw matrix is the inputs: scaled whole, as the chunk is bounded
            yield from ((start, X[start : start + step]) for start in starts)
        else:  # a pass at a time: one-hot columns may make the inputs far wider than the raw rows
            yield from ((start, self._encoded(X_raw[start : start + step], start)) for start in starts)

    def _scaled(self, X_raw: np.ndarray) -> np.ndarray:
        """Plain features (every one a number, nothing to fill) scaled into the model's dtype."""
        X = np.empty(X_raw.shape, dtype=self.network.dtype)
        with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
            self.feature_scaler.transform_into(X_raw, X)  # (in cache-sized blocks: no full-size temporaries)
        if not np.isfinite(X).all():
            row, column = (int(i) for i in np.argwhere(~np.isfinite(X))[0])
            if np.isnan(X_raw[row, column]):  # read as missing (the model's missing_values), with nothing to fill it
                raise MissingCell(row, column)
            raise FeatureOverflow(row, column)
        return X

    def _encoded(self, raw: np.ndarray, first_row: int) -> np.ndarray:
        """Rows of the raw matrix as the network's inputs: encoded, then scaled into the model's
        dtype (the scaler leaves one-hot inputs as they are). Errors name the row counted from
        ``first_row`` and the feature column.

        Encoded in float64, so that a number, and a fill value (a float64 statistic), is scaled
        as the plain path scales it and rounded to a float32 model's dtype once, as training does."""
        plan, dtype = self.encoding, self.network.dtype
        try:
            encoded = plan.encode(raw, np.float64)
        except (MissingCell, UnknownCategory) as exc:
            raise type(exc)(first_row + exc.row, exc.column) from None
        X = encoded if dtype == np.float64 else np.empty(encoded.shape, dtype=dtype)
        with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
            self.feature_scaler.transform_into(encoded, X)
        if not np.isfinite(X).all():
            row, position = (int(i) for i in np.argwhere(~np.isfinite(X))[0])
            ends = np.cumsum([column.width for column in plan.columns])  # each feature's inputs end here
            raise FeatureOverflow(first_row + row, int(np.searchsorted(ends, position, side="right")))
        return X

    def _apply(self, X: np.ndarray, first_row: int) -> np.ndarray:
        try:
            # Underflow (a probability rounding to 0) is fine; anything else means the values
            # left the dtype's range, and the output would be inf or NaN.
            with np.errstate(over="raise", invalid="raise", divide="raise", under="ignore"):
                out = self.network.forward(X)
                if self.is_classification:
                    return class_probabilities(out, self.loss_function.kind)
                if self.target_scaler is not None:
                    out = self.target_scaler.inverse(out)
                return out
        except FloatingPointError:
            raise self._overflow(X, first_row) from None

    def _overflow(self, X: np.ndarray, first_row: int) -> NetworkOverflow:
        """Which layer overflowed, on which row: the block again, layer by layer."""
        network, dtype = self.network, self.network.dtype
        limit = f"beyond ±{np.finfo(dtype).max:.3g}"
        a = X
        with np.errstate(all="ignore"):
            for layer, (W, b, activation) in enumerate(zip(network.weights, network.biases, network.activations), start=1):
                z = a @ W
                if b is not None:
                    z += b
                a = activation.forward(z.copy())
                bad = ~(np.isfinite(z).all(axis=1) & np.isfinite(a).all(axis=1))
                if bad.any():
                    largest = max(float(np.abs(W).max()), 0.0 if b is None else float(np.abs(b).max()))
                    return NetworkOverflow(
                        f"{self.source}: applying the model overflows {dtype.name} in layer {layer} of {len(network.weights)} "
                        f"(a value {limit}; its weights reach {largest:.3g}): this model cannot be applied to these rows",
                        first_row + int(np.argmax(bad)),
                    )
            out = a if self.target_scaler is None else self.target_scaler.inverse(a)
            row = first_row + int(np.argmax(~np.isfinite(out).all(axis=1)))
        return NetworkOverflow(
            f"{self.source}: the model's target normalisation overflows {dtype.name} (a value {limit}): "
            "this model cannot be applied to these rows",
            row,
        )


def layer_table(network: MLP) -> list[dict]:
    """One row per weight layer: the shapes the guide draws, activation and parameter count."""
    rows = []
    layers = zip(network.weights, network.biases, network.activation_names, network.activation_params)
    for index, (W, b, name, params) in enumerate(layers, start=1):
        rows.append(
            {
                "layer": index,
                "weights": list(W.shape),
                "bias": None if b is None else list(b.shape),
                "activation": name,
                "activation_params": params,  # e.g. leaky_relu's slope; {} for most
                "parameters": W.size + (0 if b is None else b.size),
            }
        )
    return rows
