"""The update family: SGD on int8 weights and int32 biases (every rounding mode), the bias gradient and
its fused update, momentum, and the step counter of stochastic rounding.

A step is taken in real units and converted to the parameter's integer units by a per-channel factor
(QAS: 1 / scale); how the integer absorbs a fractional step is the ``rounding`` attribute
(:class:`tte.autodiff.backward.TrainOptions`).
"""

from __future__ import annotations

import numpy as np

from ..ir import Graph, Node
from ..ir.registry import NOT_DIFFERENTIATED, Shape, register
from ..reference import numerics as nx
from . import cgen as cg
from .common import channels_training_only, first_operand, never, no_flash, no_scratch, one_literal, same_pair

F32 = nx.F32
update_attrs = ("lr", "rounding", "axis", "channels", "qmin", "qmax")


# -- C emitters (the ``emit`` facet) ------------------------------------------------------------


def emit_bias_grad(e: cg.Emitter, node: Node) -> None:
    gy = node.inputs[0]
    e.call(node, f"tte_bias_grad_f32({e.dims(gy)}, {e.ptr(gy)}, {e.ptr(node.output)})")


def emit_bias_update(e: cg.Emitter, node: Node) -> None:
    gy, param, factor = node.inputs[:3]
    aux = node.inputs[3] if len(node.inputs) > 3 else None
    e.call(node, f"tte_bias_update_s32({e.dims(gy)}, {e.ptr(gy)}, {e.value_const(factor)}, "
                 f"{cg.sgd_params(e, node, aux)}, {e.ptr(param)})")


def emit_sgd(e: cg.Emitter, node: Node) -> None:
    param, grad, factor = node.inputs[:3]
    aux = node.inputs[3] if len(node.inputs) > 3 else None
    if e.g[param].dtype == "int8":
        g_shape = e.g[grad].shape
        size = int(np.prod(g_shape))
        e.call(node, f"tte_sgd_s8({size}, {size // g_shape[0]}, {e.ptr(grad)}, {e.value_const(factor)}, "
                     f"{cg.sgd_params(e, node, aux)}, {e.ptr(param)})")
    else:
        e.call(node, f"tte_sgd_s32({e.g[param].size}, {e.ptr(grad)}, {e.value_const(factor)}, "
                     f"{cg.sgd_params(e, node, aux)}, {e.ptr(param)})")


def emit_momentum(e: cg.Emitter, node: Node) -> None:
    vel, grad = node.inputs
    e.call(node, f"tte_momentum_f32({e.g[vel].size}, {cg.c_float(node.attrs['beta'])}, {e.ptr(grad)}, {e.ptr(vel)})")


def emit_count(e: cg.Emitter, node: Node) -> None:
    # counted in unsigned arithmetic (an int32_t read as its uint32_t is allowed): it wraps after 2^32 steps, never
    # the undefined overflow of a signed ++; the hash of stochastic rounding reads it as uint32_t
    e.deferred += cg.c_comment(f"{node.op} {node.name}", 4) + [f"    (*(uint32_t *){e.ptr(node.inputs[0])})++;"]


def sgd(g: Graph, node: Node, param, grad, factor, aux=None):
    """param -= absorb(lr * grad * factor) on the trained slice (see tte.autodiff.backward.TrainOptions)."""
    a = node.attrs
    step = (F32(a["lr"]) * grad * factor).astype(F32)  # in integer units of the parameter
    mode = a["rounding"]
    residual = None
    if mode == "nearest":
        delta = np.rint(step)
    elif mode == "trunc":
        delta = np.trunc(step)
    elif mode == "stochastic":
        u = nx.uniform_hash(a["seed"], int(aux), a["stream"], step.size).reshape(step.shape)
        delta = np.floor(step + u)
    elif mode == "accumulate":
        total = (aux + step).astype(F32)
        delta = np.rint(total)
        residual = (total - delta).astype(F32)
    else:
        raise ValueError(f"unknown rounding '{mode}'")
    # a step can move a value across the whole range at most; a NaN step (a diverged gradient) moves nothing
    span = float(a["qmax"]) - float(a["qmin"])
    delta = np.clip(np.nan_to_num(delta, nan=0.0), -span, span).astype(np.int64)
    idx = [slice(None)] * param.ndim
    idx[a["axis"]] = slice(0, a["channels"])
    out = param.copy()
    cur = out[tuple(idx)].astype(np.int64)
    # values that do not move keep their value (even an int8 -128, outside the symmetric [-127, 127])
    out[tuple(idx)] = np.where(delta == 0, cur, np.clip(cur - delta, a["qmin"], a["qmax"])).astype(param.dtype)
    return out if residual is None else (out, residual)


