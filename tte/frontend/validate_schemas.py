"""The operator schemas onnxruntime checks a model's nodes against, beyond what ``onnx.checker`` and ONNX's
own shape inference check (used by :mod:`.validate`, whose checker ``c`` each function takes):

* ONNX ops: the **type constraints** of their schema, for every input whose type is known -- onnxruntime
  refuses, say, an int8 initializer as Reshape's shape, which ONNX's inference lets through;
* the **com.microsoft** ops tte lifts (QLinearAdd, QLinearMul, QLinearSigmoid, QLinearLeakyRelu,
  QLinearGlobalAveragePool, QLinearAveragePool, QLinearConcat, QGemm), for which ONNX has no schema: their
  inputs, attributes, types, scalar parameters and output shapes, as onnxruntime's contrib schemas define
  them.
"""

from __future__ import annotations

import onnx
from onnx import TensorProto

# com.microsoft ops tte lifts, as onnxruntime's schemas define them: (fewest inputs, most inputs or None,
# attributes and their types, the inputs of one 8-bit type, the scale inputs, the output zero point input)
_INT, _INTS, _FLOAT, _STRING = (onnx.AttributeProto.INT, onnx.AttributeProto.INTS, onnx.AttributeProto.FLOAT,
                                onnx.AttributeProto.STRING)
_POOL = {"auto_pad": _STRING, "ceil_mode": _INT, "channels_last": _INT, "count_include_pad": _INT,
         "kernel_shape": _INTS, "pads": _INTS, "strides": _INTS}
CONTRIB = {
    "QLinearAdd": (7, 8, {}, [(0, 2, 3, 5, 7)], (1, 4, 6), 7),
    "QLinearMul": (7, 8, {}, [(0, 2, 3, 5, 7)], (1, 4, 6), 7),
    "QLinearSigmoid": (4, 5, {}, [(0, 2, 4)], (1, 3), 4),
    "QLinearLeakyRelu": (4, 5, {"alpha": _FLOAT}, [(0, 2, 4)], (1, 3), 4),
    "QLinearGlobalAveragePool": (4, 5, {"channels_last": _INT}, [(0, 2, 4)], (1, 3), 4),
    "QLinearAveragePool": (4, 5, _POOL, [(0, 2, 4)], (1, 3), 4),
    "QLinearConcat": (5, None, {"axis": _INT}, None, None, 1),  # Y_scale, Y_zp, then (X, X_scale, X_zp)...
    "QGemm": (6, 9, {"alpha": _FLOAT, "transA": _INT, "transB": _INT}, [(0, 2), (3, 5)], (1, 4, 7), 8),
}
Y_ZERO_POINT = {op: spec[5] for op, spec in CONTRIB.items()}


def type_name(elem_type: int) -> str:
    try:
        return onnx.helper.tensor_dtype_to_string(elem_type).removeprefix("TensorProto.").lower()
    except Exception:  # noqa: BLE001 - an unknown enum value
        return f"type {elem_type}"


def node_attrs(node: onnx.NodeProto) -> dict:
    out = {}
    for a in node.attribute:
        try:
            v = onnx.helper.get_attribute_value(a)
        except Exception:  # noqa: BLE001 - the checker let a malformed attribute through
            continue
        out[a.name] = v.decode(errors="replace") if isinstance(v, bytes) else v
    return out


def onnx_types(c, node: onnx.NodeProto, opset: int) -> None:
    """An ONNX node's inputs against its schema's type constraints (onnxruntime: "Type Error: Type ... of input
    parameter ... is invalid" / "bound to different types")."""
    if node.domain not in ("", "ai.onnx"):
        return
    try:
        schema = onnx.defs.get_schema(node.op_type, opset, "")
    except Exception:  # noqa: BLE001 - onnx.checker has already said whether the op exists
        return
    formals, bound = list(schema.inputs), {}
    constraints = {tc.type_param_str: list(tc.allowed_type_strs) for tc in schema.type_constraints}
    variadic = onnx.defs.OpSchema.FormalParameterOption.Variadic
    for i, name in enumerate(node.input):
        if not formals or (i >= len(formals) and formals[-1].option != variadic):
            break
        if not name or name not in c.types:
            continue
        formal = formals[min(i, len(formals) - 1)]
        t = f"tensor({type_name(c.types[name])})"
        allowed = constraints.get(formal.type_str, [formal.type_str])
        if t not in allowed:
            raise c.bad(f"input '{name}' is {t}; {node.op_type} takes {', '.join(allowed)} there", node)
        if formal.type_str in constraints:
            first, ft = bound.setdefault(formal.type_str, (name, t))
            if ft != t:
                raise c.bad(f"inputs '{first}' ({ft}) and '{name}' ({t}) must be of one type", node)


def contrib_schema(c, node: onnx.NodeProto) -> None:
    """What onnxruntime's checker refuses in a com.microsoft node: input count, attribute names and types."""
    low, high, attrs = CONTRIB[node.op_type][:3]
    if len(node.input) < low or (high is not None and len(node.input) > high):
        want = f"{low} to {high}" if high is not None else f"at least {low}"
        raise c.bad(f"has {len(node.input)} inputs; {node.op_type} takes {want}", node)
    for a in node.attribute:
        if a.name not in attrs:
            raise c.bad(f"has an attribute '{a.name}' that {node.op_type} does not define", node)
        if a.type != attrs[a.name]:
            raise c.bad(f"attribute '{a.name}' is of the wrong type", node)

