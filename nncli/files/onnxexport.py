"""A trained model as one ONNX graph: the raw feature values in, what `nncli predict` puts out.

The graph does what :meth:`nncli.core.model.TrainedModel.outputs` does, step by step, with the
stored numbers: fill missing cells, one-hot the categories, scale in float64, round to the
model's dtype once, the layers with their activations, then class probabilities and labels
(or the targets in their own units). The only module that imports onnx (an optional extra).

Where predict refuses a row (a missing cell with no fill, a category unknown under
``unknown_category: error``, a value the dtype cannot hold), a graph cannot raise: that row's
outputs are NaN and its label is the empty string. docs/export.md describes the contract.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from nncli import __version__
from nncli.core.encoding import FeatureColumn
from nncli.core.model import TrainedModel
from nncli.errors import ModelFileError, quoted

# Opset 17 (onnx 1.12, 2022) has every operator used here and runs on any onnxruntime since
# 1.12; IR version 8 is the one that opset shipped with (a newer IR would shut out older runtimes).
OPSET = 17
ML_OPSET = 3  # ai.onnx.ml: LabelEncoder with string keys
IR_VERSION = 8

FEATURES = "features"  # the one input of a model whose every feature is a number
PROBABILITIES, LABEL, PREDICTION = "probabilities", "label", "prediction"
ROWS = "rows"  # the batch dimension's name: any number of rows

# A protobuf message cannot exceed 2 GiB; weights that large need ONNX's external data files.
MAX_ONNX_BYTES = (1 << 31) - 1
# Category codes besides 0 … K-1: an ignored unknown category (one-hot all zeros), and a
# value predict refuses (its one-hot becomes NaN, so the row's outputs do).
IGNORED, REFUSED = -1, -2

_ONNX_TYPES = {np.dtype(np.float32): TensorProto.FLOAT, np.dtype(np.float64): TensorProto.DOUBLE}


@dataclass(frozen=True)
class Port:
    """One input or output of the graph, as the docs and `export --json` describe it."""

    name: str
    type: str  # float64, float32, string
    shape: list  # "rows" for the batch dimension
    description: str

    def to_json(self) -> dict:
        return {"name": self.name, "type": self.type, "shape": self.shape, "description": self.description}


def model_proto(model: TrainedModel, name: str) -> onnx.ModelProto:
    """The checked ONNX model of ``model`` (``name``: the graph's name, e.g. the file's stem)."""
    _check_fits(model)
    graph = _Graph(model)
    proto = helper.make_model(
        helper.make_graph(graph.nodes, name, graph.inputs, graph.outputs, graph.initializers,
                          doc_string=f"nncli model {name}: raw feature values in, predictions out"),
        opset_imports=[helper.make_opsetid("", OPSET), helper.make_opsetid("ai.onnx.ml", ML_OPSET)],
        producer_name="nncli", producer_version=__version__, ir_version=IR_VERSION,
    )
    helper.set_model_props(proto, _metadata(model))
    onnx.checker.check_model(proto, full_check=True)  # also infers every shape: a wrong one fails here
    return proto


def ports(proto: onnx.ModelProto) -> tuple[list[Port], list[Port]]:
    """The graph's inputs and outputs, read back from the model itself."""
    return [_port(v) for v in proto.graph.input], [_port(v) for v in proto.graph.output]


def _port(value: onnx.ValueInfoProto) -> Port:
    tensor = value.type.tensor_type
    kind = {TensorProto.FLOAT: "float32", TensorProto.DOUBLE: "float64", TensorProto.STRING: "string"}[tensor.elem_type]
    shape = [d.dim_param or d.dim_value for d in tensor.shape.dim]
    return Port(value.name, kind, shape, value.doc_string)


def _metadata(model: TrainedModel) -> dict[str, str]:
    """What a server may want without reading the graph: names in order, classes, dtype."""
    return {
        "nncli_version": __version__,
        "source": Path(model.source).name,  # the model file's name (not where it lived)
        "dtype": model.network.dtype.name,
        "loss": model.loss,
        "features": json.dumps(model.features),
        "targets": json.dumps(model.targets),
        "classes": json.dumps(model.classes),
    }


