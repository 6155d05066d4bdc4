"""An independent PyTorch reference: tte's int8 forward and its whole-model straight-through gradients.

Tests use it to check tte's reference executor (the forward) and its compile-time autodiff (the
gradients).  It shares no code with tte's executors: it never calls ``Graph.run`` / ``infer``,
``tte.reference`` (kernels or semantics helpers), ``tte.autodiff`` or ``tte.program``.

**What it reads.**  The IR forward graph it is given, normally ``program.forward``: the node list
(ops, attributes, qmin/qmax), the values' shapes and quantization parameters, and the constants'
integers.  It does *not* read the ONNX file.  That was a deliberate choice: ``program.forward`` already
holds what the gradients must be checked against -- the new classifier head of ``classes=N`` and the
offline channel permutation of partially trained layers -- and turning QDQ / QOperator ONNX into
integer ops again (Relu/Clip folding, int8 add-biases, QLinear* ops) would mean writing a second
frontend.  So a frontend bug (a wrong scale, pad or folded clamp in the IR) is invisible here; it is
the job of ``test_onnxruntime_agreement.py``, which checks the IR executed by tte against onnxruntime
layer by layer.  What *is* checked here, independently, is everything downstream of the IR: every
kernel's arithmetic, and the autodiff.  Taken together the two give torch forward == tte forward ==
onnxruntime (up to rounding ties).

**The forward** (:func:`forward`), in torch, node by node, from torchref's own values only, following
the integer semantics written up in ``tte/reference/semantics.py`` (re-implemented here, not imported):

* conv / gemm: ``acc = sum((q_x - z_x) * (q_w - z_w)) + bias``, summed in float64 torch (exact: the
  partial sums are integers far below 2**53), saturated to int32;  pools: ``acc = sum(q_x - z_x)``;
* multipliers ``M`` computed in float64 from the float32 scales, then rounded to float32: conv/gemm
  ``s_x * s_w[c] / s_y``, average pools ``s_x / (s_y * count)`` (count without the padding unless
  ``count_include_pad``), add / concat / maxpool / requantize ``s_i / s_y`` per operand;
* ``v = float32(acc) * M`` in float32 (add: ``float32(q1 - z1) * M1 + float32(q2 - z2) * M2``);
  ``q_y = clamp(round_half_even(v) + z_y, qmin, qmax)``;
* maxpool: the integer maximum of the window (padding never wins), then rescaled as ``acc = q - z_x``;
* hardswish / sigmoid: ``v = f(float32(q_x - z_x) * float32(s_x)) / float32(s_y)`` in float32, f being
  torch's own float32 ``F.hardswish``, or the float64 ``torch.sigmoid`` rounded to float32 (tte builds
  256-entry tables with its own expf; the two may differ by an ulp, i.e. only on exact rounding ties);
* lut_global_avgpool (the float mean of an activation, QOperator's ``HardSwish -> GlobalAveragePool``): the
  same f, summed over H x W in float64 and rounded once to float32 (tte: a left-to-right float32 sum),
  times ``M = float32(1 / (s_y * H * W))``;
* mul: ``acc = (q_a - z_a) * (q_b - z_b)`` exact (the per-channel gate broadcast), ``M = s_a * s_b / s_y``;
  reshape moves nothing; quantize ``clamp(round_half_even(float32(x) / s) + z)`` with a float32
  division; dequantize ``float32(q - z) * s``.

Each requantizing node also keeps its **straight-through mask**, decided on integers from its own
pre-rounding value: ``round_half_even(v) + z_y`` within ``[qmin, qmax]``.  :func:`agreement` compares
the forward with activations the caller got from tte (``graph.run(..., keep=True)``).

**The gradients** (:func:`reference_grads`), in float64 torch autograd:

* Trained weights and biases are leaves in real units (``s_w[c] * (w - z_w[c])``, ``b * s_b[c]``), so
  the returned gradients are in real units too.  Loss: ``F.cross_entropy(logits, label)`` on the real
  logits ``s * (q - z)`` of torchref's own int8 forward.
* Every node downstream of a leaf computes its float **pre-activation** from its inputs' torch tensors
  (conv2d, linear, sum, pools, cat, hardswish, sigmoid, product) and returns torchref's int8 forward value
  dequantized, passing ``grad * mask`` back into the pre-activation (straight-through estimator); the
  others are constants.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F

from tte.ir import Graph, Node, Value

DT = torch.float64
F32 = torch.float32
INT32_MIN, INT32_MAX = -(2.0**31), 2.0**31 - 1


# -- helpers -------------------------------------------------------------------------------------
def _per_axis(v: Value, a: np.ndarray, ndim: int) -> torch.Tensor:
    """A per-tensor or per-channel parameter of ``v`` as a float64 tensor broadcasting against ``ndim``-d."""
    t = torch.from_numpy(np.asarray(a, dtype=np.float64).copy())
    if v.quant.axis is not None:
        shape = [1] * ndim
        shape[v.quant.axis] = -1
        t = t.reshape(shape)
    return t


def scale_of(v: Value, ndim: int) -> torch.Tensor:
    return _per_axis(v, v.quant.scale, ndim)


def zero_of(v: Value, ndim: int) -> torch.Tensor:
    return _per_axis(v, v.quant.zero_point, ndim)


def ints(a: np.ndarray) -> torch.Tensor:
    """An integer array as a float64 tensor (exact)."""
    return torch.from_numpy(np.asarray(a).astype(np.float64))


def real(v: Value, q: torch.Tensor) -> torch.Tensor:
    """Dequantize the integers ``q`` of value ``v`` to float64: scale * (q - zero_point), per channel."""
    return scale_of(v, q.ndim) * (q - zero_of(v, q.ndim))


def multiplier(num: torch.Tensor, den: torch.Tensor) -> torch.Tensor:
    """float32(num / den), the quotient computed in float64 (num, den: float64 products of float32 scales)."""
    return (num.to(DT) / den.to(DT)).to(F32)


def pad4(x: torch.Tensor, pads, value: float = 0.0) -> torch.Tensor:
    """Pad NCHW by IR pads (top, left, bottom, right)."""
    top, left, bottom, right = pads
    if not any(pads):
        return x
    return F.pad(x, (left, right, top, bottom), value=value)


def finish(node: Node, out: Value, v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(q_y, mask) from the float32 pre-rounding value ``v``: q_y = clamp(round_half_even(v) + z_y,
    qmin, qmax) as float64 integers; mask: where round(v) + z_y was inside [qmin, qmax]."""
    assert v.dtype == F32, v.dtype
    assert tuple(v.shape) == out.shape, (node.name, tuple(v.shape), out.shape)
    r = torch.round(v).to(DT) + float(out.quant.zero_point)  # torch.round: half to even
    lo, hi = node.attrs["qmin"], node.attrs["qmax"]
    return r.clamp(lo, hi), (r >= lo) & (r <= hi)


