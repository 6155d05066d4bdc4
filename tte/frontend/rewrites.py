"""Exact rewrites of ONNX as exporters write it, made while lifting.  Each is recorded with
:func:`tte.ir.facts.add_note` (``tte inspect`` lists the notes); what cannot be rewritten exactly fails with one
line saying what to do.

* **Transpose of the graph input** (NHWC models, e.g. tf2onnx's): the input keeps the layout the model declares;
  the Transpose runs on its int8 values (``transpose``) right after the quantization.
* **The float graph input moved before its QuantizeLinear** (onnxruntime's quantizers leave an op that only moves
  values float while its input is not quantized yet): Transpose, Flatten / Reshape / Squeeze / Unsqueeze and
  MaxPool run on the int8 values after the quantization (``transpose``, ``reshape``, ``maxpool``): quantizing is
  elementwise and monotonic, so it commutes with them.  A zero Pad (0.0) there moves after the QuantizeLinear
  too, padding with the zero point (Q(0.0) = the zero point, exactly), and folds as below.
* **Transpose before the classifier** (``Transpose -> Flatten / Reshape -> Gemm / MatMul / QGemm /
  QLinearMatMul``): folded into the classifier's weight by permuting its input columns (graph metadata
  ``columns:W``: tte's column i is the model's column columns[i]).
* **Zero Pad** (constant mode, the zero point in int8 form or 0.0 in real form, H and W only; pads as an input
  or an attribute): folded into the padding of the next Conv / QLinearConv / AveragePool / QLinearAveragePool
  (whose windows then count the padding, as ONNX counts the Pad's zeros: only when the pool has no padding of
  its own or counts it too), and into a MaxPool only when its input cannot be below zero (after a ReLU), where
  zeros never win the max.
* **Means**: ReduceMean over W then H (or H then W) in two nodes, keepdims either way; over NHWC axes [1, 2]
  after a Transpose; over one axis then a GlobalAveragePool.  With no quantization in between they are one
  ``global_avgpool``; a quantized mean over one spatial axis is an ``avgpool`` whose window spans that axis.
* **Squeeze without axes** on the [1, N] / [1, N, 1, 1] classifier output keeps the batch dimension.
* **A per-channel axis out of range** on a 1-D constant (a bias quantized with axis 3, which onnxruntime
  accepts): axis 0.
* **Errors**: an unsupported op names the node and the nearest thing to do (:mod:`.hints`); one that reads the
  logits names the tensor tte would train on.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import onnx

from ..errors import UnsupportedModelError
from ..ir.facts import add_note
from .entries import (
    FloatInput,
    Int8,
    Padded,
    Pending,
    Permuted,
    Real,
    describe,
    onnx_attrs,
    quant_hint,
)
from .hints import hint

PAD_CONSUMERS = ("Conv", "QLinearConv", "AveragePool", "QLinearAveragePool", "MaxPool")
GEMM_OPS = ("Gemm", "MatMul", "QGemm", "QLinearMatMul")
SPATIAL = frozenset((2, 3))
LAYERS = ("Conv", "Gemm", "MatMul", "QLinearConv", "QGemm", "QLinearMatMul", "ConvInteger", "MatMulInteger")


def _text(v) -> str:
    return v.decode() if isinstance(v, bytes) else str(v)


class RewriteOps:
    """Mixed into :class:`tte.frontend.onnx_frontend.Lifter`."""

    # -- ops waiting for the op that absorbs them: a zero Pad, a Transpose ------------------------------
    def deferred_input(self, node) -> tuple[int, Padded | Permuted] | None:
        for i, name in enumerate(node.input):
            e = self.env.get(name) if name else None
            if isinstance(e, (Padded, Permuted)):
                return i, e
        return None

    def lift_deferred(self, node, handler, i: int, e: Padded | Permuted) -> None:
        op = node.op_type
        if op == "Identity":
            return handler(node)
        if i == 0 and op in ("QuantizeLinear", "DequantizeLinear"):
            return self._through(node, handler, e)
        if isinstance(e, Padded) and i == 0 and op in PAD_CONSUMERS:
            return self._fold_pad(node, handler, e)
        if isinstance(e, Permuted) and i == 0:
            if op in ("Flatten", "Reshape") and not e.flat:
                return self._flatten_permuted(node, e)
            if op in GEMM_OPS and e.flat:
                return self._fold_columns(node, handler, e)
            if op == "ReduceMean" and not e.flat:
                return handler(node)
        if isinstance(e, Padded):
            raise self.fail(node, f"reads the output of the zero {describe(e.node)}; tte folds a Pad only into the "
                                  f"Conv, AveragePool or MaxPool right after it")
        raise self.fail(node, f"reads the output of {describe(e.node)} (perm {list(e.perm)}); tte takes a Transpose "
                              f"only of the graph input, before the Flatten / Reshape into the classifier (Gemm / "
                              f"MatMul), or before a ReduceMean over H and W")

    def _through(self, node, handler, e: Padded | Permuted) -> None:
        """Quantize / dequantize the entry under a Pad or Transpose: elementwise, so it commutes with moving
        values, and a requantized zero stays zero (round(0) + z_y = z_y)."""
        name = node.input[0]
        if isinstance(e.base, FloatInput) and node.op_type != "QuantizeLinear":
            raise self.fail(node, f"reads the float graph input after {describe(e.node)}; tte takes it there only "
                                  f"quantized (QuantizeLinear)")
        run = node
        if isinstance(e.base, FloatInput):  # the int8 tensor before the padding: not the padded ONNX tensor's name
            run = onnx.NodeProto()
            run.CopyFrom(node)
            run.output[0] = f"{node.output[0]}.unpadded"
        self.env[name] = e.base
        try:
            handler(run)
        finally:
            self.env[name] = e
        out = self.env.pop(run.output[0]) if run is not node else self.env[node.output[0]]
        if not isinstance(out, (Int8, Real)):
            raise self.fail(node, f"cannot quantize the output of {describe(e.node)} here")
        self.env[node.output[0]] = replace(e, base=out)
        if isinstance(e.base, FloatInput):
            add_note(self.g, f"{describe(e.node)} (padding of 0.0, {list(e.pads)} of H, W) of the float graph input "
                             f"'{e.base.name}' moves after {describe(node)}: the int8 tensor is padded with the zero "
                             f"point {int(self.g[out.name].quant.zero_point)} (exact: 0.0 quantizes to the zero "
                             f"point)")

    # -- Transpose ----------------------------------------------------------------------------------------
    def op_Transpose(self, node):
        e = self.entry(node, node.input[0])
        perm = onnx_attrs(node).get("perm")
        if isinstance(e, FloatInput):
            rank = len(e.shape(self.g[e.name].shape))
            perm = tuple(perm) if perm is not None else tuple(reversed(range(rank)))
            if sorted(perm) != list(range(rank)):
                raise self.fail(node, f"perm {list(perm)} is not a permutation of the {rank} axes of '{e.name}'")
            shape = e.shape(self.g[e.name].shape)
            self.env[node.output[0]] = e.moved("transpose", tuple(shape[p] for p in perm), perm=perm)
            add_note(self.g, f"{describe(node)} (perm {list(perm)}) of the graph input '{e.name}' runs on its int8 "
                             f"values after the quantization; the input keeps the model's layout "
                             f"{list(self.g[e.name].shape)}")
            return
        if isinstance(e, Permuted) and not e.flat:
            total = tuple(e.perm[p] for p in (perm or reversed(range(len(e.perm)))))
            self.env[node.output[0]] = e.base if total == tuple(range(len(total))) else replace(e, perm=total)
            return
        if not isinstance(e, (Int8, Real)):
            raise self.fail(node, f"transposes '{node.input[0]}', which is not an int8 tensor or its dequantized view")
        rank = len(self.g[e.name].shape)
        perm = tuple(perm) if perm is not None else tuple(reversed(range(rank)))
        if perm == tuple(range(rank)):  # moves nothing
            self.env[node.output[0]] = e
            return
        if self._input_data(e.name):
            out = self.emit("transpose", node.name or node.output[0], [e.name], node.output[0],
                            self.g[e.name].quant, perm=perm)
            self.env[node.output[0]] = type(e)(out)
            add_note(self.g, f"{describe(node)} (perm {list(perm)}) of the quantized graph input runs on its int8 "
                             f"values; the input keeps the model's layout {list(self.g[e.name].shape)}")
            return
        self.env[node.output[0]] = Permuted(e, perm, node)

    def reshape_float_input(self, node, e: FloatInput, shape_fn) -> None:
        """A Flatten / Reshape / Squeeze / Unsqueeze of the float graph input before its QuantizeLinear (as
        onnxruntime's QOperator quantizer leaves it): it runs on the int8 values after the quantization."""
        src = e.shape(self.g[e.name].shape)
        shape = tuple(int(d) for d in shape_fn(src))
        if min(shape, default=1) < 1 or int(np.prod(shape, dtype=np.int64)) != int(np.prod(src, dtype=np.int64)):
            raise self.fail(node, f"reshapes the graph input '{e.name}' {list(src)} to {list(shape)}")
        self.env[node.output[0]] = e.moved("reshape", shape, shape=shape)
        add_note(self.g, f"{describe(node)} ({list(src)} -> {list(shape)}) of the graph input '{e.name}' runs on its "
                         f"int8 values after the quantization; the input keeps the model's shape "
                         f"{list(self.g[e.name].shape)}")

    def maxpool_float_input(self, node, e: FloatInput) -> None:
        """A MaxPool of the float graph input before its QuantizeLinear (onnxruntime's QOperator quantizer leaves
        it float): quantizing is monotonic, so the max of the quantized values is the quantized max."""
        shape = e.shape(self.g[e.name].shape)
        win = self.window(node, shape)
        if len(node.output) > 1 and node.output[1]:
            raise self.fail(node, "writes the indices of the maxima (second output); tte takes MaxPool's values only")
        (top, left, bottom, right), (kh, kw), (sh, sw) = win["pads"], win["kernel"], win["strides"]
        out = (*shape[:2], (shape[2] + top + bottom - kh) // sh + 1, (shape[3] + left + right - kw) // sw + 1)
        if min(out) < 1:
            raise self.fail(node, f"has no output on its {list(shape)} input")
        self.env[node.output[0]] = e.moved("maxpool", out, kernel=win["kernel"], strides=win["strides"],
                                           pads=win["pads"], qmin=-128, qmax=127)
        add_note(self.g, f"{describe(node)} of the graph input '{e.name}' runs on its int8 values after the "
                         f"quantization (quantizing is monotonic: it commutes with the max)")

    def _input_data(self, name: str) -> bool:
        """``name`` is the quantized graph input, moved around at most."""
        prod = self.g.producer(name)
        while prod is not None and prod.op in ("transpose", "reshape", "requantize"):
            prod = self.g.producer(prod.inputs[0])
        return prod is not None and prod.op == "quantize"

    def _flatten_permuted(self, node, e: Permuted) -> None:
        src = self.g[e.base.name].shape
        shape = tuple(src[p] for p in e.perm)
        out = tuple(self.reshape_rule(node)(shape))
        if e.perm[0] != 0 or len(out) != 2 or out[0] != shape[0]:
            raise self.fail(node, f"reshapes the output of {describe(e.node)} (perm {list(e.perm)}) to {list(out)}; "
                                  f"tte folds a Transpose only into a flatten to [N, features] before the classifier")
        self.env[node.output[0]] = replace(e, flat=True)

    def _fold_columns(self, node, handler, e: Permuted) -> None:
        """Gemm on flatten(transpose(x, perm)) == Gemm on flatten(x) with the weight's input columns permuted."""
        base, name = e.base, node.input[0]
        v = self.g[base.name]
        k = int(np.prod(v.shape[1:], dtype=np.int64))
        flat = self.emit("reshape", f"{e.node.name or name}.flatten", [base.name], f"{base.name}.flat", v.quant,
                         shape=(v.shape[0], k))
        # column j of the model's flattened input is element order[j] of tte's (NCHW) one
        order = np.arange(k).reshape(v.shape[1:]).transpose([p - 1 for p in e.perm[1:]]).reshape(-1)
        self.env[name] = type(base)(flat)
        self.pre_columns = np.argsort(order)
        try:
            handler(node)
        finally:
            self.env[name], self.pre_columns = e, None
        add_note(self.g, f"{describe(e.node)} (perm {list(e.perm)}) before the flatten into {describe(node)} folded "
                         f"into its weight: input columns permuted to tte's NCHW order")

    # -- Pad ------------------------------------------------------------------------------------------------
    def op_Pad(self, node):
        a = onnx_attrs(node)
        mode = _text(a.get("mode", "constant"))
        if mode != "constant":
            raise self.fail(node, f"pads in '{mode}' mode; tte folds only zero padding into the next conv or pool: "
                                  f"export with zero padding (padding_mode='zeros')")
        pads = list(a["pads"]) if "pads" in a else self.const(node, node.input[1]).astype(np.int64).tolist()
        value = a.get("value", 0.0)
        if self.opt_input(node, 2):
            value = self.const(node, node.input[2]).reshape(-1)
            value = value[0] if value.size else 0
        e = self.entry(node, node.input[0])
        base = e.base if isinstance(e, Padded) else e
        if not isinstance(base, (Int8, Real, FloatInput)):
            raise self.fail(node, f"pads '{node.input[0]}', which is not an int8 tensor, its dequantized view or the "
                                  f"float graph input")
        shape = base.shape(self.g[base.name].shape) if isinstance(base, FloatInput) else self.g[base.name].shape
        rank = len(shape)
        if self.opt_input(node, 3):  # opset 18: pads for these axes only
            axes = [int(x) % rank for x in self.const(node, node.input[3]).reshape(-1)]
            full = [0] * (2 * rank)
            for j, ax in enumerate(axes):
                full[ax], full[ax + rank] = pads[j], pads[j + len(axes)]
            pads = full
        if rank != 4 or len(pads) != 8 or any(pads[i] for i in (0, 1, 4, 5)) or min(pads) < 0:
            raise self.fail(node, f"pads {pads} of a {list(shape)} tensor; tte folds only non-negative padding of H "
                                  f"and W of an NCHW tensor")
        real = isinstance(base, (Real, FloatInput))  # 0.0 quantizes to the zero point: the Pad moves after the Q
        zp = None if real else int(self.g[base.name].quant.zero_point)
        zero = float(value) == 0.0 if real else int(value) == zp
        if not zero:
            what = "0.0" if real else f"the zero point {zp}"
            raise self.fail(node, f"pads with the value {value}, not {what}; tte folds only zero padding into the next "
                                  f"conv or pool")
        new = (pads[2], pads[3], pads[6], pads[7])
        if isinstance(e, Padded):
            new = tuple(p + q for p, q in zip(e.pads, new))
        self.env[node.output[0]] = Padded(base, new, node) if any(new) else base

    def _fold_pad(self, node, handler, e: Padded) -> None:
        a = onnx_attrs(node)
        own = any(a.get("pads", ())) or _text(a.get("auto_pad", "NOTSET")) not in ("NOTSET", "VALID", "")
        if node.op_type in ("AveragePool", "QLinearAveragePool") and own and not a.get("count_include_pad", 0):
            raise self.fail(node, f"pads again after the zero {describe(e.node)} with count_include_pad=0: ONNX "
                                  f"averages over the Pad's zeros but not over its own padding, which one window "
                                  f"cannot do; pad in one of the two places")
        if node.op_type == "MaxPool":
            v = self.g[e.base.name]
            prod = self.g.producer(v.name)
            kernel = a.get("kernel_shape", [1, 1])
            nonneg = prod is not None and prod.attrs.get("qmin", -128) >= int(v.quant.zero_point)
            if not nonneg or max(e.pads[0], e.pads[2]) >= kernel[0] or max(e.pads[1], e.pads[3]) >= kernel[1]:
                raise self.fail(node, f"takes the max over the zeros of {describe(e.node)}, which tte folds into a "
                                      f"MaxPool only when its input cannot be negative (after a ReLU); use MaxPool's "
                                      f"own pads instead")
        name = node.input[0]
        self.env[name], self.pre_pads = e.base, e.pads
        try:
            handler(node)
        finally:
            self.env[name], self.pre_pads = e, None
        add_note(self.g, f"{describe(e.node)} (zero padding {list(e.pads)} of H, W) folded into {describe(node)}")

    def count_include_pad(self, attrs: dict, pre_pads) -> int:
        """A folded Pad's zeros are elements for ONNX: the window counts padding (checked in _fold_pad)."""
        return 1 if pre_pads is not None and any(pre_pads) else int(attrs.get("count_include_pad", 0))

    # -- means ----------------------------------------------------------------------------------------------
    def op_ReduceMean(self, node):
        a = onnx_attrs(node)
        keep = a.get("keepdims", 1)
        axes = self._axes(node)
        e = self.entry(node, node.input[0])
        if not axes:
            if a.get("noop_with_empty_axes", 0):
                self.env[node.output[0]] = e
                return
            raise self.fail(node, "averages over every axis, the batch included; tte takes means over H and W")
        if isinstance(e, Pending) and e.op in ("hardswish", "sigmoid"):  # QOperator's float activation -> mean
            if len(self.g[e.operands[0].name].shape) != 4 or sorted(int(x) % 4 for x in axes) != [2, 3]:
                raise self.fail(node, f"only ReduceMean over the spatial axes [2, 3] of an NCHW tensor is supported "
                                      f"(axes={axes})")
            return self.pend_mean(node, keepdims=keep)
        note = None
        if isinstance(e, Permuted):
            if not isinstance(e.base, Real):
                raise self.fail(node, f"input '{node.input[0]}' is not a dequantized activation")
            x, dims, reduced = e.base, e.perm, frozenset()
            shape = tuple(self.g[x.name].shape[p] for p in dims)
            note = f"{describe(node)} over axes {list(axes)} after {describe(e.node)} (perm {list(e.perm)})"
        elif isinstance(e, Pending) and e.op == "mean" and e.lo is None and e.hi is None:
            (x,), dims, reduced, shape = e.operands, e.attrs["dims"], e.attrs["reduced"], e.attrs["shape"]
            note = f"{describe(e.node)} and {describe(node)}"
        else:
            x = self.real(node, node.input[0])
            shape = self.g[x.name].shape
            if len(shape) == 4 and sorted(int(a) % 4 for a in axes) == [2, 3]:  # the usual global pool
                return self.pend_mean(node, keepdims=keep)
            if len(shape) == 3:  # [N, C, L]: a mean over L is one over H of [N, C, L, 1]
                x = Real(self.emit("reshape", f"{node.name or node.output[0]}.as_nchw", [x.name],
                                   f"{x.name}.nchw", self.g[x.name].quant, shape=(*shape, 1)))
            if len(shape) not in (3, 4):
                raise self.fail(node, f"averages a {len(shape)}-d tensor {list(shape)}; tte takes means over H and W "
                                      f"of NCHW tensors")
            dims, reduced = tuple(range(len(shape))), frozenset()
        self.pend_reduce(node, x, dims, shape, reduced, axes, keep, note)

    def pend_reduce(self, node, x: Real, dims, shape, reduced, axes, keep, note: str | None) -> None:
        """A mean over ONNX ``axes`` of a tensor of ``shape`` whose axis i is axis dims[i] of the NCHW ``x``,
        after means over ``reduced`` (NCHW axes) already pending."""
        rank = len(shape)
        ax = sorted({int(a) % rank for a in axes})
        total = frozenset(reduced | {dims[i] for i in ax})
        if not total <= SPATIAL:
            raise self.fail(node, f"averages over axes {list(axes)} of {list(shape)}, not only over H and W; tte takes "
                                  f"spatial means (global average pooling)")
        out = tuple(1 if i in ax else d for i, d in enumerate(shape)) if keep else \
            tuple(d for i, d in enumerate(shape) if i not in ax)
        new_dims = tuple(dims) if keep else tuple(d for i, d in enumerate(dims) if i not in ax)
        base = self.g[x.name].shape
        kept = [d for d in new_dims if d not in total and base[d] != 1]
        if kept != sorted(kept):
            raise self.fail(node, f"leaves the axes of its input in another order than tte's NCHW tensor "
                                  f"{list(base)}; tte takes a mean over H, W of an NHWC tensor only as a whole")
        if total == SPATIAL:
            pooled = (base[0], base[1], 1, 1)
            self.env[node.output[0]] = Pending("global_avgpool", node, (x,), {"keepdims": 1},
                                               reshape=None if out == pooled else out)
            if note:
                add_note(self.g, f"{note}: one global average pool over H, W of the NCHW tensor '{x.name}'")
            return
        self.env[node.output[0]] = Pending("mean", node, (x,), {"reduced": total, "dims": new_dims, "shape": out})

    def op_GlobalAveragePool(self, node):
        e = self.entry(node, node.input[0])
        if isinstance(e, Pending) and e.op == "mean" and e.lo is None and e.hi is None and len(e.attrs["shape"]) == 4:
            return self.pend_reduce(node, e.operands[0], e.attrs["dims"], e.attrs["shape"], e.attrs["reduced"],
                                    [2, 3], 1, f"{describe(e.node)} and {describe(node)}")
        super().op_GlobalAveragePool(node)

    def materialize_mean(self, p: Pending, name: str, out: str, quant, clamp: dict) -> str:
        """A mean over one spatial axis: an average pool whose window spans it."""
        (x,) = p.operands
        n, c, h, w = self.g[x.name].shape
        kernel = (h, 1) if p.attrs["reduced"] == {2} else (1, w)
        natural = (n, c, 1, w) if kernel[1] == 1 else (n, c, h, 1)
        target = p.attrs["shape"]
        y = self.emit("avgpool", name, [x.name], out if target == natural else f"{out}.pooled", quant, kernel=kernel,
                      strides=(1, 1), pads=(0, 0, 0, 0), count_include_pad=0, **clamp)
        add_note(self.g, f"{describe(p.node)} (a mean over {'H' if kernel[1] == 1 else 'W'} only) runs as an "
                         f"average pool whose {kernel[0]}x{kernel[1]} window spans it")
        if target == natural:
            return y
        return self.emit("reshape", f"{name}.reshape", [y], out, quant, shape=tuple(target))

    # -- Squeeze of the logits, constants' axes ----------------------------------------------------------
    def feeds_output(self, name: str, seen: set[str] | None = None) -> bool:
        """``name`` reaches a graph output through quantization / Identity nodes only (the classifier output)."""
        if name in {o.name for o in self.model.graph.output}:
            return True
        readers = self.readers.get(name, [])
        return bool(readers) and all(r.op_type in ("QuantizeLinear", "DequantizeLinear", "Identity") and
                                     self.feeds_output(r.output[0]) for r in readers)

    def keep_batch_note(self, node, before, after) -> None:
        text = (f"{describe(node)} without axes on {list(before)} keeps the batch dimension: {list(after)} (tte's "
                f"logits are [N, classes])")
        if text not in self.g.metadata.values():
            add_note(self.g, text)
        todo = [node.output[0]]
        while todo:  # the tensors on the way to the output have the new shape too
            name = todo.pop()
            self.relaxed.add(name)
            todo += [r.output[0] for r in self.readers.get(name, [])]

    def const_axis(self, node, data: np.ndarray, scale) -> int | None:
        """The per-channel axis of a Q/DQ of a constant; an out-of-range one on a 1-D tensor becomes 0."""
        if np.asarray(scale).size <= 1:
            return None
        axis = int(onnx_attrs(node).get("axis", 1))
        if -data.ndim <= axis < data.ndim:
            return axis
        if data.ndim == 1 and np.asarray(scale).size == data.size:
            add_note(self.g, f"{describe(node)}: per-channel axis {axis} of the 1-d tensor '{node.input[0]}' read as "
                             f"axis 0, its only axis (onnxruntime runs it too)")
            return 0
        raise self.fail(node, f"axis {axis} is out of range for the {data.ndim}-d tensor '{node.input[0]}'")

    # -- errors -----------------------------------------------------------------------------------------------
    def unsupported(self, node):
        op = node.op_type
        domain = f" (domain {node.domain})" if node.domain not in ("", "ai.onnx") else ""
        if domain and hasattr(self, f"op_{op}"):
            return self.fail(node, f"op '{op}'{domain} is not supported: tte takes the ONNX and com.microsoft "
                                   f"domains only")
        x = node.input[0] if node.input else ""
        e = self.env.get(x)
        if isinstance(e, (Int8, Real)) and len(self.g[e.name].shape) == 2 and self.after_layers(node):
            return self.fail(node, f"unsupported op '{op}'{domain} after the logits: tte would train on '{x}' "
                                   f"{list(self.g[e.name].shape)}; cut the model there (onnx.utils.extract_model("
                                   f"in_path, out_path, input_names, ['{x}']))")
        return self.fail(node, f"unsupported op '{op}'{domain}; {hint(op)}")

    def after_layers(self, node) -> bool:
        """No weighted layer reads what ``node`` computes: it post-processes the logits."""
        todo, seen = list(node.output), set()
        while todo:
            name = todo.pop()
            for r in self.readers.get(name, []):
                if r.op_type in LAYERS:
                    return False
                if id(r) not in seen:
                    seen.add(id(r))
                    todo += list(r.output)
        return True

    def float_output(self, name: str, e: Pending) -> UnsupportedModelError:
        x = e.operands[0] if e.operands else None
        logits = ""
        if isinstance(x, Real) and len(self.g[x.name].shape) == 2 and e.op not in ("gemm",):
            logits = f"; tte would train on '{x.name}' {list(self.g[x.name].shape)}, the int8 tensor before it"
        return UnsupportedModelError(
            f"{self.path}: graph output '{name}' comes from {describe(e.node)} in float, with no QuantizeLinear after "
            f"it{logits}; the model is not fully quantized: {quant_hint()}")
