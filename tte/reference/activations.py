"""numpy math of the squeeze-and-excitation ops: table-driven HardSwish / Sigmoid and elementwise int8 Mul.

Pure functions on arrays (no Graph, no Node): the IR glue calls them.  Every float result is float32, each
operation rounded on its own, exactly as the C runtime computes it (tte_lut_s8, tte_lut_grad_f32, tte_mul_s8,
tte_mul_grad_f32, tte_mul_grad_channel_f32).

**HardSwish and Sigmoid** map an int8 input to an int8 output with its own scale, zero point and clamp.
An int8 input has 256 values, so the whole op is three 256-entry tables computed here, once, at compile time
(:func:`unary_tables`, indexed by ``q_x + 128``); C only looks them up, so C equals the reference by
construction.  For table entry i (``q = i - 128``):

* ``r = float32(q - z_x) * float32(s_x)``;
* ``y = f(r)`` in float32 (:func:`hardswish_f32`, :func:`sigmoid_f32`), ``v = y / float32(s_y)`` (float32
  division, as QuantizeLinear), ``forward[i], mask[i] = round_clamp_mask(v, z_y, qmin, qmax)``;
* ``grad[i] = f'(r)`` (:func:`hardswish_grad_f32`, :func:`sigmoid_grad_f32`) where ``mask[i]``, else 0: the
  straight-through gradient of the output's rounding and clamp is folded into the derivative, so the backward
  (:func:`lut_grad`) is one float32 product per element, ``dx = dy * grad[x + 128]``, in real units, reading the
  saved int8 input (not a mask).

**Mul** ``y = a * b``, b of a's shape [N, C, H, W] or per channel [N, C, 1, 1] (the SE gate):
``acc = (q_a - z_a) * (q_b - z_b)`` exact (|acc| <= 255 * 255), ``v = float32(acc) * M`` with
``M = float32(s_a * s_b / s_y)`` (:func:`mul_multiplier`, semantics point 2), ``round_clamp_mask``.  Backward in
real units on the already masked output gradient dz: the operand shaped like dz gets ``dz * real(other)``
(other broadcast per channel if it is the gate, :func:`mul_grad`); a per-channel operand gets, for each (n, c),
the float32 sum over positions (h, w ascending, left to right) of ``dz * real(other)`` (:func:`mul_grad_channel`).
``real(q) = float32(q - z) * float32(s)`` (:func:`tte.reference.semantics.dequantize`).
"""

from __future__ import annotations

import numpy as np

from . import semantics as sem
from .numerics import expf, seq_sum

F32 = np.float32
KINDS = ("hardswish", "sigmoid")
ALL_S8 = np.arange(-128, 128, dtype=np.int32).astype(np.int8)  # table entry i holds q = i - 128


# ---- float32 math ---------------------------------------------------------------------------------------------
def hardswish_f32(r) -> np.ndarray:
    """``t = r + 3; t = min(max(t, 0), 6); y = (r * t) / 6``: four float32 operations (add, clamp, multiply,
    divide), as PyTorch's ``x * min(max(x + 3, 0), 6) / 6``."""
    r = np.asarray(r, F32)
    t = np.minimum(np.maximum((r + F32(3)).astype(F32), F32(0)), F32(6))
    return ((r * t).astype(F32) / F32(6)).astype(F32)


def hardswish_grad_f32(r) -> np.ndarray:
    """0 for r <= -3, ``r / 3 + 0.5`` (float32 divide, then add) for -3 < r < 3, 1 for r >= 3.

    The breakpoints take the outer pieces (0 at -3, 1 at +3), as ``torch.ops.aten.hardswish_backward`` does."""
    r = np.asarray(r, F32)
    mid = ((r / F32(3)).astype(F32) + F32(0.5)).astype(F32)
    return np.where(r <= F32(-3), F32(0), np.where(r >= F32(3), F32(1), mid)).astype(F32)


