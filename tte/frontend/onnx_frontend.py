"""ONNX (QDQ and QOperator int8 models) -> tte IR.

Two forms of quantized model reach us:

* **QDQ** (onnxruntime's default): float ops sandwiched between DequantizeLinear and QuantizeLinear.
  We track, for every ONNX tensor, what it *is* in integer terms (an int8 IR value, the real-valued
  view of one, a quantized constant, or a float op still waiting for the QuantizeLinear that will fix
  its output parameters).  When that QuantizeLinear arrives, the pending op becomes one IR node.
  Relu / Clip between the op and its QuantizeLinear fold into the int8 clamp.
  HardSwish and Sigmoid become table-driven ``hardswish`` / ``sigmoid``; ``Mul`` of an NCHW tensor by a
  per-channel [N, C, 1, 1] gate (either operand order) becomes ``mul``.
* **QOperator**: QLinearConv, QLinearMatMul and the com.microsoft QLinearAdd, QLinearMul, QLinearSigmoid,
  QGemm, QLinearGlobalAveragePool, QLinearAveragePool, QLinearConcat map one to one onto IR nodes.
  onnxruntime leaves HardSwish float there, ``DQ -> HardSwish -> Q`` (lifted as in QDQ), and a
  GlobalAveragePool reading a float HardSwish float too: ``DQ -> HardSwish -> GlobalAveragePool
  [-> Flatten] -> Q`` becomes one ``lut_global_avgpool`` (the float mean of the activation's values,
  quantized once; :mod:`tte.ops.activation`).

Both forms may mix in one model.  Every unsupported construct raises a one-line
:class:`UnsupportedModelError` naming the node.

This module is the lifter's core (the walk, quantization boundaries, data movement, the layer builders
both forms share); the handlers of each form are mixed in from :mod:`.qdq` and :mod:`.qoperator`, and
what an ONNX tensor is while we walk is :mod:`.entries`.
"""

from __future__ import annotations

import math
import os
from dataclasses import replace

import numpy as np
import onnx
from onnx import numpy_helper

from ..errors import IRError, UnsupportedModelError
from ..ir import Graph, QuantParams, Value, output_shape
from ..ir.facts import add_note, set_arithmetic
from ..ops import OPS
from ..ops import mul as mul_op
from .batchnorm import BatchNormOps
from .entries import (
    Const,
    Entry,
    FloatInput,
    Int8,
    Padded,
    Pending,
    Permuted,
    QConst,
    Real,
    bias_quant,
    check_scale,
    describe,
    init_name,
    onnx_attrs,
    per_channel,
    quant_hint,
    quant_params,
    quantize_const,
)
from .normalize import fold_static_shapes, normalize
from .qdq import QDQOps
from .qoperator import QOperatorOps
from .reader import InputShapes, check_quantized, fix_input_shapes, graph_inputs, infer_shapes, read_model
from .rewrites import RewriteOps
from .validate import check as check_model
from .validate import check_graph

# the ONNX ops the lifter takes: each IR op's ``onnx`` facet, plus what only moves names around or folds into the
# op after it (a zero Pad: rewrites)
SUPPORTED_OPS = sorted({t for op in OPS.values() for t in op.onnx} | {"Identity", "Constant", "Pad"})


