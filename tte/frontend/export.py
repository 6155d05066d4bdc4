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


def _set(model: onnx.ModelProto, name: str, value: np.ndarray, resize: bool = False) -> None:
    """Replace an initializer's data; its shape may change only where a new head resizes it."""
    for i, init in enumerate(model.graph.initializer):
        if init.name == name:
            old = numpy_helper.to_array(init)
            if not resize and old.shape != value.shape:
                raise TteError(f"cannot save: '{name}' is {list(old.shape)} in the model but {list(value.shape)} "
                               f"in tte (a bug in tte's export, please report it)")
            model.graph.initializer[i].CopyFrom(numpy_helper.from_array(value.astype(old.dtype), name))
            return
    raise TteError(f"cannot save: trained parameter '{name}' has no int8/int32 initializer of that name in the "
                   f"source model (its bias was stored in float or another scale and tte re-quantized it)")


def _quant_inputs(model: onnx.ModelProto, name: str):
    """(scale, zero point) initializer names that go with the quantized initializer ``name``, and the
    DequantizeLinear node reading it (None in QOperator models)."""
    for node in model.graph.node:
        if node.op_type == "DequantizeLinear" and node.input[0] == name:
            return node.input[1], (node.input[2] if len(node.input) > 2 else None), node
        if node.op_type in _QOP_WEIGHT and len(node.input) > 3 and node.input[3] == name:
            return node.input[4], node.input[5], None
    return None, None, None


def _set_axis(node: onnx.NodeProto, axis: int) -> None:
    for a in node.attribute:
        if a.name == "axis":
            a.i = axis
            return
    node.attribute.append(onnx.helper.make_attribute("axis", axis))


# operand positions of (y_scale, y_zero_point) of ops that produce int8 directly
_OUT_QUANT = {"QuantizeLinear": 1, "QLinearConv": 6, "QLinearMatMul": 6, "QGemm": 7}
_PASS_THROUGH = ("Flatten", "Reshape", "Squeeze", "Unsqueeze", "Identity")


def _set_head_output_quant(model: onnx.ModelProto, program: Program) -> None:
    """Point the new head's output QuantizeLinear (or QLinear op) and the DequantizeLinear nodes that read
    it at fresh scale / zero point initializers holding the head's own output quantization."""
    head = next(n for n in program.forward.nodes if n.name == program.plan.classifier)
    q = program.forward[head.output].quant
    scale_name, zp_name = f"{head.name}.tte_output_scale", f"{head.name}.tte_output_zero_point"
    model.graph.initializer.extend([numpy_helper.from_array(np.asarray(q.scale, np.float32), scale_name),
                                    numpy_helper.from_array(np.asarray(q.zero_point, np.int8), zp_name)])
    producer = next(n for n in model.graph.node if head.output in n.output)
    i = _OUT_QUANT[producer.op_type]
    producer.input[i], producer.input[i + 1] = scale_name, zp_name
    tensors = {head.output}
    for node in model.graph.node:  # nodes are in topological order
        if node.input and node.input[0] in tensors:
            if node.op_type in _PASS_THROUGH:
                tensors.update(node.output)
            elif node.op_type == "DequantizeLinear":
                node.input[1:] = [scale_name, zp_name]


def save_trained(program: Program, path: str | os.PathLike) -> None:
    model = onnx.load(program.source)
    params = program.parameters()
    fwd = program.forward
    head_changed = "head" in fwd.metadata
    for name, value in params.items():
        # gemm weights stored as [K, N] in ONNX (Gemm transB=0, MatMul) are [N, K] inside tte
        kn = fwd.metadata.get(f"layout:{name}") == "KN"
        head = head_changed and program.params[name].node == program.plan.classifier
        _set(model, name, value.T if kn else value, resize=head)
        if head:
            q = fwd[name].quant
            scale_name, zp_name, dq = _quant_inputs(model, name)
            scale, zp = q.scale, q.zero_point
            perm = program.perms.get(name)
            for axis, p in reversed(perm.steps if perm else []):
                if axis == 0:  # per-channel parameters follow the rows
                    scale, zp = scale[np.argsort(p)], zp[np.argsort(p)]
            if scale_name:
                _set(model, scale_name, scale.reshape(-1), resize=True)
            if zp_name:
                _set(model, zp_name, zp.reshape(-1), resize=True)
            if dq is not None:  # the new head is quantized per output channel, whatever the old one was
                _set_axis(dq, 1 if kn and program.params[name].kind == "weight" else 0)
    if head_changed:
        _set_head_output_quant(model, program)
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
