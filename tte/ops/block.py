"""The block family: ``block_backward``, the backward of a trained inverted-residual block (1x1 expansion ``pw1``
-> depthwise ``dw`` -> 1x1 projection ``pw2``) from the gradient at the projection's output (after its mask) to
the block input's gradient, with every update of the block's layers in it (:mod:`tte.passes.block_backward`
makes it).

Unfused, that backward writes the float gradient of the expanded tensor twice (at the depthwise conv's output
and at its input), the largest buffers of the step.  The C kernel goes one expanded channel c (or a small group of
them) at a time: the plane of the depthwise output's gradient (the sum over pw2's output channels), its mask, pw2's
weight-column update of c, the depthwise bias and weight updates of c, the plane of the expansion output's gradient
(the depthwise transpose), its mask, pw1's bias update of c, c's terms of the block input's gradient and pw1's
weight-row update of c.  Each float is computed with the operations and in the order of the unfused kernels, so the
numbers are the same: the reference below runs the unfused chain's own reference kernels.

A node names its operands and results by role (attributes ``roles`` and ``results``):

========================= =========================================================================================
role                      what
========================= =========================================================================================
``gy``                    the gradient at pw2's output, masked (float32 [N, O, H2, W2])
``w2``, ``w_dw``, ``w1``  the weights (``w1``: only with a pw1 stage)
``dw_mask``, ``pw1_mask`` the saturation masks of the depthwise and pw1 outputs (``pw1_mask``: a pw1 stage, when
                          a gradient reaches pw1's output: pw1 trains or an earlier layer does)
``x2``, ``x_dw``, ``x1``  the saved inputs of pw2, dw, pw1 (each only when that weight trains)
``b_dw``, ``b1``          the biases that train
``U.factor``, ``U.aux``   update U's step factor and its step counter or residual (U in :data:`UPDATES`)
``dx`` (result)           the block input's gradient (float32), when an earlier layer needs it
``U.next``, ``U.residual`` (results)  update U's new parameter, and with ``accumulate`` rounding its residual
========================= =========================================================================================

Operand 0 is what the first result is like: ``gy`` when the node produces ``dx``, else the parameter of its first
update.  ``updates`` lists the updates (their stream, trained axis and channels, range), ``lr``, ``rounding`` and
``seed`` are shared by all of them.  The C goes ``group`` channels at a time (1 to :data:`MAX_GROUP`): their planes
in scratch.
"""

from __future__ import annotations

import numpy as np

from ..ir import Graph, Node
from ..ir.registry import NOT_DIFFERENTIATED, Shape, register
from . import cgen as cg
from .common import channels_training_only, never, weight_scales
from .conv import conv_grad_input, conv_weight_update
from .elementwise import ste
from .update import bias_update

# update -> the role of its parameter
UPDATES = {"pw2_weight": "w2", "dw_weight": "w_dw", "dw_bias": "b_dw", "pw1_weight": "w1", "pw1_bias": "b1"}
MAX_OPERANDS = 11 + 2 * len(UPDATES)  # gy, 3 weights, 2 masks, 3 saved inputs, 2 biases; a factor and aux per update
MAX_GROUP = 8  # the runtime's TTE_BLOCK_MAX_GROUP
MAX_TAPS = 7  # the largest depthwise kernel, 7x7 (TTE_BLOCK_MAX_TAPS)
POINTWISE = dict(strides=(1, 1), pads=(0, 0, 0, 0), groups=1)


def _roles(node: Node) -> dict[str, str]:
    return dict(zip(node.attrs["roles"], node.inputs))


def _update_attrs(node: Node, u: dict) -> dict:
    """The attributes of update ``u`` as its own node had them."""
    a = node.attrs
    return dict(lr=a["lr"], rounding=a["rounding"], seed=a["seed"], stream=u["stream"], axis=u["axis"],
                channels=u["channels"], qmin=u["qmin"], qmax=u["qmax"])


# -- shape rule ---------------------------------------------------------------------------------------------------


