"""What several op families share: window shape rules, the straight-through step of gradient rules,
the usual memory and channel-permutation facets."""

from __future__ import annotations

from typing import Any

import numpy as np

from ..ir import Graph, Node, QuantParams
from ..ir.facts import is_tflite, is_tflite_micro
from ..ir.registry import Shape
from ..reference import fixedpoint as fp
from ..reference import semantics as sem

# -- shape rules ---------------------------------------------------------------------------------------


def pool_out(size: int, kernel: int, stride: int, pad_begin: int, pad_end: int) -> int:
    """Output length of a window op (floor mode)."""
    return (size + pad_begin + pad_end - kernel) // stride + 1


def window_shape(x: Shape, kernel: tuple[int, int], strides, pads, channels: int) -> Shape:
    n, _, h, w = x
    if len(strides) != 2 or min(strides) < 1 or len(pads) != 4 or min(pads) < 0:
        raise ValueError(f"strides {tuple(strides)} / pads {tuple(pads)} are not valid for a 2-d window")
    out = (n, channels, pool_out(h, kernel[0], strides[0], pads[0], pads[2]),
           pool_out(w, kernel[1], strides[1], pads[1], pads[3]))
    if min(out[2:]) < 1:
        raise ValueError(f"a {kernel[0]}x{kernel[1]} window does not fit the padded {h}x{w} input "
                         f"(output {out[2]}x{out[3]})")
    return out


def same_as_inputs(g: Graph, n: Node) -> Shape:
    shapes = {g[i].shape for i in n.inputs}
    if len(shapes) != 1:
        raise ValueError(f"{n.op} operands differ in shape: {sorted(shapes)}")
    return shapes.pop()


def same_pair(g: Graph, n: Node) -> Shape:
    a, b = g[n.inputs[0]].shape, g[n.inputs[1]].shape
    if a != b:
        raise ValueError(f"{n.op} operands differ in shape: {a} and {b}")
    return a


def first_operand(g: Graph, n: Node) -> Shape:
    return g[n.inputs[0]].shape


def attr_shape(name: str):
    """A shape rule that reads the shape from attribute ``name``."""
    def rule(g: Graph, n: Node) -> Shape:
        return tuple(n.attrs[name])
    return rule


def mask_output(g: Graph, n: Node) -> list[tuple[str, Shape]]:
    """Requantizing forward ops in a training graph may also write their saturation mask."""
    return [("bool", g[n.outputs[0]].shape)] if n.attrs.get("save_mask") else []


# -- reference kernels ---------------------------------------------------------------------------------


def finish(node: Node, v: np.ndarray, zero_point: int):
    """Round and clamp the float32 pre-rounding value ``v``; with ``save_mask`` also return the mask."""
    lo, hi = node.attrs["qmin"], node.attrs["qmax"]
    if node.attrs.get("save_mask"):
        return sem.round_clamp_mask(v, zero_point, lo, hi)
    return sem.round_clamp(v, zero_point, lo, hi)


def with_mask(node: Node, y: np.ndarray, mask: np.ndarray):
    """The result of a requantizing op whose kernel computed its saturation mask anyway (a table or a
    helper did): ``(y, mask)`` when the node writes its mask (``save_mask``), else ``y``."""
    return (y, mask) if node.attrs.get("save_mask") else y


def tflite(g: Graph) -> bool:
    """Whether ``g`` uses one of TFLite's integer arithmetics, ``"tflite"`` or ``"tflite-micro"``
    (tte.reference.fixedpoint), rather than onnxruntime's."""
    return is_tflite(g)


def tflite_micro(g: Graph) -> bool:
    """Whether ``g`` uses TFLite Micro's arithmetic (``"tflite-micro"``), where FULLY_CONNECTED and LOGISTIC
    differ from TFLite's reference kernels."""
    return is_tflite_micro(g)


def finish_int(node: Node, r: np.ndarray):
    """Clamp the exact pre-clamp integers ``r`` (TFLite arithmetic, output zero point included) to [qmin, qmax];
    with ``save_mask`` also return the mask (True where r lay inside)."""
    y, mask = fp.clamp_mask(r, node.attrs["qmin"], node.attrs["qmax"])
    return with_mask(node, y, mask)