def contrib_types(c, node: onnx.NodeProto) -> None:
    """A com.microsoft node's type constraints and scalar parameters (rank 0), as onnxruntime's schemas."""
    spec = CONTRIB[node.op_type]
    n = len(node.input)
    groups, scales = spec[3], spec[4]
    if node.op_type == "QLinearConcat":
        groups = [(1, *(i for k in range(2, n, 3) for i in (k, k + 2)))]
        scales = (0, *range(3, n, 3))
    for group in groups:
        types = {node.input[i]: c.types[node.input[i]] for i in group
                 if i < n and node.input[i] and node.input[i] in c.types}
        if any(t not in (TensorProto.INT8, TensorProto.UINT8) for t in types.values()) or \
                len(set(types.values())) > 1:
            raise c.bad("inputs " + ", ".join(f"'{k}' ({type_name(t)})" for k, t in types.items())
                           + " must be all int8 or all uint8", node)
    params = [i for s in scales for i in (s, s + 1) if i < n]  # each scale and the zero point after it
    weight = {"QGemm": (4, 5)}.get(node.op_type, ())
    for i in params:
        name = node.input[i]
        if not name:
            continue
        if i in scales and c.types.get(name, TensorProto.FLOAT) != TensorProto.FLOAT:
            raise c.bad(f"scale '{name}' is {type_name(c.types[name])}; {node.op_type} takes float", node)
        shape = c.shapes.get(name)
        if i not in weight and shape is not None and len(shape) != 0:
            raise c.bad(f"'{name}' has shape {list(shape)}; {node.op_type} takes a scalar there", node)






def contrib_shape(c, node: onnx.NodeProto) -> tuple[int, ...] | None:
    """The output shape of a com.microsoft QLinear* / QGemm node from its inputs' shapes (None: unknown);
    :class:`ModelFileError` where onnxruntime's own shape inference refuses the node."""
    op, a = node.op_type, node_attrs(node)
    shapes = [c.shapes.get(name) if name else None for name in node.input]
    if op == "QLinearConcat":
        xs = shapes[2::3]
        if any(x is None for x in xs) or not xs:
            return None
        rank, axis = len(xs[0]), a.get("axis", 0)
        if not -rank <= axis < rank:
            raise c.bad(f"axis {axis} is out of range for inputs of rank {rank}", node)
        axis %= rank
        if any(len(x) != rank or any(x[i] != xs[0][i] for i in range(rank) if i != axis) for x in xs):
            raise c.bad(f"concatenates inputs of shapes {[list(x) for x in xs]} along axis {axis}", node)
        return tuple(sum(x[axis] for x in xs) if i == axis else d for i, d in enumerate(xs[0]))
    x = shapes[0] if shapes else None
    if x is None:
        return None
    if op in ("QLinearAdd", "QLinearMul"):
        if len(shapes) < 4 or shapes[3] is None:
            return None
        y = shapes[3]
        rank = max(len(x), len(y))
        x, y = (1,) * (rank - len(x)) + tuple(x), (1,) * (rank - len(y)) + tuple(y)
        if any(p != q and 1 not in (p, q) for p, q in zip(x, y)):
            raise c.bad(f"cannot broadcast shapes {list(x)} and {list(y)}", node)
        return tuple(max(p, q) if 1 in (p, q) else p for p, q in zip(x, y))
    if op in ("QLinearSigmoid", "QLinearLeakyRelu"):
        return tuple(x)
    if op in ("QLinearGlobalAveragePool", "QLinearAveragePool") and (len(x) < 3 or a.get("channels_last", 0)):
        return None
    if op == "QLinearGlobalAveragePool":
        return tuple(x[:2]) + (1,) * (len(x) - 2)
    if op == "QLinearAveragePool":
        kernel = list(a.get("kernel_shape", []))
        if len(kernel) != len(x) - 2:
            raise c.bad(f"kernel_shape {kernel} does not fit the input of shape {list(x)}", node)
        r = len(kernel)
        strides, pads = list(a.get("strides", [1] * r)), list(a.get("pads", [0] * 2 * r))
        auto_pad = a.get("auto_pad", "NOTSET") or "NOTSET"
        out = []
        for i in range(r):
            if auto_pad in ("SAME_UPPER", "SAME_LOWER"):
                out.append(-(-x[i + 2] // strides[i]))
            elif auto_pad == "VALID":
                out.append(-(-(x[i + 2] - kernel[i] + 1) // strides[i]))
            else:
                span = x[i + 2] + pads[i] + pads[i + r] - kernel[i]
                out.append((-(-span // strides[i]) if a.get("ceil_mode", 0) else span // strides[i]) + 1)
        if min(out) < 1:
            raise c.bad(f"the {kernel} window does not fit the input of shape {list(x)}", node)
        return tuple(x[:2]) + tuple(out)
    if op == "QGemm":
        w = shapes[3] if len(shapes) > 3 else None
        if w is None or len(x) != 2 or len(w) != 2:
            return None
        m_, k = (x[1], x[0]) if a.get("transA", 0) else (x[0], x[1])
        k2, n = (w[1], w[0]) if a.get("transB", 0) else (w[0], w[1])
        if k != k2:
            raise c.bad(f"multiplies [{m_}, {k}] by [{k2}, {n}]: the inner dimensions differ", node)
        return (m_, n)
    return None
