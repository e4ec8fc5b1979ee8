"""The `export` service: a trained model written as a standard ONNX graph (docs/export.md)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from nncli.commands.extras import install_hint
from nncli.errors import UsageError, escaped
from nncli.files.atomic import atomic_write
from nncli.files.model import load_model
from nncli.files.paths import check_writable, is_device, same_file

INSTALL_HINT = f"nncli export needs onnx and onnxruntime: {install_hint('onnx')}"


@dataclass
class Exported:
    path: Path
    bytes: int
    opset: int
    ml_opset: int
    inputs: list  # onnxexport.Port
    outputs: list

    def to_json(self) -> dict:
        return {
            "path": str(self.path),
            "bytes": self.bytes,
            "opset": {"ai.onnx": self.opset, "ai.onnx.ml": self.ml_opset},
            "inputs": [port.to_json() for port in self.inputs],
            "outputs": [port.to_json() for port in self.outputs],
        }

    def summary(self) -> list[str]:
        """What the terminal shows: the file, then each input and output with its type and shape."""
        lines = [f"Wrote {escaped(str(self.path))} (ONNX, opset {self.opset}, {self.bytes:,} bytes)"]
        shown = self.inputs if len(self.inputs) <= 12 else self.inputs[:10]
        for kind, ports in (("input ", shown), ("output", self.outputs)):
            lines += [f"  {kind} {escaped(port.name)}: {port.type} [{', '.join(map(str, port.shape))}]" for port in ports]
            if kind == "input " and len(shown) < len(self.inputs):
                lines.append(f"  … {len(self.inputs) - len(shown):,} more inputs (--json lists them all)")
        return lines


def export(model_path: Path, output: str | None, force: bool) -> Exported:
    """`nncli export MODEL`: the model as ONNX to ``output`` (default: MODEL with the suffix
    .onnx), written atomically; an existing file is replaced only with ``force``."""
    onnxexport = _onnx_export()
    destination = _destination(model_path, output)
    check_writable(destination)
    if same_file(destination, model_path):
        raise UsageError(f"--output {output}: is the model file; write the ONNX file elsewhere")
    if destination.exists() and not is_device(destination) and not force:
        raise UsageError(f"{destination}: already exists; nncli export does not overwrite it (--force replaces it)")
    proto = onnxexport.model_proto(load_model(model_path), model_path.stem)
    data = proto.SerializeToString()
    with atomic_write(destination, "wb") as f:
        f.write(data)
    inputs, outputs = onnxexport.ports(proto)
    return Exported(destination, len(data), onnxexport.OPSET, onnxexport.ML_OPSET, inputs, outputs)


def _onnx_export():
    """The graph builder, which imports onnx: an optional extra, so its absence is one line."""
    try:
        from nncli.files import onnxexport
    except ModuleNotFoundError as exc:
        if exc.name and exc.name.split(".")[0] == "onnx":
            raise UsageError(INSTALL_HINT) from None
        raise
    return onnxexport


def _destination(model_path: Path, output: str | None) -> Path:
    if output is None:
        return model_path.with_suffix(".onnx")
    if not output.strip():
        raise UsageError("--output: the path is empty")
    if output.endswith("/"):
        raise UsageError(f"--output {output}: names a folder; give a file name, e.g. {output}model.onnx")
    return Path(output).expanduser()