def block_shape(g: Graph, n: Node) -> Shape:
    a = n.attrs
    roles = a["roles"]
    if len(roles) != len(n.inputs) or len(set(roles)) != len(roles):
        raise ValueError(f"block_backward: {len(n.inputs)} operands but roles {roles}")
    r = _roles(n)
    for need in ("gy", "w2", "dw_mask", "w_dw"):
        if need not in r:
            raise ValueError(f"block_backward: no '{need}' operand")
    gy, w2, wdw = (g[r[k]].shape for k in ("gy", "w2", "w_dw"))
    c = w2[1]
    if w2[0] != gy[1] or w2[2:] != (1, 1) or wdw[:2] != (c, 1) or g[r["dw_mask"]].shape != gy[:1] + (c,) + gy[2:]:
        raise ValueError(f"block_backward: pw2 {w2}, dw {wdw} and gradient {gy} are not one block")
    if "pw1_mask" in r and ("w1" not in r or g[r["pw1_mask"]].shape != tuple(a["mid_shape"])):
        raise ValueError(f"block_backward: a pw1 stage needs w1 and a mask of the expanded shape {a['mid_shape']}")
    for u in a["updates"]:
        if u["param"] not in UPDATES or UPDATES[u["param"]] not in r or f"{u['param']}.factor" not in r:
            raise ValueError(f"block_backward: update {u['param']} has no parameter or factor operand")
    if not 1 <= a["group"] <= MAX_GROUP:
        raise ValueError(f"block_backward: group {a['group']} is not in 1..{MAX_GROUP}")
    if max(wdw[2:]) > MAX_TAPS:
        raise ValueError(f"block_backward: a depthwise kernel {wdw[2]}x{wdw[3]} larger than {MAX_TAPS}x{MAX_TAPS}")
    if "dx" in a["results"]:
        if r["gy"] != n.inputs[0] or "w1" not in r or "pw1_mask" not in r:
            raise ValueError("block_backward: the block input's gradient needs gy first, w1 and the pw1 mask")
        return tuple(a["in_shape"])
    first = UPDATES[a["updates"][0]["param"]]
    if r[first] != n.inputs[0]:
        raise ValueError("block_backward: operand 0 must be the first update's parameter")
    return g[r[first]].shape


def block_extra(g: Graph, n: Node) -> list[tuple[str, Shape]]:
    """Every result after the first: the updated parameters (and residuals), as the results name them."""
    r = _roles(n)
    out = []
    for role in n.attrs["results"][1:]:
        update, _, what = role.partition(".")
        if what == "next":
            v = g[r[UPDATES[update]]]
            out.append((v.dtype, v.shape))
        elif what == "residual":
            out.append(("float32", g[r[f"{update}.aux"]].shape))
        else:
            raise ValueError(f"block_backward: unknown result '{role}'")
    return out


# -- reference kernel: the unfused chain's own kernels, in its order ----------------------------------------------


def _sub(op: str, inputs: list[str], **attrs) -> Node:
    return Node(op, f"block.{op}", inputs, [], attrs)


def block_backward(g: Graph, node: Node, *args):
    a = node.attrs
    r = _roles(node)
    v = dict(zip(a["roles"], args))
    updates = {u["param"]: u for u in a["updates"]}
    c = g[r["w2"]].shape[1]
    gy_shape = g[r["gy"]].shape
    out: dict[str, np.ndarray] = {}

    def update(name: str, run, op: str, inputs: list[str], values: list, **geometry) -> None:
        u = updates[name]
        aux = [v[f"{name}.aux"]] if f"{name}.aux" in v else []
        sub = _sub(op, inputs, **geometry, **_update_attrs(node, u))
        result = run(g, sub, *values, v[UPDATES[name]], v[f"{name}.factor"], *aux)
        out[f"{name}.next"], residual = result if isinstance(result, tuple) else (result, None)
        if residual is not None:
            out[f"{name}.residual"] = residual

    pointwise_update = dict(POINTWISE, kernel=(1, 1), depthwise=False)
    dw_geometry = dict(strides=a["strides"], pads=a["pads"], groups=c)
    d2 = conv_grad_input(g, _sub("conv_grad_input", ["gy", r["w2"]], **POINTWISE,
                                 in_shape=(gy_shape[0], c, *gy_shape[2:])), v["gy"], v["w2"])
    e2 = ste(g, None, d2, v["dw_mask"])
    if "pw2_weight" in updates:
        update("pw2_weight", conv_weight_update, "conv_weight_update", ["gy", r["x2"]], [v["gy"], v["x2"]],
               **pointwise_update)
    if "dw_bias" in updates:
        update("dw_bias", bias_update, "bias_update", ["e2"], [e2])
    if "pw1_mask" in v:
        d1 = conv_grad_input(g, _sub("conv_grad_input", ["e2", r["w_dw"]], **dw_geometry, in_shape=a["mid_shape"]),
                             e2, v["w_dw"])
        e1 = ste(g, None, d1, v["pw1_mask"])
    if "dw_weight" in updates:
        update("dw_weight", conv_weight_update, "conv_weight_update", ["e2", r["x_dw"]], [e2, v["x_dw"]],
               **dw_geometry, kernel=g[r["w_dw"]].shape[2:], depthwise=True)
    if "pw1_bias" in updates:
        update("pw1_bias", bias_update, "bias_update", ["e1"], [e1])
    if "dx" in a["results"]:
        out["dx"] = conv_grad_input(g, _sub("conv_grad_input", ["e1", r["w1"]], **POINTWISE, in_shape=a["in_shape"]),
                                    e1, v["w1"])
    if "pw1_weight" in updates:
        update("pw1_weight", conv_weight_update, "conv_weight_update", ["e1", r["x1"]], [e1, v["x1"]],
               **pointwise_update)
    results = [out[k] for k in a["results"]]
    return results[0] if len(results) == 1 else tuple(results)


