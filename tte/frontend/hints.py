"""What to tell a user whose model holds an op tte does not take: the nearest thing they can do, per op."""

from __future__ import annotations

_CUT = "cut the model before it (onnx.utils.extract_model)"
_FOLD = "export with do_constant_folding=True (or simplify the model with onnxsim) so that it folds away"
_ACTIVATION = ("tte supports ReLU, ReLU6 (Clip), HardSwish and Sigmoid as activations (after a Conv, Gemm or Add): "
               "use one of them before exporting")
_NORM = "tte takes BatchNormalization only (folded into the conv before it, or as a per-channel affine op)"
_DYNAMIC = ("dynamic quantization is not supported; quantize statically with onnxruntime.quantization.quantize_static "
            "(per_channel=True, activation_type=QuantType.QInt8, weight_type=QuantType.QInt8)")

HINTS: dict[str, str] = {
    "Resize": f"upsampling belongs to segmentation and detection heads; tte trains classifiers: {_CUT}",
    "Upsample": f"upsampling belongs to segmentation and detection heads; tte trains classifiers: {_CUT}",
    "ConvTranspose": f"transposed convolutions (decoders) are not supported; tte trains classifiers: {_CUT}",
    "LSTM": "recurrent layers are not supported; tte trains convolutional classifiers",
    "GRU": "recurrent layers are not supported; tte trains convolutional classifiers",
    "RNN": "recurrent layers are not supported; tte trains convolutional classifiers",
    "Softmax": "tte trains on the logits; a Softmax is taken only as the model's last op, where it is dropped",
    "LogSoftmax": "tte trains on the logits; a LogSoftmax is taken only as the model's last op, where it is dropped",
    "Gather": f"indexing (an embedding, or a piece of a shape) is not supported; if it reads constants, {_FOLD}",
    "Shape": f"the model computes shapes at run time; export with a static batch and {_FOLD}",
    "Slice": f"slicing activations is not supported; if it slices a constant, {_FOLD}",
    "Split": "splitting activations (channel shuffle, grouped branches) is not supported",
    "Cast": f"a type cast inside the network; {_FOLD}",
    "Dropout": "export the model in eval mode (model.eval()), where Dropout disappears",
    "LayerNormalization": _NORM,
    "InstanceNormalization": _NORM,
    "GroupNormalization": _NORM,
    "LpNormalization": _NORM,
    "Attention": "attention blocks are not supported; tte trains convolutional classifiers",
    "MultiHeadAttention": "attention blocks are not supported; tte trains convolutional classifiers",
    "Einsum": "attention-style contractions are not supported; use Gemm / MatMul with a constant weight",
    "ArgMax": f"post-processing after the logits; {_CUT}",
    "TopK": f"post-processing after the logits; {_CUT}",
    "PRelu": _ACTIVATION,
    "LeakyRelu": _ACTIVATION,
    "Elu": _ACTIVATION,
    "Selu": _ACTIVATION,
    "Tanh": _ACTIVATION,
    "Gelu": _ACTIVATION,
    "Softplus": _ACTIVATION,
    "HardSigmoid": _ACTIVATION,
    "Sub": "arithmetic on activations (input normalization in the graph?): move it into the data pipeline",
    "Div": "arithmetic on activations (input normalization in the graph?): move it into the data pipeline",
    "DynamicQuantizeLinear": _DYNAMIC,
    "MatMulInteger": _DYNAMIC,
    "ConvInteger": _DYNAMIC,
    "QLinearLeakyRelu": _ACTIVATION,
}

DEFAULT = ("tte lifts int8 CNN classifiers (Conv, Gemm / MatMul, pools, Add, Mul, Concat, ReLU / Clip / HardSwish / "
           "Sigmoid, BatchNormalization): replace this layer before exporting, or cut the model before it")


def hint(op_type: str) -> str:
    return HINTS.get(op_type, DEFAULT)
