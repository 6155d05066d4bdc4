"""The IR verifier: run after every transformation (the tests do).

Checks: every value is defined before use and assigned once; ops are known and carry their
attributes; operand and result dtypes and shapes follow the op's rule; quantized tensors carry
consistent quantization parameters.  A failure raises :class:`tte.errors.IRError` whose message shows
the graph around the offending node.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..errors import IRError
from .registry import OPS, output_types

if TYPE_CHECKING:
    from .graph import Graph, Node


def _fail(g: Graph, node: Node | None, msg: str) -> None:
    where = ""
    if node is not None:
        from .printer import dump_around

        where = f" at node '{node.name}' ({node.op})\n{dump_around(g, node)}"
    raise IRError(f"IR verification failed: {msg}{where}")


def _check_quant(g: Graph, node: Node | None, name: str) -> None:
    v = g[name]
    if v.dtype in ("float32", "bool"):
        if v.quant is not None:
            _fail(g, node, f"{v.dtype} value '{name}' has quantization parameters")
        return
    if v.quant is None:
        if v.dtype == "int32":
            return  # plain integers (class labels, step counters); biases are checked at their conv/gemm
        _fail(g, node, f"{v.dtype} value '{name}' has no quantization parameters")
    q = v.quant
    if q.axis is not None:
        if not 0 <= q.axis < len(v.shape) or q.scale.size != v.shape[q.axis]:
            _fail(g, node, f"per-channel quantization of '{name}' {v.shape} along axis {q.axis} "
                  f"has {q.scale.size} scales")
    if not (q.scale > 0).all():
        _fail(g, node, f"'{name}' has a non-positive scale")
    if v.dtype == "int8" and not ((q.zero_point >= -128) & (q.zero_point <= 127)).all():
        _fail(g, node, f"int8 value '{name}' has a zero point outside [-128, 127]")


def verify(g: Graph) -> None:
    defined: set[str] = set()
    for name in g.inputs:
        if name not in g.values:
            _fail(g, None, f"graph input '{name}' has no value")
        if g[name].is_const:
            _fail(g, None, f"graph input '{name}' is a constant")
        defined.add(name)
    for v in g.constants():
        if tuple(v.data.shape) != v.shape or str(v.data.dtype) != v.dtype:
            _fail(g, None, f"constant '{v.name}' data {v.data.dtype}{list(v.data.shape)} != declared {v.type_str()}")
        defined.add(v.name)
    for name in defined:
        _check_quant(g, None, name)

    for node in g.nodes:
        opdef = OPS.get(node.op)
        if opdef is None:
            _fail(g, node, f"unknown op '{node.op}'")
        for a in opdef.attrs:
            if a not in node.attrs:
                _fail(g, node, f"missing attribute '{a}'")
        for name in node.inputs:
            if name not in g.values:
                _fail(g, node, f"operand '{name}' does not exist")
            if name not in defined:
                _fail(g, node, f"operand '{name}' is used before it is defined")
        if opdef.operands is not None:
            n_min = len(opdef.operands) - opdef.optional
            if not n_min <= len(node.inputs) <= len(opdef.operands):
                _fail(g, node, f"expects {len(opdef.operands)} operands, has {len(node.inputs)}")
            for name, dtype in zip(node.inputs, opdef.operands):
                if dtype != "*" and g[name].dtype not in dtype.split("|"):
                    _fail(g, node, f"operand '{name}' is {g[name].dtype}, expected {dtype}")
        elif not node.inputs or any(g[i].dtype != "int8" for i in node.inputs):
            _fail(g, node, "expects one or more int8 operands")
        try:
            types = output_types(g, node)
        except (ValueError, KeyError, IndexError) as e:
            _fail(g, node, str(e))
        if len(node.outputs) != len(types):
            _fail(g, node, f"has {len(node.outputs)} outputs, expected {len(types)}")
        for out, (dtype, shape) in zip(node.outputs, types):
            if out in defined:
                _fail(g, node, f"value '{out}' is assigned twice")
            if out not in g.values:
                _fail(g, node, f"result '{out}' has no value")
            ov = g[out]
            if ov.is_const:
                _fail(g, node, f"result '{out}' is a constant")
            if ov.dtype != dtype:
                _fail(g, node, f"result '{out}' is {ov.dtype}, expected {dtype}")
            if tuple(shape) != ov.shape:
                _fail(g, node, f"result '{out}' has shape {ov.shape}, the op's rule gives {tuple(shape)}")
            defined.add(out)
            _check_quant(g, node, out)
        _check_node_quant(g, node)

    for name in g.outputs:
        if name not in defined:
            _fail(g, None, f"graph output '{name}' is never defined")
    for param, new in g.state_updates.items():
        if param not in g.state or new not in defined:
            _fail(g, None, f"state update {param} <- {new} names an unknown value")
        if g[param].dtype != g[new].dtype or g[param].shape != g[new].shape:
            _fail(g, None, f"state update {param} <- {new} changes type {g[param].type_str()} -> {g[new].type_str()}")


def _check_node_quant(g: Graph, node: Node) -> None:
    for name in node.inputs:
        v = g[name]
        if v.dtype == "int8" and not v.is_const and name not in g.state and v.quant.axis is not None:
            _fail(g, node, f"activation '{name}' is quantized per channel; activations must be per tensor")
    out = g[node.outputs[0]]
    if out.dtype == "int8" and out.quant.axis is not None and node.op in OPS and OPS[node.op].requantizes:
        _fail(g, node, f"activation '{out.name}' is quantized per channel")
    if "qmin" in node.attrs and OPS[node.op].requantizes:
        lo, hi = node.attrs["qmin"], node.attrs["qmax"]
        if not -128 <= lo <= hi <= 127:
            _fail(g, node, f"clamp [{lo}, {hi}] is not inside [-128, 127]")
    if node.op == "reshape" and g[node.inputs[0]].quant != out.quant:
        _fail(g, node, "reshape changes quantization parameters")
    if node.op in ("conv", "gemm"):
        w, b = g[node.inputs[1]], g[node.inputs[2]]
        if not all(v.is_const or v.name in g.state for v in (w, b)):
            _fail(g, node, "weight and bias must be constants or trained parameters")
        if b.quant is None:
            _fail(g, node, f"bias '{b.name}' has no quantization parameters")
        if w.quant.axis not in (None, 0):
            _fail(g, node, f"weight '{w.name}' must be quantized per output channel (axis 0)")
