"""A tiny TFLite flatbuffer writer for tests: int8 models built in a few lines, no TensorFlow.

It writes the schema's tables with ``flatbuffers.Builder`` and the ``tflite`` package's generated
builder functions (``tflite.Conv2DOptionsStart`` ...).  Two levels:

* **layers** (what most tests need): weights, biases and output quantization are drawn from a seeded
  numpy generator; each output's scale follows a rough estimate of its real spread, so that values do
  not all saturate::

      b = TFLiteBuilder(seed=0)
      x = b.input((1, 8, 8, 3))                      # int8 NHWC input (signature=(-1, 8, 8, 3): dynamic batch)
      y = b.conv2d(x, 8, 3, stride=2, padding="SAME", activation="RELU6")
      y = b.depthwise_conv2d(y, multiplier=2)
      y = b.fully_connected(b.reshape(y, (1, -1)), 10)
      b.softmax(y)                                   # the last layer's output is the model's output
      b.save(path)                                   # or b.build() -> bytes

  Layers: ``conv2d``, ``depthwise_conv2d``, ``fully_connected`` (``bias=False``: no bias operand,
  ``bias="zeros"``: the same model with an all-zero bias; ``bias_dimension=3``: a bias declaring
  quantized_dimension 3, as some files in the wild do; ``per_channel=False``: one weight scale), ``add``,
  ``mul``, ``avg_pool``, ``max_pool``, ``mean``, ``pad``, ``reshape``, ``squeeze``, ``concat``, ``logistic``,
  ``hard_swish``, ``relu``, ``relu6``, ``quantize``, ``dequantize``, ``softmax``.  Each takes and returns a
  :class:`T` (a tensor index with its shape and int8 parameters).

* **tables**: ``b.tensor(name, shape, dtype, data=..., scale=..., zero_point=..., quantized_dimension=...)``
  and ``b.op("CONV_2D", [inputs], [outputs], padding="SAME", stride_h=1, ...)`` for anything the layers
  do not cover (option names: :data:`OPTIONS`).

``build(inputs=None, outputs=None)``: by default the first input and the last layer's output.

And the oracles: :func:`litert_tensors` (every tensor after a run of TFLite's reference kernels),
:func:`tte_tensors` (every value of a tte graph on the model's own int8 input), :func:`differences`
(the two compared, NHWC as NCHW), :func:`node_differences` (each tte op alone on TFLite's operands);
:func:`micro_output` (the output after a run of TFLite Micro, which keeps no intermediate tensor) and
:func:`logits_model` (a copy of a model whose output is its trailing SOFTMAX's input).
"""

from __future__ import annotations

import math
import struct
from dataclasses import dataclass

import flatbuffers
import numpy as np
import tflite
from tflite.utils import BUILTIN_OPCODE2NAME

OPCODES = {name: code for code, name in BUILTIN_OPCODE2NAME.items()}
TYPES = {"float32": 0, "int32": 2, "uint8": 3, "int64": 4, "int16": 7, "int8": 9}
PADDING = {"SAME": 0, "VALID": 1}
ACTIVATIONS = {"NONE": 0, "RELU": 1, "RELU_N1_TO_1": 2, "RELU6": 3, "TANH": 4}

