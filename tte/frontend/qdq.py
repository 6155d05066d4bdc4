"""QDQ handlers of the lifter: float ONNX ops on dequantized (real) views become :class:`Pending` until the
QuantizeLinear that fixes their output parameters, then one IR node (:meth:`QDQOps.materialize`)."""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from ..ir import QuantParams
from ..reference.semantics import clamp_bounds
from .batchnorm import PREPROCESS
from .entries import Const, FloatInput, Int8, Pending, QConst, Real, describe, onnx_attrs, quant_hint


class QDQOps:
    """Mixed into :class:`tte.frontend.onnx_frontend.Lifter`."""

    # -- QDQ float ops: become Pending until their QuantizeLinear ----------------------------
    def real(self, node, name: str) -> Real:
        e = self.entry(node, name)
        if isinstance(e, Real):
            return e
        if isinstance(e, FloatInput):
            raise self.fail(node, f"reads the float input '{name}' directly; the model is not quantized there: "
                                  f"{quant_hint()}")
        if isinstance(e, Pending):
            if e.op == "affine" and e.node.op_type == "BatchNormalization":
                raise self.fail(node, f"reads the float output of {describe(e.node)} (onnxruntime leaves a "
                                      f"BatchNormalization float in QOperator models); fold it before quantizing: "
                                      f"{PREPROCESS}")
            raise self.fail(node, f"input '{name}' comes from {describe(e.node)} with no QuantizeLinear in between; "
                                  f"the model is not fully quantized: {quant_hint()}")
        raise self.fail(node, f"input '{name}' must be a dequantized activation (DequantizeLinear output)")

    def pend(self, node, op: str, operands: tuple, **attrs):
        if self.pre_pads is not None:  # a zero Pad before this window op, folded (rewrites)
            attrs["pre_pads"] = self.pre_pads
        if self.pre_columns is not None:  # a Transpose before the flatten into this classifier, folded
            attrs["columns"] = self.pre_columns
        self.env[node.output[0]] = Pending(op, node, operands, attrs)

    def op_Conv(self, node):
        a = onnx_attrs(node)
        x = self.real(node, node.input[0])
        w = self.entry(node, node.input[1])
        b = self.entry(node, node.input[2]) if self.opt_input(node, 2) else None
        self.pend(node, "conv", (x, w, b), **a)

    def op_Gemm(self, node):
        a = onnx_attrs(node)
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
        a = onnx_attrs(node)
        lo, hi = a.get("min"), a.get("max")
        if self.opt_input(node, 1):
            lo = float(self.const(node, node.input[1]))
        if self.opt_input(node, 2):
            hi = float(self.const(node, node.input[2]))
        if lo is not None and hi is not None and lo > hi:
            lo = hi  # ONNX: every output equals max
        self._activation(node, lo, hi)

    def op_HardSwish(self, node):
        self.pend(node, "hardswish", (self.real(node, node.input[0]),))

    def op_Sigmoid(self, node):
        self.pend(node, "sigmoid", (self.real(node, node.input[0]),))

    def op_Mul(self, node):
        consts = [isinstance(self.entry(node, i), (Const, QConst)) for i in node.input]
        if any(consts):  # a multiply by a constant: a per-channel affine map (batchnorm)
            k = consts.index(True)
            x = self.real(node, node.input[1 - k])
            scale = self.channel_constant(node, self.real_const(node, k), self.g[x.name].shape)
            self.pend(node, "affine", (x,), scale=scale, shift=np.zeros_like(scale))
            return
        a, b = self.mul_operands(node, self.real(node, node.input[0]).name, self.real(node, node.input[1]).name)
        self.pend(node, "mul", (Real(a), Real(b)))

    def pending_shape(self, p: Pending) -> tuple[int, ...]:
        """The shape a pending float op will produce (materialized on a scratch copy of the graph)."""
        if p.reshape is not None:
            return p.reshape
        scratch = type(self)(self.model, self.path, {})
        scratch.g = self.g.copy()
        scratch.node_names = set(self.node_names)
        out = scratch.materialize(replace(p, lo=None, hi=None), "__probe__", QuantParams.per_tensor(1.0, 0))
        return scratch.g[out].shape

    def op_MaxPool(self, node):
        x = self.entry(node, node.input[0])
        if isinstance(x, Pending) and x.op == "requantize" and x.reshape is None:
            # DQ -> Relu/Clip -> MaxPool -> Q: max commutes with the (monotonic) clamp
            self.env[node.output[0]] = Pending("maxpool", node, x.operands, onnx_attrs(node), x.lo, x.hi)
            return
        if isinstance(x, FloatInput):  # QOperator leaves a MaxPool of the float graph input float (rewrites)
            return self.maxpool_float_input(node, x)
        if isinstance(x, Int8):  # QOperator form: max on int8 directly
            attrs = self.window(node, self.g[x.name].shape)
            out = self.emit("maxpool", node.name or node.output[0], [x.name], node.output[0],
                            self.g[x.name].quant, kernel=attrs["kernel"], strides=attrs["strides"],
                            pads=attrs["pads"], qmin=-128, qmax=127)
            self.env[node.output[0]] = Int8(out)
            return
        self.pend(node, "maxpool", (self.real(node, node.input[0]),), **onnx_attrs(node))

    def op_AveragePool(self, node):
        self.pend(node, "avgpool", (self.real(node, node.input[0]),), **onnx_attrs(node))

    def op_GlobalAveragePool(self, node):
        self.pend_mean(node, keepdims=1)

    def pend_mean(self, node, keepdims: int) -> None:
        """A spatial mean: of a dequantized int8 tensor (``global_avgpool``), or -- as QOperator models leave
        ``DQ -> HardSwish -> GlobalAveragePool -> Q`` in float -- of an activation still in float, fused
        (``lut_global_avgpool``: the float mean of the activation's values, then one quantization)."""
        e = self.entry(node, node.input[0])
        if isinstance(e, Pending) and e.op in ("hardswish", "sigmoid"):
            if e.lo is not None or e.hi is not None or e.reshape is not None:
                raise self.fail(node, f"averages the float output of {describe(e.node)} after a Clip/Relu or "
                                      f"reshape; tte fuses only {e.node.op_type} -> {node.op_type}: quantize the "
                                      f"model in QDQ format (quant_format=QuantFormat.QDQ)")
            self.env[node.output[0]] = Pending("lut_global_avgpool", node, e.operands,
                                               {"kind": e.op, "keepdims": keepdims})
            return
        self.pend(node, "global_avgpool", (self.real(node, node.input[0]),), keepdims=keepdims)

    def op_Concat(self, node):
        xs = tuple(self.real(node, i) for i in node.input)
        self.pend(node, "concat", xs, axis=onnx_attrs(node)["axis"])

    def materialize(self, p: Pending, out: str, quant: QuantParams) -> str:
        if p.reshape is not None:
            pre = self.materialize(replace(p, reshape=None), f"{out}.pre_reshape", quant)
            return self.emit("reshape", f"{p.node.name or out}.reshape", [pre], out, quant, shape=p.reshape)
        qmin, qmax = clamp_bounds(p.lo, p.hi, float(quant.scale), int(quant.zero_point))
        clamp = {"qmin": qmin, "qmax": qmax}
        name = p.node.name or out
        node = p.node
        pre_pads = p.attrs.get("pre_pads")
        if p.op == "mean":
            return self.materialize_mean(p, name, out, quant, clamp)
        if p.op == "affine":
            return self.affine_node(node, name, p.operands[0].name, p.attrs["scale"], p.attrs["shift"], out, quant,
                                    clamp)
        if p.op == "conv":
            x, w, b = p.operands
            xv = self.g[x.name]
            wdata, wq = self.weight(node, w, f"weight '{node.input[1]}'", 0)
            if wdata.ndim != 4:
                raise self.fail(node, f"only 2-d convolutions are supported (weight shape {wdata.shape})")
            win = self.window(node, xv.shape, wdata.shape[2:], pre_pads)
            groups = int(p.attrs.get("group", 1))
            if "bn" in p.attrs:  # a BatchNormalization after the conv, before its QuantizeLinear
                wdata, wq, b = self.fold_bn(node, p.attrs["bn"], x.name, wdata, wq, b, quant)
            out = self.conv_node(node, name, x.name, wdata, wq, b, out, quant, win["strides"], win["pads"],
                                 groups, clamp)
            if "bn" in p.attrs:
                self.bn_folded(node, p.attrs["bn"], self.g.nodes[-1].inputs[1])
            return out
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
            return self.gemm_node(node, name, x.name, wdata, wq, b, out, quant, clamp, transposed=not trans,
                                  columns=p.attrs.get("columns"))
        if p.op == "add":
            a, b = p.operands
            if isinstance(b, QConst):
                bname = self.g.add_const(b.name or f"{name}.operand", b.data, b.quant).name
            else:
                bname = b.name
            return self.emit("add", name, [a.name, bname], out, quant, **clamp)
        if p.op in ("requantize", "hardswish", "sigmoid"):
            return self.emit(p.op, name, [p.operands[0].name], out, quant, **clamp)
        if p.op == "mul":
            return self.emit("mul", name, [x.name for x in p.operands], out, quant, **clamp)
        if p.op in ("maxpool", "avgpool"):
            (x,) = p.operands
            win = self.window(node, self.g[x.name].shape, None, pre_pads)
            extra = {"count_include_pad": self.count_include_pad(p.attrs, pre_pads)} if p.op == "avgpool" else {}
            return self.emit(p.op, name, [x.name], out, quant, kernel=win["kernel"], strides=win["strides"],
                             pads=win["pads"], **extra, **clamp)
        if p.op in ("global_avgpool", "lut_global_avgpool"):
            (x,) = p.operands
            if len(self.g[x.name].shape) != 4:
                raise self.fail(node, f"expects an NCHW input, got {self.g[x.name].shape}")
            kind = {"kind": p.attrs["kind"]} if p.op == "lut_global_avgpool" else {}
            if p.attrs.get("keepdims", 1):
                return self.emit(p.op, name, [x.name], out, quant, **kind, **clamp)
            pooled = self.emit(p.op, name, [x.name], f"{out}.pooled", quant, **kind, **clamp)
            n, c = self.g[pooled].shape[:2]
            return self.emit("reshape", f"{name}.squeeze", [pooled], out, quant, shape=(n, c))
        if p.op == "concat":
            rank, axis = len(self.g[p.operands[0].name].shape), p.attrs["axis"]
            if not -rank <= axis < rank:
                raise self.fail(p.node, f"axis {axis} is out of range for inputs of rank {rank}")
            axis %= rank
            return self.emit("concat", name, [x.name for x in p.operands], out, quant, axis=axis, **clamp)
        raise AssertionError(p.op)
