"""Validate an ONNX model the way onnxruntime does, before lifting it: one clear line per problem.

``onnx.checker`` (in :func:`.reader.read_model`) checks the protobuf and every node against its schema.
onnxruntime refuses more when it builds a session or runs a model, and tte lifting such a model would
at best say something confusing and at worst compute with nonsense (a window that lies entirely in
the padding, a zero point of another type than its data).  :func:`check` refuses, in this order:

1. **the graph**: no output (onnxruntime: "At least one output should be requested"); a graph input
   or output whose element type is undefined (0) or unknown; an ``ai.onnx`` opset newer than onnx knows;
2. **tensors** (initializers, Constant values): an unknown or unsupported element type, a negative
   dimension, data whose length disagrees with the dims (onnxruntime's
   ``ValidateEmbeddedTensorProtoDataSizeAndShape``), more than :data:`MAX_TENSOR_BYTES`;
3. **attributes** of the ops tte lifts: windows (Conv, ConvInteger, QLinearConv, MaxPool, AveragePool,
   QLinearAveragePool) whose kernel_shape / strides / dilations / pads have the wrong length, a
   non-positive (or negative) value or a value over :data:`MAX_WINDOW`; an unknown ``auto_pad``, or
   ``auto_pad`` with explicit ``pads`` (onnxruntime refuses that for convolutions; the ONNX spec for
   every window op); a pool whose pads are not smaller than its kernel (onnxruntime: "Pad should be
   smaller than kernel"); ``group`` < 1; Gemm / QGemm ``transA`` / ``transB`` other than 0 or 1;
   QLinearConcat without ``axis``; blocked quantization;
4. whatever **ONNX type and shape inference** refuses in strict mode (onnxruntime runs it when it
   loads a model: type constraints such as a zero point of another type than its data, attribute
   ranks, incompatible shapes), with the com.microsoft ops' types and shapes worked out as
   onnxruntime's own schemas do (:mod:`.validate_schemas`); the model's own ``value_info`` shapes are
   left out, as onnxruntime only warns about those;
5. **schemas and quantization parameters**: an input of a type its ONNX schema does not take, a
   com.microsoft node with inputs, attributes or types its onnxruntime schema does not take; for Q/DQ,
   QLinear* and QGemm operands a scale that is not float or not a scalar / 1-d tensor, a zero point of
   another type than the data or of another shape than the scale, a per-axis scale whose length is not
   the axis' size, more than one scale / zero point for an activation (tte quantizes activations per
   tensor); convolution weights and biases whose shape disagrees with ``kernel_shape``, ``group`` or the
   output channels; a graph output declared of another type than its node makes;
6. **sizes**: every tensor whose static shape inference knows (:data:`MAX_ELEMENTS`).

:func:`check_graph` bounds the lifted IR, whose shapes ``--input-shape`` may have set after :func:`check`.
The bounds are tte's own: no budget flag can allow more, since the targets are 32-bit Cortex-M parts
(4 GiB of address space) and the C runtime indexes with ``int32_t``.

Invalid models raise :class:`ModelFileError`; valid ONNX beyond tte's bounds or features raises
:class:`UnsupportedModelError`.
"""

from __future__ import annotations

import math
import re

import onnx
from onnx import TensorProto, helper, shape_inference

from ..errors import ModelFileError, UnsupportedModelError
from .validate_schemas import (
    CONTRIB,
    Y_ZERO_POINT,
    contrib_schema,
    contrib_shape,
    contrib_types,
    node_attrs,
    onnx_types,
    type_name,
)

MAX_TENSOR_BYTES = 2**31  # one initializer (onnxruntime's limit for data inside the file, too)
MAX_ELEMENTS = 2**29  # one tensor: its float32 gradient is then at most 2 GiB, its indexes fit int32_t
MAX_TOTAL_BYTES = 2**32  # all tensors of the model together: the 32-bit address space
MAX_WINDOW = 2**16 - 1  # kernel sizes, strides, pads and dilations

# element types tte reads (numpy: float16/32/64, signed and unsigned 8..64-bit integers, bool)
READABLE = {TensorProto.FLOAT, TensorProto.FLOAT16, TensorProto.DOUBLE, TensorProto.INT8, TensorProto.UINT8,
            TensorProto.INT16, TensorProto.UINT16, TensorProto.INT32, TensorProto.UINT32, TensorProto.INT64,
            TensorProto.UINT64, TensorProto.BOOL}