# operator -> (BuiltinOptions type, options table, {keyword: field}); fields without a value keep the default
OPTIONS = {
    "CONV_2D": (1, "Conv2DOptions", {"padding": "Padding", "stride_w": "StrideW", "stride_h": "StrideH",
                                     "activation": "FusedActivationFunction", "dilation_w": "DilationWFactor",
                                     "dilation_h": "DilationHFactor"}),
    "DEPTHWISE_CONV_2D": (2, "DepthwiseConv2DOptions", {
        "padding": "Padding", "stride_w": "StrideW", "stride_h": "StrideH", "depth_multiplier": "DepthMultiplier",
        "activation": "FusedActivationFunction", "dilation_w": "DilationWFactor", "dilation_h": "DilationHFactor"}),
    "AVERAGE_POOL_2D": (5, "Pool2DOptions", {"padding": "Padding", "stride_w": "StrideW", "stride_h": "StrideH",
                                             "filter_w": "FilterWidth", "filter_h": "FilterHeight",
                                             "activation": "FusedActivationFunction"}),
    "FULLY_CONNECTED": (8, "FullyConnectedOptions", {"activation": "FusedActivationFunction",
                                                     "keep_num_dims": "KeepNumDims"}),
    "SOFTMAX": (9, "SoftmaxOptions", {"beta": "Beta"}),
    "CONCATENATION": (10, "ConcatenationOptions", {"axis": "Axis", "activation": "FusedActivationFunction"}),
    "ADD": (11, "AddOptions", {"activation": "FusedActivationFunction"}),
    "RESHAPE": (17, "ReshapeOptions", {"new_shape": "NewShape"}),
    "MUL": (21, "MulOptions", {"activation": "FusedActivationFunction"}),
    "PAD": (22, "PadOptions", {}),
    "MEAN": (27, "ReducerOptions", {"keep_dims": "KeepDims"}),
    "SQUEEZE": (30, "SqueezeOptions", {"squeeze_dims": "SqueezeDims"}),
    "DEQUANTIZE": (38, "DequantizeOptions", {}),
    "QUANTIZE": (89, "QuantizeOptions", {}),
    "HARD_SWISH": (91, "HardSwishOptions", {}),
}
OPTIONS["MAX_POOL_2D"] = (5, *OPTIONS["AVERAGE_POOL_2D"][1:])


@dataclass(frozen=True)
class T:
    """A tensor of the model being built: its index, shape and (per-tensor) int8 parameters."""
    index: int
    shape: tuple[int, ...]
    scale: float = 1.0
    zero_point: int = 0
    std: float = 1.0  # rough spread of its real values (picks the next layers' output scales)


@dataclass
class _Tensor:
    name: str
    shape: tuple[int, ...]
    dtype: str
    buffer: int
    scale: np.ndarray | None
    zero_point: np.ndarray | None
    quantized_dimension: int
    signature: tuple[int, ...] | None


