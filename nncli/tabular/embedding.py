"""A model's hidden-layer activations for the rows of a file: the codes `nncli embed` writes and
`nncli cluster` groups.

Any model has them: an autoencoder's narrow middle layer is what it was trained to make, and a
classifier's last hidden layer is a useful embedding too. The rows are read chunk by chunk as
`predict` reads them (:mod:`nncli.tabular.columns`), so memory does not grow with the file.
"""

from __future__ import annotations

from typing import Iterator

import numpy as np

from nncli.core.model import FORWARD_BLOCK_VALUES, TrainedModel
from nncli.errors import UsageError
from nncli.tabular.columns import chunk_bytes_for, chunk_features, model_chunks, outputs_for
from nncli.tabular.stream import Chunk, CsvStream


def hidden_layers_text(model: TrainedModel) -> str:
    """The hidden layers as a person counts them, for a message: `1 (128 wide), 2 (10 wide)`."""
    return ", ".join(f"{k} ({width} wide)" for k, width in enumerate(model.hidden_sizes, start=1))


def embedding_layer(model: TrainedModel, layer: int | None = None) -> int:
    """The hidden layer whose activations are the codes (1 = the first): ``layer`` checked, or by
    default the narrowest (the first of equals: an autoencoder's code layer, a classifier's only
    hidden layer). A model without that layer is a :class:`UsageError` naming the ones it has."""
    hidden = model.hidden_sizes
    if not hidden:
        raise UsageError(f"{model.source} has no hidden layer (layers {model.network.sizes}): it has no codes to embed")
    if layer is None:
        return int(np.argmin(hidden)) + 1
    if not 1 <= layer <= len(hidden):
        raise UsageError(f"--layer {layer}: {model.source} has hidden layers {hidden_layers_text(model)}; "
                         f"give --layer 1 to {len(hidden)}")
    return layer


def code_columns(model: TrainedModel, layer: int) -> list[str]:
    """The output columns of the codes: code_1 … code_m, one per neuron of ``layer``."""
    return [f"code_{j}" for j in range(1, model.hidden_sizes[layer - 1] + 1)]


def layer_codes(model: TrainedModel, chunk_features: np.ndarray, layer: int) -> np.ndarray:
    """Each row's activations at hidden ``layer`` (rows × its width, in the model's dtype), for the
    model's raw matrix of some rows (:func:`~nncli.tabular.columns.chunk_features`). The network
    runs in row blocks (TrainedModel.codes), so memory is the result's and a bounded block's.
    Errors are the model's (FeatureOverflow, MissingCell, …): :func:`chunk_codes` places them."""
    return model.codes(chunk_features, layer)


def chunk_codes(model: TrainedModel, stream: CsvStream, chunk: Chunk, text_columns: list[str], layer: int) -> np.ndarray:
    """:func:`layer_codes` of a chunk's rows; a cell the model cannot take is a DataError naming
    its line and column, as in predict."""
    X = chunk_features(model, stream, chunk, text_columns)
    return outputs_for(model, stream, chunk, X, apply=lambda raw: layer_codes(model, raw, layer))


def stream_codes(model: TrainedModel, stream: CsvStream, text_columns: list[str], layer: int,
                 keep: list[str] = ()) -> Iterator[tuple[Chunk, np.ndarray]]:
    """Each chunk of ``stream`` (read as the model reads it, --keep columns too) with its rows' codes."""
    for chunk in model_chunks(model, stream, text_columns, keep):
        yield chunk, chunk_codes(model, stream, chunk, text_columns, layer)


def chunk_bytes_for_codes(model: TrainedModel, layer: int) -> int:
    """CSV bytes to read at a time so that a chunk's codes fit one block of FORWARD_BLOCK_VALUES
    (a 4,096-wide layer of half a million short rows would otherwise be 8 GiB)."""
    return chunk_bytes_for(model, rows=max(1, FORWARD_BLOCK_VALUES // model.hidden_sizes[layer - 1]))