KNOWN = set(TensorProto.DataType.values()) - {TensorProto.UNDEFINED}
FLOATS = {TensorProto.FLOAT, TensorProto.FLOAT16, TensorProto.BFLOAT16}
TYPED_FIELD = {TensorProto.FLOAT: "float_data", TensorProto.DOUBLE: "double_data", TensorProto.INT64: "int64_data",
               TensorProto.UINT32: "uint64_data", TensorProto.UINT64: "uint64_data",
               TensorProto.STRING: "string_data", TensorProto.COMPLEX64: "float_data",
               TensorProto.COMPLEX128: "double_data"}  # every other type: int32_data
# window ops -> index of the weight input (None: a pool)
WINDOWS = {"Conv": 1, "ConvInteger": 1, "QLinearConv": 3, "MaxPool": None, "AveragePool": None,
           "QLinearAveragePool": None}
AUTO_PAD = ("NOTSET", "SAME_UPPER", "SAME_LOWER", "VALID")


def describe(node: onnx.NodeProto) -> str:
    name = node.name or (node.output[0] if len(node.output) else "") or "?"
    return f"{node.op_type} node '{name}'"


def _ours(node: onnx.NodeProto) -> bool:
    """An ONNX op, or one of the com.microsoft ops tte lifts (their attributes are checked against a schema)."""
    return node.domain in ("", "ai.onnx") or (node.domain == "com.microsoft" and node.op_type in CONTRIB)


def _static(t: onnx.TypeProto.Tensor) -> bool:
    """A fully known shape (a negative dimension is how some exporters write a dynamic one)."""
    return t.HasField("shape") and all(d.HasField("dim_value") and d.dim_value >= 0 for d in t.shape.dim)


def _elements(dims) -> int:
    return math.prod(int(d) for d in dims)


