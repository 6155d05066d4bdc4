"""Small, deterministic int8 ONNX models for the test suite.

Every model is the kind of graph a real user would hand to ``tte``: a float
CNN written with :mod:`onnx.helper` (opset 13, IR version 8, NCHW, batch 1,
graph input ``"input"``, float32 graph output ``"logits"``) whose weights come
from ``numpy.random.default_rng(seed)``, quantized with
``onnxruntime.quantization.quantize_static`` (per-channel int8 weights, int8
activations, MinMax calibration on a fixed, seeded calibration set).

Typical use from a test (pytest's default ``prepend`` import mode puts
``tests/`` on ``sys.path``, so a plain import works)::

    import modelzoo
    path = modelzoo.build("qdq_folded", tmp_path)        # <tmp>/qdq_folded.int8.onnx
    fpath = modelzoo.float_model("qdq_folded", tmp_path)  # <tmp>/qdq_folded.float.onnx
    shape = modelzoo.input_shape("qdq_folded")           # (1, 3, 32, 32)

``build`` is deterministic: building the same model twice (also in a fresh
process) yields byte-identical files.

The op types listed in each builder's docstring are what onnxruntime 1.32
produces; they are informative, not asserted here.
"""

from __future__ import annotations

import pathlib
from collections.abc import Callable
from dataclasses import dataclass

import onnx

from tte.zoo import (
    INPUT_NAME,
    NUM_CLASSES,
    OUTPUT_NAME,
    GraphBuilder,
    calibration_inputs,
    quantize,
)

__all__ = ["GENERATED", "OUTPUT_NAME", "build", "calibration_inputs", "float_model", "input_shape", "quantize"]

# ---------------------------------------------------------------------------
# Float model builders (one per zoo entry)
# ---------------------------------------------------------------------------


def _mobilenet_block(name: str) -> onnx.ModelProto:
    """Conv3x3 s2 (3->8) + Relu -> dw Conv3x3 + Clip(0,6) -> pw Conv (->16)
    -> GlobalAveragePool -> Flatten -> Gemm (->10). Shared by ``qdq_folded``
    and ``qdq_explicit``."""
    g = GraphBuilder(name, seed=101, input_shape=(1, 3, 32, 32))
    x = g.relu(g.conv(INPUT_NAME, 3, 8, 3, stride=2))  # 16x16
    x = g.relu6(g.depthwise(x, 8, 3))
    x = g.conv(x, 8, 16, 1)
    x = g.flatten(g.global_avg_pool(x))
    return g.finish(g.gemm(x, 16, NUM_CLASSES), (1, NUM_CLASSES))


def _qdq_folded() -> onnx.ModelProto:
    """QDQ, default options: Relu and Clip are folded into the Conv output
    quantization ranges and disappear from the graph.

    Quantized op types (ORT 1.32): QuantizeLinear 7, DequantizeLinear 15,
    Conv 3, GlobalAveragePool 1, Flatten 1, Gemm 1 -- no Relu/Clip.
    """
    return _mobilenet_block("qdq_folded")


def _qdq_explicit() -> onnx.ModelProto:
    """Same float model as ``qdq_folded`` but quantized with
    ``QDQKeepRemovableActivations=True``: Relu and Clip stay as explicit nodes
    wrapped in DQ -> op -> Q.

    Quantized op types (ORT 1.32): QuantizeLinear 9, DequantizeLinear 17,
    Conv 3, Relu 1, Clip 1, GlobalAveragePool 1, Flatten 1, Gemm 1.
    """
    return _mobilenet_block("qdq_explicit")


