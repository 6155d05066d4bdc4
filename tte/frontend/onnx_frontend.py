"""ONNX (QDQ and QOperator int8 models) -> tte IR.

Two forms of quantized model reach us:

* **QDQ** (onnxruntime's default): float ops sandwiched between DequantizeLinear and QuantizeLinear.
  We track, for every ONNX tensor, what it *is* in integer terms (an int8 IR value, the real-valued
  view of one, a quantized constant, or a float op still waiting for the QuantizeLinear that will fix
  its output parameters).  When that QuantizeLinear arrives, the pending op becomes one IR node.
  Relu / Clip between the op and its QuantizeLinear fold into the int8 clamp.
* **QOperator**: QLinearConv, QLinearMatMul and the com.microsoft QLinearAdd, QGemm,
  QLinearGlobalAveragePool, QLinearAveragePool, QLinearConcat map one to one onto IR nodes.

Both forms may mix in one model.  Every unsupported construct raises a one-line
:class:`UnsupportedModelError` naming the node.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import onnx
from onnx import numpy_helper

from ..errors import IRError, UnsupportedModelError
from ..ir import Graph, QuantParams, Value, output_shape
from ..ops import OPS
from ..reference.semantics import clamp_bounds
from .reader import InputShapes, check_quantized, fix_input_shapes, graph_inputs, infer_shapes, read_model

# the ONNX ops the lifter takes: each IR op's ``onnx`` facet, plus what only moves names around
SUPPORTED_OPS = sorted({t for op in OPS.values() for t in op.onnx} | {"Identity", "Constant"})


# -- what an ONNX tensor is, in integer terms -----------------------------------------------------
@dataclass(frozen=True)
class Int8:
    """An int8 IR value."""
    name: str


@dataclass(frozen=True)
class Real:
    """The dequantized (real-valued) view of the int8 IR value ``name``."""
    name: str


@dataclass(frozen=True)
class Const:
    """A constant (initializer or Constant node) used as is."""
    data: np.ndarray
    name: str = ""


@dataclass(frozen=True)
class QConst:
    """A dequantized constant: real = scale * (data - zero_point).  ``name``: the ONNX initializer."""
    data: np.ndarray
    quant: QuantParams
    name: str = ""


@dataclass(frozen=True)
class FloatInput:
    """A float graph input that has not been quantized yet."""
    name: str


@dataclass(frozen=True)
class Pending:
    """A float op on real views, waiting for the QuantizeLinear that fixes its output parameters."""
    op: str
    node: onnx.NodeProto
    operands: tuple
    attrs: dict = field(default_factory=dict)
    lo: float | None = None
    hi: float | None = None
    reshape: tuple[int, ...] | None = None  # a Flatten/Reshape/Squeeze applied before the QuantizeLinear


Entry = Int8 | Real | Const | QConst | FloatInput | Pending


def _attrs(node: onnx.NodeProto) -> dict[str, Any]:
    return {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}


def _desc(node: onnx.NodeProto) -> str:
    return f"{node.op_type} node '{node.name or node.output[0]}'"


class Lifter:
    def __init__(self, model: onnx.ModelProto, path: str, onnx_shapes: dict[str, tuple[int, ...]]):
        self.model = model
        self.path = path
        self.onnx_shapes = onnx_shapes
        self.g = Graph(model.graph.name or os.path.splitext(os.path.basename(path))[0])
        self.env: dict[str, Entry] = {}
        self.node_names: set[str] = set()

    # -- helpers ----------------------------------------------------------------------------
    def fail(self, node: onnx.NodeProto | None, msg: str) -> UnsupportedModelError:
        where = f"{_desc(node)}: " if node is not None else ""
        return UnsupportedModelError(f"{self.path}: {where}{msg}")

    def entry(self, node: onnx.NodeProto, name: str) -> Entry:
        if name not in self.env:
            raise self.fail(node, f"input '{name}' is not produced by any earlier node")
        return self.env[name]

    def const(self, node: onnx.NodeProto, name: str) -> np.ndarray:
        e = self.entry(node, name)
        if not isinstance(e, Const):
            raise self.fail(node, f"input '{name}' must be a constant")
        return e.data

    def opt_input(self, node: onnx.NodeProto, i: int) -> str | None:
        return node.input[i] if len(node.input) > i and node.input[i] else None

    def node_name(self, base: str) -> str:
        name, i = base, 1
        while name in self.node_names:
            name, i = f"{base}.{i}", i + 1
        self.node_names.add(name)
        return name

    def act_quant(self, node: onnx.NodeProto, scale: np.ndarray, zero_point: np.ndarray | None) -> QuantParams:
        """Per-tensor int8 activation parameters from a Q/DQ or QLinear* operand pair.

        Without a zero point ONNX quantizes to uint8, which tte does not take."""
        dtype = np.dtype(np.uint8) if zero_point is None else zero_point.dtype
        if dtype != np.int8:
            raise self.fail(node, f"activations are {dtype}"
                                  f"{' (no zero point given)' if zero_point is None else ''}; tte supports int8 "
                                  f"activations only: quantize with activation_type=QuantType.QInt8")
        _check_scale(self, node, scale)
        if np.asarray(scale).size != 1:
            raise self.fail(node, "activations are quantized per channel; tte supports per-tensor activations")
        zp = 0 if zero_point is None else int(np.asarray(zero_point).reshape(()))
        return QuantParams.per_tensor(float(np.asarray(scale).reshape(())), zp)

    def emit(self, op: str, name: str, inputs: list[str], out_name: str, quant: QuantParams | None,
             dtype: str = "int8", **attrs) -> str:
        """Append an IR node; its output shape comes from the op's own shape rule."""
        from ..ir import Node

        probe = Node(op, name, inputs, [], attrs)
        try:
            shape = output_shape(self.g, probe)
        except (ValueError, IndexError, ZeroDivisionError) as e:
            raise UnsupportedModelError(f"{self.path}: node '{name}': {e}") from None
        out = Value(self.g.unique_name(out_name), dtype, shape, quant)
        self.g.add_node(op, self.node_name(name), inputs, [out], **attrs)
        return out.name

    def weight(self, node: onnx.NodeProto, e: Entry, what: str, cout_axis: int) -> tuple[np.ndarray, QuantParams]:
        if isinstance(e, Const) and e.data.dtype == np.float32:
            raise self.fail(node, f"{what} is float: the model is not fully quantized; {_quant_hint()}")
        if not isinstance(e, QConst):
            raise self.fail(node, f"{what} must be a constant int8 tensor (through DequantizeLinear)")
        if e.data.dtype != np.int8:
            raise self.fail(node, f"{what} is {e.data.dtype}; tte supports int8 weights: quantize with "
                                  f"weight_type=QuantType.QInt8")
        q = e.quant
        if q.axis is not None and q.axis != cout_axis:
            raise self.fail(node, f"{what} is quantized along axis {q.axis}; expected the output-channel axis "
                                  f"{cout_axis}")
        return e.data, q

    # -- the walk ---------------------------------------------------------------------------
    def lift(self) -> Graph:
        gr = self.model.graph
        for init in gr.initializer:
            self.env[init.name] = Const(numpy_helper.to_array(init), init.name)
        for inp in graph_inputs(self.model):
            t = inp.type.tensor_type
            shape = tuple(d.dim_value for d in t.shape.dim)
            if t.elem_type != onnx.TensorProto.FLOAT:
                raise UnsupportedModelError(
                    f"{self.path}: input '{inp.name}' is {onnx.helper.tensor_dtype_to_np_dtype(t.elem_type)}; tte "
                    f"takes float32 inputs quantized inside the graph (QuantizeLinear)")
            self.g.add_input(Value(inp.name, "float32", shape))
            self.env[inp.name] = FloatInput(inp.name)
        for node in gr.node:
            handler = getattr(self, f"op_{node.op_type}", None)
            if handler is None or node.domain not in ("", "ai.onnx", "com.microsoft"):
                raise self.fail(node, f"unsupported op '{node.op_type}'"
                                      f"{' (domain ' + node.domain + ')' if node.domain else ''}; tte supports "
                                      f"{', '.join(SUPPORTED_OPS)}")
            handler(node)
        for out in gr.output:
            self.finish_output(out.name)
        _fold_clamps(self.g)
        self.g.remove_unused_values()
        self.cross_check_shapes()
        self.g.metadata.update({"source": str(self.path), "producer": self.model.producer_name})
        return self.g

    def finish_output(self, name: str) -> None:
        e = self.env.get(name)
        if isinstance(e, Real):
            out = self.emit("dequantize", f"{name}.dequantize", [e.name], name, None, dtype="float32")
        elif isinstance(e, Int8):
            out = e.name
        else:
            raise UnsupportedModelError(
                f"{self.path}: graph output '{name}' is not computed from int8 tensors (it comes from a float op "
                f"with no QuantizeLinear after it); the model is not fully quantized: {_quant_hint()}")
        self.g.outputs.append(out)

    def cross_check_shapes(self) -> None:
        for v in self.g.values.values():
            want = self.onnx_shapes.get(v.name)
            if want is not None and not v.is_const and want != v.shape:
                raise UnsupportedModelError(f"{self.path}: tensor '{v.name}' has shape {v.shape} in tte but "
                                            f"{want} by ONNX shape inference")

    # -- quantization boundaries ------------------------------------------------------------
    def op_Constant(self, node):
        a = _attrs(node)
        if "value" not in a:
            raise self.fail(node, "only Constant with a tensor 'value' is supported")
        self.env[node.output[0]] = Const(numpy_helper.to_array(a["value"]), node.output[0])

    def op_Identity(self, node):
        self.env[node.output[0]] = self.entry(node, node.input[0])

    def op_QuantizeLinear(self, node):
        x = self.entry(node, node.input[0])
        scale = self.const(node, node.input[1])
        zp_name = self.opt_input(node, 2)
        zp = self.const(node, zp_name) if zp_name else None
        out = node.output[0]
        if isinstance(x, Const):  # a float constant quantized in the graph
            axis = _attrs(node).get("axis", 1) if np.asarray(scale).size > 1 else None
            q = _quant_params(scale, zp, axis, x.data.ndim)
            data = _quantize_const(x.data, q, zp.dtype if zp is not None else np.uint8)
            self.env[out] = Const(data, x.name)
            return
        quant = self.act_quant(node, scale, zp)
        if isinstance(x, FloatInput):
            name = self.emit("quantize", node.name or f"{out}.quantize", [x.name], out, quant)
        elif isinstance(x, Pending):
            name = self.materialize(x, out, quant)
        elif isinstance(x, Real):
            if self.g[x.name].quant == quant:
                self.env[out] = Int8(x.name)
                return
            name = self.emit("requantize", node.name or out, [x.name], out, quant, qmin=-128, qmax=127)
        else:
            raise self.fail(node, f"cannot quantize '{node.input[0]}' ({type(x).__name__})")
        self.env[out] = Int8(name)

    def op_DequantizeLinear(self, node):
        x = self.entry(node, node.input[0])
        scale = self.const(node, node.input[1])
        zp_name = self.opt_input(node, 2)
        zp = self.const(node, zp_name) if zp_name else None
        if isinstance(x, Const):
            _check_scale(self, node, scale)
            axis = _attrs(node).get("axis", 1) if np.asarray(scale).size > 1 else None
            if axis is not None and not -x.data.ndim <= axis < x.data.ndim:
                raise self.fail(node, f"axis {axis} is out of range for the {x.data.ndim}-d tensor '{node.input[0]}'")
            self.env[node.output[0]] = QConst(x.data, _quant_params(scale, zp, axis, x.data.ndim), x.name)
            return
        if not isinstance(x, Int8):
            raise self.fail(node, f"input '{node.input[0]}' is not an int8 tensor")
        quant = self.act_quant(node, scale, zp)
        if self.g[x.name].quant != quant:
            raise self.fail(node, f"dequantizes '{node.input[0]}' with {quant!r}, but it was quantized with "
                                  f"{self.g[x.name].quant!r}")
        self.env[node.output[0]] = Real(x.name)

    # -- QDQ float ops: become Pending until their QuantizeLinear ----------------------------
    def real(self, node, name: str) -> Real:
        e = self.entry(node, name)
        if isinstance(e, Real):
            return e
        if isinstance(e, FloatInput):
            raise self.fail(node, f"reads the float input '{name}' directly; the model is not quantized there: "
                                  f"{_quant_hint()}")
        if isinstance(e, Pending):
            raise self.fail(node, f"input '{name}' comes from {_desc(e.node)} with no QuantizeLinear in between; "
                                  f"the model is not fully quantized: {_quant_hint()}")
        raise self.fail(node, f"input '{name}' must be a dequantized activation (DequantizeLinear output)")

    def pend(self, node, op: str, operands: tuple, **attrs):
        self.env[node.output[0]] = Pending(op, node, operands, attrs)

    def op_Conv(self, node):
        a = _attrs(node)
        x = self.real(node, node.input[0])
        w = self.entry(node, node.input[1])
        b = self.entry(node, node.input[2]) if self.opt_input(node, 2) else None
        self.pend(node, "conv", (x, w, b), **a)

    def op_Gemm(self, node):
        a = _attrs(node)
        if a.get("transA", 0) or a.get("alpha", 1.0) != 1.0 or a.get("beta", 1.0) != 1.0:
            raise self.fail(node, "only Gemm with transA=0, alpha=1, beta=1 is supported")
        x = self.real(node, node.input[0])
        w = self.entry(node, node.input[1])
        b = self.entry(node, node.input[2]) if self.opt_input(node, 2) else None
        self.pend(node, "gemm", (x, w, b), transB=a.get("transB", 0))

    def op_MatMul(self, node):
        x = self.real(node, node.input[0])
        w = self.entry(node, node.input[1])
        self.pend(node, "gemm", (x, w, None), transB=0)

    def op_Add(self, node):
        ea, eb = self.entry(node, node.input[0]), self.entry(node, node.input[1])
        if isinstance(ea, (Const, QConst)) and isinstance(eb, Pending):
            ea, eb = eb, ea
        if isinstance(ea, Pending) and ea.op == "gemm" and ea.operands[2] is None and isinstance(eb, (Const, QConst)):
            self.env[node.output[0]] = replace(ea, operands=(ea.operands[0], ea.operands[1], eb))
            return
        if isinstance(ea, QConst) and isinstance(eb, Real):
            ea, eb = eb, ea
        a = self.real(node, node.input[0]) if not isinstance(ea, Real) else ea
        if isinstance(eb, QConst):
            if eb.data.dtype != np.int8 or eb.quant.axis is not None:
                raise self.fail(node, "a constant Add operand must be int8 with one scale")
            self.pend(node, "add", (a, eb))
            return
        b = eb if isinstance(eb, Real) else self.real(node, node.input[1])
        self.pend(node, "add", (a, b))

    def _activation(self, node, lo: float | None, hi: float | None):
        x = self.entry(node, node.input[0])
        if isinstance(x, Real):
            x = Pending("requantize", node, (x,))
        if not isinstance(x, Pending):
            raise self.fail(node, f"input '{node.input[0]}' is not a dequantized activation")
        new_lo = lo if x.lo is None else (x.lo if lo is None else max(lo, x.lo))
        new_hi = hi if x.hi is None else (x.hi if hi is None else min(hi, x.hi))
        self.env[node.output[0]] = replace(x, lo=new_lo, hi=new_hi)

    def op_Relu(self, node):
        self._activation(node, 0.0, None)

    def op_Clip(self, node):
        a = _attrs(node)
        lo, hi = a.get("min"), a.get("max")
        if self.opt_input(node, 1):
            lo = float(self.const(node, node.input[1]))
        if self.opt_input(node, 2):
            hi = float(self.const(node, node.input[2]))
        if lo is not None and hi is not None and lo > hi:
            lo = hi  # ONNX: every output equals max
        self._activation(node, lo, hi)

    def pending_shape(self, p: Pending) -> tuple[int, ...]:
        """The shape a pending float op will produce (materialized on a scratch copy of the graph)."""
        if p.reshape is not None:
            return p.reshape
        scratch = Lifter(self.model, self.path, {})
        scratch.g = self.g.copy()
        scratch.node_names = set(self.node_names)
        out = scratch.materialize(replace(p, lo=None, hi=None), "__probe__", QuantParams.per_tensor(1.0, 0))
        return scratch.g[out].shape

    def op_MaxPool(self, node):
        x = self.entry(node, node.input[0])
        if isinstance(x, Pending) and x.op == "requantize" and x.reshape is None:
            # DQ -> Relu/Clip -> MaxPool -> Q: max commutes with the (monotonic) clamp
            self.env[node.output[0]] = Pending("maxpool", node, x.operands, _attrs(node), x.lo, x.hi)
            return
        if isinstance(x, Int8):  # QOperator form: max on int8 directly
            attrs = self.window(node, self.g[x.name].shape)
            out = self.emit("maxpool", node.name or node.output[0], [x.name], node.output[0],
                            self.g[x.name].quant, kernel=attrs["kernel"], strides=attrs["strides"],
                            pads=attrs["pads"], qmin=-128, qmax=127)
            self.env[node.output[0]] = Int8(out)
            return
        self.pend(node, "maxpool", (self.real(node, node.input[0]),), **_attrs(node))

    def op_AveragePool(self, node):
        self.pend(node, "avgpool", (self.real(node, node.input[0]),), **_attrs(node))

    def op_GlobalAveragePool(self, node):
        self.pend(node, "global_avgpool", (self.real(node, node.input[0]),))

    def op_ReduceMean(self, node):
        a = _attrs(node)
        axes = a.get("axes")
        if axes is None and self.opt_input(node, 1):
            axes = self.const(node, node.input[1]).tolist()
        x = self.real(node, node.input[0])
        rank = len(self.g[x.name].shape)
        if rank != 4 or sorted(int(ax) % 4 for ax in (axes or [])) != [2, 3]:
            raise self.fail(node, f"only ReduceMean over the spatial axes [2, 3] of an NCHW tensor is supported "
                                  f"(axes={axes})")
        self.pend(node, "global_avgpool", (x,), keepdims=a.get("keepdims", 1))

    def op_Concat(self, node):
        xs = tuple(self.real(node, i) for i in node.input)
        self.pend(node, "concat", xs, axis=_attrs(node)["axis"])

    # -- data movement: works on int8 values and on their real views --------------------------
    def _reshape(self, node, shape_fn):
        e = self.entry(node, node.input[0])
        if isinstance(e, Pending):  # e.g. GlobalAveragePool -> Squeeze -> QuantizeLinear: reshape after
            src = self.pending_shape(e)
            self.env[node.output[0]] = replace(e, reshape=tuple(int(d) for d in shape_fn(src)))
            return
        if not isinstance(e, (Int8, Real)):
            raise self.fail(node, f"input '{node.input[0]}' is not an int8 tensor or its dequantized view")
        src = self.g[e.name]
        shape = tuple(int(d) for d in shape_fn(src.shape))
        out = self.emit("reshape", node.name or node.output[0], [e.name], node.output[0], src.quant, shape=shape)
        self.env[node.output[0]] = type(e)(out)

    def op_Flatten(self, node):
        axis = _attrs(node).get("axis", 1)

        def shape(s):
            ax = axis % len(s) if axis < 0 else axis
            return (int(np.prod(s[:ax], dtype=np.int64)), int(np.prod(s[ax:], dtype=np.int64)))

        self._reshape(node, shape)

    def op_Reshape(self, node):
        target = self.const(node, node.input[1]).astype(np.int64).tolist()
        allowzero = _attrs(node).get("allowzero", 0)

        def shape(s):
            if not allowzero and any(d == 0 and i >= len(s) for i, d in enumerate(target)):
                raise self.fail(node, f"shape {target} copies a dimension (0) beyond the input's rank {len(s)}")
            out = [s[i] if d == 0 and not allowzero else d for i, d in enumerate(target)]
            if out.count(-1) > 1:
                raise self.fail(node, f"shape {target} has more than one -1")
            if -1 in out:
                known = int(np.prod([d for d in out if d != -1], dtype=np.int64))
                out[out.index(-1)] = int(np.prod(s, dtype=np.int64)) // max(known, 1)
            return out

        self._reshape(node, shape)

    def _axes(self, node) -> list[int] | None:
        a = _attrs(node)
        if "axes" in a:
            return list(a["axes"])
        if self.opt_input(node, 1):
            return self.const(node, node.input[1]).astype(np.int64).tolist()
        return None

    def op_Squeeze(self, node):
        axes = self._axes(node)

        def shape(s):
            ax = {a % len(s) for a in axes} if axes is not None else {i for i, d in enumerate(s) if d == 1}
            return [d for i, d in enumerate(s) if i not in ax]

        self._reshape(node, shape)

    def op_Unsqueeze(self, node):
        axes = self._axes(node)

        def shape(s):
            out = list(s)
            rank = len(s) + len(axes)
            for a in sorted(x % rank for x in axes):
                out.insert(a, 1)
            return out

        self._reshape(node, shape)

    # -- turning a Pending float op into an IR node ----------------------------------------------
    def window(self, node, x_shape, kernel=None) -> dict:
        a = _attrs(node)
        kernel = tuple(kernel if kernel is not None else a.get("kernel_shape", ()))
        if len(x_shape) != 4 or len(kernel) != 2:
            raise self.fail(node, f"only 2-d windows on NCHW tensors are supported (input {x_shape}, kernel {kernel})")
        if any(d != 1 for d in a.get("dilations", [1, 1])):
            raise self.fail(node, f"dilations {a['dilations']} are not supported (only 1)")
        if a.get("ceil_mode", 0):
            raise self.fail(node, "ceil_mode=1 is not supported")
        strides = tuple(a.get("strides", [1, 1]))
        if len(strides) != 2 or min(strides) < 1:
            raise self.fail(node, f"strides {list(strides)} must be two positive integers")
        if "pads" in a and (len(a["pads"]) != 4 or min(a["pads"]) < 0):
            raise self.fail(node, f"pads {list(a['pads'])} must be four non-negative integers")
        if min(kernel) < 1:
            raise self.fail(node, f"kernel {list(kernel)} must be positive")
        auto_pad = a.get("auto_pad", b"NOTSET")
        auto_pad = auto_pad.decode() if isinstance(auto_pad, bytes) else auto_pad
        if auto_pad in ("NOTSET", ""):
            pads = tuple(a.get("pads", [0, 0, 0, 0]))
        elif auto_pad == "VALID":
            pads = (0, 0, 0, 0)
        elif auto_pad in ("SAME_UPPER", "SAME_LOWER"):
            begin, end = [], []
            for size, k, s in zip(x_shape[2:], kernel, strides):
                total = max((math.ceil(size / s) - 1) * s + k - size, 0)
                small, big = total // 2, total - total // 2
                begin.append(small if auto_pad == "SAME_UPPER" else big)
                end.append(big if auto_pad == "SAME_UPPER" else small)
            pads = (begin[0], begin[1], end[0], end[1])
        else:
            raise self.fail(node, f"auto_pad={auto_pad} is not supported")
        return {"kernel": kernel, "strides": strides, "pads": pads}

    def materialize(self, p: Pending, out: str, quant: QuantParams) -> str:
        if p.reshape is not None:
            pre = self.materialize(replace(p, reshape=None), f"{out}.pre_reshape", quant)
            return self.emit("reshape", f"{p.node.name or out}.reshape", [pre], out, quant, shape=p.reshape)
        qmin, qmax = clamp_bounds(p.lo, p.hi, float(quant.scale), int(quant.zero_point))
        clamp = {"qmin": qmin, "qmax": qmax}
        name = p.node.name or out
        node = p.node
        if p.op == "conv":
            x, w, b = p.operands
            xv = self.g[x.name]
            wdata, wq = self.weight(node, w, f"weight '{node.input[1]}'", 0)
            if wdata.ndim != 4:
                raise self.fail(node, f"only 2-d convolutions are supported (weight shape {wdata.shape})")
            win = self.window(node, xv.shape, wdata.shape[2:])
            groups = int(p.attrs.get("group", 1))
            return self.conv_node(node, name, x.name, wdata, wq, b, out, quant, win["strides"], win["pads"],
                                  groups, clamp)
        if p.op == "gemm":
            x, w, b = p.operands
            xv = self.g[x.name]
            if len(xv.shape) != 2:
                raise self.fail(node, f"input '{x.name}' must be 2-d, got {xv.shape} (add a Flatten)")
            trans = p.attrs.get("transB", 0)
            wdata, wq = self.weight(node, w, f"weight '{node.input[1]}'", 0 if trans else 1)
            if not trans:
                wdata = np.ascontiguousarray(wdata.T)
                wq = QuantParams(wq.scale, wq.zero_point, 0 if wq.axis is not None else None)
            return self.gemm_node(node, name, x.name, wdata, wq, b, out, quant, clamp, transposed=not trans)
        if p.op == "add":
            a, b = p.operands
            if isinstance(b, QConst):
                bname = self.g.add_const(b.name or f"{name}.operand", b.data, b.quant).name
            else:
                bname = b.name
            return self.emit("add", name, [a.name, bname], out, quant, **clamp)
        if p.op == "requantize":
            return self.emit("requantize", name, [p.operands[0].name], out, quant, **clamp)
        if p.op in ("maxpool", "avgpool"):
            (x,) = p.operands
            win = self.window(node, self.g[x.name].shape)
            extra = {"count_include_pad": int(p.attrs.get("count_include_pad", 0))} if p.op == "avgpool" else {}
            return self.emit(p.op, name, [x.name], out, quant, kernel=win["kernel"], strides=win["strides"],
                             pads=win["pads"], **extra, **clamp)
        if p.op == "global_avgpool":
            (x,) = p.operands
            if len(self.g[x.name].shape) != 4:
                raise self.fail(node, f"expects an NCHW input, got {self.g[x.name].shape}")
            if p.attrs.get("keepdims", 1):
                return self.emit("global_avgpool", name, [x.name], out, quant, **clamp)
            pooled = self.emit("global_avgpool", name, [x.name], f"{out}.pooled", quant, **clamp)
            n, c = self.g[pooled].shape[:2]
            return self.emit("reshape", f"{name}.squeeze", [pooled], out, quant, shape=(n, c))
        if p.op == "concat":
            axis = p.attrs["axis"] % len(self.g[p.operands[0].name].shape)
            return self.emit("concat", name, [x.name for x in p.operands], out, quant, axis=axis, **clamp)
        raise AssertionError(p.op)

    def params(self, node, name, x, wdata, wq, b, transposed: bool = False) -> tuple[str, str]:
        """Add weight and int32 bias constants, named after their ONNX initializers.

        Graph metadata records what ``save()`` must know: ``layout:W = KN`` for a weight stored
        transposed in ONNX, ``synthetic:B`` for a bias the model does not have (tte adds zeros, never
        trains them) or stores in another form."""
        cout = wdata.shape[0]
        wq = _per_channel(wq, cout)
        bias, as_stored = self.bias(node, b, self.g[x].quant, wq, cout)
        w_src = node.input[1] if node.op_type in ("Conv", "Gemm", "MatMul") else node.input[3]
        w_name = self.g.add_const(_init_name(self.env, w_src) or f"{name}.weight", wdata, wq).name
        # keep the ONNX initializer's name only for a bias used as stored (save() writes it back)
        b_src = getattr(b, "name", "") if as_stored else ""
        b_name = self.g.add_const(b_src or f"{name}.bias", bias, _bias_quant(self.g[x].quant, wq)).name
        if transposed:
            self.g.metadata[f"layout:{w_name}"] = "KN"
        if not b_src:
            self.g.metadata[f"synthetic:{b_name}"] = "no int32 bias initializer in the model"
        return w_name, b_name

    def conv_node(self, node, name, x, wdata, wq, b, out, quant, strides, pads, groups, clamp) -> str:
        w_name, b_name = self.params(node, name, x, wdata, wq, b)
        return self.emit("conv", name, [x, w_name, b_name], out, quant, strides=tuple(strides), pads=tuple(pads),
                         groups=groups, **clamp)

    def gemm_node(self, node, name, x, wdata, wq, b, out, quant, clamp, transposed: bool = False) -> str:
        w_name, b_name = self.params(node, name, x, wdata, wq, b, transposed)
        return self.emit("gemm", name, [x, w_name, b_name], out, quant, **clamp)

    def bias(self, node, b: Entry | None, xq: QuantParams, wq: QuantParams, cout: int) -> tuple[np.ndarray, bool]:
        """(int32 bias in units of s_x * s_w[c], whether the initializer was used as stored).

        A missing, float or differently scaled bias is rounded to those units."""
        if b is None:
            return np.zeros(cout, np.int32), False
        target = xq.scale.astype(np.float64) * wq.scale.astype(np.float64)
        if isinstance(b, QConst):
            data = b.data.reshape(-1)
            if data.size != cout:
                raise self.fail(node, f"bias has {data.size} entries for {cout} output channels")
            if b.data.dtype == np.int32 and not b.quant.zero_point.any() and np.allclose(
                    np.broadcast_to(b.quant.scale, (cout,)), target, rtol=1e-5, atol=0):
                return data.astype(np.int32), True
            real = (data.astype(np.float64) - b.quant.zero_point.astype(np.float64).reshape(-1)) * \
                b.quant.scale.astype(np.float64).reshape(-1)
        elif isinstance(b, Const):
            real = b.data.astype(np.float64).reshape(-1)
            if real.size != cout:
                raise self.fail(node, f"bias has {real.size} entries for {cout} output channels")
        else:
            raise self.fail(node, "bias must be a constant")
        return np.clip(np.rint(real / target), -(2**31), 2**31 - 1).astype(np.int32), False

    # -- QOperator ops ------------------------------------------------------------------------
    def qinput(self, node, i: int) -> tuple[str, QuantParams]:
        """The int8 operand at input i with its scale/zero point at inputs i+1, i+2 (checked)."""
        e = self.entry(node, node.input[i])
        if not isinstance(e, Int8):
            raise self.fail(node, f"input '{node.input[i]}' is not an int8 tensor")
        zp = self.const(node, node.input[i + 2]) if self.opt_input(node, i + 2) else None
        q = self.act_quant(node, self.const(node, node.input[i + 1]), zp)
        if self.g[e.name].quant != q:
            raise self.fail(node, f"reads '{node.input[i]}' with {q!r}, but it was quantized with "
                                  f"{self.g[e.name].quant!r}")
        return e.name, q

    def qweight(self, node, i: int, cout_axis: int) -> tuple[np.ndarray, QuantParams]:
        data = self.const(node, node.input[i])
        scale = self.const(node, node.input[i + 1])
        _check_scale(self, node, scale)
        zp = self.const(node, node.input[i + 2]) if self.opt_input(node, i + 2) else None
        axis = cout_axis if np.asarray(scale).size > 1 else None
        return self.weight(node, QConst(data, _quant_params(scale, zp, axis, data.ndim)),
                           f"weight '{node.input[i]}'", cout_axis)

    def out_quant(self, node, i: int) -> QuantParams:
        if not self.opt_input(node, i):
            raise self.fail(node, "has no output scale (float output); tte needs int8 outputs")
        zp = self.const(node, node.input[i + 1]) if self.opt_input(node, i + 1) else None
        return self.act_quant(node, self.const(node, node.input[i]), zp)

    def int32_bias(self, node, i: int) -> Entry | None:
        name = self.opt_input(node, i)
        if name is None:
            return None
        data = self.const(node, name)
        if data.dtype != np.int32:
            raise self.fail(node, f"bias '{name}' is {data.dtype}, expected int32")
        return data

    def op_QLinearConv(self, node):
        x, xq = self.qinput(node, 0)
        wdata, wq = self.qweight(node, 3, 0)
        quant = self.out_quant(node, 6)
        bias = self.int32_bias(node, 8)
        b = None if bias is None else QConst(bias, _bias_quant(xq, _per_channel(wq, wdata.shape[0])), node.input[8])
        if wdata.ndim != 4:
            raise self.fail(node, f"only 2-d convolutions are supported (weight shape {wdata.shape})")
        win = self.window(node, self.g[x].shape, wdata.shape[2:])
        out = self.conv_node(node, node.name or node.output[0], x, wdata, wq, b, node.output[0], quant,
                             win["strides"], win["pads"], int(_attrs(node).get("group", 1)),
                             {"qmin": -128, "qmax": 127})
        self.env[node.output[0]] = Int8(out)

    def _qgemm(self, node, x, xq, wdata, wq, bias, quant, transposed: bool):
        b = None if bias is None else QConst(bias, _bias_quant(xq, _per_channel(wq, wdata.shape[0])), node.input[6])
        out = self.gemm_node(node, node.name or node.output[0], x, wdata, wq, b, node.output[0], quant,
                             {"qmin": -128, "qmax": 127}, transposed)
        self.env[node.output[0]] = Int8(out)

    def op_QLinearMatMul(self, node):
        x, xq = self.qinput(node, 0)
        wdata, wq = self.qweight(node, 3, 1)
        wq = QuantParams(wq.scale, wq.zero_point, 0 if wq.axis is not None else None)
        self._qgemm(node, x, xq, np.ascontiguousarray(wdata.T), wq, None, self.out_quant(node, 6), True)

    def op_QGemm(self, node):
        a = _attrs(node)
        if a.get("transA", 0) or a.get("alpha", 1.0) != 1.0:
            raise self.fail(node, "only QGemm with transA=0 and alpha=1 is supported")
        x, xq = self.qinput(node, 0)
        trans = a.get("transB", 0)
        wdata, wq = self.qweight(node, 3, 0 if trans else 1)
        if not trans:
            wdata = np.ascontiguousarray(wdata.T)
            wq = QuantParams(wq.scale, wq.zero_point, 0 if wq.axis is not None else None)
        self._qgemm(node, x, xq, wdata, wq, self.int32_bias(node, 6), self.out_quant(node, 7), not trans)

    def op_QLinearAdd(self, node):
        if isinstance(self.entry(node, node.input[0]), Const):
            raise self.fail(node, "the constant operand of QLinearAdd must come second")
        a, _ = self.qinput(node, 0)
        b = self.qconst_operand(node, 3) if isinstance(self.entry(node, node.input[3]), Const) else \
            self.qinput(node, 3)[0]
        out = self.emit("add", node.name or node.output[0], [a, b], node.output[0], self.out_quant(node, 6),
                        qmin=-128, qmax=127)
        self.env[node.output[0]] = Int8(out)

    def qconst_operand(self, node, i: int) -> str:
        """A constant int8 operand (e.g. the bias of a QOperator MatMul + Add) as an IR constant."""
        data = self.const(node, node.input[i])
        zp = self.const(node, node.input[i + 2]) if self.opt_input(node, i + 2) else None
        if data.dtype != np.int8:
            raise self.fail(node, f"constant operand '{node.input[i]}' is {data.dtype}, expected int8")
        return self.g.add_const(node.input[i], data, self.act_quant(node, self.const(node, node.input[i + 1]), zp)).name

    def _channels_first(self, node):
        if _attrs(node).get("channels_last", 0):
            raise self.fail(node, "channels_last=1 is not supported (NCHW only)")

    def op_QLinearGlobalAveragePool(self, node):
        self._channels_first(node)
        x, _ = self.qinput(node, 0)
        out = self.emit("global_avgpool", node.name or node.output[0], [x], node.output[0],
                        self.out_quant(node, 3), qmin=-128, qmax=127)
        self.env[node.output[0]] = Int8(out)

    def op_QLinearAveragePool(self, node):
        self._channels_first(node)
        x, _ = self.qinput(node, 0)
        win = self.window(node, self.g[x].shape)
        out = self.emit("avgpool", node.name or node.output[0], [x], node.output[0], self.out_quant(node, 3),
                        kernel=win["kernel"], strides=win["strides"], pads=win["pads"],
                        count_include_pad=int(_attrs(node).get("count_include_pad", 0)), qmin=-128, qmax=127)
        self.env[node.output[0]] = Int8(out)

    def op_QLinearConcat(self, node):
        quant = self.out_quant(node, 0)
        xs = [self.qinput(node, i)[0] for i in range(2, len(node.input), 3)]
        axis = _attrs(node)["axis"] % len(self.g[xs[0]].shape)
        out = self.emit("concat", node.name or node.output[0], xs, node.output[0], quant, axis=axis,
                        qmin=-128, qmax=127)
        self.env[node.output[0]] = Int8(out)


