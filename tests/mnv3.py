"""A small MobileNetV3-style int8 test model, built in PyTorch and quantized by onnxruntime.

The float model (no BatchNorm, so nothing needs folding) is a stem Conv + HardSwish, three inverted-residual
blocks (depthwise convs; ReLU in the first two, HardSwish in the third; a squeeze-and-excitation block with a
Sigmoid gate and a per-channel broadcast ``x * gate`` Mul in the first and third; residual Adds in the first
and third), a 1x1 head Conv + HardSwish, GlobalAveragePool and a Linear classifier::

    input 1x3x32x32
    stem   Conv3x3 s2 3->16 + HardSwish                                     -> 1x16x16x16
    block1 dw3x3 16 + ReLU, SE(16->8->16, Sigmoid), pw 16->16, + residual   -> 1x16x16x16
    block2 pw 16->48 + ReLU, dw3x3 s2 48 + ReLU, pw 48->24                  -> 1x24x8x8
    block3 pw 24->72 + HardSwish, dw5x5 72 + HardSwish, SE(72->24->72, Sigmoid), pw 72->24, + residual
                                                                             -> 1x24x8x8
    head   Conv1x1 24->64 + HardSwish, GlobalAveragePool, Flatten, Linear 64->10  -> logits 1x10

``float_onnx`` exports it with the TorchScript exporter (``dynamo=False``) at opset 14, the first opset with a
HardSwish op; ``build`` quantizes it with ``quantize_static`` (per-channel int8 weights, int8 activations,
MinMax calibration on :func:`tte.zoo.calibration_inputs`) in QDQ or QOperator form.  Both are deterministic:
building twice gives byte-identical files.

What onnxruntime 1.32 writes (the facts a frontend needs; ``test_mnv3_model.py`` checks them):

* QDQ: HardSwish is in none of the quantizer's registries, so it is left float between the
  ``DequantizeLinear`` of its producer's output and the ``QuantizeLinear`` its consumer asks for:
  ``DQ -> HardSwish -> Q``.  Sigmoid, Mul, Add and GlobalAveragePool get ``DQ -> op -> Q`` on every input and
  output; Relu is folded into the preceding Conv's output range.
* QOperator: ``com.microsoft`` ``QLinearSigmoid``, ``QLinearMul`` (``x`` first, the 1xCx1x1 gate second),
  ``QLinearAdd``, ``QLinearGlobalAveragePool`` and ``QGemm``; HardSwish stays float,
  ``DequantizeLinear -> HardSwish -> QuantizeLinear``, and a GlobalAveragePool (and Flatten) reading a float
  HardSwish stays float as well: ``DQ -> HardSwish -> GlobalAveragePool [-> Flatten] -> Q``.

``quant_pre_process`` is not used: ``quantize_static`` runs ONNX shape inference itself, and pre-processing would
replace each HardSwish by ``HardSigmoid`` + ``Mul`` (onnxruntime inlines the HardSwish function).
"""

from __future__ import annotations

import pathlib
import warnings

import numpy as np
import onnx
import torch
from torch import nn

from tte.zoo import INPUT_NAME, NUM_CLASSES, OUTPUT_NAME, calibration_inputs, quantize

INPUT_SHAPE = (1, 3, 32, 32)
OPSET = 14
SEED = 20240
FORMATS = ("qdq", "qoperator")

__all__ = ["FORMATS", "INPUT_SHAPE", "OPSET", "build", "float_onnx", "inputs", "torch_model"]


# ---------------------------------------------------------------------------
# The float model
# ---------------------------------------------------------------------------


class SqueezeExcite(nn.Module):
    """``x * sigmoid(conv(relu(conv(gap(x)))))`` -- the gate is 1xCx1x1, broadcast over H and W."""

    def __init__(self, channels: int, squeezed: int):
        super().__init__()
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.reduce = nn.Conv2d(channels, squeezed, 1)
        self.relu = nn.ReLU()
        self.expand = nn.Conv2d(squeezed, channels, 1)
        self.gate = nn.Sigmoid()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.gate(self.expand(self.relu(self.reduce(self.pool(x)))))