def _qop_resnet() -> onnx.ModelProto:
    """QOperator format: stem Conv+Relu, residual block (Conv+Relu, Conv, Add
    with block input, Relu), MaxPool 2x2 s2, Concat of a 1x1 and a 3x3 branch,
    GlobalAveragePool, Flatten, Gemm.

    Quantized op types (ORT 1.32): QuantizeLinear 1, QLinearConv 5,
    com.microsoft QLinearAdd 1, MaxPool 1 (on int8), com.microsoft
    QLinearConcat 1, com.microsoft QLinearGlobalAveragePool 1, Flatten 1
    (on int8), com.microsoft QGemm 1, DequantizeLinear 1. All Relus (also the
    one after the Add) are fused into the producer's output range.
    """
    g = GraphBuilder("qop_resnet", seed=202, input_shape=(1, 3, 32, 32))
    stem = g.relu(g.conv(INPUT_NAME, 3, 16, 3))
    y = g.relu(g.conv(stem, 16, 16, 3))
    y = g.conv(y, 16, 16, 3, gain=0.5)
    x = g.relu(g.add(y, stem))
    x = g.max_pool(x, 2, 2)  # 16x16
    a = g.relu(g.conv(x, 16, 8, 1))
    b = g.relu(g.conv(x, 16, 8, 3))
    x = g.concat([a, b])
    x = g.flatten(g.global_avg_pool(x))
    return g.finish(g.gemm(x, 16, NUM_CLASSES), (1, NUM_CLASSES))


def _residual_scales() -> onnx.ModelProto:
    """QDQ: two residual Adds whose inputs have very different ranges. The
    first Add sums a Relu'd stem with a conv branch whose weights are 4x
    larger; the second adds a 1x1 branch scaled down 4x. So each Add sees two
    input scales differing by roughly 4x.

    Quantized op types (ORT 1.32): QuantizeLinear 10, DequantizeLinear 20,
    Conv 4, Add 2, GlobalAveragePool 1, Flatten 1, Gemm 1. Add input scales
    are about 0.011 vs 0.13 (first) and 0.13 vs 0.049 (second).
    """
    g = GraphBuilder("residual_scales", seed=303, input_shape=(1, 3, 32, 32))
    stem = g.relu(g.conv(INPUT_NAME, 3, 16, 3, stride=2))  # 16x16
    big = g.conv(stem, 16, 16, 3, gain=4.0)
    s1 = g.add(stem, big)
    small = g.conv(s1, 16, 16, 1, gain=0.25)
    s2 = g.add(s1, small)
    x = g.relu(g.conv(s2, 16, 16, 3, stride=2))  # 8x8
    x = g.flatten(g.global_avg_pool(x))
    return g.finish(g.gemm(x, 16, NUM_CLASSES), (1, NUM_CLASSES))


def _dw_s2_5x5() -> onnx.ModelProto:
    """QDQ: Conv5x5 pad 2 -> dw Conv5x5 s2 -> dw Conv3x3 s2 with asymmetric
    pads [0,0,1,1] -> Conv7x7 s2 pad 3 -> AveragePool 2x2 -> Flatten -> Gemm.
    Spatial sizes: 32 -> 32 -> 16 -> 8 -> 4 -> 2.

    Quantized op types (ORT 1.32): QuantizeLinear 8, DequantizeLinear 18,
    Conv 4, AveragePool 1, Flatten 1, Gemm 1.
    """
    g = GraphBuilder("dw_s2_5x5", seed=404, input_shape=(1, 3, 32, 32))
    x = g.relu(g.conv(INPUT_NAME, 3, 8, 5, pads=2))
    x = g.relu(g.depthwise(x, 8, 5, stride=2, pads=2))
    x = g.relu(g.depthwise(x, 8, 3, stride=2, pads=[0, 0, 1, 1]))
    x = g.relu(g.conv(x, 8, 16, 7, stride=2, pads=3))
    x = g.flatten(g.avg_pool(x, 2, 2))  # [1, 16*2*2]
    return g.finish(g.gemm(x, 64, NUM_CLASSES), (1, NUM_CLASSES))


def _gemm_maxpool() -> onnx.ModelProto:
    """QDQ: Conv -> MaxPool 3x3 s2 pad 1 -> Conv s2 -> Flatten (no GAP) ->
    Gemm (512->32) + Relu -> Gemm (32->10).

    Quantized op types (ORT 1.32): QuantizeLinear 7, DequantizeLinear 15,
    Conv 2, MaxPool 1, Flatten 1, Gemm 2 (the hidden Relu is folded).
    """
    g = GraphBuilder("gemm_maxpool", seed=505, input_shape=(1, 3, 32, 32))
    x = g.relu(g.conv(INPUT_NAME, 3, 8, 3))
    x = g.max_pool(x, 3, 2, pad=1)  # 16x16
    x = g.relu(g.conv(x, 8, 8, 3, stride=2))  # 8x8
    x = g.flatten(x)  # [1, 512]
    x = g.relu(g.gemm(x, 512, 32))
    return g.finish(g.gemm(x, 32, NUM_CLASSES), (1, NUM_CLASSES))


