"""The gemm family: fully connected ``gemm`` (x[N, K] times w[M, K]^T plus bias), its gradients and the
fused weight update.  With the ``"tflite"`` arithmetic the output is rounded once, ``round(acc * s_x * s_w / s_y)``
in double precision, as TFLite's reference FULLY_CONNECTED does (tte.reference.fixedpoint.fully_connected,
``tte_gemm_tflite_s8``); with ``"tflite-micro"`` it is requantized as a conv is, MBQM by a Q31 multiplier per
output channel, as TFLite Micro and CMSIS-NN do (``tte_gemm_s8`` with the multipliers in its quant params)."""

from __future__ import annotations

import numpy as np

from ..errors import TteError
from ..ir import Graph, Node
from ..ir.registry import Shape, register
from ..reference import fixedpoint as fp
from ..reference import numerics as nx
from ..reference import semantics as sem
from . import cgen as cg
from .common import (
    channels_independent,
    finish,
    finish_int,
    mask_output,
    masked,
    never,
    no_scratch,
    one_literal,
    tflite,
    tflite_micro,
    weight_zero_points,
)
from .conv import conv_multiplier, grad_input_flash, requantize_channels, tflite_multipliers
from .update import TRAINING_ONLY, fused_update_extra, fused_update_shape, sgd, update_attrs

# -- C emitters (the ``emit`` facet) ------------------------------------------------------------


def emit_gemm(e: cg.Emitter, node: Node) -> None:
    g = e.g
    x, w, b = node.inputs
    y = node.output
    cg.check_acc(g, node, w)
    n, k = g[x].shape
    if w in e.shared.frozen_part:
        raise TteError(f"gemm '{node.name}': a partially trained gemm weight cannot be emitted yet")
    q = e.quant(x, y, node)
    if tflite_micro(g):  # the Q31 multipliers ride in the quant params, as a conv's
        function, q, m = "tte_gemm_s8", e.tflite_quant(x, y, node, tflite_multipliers(g, node), node.name), "NULL"
    elif tflite(g):
        function, m = "tte_gemm_tflite_s8", e.array(f"{node.name}_scales", tflite_scales(g, node), "double")
    else:
        function, m = "tte_gemm_s8", e.array(f"{node.name}_m", conv_multiplier(g, node), "float")
    e.call(node, f"{function}({q}, {n}, {k}, {g[w].shape[0]}, {e.ptr(x)}, {e.value_const(w)}, "
                 f"{e.weight_zero_points(w)}, {e.value_const(b)}, {m}, {e.ptr(y)}, {e.mask(node)})")


def emit_gemm_grad_input(e: cg.Emitter, node: Node) -> None:
    gy, w = node.inputs
    n, m = e.g[gy].shape
    e.call(node, f"tte_gemm_grad_input_f32({n}, {e.g[w].shape[1]}, {m}, {e.ptr(gy)}, {cg.weights(e, w)}, "
                 f"{e.ptr(node.output)})")


def emit_gemm_grad_weight(e: cg.Emitter, node: Node) -> None:
    gy, x = node.inputs
    n, m = e.g[gy].shape
    e.call(node, f"tte_gemm_grad_weight_f32({n}, {e.g[x].shape[1]}, {m}, {node.attrs['channels']}, {cg.saved(e, x)}, "
                 f"{e.ptr(gy)}, {e.ptr(node.output)})")


def emit_gemm_weight_update(e: cg.Emitter, node: Node) -> None:
    gy, x, param, factor = node.inputs[:4]
    aux = node.inputs[4] if len(node.inputs) > 4 else None
    n, m = e.g[gy].shape
    e.call(node, f"tte_gemm_weight_update_s8({n}, {e.g[x].shape[1]}, {m}, {node.attrs['channels']}, "
                 f"{cg.saved(e, x)}, {e.ptr(gy)}, {e.value_const(factor)}, {cg.sgd_params(e, node, aux)}, "
                 f"{e.ptr(param)})")


def gemm_shape(g: Graph, n: Node) -> Shape:
    x, w = g[n.inputs[0]].shape, g[n.inputs[1]].shape
    if len(x) != 2 or len(w) != 2 or x[1] != w[1]:
        raise ValueError(f"gemm expects x[N,K] and w[M,K], got {x} and {w}")
    if len(n.inputs) > 2 and g[n.inputs[2]].shape != (w[0],):
        raise ValueError(f"gemm bias shape {g[n.inputs[2]].shape} != ({w[0]},)")
    return (x[0], w[0])


def gemm_accumulator(g: Graph, node: Node, x, w, b) -> np.ndarray:
    xc = nx.centered(x, g[node.inputs[0]].quant)
    wc = nx.weight_centered(w, g[node.inputs[1]].quant)
    return nx.exact(xc @ wc.T) + b.astype(np.int64)[None, :]


def tflite_scales(g: Graph, node: Node) -> np.ndarray:
    """TFLite's reference fully connected rescales in double precision: s_x * s_w[c] / s_y per output channel."""
    xq, wq, yq = (g[n].quant for n in (node.inputs[0], node.inputs[1], node.outputs[0]))
    return fp.fc_scales(xq.scale, np.broadcast_to(np.float32(wq.scale), (g[node.inputs[1]].shape[0],)), yq.scale)