def rescale_acc(acc: torch.Tensor, m: torch.Tensor) -> torch.Tensor:
    """float32(saturate_int32(acc)) * M, in float32."""
    return acc.clamp(INT32_MIN, INT32_MAX).to(F32) * m


def centered(g: Graph, name: str, q: torch.Tensor) -> torch.Tensor:
    return q - zero_of(g[name], q.ndim)


# -- the int8 forward, one function per op: (graph, node, input tensors) -> (q_y, mask) --------------
def conv_int(g, n, x, w, b):
    xn, wn, _ = n.inputs
    acc = F.conv2d(pad4(centered(g, xn, x), n.attrs["pads"]), centered(g, wn, w), stride=tuple(n.attrs["strides"]),
                   groups=n.attrs["groups"])
    acc = acc + b.reshape(1, -1, 1, 1)
    out = g[n.output]
    m = multiplier(scale_of(g[xn], 1) * scale_of(g[wn], 1), scale_of(out, 1))
    m = m.expand(w.shape[0]).reshape(1, -1, 1, 1)
    return finish(n, out, rescale_acc(acc, m))


def gemm_int(g, n, x, w, b):
    xn, wn, _ = n.inputs
    acc = centered(g, xn, x) @ centered(g, wn, w).T + b.reshape(1, -1)
    out = g[n.output]
    m = multiplier(scale_of(g[xn], 1) * scale_of(g[wn], 1), scale_of(out, 1))
    return finish(n, out, rescale_acc(acc, m.expand(w.shape[0]).reshape(1, -1)))


