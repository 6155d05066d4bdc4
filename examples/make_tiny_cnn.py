"""Generate examples/tiny_cnn.int8.onnx, the small int8 model the README's first command uses.

A MobileNetV2-style CNN (stem conv, three inverted-residual blocks, two of them with a residual add,
global average pool, a 10-class Gemm head) for 1x3x32x32 inputs, with seeded random weights, quantized
by onnxruntime's quantize_static in QDQ form (per-channel int8 weights, int8 activations, ReLU6 folded
into the quantization ranges).  Deterministic: rerunning it rewrites the same bytes.

    python examples/make_tiny_cnn.py [OUT_DIR]
"""

from __future__ import annotations

import pathlib
import sys
import tempfile

import onnx

from tte.zoo import INPUT_NAME, GraphBuilder, quantize

SHAPE = (1, 3, 32, 32)
CLASSES = 10


def inverted_residual(g: GraphBuilder, x: str, cin: int, cout: int, expand: int, stride: int) -> str:
    hidden = cin * expand
    y = g.relu6(g.conv(x, cin, hidden, 1))
    y = g.relu6(g.depthwise(y, hidden, 3, stride=stride))
    y = g.conv(y, hidden, cout, 1)
    return g.add(x, y) if stride == 1 and cin == cout else y


def tiny_cnn() -> onnx.ModelProto:
    g = GraphBuilder("tiny_cnn", seed=2022, input_shape=SHAPE)
    x = g.relu6(g.conv(INPUT_NAME, 3, 16, 3, stride=2))  # 16x16
    x = inverted_residual(g, x, 16, 16, 3, 1)
    x = inverted_residual(g, x, 16, 24, 3, 2)  # 8x8
    x = inverted_residual(g, x, 24, 24, 3, 1)
    x = g.flatten(g.global_avg_pool(x))
    return g.finish(g.gemm(x, 24, CLASSES), (1, CLASSES))


def main(out_dir: pathlib.Path) -> pathlib.Path:
    out_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        float_path = pathlib.Path(tmp) / "tiny_cnn.float.onnx"
        onnx.save(tiny_cnn(), str(float_path))
        return quantize(float_path, out_dir / "tiny_cnn.int8.onnx")


if __name__ == "__main__":
    out = main(pathlib.Path(sys.argv[1]) if len(sys.argv) > 1 else pathlib.Path(__file__).parent)
    print(f"wrote {out}")