class InvertedResidual(nn.Module):
    """Optional 1x1 expansion, depthwise kxk, optional SE, 1x1 projection (linear), residual when shapes allow."""

    def __init__(self, cin: int, hidden: int, cout: int, kernel: int, stride: int, act: type[nn.Module],
                 se: int | None):
        super().__init__()
        layers: list[nn.Module] = []
        if hidden != cin:
            layers += [nn.Conv2d(cin, hidden, 1), act()]
        layers += [nn.Conv2d(hidden, hidden, kernel, stride, kernel // 2, groups=hidden), act()]
        if se is not None:
            layers.append(SqueezeExcite(hidden, se))
        layers.append(nn.Conv2d(hidden, cout, 1))
        self.body = nn.Sequential(*layers)
        self.residual = stride == 1 and cin == cout

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.body(x)
        return x + y if self.residual else y


class MobileNetV3Tiny(nn.Module):
    def __init__(self, classes: int = NUM_CLASSES):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, 16, 3, 2, 1), nn.Hardswish())
        self.blocks = nn.Sequential(
            InvertedResidual(16, 16, 16, 3, 1, nn.ReLU, se=8),
            InvertedResidual(16, 48, 24, 3, 2, nn.ReLU, se=None),
            InvertedResidual(24, 72, 24, 5, 1, nn.Hardswish, se=24),
        )
        self.head = nn.Sequential(nn.Conv2d(24, 64, 1), nn.Hardswish(), nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.classifier = nn.Linear(64, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.head(self.blocks(self.stem(x))))


def torch_model() -> nn.Module:
    """The float model in eval mode, with seeded weights (He-normal convs and Linear, small normal biases; the
    classifier is then centered on the calibration set's features)."""
    with torch.random.fork_rng(devices=[]), torch.no_grad():  # seed locally, leave the caller's RNG alone
        torch.manual_seed(SEED)
        model = MobileNetV3Tiny()
        for m in model.modules():
            if isinstance(m, (nn.Conv2d, nn.Linear)):
                fan_in = m.weight[0].numel()
                m.weight.copy_(torch.randn(m.weight.shape) * (2.0 / fan_in) ** 0.5)
                m.bias.copy_(torch.randn(m.bias.shape) * 0.05)
        # A random net puts every image in the same class (the features share a large common component).
        # Center the classifier's inputs over the calibration set (and scale them by their mean standard
        # deviation) so the logits, and top-1, vary with the image; rounding through float16 keeps the
        # weights identical should a last float32 bit of the batch statistics differ between machines.
        x = torch.from_numpy(np.concatenate(calibration_inputs(INPUT_SHAPE)))
        feats = model.head(model.blocks(model.stem(x)))
        mean, std = feats.mean(0), feats.std(0).mean()
        w = model.classifier.weight / std
        model.classifier.weight.copy_(w.half().float())
        model.classifier.bias.copy_((model.classifier.bias - w @ mean).half().float())
    return model.eval()


def inputs(count: int = 8, seed: int = 7) -> list[np.ndarray]:
    """Test images (not the calibration set): same smooth-image generator, another seed."""
    return calibration_inputs(INPUT_SHAPE, count=count, seed=seed)


# ---------------------------------------------------------------------------
# Export and quantization
# ---------------------------------------------------------------------------


def float_onnx(out_dir: str | pathlib.Path) -> pathlib.Path:
    """Export :func:`torch_model` to ``<out_dir>/mnv3.float.onnx`` (opset 14, static batch 1)."""
    out_dir = pathlib.Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / "mnv3.float.onnx"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the TorchScript exporter's deprecation warning
        torch.onnx.export(
            torch_model(),
            (torch.from_numpy(calibration_inputs(INPUT_SHAPE, count=1)[0]),),
            str(path),
            input_names=[INPUT_NAME],
            output_names=[OUTPUT_NAME],
            opset_version=OPSET,
            do_constant_folding=True,
            dynamo=False,
        )
    return path


def build(out_dir: str | pathlib.Path, fmt: str = "qdq") -> pathlib.Path:
    """Export and quantize; returns ``<out_dir>/mnv3.<fmt>.int8.onnx``.

    ``fmt``: ``"qdq"`` (QuantizeLinear/DequantizeLinear around float ops) or ``"qoperator"`` (QLinearConv,
    com.microsoft QLinearAdd/QLinearMul/QLinearSigmoid/...).
    """
    if fmt not in FORMATS:
        raise ValueError(f"fmt must be one of {FORMATS}, got {fmt!r}")
    out_dir = pathlib.Path(out_dir)
    int8_path = quantize(float_onnx(out_dir), out_dir / f"mnv3.{fmt}.int8.onnx", fmt="qdq" if fmt == "qdq" else "qop")
    onnx.checker.check_model(str(int8_path))
    return int8_path