def _check_fits(model: TrainedModel) -> None:
    network = model.network
    size = sum(W.nbytes + (0 if b is None else b.nbytes) for W, b in zip(network.weights, network.biases))
    if size > MAX_ONNX_BYTES - (1 << 20):  # (a MiB for the rest of the graph)
        raise ModelFileError(f"{model.source}: the weights take {size / (1 << 30):.2f} GiB; an ONNX file holds at most 2 GiB")
    if model.plan.categorical:  # one input per feature column, named after it
        names = model.plan.names
        for taken in (PROBABILITIES, LABEL, PREDICTION, ""):
            if taken in names:
                raise ModelFileError(
                    f"{model.source}: the feature column {quoted(taken)} would name a graph input, and that name is "
                    f"{'not a name' if not taken else 'an output of the graph'}; rename the column and train again")


class _Graph:
    """The nodes, constants, inputs and outputs of one model's graph, built in predict's order."""

    def __init__(self, model: TrainedModel):
        self.model, self.plan = model, model.plan
        self.dtype = model.network.dtype
        self.nodes: list[onnx.NodeProto] = []
        self.initializers: list[onnx.TensorProto] = []
        self.inputs: list[onnx.ValueInfoProto] = []
        self.outputs: list[onnx.ValueInfoProto] = []
        # Inner names never clash with an input (a feature may be called anything).
        self._taken = set(self.plan.names) | {FEATURES, PROBABILITIES, LABEL, PREDICTION}
        self._scalars: dict[tuple, str] = {}
        raw = self._encoded_inputs()
        scaled = self._scaled(raw)
        refused = self._refused_rows(scaled)
        out = self._layers(scaled)
        if model.is_classification:
            self._classifier_outputs(out, refused)
        else:
            self._regression_outputs(out, refused)

    # -- naming and constants ------------------------------------------------------------

    def _name(self, base: str) -> str:
        name, n = f"nncli/{base}", 1
        while name in self._taken:
            n += 1
            name = f"nncli/{base}_{n}"
        self._taken.add(name)
        return name

    def _const(self, base: str, value, dtype=None) -> str:
        array = np.asarray(value, dtype=dtype)
        key = (base, array.dtype.str, array.tobytes()) if array.ndim == 0 and array.dtype != object else None
        if key in self._scalars:  # one initializer per scalar (the 0s and 1s the activations share)
            return self._scalars[key]
        name = self._name(base)
        self.initializers.append(numpy_helper.from_array(array, name))
        if key is not None:
            self._scalars[key] = name
        return name

    def _op(self, op: str, inputs: list[str], base: str | None = None, output: str | None = None, **attributes) -> str:
        output = output or self._name(base or op.lower())
        self.nodes.append(helper.make_node(op, inputs, [output], name=self._name(f"{op}"), **attributes))
        return output

    # -- features → network inputs ---------------------------------------------------------

    def _encoded_inputs(self) -> str:
        """The network's inputs before scaling, in float64: rows × plan.width."""
        if not self.plan.categorical:  # every feature a number: one tensor, columns in the model's order
            order = ", ".join(self.plan.names)
            self.inputs.append(helper.make_tensor_value_info(
                FEATURES, TensorProto.DOUBLE, [ROWS, len(self.plan.columns)],
                doc_string=f"the feature values, float64, NaN for a missing cell; columns: {order}"))
            return self._filled(FEATURES, [column.fill for column in self.plan.columns])
        parts = [self._column(column) for column in self.plan.columns]
        return parts[0] if len(parts) == 1 else self._op("Concat", parts, "encoded", axis=1)

    def _filled(self, values: str, fills: list[float | None]) -> str:
        """Missing cells (NaN) replaced by their column's fill; NaN stays NaN where there is none."""
        if all(fill is None for fill in fills):
            return values
        constants = self._const("fills", [np.nan if fill is None else fill for fill in fills], np.float64)
        return self._op("Where", [self._op("IsNaN", [values]), constants, values], "filled")

    def _column(self, column: FeatureColumn) -> str:
        if column.categories is None:
            self.inputs.append(helper.make_tensor_value_info(
                column.name, TensorProto.DOUBLE, [ROWS, 1], doc_string="a number, float64; NaN for a missing cell"))
            return self._filled(column.name, [column.fill])
        self.inputs.append(helper.make_tensor_value_info(
            column.name, TensorProto.STRING, [ROWS, 1],
            doc_string=f"a category ({', '.join(column.categories)}), without surrounding spaces; "
                       f"missing: {', '.join(repr(t) for t in self._missing_tokens(column)) or 'none'}"))
        return self._one_hot(column)

    def _missing_tokens(self, column: FeatureColumn) -> list[str]:
        """The values that mean a missing cell, as predict compares them (without spaces)."""
        tokens = dict.fromkeys(token.strip() for token in self.plan.missing_values)
        return [token for token in tokens if token not in column.categories]  # (training reads those as missing: never a category)

    def _one_hot(self, column: FeatureColumn) -> str:
        """A string column as its K one-hot inputs: each value's code (its category's index, the
        fill's for a missing value, IGNORED or REFUSED), compared with 0 … K-1."""
        tokens = self._missing_tokens(column)
        missing_code = REFUSED if column.fill is None else int(column.fill)
        unknown_code = IGNORED if self.plan.unknown_category == "ignore" else REFUSED
        codes = self._op("LabelEncoder", [column.name], "codes", domain="ai.onnx.ml",
                         keys_strings=list(column.categories) + tokens,
                         values_int64s=list(range(len(column.categories))) + [missing_code] * len(tokens),
                         default_int64=unknown_code)
        hot = self._op("Equal", [codes, self._const("categories", np.arange(len(column.categories)), np.int64)])
        one_hot = self._op("Cast", [hot], "one_hot", to=TensorProto.DOUBLE)
        if missing_code != REFUSED and unknown_code != REFUSED:
            return one_hot
        refused = self._op("Equal", [codes, self._const("refused", REFUSED, np.int64)])
        return self._op("Where", [refused, self._const("nan", np.nan, np.float64), one_hot], "one_hot")

    def _scaled(self, raw: str) -> str:
        """Scaled in float64 and rounded to the model's dtype once, as predict does."""
        scaler = self.model.feature_scaler
        if scaler.method != "none":
            centred = self._op("Sub", [raw, self._const("feature_offset", scaler.offset, np.float64)])
            raw = self._op("Div", [centred, self._const("feature_scale", scaler.scale, np.float64)], "scaled")
        if self.dtype == np.float64:
            return raw
        return self._op("Cast", [raw], "inputs", to=_ONNX_TYPES[self.dtype])

    def _refused_rows(self, inputs: str) -> str:
        """rows × 1, True where an input is not finite (predict's MissingCell, UnknownCategory,
        FeatureOverflow): x·0 is 0 for a finite x and NaN for NaN or ±inf, so a row's sum is
        NaN exactly when one of its inputs is not finite."""
        zeros = self._op("Mul", [inputs, self._const("zero", 0, self.dtype)])
        total = self._op("ReduceSum", [zeros, self._const("axis", [1], np.int64)], keepdims=1)
        return self._op("IsNaN", [total], "refused")

    # -- the network -------------------------------------------------------------------

    def _layers(self, a: str) -> str:
        network = self.model.network
        for layer, (W, b, name, params) in enumerate(
                zip(network.weights, network.biases, network.activation_names, network.activation_params), start=1):
            a = self._op("MatMul", [a, self._const(f"W{layer}", W)], f"z{layer}")
            if b is not None:
                a = self._op("Add", [a, self._const(f"b{layer}", b)], f"z{layer}")
            a = ACTIVATIONS[name](self, a, **params)
        return a

    # -- network outputs → graph outputs -------------------------------------------------

    def _classifier_outputs(self, out: str, refused: str) -> None:
        if self.model.loss_function.kind.targets == "binary":  # one sigmoid: P(second class)
            out = self._op("Concat", [self._op("Sub", [self._const("one", 1, self.dtype), out]), out], "binary", axis=1)
        self._op("Where", [refused, self._const("nan", np.nan, self.dtype), out], output=PROBABILITIES)
        best = self._op("ArgMax", [PROBABILITIES], "best", axis=1, keepdims=0)  # the first of equals, as NumPy's argmax
        label = self._op("Gather", [self._const("classes", np.array(self.model.classes, dtype=object)), best], "class", axis=0)
        total = self._op("ReduceSum", [PROBABILITIES, self._const("axis", [1], np.int64)], keepdims=0)
        no_label = self._op("IsNaN", [total], "no_label")
        self._op("Where", [no_label, self._const("empty", np.array("", dtype=object)), label], output=LABEL)
        classes = ", ".join(self.model.classes)
        self.outputs += [
            helper.make_tensor_value_info(PROBABILITIES, _ONNX_TYPES[self.dtype], [ROWS, len(self.model.classes)],
                                          doc_string=f"one probability per class, columns: {classes}; NaN for a refused row"),
            helper.make_tensor_value_info(LABEL, TensorProto.STRING, [ROWS],
                                          doc_string="the most probable class; empty for a refused row"),
        ]

    def _regression_outputs(self, out: str, refused: str) -> None:
        scaler = self.model.target_scaler
        if scaler is not None and scaler.method != "none":  # back to the target's units, in the model's dtype
            out = self._op("Mul", [out, self._const("target_scale", scaler.scale, self.dtype)])
            out = self._op("Add", [out, self._const("target_offset", scaler.offset, self.dtype)], "targets")
        self._op("Where", [refused, self._const("nan", np.nan, self.dtype), out], output=PREDICTION)
        targets = ", ".join(self.model.targets)
        self.outputs.append(helper.make_tensor_value_info(
            PREDICTION, _ONNX_TYPES[self.dtype], [ROWS, len(self.model.targets)],
            doc_string=f"the targets in their own units, columns: {targets}; NaN for a refused row"))