def _inception_body(g: GraphBuilder) -> str:
    """Stem + three-branch (1x1 / 3x3 / 5x5) block concatenated on channels,
    then GAP + Flatten. Branch gains differ (1, 3, 0.3) so the Concat inputs
    get clearly different quantization scales. Returns the [1, 24] tensor."""
    stem = g.relu(g.conv(INPUT_NAME, 3, 16, 3, stride=2))  # 16x16
    b1 = g.relu(g.conv(stem, 16, 8, 1, gain=1.0))
    b3 = g.relu(g.conv(stem, 16, 8, 3, gain=3.0))
    b5 = g.relu(g.conv(stem, 16, 8, 5, gain=0.3))
    x = g.concat([b1, b3, b5])
    return g.flatten(g.global_avg_pool(x))


def _concat_branches() -> onnx.ModelProto:
    """QDQ: inception-like block (1x1, 3x3, 5x5 branches with different output
    ranges) concatenated on channels, GAP, Gemm head.

    Quantized op types (ORT 1.32): QuantizeLinear 9, DequantizeLinear 19,
    Conv 4, Concat 1, GlobalAveragePool 1, Flatten 1, Gemm 1. Concat input
    scales are about 0.012 / 0.034 / 0.003.
    """
    g = GraphBuilder("concat_branches", seed=606, input_shape=(1, 3, 32, 32))
    x = _inception_body(g)
    return g.finish(g.gemm(x, 24, NUM_CLASSES), (1, NUM_CLASSES))


def _concat_matmul() -> onnx.ModelProto:
    """QDQ: same inception block as ``concat_branches`` but with a MatMul head
    (Flatten -> MatMul with constant [24, 10] weight -> Add bias).

    Quantized op types (ORT 1.32): QuantizeLinear 10, DequantizeLinear 20,
    Conv 4, Concat 1, GlobalAveragePool 1, Flatten 1, MatMul 1, Add 1. The
    MatMul weight is int8 per-channel (axis 1); the bias is NOT an int32
    bias but an int8 per-tensor initializer feeding a plain QDQ Add.
    """
    g = GraphBuilder("concat_matmul", seed=707, input_shape=(1, 3, 32, 32))
    x = _inception_body(g)
    _, out = g.matmul_bias(x, 24, NUM_CLASSES)
    return g.finish(out, (1, NUM_CLASSES))


def _nonsquare_gray() -> onnx.ModelProto:
    """QDQ: 1-channel 24x40 input, Conv s2, grouped Conv (groups=2, not
    depthwise), Conv s2, GAP, Gemm. Spatial sizes: 24x40 -> 12x20 -> 6x10.

    Quantized op types (ORT 1.32): QuantizeLinear 7, DequantizeLinear 15,
    Conv 3, GlobalAveragePool 1, Flatten 1, Gemm 1.
    """
    g = GraphBuilder("nonsquare_gray", seed=808, input_shape=(1, 1, 24, 40))
    x = g.relu(g.conv(INPUT_NAME, 1, 8, 3, stride=2))  # 12x20
    x = g.relu(g.conv(x, 8, 16, 3, group=2))
    x = g.relu(g.conv(x, 16, 16, 3, stride=2))  # 6x10
    x = g.flatten(g.global_avg_pool(x))
    return g.finish(g.gemm(x, 16, NUM_CLASSES), (1, NUM_CLASSES))


def _qop_dw_avgpool() -> onnx.ModelProto:
    """QOperator format: Conv s2 -> dw Conv -> pw Conv -> AveragePool 2x2 s2
    -> dw Conv -> GlobalAveragePool -> Reshape [1, -1] -> Gemm.

    Quantized op types (ORT 1.32): QuantizeLinear 1, QLinearConv 4,
    com.microsoft QLinearAveragePool 1, com.microsoft
    QLinearGlobalAveragePool 1, Reshape 1 (on int8), com.microsoft QGemm 1,
    DequantizeLinear 1.
    """
    g = GraphBuilder("qop_dw_avgpool", seed=909, input_shape=(1, 3, 32, 32))
    x = g.relu(g.conv(INPUT_NAME, 3, 16, 3, stride=2))  # 16x16
    x = g.relu(g.depthwise(x, 16, 3))
    x = g.relu(g.conv(x, 16, 32, 1))
    x = g.avg_pool(x, 2, 2)  # 8x8
    x = g.relu(g.depthwise(x, 32, 3))
    x = g.reshape(g.global_avg_pool(x), [1, -1])
    return g.finish(g.gemm(x, 32, NUM_CLASSES), (1, NUM_CLASSES))