class _Checker:
    def __init__(self, model: onnx.ModelProto, path: str):
        self.model, self.path = model, path
        self.graph = model.graph
        self.types: dict[str, int] = {}  # tensor -> element type, where known
        self.shapes: dict[str, tuple[int, ...]] = {}  # tensor -> static shape, where known
        self.consts: set[str] = set()  # initializers and Constant outputs

    def bad(self, msg: str, node: onnx.NodeProto | None = None) -> ModelFileError:
        where = f"{describe(node)}: " if node is not None else ""
        return ModelFileError(f"{self.path}: {where}{msg}")

    def unsupported(self, msg: str, node: onnx.NodeProto | None = None) -> UnsupportedModelError:
        where = f"{describe(node)}: " if node is not None else ""
        return UnsupportedModelError(f"{self.path}: {where}{msg}")

    def opt(self, node: onnx.NodeProto, i: int) -> str | None:
        return node.input[i] if len(node.input) > i and node.input[i] else None

    # -- 1. the graph ---------------------------------------------------------------------------
    def graph_io(self) -> None:
        newest = onnx.defs.onnx_opset_version()
        for o in self.model.opset_import:
            if o.domain in ("", "ai.onnx") and o.version > newest:
                raise self.bad(f"imports opset {o.version} of ai.onnx; the newest onnx knows is {newest}")
        if not self.graph.output:
            raise self.bad("the graph has no output (onnxruntime refuses it: 'At least one output should be "
                           "requested')")
        inits = {t.name for t in self.graph.initializer}
        for kind, values in (("input", self.graph.input), ("output", self.graph.output)):
            for v in values:
                if kind == "input" and v.name in inits:
                    continue
                if not v.type.HasField("tensor_type"):
                    raise self.unsupported(f"graph {kind} '{v.name}' is not a tensor")
                t = v.type.tensor_type.elem_type
                if t not in KNOWN:
                    raise self.bad(f"graph {kind} '{v.name}' has an {'undefined' if t == 0 else 'unknown'} "
                                   f"element type ({t})")
                self.types.setdefault(v.name, t)
                dims = v.type.tensor_type.shape.dim
                if (kind == "input" and v.type.tensor_type.HasField("shape")
                        and all(d.HasField("dim_value") and d.dim_value > 0 for d in dims)):
                    self.shapes[v.name] = tuple(d.dim_value for d in dims)

    def names(self) -> None:
        """Every name tte keeps or prints is text (protobuf hands over invalid UTF-8 as bytes)."""
        g = self.graph
        values = [*g.input, *g.output, *g.value_info, *g.initializer]
        texts = [("graph name", g.name), ("producer name", self.model.producer_name)]
        texts += [("tensor name", v.name) for v in values]
        for i, node in enumerate(g.node):
            texts += [(f"node {i}'s name", s) for s in (node.name, node.op_type, node.domain, *node.input,
                                                      *node.output, *(a.name for a in node.attribute))]
        for what, text in texts:
            if not isinstance(text, str):
                raise self.bad(f"{what} {text!r} is not valid UTF-8 text")

    # -- 2. tensors -----------------------------------------------------------------------------
    def tensors(self) -> None:
        total = 0
        for t in self.graph.initializer:
            total += self.tensor(t, f"initializer '{t.name}'", t.name)
        for node in self.graph.node:
            for a in node.attribute:
                if a.type == onnx.AttributeProto.TENSOR:
                    out = node.output[0] if node.op_type == "Constant" and node.output else None
                    total += self.tensor(a.t, f"{describe(node)}: attribute '{a.name}'", out)
        if total > MAX_TOTAL_BYTES:
            raise self.unsupported(f"the initializers hold {total:,} bytes; tte takes models of at most "
                                   f"{MAX_TOTAL_BYTES:,} bytes (the 32-bit address space)")

    def tensor(self, t: onnx.TensorProto, what: str, name: str | None) -> int:
        """Check one TensorProto; record its type and shape under ``name``; return its size in bytes."""
        if t.data_type not in KNOWN:
            raise self.bad(f"{what} has an {'undefined' if t.data_type == 0 else 'unknown'} element type "
                           f"({t.data_type})")
        if t.data_type not in READABLE:
            raise self.unsupported(f"{what} is {type_name(t.data_type)}; tte reads tensors of "
                                   f"{', '.join(sorted(type_name(x) for x in READABLE))}")
        if t.data_location == TensorProto.EXTERNAL and not t.HasField("raw_data"):
            raise self.bad(f"{what} keeps its data in an external file that was not loaded")
        if any(d < 0 for d in t.dims):
            raise self.bad(f"{what} has a negative dimension: {list(t.dims)}")
        count = _elements(t.dims)
        size = helper.tensor_dtype_to_np_dtype(t.data_type).itemsize
        if count * size > MAX_TENSOR_BYTES:
            raise self.unsupported(f"{what} of shape {list(t.dims)} holds {count * size:,} bytes; tte takes "
                                   f"tensors of at most {MAX_TENSOR_BYTES:,} bytes")
        if t.HasField("raw_data"):
            if len(t.raw_data) != count * size:
                raise self.bad(f"{what} has {len(t.raw_data)} bytes of data, but its shape {list(t.dims)} of "
                               f"{type_name(t.data_type)} needs {count * size} (onnxruntime refuses it too)")
        else:
            held = len(getattr(t, TYPED_FIELD.get(t.data_type, "int32_data")))
            if held != count:
                raise self.bad(f"{what} has {held} values, but its shape {list(t.dims)} needs {count}")
        if name:
            self.consts.add(name)
            self.types[name] = t.data_type
            self.shapes[name] = tuple(int(d) for d in t.dims)
        return count * size

    def through_constants(self) -> None:
        """Shapes and types of what DequantizeLinear / Identity make of a constant (known before inference)."""
        for node in self.graph.node:
            if node.op_type in ("DequantizeLinear", "Identity") and node.input and node.output \
                    and node.input[0] in self.shapes:
                self.shapes.setdefault(node.output[0], self.shapes[node.input[0]])

    # -- 3. attributes --------------------------------------------------------------------------
    def attributes(self) -> None:
        for node in self.graph.node:
            if not _ours(node):
                continue  # the lifter refuses it by name
            if node.domain == "com.microsoft":
                contrib_schema(self, node)
            a = node_attrs(node)
            if node.op_type in WINDOWS:
                self.window(node, a)
                self.window_shapes(node, a)
            if node.op_type in ("Gemm", "QGemm"):
                for k in ("transA", "transB"):
                    if a.get(k, 0) not in (0, 1):
                        raise self.bad(f"{k}={a[k]}; it must be 0 or 1", node)
            if node.op_type == "QLinearConcat":
                if "axis" not in a:
                    raise self.bad("has no 'axis' attribute (required)", node)
                if len(node.input) < 5 or (len(node.input) - 2) % 3:
                    raise self.bad(f"has {len(node.input)} inputs; QLinearConcat takes Y_scale, Y_zero_point "
                                   f"and one or more (X, X_scale, X_zero_point) triples", node)
            if node.op_type in ("QuantizeLinear", "DequantizeLinear") and a.get("block_size", 0):
                raise self.unsupported(f"uses blocked quantization (block_size={a['block_size']}); tte takes "
                                       f"per-tensor and per-axis quantization", node)

    def window(self, node: onnx.NodeProto, a: dict) -> None:
        kernel = a.get("kernel_shape")
        if kernel is None and WINDOWS[node.op_type] is None:
            raise self.bad("has no 'kernel_shape' attribute (required)", node)
        lists = {k: list(a[k]) for k in ("kernel_shape", "strides", "dilations", "pads") if k in a}
        ranks = {k: len(v) // 2 if k == "pads" else len(v) for k, v in lists.items()}
        if len(set(ranks.values())) > 1 or ("pads" in lists and len(lists["pads"]) % 2):
            raise self.bad("window attributes disagree in length: " + ", ".join(f"{k} {v}" for k, v in lists.items()),
                           node)
        if 0 in ranks.values():
            raise self.bad(f"{next(iter(lists))} is empty", node)
        for key, values in lists.items():
            low = 0 if key == "pads" else 1
            if any(v < low for v in values):
                raise self.bad(f"{key} {values} must be {'non-negative' if low == 0 else 'positive'}", node)
            if any(v > MAX_WINDOW for v in values):
                raise self.unsupported(f"{key} {values} is over tte's bound of {MAX_WINDOW}", node)
        auto_pad = a.get("auto_pad", "NOTSET") or "NOTSET"
        if auto_pad not in AUTO_PAD:
            raise self.bad(f"auto_pad '{auto_pad}' is not one of {', '.join(AUTO_PAD)}", node)
        pads = lists.get("pads", [])
        if auto_pad != "NOTSET" and "pads" in a and (WINDOWS[node.op_type] is not None or any(pads)):
            raise self.bad(f"has both auto_pad={auto_pad} and explicit pads {pads}; ONNX allows one or the other"
                           + (" (onnxruntime refuses a convolution with both)" if WINDOWS[node.op_type] else ""), node)
        if "group" in a and a["group"] < 1:
            raise self.bad(f"group={a['group']}; it must be positive", node)
        if WINDOWS[node.op_type] is None and pads:
            r = len(kernel)
            if any(pads[i] >= kernel[i] or pads[i + r] >= kernel[i] for i in range(r)):
                raise self.bad(f"pads {pads} are not all smaller than the kernel {list(kernel)}: a window could "
                               f"lie entirely in the padding (onnxruntime refuses it: 'Pad should be smaller "
                               f"than kernel')", node)

    # -- 4. ONNX type and shape inference, strict -----------------------------------------------
    def infer(self) -> None:
        """ONNX's strict inference.  ONNX has no schema for the com.microsoft ops: their output types and
        shapes are worked out as onnxruntime's schemas do (:func:`.validate_schemas.contrib_shape`) and
        inference runs again from them, until nothing new is learned."""
        m = onnx.ModelProto()
        m.CopyFrom(self.model)
        stated = {vi.name: vi.type.tensor_type.elem_type for vi in m.graph.value_info}
        for vi in list(m.graph.value_info) + list(m.graph.output):
            vi.type.tensor_type.ClearField("shape")  # onnxruntime only warns about stated shapes; types count
        contrib = [n for n in m.graph.node if n.domain == "com.microsoft" and n.op_type in CONTRIB and n.output]
        declared: dict[str, tuple | None] = {}  # contrib outputs given to inference: name -> shape (None: type only)
        for _ in range(2 * len(contrib) + 1):
            try:
                inferred = shape_inference.infer_shapes(m, check_type=True, strict_mode=True)
            except Exception as e:  # noqa: BLE001 - onnx raises several classes, all meaning "invalid"
                self.explain(m)
                raise self.bad(_inference_message(str(e))) from None
            for vi in list(inferred.graph.value_info) + list(inferred.graph.output):
                t = vi.type.tensor_type
                if t.elem_type:
                    self.types.setdefault(vi.name, t.elem_type)
                if _static(t):
                    self.shapes.setdefault(vi.name, tuple(d.dim_value for d in t.shape.dim))
            learned = False
            for node in contrib:
                out = node.output[0]
                y_zp = self.opt(node, Y_ZERO_POINT[node.op_type])
                self.types.setdefault(out, self.types.get(y_zp, TensorProto.UINT8) if y_zp else
                                      (TensorProto.FLOAT if node.op_type == "QGemm" else TensorProto.UINT8))
                shape = self.shapes.get(out) or contrib_shape(self, node)
                if shape is not None:
                    self.shapes[out] = shape
                if out in declared and (declared[out] is not None or shape is None):
                    continue
                if stated.get(out, 0) not in (0, self.types[out]):
                    raise self.bad(f"makes {type_name(self.types[out])}, but the model's value_info states "
                                   f"{type_name(stated[out])} for '{out}'", node)
                for vi in [vi for vi in m.graph.value_info if vi.name == out]:
                    m.graph.value_info.remove(vi)
                m.graph.value_info.append(helper.make_tensor_value_info(out, self.types[out], shape))
                declared[out], learned = shape, True
            if not learned:
                return

    def explain(self, m: onnx.ModelProto) -> None:
        """Inference failed: raise a clearer error if a window op before the failing node is at fault."""
        try:
            inferred = shape_inference.infer_shapes(m)
        except Exception:  # noqa: BLE001
            return
        for vi in inferred.graph.value_info:
            t = vi.type.tensor_type
            if _static(t):
                self.shapes.setdefault(vi.name, tuple(d.dim_value for d in t.shape.dim))
        for node in self.graph.node:
            if node.op_type in WINDOWS and _ours(node):
                self.window_shapes(node, node_attrs(node))
            for out in node.output:
                if out in self.shapes:
                    check_elements(self.path, out, self.shapes[out])

    # -- 5. quantization parameters -------------------------------------------------------------
    def quantization(self) -> None:
        declared: dict[str, list[int]] = {}
        for o in self.graph.output:
            declared.setdefault(o.name, []).append(o.type.tensor_type.elem_type)
        for node in self.graph.node:
            op = node.op_type
            made = _made_type(self, node)  # ONNX inference does not check this downstream of com.microsoft ops
            wrong = [t for t in declared.get(node.output[0], []) if t != made] if made and node.output else []
            if wrong:
                raise self.bad(f"makes {type_name(made)}, but the graph output '{node.output[0]}' is declared "
                               f"{type_name(wrong[0])}", node)
            onnx_types(self, node, _opset(self.model))
            if node.domain == "com.microsoft" and op in CONTRIB:
                contrib_types(self, node)
            for data, scale, zp, role in _operands(node):
                self.operand(node, data, scale, zp, role)
            if op in WINDOWS and _ours(node):
                self.window_shapes(node, node_attrs(node))

    def operand(self, node, data: str, scale: str | None, zp: str | None, role: str) -> None:
        """One quantized operand; ``role``: "act" (one scale), "weight" (one or one per output channel) or
        "qdq" (a Q/DQ operand: per axis for constants)."""
        if not scale:
            return
        st = self.types.get(scale)
        if st is not None and st not in FLOATS:
            raise self.bad(f"scale '{scale}' is {type_name(st)}; scales are float", node)
        dt, zt = self.types.get(data), self.types.get(zp) if zp else None
        if dt is not None and zt is not None and dt != zt:
            raise self.bad(f"zero point '{zp}' is {type_name(zt)} but '{data}' is {type_name(dt)}; they must "
                           f"be of one type", node)
        s_shape, z_shape = self.shapes.get(scale), self.shapes.get(zp) if zp else None
        for name, shape in ((scale, s_shape), (zp, z_shape)):
            if shape is not None and len(shape) > 1:
                raise self.bad(f"'{name}' has shape {list(shape)}; a scale or zero point is a scalar or 1-d", node)
        if s_shape is None:
            return
        n = _elements(s_shape)
        if z_shape is not None and _elements(z_shape) != n:
            raise self.bad(f"scale '{scale}' has shape {list(s_shape)} but zero point '{zp}' has shape "
                           f"{list(z_shape)}; they must have one shape", node)
        if n == 1:
            return
        shape = self.shapes.get(data)
        if role == "act" or (role == "qdq" and data not in self.consts):
            fail = self.bad if role == "act" else self.unsupported
            raise fail(f"activation '{data}' has {n} scales / zero points ('{scale}'{', ' + repr(zp) if zp else ''}); "
                       f"activations take one scale and one zero point", node)
        if role == "qdq" and shape is not None:
            axis = node_attrs(node).get("axis", 1)
            if not isinstance(axis, int) or not -len(shape) <= axis < len(shape):
                if isinstance(axis, int) and len(shape) == 1 and shape[0] == n and data in self.consts:
                    return  # onnxruntime runs it (a 1-d bias with a weight's axis); the lifter reads it as axis 0
                raise self.bad(f"axis {axis} is out of range for '{data}' of shape {list(shape)}", node)
            if shape[axis] != n:
                raise self.bad(f"scale '{scale}' has {n} entries but axis {axis} of '{data}' has {shape[axis]}",
                               node)
        if role == "weight" and shape is not None and len(shape) >= 2:
            trans_b = node_attrs(node).get("transB", 0)
            channels = shape[0] if node.op_type == "QLinearConv" or trans_b else shape[-1]
            if n != channels:
                raise self.bad(f"scale '{scale}' of weight '{data}' has {n} entries for {channels} output "
                               f"channels; one, or one per channel, expected", node)

    def window_shapes(self, node: onnx.NodeProto, a: dict) -> None:
        """A window op's attributes against the shapes known so far: its input, weight and bias."""
        x = self.shapes.get(node.input[0]) if node.input else None
        kernel = a.get("kernel_shape")
        if x is not None and kernel is not None and len(kernel) != len(x) - 2:
            raise self.bad(f"kernel_shape {list(kernel)} does not fit the input '{node.input[0]}' of shape "
                           f"{list(x)}", node)
        wi = WINDOWS[node.op_type]
        w = self.shapes.get(self.opt(node, wi) or "") if wi is not None else None
        span = kernel if kernel is not None else (w[2:] if w is not None else None)
        if x is not None and span is not None and len(span) == len(x) - 2 and (a.get("auto_pad") or "NOTSET") in (
                "NOTSET", "VALID"):
            r = len(span)
            pads = list(a.get("pads", [0] * 2 * r)) if a.get("auto_pad", "NOTSET") in ("NOTSET", "") else [0] * 2 * r
            dil = list(a.get("dilations", [1] * r))
            if len(pads) == 2 * r and len(dil) == r and any(
                    x[i + 2] + pads[i] + pads[i + r] < (span[i] - 1) * dil[i] + 1 for i in range(r)):
                padded = "x".join(str(x[i + 2] + pads[i] + pads[i + r]) for i in range(r))
                raise self.bad(f"the {'x'.join(map(str, span))} window does not fit the padded {padded} input "
                               f"'{node.input[0]}'", node)
        if w is None:
            return
        if len(w) < 3:
            raise self.bad(f"weight '{node.input[wi]}' has shape {list(w)}; a convolution weight is [M, C/group, "
                           f"k...]", node)
        if kernel is not None and list(kernel) != list(w[2:]):
            raise self.bad(f"kernel_shape {list(kernel)} does not match the weight '{node.input[wi]}' of shape "
                           f"{list(w)} (onnxruntime refuses it too)", node)
        group = a.get("group", 1)
        if w[0] % group:
            raise self.bad(f"group={group} does not divide the {w[0]} output channels of the weight "
                           f"'{node.input[wi]}' of shape {list(w)}", node)
        if x is not None and len(x) > 1 and x[1] != w[1] * group:
            raise self.bad(f"group={group} and the weight '{node.input[wi]}' of shape {list(w)} take {w[1] * group} "
                           f"input channels; the input '{node.input[0]}' has {x[1]}", node)
        bias = self.opt(node, {"Conv": 2, "QLinearConv": 8}.get(node.op_type, 99))
        b = self.shapes.get(bias or "")
        if b is not None and list(b) != [w[0]]:
            raise self.bad(f"bias '{bias}' has shape {list(b)}; a convolution with {w[0]} output channels takes "
                           f"[{w[0]}]", node)

    # -- 6. sizes -------------------------------------------------------------------------------
    def sizes(self) -> None:
        for name, shape in self.shapes.items():
            if name not in self.consts:
                check_elements(self.path, name, shape)


def _operands(node: onnx.NodeProto):
    """(data, scale, zero point, role) of every quantized operand of a node."""
    op, ins = node.op_type, list(node.input) + [""] * 9
    out = node.output[0] if len(node.output) else ""
    if node.domain not in ("", "ai.onnx", "com.microsoft"):
        return []
    if op == "DequantizeLinear":
        return [(ins[0], ins[1], ins[2], "qdq")]
    if op == "QuantizeLinear":
        return [(out, ins[1], ins[2], "qdq")]
    if op in ("QLinearConv", "QLinearMatMul", "QGemm"):
        w = ins[3]
        return [(ins[0], ins[1], ins[2], "act"), (w, ins[4], ins[5], "weight"),
                (out, ins[7] if op == "QGemm" else ins[6], ins[8] if op == "QGemm" else ins[7], "act")]
    if op in ("QLinearAdd", "QLinearMul"):
        return [(ins[0], ins[1], ins[2], "act"), (ins[3], ins[4], ins[5], "act"), (out, ins[6], ins[7], "act")]
    if op in ("QLinearAveragePool", "QLinearGlobalAveragePool", "QLinearSigmoid", "QLinearLeakyRelu"):
        return [(ins[0], ins[1], ins[2], "act"), (out, ins[3], ins[4], "act")]
    if op == "QLinearConcat":
        n = len(node.input)
        return [(out, ins[0], ins[1], "act")] + [(ins[i], ins[i + 1], ins[i + 2], "act") for i in range(2, n - 2, 3)]
    return []


def _made_type(c: _Checker, node: onnx.NodeProto) -> int | None:
    """The element type a Q/DQ or com.microsoft node makes, where its inputs say."""
    ins = list(node.input) + [""] * 9
    if node.op_type == "DequantizeLinear":
        return c.types.get(ins[1]) if c.model.opset_import and _opset(c.model) >= 19 else TensorProto.FLOAT
    if node.op_type == "QuantizeLinear" and "output_dtype" not in node_attrs(node):
        return c.types.get(ins[2]) if ins[2] else TensorProto.UINT8
    if node.domain == "com.microsoft" and node.op_type in CONTRIB and node.output:
        return c.types.get(node.output[0])
    return None


def _opset(model: onnx.ModelProto) -> int:
    return next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), 0)


