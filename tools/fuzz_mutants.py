"""The mutants of tools/fuzz.py: byte-level and structural changes to an ONNX model, seeded.

Mutant ``index`` of ``seed`` depends only on (seed, index) and the model (:func:`mutant`): any mutant can be
rebuilt on its own.  Structural mutators change attributes, initializer dims, dtypes and data, scales and zero
points, nodes (removed, duplicated, reordered, rewired, retyped), graph inputs and outputs and the opset; 1 to 3
of them make one mutant.  A mutator that cannot apply to what the earlier ones left is skipped.
"""

from __future__ import annotations

import math

import numpy as np
import onnx
from onnx import helper, numpy_helper

# -- mutators ---------------------------------------------------------------------------------------
INTS = [-(2**31), -2, -1, 0, 1, 2, 3, 4, 5, 7, 8, 16, 255, 256, 65535, 2**31 - 1, 2**31, 2**40]
FLOATS = [0.0, -0.0, -1.0, 1.0, 0.5, 6.0, 1e-30, 1e30, 3.4e38, math.nan, math.inf, -math.inf]
AUTO_PAD = ["NOTSET", "SAME_UPPER", "SAME_LOWER", "VALID", "", "BOGUS"]
ATTRS = {  # name -> kind, for attributes added to a node
    "auto_pad": "s", "pads": "ints", "kernel_shape": "ints", "strides": "ints", "dilations": "ints",
    "group": "i", "transA": "i", "transB": "i", "axis": "i", "keepdims": "i", "count_include_pad": "i",
    "ceil_mode": "i", "allowzero": "i", "channels_last": "i", "block_size": "i", "saturate": "i",
    "output_dtype": "i", "storage_order": "i", "axes": "ints", "perm": "ints", "alpha": "f", "beta": "f",
    "min": "f", "max": "f",
}
OP_TYPES = ["Conv", "QLinearConv", "ConvInteger", "MaxPool", "AveragePool", "GlobalAveragePool", "Add", "Mul",
            "Relu", "Clip", "Sigmoid", "HardSwish", "Flatten", "Reshape", "Squeeze", "Unsqueeze", "Gemm", "MatMul",
            "Concat", "QuantizeLinear", "DequantizeLinear", "Identity", "ReduceMean", "Transpose", "Softmax", "Pad",
            "BatchNormalization", "QLinearMatMul", "Tanh"]
CONTRIB = ["QLinearAdd", "QLinearMul", "QGemm", "QLinearConcat", "QLinearAveragePool", "QLinearGlobalAveragePool",
           "QLinearSigmoid"]
DTYPES = [0, 1, 2, 3, 4, 5, 6, 7, 9, 10, 11, 12, 13, 16, 17, 21, 22, 999]


def _pick(rng, seq):
    return seq[int(rng.integers(len(seq)))]


def _int(rng, old: int | None = None) -> int:
    if old is not None and rng.random() < 0.3:
        return int(old + _pick(rng, [-2, -1, 1, 2]))
    return int(_pick(rng, INTS))


def _ints(rng, old: list[int]) -> list[int]:
    old = list(old)
    r = rng.random()
    if old and r < 0.5:
        old[int(rng.integers(len(old)))] = _int(rng, old[0])
    elif old and r < 0.65:
        old.pop(int(rng.integers(len(old))))
    elif r < 0.8:
        old.append(_int(rng))
    else:
        old = [int(_pick(rng, [0, 1, 2, 3, 4, 65535, -1])) for _ in range(int(rng.integers(0, 7)))]
    return old


def _attr(rng, name: str, kind: str, old=None) -> onnx.AttributeProto:
    if kind == "i":
        return helper.make_attribute(name, _int(rng, old))
    if kind == "ints":
        return helper.make_attribute(name, _ints(rng, old or []), attr_type=onnx.AttributeProto.INTS)
    if kind == "f":
        return helper.make_attribute(name, float(_pick(rng, FLOATS)))
    return helper.make_attribute(name, str(_pick(rng, AUTO_PAD)))


def _kind(a: onnx.AttributeProto) -> str | None:
    return {a.INT: "i", a.INTS: "ints", a.FLOAT: "f", a.STRING: "s"}.get(a.type)


