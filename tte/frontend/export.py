"""Write a trained program back into the ONNX model it was compiled from.

The trained int8 weights and int32 biases replace their initializers (in the model's own channel
order).  A new classifier head (``classes=N``) also replaces the weight's scale and zero point
initializers and the bias scale, and the class dimension of the graph output.  Everything else is
the user's model, untouched, so ``tte.load`` and onnxruntime both read the result.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

import numpy as np
import onnx
from onnx import numpy_helper

from ..errors import TteError

if TYPE_CHECKING:
    from ..program import Program

# operand positions of (scale, zero point) after a weight in QOperator ops
_QOP_WEIGHT = {"QLinearConv": 3, "QLinearMatMul": 3, "QGemm": 3}


def _set(model: onnx.ModelProto, name: str, value: np.ndarray) -> None:
    for i, init in enumerate(model.graph.initializer):
        if init.name == name:
            old = numpy_helper.to_array(init)
            model.graph.initializer[i].CopyFrom(numpy_helper.from_array(value.astype(old.dtype), name))
            return
    raise TteError(f"cannot save: trained parameter '{name}' has no int8/int32 initializer of that name in the "
                   f"source model (its bias was stored in float or another scale and tte re-quantized it)")


def _quant_inputs(model: onnx.ModelProto, name: str) -> tuple[str | None, str | None]:
    """(scale, zero point) initializer names that go with the quantized initializer ``name``."""
    for node in model.graph.node:
        if node.op_type == "DequantizeLinear" and node.input[0] == name:
            return node.input[1], (node.input[2] if len(node.input) > 2 else None)
        if node.op_type in _QOP_WEIGHT and len(node.input) > 3 and node.input[3] == name:
            return node.input[4], node.input[5]
    return None, None


def save_trained(program: Program, path: str | os.PathLike) -> None:
    model = onnx.load(program.source)
    params = program.parameters()
    fwd = program.forward
    head_changed = "head" in fwd.metadata
    for name, value in params.items():
        _set(model, name, value)
        if head_changed and program.params[name].node == program.plan.classifier:
            q = fwd[name].quant
            scale_name, zp_name = _quant_inputs(model, name)
            scale, zp = q.scale, q.zero_point
            perm = program.perms.get(name)
            for axis, p in reversed(perm.steps if perm else []):
                if axis == 0:  # per-channel parameters follow the rows
                    scale, zp = scale[np.argsort(p)], zp[np.argsort(p)]
            if scale_name:
                _set(model, scale_name, scale.reshape(-1))
            if zp_name:
                _set(model, zp_name, zp.reshape(-1))
    if head_changed:
        classes = fwd[fwd.outputs[0]].shape[1]
        for out in model.graph.output:
            dims = out.type.tensor_type.shape.dim
            if len(dims) == 2:
                dims[1].dim_value = classes
        del model.graph.value_info[:]
    try:
        onnx.checker.check_model(model)
    except Exception as e:  # a bug in the export, not the user's input
        raise TteError(f"the trained model does not pass onnx.checker: {e}") from None
    onnx.save(model, os.fspath(path))
