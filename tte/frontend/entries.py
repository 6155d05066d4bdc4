"""What an ONNX tensor is, in integer terms, while the lifter walks the graph, and the small helpers that
read quantization parameters off ONNX nodes (shared by the QDQ and the QOperator handlers)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import onnx

from ..ir import QuantParams


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
    """A float graph input that has not been quantized yet; ``moves``: what the Transpose / Flatten / Reshape /
    Squeeze / Unsqueeze / MaxPool nodes between it and its QuantizeLinear did to it, in order, each as
    ``(IR op, attributes, shape after it)``.  They run on the int8 values after the quantization: quantizing is
    elementwise, so it commutes with moving values, and monotonic, so it commutes with a max."""
    name: str
    moves: tuple[tuple[str, tuple[tuple[str, Any], ...], tuple[int, ...]], ...] = ()

    def moved(self, op: str, shape: tuple[int, ...], /, **attrs) -> FloatInput:
        """This input with one more move; consecutive transposes compose, consecutive reshapes keep the last, a
        transpose that moves nothing is none."""
        moves, shape = self.moves, tuple(int(d) for d in shape)
        if moves and moves[-1][0] == op and op in ("transpose", "reshape"):
            if op == "transpose":
                prev = dict(moves[-1][1])["perm"]
                attrs = {"perm": tuple(prev[p] for p in attrs["perm"])}
            moves = moves[:-1]
        if op == "transpose" and tuple(attrs["perm"]) == tuple(range(len(attrs["perm"]))):
            return FloatInput(self.name, moves)
        return FloatInput(self.name, (*moves, (op, tuple(attrs.items()), shape)))

    def shape(self, shape: tuple[int, ...]) -> tuple[int, ...]:
        """The shape after the moves, of an input of ``shape``."""
        return self.moves[-1][2] if self.moves else tuple(shape)


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


@dataclass(frozen=True)
class Padded:
    """``base`` (an Int8 or Real entry, NCHW) after a zero-valued ONNX Pad of ``pads`` = (top, left, bottom,
    right): the next window op (conv, pool) takes them as padding of its own.  ``base`` is a :class:`FloatInput`
    for a Pad of 0.0 on the float graph input, until its QuantizeLinear (which makes the zeros the zero point)."""
    base: Int8 | Real | FloatInput
    pads: tuple[int, int, int, int]
    node: onnx.NodeProto


@dataclass(frozen=True)
class Permuted:
    """``base`` (an Int8 or Real entry) as an ONNX Transpose permuted it (``perm``) and, with ``flat``, a
    Flatten/Reshape then made it [N, rest]: tte keeps base's layout and folds the permutation into the consumer
    (the classifier's weight columns, a mean's axes)."""
    base: Int8 | Real
    perm: tuple[int, ...]
    node: onnx.NodeProto
    flat: bool = False


Entry = Int8 | Real | Const | QConst | FloatInput | Pending | Padded | Permuted


def onnx_attrs(node: onnx.NodeProto) -> dict[str, Any]:
    return {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}


def describe(node: onnx.NodeProto) -> str:
    return f"{node.op_type} node '{node.name or node.output[0]}'"



def init_name(env: dict, onnx_name: str) -> str:
    """The initializer behind an ONNX tensor (itself, or the input of its DequantizeLinear)."""
    e = env.get(onnx_name)
    return getattr(e, "name", "") or ""


def quant_hint() -> str:
    from .reader import QUANTIZE_HINT

    return QUANTIZE_HINT


def quant_params(scale, zero_point, axis: int | None, ndim: int) -> QuantParams:
    scale = np.asarray(scale, dtype=np.float32)
    zp = np.zeros_like(scale, dtype=np.int32) if zero_point is None else np.asarray(zero_point).astype(np.int32)
    if scale.size == 1 and axis is None:
        return QuantParams(scale.reshape(()), zp.reshape(()))
    return QuantParams(scale.reshape(-1), zp.reshape(-1), axis % ndim if axis is not None else None)


def check_scale(lifter: Any, node: onnx.NodeProto, scale) -> None:
    scale = np.asarray(scale)
    if not np.issubdtype(scale.dtype, np.floating) or not (np.isfinite(scale) & (scale > 0)).all():
        raise lifter.fail(node, f"quantization scale '{node.input[1]}' must be positive and finite, got "
                                f"{scale.ravel()[:4].tolist()}{'...' if scale.size > 4 else ''}")


def per_channel(q: QuantParams, cout: int) -> QuantParams:
    """Weight parameters as one entry per output channel (axis 0)."""
    if q.axis is not None:
        return q
    return QuantParams(np.full(cout, q.scale, np.float32), np.full(cout, q.zero_point, np.int32), 0)


def bias_quant(xq: QuantParams, wq: QuantParams) -> QuantParams:
    scale = (xq.scale.astype(np.float64) * wq.scale.astype(np.float64)).astype(np.float32)
    return QuantParams(scale, np.zeros_like(scale, dtype=np.int32), 0)


def quantize_const(data: np.ndarray, q: QuantParams, dtype) -> np.ndarray:
    scale, zp = q.scale, q.zero_point
    if q.axis is not None:
        shape = [1] * data.ndim
        shape[q.axis] = -1
        scale, zp = scale.reshape(shape), zp.reshape(shape)
    info = np.iinfo(dtype)
    return np.clip(np.rint(data.astype(np.float32) / scale) + zp, info.min, info.max).astype(dtype)