def _rescaled(g: Graph, name: str, q: torch.Tensor, out: Value) -> torch.Tensor:
    """float32(q - z_x) * float32(s_x / s_y): an operand of add / concat / requantize / maxpool."""
    v = g[name]
    if v.quant.axis is not None and v.quant.scale.size > 1:
        raise NotImplementedError(f"per-channel operand '{name}' of a rescaling op")
    m = multiplier(scale_of(v, 0), scale_of(out, 0))
    return centered(g, name, q).to(F32) * m


def add_int(g, n, a, b):
    out = g[n.output]
    return finish(n, out, _rescaled(g, n.inputs[0], a, out) + _rescaled(g, n.inputs[1], b, out))


def requantize_int(g, n, x):
    out = g[n.output]
    return finish(n, out, _rescaled(g, n.inputs[0], x, out))


def concat_int(g, n, *xs):
    out = g[n.output]
    return finish(n, out, torch.cat([_rescaled(g, i, x, out) for i, x in zip(n.inputs, xs)], dim=n.attrs["axis"]))


def maxpool_int(g, n, x):
    pooled = F.max_pool2d(pad4(x, n.attrs["pads"], value=-1e9), tuple(n.attrs["kernel"]), tuple(n.attrs["strides"]))
    out = g[n.output]
    return finish(n, out, _rescaled(g, n.inputs[0], pooled, out))


def _window_sums(x: torch.Tensor, kernel, strides) -> torch.Tensor:
    return F.avg_pool2d(x, tuple(kernel), tuple(strides), divisor_override=1)  # exact integer sums


def avgpool_int(g, n, x):
    kernel, strides, pads = n.attrs["kernel"], n.attrs["strides"], n.attrs["pads"]
    acc = _window_sums(pad4(centered(g, n.inputs[0], x), pads), kernel, strides)
    if n.attrs["count_include_pad"]:
        count = torch.full(acc.shape[2:], float(kernel[0] * kernel[1]), dtype=DT)
    else:
        count = _window_sums(pad4(torch.ones((1, 1) + tuple(x.shape[2:]), dtype=DT), pads), kernel, strides)[0, 0]
    out = g[n.output]
    m = multiplier(scale_of(g[n.inputs[0]], 0), scale_of(out, 0) * count)
    return finish(n, out, rescale_acc(acc, m))


def global_avgpool_int(g, n, x):
    acc = centered(g, n.inputs[0], x).sum(dim=(2, 3), keepdim=True)
    out = g[n.output]
    m = multiplier(scale_of(g[n.inputs[0]], 0), scale_of(out, 0) * float(x.shape[2] * x.shape[3]))
    return finish(n, out, rescale_acc(acc, m))


def activation_f32(kind: str, r: torch.Tensor) -> torch.Tensor:
    """The float32 activation of float32 real values (see the module docstring)."""
    if kind == "hardswish":
        return F.hardswish(r)
    if kind == "sigmoid":
        return torch.sigmoid(r.to(DT)).to(F32)
    raise NotImplementedError(kind)


def _real_f32(g: Graph, name: str, q: torch.Tensor) -> torch.Tensor:
    """float32(q - z) * float32(s)."""
    return centered(g, name, q).to(F32) * scale_of(g[name], 0).to(F32)


def _unary_int(kind: str):
    def int_op(g, n, x):
        out = g[n.output]
        y = activation_f32(kind, _real_f32(g, n.inputs[0], x))
        return finish(n, out, y / torch.tensor(float(out.quant.scale), dtype=F32))
    return int_op


def lut_global_avgpool_int(g, n, x):
    out = g[n.output]
    y = activation_f32(n.attrs["kind"], _real_f32(g, n.inputs[0], x))
    total = y.to(DT).sum(dim=(2, 3), keepdim=True).to(F32)
    m = multiplier(torch.tensor(1.0, dtype=DT), scale_of(out, 0) * float(x.shape[2] * x.shape[3]))
    return finish(n, out, total * m)


def mul_int(g, n, a, b):
    out = g[n.output]
    acc = centered(g, n.inputs[0], a) * centered(g, n.inputs[1], b)  # exact: |acc| <= 255 * 255
    m = multiplier(scale_of(g[n.inputs[0]], 0) * scale_of(g[n.inputs[1]], 0), scale_of(out, 0))
    return finish(n, out, acc.to(F32) * m)