def sgd_shape(g: Graph, n: Node) -> Shape:
    p, grad = g[n.inputs[0]].shape, g[n.inputs[1]].shape
    want = list(p)
    want[n.attrs["axis"]] = n.attrs["channels"]
    if tuple(want) != grad:
        raise ValueError(f"sgd: gradient {grad} does not match the trained slice {tuple(want)} of {p}")
    return p


def sgd_extra(g: Graph, n: Node):
    return [("float32", g[n.inputs[3]].shape)] if n.attrs["rounding"] == "accumulate" else []


def fused_update_shape(param_index: int, grad_rule):
    """Shape rule of a fused gradient + update op: the gradient it would produce must fit the slice."""
    def rule(g: Graph, n: Node) -> Shape:
        p = g[n.inputs[param_index]].shape
        want = list(p)
        want[n.attrs["axis"]] = n.attrs["channels"]
        grad = grad_rule(g, n) if grad_rule else (p[0],)
        if tuple(want) != tuple(grad):
            raise ValueError(f"{n.op}: gradient {tuple(grad)} does not match the trained slice {tuple(want)} of {p}")
        return p
    return rule


def fused_update_extra(aux_index: int):
    """The accumulate rounding's residual, written as a second output."""
    def extra(g: Graph, n: Node):
        return [("float32", g[n.inputs[aux_index]].shape)] if n.attrs["rounding"] == "accumulate" else []
    return extra


TRAINING_ONLY = dict(requantizes=False, grad=NOT_DIFFERENTIATED, in_place=never, alias=False,
                     channels=channels_training_only, layer=False, onnx=(), flash=no_flash)

register(name="sgd", operands=("int8|int32", "float32", "float32", "*"), out_dtype="same", shape=sgd_shape,
         attrs=update_attrs, extra=sgd_extra, optional=1, kernel=sgd, emit=emit_sgd,
         runtime=("tte_sgd_s8.c", "tte_sgd_s32.c"), scratch=no_scratch, code_bytes=500,
         **dict(TRAINING_ONLY, flash=one_literal))


def bias_grad(g: Graph, node: Node, gy):
    """For each channel, the sum over samples, then positions (ascending)."""
    n, o = gy.shape[:2]
    return nx.seq_sum(gy.reshape(n, o, -1).transpose(0, 2, 1).reshape(-1, o), axis=0).astype(F32)


register(name="bias_grad", operands=("float32",), out_dtype="float32", shape=lambda g, n: (g[n.inputs[0]].shape[1],),
         attrs=(), extra=None, optional=0, kernel=bias_grad, emit=emit_bias_grad, runtime=("tte_bias_grad_f32.c",),
         scratch=no_scratch, code_bytes=200, **TRAINING_ONLY)


def bias_update(g: Graph, node: Node, gy, param, factor, aux=None):
    """bias_grad then sgd, fused (same numbers)."""
    return sgd(g, node, param, bias_grad(g, node, gy), factor, aux)


register(name="bias_update", operands=("float32", "int32", "float32", "*"), out_dtype="same:1",
         shape=fused_update_shape(1, None), attrs=update_attrs, extra=fused_update_extra(3), optional=1,
         kernel=bias_update, emit=emit_bias_update, runtime=("tte_bias_update_s32.c",), scratch=no_scratch,
         code_bytes=500, **dict(TRAINING_ONLY, flash=one_literal))


def momentum(g: Graph, node: Node, velocity, grad):
    """velocity = beta * velocity + grad."""
    return (F32(node.attrs["beta"]) * velocity + grad).astype(F32)


register(name="momentum", operands=("float32", "float32"), out_dtype="float32", shape=same_pair, attrs=("beta",),
         extra=None, optional=0, kernel=momentum, emit=emit_momentum, runtime=("tte_momentum_f32.c",),
         scratch=no_scratch, code_bytes=150, **TRAINING_ONLY)


def count(g: Graph, node: Node, step):
    """The step counter of stochastic rounding (C: an unsigned increment after the step): wraps from 2^31 - 1 to
    -2^31 as the C's uint32_t view of it wraps, never overflows."""
    return np.array((int(step) + 1 + 2**31) % 2**32 - 2**31, np.int32)


register(name="count", operands=("int32",), out_dtype="int32", shape=first_operand, attrs=(), extra=None,
         optional=0, kernel=count, emit=emit_count, runtime=(), scratch=no_scratch, code_bytes=20, **TRAINING_ONLY)