# -- C emitter ----------------------------------------------------------------------------------------------------


def _layer(e: cg.Emitter, node: Node, r: dict[str, str], weight: str, mask: str | None, saved: str,
           weight_update: str, bias_update: str | None, depthwise: bool) -> str:
    """A tte_block_conv literal: one conv of the block, what it reads and what of it trains."""
    updates = {u["param"]: u for u in node.attrs["updates"]}

    def step(name: str) -> list[str]:  # the factors and the tte_sgd_params of update `name`
        sub = Node("sgd", node.name, [], [], _update_attrs(node, updates[name]))
        return [e.value_const(r[f"{name}.factor"]), cg.sgd_params(e, sub, r.get(f"{name}.aux"))]

    w = r[weight]
    fields = [e.dims(w), cg.weights(e, w, depthwise), e.ptr(r[mask]) if mask else "NULL"]
    if weight_update in updates:
        fields += [cg.saved(e, r[saved]), e.ptr(w), str(updates[weight_update]["channels"]), *step(weight_update)]
    else:
        fields += ["NULL", "NULL", "0", "NULL", "NULL"]
    if bias_update in updates:
        fields += [e.ptr(r[UPDATES[bias_update]]), *step(bias_update)]
    else:
        fields += ["NULL", "NULL", "NULL"]
    return "&(const tte_block_conv){" + ", ".join(fields) + "}"


def emit_block_backward(e: cg.Emitter, node: Node) -> None:
    a = node.attrs
    r = _roles(node)
    pw2 = _layer(e, node, r, "w2", None, "x2", "pw2_weight", None, False)
    dw = _layer(e, node, r, "w_dw", "dw_mask", "x_dw", "dw_weight", "dw_bias", True)
    pw1 = _layer(e, node, r, "w1", "pw1_mask", "x1", "pw1_weight", "pw1_bias", False) if "pw1_mask" in r else "NULL"
    geo = cg.conv_geo(dict(a, groups=e.g[r["w_dw"]].shape[0]))
    mid = "&(const tte_dims){%d, %d, %d, %d}" % tuple(a["mid_shape"])
    dx = node.outputs[0] if "dx" in a["results"] else None
    dx_dims = "&(const tte_dims){%d, %d, %d, %d}" % tuple(a["in_shape"]) if dx else "NULL"
    e.call(node, f"tte_block_backward_f32({e.dims(r['gy'])}, {e.ptr(r['gy'])}, {pw2}, {geo}, {dw}, {mid}, {pw1}, "
                 f"{dx_dims}, {e.ptr(dx) if dx else 'NULL'}, {a['group']}, tte_fscratch)")


# -- memory and flash ---------------------------------------------------------------------------------------------


def channel_scratch(g: Graph, n: Node) -> int:
    """Scratch per channel of a group: a float plane of the depthwise output's gradient and, with a pw1 stage, one
    of its input's, per sample."""
    gy = g[_roles(n)["gy"]].shape
    mid = n.attrs["mid_shape"]
    return 4 * gy[0] * (gy[2] * gy[3] + (mid[2] * mid[3] if "pw1_mask" in n.attrs["roles"] else 0))


def block_scratch(g: Graph, n: Node) -> int:
    """The planes of a group of channels (``group``)."""
    return n.attrs["group"] * channel_scratch(g, n)


def block_flash(g: Graph, n: Node) -> tuple[list[np.ndarray], int]:
    """The weights' per-channel scales (and non-zero zero points) read in real units; one learning-rate literal per
    update."""
    r = _roles(n)
    return [a for w in ("w2", "w_dw", "w1") if w in r for a in weight_scales(g, r[w])], len(n.attrs["updates"])


def update_nodes(n: Node) -> dict[str, Node]:
    """The updates a block_backward node makes, each as the update node it replaced (its op, parameter operand and
    attributes; no other operands): parameter -> node.  What the memory report reads of updates."""
    r = _roles(n)
    out = {}
    for u in n.attrs["updates"]:
        param = r[UPDATES[u["param"]]]
        bias = u["param"].endswith("_bias")
        out[param] = Node("bias_update" if bias else "conv_weight_update", f"{n.name}.{u['param']}",
                          ["", param] if bias else ["", "", param], [], _update_attrs(n, u))
    return out


register(name="block_backward", operands=("*",) * MAX_OPERANDS, out_dtype="same:0", shape=block_shape,
         attrs=("roles", "results", "strides", "pads", "mid_shape", "in_shape", "group", "updates", "lr", "rounding",
                "seed"),
         requantizes=False, extra=block_extra, optional=MAX_OPERANDS - 4, kernel=block_backward,
         grad=NOT_DIFFERENTIATED, emit=emit_block_backward, runtime=("tte_block_backward_f32.c",),
         scratch=block_scratch, in_place=never, alias=False, flash=block_flash, code_bytes=2600,
         channels=channels_training_only, layer=False, onnx=())
