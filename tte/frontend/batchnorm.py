"""BatchNormalization left in a quantized model, and multiplies by a constant: folded into the conv before them
where that is exact, otherwise the per-channel int8 ``affine`` op (:mod:`tte.ops.affine`).

What onnxruntime 1.32's ``quantize_static`` writes around a BatchNormalization that PyTorch 2.13 kept (exported
with ``training=TrainingMode.PRESERVE``, or without constant folding):

* QDQ: ``Conv -> Q -> DQ -> BatchNormalization -> Q`` (a ReLU after it folded into the last Q's range); gamma
  through an int8 DequantizeLinear, beta through an int32 one, mean and variance float.  The conv's output is
  quantized before the BatchNormalization, so no fold is exact: it runs as ``affine`` on the int8 tensor.
* QOperator: ``QLinearConv -> DequantizeLinear -> BatchNormalization -> Relu -> ...`` in float up to the next
  QuantizeLinear: before a quantized op, one ``affine`` (the ReLU its clamp); before a float ReduceMean (the
  classifier's pool) no int8 op computes it, and the error names onnxruntime's preprocessing.

``Conv -> BatchNormalization -> Q`` (no quantization in between: hand-made graphs, other exporters) folds into
the conv when that is exact: a[c] = gamma / sqrt(var + eps) multiplies the weight scale of channel c (a negative
a[c] negates the channel's int8 weights and zero point, exact unless one of them is -128; graph metadata
``negated:W`` lists those channels), and the shift b[c] = beta - a[c] * mean joins the bias, rounded to the
int32 units s_x * s_w[c] only when one unit is at most one output step (so the result stays within one step of
onnxruntime's float arithmetic).  The folded bias is no longer the model's initializer: it is not trained.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from ..ir import QuantParams
from ..ir.facts import add_note
from ..reference.semantics import f64
from .entries import Const, Pending, QConst, Real, describe, onnx_attrs, per_channel

PREPROCESS = ("python -m onnxruntime.quantization.preprocess --input in.onnx --output out.onnx (it folds "
              "BatchNormalization into the conv), then quantize again")


def dequantized(e: QConst) -> np.ndarray:
    """A constant through DequantizeLinear, in real units (float64)."""
    q = e.quant
    shape = [1] * e.data.ndim
    if q.axis is not None:
        shape[q.axis] = -1
    zp = q.zero_point.astype(np.float64).reshape(shape) if q.axis is not None else float(q.zero_point)
    s = f64(q.scale).reshape(shape) if q.axis is not None else float(q.scale)
    return (e.data.astype(np.float64) - zp) * s


class BatchNormOps:
    """Mixed into :class:`tte.frontend.onnx_frontend.Lifter`."""

    def real_const(self, node, i: int) -> np.ndarray:
        """Input i of ``node``: a float constant, or one through DequantizeLinear, in real units (float64)."""
        e = self.entry(node, node.input[i])
        if isinstance(e, QConst):
            return dequantized(e)
        if isinstance(e, Const) and np.issubdtype(e.data.dtype, np.floating):
            return e.data.astype(np.float64)
        raise self.fail(node, f"input '{node.input[i]}' must be a float constant or a dequantized one")

    def channel_constant(self, node, c: np.ndarray, x_shape) -> np.ndarray:
        """A constant that multiplies an [N, C, ...] tensor as one value per channel: a scalar or a tensor that
        varies along the channel axis only ([C, 1, 1], [1, C, 1, 1]; [C] for [N, C])."""
        channels = x_shape[1] if len(x_shape) >= 2 else 0
        if c.size == 1:
            return np.full(channels, float(c.reshape(())))
        padded = (1,) * (len(x_shape) - c.ndim) + tuple(c.shape)
        if len(x_shape) in (2, 4) and len(padded) == len(x_shape) and padded[1] == channels and \
                all(d == 1 for i, d in enumerate(padded) if i != 1):
            return c.reshape(-1)
        raise self.fail(node, f"multiplies by a constant of shape {list(c.shape)} that does not vary along the "
                              f"channels of {list(x_shape)} only; tte multiplies by a scalar or one value per channel")

    def op_BatchNormalization(self, node):
        a = onnx_attrs(node)
        if a.get("training_mode", 0) or any(node.output[1:]):
            raise self.fail(node, "is in training mode (it updates its statistics); export the model in eval mode "
                                  "(model.eval())")
        gamma, beta, mean, var = (self.real_const(node, i).reshape(-1) for i in range(1, 5))
        eps = f64(np.float32(a.get("epsilon", 1e-5)))
        scale = gamma / np.sqrt(var + eps)
        shift = beta - scale * mean
        x = self.entry(node, node.input[0])
        if isinstance(x, Pending) and x.op == "conv" and x.lo is None and x.hi is None and x.reshape is None \
                and "bn" not in x.attrs:
            self.env[node.output[0]] = replace(x, attrs={**x.attrs, "bn": (scale, shift, node)})
            return
        if isinstance(x, Real):
            shape = self.g[x.name].shape
            if len(shape) < 2 or scale.size != shape[1]:
                raise self.fail(node, f"has {scale.size} channels, its input {list(shape)}")
            self.pend(node, "affine", (x,), scale=scale, shift=shift)
            return
        raise self.fail(node, f"reads '{node.input[0]}', neither a dequantized int8 tensor nor the float output of a "
                              f"Conv; fold it before quantizing: {PREPROCESS}")

    def affine_node(self, node, name: str, x: str, scale: np.ndarray, shift: np.ndarray, out: str, quant,
                    clamp: dict) -> str:
        """y = scale[c] * real(x) + shift[c], requantized: ``affine`` with its multipliers and offsets in output
        units, computed in float64 and rounded to float32."""
        channels = self.g[x].shape[1]
        sx, sy = f64(self.g[x].quant.scale), f64(quant.scale)
        m = (np.broadcast_to(f64(scale), (channels,)) * sx / sy).astype(np.float32)
        o = (np.broadcast_to(f64(shift), (channels,)) / sy).astype(np.float32)
        if not (np.isfinite(m).all() and np.isfinite(o).all()):
            raise self.fail(node, f"has non-finite per-channel factors; fold it before quantizing: {PREPROCESS}")
        m_name = self.g.add_const(f"{name}.multiplier", m).name
        o_name = self.g.add_const(f"{name}.offset", o).name
        y = self.emit("affine", name, [x, m_name, o_name], out, quant, **clamp)
        what = "BatchNormalization" if node.op_type == "BatchNormalization" else "multiply by a constant"
        add_note(self.g, f"{describe(node)} runs as a per-channel int8 affine op (the {what}: y = a[c] * x + b[c], "
                         f"requantized in float32)")
        return y

    def fold_bn(self, node, bn, x: str, wdata: np.ndarray, wq: QuantParams, b, quant):
        """(weight, its parameters, bias) of the conv ``node`` with the BatchNormalization after it folded in."""
        scale, shift, bn_node = bn
        cout = wdata.shape[0]
        if scale.size != cout:
            raise self.fail(bn_node, f"has {scale.size} channels, the conv before it {cout}")
        if not np.isfinite(scale).all() or (scale == 0).any():
            raise self.fail(bn_node, f"has a zero or non-finite gamma / sqrt(var + eps), which no weight scale can "
                                     f"absorb: {PREPROCESS}")
        wq = per_channel(wq, cout)
        zp = wq.zero_point.astype(np.int32).reshape(-1).copy()
        neg = scale < 0
        if neg.any():
            if (wdata[neg] == -128).any() or (zp[neg] == -128).any():
                raise self.fail(bn_node, f"has a negative gamma in channels {np.flatnonzero(neg).tolist()[:8]} whose "
                                         f"int8 weights hold -128, which cannot be negated exactly: {PREPROCESS}")
            wdata = wdata.copy()
            wdata[neg] = -wdata[neg]
            zp[neg] = -zp[neg]
        new_wq = QuantParams((f64(wq.scale).reshape(-1) * np.abs(scale)).astype(np.float32), zp, 0)
        real = scale * self.bias_real(node, b, cout) + shift
        units = f64(self.g[x].quant.scale) * f64(new_wq.scale)
        step = units / f64(quant.scale)
        if (step > 1).any():
            raise self.fail(bn_node, f"would round its shift to int32 units of up to {float(step.max()):.3g} output "
                                     f"steps in {describe(node)}, not within one step of onnxruntime: {PREPROCESS}")
        if (np.abs(real / units) >= 2**31 - 1).any():
            raise self.fail(bn_node, f"shifts by more than the int32 bias of {describe(node)} holds: {PREPROCESS}")
        return wdata, new_wq, Const(real)

    def bias_real(self, node, b, cout: int) -> np.ndarray:
        if b is None:
            return np.zeros(cout)
        if isinstance(b, QConst):
            return np.broadcast_to(dequantized(b).reshape(-1), (cout,))
        if isinstance(b, Const):
            return np.broadcast_to(b.data.astype(np.float64).reshape(-1), (cout,))
        raise self.fail(node, "bias must be a constant")

    def bn_folded(self, node, bn, w_name: str) -> None:
        scale, _, bn_node = bn
        neg = np.flatnonzero(scale < 0)
        if neg.size:
            self.g.metadata[f"negated:{w_name}"] = ",".join(str(int(c)) for c in neg)
        add_note(self.g, f"{describe(bn_node)} folded into {describe(node)}: weight scales times gamma / sqrt(var + "
                         f"eps){f', {neg.size} channels negated' if neg.size else ''}, shift rounded into the int32 "
                         f"bias (no longer the model's: not trained)")