def _init_name(env: dict, onnx_name: str) -> str:
    """The initializer behind an ONNX tensor (itself, or the input of its DequantizeLinear)."""
    e = env.get(onnx_name)
    return getattr(e, "name", "") or ""


def _quant_hint() -> str:
    from .reader import QUANTIZE_HINT

    return QUANTIZE_HINT


def _quant_params(scale, zero_point, axis: int | None, ndim: int) -> QuantParams:
    scale = np.asarray(scale, dtype=np.float32)
    zp = np.zeros_like(scale, dtype=np.int32) if zero_point is None else np.asarray(zero_point).astype(np.int32)
    if scale.size == 1 and axis is None:
        return QuantParams(scale.reshape(()), zp.reshape(()))
    return QuantParams(scale.reshape(-1), zp.reshape(-1), axis % ndim if axis is not None else None)


def _check_scale(lifter: Lifter, node: onnx.NodeProto, scale) -> None:
    scale = np.asarray(scale)
    if not np.issubdtype(scale.dtype, np.floating) or not (np.isfinite(scale) & (scale > 0)).all():
        raise lifter.fail(node, f"quantization scale '{node.input[1]}' must be positive and finite, got "
                                f"{scale.ravel()[:4].tolist()}{'...' if scale.size > 4 else ''}")