def requantize_multiplier(g: Graph, x: str, y: str) -> tuple[int, int]:
    """TFLite's (Q31 multiplier, exponent) re-expressing value ``x`` in ``y``'s parameters (``s_x / s_y``)."""
    m, n = fp.requantize_multiplier(g[x].quant.scale, g[y].quant.scale)
    return int(m), int(n)


def tflite_rescale(g: Graph, x: str, y: str, q: np.ndarray) -> np.ndarray:
    """int8 ``q`` of value ``x`` re-expressed in ``y``'s parameters by TFLite's Requantize, before the clamp:
    ``MBQM(q - z_x) + z_y`` (the identity when the parameters are equal)."""
    return fp.mbqm(q.astype(np.int64) - int(g[x].quant.zero_point), *requantize_multiplier(g, x, y)) + \
        int(g[y].quant.zero_point)


def rescale_preround(x: np.ndarray, qx: QuantParams, qy: QuantParams) -> np.ndarray:
    """int8 ``x`` re-expressed in ``qy``, before rounding: float32(x - z_x) * (s_x / s_y).

    When the parameters are equal the multiplier is exactly 1 and rounding gives back ``x``."""
    return sem.preround(x.astype(np.int64) - int(qx.zero_point), sem.multiplier(qx.scale, qy.scale))


# -- gradient rules ------------------------------------------------------------------------------------


def masked(b: Any, node: Node, gy: str) -> str:
    """The straight-through estimator of a requantizing op: ``gy`` where round(v) + z landed inside
    [qmin, qmax], zero elsewhere."""
    return b.emit("ste", [gy, b.mask_of(node)], f"{node.output}.grad_pre")


# -- memory facets -------------------------------------------------------------------------------------


def no_scratch(g: Graph, n: Node) -> int:
    return 0


def no_flash(g: Graph, n: Node) -> tuple[list[np.ndarray], int]:
    """No quantization data beyond the graph's constants."""
    return [], 0


def one_literal(g: Graph, n: Node) -> tuple[list[np.ndarray], int]:
    """One scalar float literal in the code (a multiplier, a learning rate)."""
    return [], 1


def literal_per_operand(g: Graph, n: Node) -> tuple[list[np.ndarray], int]:
    """One rescaling multiplier literal per operand (TFLite arithmetic: a multiplier and an exponent each)."""
    return [], len(n.inputs) * (2 if tflite(g) else 1)


def one_rescale(g: Graph, n: Node) -> tuple[list[np.ndarray], int]:
    """One multiplier literal (TFLite arithmetic: a multiplier and its exponent)."""
    return [], 2 if tflite(g) else 1


def weight_zero_points(g: Graph, w: str) -> list[np.ndarray]:
    """A weight's per-channel zero points as the C holds them: an int32 array, none when all are zero."""
    zp = g[w].quant.zero_point
    return [np.broadcast_to(np.int32(zp), (g[w].shape[0],))] if np.any(zp) else []


def weight_scales(g: Graph, w: str) -> list[np.ndarray]:
    """The per-output-channel scales (and zero points) of a weight an input gradient reads in real units."""
    v = g[w]
    return [np.broadcast_to(np.float32(v.quant.scale), (v.shape[0],)), *weight_zero_points(g, w)]


def never(g: Graph, n: Node) -> bool:
    return False


def always(g: Graph, n: Node) -> bool:
    return True


# -- channel permutation facets (tte.autodiff.channels: union-find over tensors' channel orders) -------


def channels_follow(g: Graph, n: Node, c: Any) -> None:
    """Output channel k is computed from channel k of every non-constant operand: one channel order."""
    for v in n.inputs:
        if not g[v].is_const:
            c.union(v, n.outputs[0])


def channels_pinned(g: Graph, n: Node, c: Any) -> None:
    """The op mixes or lays out channels in a fixed way: its int8 tensors keep the stored order."""
    for v in n.inputs + n.outputs:
        if g[v].dtype == "int8":
            c.freeze(v)


def channels_independent(g: Graph, n: Node, c: Any) -> None:
    """A layer whose weights map any input channel order to any output order (the weights permute)."""
    c.find(n.inputs[0])
    c.find(n.outputs[0])


def channels_training_only(g: Graph, n: Node, c: Any) -> None:
    """Ops of training graphs: channel selection runs on forward graphs, before autodiff."""
    raise AssertionError(f"channel selection runs on forward graphs; '{n.op}' is a training op")