def _sigmoid_parts(r: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(small, big) = (e / (1 + e), 1 / (1 + e)) with ``e = expf(-|r|)``: min and max of sigmoid(r), 1 - sigmoid(r)."""
    e = expf(-np.abs(r))
    d = (F32(1) + e).astype(F32)
    return (e / d).astype(F32), (F32(1) / d).astype(F32)


def sigmoid_f32(r) -> np.ndarray:
    """For r >= 0: ``1 / (1 + expf(-r))``; for r < 0: ``e / (1 + e)`` with ``e = expf(r)`` (float32, tte's fixed
    :func:`tte.reference.numerics.expf`, only ever called on values <= 0)."""
    r = np.asarray(r, F32)
    small, big = _sigmoid_parts(r)
    return np.where(r >= F32(0), big, small).astype(F32)


def sigmoid_grad_f32(r) -> np.ndarray:
    """``s * (1 - s)`` of the float32 sigmoid, with ``1 - s`` taken as the complementary fraction rather than by
    subtraction: with e = expf(-|r|), ``(e / (1 + e)) * (1 / (1 + e))`` (both factors as in :func:`sigmoid_f32`,
    one of them is s itself).  Same value as s * (1 - s) up to rounding, but accurate to a few float32 ulps
    relative everywhere (``1 - s`` would cancel for large r, giving 0 from r = 17 on), and exactly even in r."""
    small, big = _sigmoid_parts(np.asarray(r, F32))
    return (small * big).astype(F32)


FORWARD = {"hardswish": hardswish_f32, "sigmoid": sigmoid_f32}
DERIVATIVE = {"hardswish": hardswish_grad_f32, "sigmoid": sigmoid_grad_f32}


# ---- table-driven unary ops -----------------------------------------------------------------------------------
def unary_tables(kind: str, s_x, z_x: int, s_y, z_y: int, qmin: int = -128, qmax: int = 127):
    """(forward int8[256], mask bool[256], grad float32[256]) of ``kind`` ("hardswish" or "sigmoid"), entry i
    for the input ``q_x = i - 128`` (see the module docstring)."""
    if kind not in FORWARD:
        raise ValueError(f"unknown table kind '{kind}' (expected one of {KINDS})")
    r = sem.dequantize(ALL_S8, F32(s_x), int(z_x))
    v = (FORWARD[kind](r) / F32(s_y)).astype(F32)
    forward, mask = sem.round_clamp_mask(v, int(z_y), qmin, qmax)
    grad = np.where(mask, DERIVATIVE[kind](r), F32(0)).astype(F32)
    return forward, mask, grad


def pack_mask_table(mask: np.ndarray) -> np.ndarray:
    """The 256-entry boolean mask table bit-packed for tte_lut_s8: 32 bytes, entry i in bit ``i & 7`` of byte
    ``i >> 3`` (the runtime's mask layout)."""
    mask = np.asarray(mask, bool)
    if mask.shape != (256,):
        raise ValueError(f"a mask table has 256 entries, not {mask.shape}")
    return np.packbits(mask, bitorder="little")


def _index(x: np.ndarray) -> np.ndarray:
    if np.asarray(x).dtype != np.int8:
        raise TypeError(f"table lookups take int8 inputs, not {np.asarray(x).dtype}")
    return np.asarray(x).astype(np.int32) + 128


def lut_forward(x: np.ndarray, table: np.ndarray, mask_table: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(table[x + 128] as int8, mask_table[x + 128] as bool): tte_lut_s8."""
    i = _index(x)
    return np.asarray(table, np.int8)[i], np.asarray(mask_table, bool)[i]


def lut_grad(dy: np.ndarray, x: np.ndarray, grad_table: np.ndarray) -> np.ndarray:
    """``dx = dy * grad_table[x + 128]`` (one float32 product): tte_lut_grad_f32."""
    return (np.asarray(dy, F32) * np.asarray(grad_table, F32)[_index(x)]).astype(F32)


# ---- elementwise Mul ------------------------------------------------------------------------------------------
def mul_multiplier(s_a, s_b, s_y) -> np.float32:
    """M = float32(s_a * s_b / s_y), computed in float64 from the float32 scales."""
    return sem.multiplier(sem.f64(F32(s_a)) * sem.f64(F32(s_b)), F32(s_y))[()]


def _check_operand(a_shape, b_shape, what: str = "b") -> None:
    a_shape, b_shape = tuple(a_shape), tuple(b_shape)
    per_channel = len(a_shape) == 4 and b_shape == (a_shape[0], a_shape[1], 1, 1)
    if b_shape != a_shape and not per_channel:
        raise ValueError(f"{what} of shape {b_shape} is neither {a_shape} nor per channel (N, C, 1, 1)")


def mul_forward(a: np.ndarray, z_a: int, b: np.ndarray, z_b: int, m, z_y: int, qmin: int = -128,
                qmax: int = 127) -> tuple[np.ndarray, np.ndarray]:
    """(y int8, mask bool) of the int8 product: ``round_clamp_mask(float32((a - z_a) * (b - z_b)) * m, z_y)``;
    b has a's shape or [N, C, 1, 1] (broadcast over H, W).  m is :func:`mul_multiplier`."""
    _check_operand(a.shape, b.shape)
    acc = (a.astype(np.int32) - int(z_a)) * (b.astype(np.int32) - int(z_b))
    return sem.round_clamp_mask(acc.astype(F32) * F32(m), int(z_y), qmin, qmax)


def mul_grad(dz: np.ndarray, other_real: np.ndarray) -> np.ndarray:
    """Gradient of the operand shaped like dz: ``dz * real(other)`` elementwise (one float32 product), other of
    dz's shape or per channel [N, C, 1, 1] (broadcast).  Used for a (other = b) and for a same-shape b."""
    _check_operand(dz.shape, other_real.shape, "other")
    return (np.asarray(dz, F32) * np.asarray(other_real, F32)).astype(F32)


def mul_grad_channel(dz: np.ndarray, other_real: np.ndarray) -> np.ndarray:
    """Gradient of a per-channel operand [N, C, 1, 1] (other shaped like dz [N, C, H, W]): for each (n, c), the
    float32 sum over positions (h, w ascending, strictly left to right) of ``dz * real(other)``."""
    if dz.ndim != 4 or other_real.shape != dz.shape:
        raise ValueError(f"other {other_real.shape} must have dz's NCHW shape {dz.shape}")
    n, c = dz.shape[:2]
    terms = (np.asarray(dz, F32) * np.asarray(other_real, F32)).astype(F32).reshape(n, c, -1)
    return seq_sum(terms, axis=2).reshape(n, c, 1, 1).astype(F32)