def _per_channel(q: QuantParams, cout: int) -> QuantParams:
    """Weight parameters as one entry per output channel (axis 0)."""
    if q.axis is not None:
        return q
    return QuantParams(np.full(cout, q.scale, np.float32), np.full(cout, q.zero_point, np.int32), 0)


def _bias_quant(xq: QuantParams, wq: QuantParams) -> QuantParams:
    scale = (xq.scale.astype(np.float64) * wq.scale.astype(np.float64)).astype(np.float32)
    return QuantParams(scale, np.zeros_like(scale, dtype=np.int32), 0)


def _quantize_const(data: np.ndarray, q: QuantParams, dtype) -> np.ndarray:
    scale, zp = q.scale, q.zero_point
    if q.axis is not None:
        shape = [1] * data.ndim
        shape[q.axis] = -1
        scale, zp = scale.reshape(shape), zp.reshape(shape)
    info = np.iinfo(dtype)
    return np.clip(np.rint(data.astype(np.float32) / scale) + zp, info.min, info.max).astype(dtype)


def _fold_clamps(g: Graph) -> None:
    """Fold a ``requantize`` that only clamps (same parameters) into the op producing its operand.

    Explicit Relu/Clip in QDQ models become such nodes.  Folding is exact: the producer's result has
    no other use, and clamping after rounding equals clamping inside the producer's requantization.
    The producer then writes the clamped tensor under the requantize's result name.
    """
    uses = g.use_counts()
    producers = {n.output: n for n in g.nodes}
    kept = []
    for node in g.nodes:
        if node.op == "requantize":
            src = node.inputs[0]
            prod = producers.get(src)
            if (prod is not None and "qmin" in prod.attrs and prod.op != "concat" and uses[src] == 1
                    and src not in g.outputs and g[src].quant == g[node.output].quant):
                prod.attrs["qmin"] = max(prod.attrs["qmin"], node.attrs["qmin"])
                prod.attrs["qmax"] = min(prod.attrs["qmax"], node.attrs["qmax"])
                prod.outputs = [node.output]
                producers[node.output] = prod
                continue
        kept.append(node)
    g.nodes = kept


def load(path: str | os.PathLike, input_shape: InputShapes = None) -> Graph:
    """Load an int8-quantized ONNX model (QDQ or QOperator) as a verified tte :class:`Graph`.

    ``input_shape`` fixes dynamic input dimensions: a shape for a single-input model, or a mapping
    from input name to shape.
    """
    path = os.fspath(path)
    model = read_model(path)
    model = fix_input_shapes(model, input_shape, path)
    check_quantized(model, path)
    shapes = infer_shapes(model, path)
    g = Lifter(model, path, shapes).lift()
    try:
        g.verify()
    except IRError as e:
        raise UnsupportedModelError(f"{path}: {str(e).splitlines()[0]}") from None
    return g