class Lifter(RewriteOps, BatchNormOps, QDQOps, QOperatorOps):
    """ONNX graph -> tte IR, node by node (``op_<OpType>`` handlers: here and in the mixins; the exact rewrites of
    ONNX as exporters write it are :mod:`.rewrites` and :mod:`.batchnorm`)."""

    def __init__(self, model: onnx.ModelProto, path: str, onnx_shapes: dict[str, tuple[int, ...]]):
        self.model = model
        self.path = path
        self.onnx_shapes = onnx_shapes
        self.g = Graph(model.graph.name or os.path.splitext(os.path.basename(path))[0])
        self.env: dict[str, Entry] = {}
        self.node_names: set[str] = set()
        self.readers: dict[str, list[onnx.NodeProto]] = {}
        for node in model.graph.node:
            for name in node.input:
                self.readers.setdefault(name, []).append(node)
        self.relaxed: set[str] = set()  # ONNX tensors whose shape a rewrite changed on purpose (not cross-checked)
        # set while a handler runs on a folded Pad's input / a permuted classifier input (rewrites)
        self.pre_pads: tuple[int, int, int, int] | None = None
        self.pre_columns: np.ndarray | None = None

    # -- helpers ----------------------------------------------------------------------------
    def fail(self, node: onnx.NodeProto | None, msg: str) -> UnsupportedModelError:
        where = f"{describe(node)}: " if node is not None else ""
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
        check_scale(self, node, scale)
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
            raise self.fail(node, f"{what} is float: the model is not fully quantized; {quant_hint()}")
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

    def mul_operands(self, node: onnx.NodeProto, a: str, b: str) -> tuple[str, str]:
        """A multiply's int8 operands in the order the IR's ``mul`` takes them: a per-channel [N, C, 1, 1]
        operand (a squeeze-and-excitation gate) second, whichever side ONNX has it on."""
        sa, sb = self.g[a].shape, self.g[b].shape
        if sa == sb or mul_op.per_channel(sa, sb):
            return a, b
        if mul_op.per_channel(sb, sa):
            return b, a
        raise self.fail(node, f"multiplies {list(sa)} by {list(sb)}; tte multiplies tensors of one shape, or an "
                              f"NCHW tensor by a per-channel [N, C, 1, 1] one")

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
                raise self.unsupported(node)
            deferred = self.deferred_input(node)
            if deferred is not None:  # a Pad or a Transpose waiting for the op that absorbs it
                self.lift_deferred(node, handler, *deferred)
            else:
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
        if isinstance(e, (Padded, Permuted)):
            raise UnsupportedModelError(f"{self.path}: graph output '{name}' comes from {describe(e.node)}; tte "
                                        f"takes a Pad or Transpose only before the op that absorbs it")
        if isinstance(e, Pending):
            raise self.float_output(name, e)
        if isinstance(e, Real):
            out = self.emit("dequantize", f"{name}.dequantize", [e.name], name, None, dtype="float32")
        elif isinstance(e, Int8):
            out = e.name
        else:
            raise UnsupportedModelError(
                f"{self.path}: graph output '{name}' is not computed from int8 tensors (it comes from a float op "
                f"with no QuantizeLinear after it); the model is not fully quantized: {quant_hint()}")
        self.g.outputs.append(out)

    def cross_check_shapes(self) -> None:
        for v in self.g.values.values():
            want = self.onnx_shapes.get(v.name) if v.name not in self.relaxed else None
            if want is not None and not v.is_const and want != v.shape:
                raise UnsupportedModelError(f"{self.path}: tensor '{v.name}' has shape {v.shape} in tte but "
                                            f"{want} by ONNX shape inference")

    # -- quantization boundaries ------------------------------------------------------------
    def op_Constant(self, node):
        a = onnx_attrs(node)
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
            axis = self.const_axis(node, x.data, scale)
            q = quant_params(scale, zp, axis, x.data.ndim)
            data = quantize_const(x.data, q, zp.dtype if zp is not None else np.uint8)
            self.env[out] = Const(data, x.name)
            return
        quant = self.act_quant(node, scale, zp)
        if isinstance(x, FloatInput):
            name = self.emit("quantize", node.name or f"{out}.quantize", [x.name], f"{out}.input_layout"
                             if x.moves else out, quant)
            for i, (op, attrs, _) in enumerate(x.moves):  # the input's Transpose / Reshape / MaxPool, on int8
                last = i == len(x.moves) - 1
                name = self.emit(op, f"{node.name or out}.{op}", [name], out if last else f"{out}.{op}", quant,
                                 **dict(attrs))
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
            check_scale(self, node, scale)
            axis = self.const_axis(node, x.data, scale)
            self.env[node.output[0]] = QConst(x.data, quant_params(scale, zp, axis, x.data.ndim), x.name)
            return
        if not isinstance(x, Int8):
            raise self.fail(node, f"input '{node.input[0]}' is not an int8 tensor")
        quant = self.act_quant(node, scale, zp)
        if self.g[x.name].quant != quant:
            raise self.fail(node, f"dequantizes '{node.input[0]}' with {quant!r}, but it was quantized with "
                                  f"{self.g[x.name].quant!r}")
        self.env[node.output[0]] = Real(x.name)

    # -- data movement: works on int8 values and on their real views --------------------------
    def _reshape(self, node, shape_fn):
        e = self.entry(node, node.input[0])
        if isinstance(e, Pending):  # e.g. GlobalAveragePool -> Squeeze -> QuantizeLinear: reshape after
            src = self.pending_shape(e)
            self.env[node.output[0]] = replace(e, reshape=tuple(int(d) for d in shape_fn(src)))
            return
        if isinstance(e, FloatInput):  # the float graph input: reshaped after its QuantizeLinear (rewrites)
            return self.reshape_float_input(node, e, shape_fn)
        if not isinstance(e, (Int8, Real)):
            raise self.fail(node, f"input '{node.input[0]}' is not an int8 tensor or its dequantized view")
        src = self.g[e.name]
        shape = tuple(int(d) for d in shape_fn(src.shape))
        out = self.emit("reshape", node.name or node.output[0], [e.name], node.output[0], src.quant, shape=shape)
        self.env[node.output[0]] = type(e)(out)

    def reshape_rule(self, node):
        """The output shape of a Flatten / Reshape / Squeeze / Unsqueeze node as a function of its input's."""
        if node.op_type == "Flatten":
            axis = onnx_attrs(node).get("axis", 1)

            def flatten(s):
                ax = axis % len(s) if axis < 0 else axis
                return (int(np.prod(s[:ax], dtype=np.int64)), int(np.prod(s[ax:], dtype=np.int64)))

            return flatten
        if node.op_type == "Reshape":
            target = self.const(node, node.input[1]).astype(np.int64).tolist()
            allowzero = onnx_attrs(node).get("allowzero", 0)

            def reshape(s):
                if not allowzero and any(d == 0 and i >= len(s) for i, d in enumerate(target)):
                    raise self.fail(node, f"shape {target} copies a dimension (0) beyond the input's rank {len(s)}")
                out = [s[i] if d == 0 and not allowzero else d for i, d in enumerate(target)]
                if out.count(-1) > 1:
                    raise self.fail(node, f"shape {target} has more than one -1")
                if -1 in out:
                    known = int(np.prod([d for d in out if d != -1], dtype=np.int64))
                    out[out.index(-1)] = int(np.prod(s, dtype=np.int64)) // max(known, 1)
                return out

            return reshape
        axes = self._axes(node)
        if node.op_type == "Squeeze":
            keep_batch = axes is None and self.feeds_output(node.output[0])

            def squeeze(s):
                if axes is not None:
                    ax = {a % len(s) for a in axes}
                else:
                    ax = {i for i, d in enumerate(s) if d == 1 and not (i == 0 and keep_batch and len(s) > 1)}
                    if keep_batch and len(s) > 1 and s[0] == 1:
                        self.keep_batch_note(node, s, [d for i, d in enumerate(s) if i not in ax])
                return [d for i, d in enumerate(s) if i not in ax]

            return squeeze

        def unsqueeze(s):
            out = list(s)
            rank = len(s) + len(axes)
            for a in sorted(x % rank for x in axes):
                out.insert(a, 1)
            return out

        return unsqueeze

    def op_Flatten(self, node):
        self._reshape(node, self.reshape_rule(node))

    op_Reshape = op_Squeeze = op_Unsqueeze = op_Flatten

    def _axes(self, node) -> list[int] | None:
        a = onnx_attrs(node)
        if "axes" in a:
            return list(a["axes"])
        if self.opt_input(node, 1):
            return self.const(node, node.input[1]).astype(np.int64).tolist()
        return None

    # -- turning a Pending float op into an IR node ----------------------------------------------
    def window(self, node, x_shape, kernel=None, pre_pads=None) -> dict:
        """Kernel, strides and pads of a window op; ``pre_pads``: a zero Pad before it, folded (default: the one of
        the handler running, :attr:`pre_pads`)."""
        pre = tuple(pre_pads or self.pre_pads or (0, 0, 0, 0))
        if len(x_shape) == 4:
            x_shape = (*x_shape[:2], x_shape[2] + pre[0] + pre[2], x_shape[3] + pre[1] + pre[3])
        a = onnx_attrs(node)
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
        return {"kernel": kernel, "strides": strides, "pads": tuple(int(p + q) for p, q in zip(pads, pre))}


    def params(self, node, name, x, wdata, wq, b, transposed: bool = False) -> tuple[str, str]:
        """Add weight and int32 bias constants, named after their ONNX initializers.

        Graph metadata records what ``save()`` must know: ``layout:W = KN`` for a weight stored
        transposed in ONNX, ``synthetic:B`` for a bias the model does not have (tte adds zeros, never
        trains them) or stores in another form."""
        cout = wdata.shape[0]
        wq = per_channel(wq, cout)
        bias, as_stored = self.bias(node, b, self.g[x].quant, wq, cout)
        w_src = node.input[1] if node.op_type in ("Conv", "Gemm", "MatMul") else node.input[3]
        w_name = self.g.add_const(init_name(self.env, w_src) or f"{name}.weight", wdata, wq).name
        # keep the ONNX initializer's name only for a bias used as stored (save() writes it back)
        b_src = getattr(b, "name", "") if as_stored else ""
        b_name = self.g.add_const(b_src or f"{name}.bias", bias, bias_quant(self.g[x].quant, wq)).name
        if transposed:
            self.g.metadata[f"layout:{w_name}"] = "KN"
        if not b_src:
            self.g.metadata[f"synthetic:{b_name}"] = "no int32 bias initializer in the model"
        return w_name, b_name

    def conv_node(self, node, name, x, wdata, wq, b, out, quant, strides, pads, groups, clamp) -> str:
        w_name, b_name = self.params(node, name, x, wdata, wq, b)
        return self.emit("conv", name, [x, w_name, b_name], out, quant, strides=tuple(strides), pads=tuple(pads),
                         groups=groups, **clamp)

    def gemm_node(self, node, name, x, wdata, wq, b, out, quant, clamp, transposed: bool = False,
                  columns: np.ndarray | None = None) -> str:
        """``columns``: a Transpose before the flatten into this layer, folded: tte's input column i is the
        model's column columns[i] (graph metadata ``columns:W`` records it for whoever maps the weight back)."""
        if columns is not None:
            wdata = np.ascontiguousarray(wdata[:, columns])
        w_name, b_name = self.params(node, name, x, wdata, wq, b, transposed)
        if columns is not None:
            self.g.metadata[f"columns:{w_name}"] = ",".join(str(int(c)) for c in columns)
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