def m_attr_value(rng, m):
    nodes = [n for n in m.graph.node if any(_kind(a) for a in n.attribute)]
    if not nodes:
        return None
    n = _pick(rng, nodes)
    a = _pick(rng, [a for a in n.attribute if _kind(a)])
    new = _attr(rng, a.name, _kind(a), helper.get_attribute_value(a))
    a.CopyFrom(new)
    return f"{n.name or n.op_type}.{a.name}={helper.get_attribute_value(a)!r}"


def m_attr_delete(rng, m):
    nodes = [n for n in m.graph.node if n.attribute]
    if not nodes:
        return None
    n = _pick(rng, nodes)
    a = _pick(rng, list(n.attribute))
    n.attribute.remove(a)
    return f"{n.name or n.op_type} -{a.name}"


def m_attr_add(rng, m):
    n = _pick(rng, list(m.graph.node))
    name = _pick(rng, list(ATTRS))
    for a in list(n.attribute):
        if a.name == name:
            n.attribute.remove(a)
    n.attribute.append(_attr(rng, name, ATTRS[name]))
    return f"{n.name or n.op_type} +{name}={helper.get_attribute_value(n.attribute[-1])!r}"


def _quant_inits(m) -> list[str]:
    """Initializers used as a scale or zero point (Q/DQ inputs 1, 2; QLinear* triples)."""
    names = set()
    for n in m.graph.node:
        if n.op_type in ("QuantizeLinear", "DequantizeLinear"):
            names.update(n.input[1:3])
        elif n.op_type.startswith("QLinear") or n.op_type == "QGemm":
            names.update(n.input[1:])
    inits = {i.name for i in m.graph.initializer}
    return sorted(names & inits)


def _init(rng, m, names=None) -> onnx.TensorProto | None:
    inits = [i for i in m.graph.initializer if names is None or i.name in names]
    return _pick(rng, inits) if inits else None


def m_init_dims(rng, m):
    t = _init(rng, m)
    if t is None:
        return None
    dims = list(t.dims)
    r = rng.random()
    if dims and r < 0.6:
        dims[int(rng.integers(len(dims)))] = int(_pick(rng, [0, 1, -1, 2, 3, dims[0] + 1, 2**31, 2**40]))
    elif r < 0.8:
        dims.insert(int(rng.integers(len(dims) + 1)), int(_pick(rng, [1, 2, 0])))
    elif dims:
        dims.pop(int(rng.integers(len(dims))))
    del t.dims[:]
    t.dims.extend(dims)
    return f"{t.name}.dims={dims}"


def m_init_dtype(rng, m):
    t = _init(rng, m)
    if t is None:
        return None
    t.data_type = int(_pick(rng, DTYPES))
    return f"{t.name}.data_type={t.data_type}"


def m_init_raw(rng, m):
    t = _init(rng, m)
    if t is None or not t.raw_data:
        return None
    raw = bytearray(t.raw_data)
    r = rng.random()
    if r < 0.3:
        raw = raw[:int(rng.integers(len(raw)))]
    elif r < 0.5:
        raw += bytes(rng.integers(0, 256, int(rng.integers(1, 9)), dtype=np.uint8))
    else:
        for _ in range(int(rng.integers(1, 5))):
            raw[int(rng.integers(len(raw)))] = int(rng.integers(256))
    t.raw_data = bytes(raw)
    return f"{t.name}.raw_data[{len(raw)}]"


def m_init_values(rng, m, names=None):
    t = _init(rng, m, names)
    if t is None:
        return None
    try:
        a = numpy_helper.to_array(t).copy()
    except Exception:
        return None
    if a.size == 0:
        return None
    flat = a.reshape(-1)
    k = int(rng.integers(1, min(flat.size, 4) + 1))
    idx = rng.choice(flat.size, k, replace=False)
    if a.dtype.kind == "f":
        flat[idx] = _pick(rng, FLOATS)
    elif a.dtype.kind in "iu":
        info = np.iinfo(a.dtype)
        flat[idx] = _pick(rng, [info.min, info.max, 0, 1, -1 if info.min < 0 else 2])
    else:
        return None
    t.CopyFrom(numpy_helper.from_array(a, t.name))
    return f"{t.name}[{idx.tolist()}]={flat[idx[0]]!r}"


