"""Reading a TFLite flatbuffer (``.tflite``) into plain Python records, with the ``tflite`` package's
generated schema classes (no TensorFlow).

Everything the lifter needs is copied out of the flatbuffer here, once: tensors (name, shape, shape
signature, type, constant data, quantization), operators (type, operands, the options tte reads) and
the subgraph's inputs and outputs.  A truncated or corrupt file, an index out of range or a buffer of
the wrong size raises one :class:`tte.errors.ModelFileError` line; the lifter then never touches the
flatbuffer again.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..errors import ModelFileError, UnsupportedModelError

# TensorType -> numpy dtype (the types an int8 model can hold; others are named in errors)
TENSOR_TYPES = {0: "float32", 1: "float16", 2: "int32", 3: "uint8", 4: "int64", 6: "bool", 7: "int16", 9: "int8",
                10: "float64", 12: "uint64", 15: "uint32", 16: "uint16"}
TYPE_NAMES = {0: "FLOAT32", 1: "FLOAT16", 2: "INT32", 3: "UINT8", 4: "INT64", 5: "STRING", 6: "BOOL", 7: "INT16",
              8: "COMPLEX64", 9: "INT8", 10: "FLOAT64", 11: "COMPLEX128", 12: "UINT64", 13: "RESOURCE",
              14: "VARIANT", 15: "UINT32", 16: "UINT16", 17: "INT4", 18: "BFLOAT16"}
PADDING = {0: "SAME", 1: "VALID"}
ACTIVATION = {0: "NONE", 1: "RELU", 2: "RELU_N1_TO_1", 3: "RELU6", 4: "TANH", 5: "SIGN_BIT"}

# operator type -> (options class name, {key: accessor}) for the options the lifter reads
_OPTIONS = {
    "CONV_2D": ("Conv2DOptions", {"padding": "Padding", "stride_w": "StrideW", "stride_h": "StrideH",
                                  "activation": "FusedActivationFunction", "dilation_w": "DilationWFactor",
                                  "dilation_h": "DilationHFactor"}),
    "DEPTHWISE_CONV_2D": ("DepthwiseConv2DOptions", {
        "padding": "Padding", "stride_w": "StrideW", "stride_h": "StrideH", "depth_multiplier": "DepthMultiplier",
        "activation": "FusedActivationFunction", "dilation_w": "DilationWFactor", "dilation_h": "DilationHFactor"}),
    "FULLY_CONNECTED": ("FullyConnectedOptions", {"activation": "FusedActivationFunction",
                                                  "weights_format": "WeightsFormat", "keep_num_dims": "KeepNumDims"}),
    "ADD": ("AddOptions", {"activation": "FusedActivationFunction"}),
    "MUL": ("MulOptions", {"activation": "FusedActivationFunction"}),
    "AVERAGE_POOL_2D": ("Pool2DOptions", {"padding": "Padding", "stride_w": "StrideW", "stride_h": "StrideH",
                                          "filter_w": "FilterWidth", "filter_h": "FilterHeight",
                                          "activation": "FusedActivationFunction"}),
    "MEAN": ("ReducerOptions", {"keep_dims": "KeepDims"}),
    "CONCATENATION": ("ConcatenationOptions", {"axis": "Axis", "activation": "FusedActivationFunction"}),
    "SOFTMAX": ("SoftmaxOptions", {"beta": "Beta"}),
    "RESHAPE": ("ReshapeOptions", {"new_shape": "NewShape"}),
    "SQUEEZE": ("SqueezeOptions", {"squeeze_dims": "SqueezeDims"}),
}
_OPTIONS["MAX_POOL_2D"] = _OPTIONS["AVERAGE_POOL_2D"]


@dataclass
class Tensor:
    index: int
    name: str
    shape: tuple[int, ...]
    signature: tuple[int, ...] | None  # shape_signature: -1 marks a dynamic dimension
    type: int  # TensorType
    data: np.ndarray | None  # constant data (a non-empty buffer), in ``shape``
    scale: np.ndarray | None  # quantization: float32 scales, int64 zero points, quantized dimension
    zero_point: np.ndarray | None
    quantized_dimension: int = 0

    @property
    def dtype(self) -> str:
        return TENSOR_TYPES.get(self.type, TYPE_NAMES.get(self.type, f"type {self.type}").lower())

    @property
    def quantized(self) -> bool:
        return self.scale is not None and self.scale.size > 0

    def describe(self) -> str:
        return f"tensor {self.index} '{self.name}' ({TYPE_NAMES.get(self.type, self.type)}{list(self.shape)})"


@dataclass
class Operator:
    index: int
    type: str  # the BuiltinOperator name, e.g. CONV_2D, or CUSTOM(name)
    inputs: tuple[int, ...]  # tensor indices; -1 = an optional operand left out
    outputs: tuple[int, ...]
    options: dict = field(default_factory=dict)

    def describe(self) -> str:
        return f"operator {self.index} ({self.type})"


@dataclass
class Model:
    path: str
    version: int
    description: str
    tensors: list[Tensor]
    operators: list[Operator]
    inputs: list[int]
    outputs: list[int]


def _read_options(tfl, op, kind: str) -> dict:
    if kind not in _OPTIONS:
        return {}
    cls_name, fields = _OPTIONS[kind]
    table = op.BuiltinOptions()
    if table is None:  # absent options: the lifter uses the schema's defaults or says what is missing
        return {}
    opts = getattr(tfl, cls_name)()
    opts.Init(table.Bytes, table.Pos)
    out = {}
    for key, accessor in fields.items():
        if key in ("new_shape", "squeeze_dims"):
            n = getattr(opts, f"{accessor}Length")()
            out[key] = [int(getattr(opts, accessor)(j)) for j in range(n)] if n else None
        else:
            out[key] = getattr(opts, accessor)()
    if "padding" in out:
        out["padding"] = PADDING.get(out["padding"], f"padding {out['padding']}")
    if "activation" in out:
        out["activation"] = ACTIVATION.get(out["activation"], f"activation {out['activation']}")
    return out


def text(raw: bytes | None) -> str:
    """A name from the file as printable text: invalid UTF-8 and control characters become '?' (names end up in
    one-line error messages, the IR and C comments)."""
    s = (raw or b"").decode("utf-8", errors="replace")
    return "".join(c if c.isprintable() and c != "\ufffd" else "?" for c in s)


def _tensor(tfl, model, sg, i: int, data_of) -> Tensor:
    t = sg.Tensors(i)
    name = text(t.Name())
    shape = tuple(int(d) for d in t.ShapeAsNumpy()) if t.ShapeLength() else ()
    sig = tuple(int(d) for d in t.ShapeSignatureAsNumpy()) if t.ShapeSignatureLength() else None
    if any(d < 0 for d in shape):
        raise ModelFileError(f"tensor {i} '{name}' has a negative dimension in its shape {list(shape)}")
    scale = zp = None
    qdim = 0
    q = t.Quantization()
    if q is not None and q.ScaleLength():
        scale = np.asarray(q.ScaleAsNumpy(), np.float32).copy()
        zp = np.asarray(q.ZeroPointAsNumpy(), np.int64).copy() if q.ZeroPointLength() else \
            np.zeros(scale.size, np.int64)
        qdim = int(q.QuantizedDimension())
        if zp.size != scale.size:
            raise ModelFileError(f"tensor {i} '{name}' has {scale.size} quantization scales but {zp.size} zero "
                                 f"points; TFLite needs one zero point per scale")
    data = data_of(t.Buffer(), t.Type(), shape, i, name)
    return Tensor(i, name, shape, sig, t.Type(), data, scale, zp, qdim)


def parse(buf: bytes, path: str = "") -> Model:
    """The flatbuffer ``buf`` as a :class:`Model` (errors carry no path: :func:`read` adds it)."""
    import tflite as tfl
    from tflite.utils import BUILTIN_OPCODE2NAME

    model = tfl.Model.GetRootAsModel(buf, 0)
    n_sub = model.SubgraphsLength()
    if n_sub == 0:
        raise ModelFileError("the model has no subgraph")
    if n_sub > 1:
        raise UnsupportedModelError(f"the model has {n_sub} subgraphs (control flow: IF/WHILE/CALL_ONCE, or several "
                                    f"signatures); tte takes a single-subgraph model")
    sg = model.Subgraphs(0)
    n_buffers = model.BuffersLength()

    def data_of(b: int, ttype: int, shape, i: int, name: str) -> np.ndarray | None:
        if b == 0:
            return None
        if not 0 <= b < n_buffers:
            raise ModelFileError(f"tensor {i} '{name}' refers to buffer {b}; the model has {n_buffers}")
        buffer = model.Buffers(b)
        if buffer.Offset() > 1:  # large models keep data after the flatbuffer
            start, size = int(buffer.Offset()), int(buffer.Size())
            if start + size > len(buf):
                raise ModelFileError(f"buffer {b} of tensor {i} '{name}' lies beyond the end of the file")
            raw = bytes(buf[start:start + size])
        elif buffer.DataLength():
            raw = buffer.DataAsNumpy().tobytes()
        else:
            return None
        if ttype not in TENSOR_TYPES:
            return np.frombuffer(raw, np.uint8)  # stored but unusable: the lifter names the type
        dtype = np.dtype(TENSOR_TYPES[ttype]).newbyteorder("<")
        count = int(np.prod(shape, dtype=np.int64))
        if len(raw) != count * dtype.itemsize:
            raise ModelFileError(f"tensor {i} '{name}' {list(shape)} needs {count * dtype.itemsize} bytes of "
                                 f"{TYPE_NAMES[ttype]}, its buffer holds {len(raw)}")
        return np.frombuffer(raw, dtype).astype(dtype.newbyteorder("="), copy=True).reshape(shape)

    tensors = [_tensor(tfl, model, sg, i, data_of) for i in range(sg.TensorsLength())]
    n_t = len(tensors)

    def indices(vec, what: str, where: str) -> tuple[int, ...]:
        out = tuple(int(j) for j in vec) if not isinstance(vec, int) else ()
        for j in out:
            if not -1 <= j < n_t:
                raise ModelFileError(f"{where} names {what} tensor {j}; the model has {n_t} tensors")
        return out

    codes = []
    for k in range(model.OperatorCodesLength()):
        oc = model.OperatorCodes(k)
        code = max(int(oc.BuiltinCode()), int(oc.DeprecatedBuiltinCode()))
        name = BUILTIN_OPCODE2NAME.get(code, f"BUILTIN_{code}")
        if name == "CUSTOM":
            name = f"CUSTOM({text(oc.CustomCode())})"
        codes.append(name)
    operators = []
    for k in range(sg.OperatorsLength()):
        op = sg.Operators(k)
        if not 0 <= op.OpcodeIndex() < len(codes):
            raise ModelFileError(f"operator {k} has opcode index {op.OpcodeIndex()}; the model has {len(codes)}")
        kind = codes[op.OpcodeIndex()]
        where = f"operator {k} ({kind})"
        try:
            options = _read_options(tfl, op, kind)
        except UnsupportedModelError as e:
            raise UnsupportedModelError(f"{where}: {e}") from None
        operators.append(Operator(k, kind, indices(op.InputsAsNumpy(), "input", where),
                                  indices(op.OutputsAsNumpy(), "output", where), options))
    inputs = list(indices(sg.InputsAsNumpy(), "input", "the subgraph"))
    outputs = list(indices(sg.OutputsAsNumpy(), "output", "the subgraph"))
    description = text(model.Description())
    return Model(path, int(model.Version()), description, tensors, operators, inputs, outputs)


def read(path: str | os.PathLike) -> Model:
    """Read a ``.tflite`` file; one :class:`ModelFileError` / :class:`UnsupportedModelError` line on any problem."""
    p = Path(path)
    if not p.exists():
        raise ModelFileError(f"{p}: no such file")
    try:
        buf = p.read_bytes()
    except OSError as e:
        raise ModelFileError(f"{p}: cannot be read ({e.strerror or e})") from None
    if len(buf) < 8 or buf[4:8] != b"TFL3":
        raise ModelFileError(f"{p}: not a TFLite flatbuffer (no TFL3 file identifier)")
    try:
        return parse(buf, str(p))
    except (ModelFileError, UnsupportedModelError) as e:
        raise type(e)(f"{p}: {e}") from None
    except Exception as e:  # struct.error, IndexError, UnicodeDecodeError, ... from a damaged flatbuffer
        reason = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise ModelFileError(f"{p}: cannot be read as a TFLite flatbuffer ({type(e).__name__}: {reason}); the file "
                             f"is truncated or corrupt") from None
