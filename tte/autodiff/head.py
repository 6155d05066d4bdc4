"""Replace a model's classifier with a new N-class head.

The new head keeps the old one's op, input and output quantization (so the saved ONNX model keeps its
structure), and gets:

* weights drawn like PyTorch's default for a linear layer, ``U(-1/sqrt(K), 1/sqrt(K))`` with
  ``K`` = inputs per output (numpy ``default_rng(seed)``), quantized per output channel with scale
  ``4 / (127 * sqrt(K))``: the initial weights use a quarter of the int8 range, leaving room to grow;
* zero biases (int32, scale ``s_x * s_w``, as every bias);
* its own output quantization, symmetric over +-``LOGIT_RANGE`` (zero point 0, scale 32/127): the old
  head's range was calibrated for other logits, and logits that saturate stop every gradient (the
  straight-through mask is zero there), which can freeze training for good.

It is stored under the old classifier's initializer names; being trained, it lives in SRAM.

Calibrated (``feature_rms``, from :func:`feature_rms` over a few of the user's samples): the bound becomes
``1 / (sqrt(K) * rms)``, so the initial logits have the spread PyTorch's default gives on features of unit RMS
(standard deviation 1/sqrt(3)) whatever the features' own scale.  Without it, a model whose features are small
(the MLPerf Tiny models: RMS ~0.1) starts with logits far below one output step (1/4) of the +-32 range: the head
outputs the same int8 value for every class and the loss reads ln(N) until the weights have grown.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from ..errors import TteError
from ..ir import Graph, QuantParams
from ..ir.registry import output_types
from .scheme import weighted_layers

HEADROOM = 4.0
LOGIT_RANGE = 32.0


def feature_rms(g: Graph, samples) -> float:
    """Root mean square, in real units, of the classifier's input over float32 ``samples`` (N inputs of the model's
    input shape, with or without the batch axis): what :func:`replace_head` calibrates a new head on."""
    from ..ir.executor import batched, evaluate

    _, head = weighted_layers(g)
    shape = g[g.inputs[0]].shape
    x = np.asarray(samples, dtype=np.float32)
    per = int(np.prod(shape[1:]))
    if x.size == 0 or x.size % per or not np.isfinite(x).all():
        raise TteError(f"calibration samples must be finite float inputs of shape {list(shape[1:])} (any number "
                       f"of them), got an array of shape {list(x.shape)}")
    feature = g[head.inputs[0]]
    consts = {v.name: v.data for v in g.constants()}
    total, count = 0.0, 0
    for one in x.reshape((-1, per)):
        env = dict(consts)
        env[g.inputs[0]] = batched(one.reshape(shape[1:]), shape)
        evaluate(g, env)
        v = env[feature.name]
        if feature.quant is not None and v.dtype.kind in "iu":
            v = (v.astype(np.float64) - float(np.asarray(feature.quant.zero_point).reshape(-1)[0])) \
                * float(np.asarray(feature.quant.scale).reshape(-1)[0])
        total += float(np.sum(np.square(v, dtype=np.float64)))
        count += v.size
    return float(np.sqrt(total / count))


def replace_head(g: Graph, classes: int, seed: int = 0, feature_rms: float | None = None) -> Graph:
    if classes < 1:
        raise TteError(f"classes must be at least 1, got {classes}")
    if feature_rms is not None and not (np.isfinite(feature_rms) and feature_rms >= 0):
        raise TteError(f"feature_rms must be a finite number >= 0, got {feature_rms}")
    g = g.copy()
    _, head = weighted_layers(g)
    for node in g.nodes[g.nodes.index(head) + 1:]:
        if node.op not in ("reshape", "dequantize"):
            raise TteError(f"classes={classes}: the classifier '{head.name}' is followed by {node.op} "
                           f"'{node.name}' before the output; tte can only replace a head that feeds the logits "
                           f"directly (through reshapes)")
    w, b, x = g[head.inputs[1]], g[head.inputs[2]], g[head.inputs[0]]
    old = w.shape[0]
    fan_in = int(np.prod(w.shape[1:]))
    bound = 1.0 / np.sqrt(fan_in)
    if feature_rms:  # calibrated: initial logits of standard deviation 1/sqrt(3) on these features
        bound /= feature_rms
    real = np.random.default_rng(seed).uniform(-bound, bound, (classes,) + w.shape[1:])
    scale = np.full(classes, HEADROOM * bound / 127.0, np.float32)
    wq = np.clip(np.rint(real / scale.reshape(-1, *[1] * (real.ndim - 1))), -127, 127).astype(np.int8)
    g.values[w.name] = replace(w, shape=wq.shape, data=wq, quant=QuantParams(scale, np.zeros(classes, np.int32), 0))
    bscale = (x.quant.scale.astype(np.float64) * scale).astype(np.float32)
    g.values[b.name] = replace(b, shape=(classes,), data=np.zeros(classes, np.int32),
                               quant=QuantParams(bscale, np.zeros(classes, np.int32), 0))
    # the head's output and everything after it change their class dimension and quantization
    out_quant = QuantParams.per_tensor(LOGIT_RANGE / 127.0, 0)
    after = False
    for node in g.nodes:
        if node is head:
            after = True
        elif after and node.op == "reshape":
            shape = list(node.attrs["shape"])
            axis = max(i for i, d in enumerate(shape) if d == old)
            shape[axis] = classes
            node.attrs["shape"] = tuple(shape)
        if after:
            for name, (dtype, shape) in zip(node.outputs, output_types(g, node)):
                g.values[name] = replace(g[name], shape=shape, quant=out_quant if dtype == "int8" else None)
    head.attrs["qmin"], head.attrs["qmax"] = -128, 127
    g.metadata["head"] = f"new {classes}-class head (seed {seed}" + (
        f", calibrated on features of RMS {feature_rms:.4g})" if feature_rms else ")")
    return g