def _out_size(n: int, k: int, s: int, padding: str) -> int:
    return -(-n // s) if padding == "SAME" else (n - k) // s + 1


class TFLiteBuilder:
    def __init__(self, seed: int = 0, description: str = "tte test model") -> None:
        self.rng = np.random.default_rng(seed)
        self.description = description
        self.tensors: list[_Tensor] = []
        self.buffers: list[bytes] = [b""]  # buffer 0: the empty buffer every activation uses
        self.ops: list[tuple[str, list[int], list[int], dict]] = []
        self.inputs: list[int] = []
        self.last: T | None = None

    # -- tables --------------------------------------------------------------------------------
    def tensor(self, name: str, shape, dtype: str = "int8", data: np.ndarray | None = None, scale=None,
               zero_point=None, quantized_dimension: int = 0, signature=None) -> int:
        """Add a tensor (a constant when ``data`` is given); returns its index."""
        buffer = 0
        if data is not None:
            data = np.ascontiguousarray(np.asarray(data, dtype=dtype))
            assert data.shape == tuple(shape), (name, data.shape, shape)
            self.buffers.append(data.astype(data.dtype.newbyteorder("<")).tobytes())
            buffer = len(self.buffers) - 1
        if scale is not None:
            scale = np.atleast_1d(np.asarray(scale, np.float32))
            zero_point = np.zeros(scale.size, np.int64) if zero_point is None else \
                np.atleast_1d(np.asarray(zero_point, np.int64))
        self.tensors.append(_Tensor(name, tuple(int(d) for d in shape), dtype, buffer, scale, zero_point,
                                    quantized_dimension, None if signature is None else tuple(signature)))
        return len(self.tensors) - 1

    def op(self, kind: str, inputs: list[int], outputs: list[int], **options) -> None:
        """Add an operator (``kind``: a BuiltinOperator name); ``options``: keywords of :data:`OPTIONS`."""
        self.ops.append((kind, list(inputs), list(outputs), options))

    # -- layers --------------------------------------------------------------------------------
    def _act(self, name: str, shape, std: float, relu: bool = False, scale=None, zero_point=None) -> T:
        if scale is None:  # cover about +-3 standard deviations (0..6 after a ReLU)
            scale = float(np.float32(6 * std / 255))
            zero_point = -128 if relu else int(self.rng.integers(-8, 9))
        i = self.tensor(name, shape, "int8", scale=scale, zero_point=zero_point)
        self.last = T(i, tuple(shape), float(np.float32(scale)), int(zero_point), std)
        return self.last

    def _name(self, kind: str) -> str:
        return f"{kind.lower()}_{len(self.ops)}"

    def input(self, shape, scale: float = 0.02, zero_point: int = -3, dtype: str = "int8", signature=None,
              name: str = "input") -> T:
        i = self.tensor(name, shape, dtype, scale=None if dtype == "float32" else scale,
                        zero_point=None if dtype == "float32" else zero_point, signature=signature)
        self.inputs.append(i)
        self.last = T(i, tuple(shape), scale, zero_point, scale * 74)
        return self.last

    def _weights(self, shape, per_channel_axis: int | None) -> tuple[np.ndarray, np.ndarray]:
        w = self.rng.integers(-127, 128, shape).astype(np.int8)
        n = shape[per_channel_axis] if per_channel_axis is not None else 1
        return w, self.rng.uniform(0.5, 1.5, n).astype(np.float32) / 127

    def _bias(self, name: str, n: int, x: T, ws: np.ndarray, acc_std: float, dimension: int = 0,
              zeros: bool = False) -> int:
        scale = (np.float64(x.scale) * ws.astype(np.float64)).astype(np.float32)
        scale = np.broadcast_to(scale, (n,)).copy()
        b = np.rint(self.rng.normal(0, 0.5 * acc_std, n) / scale).astype(np.int32) * (0 if zeros else 1)
        return self.tensor(name, (n,), "int32", data=b, scale=scale, quantized_dimension=dimension)

    def conv2d(self, x: T, cout: int, kernel=3, stride=1, padding: str = "SAME", activation: str = "NONE",
               bias: bool | str = True, bias_dimension: int = 0, per_channel: bool = True) -> T:
        kh, kw = (kernel, kernel) if isinstance(kernel, int) else kernel
        sh, sw = (stride, stride) if isinstance(stride, int) else stride
        n, h, w_, cin = x.shape
        name = self._name("conv")
        w, ws = self._weights((cout, kh, kw, cin), 0 if per_channel else None)
        wt = self.tensor(f"{name}/weight", w.shape, "int8", data=w, scale=ws, quantized_dimension=0)
        std = x.std * 0.58 * float(ws.mean()) * 127 * math.sqrt(kh * kw * cin)
        bt = self._bias(f"{name}/bias", cout, x, ws, std, bias_dimension, zeros=bias == "zeros")
        ins = [x.index, wt] + ([bt] if bias else [])  # bias=False draws it too: the same model otherwise
        y = self._act(f"{name}/out", (n, _out_size(h, kh, sh, padding), _out_size(w_, kw, sw, padding), cout), std,
                      relu=activation != "NONE")
        self.op("CONV_2D", ins, [y.index], padding=padding, stride_h=sh, stride_w=sw, activation=activation,
                dilation_h=1, dilation_w=1)
        return y

    def depthwise_conv2d(self, x: T, kernel=3, stride=1, padding: str = "SAME", activation: str = "NONE",
                         multiplier: int = 1, bias_dimension: int = 0) -> T:
        kh, kw = (kernel, kernel) if isinstance(kernel, int) else kernel
        sh, sw = (stride, stride) if isinstance(stride, int) else stride
        n, h, w_, cin = x.shape
        cout = cin * multiplier
        name = self._name("depthwise")
        w, ws = self._weights((1, kh, kw, cout), 3)
        wt = self.tensor(f"{name}/weight", w.shape, "int8", data=w, scale=ws, quantized_dimension=3)
        std = x.std * 0.58 * float(ws.mean()) * 127 * math.sqrt(kh * kw)
        ins = [x.index, wt, self._bias(f"{name}/bias", cout, x, ws, std, bias_dimension)]
        y = self._act(f"{name}/out", (n, _out_size(h, kh, sh, padding), _out_size(w_, kw, sw, padding), cout), std,
                      relu=activation != "NONE")
        self.op("DEPTHWISE_CONV_2D", ins, [y.index], padding=padding, stride_h=sh, stride_w=sw,
                depth_multiplier=multiplier, activation=activation, dilation_h=1, dilation_w=1)
        return y

    def fully_connected(self, x: T, cout: int, activation: str = "NONE", bias: bool | str = True,
                        bias_dimension: int = 0, per_channel: bool = True) -> T:
        k = x.shape[-1]
        name = self._name("fc")
        w, ws = self._weights((cout, k), 0 if per_channel else None)
        wt = self.tensor(f"{name}/weight", w.shape, "int8", data=w, scale=ws, quantized_dimension=0)
        std = x.std * 0.58 * float(ws.mean()) * 127 * math.sqrt(k)
        bt = self._bias(f"{name}/bias", cout, x, ws, std, bias_dimension, zeros=bias == "zeros")
        ins = [x.index, wt] + ([bt] if bias else [])  # bias=False draws it too: the same model otherwise
        rows = int(np.prod(x.shape)) // k
        y = self._act(f"{name}/out", (rows, cout), std, relu=activation != "NONE")
        self.op("FULLY_CONNECTED", ins, [y.index], activation=activation)
        return y

    def _binary(self, kind: str, a: T, b: T, std: float, activation: str) -> T:
        shape = tuple(np.broadcast_shapes(a.shape, b.shape))
        y = self._act(f"{self._name(kind)}/out", shape, std, relu=activation != "NONE")
        self.op(kind, [a.index, b.index], [y.index], activation=activation)
        return y

    def add(self, a: T, b: T, activation: str = "NONE") -> T:
        return self._binary("ADD", a, b, math.hypot(a.std, b.std), activation)

    def mul(self, a: T, b: T, activation: str = "NONE") -> T:
        return self._binary("MUL", a, b, a.std * b.std * 2, activation)

    def _pool(self, kind: str, x: T, kernel, stride, padding: str, activation: str = "NONE") -> T:
        kh, kw = (kernel, kernel) if isinstance(kernel, int) else kernel
        sh, sw = (stride, stride) if isinstance(stride, int) else stride
        n, h, w_, c = x.shape
        shape = (n, _out_size(h, kh, sh, padding), _out_size(w_, kw, sw, padding), c)
        i = self.tensor(f"{self._name(kind)}/out", shape, "int8", scale=x.scale, zero_point=x.zero_point)
        self.op(kind, [x.index], [i], padding=padding, stride_h=sh, stride_w=sw, filter_h=kh, filter_w=kw,
                activation=activation)
        self.last = T(i, self.tensors[i].shape, x.scale, x.zero_point, x.std)
        return self.last

    def avg_pool(self, x: T, kernel=2, stride=2, padding: str = "VALID") -> T:
        return self._pool("AVERAGE_POOL_2D", x, kernel, stride, padding)

    def max_pool(self, x: T, kernel=2, stride=2, padding: str = "VALID") -> T:
        return self._pool("MAX_POOL_2D", x, kernel, stride, padding)

    def _same_quant(self, kind: str, x: T, shape, extra_inputs=(), **options) -> T:
        i = self.tensor(f"{self._name(kind)}/out", shape, "int8", scale=x.scale, zero_point=x.zero_point)
        self.op(kind, [x.index, *extra_inputs], [i], **options)
        self.last = T(i, tuple(shape), x.scale, x.zero_point, x.std)
        return self.last

    def mean(self, x: T, axes=(1, 2), keep_dims: bool = True) -> T:
        ax = self.tensor(f"{self._name('MEAN')}/axes", (len(axes),), "int32", data=np.array(axes, np.int32))
        shape = tuple(1 if i in axes else d for i, d in enumerate(x.shape)) if keep_dims else \
            tuple(d for i, d in enumerate(x.shape) if i not in axes)
        y = self._act(f"{self._name('MEAN')}/out", shape, x.std / 2)
        self.op("MEAN", [x.index, ax], [y.index], keep_dims=keep_dims)
        return y

    def pad(self, x: T, paddings) -> T:
        p = np.asarray(paddings, np.int32)
        pt = self.tensor(f"{self._name('PAD')}/paddings", p.shape, "int32", data=p)
        return self._same_quant("PAD", x, tuple(d + a + b for d, (a, b) in zip(x.shape, p)), [pt])

    def reshape(self, x: T, shape, as_input: bool = True) -> T:
        """``shape`` may hold one -1 (written as is: TFLite resolves it)."""
        given, shape = list(shape), list(shape)
        if -1 in shape:
            shape[shape.index(-1)] = int(np.prod(x.shape)) // -int(np.prod(shape))
        if as_input:
            st = self.tensor(f"{self._name('RESHAPE')}/shape", (len(shape),), "int32", data=np.array(given, np.int32))
            return self._same_quant("RESHAPE", x, shape, [st])
        return self._same_quant("RESHAPE", x, shape, new_shape=given)

    def squeeze(self, x: T, dims=None) -> T:
        ax = set(dims) if dims else {i for i, d in enumerate(x.shape) if d == 1}
        return self._same_quant("SQUEEZE", x, tuple(d for i, d in enumerate(x.shape) if i not in ax),
                                **({"squeeze_dims": list(dims)} if dims else {}))

    def concat(self, xs: list[T], axis: int = -1, activation: str = "NONE") -> T:
        shape = list(xs[0].shape)
        shape[axis] = sum(x.shape[axis] for x in xs)
        # TFLite's int8 CONCATENATION takes operands quantized as its output
        y = self._act(f"{self._name('CONCATENATION')}/out", shape, max(x.std for x in xs), scale=xs[0].scale,
                      zero_point=xs[0].zero_point)
        self.op("CONCATENATION", [x.index for x in xs], [y.index], axis=axis, activation=activation)
        return y

    def _unary(self, kind: str, x: T, scale=None, zero_point=None, std=None, **options) -> T:
        y = self._act(f"{self._name(kind)}/out", x.shape, std or x.std, scale=scale, zero_point=zero_point)
        self.op(kind, [x.index], [y.index], **options)
        return y

    def logistic(self, x: T) -> T:
        return self._unary("LOGISTIC", x, 1 / 256, -128, 0.25)

    def hard_swish(self, x: T) -> T:
        return self._unary("HARD_SWISH", x, std=x.std * 0.8)

    def relu(self, x: T, same_quant: bool = True) -> T:
        return self._unary("RELU", x, x.scale if same_quant else None, x.zero_point if same_quant else None)

    def relu6(self, x: T, same_quant: bool = True) -> T:
        return self._unary("RELU6", x, x.scale if same_quant else None, x.zero_point if same_quant else None)

    def softmax(self, x: T) -> T:
        return self._unary("SOFTMAX", x, 1 / 256, -128, 0.25, beta=1.0)

    def quantize(self, x: T, scale: float, zero_point: int) -> T:
        return self._unary("QUANTIZE", x, scale, zero_point)

    def dequantize(self, x: T) -> T:
        i = self.tensor(f"{self._name('DEQUANTIZE')}/out", x.shape, "float32")
        self.op("DEQUANTIZE", [x.index], [i])
        self.last = T(i, x.shape)
        return self.last

    # -- the flatbuffer ------------------------------------------------------------------------
    def build(self, inputs: list[T] | None = None, outputs: list[T] | None = None, subgraphs: int = 1) -> bytes:
        """The model as flatbuffer bytes (``subgraphs``: the one subgraph listed that many times, for tests of
        multi-subgraph files)."""
        ins = [t.index for t in inputs] if inputs is not None else self.inputs[:1]
        outs = [t.index for t in outputs] if outputs is not None else [self.last.index]
        fb = flatbuffers.Builder(1024)

        def vec(values, dtype) -> int:
            return fb.CreateNumpyVector(np.asarray(values, dtype))

        buffers = []
        for data in self.buffers:
            if data:
                fb.StartVector(1, len(data), 16)
                fb.head -= len(data)
                fb.Bytes[fb.head:fb.head + len(data)] = data
                fb.vectorNumElems = len(data)
                off = fb.EndVector()
                tflite.BufferStart(fb)
                tflite.BufferAddData(fb, off)
            else:
                tflite.BufferStart(fb)
            buffers.append(tflite.BufferEnd(fb))
        tensors = []
        for t in self.tensors:
            name, shape = fb.CreateString(t.name), vec(t.shape, np.int32)
            sig = vec(t.signature, np.int32) if t.signature is not None else None
            quant = None
            if t.scale is not None:
                sc, zp = vec(t.scale, np.float32), vec(t.zero_point, np.int64)
                tflite.QuantizationParametersStart(fb)
                tflite.QuantizationParametersAddScale(fb, sc)
                tflite.QuantizationParametersAddZeroPoint(fb, zp)
                tflite.QuantizationParametersAddQuantizedDimension(fb, t.quantized_dimension)
                quant = tflite.QuantizationParametersEnd(fb)
            tflite.TensorStart(fb)
            tflite.TensorAddShape(fb, shape)
            tflite.TensorAddType(fb, TYPES[t.dtype])
            tflite.TensorAddBuffer(fb, t.buffer)
            tflite.TensorAddName(fb, name)
            if quant is not None:
                tflite.TensorAddQuantization(fb, quant)
            if sig is not None:
                tflite.TensorAddShapeSignature(fb, sig)
            tensors.append(tflite.TensorEnd(fb))
        kinds = list(dict.fromkeys(k for k, *_ in self.ops))
        codes = []
        for kind in kinds:
            tflite.OperatorCodeStart(fb)
            tflite.OperatorCodeAddDeprecatedBuiltinCode(fb, min(OPCODES[kind], 127))
            tflite.OperatorCodeAddBuiltinCode(fb, OPCODES[kind])
            tflite.OperatorCodeAddVersion(fb, 1)
            codes.append(tflite.OperatorCodeEnd(fb))
        operators = [self._operator(fb, kind, kinds.index(kind), i, o, opts, vec) for kind, i, o, opts in self.ops]

        def table_vector(items) -> int:
            fb.StartVector(4, len(items), 4)
            for item in reversed(items):
                fb.PrependUOffsetTRelative(item)
            return fb.EndVector()

        t_vec, o_vec = table_vector(tensors), table_vector(operators)
        i_vec, out_vec, sg_name = vec(ins, np.int32), vec(outs, np.int32), fb.CreateString("main")
        tflite.SubGraphStart(fb)
        tflite.SubGraphAddTensors(fb, t_vec)
        tflite.SubGraphAddInputs(fb, i_vec)
        tflite.SubGraphAddOutputs(fb, out_vec)
        tflite.SubGraphAddOperators(fb, o_vec)
        tflite.SubGraphAddName(fb, sg_name)
        subgraph = tflite.SubGraphEnd(fb)
        c_vec, s_vec, b_vec = table_vector(codes), table_vector([subgraph] * subgraphs), table_vector(buffers)
        desc = fb.CreateString(self.description)
        tflite.ModelStart(fb)
        tflite.ModelAddVersion(fb, 3)
        tflite.ModelAddOperatorCodes(fb, c_vec)
        tflite.ModelAddSubgraphs(fb, s_vec)
        tflite.ModelAddDescription(fb, desc)
        tflite.ModelAddBuffers(fb, b_vec)
        fb.Finish(tflite.ModelEnd(fb), file_identifier=b"TFL3")
        return bytes(fb.Output())

    def _operator(self, fb, name: str, code: int, inputs, outputs, options: dict, vec) -> int:
        table = None
        if name in OPTIONS:
            otype, cls, fields = OPTIONS[name]
            vectors = {k: vec(v, np.int32) for k, v in options.items() if k in ("new_shape", "squeeze_dims")}
            getattr(tflite, f"{cls}Start")(fb)
            for key, value in options.items():
                if key not in fields:
                    raise KeyError(f"{name} has no option '{key}' (known: {sorted(fields)})")
                if key in vectors:
                    value = vectors[key]
                elif key == "padding":
                    value = PADDING[value]
                elif key == "activation":
                    value = ACTIVATIONS[value]
                getattr(tflite, f"{cls}Add{fields[key]}")(fb, value)
            table = getattr(tflite, f"{cls}End")(fb)
        i_vec, o_vec = vec(inputs, np.int32), vec(outputs, np.int32)
        tflite.OperatorStart(fb)
        tflite.OperatorAddOpcodeIndex(fb, code)
        tflite.OperatorAddInputs(fb, i_vec)
        tflite.OperatorAddOutputs(fb, o_vec)
        if table is not None:
            tflite.OperatorAddBuiltinOptionsType(fb, OPTIONS[name][0])
            tflite.OperatorAddBuiltinOptions(fb, table)
        return tflite.OperatorEnd(fb)

    def save(self, path, inputs: list[T] | None = None, outputs: list[T] | None = None):
        with open(path, "wb") as f:
            f.write(self.build(inputs, outputs))
        return path


# -- running a model both ways (the tests' oracle: TFLite's reference kernels) ------------------------
def litert_tensors(path, x: np.ndarray) -> dict[str, np.ndarray]:
    """Every tensor of the model at ``path`` after one run on ``x`` by TFLite's reference kernels
    (``ai_edge_litert``, BUILTIN_REF, all tensors preserved), by tensor name."""
    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    it = Interpreter(model_path=str(path), experimental_op_resolver_type=OpResolverType.BUILTIN_REF,
                     experimental_preserve_all_tensors=True)
    it.allocate_tensors()
    it.set_tensor(it.get_input_details()[0]["index"], x)
    it.invoke()
    out = {}
    for t in it.get_tensor_details():
        try:
            out[t["name"]] = np.array(it.get_tensor(t["index"]))
        except ValueError:  # a tensor without data (an optional operand)
            pass
    return out


def tte_tensors(g, x: np.ndarray) -> dict[str, np.ndarray]:
    """Every value of tte graph ``g`` (from :func:`tte.load` of a TFLite file) on the model's own input
    ``x``: int8 NHWC goes in after the graph's ``quantize`` (as the C API takes it), float32 as the graph
    input."""
    from tte.ir.executor import evaluate

    env = {v.name: v.data for v in g.constants()}
    first = g.nodes[0]
    if x.dtype == np.int8 and first.op == "quantize" and first.inputs == [g.inputs[0]]:
        env[first.output] = x
        sub = g.copy()
        sub.nodes = sub.nodes[1:]
        evaluate(sub, env)
    else:
        env[g.inputs[0]] = x.astype(np.float32)
        evaluate(g, env)
    return {k: v for k, v in env.items() if not g[k].is_const}


def differences(g, path, x: np.ndarray) -> dict[str, tuple[int, int, int]]:
    """For every int8 tensor tte keeps under a TFLite tensor's name (NHWC compared as NCHW): (number of
    values that differ from TFLite's, number of values, largest difference)."""
    ref, got = litert_tensors(path, x), tte_tensors(g, x)
    out = {}
    for name, v in got.items():
        if name in ref and g[name].dtype == "int8" and ref[name].dtype == np.int8:
            r = ref[name].transpose(0, 3, 1, 2) if v.ndim == 4 else ref[name]
            assert r.shape == v.shape, (name, r.shape, v.shape)
            d = np.abs(v.astype(np.int32) - r.astype(np.int32))
            out[name] = (int((d > 0).sum()), int(d.size), int(d.max(initial=0)))
    return out


def node_differences(g, path, x: np.ndarray) -> dict[str, tuple[int, int, int]]:
    """As :func:`differences`, but each tte node reads TFLite's values of its operands (where TFLite has
    them): the difference of each op alone, not accumulated through the model."""
    from tte.ir.executor import run_node

    ref = litert_tensors(path, x)

    def tfl(name):
        r = ref[name]
        return r.transpose(0, 3, 1, 2) if r.ndim == 4 else r  # tte holds 4-d tensors as NCHW

    env = {v.name: v.data for v in g.constants()}
    nodes = g.nodes
    if x.dtype == np.int8 and nodes[0].op == "quantize":
        env[nodes[0].output], nodes = x, nodes[1:]
    else:
        env[g.inputs[0]] = x.astype(np.float32)
    out = {}
    for node in nodes:
        args = [tfl(i) if i in ref and not g[i].is_const and g[i].dtype == "int8" else env[i] for i in node.inputs]
        env[node.output] = y = run_node(g, node, args)
        if node.output in ref and g[node.output].dtype == "int8":
            d = np.abs(y.astype(np.int32) - tfl(node.output).astype(np.int32))
            out[node.output] = (int((d > 0).sum()), int(d.size), int(d.max(initial=0)))
    return out


# -- TFLite Micro --------------------------------------------------------------------------------------
def op_name(model, op) -> str:
    """The BuiltinOperator name of operator ``op`` of ``model`` (a ``tflite.Model``)."""
    code = model.OperatorCodes(op.OpcodeIndex())
    return BUILTIN_OPCODE2NAME[max(code.BuiltinCode(), code.DeprecatedBuiltinCode())]


def logits_model(data: bytes) -> bytes:
    """A copy of the model ``data`` (flatbuffer bytes, one output) whose output is the input of its SOFTMAX: the
    subgraph's output index is rewritten in place (the SOFTMAX still runs, on a tensor nobody reads).  TFLite Micro
    keeps no intermediate tensor, so this is how its logits are read."""
    data = bytearray(data)
    model = tflite.Model.GetRootAsModel(data, 0)
    sg = model.Subgraphs(0)
    softmax = [sg.Operators(i) for i in range(sg.OperatorsLength()) if op_name(model, sg.Operators(i)) == "SOFTMAX"]
    assert len(softmax) == 1 and sg.OutputsLength() == 1, "expected one SOFTMAX and one output"
    outputs = sg._tab.Vector(sg._tab.Offset(8))  # SubGraph.outputs: vtable slot 2 (offset 8), an int32 vector
    assert struct.unpack_from("<i", data, outputs)[0] == sg.Outputs(0)
    struct.pack_into("<i", data, outputs, softmax[0].Inputs(0))
    assert tflite.Model.GetRootAsModel(data, 0).Subgraphs(0).Outputs(0) == softmax[0].Inputs(0)
    return bytes(data)


def micro_output(data: bytes, *xs: np.ndarray) -> np.ndarray:
    """The (first) output of the model ``data`` (flatbuffer bytes) after one run of TFLite Micro's reference
    kernels (the ``tflite-micro`` package's interpreter) on inputs ``xs``."""
    from tflite_micro.python.tflite_micro import runtime

    it = runtime.Interpreter.from_bytes(bytes(data), arena_size=1 << 23)
    for i, x in enumerate(xs):
        it.set_input(x, i)
    it.invoke()
    return np.array(it.get_output(0))