def m_quant(rng, m):
    """A scale or zero point: other values, another dtype, a vector, a different length."""
    names = _quant_inits(m)
    if not names:
        return None
    t = _init(rng, m, names)
    a = numpy_helper.to_array(t)
    r = rng.random()
    if r < 0.3:
        return m_init_values(rng, m, {t.name})
    if r < 0.55 and a.dtype.kind in "iu":
        new = a.astype(_pick(rng, [np.uint8, np.int8, np.int16, np.int32, np.uint16]))
    elif r < 0.8:
        n = int(_pick(rng, [2, 3, 8, a.size + 1, max(a.size - 1, 1)]))
        new = np.resize(a.reshape(-1), n)
    else:
        new = a.reshape(-1)[:1].reshape(()) if a.ndim else a.reshape(1)
    t.CopyFrom(numpy_helper.from_array(np.ascontiguousarray(new), t.name))
    return f"{t.name}={new.dtype}{list(new.shape)}"


def m_node_remove(rng, m):
    i = int(rng.integers(len(m.graph.node)))
    n = m.graph.node[i]
    del m.graph.node[i]
    return f"-node {n.name or n.op_type}"


def m_node_duplicate(rng, m):
    i = int(rng.integers(len(m.graph.node)))
    n = onnx.NodeProto()
    n.CopyFrom(m.graph.node[i])
    if rng.random() < 0.8:
        for k in range(len(n.output)):
            n.output[k] = n.output[k] + "_dup"
        n.name = n.name + "_dup"
    m.graph.node.insert(i + 1, n)
    return f"+node copy of {n.name or n.op_type}"


def m_node_reorder(rng, m):
    if len(m.graph.node) < 2:
        return None
    i, j = sorted(int(x) for x in rng.choice(len(m.graph.node), 2, replace=False))
    a, b = onnx.NodeProto(), onnx.NodeProto()
    a.CopyFrom(m.graph.node[i])
    b.CopyFrom(m.graph.node[j])
    m.graph.node[i].CopyFrom(b)
    m.graph.node[j].CopyFrom(a)
    return f"swap nodes {i},{j}"


def m_swap_inputs(rng, m):
    nodes = [n for n in m.graph.node if len(n.input) >= 2]
    if not nodes:
        return None
    n = _pick(rng, nodes)
    i, j = (int(x) for x in rng.choice(len(n.input), 2, replace=False))
    n.input[i], n.input[j] = n.input[j], n.input[i]
    return f"{n.name or n.op_type} swap inputs {i},{j}"


def m_rewire(rng, m):
    """An input of a node reads another tensor defined before it (or nothing, or an unknown name)."""
    i = int(rng.integers(len(m.graph.node)))
    n = m.graph.node[i]
    known = [x.name for x in m.graph.input] + [t.name for t in m.graph.initializer]
    known += [o for p in m.graph.node[:i] for o in p.output]
    r = rng.random()
    if r < 0.1:
        n.input.append(_pick(rng, known))
        return f"{n.name or n.op_type} +input"
    if not n.input:
        return None
    k = int(rng.integers(len(n.input)))
    if r < 0.25:
        del n.input[len(n.input) - 1:]
        return f"{n.name or n.op_type} -last input"
    n.input[k] = _pick(rng, known) if r < 0.9 else _pick(rng, ["", "nowhere"])
    return f"{n.name or n.op_type}.input[{k}]={n.input[k]!r}"


def m_op_type(rng, m):
    n = _pick(rng, list(m.graph.node))
    if rng.random() < 0.3:
        n.op_type, n.domain = _pick(rng, CONTRIB), _pick(rng, ["com.microsoft", "com.microsoft", ""])
    else:
        n.op_type, n.domain = _pick(rng, OP_TYPES), ""
    return f"{n.name} -> {n.domain}:{n.op_type}"


def m_outputs(rng, m):
    g = m.graph
    r = rng.random()
    if r < 0.3 and g.output:
        del g.output[int(rng.integers(len(g.output)))]
        return "-output"
    if r < 0.5 and g.output:
        o = onnx.ValueInfoProto()
        o.CopyFrom(g.output[0])
        g.output.append(o)
        return "duplicate output"
    if r < 0.75:
        name = _pick(rng, [o for n in g.node for o in n.output])
        g.output.append(helper.make_tensor_value_info(name, int(_pick(rng, [1, 3, 0, 7])), None))
        return f"+output {name}"
    if g.output:
        g.output[0].type.tensor_type.elem_type = int(_pick(rng, [0, 3, 7, 999]))
        return f"output elem_type={g.output[0].type.tensor_type.elem_type}"
    return None