INT = {
    "conv": conv_int,
    "gemm": gemm_int,
    "add": add_int,
    "requantize": requantize_int,
    "avgpool": avgpool_int,
    "global_avgpool": global_avgpool_int,
    "maxpool": maxpool_int,
    "concat": concat_int,
    "hardswish": _unary_int("hardswish"),
    "sigmoid": _unary_int("sigmoid"),
    "lut_global_avgpool": lut_global_avgpool_int,
    "mul": mul_int,
}


@dataclass
class Forward:
    """torchref's forward on one input: every int8 value's integers (float64 tensors), the float outputs
    (float32 tensors), and each requantizing node's straight-through mask."""

    values: dict[str, torch.Tensor] = field(default_factory=dict)
    masks: dict[str, torch.Tensor] = field(default_factory=dict)


@torch.no_grad()
def forward(g: Graph, x: np.ndarray) -> Forward:
    """The int8 forward of ``g`` on float32 input ``x``, computed by torchref alone."""
    if len(g.inputs) != 1:
        raise ValueError(f"one graph input expected, got {g.inputs}")
    fwd = Forward()
    env = fwd.values
    env[g.inputs[0]] = torch.from_numpy(np.array(x, dtype=np.float32))
    consts = {v.name: ints(v.data) for v in g.constants()}

    for n in g.nodes:
        ins = [env[i] if i in env else consts[i] for i in n.inputs]
        out = g[n.output]
        if n.op == "reshape":
            env[n.output] = ins[0].reshape(n.attrs["shape"])
        elif n.op == "quantize":  # float32 division, round half to even, clamp to int8
            v = ins[0].to(F32) / torch.tensor(float(out.quant.scale), dtype=F32)
            env[n.output] = (torch.round(v).to(DT) + float(out.quant.zero_point)).clamp(-128, 127)
        elif n.op == "dequantize":
            src = g[n.inputs[0]]
            env[n.output] = centered(g, n.inputs[0], ins[0]).to(F32) * scale_of(src, ins[0].ndim).to(F32)
        elif n.op in INT:
            env[n.output], fwd.masks[n.output] = INT[n.op](g, n, *ins)
        else:
            raise NotImplementedError(f"torchref has no forward for op '{n.op}' (node '{n.name}')")
        if tuple(env[n.output].shape) != out.shape:
            raise AssertionError(f"{n.name}: torchref shape {tuple(env[n.output].shape)} != IR shape {out.shape}")
    return fwd


def agreement(g: Graph, fwd: Forward, acts: dict[str, np.ndarray]) -> dict[str, tuple[int, int, int]]:
    """torchref's forward against activations from tte (``graph.run(..., keep=True)``), per node output:
    (elements that differ, elements, max |difference|).  int8 values differ in integers; float outputs
    (dequantized logits) are measured in steps of their int8 input's scale."""
    result = {}
    for n in g.nodes:
        mine, theirs = fwd.values[n.output].numpy().astype(np.float64), acts[n.output].astype(np.float64)
        if mine.shape != theirs.shape:
            raise AssertionError(f"{n.output}: torchref shape {mine.shape} != tte shape {theirs.shape}")
        diff = np.abs(mine - theirs)
        if g[n.output].dtype != "int8":
            diff = diff / scale_of(g[n.inputs[0]], diff.ndim).numpy()
        result[n.output] = (int((diff > 0).sum()), diff.size, int(np.ceil(diff.max())) if diff.size else 0)
    return result


# -- straight-through gradients ------------------------------------------------------------------
class StraightThrough(torch.autograd.Function):
    """Forward: ``fwd`` (torchref's dequantized int8 output), exactly.  Backward: ``grad * mask`` into ``pre``."""

    @staticmethod
    def forward(ctx, pre, fwd, mask):
        ctx.save_for_backward(mask)
        return fwd.clone()

    @staticmethod
    def backward(ctx, grad):
        (mask,) = ctx.saved_tensors
        return grad * mask, None, None


# pre-activations, one per op: (graph, node, input tensors in real units) -> real pre-activation
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
    sums = _window_sums(pad4(x, pads), kernel, strides)
    if n.attrs["count_include_pad"]:
        count = float(kernel[0] * kernel[1])
    else:  # the number of non-padding elements of each window
        count = _window_sums(pad4(torch.ones((1, 1) + tuple(x.shape[2:]), dtype=DT), pads), kernel, strides)
    return sums / count


