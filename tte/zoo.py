"""Build small int8 CNNs the way users make them: a float ONNX graph, quantized by onnxruntime.

:class:`GraphBuilder` writes a float CNN with :mod:`onnx.helper` (opset 13, NCHW) from seeded random
weights; :func:`quantize` runs ``onnxruntime.quantization.quantize_static`` on it (per-channel int8
weights, int8 activations, MinMax calibration on deterministic smooth images).  Both are deterministic:
the same seed gives byte-identical files.  The example model of ``examples/`` and the test suite's
model zoo are built with them.
"""

from __future__ import annotations

import contextlib
import logging
import pathlib
from collections.abc import Iterator
from dataclasses import dataclass, field

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

OPSET = 13
IR_VERSION = 8
INPUT_NAME = "input"
OUTPUT_NAME = "logits"
NUM_CLASSES = 10
CALIBRATION_SAMPLES = 16
CALIBRATION_SEED = 1234


# ---------------------------------------------------------------------------
# Graph construction helpers
# ---------------------------------------------------------------------------


@dataclass
class GraphBuilder:
    """Accumulates nodes and initializers for a single float CNN graph.

    Each ``conv``/``gemm``/... method appends one node (plus its weights) and
    returns the name of the produced tensor, so models read top to bottom as
    a chain of calls. Weights are He-normal (std ``sqrt(2 / fan_in)``) times an
    optional ``gain``; biases are small normals. All randomness comes from
    ``rng``, so the same seed gives the same model.
    """

    name: str
    seed: int
    input_shape: tuple[int, ...]
    rng: np.random.Generator = field(init=False)
    nodes: list[onnx.NodeProto] = field(default_factory=list, init=False)
    initializers: list[onnx.TensorProto] = field(default_factory=list, init=False)
    _counts: dict[str, int] = field(default_factory=dict, init=False)

    def __post_init__(self) -> None:
        self.rng = np.random.default_rng(self.seed)

    # -- naming / constants -------------------------------------------------

    def _fresh(self, prefix: str) -> str:
        n = self._counts.get(prefix, 0)
        self._counts[prefix] = n + 1
        return f"{prefix}{n}"

    def const(self, name: str, value: np.ndarray) -> str:
        """Add an initializer and return its name."""
        self.initializers.append(numpy_helper.from_array(np.asarray(value), name))
        return name

    def _node(self, op_type: str, inputs: list[str], **attrs) -> str:
        node_name = self._fresh(op_type.lower())
        out = f"{node_name}_out"
        self.nodes.append(helper.make_node(op_type, inputs, [out], name=node_name, **attrs))
        return out

    # -- layers -------------------------------------------------------------

    def conv(
        self,
        x: str,
        cin: int,
        cout: int,
        kernel: int,
        stride: int = 1,
        pads: int | list[int] | None = None,
        group: int = 1,
        gain: float = 1.0,
    ) -> str:
        """Conv with bias. ``pads`` defaults to "same" (``kernel // 2``).

        An int pad is applied to all four sides; a list is passed through as
        ONNX ``[top, left, bottom, right]``.
        """
        if pads is None:
            pads = kernel // 2
        if isinstance(pads, int):
            pads = [pads] * 4
        fan_in = (cin // group) * kernel * kernel
        w = self.rng.standard_normal((cout, cin // group, kernel, kernel)) * np.sqrt(2.0 / fan_in) * gain
        b = self.rng.standard_normal(cout) * 0.05 * gain
        prefix = self._fresh("conv_param")
        w_name = self.const(f"{prefix}_w", w.astype(np.float32))
        b_name = self.const(f"{prefix}_b", b.astype(np.float32))
        return self._node(
            "Conv",
            [x, w_name, b_name],
            kernel_shape=[kernel, kernel],
            strides=[stride, stride],
            pads=list(pads),
            group=group,
            dilations=[1, 1],
        )

    def depthwise(self, x: str, channels: int, kernel: int, stride: int = 1, pads=None, gain: float = 1.0) -> str:
        """Depthwise conv (``group == channels``, channel multiplier 1)."""
        return self.conv(x, channels, channels, kernel, stride, pads, group=channels, gain=gain)

    def gemm(self, x: str, k: int, n: int, gain: float = 1.0) -> str:
        """Fully connected layer ``Y = X @ W^T + b`` as Gemm with ``transB=1``."""
        w = self.rng.standard_normal((n, k)) * np.sqrt(2.0 / k) * gain
        b = self.rng.standard_normal(n) * 0.05 * gain
        prefix = self._fresh("gemm_param")
        w_name = self.const(f"{prefix}_w", w.astype(np.float32))
        b_name = self.const(f"{prefix}_b", b.astype(np.float32))
        return self._node("Gemm", [x, w_name, b_name], transB=1)

    def matmul_bias(self, x: str, k: int, n: int) -> tuple[str, str]:
        """Fully connected layer as ``MatMul`` with a constant ``[K, N]`` weight,
        followed by ``Add`` of a bias. Returns ``(matmul_out, add_out)``."""
        w = self.rng.standard_normal((k, n)) * np.sqrt(2.0 / k)
        b = self.rng.standard_normal(n) * 0.05
        prefix = self._fresh("matmul_param")
        w_name = self.const(f"{prefix}_w", w.astype(np.float32))
        b_name = self.const(f"{prefix}_b", b.astype(np.float32))
        mm = self._node("MatMul", [x, w_name])
        return mm, self._node("Add", [mm, b_name])

    def relu(self, x: str) -> str:
        return self._node("Relu", [x])

    def relu6(self, x: str) -> str:
        """``Clip(x, 0, 6)``; in opset 13 min/max are (initializer) inputs."""
        prefix = self._fresh("clip_param")
        lo = self.const(f"{prefix}_min", np.array(0.0, dtype=np.float32))
        hi = self.const(f"{prefix}_max", np.array(6.0, dtype=np.float32))
        return self._node("Clip", [x, lo, hi])

    def add(self, a: str, b: str) -> str:
        return self._node("Add", [a, b])

    def concat(self, xs: list[str], axis: int = 1) -> str:
        return self._node("Concat", xs, axis=axis)

    def max_pool(self, x: str, kernel: int, stride: int, pad: int = 0) -> str:
        return self._node("MaxPool", [x], kernel_shape=[kernel, kernel], strides=[stride, stride], pads=[pad] * 4)

    def avg_pool(self, x: str, kernel: int, stride: int) -> str:
        return self._node("AveragePool", [x], kernel_shape=[kernel, kernel], strides=[stride, stride])

    def global_avg_pool(self, x: str) -> str:
        return self._node("GlobalAveragePool", [x])

    def flatten(self, x: str) -> str:
        return self._node("Flatten", [x], axis=1)

    def reshape(self, x: str, shape: list[int]) -> str:
        prefix = self._fresh("reshape_param")
        s = self.const(f"{prefix}_shape", np.array(shape, dtype=np.int64))
        return self._node("Reshape", [x, s])

    # -- finishing ----------------------------------------------------------

    def finish(self, out: str, out_shape: tuple[int, ...]) -> onnx.ModelProto:
        """Rename the last tensor to ``"logits"`` and wrap everything in a
        checked, shape-inferred ModelProto."""
        for node in self.nodes:
            node.output[:] = [OUTPUT_NAME if o == out else o for o in node.output]
            node.input[:] = [OUTPUT_NAME if i == out else i for i in node.input]
        graph = helper.make_graph(
            self.nodes,
            self.name,
            [helper.make_tensor_value_info(INPUT_NAME, TensorProto.FLOAT, list(self.input_shape))],
            [helper.make_tensor_value_info(OUTPUT_NAME, TensorProto.FLOAT, list(out_shape))],
            initializer=self.initializers,
        )
        model = helper.make_model(
            graph,
            opset_imports=[helper.make_opsetid("", OPSET)],
            producer_name="tte-modelzoo",
            ir_version=IR_VERSION,
        )
        onnx.checker.check_model(model, full_check=True)
        return onnx.shape_inference.infer_shapes(model, strict_mode=True)


# ---------------------------------------------------------------------------
# Calibration and quantization
# ---------------------------------------------------------------------------


def calibration_inputs(
    shape: tuple[int, ...], count: int = CALIBRATION_SAMPLES, seed: int = CALIBRATION_SEED
) -> list[np.ndarray]:
    """Deterministic smooth-ish float32 images in [-1, 1].

    Each channel is a sum of a few random 2-D sinusoids plus a little
    white noise, squashed with ``tanh`` -- closer to natural images than
    i.i.d. noise, and it exercises both signs.
    """
    rng = np.random.default_rng(seed)
    n, c, h, w = shape
    yy, xx = np.meshgrid(np.linspace(0.0, 1.0, h), np.linspace(0.0, 1.0, w), indexing="ij")
    samples = []
    for _ in range(count):
        img = np.zeros((n, c, h, w))
        for ch in range(c):
            for _ in range(3):
                fy, fx = rng.uniform(0.5, 4.0, size=2)
                phase = rng.uniform(0.0, 2.0 * np.pi)
                amp = rng.uniform(0.3, 1.0)
                img[:, ch] += amp * np.sin(2.0 * np.pi * (fy * yy + fx * xx) + phase)
        img += 0.1 * rng.standard_normal(img.shape)
        samples.append(np.tanh(img).astype(np.float32))
    return samples


class _Reader:
    """A ``CalibrationDataReader`` over a fixed list of inputs."""

    def __init__(self, samples: list[np.ndarray]):
        self._samples = samples
        self._it: Iterator[np.ndarray] = iter(samples)

    def get_next(self):
        x = next(self._it, None)
        return None if x is None else {INPUT_NAME: x}

    def rewind(self) -> None:
        self._it = iter(self._samples)


@contextlib.contextmanager
def _quiet_root_logger():
    """Silence quantize_static's 'consider pre-processing' warning."""
    root = logging.getLogger()
    old = root.level
    root.setLevel(logging.ERROR)
    try:
        yield
    finally:
        root.setLevel(old)


def quantize(
    float_path: str | pathlib.Path,
    int8_path: str | pathlib.Path,
    fmt: str = "qdq",
    keep_activations: bool = False,
) -> pathlib.Path:
    """Statically quantize ``float_path`` to int8 and write ``int8_path``.

    Per-channel int8 weights, int8 activations, MinMax calibration on
    :func:`calibration_inputs` for the model's input shape.

    Args:
        fmt: ``"qdq"`` (QuantizeLinear/DequantizeLinear around float ops) or
            ``"qop"`` (QOperator: QLinearConv, QLinearAdd, ...).
        keep_activations: QDQ only -- keep Relu/Clip as explicit nodes
            (``QDQKeepRemovableActivations``) instead of folding them into the
            preceding op's output range.
    """
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static

    if fmt not in ("qdq", "qop"):
        raise ValueError(f"fmt must be 'qdq' or 'qop', got {fmt!r}")
    float_path, int8_path = pathlib.Path(float_path), pathlib.Path(int8_path)
    model = onnx.load(str(float_path), load_external_data=False)
    dims = model.graph.input[0].type.tensor_type.shape.dim
    shape = tuple(d.dim_value for d in dims)
    reader = _Reader(calibration_inputs(shape))
    extra = {"QDQKeepRemovableActivations": True} if keep_activations else {}
    with _quiet_root_logger():
        quantize_static(
            str(float_path),
            str(int8_path),
            reader,
            quant_format=QuantFormat.QDQ if fmt == "qdq" else QuantFormat.QOperator,
            per_channel=True,
            activation_type=QuantType.QInt8,
            weight_type=QuantType.QInt8,
            calibrate_method=CalibrationMethod.MinMax,
            extra_options=extra,
        )
    return int8_path




def gratings(count: int, shape: tuple[int, ...], classes: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """A small synthetic classification task: class c is a sinusoidal grating at angle pi * c / classes
    with a random phase, plus noise.  Returns (images [count, C, H, W] float32 in [-1, 1], labels)."""
    rng = np.random.default_rng(seed)
    c, h, w = shape
    yy, xx = np.meshgrid(np.arange(h), np.arange(w), indexing="ij")
    images, labels = [], []
    for i in range(count):
        label = i % classes
        angle = np.pi * label / classes
        wave = np.sin(2 * np.pi * (np.cos(angle) * xx + np.sin(angle) * yy) / 8 + rng.uniform(0, 2 * np.pi))
        img = wave[None].repeat(c, 0) + rng.normal(0, 0.3, (c, h, w))
        images.append(np.clip(img, -1, 1).astype(np.float32))
        labels.append(label)
    return np.stack(images), np.array(labels, np.int32)