# -- activations: one graph builder per name of core/activations.py ---------------------
# Elu and Softplus have no float64 kernel in onnxruntime, and LeakyRelu's slope is a float32
# attribute (0.01 would be 0.0099999998 in a float64 model): those three are written with the
# basic operators, in the model's dtype, as the NumPy code computes them.

def _identity(graph: _Graph, z: str) -> str:
    return z


def _plain(op: str, **attributes):
    return lambda graph, z: graph._op(op, [z], op.lower(), **attributes)


def _leaky_relu(graph: _Graph, z: str, slope: float = 0.01) -> str:
    positive = graph._op("Greater", [z, graph._const("zero", 0, graph.dtype)])
    return graph._op("Where", [positive, z, graph._op("Mul", [z, graph._const("slope", slope, graph.dtype)])], "leaky_relu")


def _elu(graph: _Graph, z: str) -> str:
    zero = graph._const("zero", 0, graph.dtype)
    below = graph._op("Sub", [graph._op("Exp", [graph._op("Min", [z, zero])]), graph._const("one", 1, graph.dtype)])
    return graph._op("Where", [graph._op("Greater", [z, zero]), z, below], "elu")


def _softplus(graph: _Graph, z: str) -> str:
    # log(1 + e^z) = max(z, 0) + log(1 + e^-|z|): e^-|z| ≤ 1 never overflows.
    tail = graph._op("Exp", [graph._op("Neg", [graph._op("Abs", [z])])])
    log = graph._op("Log", [graph._op("Add", [tail, graph._const("one", 1, graph.dtype)])])
    return graph._op("Add", [graph._op("Relu", [z]), log], "softplus")


ACTIVATIONS = {
    "identity": _identity,
    "relu": _plain("Relu"),
    "leaky_relu": _leaky_relu,
    "elu": _elu,
    "sigmoid": _plain("Sigmoid"),
    "tanh": _plain("Tanh"),
    "softplus": _softplus,
    "softmax": _plain("Softmax", axis=1),
}
