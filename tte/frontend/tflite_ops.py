"""The TFLite operator handlers of the lifter (:mod:`.tflite_frontend`): one ``op_<OPERATOR>`` method
per supported builtin operator, mixed into :class:`tte.frontend.tflite_frontend.Lifter`.

Each reads its operands from the lifter's environment (TFLite tensor index -> what it is in tte),
appends IR nodes and records its outputs.  Layouts: a 4-d activation is NCHW in tte (``Act.layout ==
"nchw"``), weights are turned to tte's layouts here.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from ..ir import QuantParams
from .entries import bias_quant, per_channel

if TYPE_CHECKING:
    from . import tflite_reader as tr


# -- what a TFLite tensor is, in tte terms, while the lifter walks the operators --------------------
@dataclass(frozen=True)
class Act:
    """An int8 IR value standing for a TFLite activation tensor.

    ``layout``: ``nchw`` (a 4-d NHWC tensor, held as NCHW), ``plain`` (same layout as in TFLite) or
    ``chw`` (an NHWC tensor [N, H, W, C] with H*W > 1 flattened to [N, H*W*C] in tte's C, H, W order:
    only FULLY_CONNECTED reads it, with its weight's input columns permuted; ``hwc`` = (H, W, C))."""
    name: str
    layout: str = "plain"
    hwc: tuple[int, ...] = ()


@dataclass(frozen=True)
class Padded:
    """A PAD of ``src`` (``pads``: top, left, bottom, right) waiting for the conv or average pool that
    reads it, which takes the padding as its own."""
    src: Act
    pads: tuple[int, int, int, int]
    op: int


@dataclass(frozen=True)
class FloatInput:
    """The float32 graph input, before the QUANTIZE that fixes its int8 parameters."""
    name: str
    uint8: tuple[float, int] | None = None  # a uint8 graph input: its (scale, zero point)


@dataclass(frozen=True)
class Real:
    """The float output of a DEQUANTIZE of int8 value ``src``."""
    src: Act


@dataclass(frozen=True)
class Dropped:
    """A trailing SOFTMAX's output: the graph output takes ``src``, its input (the logits)."""
    src: Act | Real
    op: int


Entry = Act | Padded | FloatInput | Real | Dropped


def round_away(v) -> int:
    """std::round: half away from zero."""
    v = float(v)
    return int(np.sign(v) * np.floor(abs(v) + 0.5))


def same_pads(size: tuple[int, int], kernel: tuple[int, int], strides: tuple[int, int], padding: str):
    """Explicit (top, left, bottom, right) pads of TFLite's SAME / VALID (ComputePaddingHeightWidth)."""
    if padding == "VALID":
        return (0, 0, 0, 0)
    total = [max((math.ceil(n / s) - 1) * s + k - n, 0) for n, k, s in zip(size, kernel, strides)]
    return (total[0] // 2, total[1] // 2, total[0] - total[0] // 2, total[1] - total[1] // 2)


def compress(a: np.ndarray) -> np.ndarray:
    """``a`` with every axis along which it is constant reduced to length 1 (for broadcasting)."""
    for axis in range(a.ndim):
        first = np.take(a, [0], axis=axis)
        if a.shape[axis] > 1 and (a == first).all():
            a = first
    return a


class OperatorHandlers:
    """``op_<OPERATOR>`` for each TFLite builtin operator tte takes (helpers: the lifter)."""

    # -- options, constants, parameters ----------------------------------------------------------
    def opt(self, op: tr.Operator, key: str, default=None):
        if key in op.options:
            return op.options[key]
        if default is None:
            raise self.fail(op, f"has no builtin options ('{key}' missing)")
        return default

    def window(self, op: tr.Operator) -> tuple[tuple[int, int], str]:
        strides = (self.opt(op, "stride_h"), self.opt(op, "stride_w"))
        if min(strides) < 1:
            raise self.fail(op, f"strides {list(strides)} must be positive")
        if (op.options.get("dilation_h", 1), op.options.get("dilation_w", 1)) != (1, 1):
            raise self.fail(op, f"dilation {[op.options['dilation_h'], op.options['dilation_w']]} is not supported "
                                f"(only 1)")
        padding = self.opt(op, "padding")
        if padding not in ("SAME", "VALID"):
            raise self.fail(op, f"{padding} is not supported")
        return strides, padding

    def const(self, op: tr.Operator, k: int, what: str, dtypes: tuple[str, ...]) -> tr.Tensor:
        t = self.tensor(op, k)
        if t.data is None:
            raise self.fail(op, f"the {what}, {t.describe()}, must be a constant")
        if t.dtype not in dtypes:
            hint = "; the model is not fully quantized (convert with full-integer quantization)" \
                if t.dtype in ("float32", "float16") else ""
            raise self.fail(op, f"the {what}, {t.describe()}, is {t.dtype}; tte takes {'/'.join(dtypes)}{hint}")
        return t

    def weight_quant(self, op: tr.Operator, w: tr.Tensor, axis: int, cout: int) -> QuantParams:
        if not w.quantized:
            raise self.fail(op, f"the weight, {w.describe()}, has no quantization parameters")
        if w.scale.size == 1:
            return per_channel(QuantParams.per_tensor(float(w.scale[0]), int(w.zero_point[0])), cout)
        if w.scale.size != cout or w.quantized_dimension != axis:
            raise self.fail(op, f"the weight, {w.describe()}, has {w.scale.size} scales along axis "
                                f"{w.quantized_dimension}; expected one, or {cout} along the output-channel axis "
                                f"{axis}")
        return QuantParams(w.scale, w.zero_point.astype(np.int32), 0)

    def params(self, op: tr.Operator, x: str, w: tr.Tensor, wdata: np.ndarray, wq: QuantParams) -> tuple[str, str]:
        """Weight and int32 bias constants under their TFLite names.  TFLite kernels add the int32 bias as
        stored, whatever its declared scale: so does tte (the bias is given the scale s_x * s_w)."""
        cout = wdata.shape[0]
        w_name = self.g.add_const(w.name or f"{op.type.lower()}_{op.index}.weight", wdata, wq).name
        bq = bias_quant(self.g[x].quant, wq)
        if len(op.inputs) < 3 or op.inputs[2] < 0:
            b_name = self.g.add_const(f"{op.type.lower()}_{op.index}.bias", np.zeros(cout, np.int32), bq).name
            self.g.metadata[f"synthetic:{b_name}"] = "no int32 bias in the model"
            return w_name, b_name
        b = self.const(op, 2, "bias", ("int32",))
        if b.data.size != cout:
            raise self.fail(op, f"the bias, {b.describe()}, has {b.data.size} entries for {cout} output channels")
        if b.quantized and b.data.ndim == 1 and b.scale.size > 1 and b.quantized_dimension != 0:
            self.bias_dims.append(b.name)
        return w_name, self.g.add_const(b.name or f"{op.type.lower()}_{op.index}.bias",
                                        b.data.reshape(-1).astype(np.int32), bq).name

    def window_input(self, op: tr.Operator) -> tuple[Act, tuple[int, int, int, int]]:
        """The NCHW input of a windowed op and the pads of a PAD folded into it."""
        e = self.env.get(op.inputs[0]) if op.inputs else None
        if isinstance(e, Padded):
            return e.src, e.pads
        x = self.act(op, 0)
        if x.layout != "nchw":
            raise self.fail(op, f"input '{x.name}' {list(self.tfl_shape(x))} is not a 4-d NHWC tensor")
        return x, (0, 0, 0, 0)

    def fold_note(self, op: tr.Operator, what: str) -> None:
        e = self.env.get(op.inputs[0])
        if isinstance(e, Padded):
            self.notes.append(f"PAD operator {e.op} (zero-point padding {list(e.pads)}) folded into {op.describe()} "
                              f"as {what} (exact)")

    # -- convolutions, fully connected ---------------------------------------------------------
    def _conv(self, op: tr.Operator, depthwise: bool) -> None:
        x, pre = self.window_input(op)
        strides, padding = self.window(op)
        w = self.const(op, 1, "weight", ("int8",))
        if w.data.ndim != 4:
            raise self.fail(op, f"the weight, {w.describe()}, is not 4-d")
        n, cin, h, wd = self.g[x.name].shape
        if depthwise:  # [1, KH, KW, C*M] -> [C*M, 1, KH, KW], one group per input channel
            wdata = np.ascontiguousarray(w.data.transpose(3, 0, 1, 2))
            if w.data.shape[0] != 1 or wdata.shape[0] % cin:
                raise self.fail(op, f"the depthwise weight {w.describe()} does not fit {cin} input channels")
            groups, axis = cin, 3
        else:  # OHWI -> OIHW
            wdata = np.ascontiguousarray(w.data.transpose(0, 3, 1, 2))
            if cin % wdata.shape[1]:
                raise self.fail(op, f"the weight {w.describe()} does not fit {cin} input channels")
            groups, axis = cin // wdata.shape[1], 0
        kernel = wdata.shape[2:]
        size = (h + pre[0] + pre[2], wd + pre[1] + pre[3])
        pads = tuple(p + q for p, q in zip(same_pads(size, kernel, strides, padding), pre))
        wq = self.weight_quant(op, w, axis, wdata.shape[0])
        w_name, b_name = self.params(op, x.name, w, wdata, wq)
        t, q = self.out(op)
        self.fold_note(op, "conv padding")
        y = self.emit(op, "conv", [x.name, w_name, b_name], self.value_name(t), q, strides=strides, pads=pads,
                      groups=groups, **self.clamp(op, q, self.opt(op, "activation", "NONE")))
        self.set_output(op, y, "nchw")

    def op_CONV_2D(self, op: tr.Operator) -> None:
        self._conv(op, depthwise=False)

    def op_DEPTHWISE_CONV_2D(self, op: tr.Operator) -> None:
        self._conv(op, depthwise=True)

    def op_FULLY_CONNECTED(self, op: tr.Operator) -> None:
        x = self.act(op, 0)
        if op.options.get("weights_format", 0) != 0:
            raise self.fail(op, "shuffled weights (weights_format SHUFFLED4x16INT8) are not supported")
        w = self.const(op, 1, "weight", ("int8",))
        if w.data.ndim != 2:
            raise self.fail(op, f"the weight, {w.describe()}, is not 2-d")
        wdata = w.data
        cout, k = wdata.shape
        shape = self.tfl_shape(x)
        size = int(np.prod(shape, dtype=np.int64))
        if size % k:
            raise self.fail(op, f"input {list(shape)} does not flatten into rows of {k} (the weight's inputs)")
        hwc = x.hwc if x.layout == "chw" else (shape[1:] if x.layout == "nchw" and size // shape[0] == k else ())
        if x.layout == "chw" and int(np.prod(hwc)) != k:
            raise self.fail(op, f"reads a flattened [{', '.join(map(str, hwc))}] tensor in rows of {k} values, not one "
                                f"row per sample; tte takes a FULLY_CONNECTED over whole flattened samples")
        if hwc and hwc[0] * hwc[1] > 1 and hwc[2] > 1:  # rows flattened in C, H, W order: permute the columns
            hh, ww, cc = hwc
            wdata = np.ascontiguousarray(wdata.reshape(cout, hh, ww, cc).transpose(0, 3, 1, 2).reshape(cout, k))
            self.permuted_fc.append(f"{op.describe()}, [{hh}, {ww}, {cc}]")
            src = x.name
            if len(self.g[src].shape) != 2:
                src = self.emit(op, "reshape", [src], f"{src}.chw", self.g[src].quant, suffix=".flatten",
                                shape=(shape[0], k))
        else:
            src = self.flat(op, x)
            if self.g[src].shape != (size // k, k):
                src = self.emit(op, "reshape", [src], f"{src}.rows", self.g[src].quant, suffix=".flatten",
                                shape=(size // k, k))
        wq = self.weight_quant(op, w, 0, cout)
        w_name, b_name = self.params(op, src, w, wdata, wq)
        t, q = self.out(op)
        y = self.emit(op, "gemm", [src, w_name, b_name], self.value_name(t), q,
                      **self.clamp(op, q, self.opt(op, "activation", "NONE")))
        if tuple(t.shape) != self.g[y].shape and len(t.shape) > 2 and op.options.get("keep_num_dims"):
            self.env[op.outputs[0]] = self.reshape_to(op, Act(y), tuple(t.shape), f"{y}.keep_dims")
            return
        self.set_output(op, y)

    # -- elementwise ---------------------------------------------------------------------------
    def const_operand(self, op: tr.Operator, k: int, like: Act) -> str:
        """A constant int8 operand of ADD, in the layout of ``like`` and as small as broadcasting allows."""
        t = self.const(op, k, "operand", ("int8",))
        q = self.act_quant(op, t)
        shape = self.tfl_shape(like)
        try:
            data = np.broadcast_to(t.data, shape)
        except ValueError:
            raise self.fail(op, f"{t.describe()} does not broadcast to {list(shape)}") from None
        if like.layout == "nchw":
            data = data.transpose(0, 3, 1, 2)
        return self.g.add_const(t.name or f"{op.type.lower()}_{op.index}.operand",
                                np.ascontiguousarray(compress(data)), q).name

    def op_ADD(self, op: tr.Operator) -> None:
        consts = [self.tensor(op, k).data is not None and op.inputs[k] not in self.env for k in (0, 1)]
        if all(consts):
            raise self.fail(op, "adds two constants")
        if any(consts):
            k = consts.index(False)
            a = self.act(op, k)
            b = self.const_operand(op, 1 - k, a)
        else:
            a, bb = self.act(op, 0), self.act(op, 1)
            if a.layout != bb.layout or self.g[a.name].shape != self.g[bb.name].shape:
                raise self.fail(op, f"adds {list(self.tfl_shape(a))} and {list(self.tfl_shape(bb))}; tte adds "
                                    f"tensors of one shape (or a constant that broadcasts)")
            b = bb.name
        t, q = self.out(op)
        y = self.emit(op, "add", [a.name, b], self.value_name(t), q,
                      **self.clamp(op, q, self.opt(op, "activation", "NONE")))
        self.set_output(op, y, a.layout)

    def op_MUL(self, op: tr.Operator) -> None:
        a, b = self.act(op, 0), self.act(op, 1)
        sa, sb = self.tfl_shape(a), self.tfl_shape(b)
        if int(np.prod(sa)) < int(np.prod(sb)):
            a, b, sa, sb = b, a, sb, sa
        if sa != sb:  # a per-channel gate: [N, 1, 1, C] (or [C], [1, C] ...) broadcast over H and W
            gate = (1,) * (4 - len(sb)) + tuple(sb)
            if a.layout != "nchw" or len(sb) > 4 or gate[1:] != (1, 1, sa[3]) or gate[0] != sa[0]:
                raise self.fail(op, f"multiplies {list(sa)} by {list(sb)}; tte multiplies tensors of one shape, or "
                                    f"an NHWC tensor by a per-channel [N, 1, 1, C] gate")
            b = self.reshape_to(op, b, (sa[0], 1, 1, sa[3]), f"{b.name}.gate")
        t, q = self.out(op)
        y = self.emit(op, "mul", [a.name, b.name], self.value_name(t), q,
                      **self.clamp(op, q, self.opt(op, "activation", "NONE")))
        self.set_output(op, y, a.layout)

    def _unary(self, op: tr.Operator, kind: str) -> None:
        x = self.act(op, 0)
        t, q = self.out(op)
        self.set_output(op, self.emit(op, kind, [x.name], self.value_name(t), q, qmin=-128, qmax=127), x.layout,
                        hwc=x.hwc)

    def op_LOGISTIC(self, op: tr.Operator) -> None:
        self._unary(op, "sigmoid")

    def op_HARD_SWISH(self, op: tr.Operator) -> None:
        self._unary(op, "hardswish")

    def _relu(self, op: tr.Operator, activation: str) -> None:
        x = self.act(op, 0)
        t, q = self.out(op)
        y = self.emit(op, "requantize", [x.name], self.value_name(t), q, **self.clamp(op, q, activation))
        self.clamp_ops[self.g.nodes[-1].name] = op
        self.set_output(op, y, x.layout, hwc=x.hwc)

    def op_RELU(self, op: tr.Operator) -> None:
        self._relu(op, "RELU")

    def op_RELU6(self, op: tr.Operator) -> None:
        self._relu(op, "RELU6")

    def op_RELU_N1_TO_1(self, op: tr.Operator) -> None:
        self._relu(op, "RELU_N1_TO_1")

    # -- pools ---------------------------------------------------------------------------------
    def _pool(self, op: tr.Operator, kind: str) -> None:
        x, pre = self.window_input(op)
        strides, padding = self.window(op)
        kernel = (self.opt(op, "filter_h"), self.opt(op, "filter_w"))
        n, c, h, w = self.g[x.name].shape
        pads = same_pads((h + pre[0] + pre[2], w + pre[1] + pre[3]), kernel, strides, padding)
        if any(pre) and (kind == "maxpool" or any(pads)):
            raise self.fail(op, "reads a PAD that tte cannot fold exactly (a max pool, or an average pool with its "
                                "own SAME padding)")
        t, q = self.out(op)
        if self.g[x.name].quant != q:
            self.notes.append(f"{op.describe()} writes other quantization parameters ({q!r}) than it reads "
                              f"({self.g[x.name].quant!r}): TFLite Micro refuses such a pool and TFLite's reference "
                              f"kernels ignore the output's parameters; tte requantizes the result to them "
                              f"(TFLite's Requantize)")
        attrs = dict(kernel=kernel, strides=strides, pads=tuple(a + b for a, b in zip(pads, pre)),
                     **self.clamp(op, q, self.opt(op, "activation", "NONE")))
        if kind == "avgpool":
            attrs["count_include_pad"] = 1 if any(pre) else 0
            self.fold_note(op, "average pool padding counted in the window")
        self.set_output(op, self.emit(op, kind, [x.name], self.value_name(t), q, **attrs), "nchw")

    def op_AVERAGE_POOL_2D(self, op: tr.Operator) -> None:
        self._pool(op, "avgpool")

    def op_MAX_POOL_2D(self, op: tr.Operator) -> None:
        self._pool(op, "maxpool")

    def op_MEAN(self, op: tr.Operator) -> None:
        x = self.act(op, 0)
        axes = self.const(op, 1, "axes", ("int32", "int64"))
        ax = {int(a) % 4 for a in axes.data.reshape(-1)} if x.layout == "nchw" else None
        if ax != {1, 2}:
            raise self.fail(op, f"averages over axes {axes.data.reshape(-1).tolist()} of {list(self.tfl_shape(x))}; "
                                f"tte takes MEAN over H and W of an NHWC tensor (global average pooling)")
        t, q = self.out(op)
        keep = bool(op.options.get("keep_dims", False))
        y = self.emit(op, "global_avgpool", [x.name], self.value_name(t, "" if keep else ".nchw"), q, qmin=-128,
                      qmax=127)
        if keep:
            self.set_output(op, y, "nchw")
        else:
            n, c = self.g[y].shape[:2]
            self.env[op.outputs[0]] = Act(self.emit(op, "reshape", [y], self.value_name(t), q,
                                                    suffix=".squeeze", shape=(n, c)))

    def _pad(self, op: tr.Operator) -> None:
        x = self.act(op, 0)
        p = self.const(op, 1, "paddings", ("int32", "int64")).data
        if x.layout != "nchw" or p.shape != (4, 2):
            raise self.fail(op, f"pads {list(self.tfl_shape(x))} by {p.tolist()}; tte takes the padding of H and W "
                                f"of an NHWC tensor")
        if p[0].any() or p[3].any() or (p < 0).any():
            raise self.fail(op, f"paddings {p.tolist()}: tte takes non-negative padding of H and W only")
        t, q = self.out(op)
        xq = self.g[x.name].quant
        if q != xq:
            raise self.fail(op, f"output quantization {q!r} differs from the input's {xq!r}")
        if op.type == "PADV2" and len(op.inputs) > 2 and op.inputs[2] >= 0:
            v = self.const(op, 2, "constant value", ("int8",)).data.reshape(-1)
            if v.size != 1 or int(v[0]) != int(q.zero_point):
                raise self.fail(op, f"pads with {v.tolist()}, not the zero point {int(q.zero_point)}; tte folds "
                                    f"zero padding only")
        readers = self.consumers.get(op.outputs[0], [])
        bad = [r for r in readers if r.type not in ("CONV_2D", "DEPTHWISE_CONV_2D", "AVERAGE_POOL_2D")
               or r.inputs[0] != op.outputs[0]]
        if bad or not readers or op.outputs[0] in self.m.outputs:
            what = bad[0].describe() if bad else "the graph output"
            raise self.fail(op, f"feeds {what}; tte folds a PAD only into the CONV_2D, DEPTHWISE_CONV_2D or "
                                f"AVERAGE_POOL_2D that reads it")
        pads = (int(p[1, 0]), int(p[2, 0]), int(p[1, 1]), int(p[2, 1]))
        self.env[op.outputs[0]] = Padded(x, pads, op.index)

    def op_PAD(self, op: tr.Operator) -> None:
        self._pad(op)

    def op_PADV2(self, op: tr.Operator) -> None:
        self._pad(op)

    # -- shapes --------------------------------------------------------------------------------
    def op_RESHAPE(self, op: tr.Operator) -> None:
        x = self.act(op, 0)
        src = self.tfl_shape(x)
        size = int(np.prod(src, dtype=np.int64))
        if len(op.inputs) > 1 and op.inputs[1] >= 0:
            target = [int(d) for d in self.const(op, 1, "shape", ("int32", "int64")).data.reshape(-1)]
        elif op.options.get("new_shape") is not None:
            target = list(op.options["new_shape"])
        else:
            target = list(self.tensor(op, 0, "output").shape)
        if target.count(-1) > 1:
            raise self.fail(op, f"shape {target} has more than one -1")
        if -1 in target:
            known = int(np.prod([d for d in target if d != -1], dtype=np.int64))
            target[target.index(-1)] = size // max(known, 1)
        if int(np.prod(target, dtype=np.int64)) != size:
            raise self.fail(op, f"cannot reshape {list(src)} to {target}")
        self._reshape(op, x, tuple(target))

    def _reshape(self, op: tr.Operator, x: Act, target: tuple[int, ...]) -> None:
        t = self.tensor(op, 0, "output")
        src = self.tfl_shape(x)
        readers = self.consumers.get(op.outputs[0], [])
        def one_row_per_sample(r) -> bool:  # the FC reads each sample's HWC values as one row
            w = self.m.tensors[r.inputs[1]] if len(r.inputs) > 1 and r.inputs[1] >= 0 else None
            return w is not None and len(w.shape) == 2 and w.shape[1] == target[1]

        if (x.layout == "nchw" and len(target) == 2 and target[1] == int(np.prod(src[1:])) and src[1] * src[2] > 1
                and src[3] > 1 and readers and all(r.type == "FULLY_CONNECTED" and r.inputs[0] == op.outputs[0]
                                                   and one_row_per_sample(r) for r in readers)
                and op.outputs[0] not in self.m.outputs):
            # flatten for FULLY_CONNECTED: keep tte's C, H, W order; the FC permutes its weight instead
            y = self.emit(op, "reshape", [x.name], self.value_name(t, ".chw"), self.g[x.name].quant, shape=target)
            self.set_output(op, y, "chw", hwc=src[1:])
            return
        self.env[op.outputs[0]] = self.reshape_to(op, x, target, self.value_name(t))

    def op_SQUEEZE(self, op: tr.Operator) -> None:
        x = self.act(op, 0)
        src = self.tfl_shape(x)
        dims = op.options.get("squeeze_dims")
        axes = {d % len(src) for d in dims} if dims else {i for i, d in enumerate(src) if d == 1}
        if any(src[a] != 1 for a in axes):
            raise self.fail(op, f"squeezes axes {sorted(axes)} of {list(src)}, which are not all 1")
        self._reshape(op, x, tuple(d for i, d in enumerate(src) if i not in axes))

    def op_CONCATENATION(self, op: tr.Operator) -> None:
        xs = [self.act(op, k) for k in range(len(op.inputs))]
        layouts = {x.layout for x in xs}
        if len(layouts) != 1 or "chw" in layouts:
            raise self.fail(op, "concatenates tensors of different ranks or layouts")
        rank = len(self.tfl_shape(xs[0]))
        axis = self.opt(op, "axis") % rank
        if xs[0].layout == "nchw":
            axis = {0: 0, 1: 2, 2: 3, 3: 1}[axis]
        t, q = self.out(op)
        other = [x.name for x in xs if self.g[x.name].quant != q]
        if other:
            self.notes.append(f"{op.describe()} reads operand(s) {', '.join(other)} quantized otherwise than its "
                              f"output ({q!r}): TFLite's and TFLite Micro's int8 CONCATENATION refuse this; tte "
                              f"requantizes them to the output's parameters (TFLite's Requantize)")
        y = self.emit(op, "concat", [x.name for x in xs], self.value_name(t), q, axis=axis,
                      **self.clamp(op, q, self.opt(op, "activation", "NONE")))
        self.set_output(op, y, xs[0].layout)

    # -- quantization boundaries, the end of the model -----------------------------------------
    def op_QUANTIZE(self, op: tr.Operator) -> None:
        e = self.env.get(op.inputs[0]) if op.inputs else None
        t, q = self.out(op)
        if isinstance(e, FloatInput):
            if e.uint8 is not None:  # uint8 input: the same scale, the zero point moved by 128: exact
                s, z = e.uint8
                if np.float32(s) != np.float32(q.scale) or z - 128 != int(q.zero_point):
                    raise self.fail(op, f"requantizes the uint8 input (scale {s}, zero point {z}) to {q!r}; tte takes "
                                        f"a uint8 input only with the same scale and the zero point moved by 128")
                self.notes.append(f"uint8 input '{e.name}': the float API quantizes with the int8 parameters of "
                                  f"{op.describe()} (the uint8 quantization minus 128); the C API takes int8")
            if len(t.shape) == 4:  # the NHWC int8 tensor, then tte's NCHW view of it under the TFLite name
                name = self.emit(op, "quantize", [e.name], self.value_name(t, ".nhwc"), q)
                self.env[op.outputs[0]] = self.to_nchw(op, name, self.value_name(t))
            else:
                self.set_output(op, self.emit(op, "quantize", [e.name], self.value_name(t), q))
            return
        x = self.act(op, 0)
        if self.g[x.name].quant == q:
            self.env[op.outputs[0]] = x
            return
        y = self.emit(op, "requantize", [x.name], self.value_name(t), q, qmin=-128, qmax=127)
        self.set_output(op, y, x.layout, hwc=x.hwc)

    def op_DEQUANTIZE(self, op: tr.Operator) -> None:
        x = self.act(op, 0)
        t = self.tensor(op, 0, "output")
        if t.dtype != "float32":
            raise self.fail(op, f"dequantizes to {t.dtype}; tte takes float32")
        self.env[op.outputs[0]] = Real(x)

    def op_SOFTMAX(self, op: tr.Operator) -> None:
        if self.consumers.get(op.outputs[0]) or list(self.m.outputs) != [op.outputs[0]]:
            raise self.fail(op, "SOFTMAX inside the model; tte takes a SOFTMAX only as the model's last operator (it "
                                "drops it: training takes the logits)")
        e = self.env.get(op.inputs[0])
        src = e if isinstance(e, Real) else self.act(op, 0)
        name = (src.src if isinstance(src, Real) else src).name
        self.env[op.outputs[0]] = Dropped(src, op.index)
        self.notes.append(f"trailing SOFTMAX (operator {op.index}) dropped: tte's output and training take its "
                          f"input, the logits '{name}'")