def _inference_message(text: str) -> str:
    text = " ".join(text.split())
    m = re.search(r"\(op_type:([^,]+), node name: ([^)]*)\):\s*(?:\[\w+\]\s*)?(.*?)(?=\(op_type:|$)", text)
    if m:
        op, name, what = m.groups()
        return f"{op} node '{name}': {what.strip()} (ONNX shape inference, which onnxruntime runs on load)"
    text = re.sub(r"^\[\w+\]\s*", "", text)
    return f"invalid model: {text[:300]} (ONNX shape inference, which onnxruntime runs on load)"


def check_elements(path: str, name: str, shape) -> int:
    """Raise :class:`UnsupportedModelError` if a tensor of ``shape`` is over :data:`MAX_ELEMENTS`."""
    if any(int(d) < 0 for d in shape):
        raise ModelFileError(f"{path}: tensor '{name}' has a negative dimension: {list(shape)}")
    n = _elements(shape)
    if n > MAX_ELEMENTS:
        raise UnsupportedModelError(f"{path}: tensor '{name}' of shape {list(shape)} has {n:,} elements; tte takes "
                                    f"tensors of at most {MAX_ELEMENTS:,} elements (2 GiB as float32)")
    return n


def check(model: onnx.ModelProto, path: str) -> None:
    """Raise :class:`tte.errors.ModelFileError` / :class:`UnsupportedModelError` for what onnxruntime rejects."""
    c = _Checker(model, path)
    c.names()
    c.graph_io()
    c.tensors()
    c.through_constants()
    c.attributes()
    c.infer()
    c.quantization()
    c.sizes()


def check_graph(g, path: str) -> None:
    """Bound the lifted IR graph: every tensor within :data:`MAX_ELEMENTS`, all within :data:`MAX_TOTAL_BYTES`."""
    total = 0
    for v in g.values.values():
        n = check_elements(path, v.name, v.shape)
        total += n * (4 if v.dtype in ("float32", "int32") else 8 if v.dtype in ("int64", "float64") else 1)
    if total > MAX_TOTAL_BYTES:
        raise UnsupportedModelError(f"{path}: the model's tensors take {total:,} bytes together; tte takes models "
                                    f"of at most {MAX_TOTAL_BYTES:,} bytes (the 32-bit address space)")