@dataclass(frozen=True)
class _Spec:
    builder: Callable[[], onnx.ModelProto]
    fmt: str  # "qdq" or "qop"
    keep_activations: bool
    description: str


_ZOO: dict[str, _Spec] = {
    "qdq_folded": _Spec(
        _qdq_folded, "qdq", False,
        "QDQ mobilenet-style block (conv s2, dw conv, pw conv, GAP, Gemm); Relu/Clip folded away",
    ),
    "qdq_explicit": _Spec(
        _qdq_explicit, "qdq", True,
        "same float model as qdq_folded, QDQ with explicit Relu and Clip(0,6) nodes kept",
    ),
    "qop_resnet": _Spec(
        _qop_resnet, "qop", False,
        "QOperator: QLinearConv, residual QLinearAdd, MaxPool, QLinearConcat, QLinearGlobalAveragePool, QGemm",
    ),
    "residual_scales": _Spec(
        _residual_scales, "qdq", False,
        "QDQ with two residual Adds whose inputs have strongly different scales",
    ),
    "dw_s2_5x5": _Spec(
        _dw_s2_5x5, "qdq", False,
        "QDQ: 5x5 conv, dw 5x5 s2, dw 3x3 s2 with pads [0,0,1,1], 7x7 s2 conv, AveragePool 2x2, Gemm",
    ),
    "gemm_maxpool": _Spec(
        _gemm_maxpool, "qdq", False,
        "QDQ: conv, MaxPool 3x3 s2 pad 1, conv s2, Flatten without GAP, Gemm+Relu, Gemm",
    ),
    "concat_branches": _Spec(
        _concat_branches, "qdq", False,
        "QDQ inception-like 1x1/3x3/5x5 branches with different ranges, Concat, GAP, Gemm",
    ),
    "concat_matmul": _Spec(
        _concat_matmul, "qdq", False,
        "QDQ inception-like block as concat_branches with a MatMul + Add(bias) head",
    ),
    "nonsquare_gray": _Spec(
        _nonsquare_gray, "qdq", False,
        "QDQ 1x1x24x40 grayscale non-square input, stride-2 convs, grouped conv (groups=2), GAP, Gemm",
    ),
    "qop_dw_avgpool": _Spec(
        _qop_dw_avgpool, "qop", False,
        "QOperator: depthwise QLinearConvs, QLinearAveragePool 2x2, QLinearGlobalAveragePool, Reshape, QGemm",
    ),
}

#: name -> one-line description of every model :func:`build` can produce.
GENERATED: dict[str, str] = {name: spec.description for name, spec in _ZOO.items()}


# ---------------------------------------------------------------------------
# Public API
# ---------------------------------------------------------------------------


def _spec(name: str) -> _Spec:
    try:
        return _ZOO[name]
    except KeyError:
        raise KeyError(f"unknown zoo model {name!r}; known: {sorted(_ZOO)}") from None


def input_shape(name: str) -> tuple[int, ...]:
    """Input shape (NCHW, batch 1) of model ``name``."""
    dims = _spec(name).builder().graph.input[0].type.tensor_type.shape.dim
    return tuple(d.dim_value for d in dims)


def float_model(name: str, out_dir: str | pathlib.Path) -> pathlib.Path:
    """Write the un-quantized float model to ``<out_dir>/<name>.float.onnx``
    and return its path."""
    out_dir = pathlib.Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / f"{name}.float.onnx"
    onnx.save(_spec(name).builder(), str(path))
    return path


def build(name: str, out_dir: str | pathlib.Path) -> pathlib.Path:
    """Write ``<out_dir>/<name>.float.onnx`` and ``<out_dir>/<name>.int8.onnx``
    and return the path of the int8 model."""
    spec = _spec(name)
    fpath = float_model(name, out_dir)
    return quantize(fpath, pathlib.Path(out_dir) / f"{name}.int8.onnx", spec.fmt, spec.keep_activations)