def global_avgpool_pre(g, n, x):
    return x.mean(dim=(2, 3), keepdim=True)


def maxpool_pre(g, n, x):
    # Padding never wins.  Ties: torch routes the gradient to the first maximum in row-major window order.
    return F.max_pool2d(pad4(x, n.attrs["pads"], value=float("-inf")), n.attrs["kernel"], n.attrs["strides"])


def concat_pre(g, n, *xs):
    return torch.cat(xs, dim=n.attrs["axis"])


ACTIVATIONS = {"hardswish": F.hardswish, "sigmoid": torch.sigmoid}


def lut_global_avgpool_pre(g, n, x):
    return ACTIVATIONS[n.attrs["kind"]](x).mean(dim=(2, 3), keepdim=True)


def mul_pre(g, n, a, b):
    return a * b  # b may be the per-channel gate [N, C, 1, 1]


PRE = {
    "conv": conv_pre,
    "gemm": gemm_pre,
    "add": add_pre,
    "requantize": requantize_pre,
    "avgpool": avgpool_pre,
    "global_avgpool": global_avgpool_pre,
    "maxpool": maxpool_pre,
    "concat": concat_pre,
    "hardswish": lambda g, n, x: F.hardswish(x),
    "sigmoid": lambda g, n, x: torch.sigmoid(x),
    "lut_global_avgpool": lut_global_avgpool_pre,
    "mul": mul_pre,
}


def build(g: Graph, fwd: Forward, leaves: dict[str, torch.Tensor]) -> torch.Tensor:
    """The straight-through float64 graph over torchref's forward ``fwd``; returns the real logits.

    ``leaves``: constant value name -> leaf tensor (real units) replacing that constant.
    """
    env: dict[str, torch.Tensor] = {}

    def tensor(name: str) -> torch.Tensor:
        if name not in env:  # not produced by a node: a leaf or another constant
            v = g[name]
            env[name] = leaves[name] if name in leaves else real(v, ints(v.data))
        return env[name]

    for n in g.nodes:
        out = g[n.output]
        if n.op == "quantize":  # graph input boundary: no gradient
            env[n.output] = real(out, fwd.values[n.output])
            continue
        ins = [tensor(i) for i in n.inputs]
        if n.op == "reshape":  # moves no data, keeps the parameters
            env[n.output] = ins[0].reshape(n.attrs["shape"])
        elif n.op == "dequantize":  # the float logits: the int8 input's real value
            env[n.output] = ins[0]
        else:
            value = real(out, fwd.values[n.output])
            if any(t.requires_grad for t in ins):
                pre = PRE[n.op](g, n, *ins)
                env[n.output] = StraightThrough.apply(pre, value, fwd.masks[n.output].to(DT))
            else:
                env[n.output] = value
    return env[g.outputs[0]]


def _weight_slice_axis(g: Graph, node: Node) -> int:
    """Axis that ``trained[weight]`` slices: 0 (channels) for depthwise convs (one input and one output
    channel per group), else 1 (input channels)."""
    if node.op == "conv":
        cin, groups = g[node.inputs[0]].shape[1], node.attrs["groups"]
        cout = g[node.inputs[1]].shape[0]
        if groups > 1 and groups == cin == cout:
            return 0
    return 1


def reference_grads(g: Graph, x: np.ndarray, label, trained: dict,
                    fwd: Forward | None = None) -> tuple[float, dict[str, np.ndarray]]:
    """Cross-entropy loss and its straight-through gradients w.r.t. the ``trained`` constants (real units).

    ``trained``: value name -> slice or None.  A conv/gemm weight's slice applies to axis 1 (a leading
    slice of input channels), a depthwise weight's to axis 0 (channels); biases are returned whole.
    ``fwd``: torchref's :func:`forward` of ``x`` if the caller already has it.
    """
    fwd = forward(g, x) if fwd is None else fwd
    leaves = {}
    for name in trained:
        v = g[name]
        if not v.is_const:
            raise ValueError(f"'{name}' is not a constant")
        leaves[name] = real(v, ints(v.data)).requires_grad_(True)
    logits = build(g, fwd, leaves)
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
