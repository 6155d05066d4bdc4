"""An independent PyTorch reference for whole-model straight-through gradients.

Tests use it to check tte's compile-time autodiff, so it deliberately shares nothing with
``tte.autodiff``, ``tte.program`` or ``tte.reference.grad*``: it only reads the IR and runs the int8
forward reference (``graph.run``).

The construction, in float64 torch:

* The forward values are **tte's own int8 activations**, dequantized: every node output is the real
  tensor ``s_y * (q_y - z_y)`` taken from ``g.run(..., keep=True)``.  The logits are therefore exactly
  tte's logits, and the gradients are those of the int8 model at its actual operating point.
* Each node also computes, from the torch tensors of its inputs, its float **pre-activation** ``pre``
  (the real value before the final rounding).  A straight-through op returns the int8 forward value
  and passes ``grad * mask`` back into ``pre``, where ``mask`` says whether the requantization
  ``round_half_even(pre / s_y) + z_y`` landed inside ``[qmin, qmax]`` (float64).
* Trained weights and biases are leaves in real units (``s_w[c] * (w - z_w[c])``, ``b * s_b[c]``), so
  the returned gradients are in real units too.  Loss: ``F.cross_entropy(logits, label)``.

Only nodes downstream of a trained parameter build a pre-activation; the others are constants.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from tte.ir import Graph, Node, Value

DT = torch.float64


# -- helpers -------------------------------------------------------------------------------------
def real(v: Value, q: np.ndarray) -> torch.Tensor:
    """Dequantize integer array ``q`` of value ``v`` to float64: scale * (q - zero_point), per channel."""
    qp = v.quant
    scale, zp = qp.scale.astype(np.float64), qp.zero_point.astype(np.float64)
    if qp.axis is not None:  # per-channel along `axis`
        bshape = [1] * q.ndim
        bshape[qp.axis] = -1
        scale, zp = scale.reshape(bshape), zp.reshape(bshape)
    return torch.from_numpy(scale * (q.astype(np.float64) - zp))


def pad4(x: torch.Tensor, pads, value: float = 0.0) -> torch.Tensor:
    """Pad NCHW by IR pads (top, left, bottom, right)."""
    top, left, bottom, right = pads
    if not any(pads):
        return x
    return F.pad(x, (left, right, top, bottom), value=value)


class StraightThrough(torch.autograd.Function):
    """Forward: ``fwd`` (tte's dequantized int8 output), exactly.  Backward: ``grad * mask`` into ``pre``."""

    @staticmethod
    def forward(ctx, pre, fwd, mask):
        ctx.save_for_backward(mask)
        return fwd.clone()

    @staticmethod
    def backward(ctx, grad):
        (mask,) = ctx.saved_tensors
        return grad * mask, None, None


def saturation_mask(pre: torch.Tensor, out: Value, node: Node) -> torch.Tensor:
    """1.0 where round_half_even(pre / s_y) + z_y lies in [qmin, qmax] (inclusive), else 0.0."""
    q = torch.round(pre.detach() / float(out.quant.scale)) + int(out.quant.zero_point)
    return ((q >= node.attrs["qmin"]) & (q <= node.attrs["qmax"])).to(DT)


# -- pre-activations, one per op: (graph, node, input tensors in real units) -> real pre-activation --
def conv_pre(g, n, x, w, b=None):
    sh, sw = n.attrs["strides"]
    return F.conv2d(pad4(x, n.attrs["pads"]), w, b, stride=(sh, sw), groups=n.attrs["groups"])


def gemm_pre(g, n, x, w, b=None):
    return F.linear(x, w, b)  # x @ w.T + b


def add_pre(g, n, a, b):
    return a + b  # b may be a constant broadcasting to a's shape


def requantize_pre(g, n, x):
    return x


def avgpool_pre(g, n, x):
    kernel, strides, pads = n.attrs["kernel"], n.attrs["strides"], n.attrs["pads"]
    sums = F.avg_pool2d(pad4(x, pads), kernel, strides, divisor_override=1)  # exact window sums
    if n.attrs["count_include_pad"]:
        count = float(kernel[0] * kernel[1])
    else:  # the number of non-padding elements of each window
        ones = pad4(torch.ones((1, 1) + tuple(x.shape[2:]), dtype=DT), pads)
        count = F.avg_pool2d(ones, kernel, strides, divisor_override=1)
    return sums / count


def global_avgpool_pre(g, n, x):
    return x.mean(dim=(2, 3), keepdim=True)


def maxpool_pre(g, n, x):
    # Padding never wins.  Ties: torch routes the gradient to the first maximum in row-major window order.
    return F.max_pool2d(pad4(x, n.attrs["pads"], value=float("-inf")), n.attrs["kernel"], n.attrs["strides"])


def concat_pre(g, n, *xs):
    return torch.cat(xs, dim=n.attrs["axis"])


PRE = {
    "conv": conv_pre,
    "gemm": gemm_pre,
    "add": add_pre,
    "requantize": requantize_pre,
    "avgpool": avgpool_pre,
    "global_avgpool": global_avgpool_pre,
    "maxpool": maxpool_pre,
    "concat": concat_pre,
}


# -- the graph -----------------------------------------------------------------------------------
def build(g: Graph, x: np.ndarray, leaves: dict[str, torch.Tensor], all_pre: bool = False):
    """Run the straight-through float graph; return (logits, env of torch tensors, pre-activations).

    ``leaves``: constant value name -> leaf tensor (real units) replacing that constant.  With
    ``all_pre`` every requantizing node computes its pre-activation (for self-checks), not only those
    downstream of a leaf.
    """
    acts = g.run({g.inputs[0]: np.asarray(x, dtype=np.float32)}, keep=True)
    env: dict[str, torch.Tensor] = {}
    pres: dict[str, torch.Tensor] = {}

    def tensor(name: str) -> torch.Tensor:
        if name not in env:  # not produced by a node: a leaf, another constant, or a graph input
            v = g[name]
            if name in leaves:
                env[name] = leaves[name]
            elif v.is_const:
                env[name] = real(v, v.data)
            else:
                env[name] = torch.from_numpy(acts[name].astype(np.float64))
        return env[name]

    for n in g.nodes:
        out = g[n.output]
        ins = [tensor(i) for i in n.inputs]
        if n.op == "reshape":  # moves no data, keeps the parameters
            env[n.output] = ins[0].reshape(n.attrs["shape"])
        elif n.op == "dequantize":  # the float logits: the int8 input's real value
            env[n.output] = ins[0]
        elif n.op == "quantize":  # graph input boundary: no gradient
            env[n.output] = real(out, acts[n.output])
        else:
            fwd = real(out, acts[n.output])
            if all_pre or any(t.requires_grad for t in ins):
                pre = PRE[n.op](g, n, *ins)
                pres[n.output] = pre
                env[n.output] = StraightThrough.apply(pre, fwd, saturation_mask(pre, out, n))
            else:
                env[n.output] = fwd
    return env[g.outputs[0]], env, pres


def _weight_slice_axis(g: Graph, node: Node) -> int:
    """Axis that ``trained[weight]`` slices: 0 (channels) for depthwise convs (one input and one output
    channel per group), else 1 (input channels)."""
    if node.op == "conv":
        cin, groups = g[node.inputs[0]].shape[1], node.attrs["groups"]
        cout = g[node.inputs[1]].shape[0]
        if groups > 1 and groups == cin == cout:
            return 0
    return 1


def reference_grads(g: Graph, x: np.ndarray, label, trained: dict) -> tuple[float, dict[str, np.ndarray]]:
    """Cross-entropy loss and its straight-through gradients w.r.t. the ``trained`` constants (real units).

    ``trained``: value name -> slice or None.  A conv/gemm weight's slice applies to axis 1 (a leading
    slice of input channels), a depthwise weight's to axis 0 (channels); biases are returned whole.
    """
    leaves = {}
    for name in trained:
        v = g[name]
        if not v.is_const:
            raise ValueError(f"'{name}' is not a constant")
        leaves[name] = real(v, v.data).requires_grad_(True)
    logits, _, _ = build(g, x, leaves)
    target = torch.as_tensor(np.atleast_1d(label), dtype=torch.long)
    loss = F.cross_entropy(logits, target)
    loss.backward()

    weight_of = {n.inputs[1]: n for n in g.nodes if n.op in ("conv", "gemm")}
    grads = {}
    for name, sl in trained.items():
        grad = leaves[name].grad
        grad = torch.zeros_like(leaves[name]) if grad is None else grad  # not upstream of the loss
        if sl is not None and name in weight_of:
            index = [slice(None)] * grad.ndim
            index[_weight_slice_axis(g, weight_of[name])] = sl
            grad = grad[tuple(index)]
        grads[name] = grad.numpy().copy()
    return float(loss.detach()), grads


def reference_forward_logits(g: Graph, x: np.ndarray) -> torch.Tensor:
    """torch's float64 logits from the same construction; as float32 they equal tte's logits exactly."""
    logits, _, _ = build(g, x, {}, all_pre=True)
    return logits.detach()


def preactivation_agreement(g: Graph, x: np.ndarray) -> dict[str, tuple[int, int]]:
    """Self-check of the per-op pre-activations against the int8 executor.

    For every requantizing node: (elements where clamp(round(pre / s_y) + z_y, qmin, qmax) differs from
    tte's int8 output, max |difference| in LSB).  Expect (almost) all zeros: tte rounds with float32
    multipliers, this with float64, so only exact-tie neighbourhoods may differ, by 1.
    """
    acts = g.run({g.inputs[0]: np.asarray(x, dtype=np.float32)}, keep=True)
    _, _, pres = build(g, x, {}, all_pre=True)
    result = {}
    for n in g.nodes:
        if n.output in pres:
            q = g[n.output].quant
            mine = torch.round(pres[n.output] / float(q.scale)) + int(q.zero_point)
            mine = mine.clamp(n.attrs["qmin"], n.attrs["qmax"]).numpy()
            diff = np.abs(mine - acts[n.output].astype(np.float64))
            result[n.output] = (int((diff > 0).sum()), int(diff.max()))
    return result
