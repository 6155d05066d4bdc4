"""Facts about graphs that every layer above the IR shares: what a depthwise conv is, the names of the
training graph's label and loss."""

from __future__ import annotations

from .graph import Graph, Node

LABEL = "label"  # the training graph's int32 class-label input
LOSS = "loss"  # its float32 loss output


def is_depthwise(g: Graph, node: Node) -> bool:
    """A conv with one input and one output channel per group (channel multiplier 1)."""
    if node.op != "conv" or node.attrs["groups"] == 1:
        return False
    w = g[node.inputs[1]].shape
    return w[1] == 1 and w[0] == node.attrs["groups"]


def value_bytes(g: Graph, name: str) -> int:
    """Bytes of a value in memory: a bool tensor (a saturation mask) is bit-packed."""
    v = g[name]
    if v.dtype == "bool":
        return -(-v.size // 8)
    return v.nbytes


# -- integer arithmetic ---------------------------------------------------------------------------------
# How requantizing int8 ops round (tte/reference/semantics.py, tte/reference/fixedpoint.py):
# * "onnxruntime": float32 multipliers, round half to even (onnxruntime's int8 kernels);
# * "tflite": TFLite's fixed-point multipliers and shifts and its per-op integer algorithms, exactly TFLite's
#   reference kernels (ai-edge-litert, BUILTIN_REF): FULLY_CONNECTED rounds acc * scale once in double,
#   LOGISTIC is a table of the float sigmoid;
# * "tflite-micro": what TFLite Micro (and CMSIS-NN, bit-exact with it) runs on a device: "tflite" except
#   FULLY_CONNECTED (MBQM per channel, like a conv) and LOGISTIC (gemmlowp's integer algorithm).
# A graph records its arithmetic in ``metadata["arithmetic"]``; the frontend sets it, every kernel and emitter
# reads it here.
ARITHMETICS = ("onnxruntime", "tflite", "tflite-micro")
TFLITE_ARITHMETICS = ("tflite", "tflite-micro")


def arithmetic(g: Graph) -> str:
    """The graph's integer arithmetic, one of :data:`ARITHMETICS` (``"onnxruntime"`` when unset)."""
    return g.metadata.get("arithmetic", "onnxruntime")


def is_tflite(g: Graph) -> bool:
    """Whether ``g`` uses one of TFLite's integer arithmetics (``"tflite"`` or ``"tflite-micro"``: Q31
    multipliers, tte.reference.fixedpoint) rather than onnxruntime's float32 one."""
    return arithmetic(g) in TFLITE_ARITHMETICS


def is_tflite_micro(g: Graph) -> bool:
    """Whether ``g`` uses TFLite Micro's arithmetic (``"tflite-micro"``)."""
    return arithmetic(g) == "tflite-micro"


def set_arithmetic(g: Graph, name: str) -> None:
    if name not in ARITHMETICS:
        raise ValueError(f"unknown arithmetic '{name}'; choose one of {', '.join(ARITHMETICS)}")
    g.metadata["arithmetic"] = name


# -- notes: what the frontend rewrote at load (``tte inspect`` lists them) -------------------------------


def add_note(g: Graph, text: str) -> None:
    """Record one line about an exact rewrite (or a choice) the frontend made while loading the model."""
    g.metadata[f"note:{sum(k.startswith('note:') for k in g.metadata):04d}"] = text


def load_notes(g: Graph) -> list[str]:
    return [g.metadata[k] for k in sorted(k for k in g.metadata if k.startswith("note:"))]