def m_input(rng, m):
    inp = m.graph.input[0]
    t = inp.type.tensor_type
    r = rng.random()
    if r < 0.3:
        t.elem_type = int(_pick(rng, [0, 2, 3, 6, 7, 10, 11, 999]))
        return f"input elem_type={t.elem_type}"
    dims = t.shape.dim
    if r < 0.7 and len(dims):
        d = dims[int(rng.integers(len(dims)))]
        if rng.random() < 0.2:
            d.dim_param = "N"
        else:
            d.dim_value = int(_pick(rng, [0, 1, 2, 3, 31, 33, 64, 4096, 2**31, -1]))
        return f"input dims={[x.dim_value or x.dim_param for x in dims]}"
    if r < 0.85 and len(dims):
        del dims[int(rng.integers(len(dims)))]
        return "input -dim"
    dims.add().dim_value = int(_pick(rng, [1, 2]))
    return "input +dim"


def m_opset(rng, m):
    m.opset_import[0].version = int(_pick(rng, [1, 7, 10, 11, 12, 13, 17, 19, 21, 22, 30]))
    return f"opset={m.opset_import[0].version}"


STRUCTURAL = [(m_attr_value, 6), (m_attr_delete, 2), (m_attr_add, 4), (m_init_dims, 3), (m_init_dtype, 2),
              (m_init_raw, 2), (m_init_values, 3), (m_quant, 6), (m_node_remove, 2), (m_node_duplicate, 1),
              (m_node_reorder, 1), (m_swap_inputs, 2), (m_rewire, 3), (m_op_type, 3), (m_outputs, 2),
              (m_input, 2), (m_opset, 1)]


def byte_mutant(rng, data: bytes) -> tuple[str, bytes]:
    b = bytearray(data)
    kind = _pick(rng, ["flip", "set", "truncate", "insert", "delete", "duplicate"])
    if kind == "flip":
        for _ in range(int(rng.integers(1, 9))):
            b[int(rng.integers(len(b)))] ^= 1 << int(rng.integers(8))
    elif kind == "set":
        for _ in range(int(rng.integers(1, 5))):
            b[int(rng.integers(len(b)))] = int(_pick(rng, [0, 1, 0x7F, 0x80, 0xFF, int(rng.integers(256))]))
    elif kind == "truncate":
        b = b[:int(rng.integers(len(b)))]
    elif kind == "insert":
        at = int(rng.integers(len(b) + 1))
        b[at:at] = bytes(rng.integers(0, 256, int(rng.integers(1, 17)), dtype=np.uint8))
    elif kind == "delete":
        at = int(rng.integers(len(b)))
        del b[at:at + int(rng.integers(1, 65))]
    else:
        at, n = int(rng.integers(len(b))), int(rng.integers(1, 65))
        to = int(rng.integers(len(b)))
        b[to:to] = b[at:at + n]
    return f"bytes:{kind}", bytes(b)


def mutant(seed: int, index: int, base: onnx.ModelProto, data: bytes) -> tuple[str, bytes]:
    """Mutant ``index`` of ``seed``: (what was changed, the serialized model)."""
    rng = np.random.default_rng([seed, index])
    if rng.random() < 0.3:
        return byte_mutant(rng, data)
    m = onnx.ModelProto()
    m.CopyFrom(base)
    fns, weights = zip(*STRUCTURAL)
    p = np.asarray(weights, float) / sum(weights)
    done = []
    for _ in range(int(_pick(rng, [1, 1, 1, 1, 2, 2, 3]))):
        for _attempt in range(5):
            fn = fns[int(rng.choice(len(fns), p=p))]
            try:
                what = fn(rng, m)
            except Exception:  # noqa: BLE001 - a mutator that cannot apply to what earlier ones left
                what = None
            if what:
                done.append(f"{fn.__name__[2:]}:{what}")
                break
    return "; ".join(done) or "unchanged", m.SerializeToString()
