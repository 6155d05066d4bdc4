"""Write a trained program back into the ONNX model it was compiled from.

The trained int8 weights and int32 biases replace their initializers (in the model's own channel
order).  A new classifier head (``classes=N``) also replaces the weight's scale and zero point
initializers and the bias scale, and the class dimension of the graph output.  Everything else is
the user's model, untouched, so ``tte.load`` and onnxruntime both read the result.  The source model comes
from the bytes the program read at compile time, and the file is written atomically (:func:`write_atomic`).
"""

from __future__ import annotations

import contextlib
import os
import tempfile
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
            if old.dtype == np.uint8 and value.dtype != np.uint8:  # tte shifted uint8 by -128 at load
                value = value.astype(np.int16) + 128
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


def _used_names(model: onnx.ModelProto) -> set[str]:
    """Tensor names that a node reads or the graph lists as an input or output (subgraphs are not looked into:
    tte's models have none)."""
    return ({i for node in model.graph.node for i in node.input} | {o.name for o in model.graph.output}
            | {i.name for i in model.graph.input})


def write_atomic(path: str | os.PathLike, data: bytes) -> None:
    """Write ``data`` to ``path`` so that a crash or a failed write never leaves ``path`` half written: a
    temporary file in the same directory, flushed and fsync'ed, renamed over ``path`` (os.replace), then the
    directory fsync'ed.  The file gets the mode ``path`` had, or the default one (0666 less the umask)."""
    path = os.fspath(path)
    directory = os.path.dirname(os.path.abspath(path))
    try:
        mode = os.stat(path).st_mode & 0o7777
    except OSError:
        umask = os.umask(0)
        os.umask(umask)
        mode = 0o666 & ~umask
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{os.path.basename(path)}.", suffix=".tmp", dir=directory)
    except OSError as e:
        raise TteError(f"cannot write '{path}': {e.strerror or e}") from None
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        if hasattr(os, "chmod"):
            os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException as e:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        if isinstance(e, OSError):
            raise TteError(f"cannot write '{path}': {e.strerror or e}") from None
        raise
    with contextlib.suppress(OSError):  # make the rename itself durable (POSIX; not possible everywhere)
        dir_fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)


def save_trained(program: Program, path: str | os.PathLike) -> None:
    """Write ``program``'s trained model to ``path`` (atomically), from the source model's bytes the program
    keeps: the source file is not read again."""
    model = onnx.load_model_from_string(program.source_bytes)
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
        used_before = _used_names(model)
        _set_head_output_quant(model, program)
        # the old head's output quantization, now read by nothing: drop it (onnxruntime warns about each unused
        # initializer on every load)
        orphaned = used_before - _used_names(model)
        kept = [init for init in model.graph.initializer if init.name not in orphaned]
        del model.graph.initializer[:]
        model.graph.initializer.extend(kept)
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
    write_atomic(path, model.SerializeToString())
