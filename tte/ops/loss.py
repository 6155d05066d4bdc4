"""The loss: softmax cross-entropy over the logits, mean over the batch, and its gradient."""

from __future__ import annotations

import numpy as np

from ..ir import Graph, Node
from ..ir.registry import Shape, register
from ..reference import numerics as nx
from . import cgen as cg
from .common import no_scratch
from .update import TRAINING_ONLY

F32 = nx.F32


# -- C emitters (the ``emit`` facet) ------------------------------------------------------------


def emit_xent(e: cg.Emitter, node: Node) -> None:
    z, label = node.inputs
    n, k = e.g[z].shape
    e.call(node, f"tte_xent_f32({n}, {k}, {e.ptr(z)}, {e.ptr(label)}, {e.ptr(node.outputs[0])}, "
                 f"{e.ptr(node.outputs[1])})")


def xent_shape(g: Graph, n: Node) -> Shape:
    logits, label = g[n.inputs[0]].shape, g[n.inputs[1]].shape
    if len(logits) != 2 or label != (logits[0],):
        raise ValueError(f"xent expects logits [N,K] and labels [N], got {logits} and {label}")
    return ()


def xent(g: Graph, node: Node, logits, label):
    """Softmax cross-entropy, mean over the batch: (loss, dloss/dlogits).

    Per sample: m = max(z); e_k = expf(z_k - m); s = sum of e_k, k ascending; p_k = e_k / s;
    gradient (p - onehot) / N.  The loss, log(s) - (z_y - m) averaged, is reported only."""
    z = logits.astype(F32)
    z = (z - z.max(axis=1, keepdims=True)).astype(F32)
    e = nx.expf(z)
    total = nx.seq_sum(e, axis=1)[:, None]
    p = (e / total).astype(F32)
    n = z.shape[0]
    idx = np.arange(n), label.astype(np.int64)
    loss = F32(np.mean(np.log(total[:, 0].astype(np.float64)) - z[idx]))
    d = p.copy()
    d[idx] = (d[idx] - F32(1)).astype(F32)
    return np.asarray(loss, F32), (d / F32(n)).astype(F32)


register(name="xent", operands=("float32", "int32"), out_dtype="float32", shape=xent_shape, attrs=(),
         extra=lambda g, n: [("float32", g[n.inputs[0]].shape)], optional=0, kernel=xent, emit=emit_xent,
         runtime=("tte_xent_f32.c", "tte_expf.c"), scratch=no_scratch, code_bytes=400, **TRAINING_ONLY)
