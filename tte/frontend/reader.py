"""Reading an ONNX file and fixing its input shapes, with one clear error per kind of bad input."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path

import onnx
from onnx import shape_inference

from ..errors import DynamicShapeError, FloatModelError, ModelFileError

InputShapes = Mapping[str, Sequence[int]] | Sequence[int] | None

# Ops whose presence means the model carries int8 quantization.
QUANTIZED_OPS = {
    "QuantizeLinear", "DequantizeLinear", "QLinearConv", "QLinearMatMul", "QGemm", "QLinearAdd",
    "QLinearMul", "QLinearSigmoid", "QLinearConcat", "QLinearAveragePool", "QLinearGlobalAveragePool", "ConvInteger",
    "MatMulInteger", "DynamicQuantizeLinear",
}

QUANTIZE_HINT = (
    "quantize it first with onnxruntime: quantize_static(model_in, model_out, calibration_data_reader, "
    "per_channel=True, activation_type=QuantType.QInt8, weight_type=QuantType.QInt8) "
    "from onnxruntime.quantization"
)


def read_model(path: str | os.PathLike) -> onnx.ModelProto:
    """Load and check an ONNX file; raise :class:`ModelFileError` with one line on any problem."""
    p = Path(path)
    if not p.exists():
        raise ModelFileError(f"{p}: no such file")
    if p.is_dir():
        raise ModelFileError(f"{p}: is a directory, expected an .onnx file")
    if p.stat().st_size == 0:
        raise ModelFileError(f"{p}: file is empty, expected an ONNX model")
    try:
        model = onnx.load(str(p))
    except Exception as e:  # protobuf DecodeError, RuntimeError, OSError, ...
        reason = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise ModelFileError(
            f"{p}: cannot be read as ONNX ({reason}); the file is truncated, corrupt or not an ONNX model"
        ) from None
    if model.ir_version == 0 or not model.HasField("graph") or len(model.graph.node) == 0:
        raise ModelFileError(f"{p}: not an ONNX model (no IR version or no graph nodes); the file is another format")
    try:
        onnx.checker.check_model(model)
    except Exception as e:
        reason = " ".join(str(e).split())[:300]
        raise ModelFileError(f"{p}: malformed ONNX model: {reason}") from None
    return model


def check_quantized(model: onnx.ModelProto, path: str | os.PathLike) -> None:
    if not any(n.op_type in QUANTIZED_OPS for n in model.graph.node):
        raise FloatModelError(f"{path}: float model (no QuantizeLinear, DequantizeLinear or QLinear* nodes); tte needs "
                              f"an int8 model: {QUANTIZE_HINT}")


def graph_inputs(model: onnx.ModelProto) -> list[onnx.ValueInfoProto]:
    inits = {i.name for i in model.graph.initializer}
    return [i for i in model.graph.input if i.name not in inits]


def _normalize_shapes(model: onnx.ModelProto, input_shape: InputShapes, path) -> dict[str, tuple[int, ...]]:
    if input_shape is None:
        return {}
    inputs = graph_inputs(model)
    if isinstance(input_shape, Mapping):
        unknown = set(input_shape) - {i.name for i in inputs}
        if unknown:
            raise DynamicShapeError(f"{path}: --input-shape names unknown input(s) {sorted(unknown)}; the model's "
                                    f"inputs are {[i.name for i in inputs]}")
        return {k: tuple(int(d) for d in v) for k, v in input_shape.items()}
    if len(inputs) != 1:
        raise DynamicShapeError(f"{path}: the model has {len(inputs)} inputs; give --input-shape as NAME=D0,D1,...")
    return {inputs[0].name: tuple(int(d) for d in input_shape)}


def _set_batch(model: onnx.ModelProto, old: int) -> None:
    """Give the graph outputs and value_info whose first dimension is the old static batch a batch of 1."""
    for vi in list(model.graph.output) + list(model.graph.value_info):
        dims = vi.type.tensor_type.shape.dim
        if len(dims) and dims[0].HasField("dim_value") and dims[0].dim_value == old:
            dims[0].dim_value = 1


def fix_input_shapes(model: onnx.ModelProto, input_shape: InputShapes, path,
                     notes: list[str] | None = None) -> onnx.ModelProto:
    """Set the given static shapes on the graph inputs; reject any input left with a dynamic dimension.

    A dynamic (symbolic or unknown) first dimension of an input of rank 2 or more is the batch: it becomes
    1.  ``input_shape`` may also set a static batch to 1 (a model exported with a batch of 16); any other
    change of a static dimension is an error.  What was fixed that way is appended to ``notes``."""
    notes = [] if notes is None else notes
    shapes = _normalize_shapes(model, input_shape, path)
    for inp in graph_inputs(model):
        dims = inp.type.tensor_type.shape.dim
        if inp.name in shapes:
            want = shapes[inp.name]
            if len(want) != len(dims) and len(dims) > 0:
                raise DynamicShapeError(f"{path}: --input-shape for '{inp.name}' has {len(want)} dimensions, the "
                                        f"model's input has {len(dims)}")
            if any(d <= 0 for d in want):
                raise DynamicShapeError(f"{path}: --input-shape for '{inp.name}' must be positive, got {want}")
            for d, (proto_dim, value) in enumerate(zip(dims, want)):
                if proto_dim.HasField("dim_value") and proto_dim.dim_value not in (0, value):
                    if d == 0 and value == 1 and len(dims) >= 2:  # a static batch, run one sample at a time
                        notes.append(f"input '{inp.name}': the model's static batch of {proto_dim.dim_value} set "
                                     f"to 1 by --input-shape")
                        _set_batch(model, proto_dim.dim_value)
                        continue
                    why = " (only the batch, axis 0, may change, and only to 1)" if d == 0 else ""
                    raise DynamicShapeError(f"{path}: --input-shape gives {value} for axis {d} of '{inp.name}', "
                                            f"the model fixes it to {proto_dim.dim_value}{why}")
            del dims[:]
            for value in want:
                dims.add().dim_value = value
            continue
        if not inp.type.tensor_type.HasField("shape"):
            raise DynamicShapeError(f"{path}: input '{inp.name}' has no shape; fix it with --input-shape "
                                    f"{inp.name}=N,C,H,W (Python: tte.load(path, input_shape=...))")
        if len(dims) >= 2 and not (dims[0].HasField("dim_value") and dims[0].dim_value > 0):
            what = f"'{dims[0].dim_param}'" if dims[0].dim_param else "unknown"
            dims[0].Clear()
            dims[0].dim_value = 1
            notes.append(f"input '{inp.name}': dynamic batch dimension {what} set to 1 (tte compiles static shapes "
                         f"and trains one sample per step)")
        for axis, d in enumerate(dims):
            if not d.HasField("dim_value") or d.dim_value <= 0:
                what = f"'{d.dim_param}'" if d.dim_param else "unknown"
                fixed = [x.HasField("dim_value") and x.dim_value > 0 for x in dims]
                shown = ",".join(str(x.dim_value) if ok else "?" for x, ok in zip(dims, fixed))
                # other unknown sizes must come from the user
                hint = ",".join(str(x.dim_value) if ok else ("1" if i == 0 else f"D{i}")
                                for i, (x, ok) in enumerate(zip(dims, fixed)))
                raise DynamicShapeError(
                    f"{path}: input '{inp.name}' has a dynamic dimension {what} at axis {axis} (shape [{shown}]); "
                    f"tte compiles static shapes: fix it with --input-shape {inp.name}={hint} "
                    f"(Python: tte.load(path, input_shape=...))"
                )
    return model


def infer_shapes(model: onnx.ModelProto, path) -> dict[str, tuple[int, ...]]:
    """Static shapes of every tensor onnx's shape inference can determine (a cross-check for ours)."""
    try:
        inferred = shape_inference.infer_shapes(model, check_type=False, strict_mode=False, data_prop=True)
    except Exception as e:
        raise ModelFileError(f"{path}: ONNX shape inference failed: {' '.join(str(e).split())[:300]}") from None
    shapes: dict[str, tuple[int, ...]] = {}
    for vi in list(inferred.graph.value_info) + list(inferred.graph.input) + list(inferred.graph.output):
        t = vi.type.tensor_type
        if t.HasField("shape") and all(d.HasField("dim_value") for d in t.shape.dim):
            shapes[vi.name] = tuple(d.dim_value for d in t.shape.dim)
    return shapes