def gemm(g: Graph, node: Node, x, w, b):
    acc = gemm_accumulator(g, node, x, w, b)
    zy = nx.zero_point(g[node.output].quant)
    if tflite_micro(g):  # MBQM per output channel (TFLite Micro, CMSIS-NN)
        return finish_int(node, requantize_channels(acc, tflite_multipliers(g, node), zy))
    if tflite(g):  # one rounding of acc * scale in double precision, half away from zero
        return finish_int(node, fp.fully_connected(sem.saturate_int32(acc), tflite_scales(g, node)[None, :], zy))
    m = np.broadcast_to(conv_multiplier(g, node), (w.shape[0],)).reshape(1, -1)
    return finish(node, sem.preround(acc, m), zy)


def gemm_flash(g: Graph, n: Node) -> tuple[list[np.ndarray], int]:
    """The per-channel multipliers (``"tflite"``: double scales; ``"tflite-micro"``: Q31 multipliers and
    exponents), and the weight's non-zero zero points."""
    if tflite_micro(g):
        multipliers = list(tflite_multipliers(g, n))
    else:
        multipliers = [tflite_scales(g, n) if tflite(g) else conv_multiplier(g, n)]
    return [*multipliers, *weight_zero_points(g, n.inputs[1])], 0


def gemm_grad(b, node: Node, gy: str) -> None:
    x, w, bias = node.inputs
    dz = masked(b, node, gy)
    if b.wants(x):
        b.contribute(x, b.emit("gemm_grad_input", [dz, w], f"{x}.grad_from.{node.name}"))
    if b.wants(w):
        b.param_grad(w, b.emit("gemm_grad_weight", [dz, b.saved(x)], f"{w}.grad", channels=b.channels(w)))
    if b.wants(bias):
        b.param_grad(bias, b.emit("bias_grad", [dz], f"{bias}.grad"))


register(name="gemm", operands=("int8", "int8", "int32"), out_dtype="int8", shape=gemm_shape, attrs=("qmin", "qmax"),
         requantizes=True, extra=mask_output, optional=0, kernel=gemm, grad=gemm_grad, emit=emit_gemm,
         runtime=("tte_gemm_s8.c", "tte_gemm_tflite_s8.c"), scratch=no_scratch, in_place=never, alias=False,
         flash=gemm_flash, code_bytes=500,
         channels=channels_independent, layer=True, onnx=("Gemm", "MatMul", "QGemm", "QLinearMatMul"))


def gemm_grad_input_shape(g: Graph, n: Node) -> Shape:
    dy, w = g[n.inputs[0]].shape, g[n.inputs[1]].shape
    if dy[1] != w[0]:
        raise ValueError(f"gemm_grad_input: gradient {dy} does not match weight {w}")
    return (dy[0], w[1])


def gemm_grad_input(g: Graph, node: Node, gy, w):
    """dx[n, k] = sum over m (ascending) of dz[n, m] * W[m, k]."""
    wr = nx.weight_real(g, node.inputs[1], w)
    return nx.seq_sum(gy[:, :, None] * wr[None], axis=1).astype(nx.F32)


register(name="gemm_grad_input", operands=("float32", "int8"), out_dtype="float32", shape=gemm_grad_input_shape,
         attrs=(), extra=None, optional=0, kernel=gemm_grad_input, emit=emit_gemm_grad_input,
         runtime=("tte_gemm_grad_input_f32.c",), scratch=no_scratch, code_bytes=300,
         **dict(TRAINING_ONLY, flash=grad_input_flash))


def gemm_grad_weight_shape(g: Graph, n: Node) -> Shape:
    return (g[n.inputs[0]].shape[1], n.attrs["channels"])


def gemm_grad_weight(g: Graph, node: Node, gy, x):
    """dW[m, k] = sum over samples n (ascending) of dz[n, m] * x[n, k]."""
    k = node.attrs["channels"]
    xr = nx.real(g, node.inputs[1], x)[:, :k]
    return nx.seq_sum(gy[:, :, None] * xr[:, None, :], axis=0).astype(nx.F32)


register(name="gemm_grad_weight", operands=("float32", "int8"), out_dtype="float32", shape=gemm_grad_weight_shape,
         attrs=("channels",), extra=None, optional=0, kernel=gemm_grad_weight, emit=emit_gemm_grad_weight,
         runtime=("tte_gemm_grad_weight_f32.c",), scratch=no_scratch, code_bytes=300, **TRAINING_ONLY)


def gemm_weight_update(g: Graph, node: Node, gy, x, param, factor, aux=None):
    """gemm_grad_weight then sgd, fused (same numbers; the C kernel needs no gradient buffer)."""
    return sgd(g, node, param, gemm_grad_weight(g, node, gy, x), factor, aux)


register(name="gemm_weight_update", operands=("float32", "int8", "int8", "float32", "*"), out_dtype="same:2",
         shape=fused_update_shape(2, gemm_grad_weight_shape), attrs=update_attrs, extra=fused_update_extra(4),
         optional=1, kernel=gemm_weight_update, emit=emit_gemm_weight_update,
         runtime=("tte_gemm_weight_update_s8.c",), scratch=no_scratch, code_bytes=600,
         **dict(TRAINING_ONLY, flash=one_literal))