def load(path: str | os.PathLike, input_shape: InputShapes = None, arithmetic: str = "onnxruntime") -> Graph:
    """Load an int8-quantized ONNX model (QDQ or QOperator) as a verified tte :class:`Graph`.

    ``input_shape`` fixes dynamic input dimensions: a shape for a single-input model, or a mapping
    from input name to shape.  ``arithmetic`` is recorded on the graph (:func:`tte.ir.facts.arithmetic`).
    """
    path = os.fspath(path)
    model = read_model(path)
    check_model(model, path)
    model, notes = normalize(model, path)
    model = fix_input_shapes(model, input_shape, path, notes)  # appends its own notes (batch set to 1)
    shape_note = fold_static_shapes(model)  # only now: a Shape may read the batch just fixed
    if shape_note:
        notes.append(shape_note)
    check_quantized(model, path)
    shapes = infer_shapes(model, path)
    lifter = Lifter(model, path, shapes)
    set_arithmetic(lifter.g, arithmetic)  # before lifting: ops check what their arithmetic supports
    for note in notes:  # the model-level rewrites come first, then the lifter's own
        add_note(lifter.g, note)
    g = lifter.lift()
    check_graph(g, path)  # sizes ONNX inference could not know (--input-shape, com.microsoft ops)
    try:
        g.verify()
    except IRError as e:
        raise UnsupportedModelError(f"{path}: {str(e).splitlines()[0]}") from None
    return g
