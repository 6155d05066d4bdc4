"""TFLite (int8 ``.tflite`` flatbuffers) -> tte IR.

The file is read by :mod:`.tflite_reader` (the ``tflite`` package's schema classes, no TensorFlow);
the operators are lifted one by one by the handlers in :mod:`.tflite_ops`.  The graph comes out in
the canonical form the rest of tte expects:

    float32 input, the model's declared NHWC shape
      -> quantize (the int8 input tensor's own scale and zero point)
      -> transpose (0, 3, 1, 2) to NCHW (a reshape view when C == 1 or H == W == 1: no copy)
      -> ... int8 NCHW ops ...
      -> int8 logits -> dequantize -> float32 graph output

NHWC is dealt with here, at load: every 4-d activation is held as NCHW; weights are turned to OIHW
(depthwise [1, KH, KW, C*M] -> [C*M, 1, KH, KW], groups = C); a flatten of an NHWC tensor with H*W > 1
in front of FULLY_CONNECTED keeps tte's CHW order and permutes the weight's input columns instead
(exact); SAME / VALID padding become explicit pads by TFLite's formula.  Every rewrite or choice made
on the way is recorded as a note (``tte inspect`` lists them); every problem is one line naming the
operator (index and type) and the tensor.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

import numpy as np

from ..errors import DynamicShapeError, IRError, UnsupportedModelError
from ..ir import Graph, Node, QuantParams, Value, output_shape
from ..ir.facts import add_note, set_arithmetic
from . import tflite_reader as tr
from .tflite_ops import Act, Dropped, Entry, FloatInput, OperatorHandlers, Padded, Real, round_away
from .validate import check_graph

# the permutations between the two layouts
TO_NCHW = (0, 3, 1, 2)
TO_NHWC = (0, 2, 3, 1)


class Lifter(OperatorHandlers):
    """A TFLite subgraph -> tte IR (handlers ``op_<OPERATOR>`` in :class:`OperatorHandlers`)."""

    def __init__(self, model: tr.Model, input_shape) -> None:
        self.m = model
        self.path = model.path
        self.g = Graph(os.path.splitext(os.path.basename(model.path))[0] or "model")
        self.env: dict[int, Entry] = {}
        self.notes: list[str] = []
        self.input_shape = input_shape
        self.node_names: set[str] = set()
        self.consumers: dict[int, list[tr.Operator]] = {}
        for op in model.operators:
            for i in op.inputs:
                self.consumers.setdefault(i, []).append(op)
        self.bias_dims: list[str] = []  # biases whose quantized_dimension was out of range
        self.permuted_fc: list[str] = []
        self.clamp_ops: dict[str, tr.Operator] = {}  # requantize node -> the standalone RELU it came from

    # -- helpers ------------------------------------------------------------------------------
    def fail(self, op: tr.Operator | None, msg: str) -> UnsupportedModelError:
        where = f"{op.describe()}: " if op is not None else ""
        return UnsupportedModelError(f"{self.path}: {where}{msg}")

    def tensor(self, op: tr.Operator, k: int, what: str = "input") -> tr.Tensor:
        idx = (op.inputs if what == "input" else op.outputs)
        if k >= len(idx) or idx[k] < 0:
            raise self.fail(op, f"{what} {k} is missing")
        return self.m.tensors[idx[k]]

    def value_name(self, t: tr.Tensor, suffix: str = "") -> str:
        return self.g.unique_name((t.name or f"tensor_{t.index}") + suffix)

    def node_name(self, op: tr.Operator, suffix: str = "") -> str:
        pseudo = op.type in ("INPUT", "OUTPUT")  # the graph's boundaries, not operators of the file
        base = f"{op.type.lower()}{'' if pseudo else f'_{op.index}'}{suffix}"
        name, i = base, 1
        while name in self.node_names:
            name, i = f"{base}.{i}", i + 1
        self.node_names.add(name)
        return name

    def emit(self, op: tr.Operator, kind: str, inputs: list[str], out: str, quant: QuantParams | None,
             dtype: str = "int8", suffix: str = "", **attrs) -> str:
        """Append an IR node; its output shape comes from the op's own shape rule."""
        probe = Node(kind, "probe", inputs, [], attrs)
        try:
            shape = output_shape(self.g, probe)
        except (ValueError, IndexError, ZeroDivisionError) as e:
            raise self.fail(op, str(e)) from None
        value = Value(self.g.unique_name(out), dtype, shape, quant)
        self.g.add_node(kind, self.node_name(op, suffix), inputs, [value], **attrs)
        return value.name

    def act_quant(self, op: tr.Operator | None, t: tr.Tensor) -> QuantParams:
        """Per-tensor int8 parameters of an activation tensor."""
        if t.type != 9:
            raise self.fail(op, f"{t.describe()} is {t.dtype}; tte takes int8 activations: convert with full-integer "
                                f"quantization (inference_input_type and inference_output_type tf.int8)")
        if not t.quantized:
            raise self.fail(op, f"{t.describe()} has no quantization parameters")
        if t.scale.size != 1:
            raise self.fail(op, f"{t.describe()} is quantized per channel; tte takes per-tensor activations")
        scale, zp = float(t.scale[0]), int(t.zero_point[0])
        if not (np.isfinite(scale) and scale > 0) or not -128 <= zp <= 127:
            raise self.fail(op, f"{t.describe()} has scale {scale} and zero point {zp}; expected a positive scale "
                                f"and an int8 zero point")
        return QuantParams.per_tensor(scale, zp)

    def clamp(self, op: tr.Operator, q: QuantParams, activation: str = "NONE") -> dict:
        """The int8 clamp of a fused activation, as TFLite computes it (CalculateActivationRangeQuantized:
        ``z + round(f / s)`` in float32, rounded half away from zero)."""
        z, s = int(q.zero_point), np.float32(q.scale)

        def quantize(f: float) -> int:
            return z + round_away(np.float32(f) / s)

        ranges = {"NONE": (None, None), "RELU": (0.0, None), "RELU6": (0.0, 6.0), "RELU_N1_TO_1": (-1.0, 1.0)}
        if activation not in ranges:
            raise self.fail(op, f"fused activation {activation} is not supported (tte takes NONE, RELU, RELU6, "
                                f"RELU_N1_TO_1)")
        lo, hi = ranges[activation]
        qmin = -128 if lo is None else max(-128, quantize(lo))
        qmax = 127 if hi is None else min(127, quantize(hi))
        return {"qmin": qmin, "qmax": qmax}

    def act(self, op: tr.Operator, k: int = 0) -> Act:
        """Operand ``k`` of ``op`` as an int8 activation."""
        t = self.tensor(op, k)
        e = self.env.get(t.index)
        if isinstance(e, Act):
            return e
        if e is None and t.data is not None:
            raise self.fail(op, f"input {k}, {t.describe()}, is a constant; tte takes activations there")
        if e is None:
            raise self.fail(op, f"input {k}, {t.describe()}, is not produced by any earlier operator")
        what = {Padded: f"the output of PAD (operator {getattr(e, 'op', '?')}), which tte folds only into the "
                        f"CONV_2D, DEPTHWISE_CONV_2D or AVERAGE_POOL_2D that reads it",
                FloatInput: "the float graph input; tte needs a QUANTIZE first (a full-integer model)",
                Real: "a float tensor (the output of DEQUANTIZE); tte takes int8 models, DEQUANTIZE only at the end",
                Dropped: "the output of a SOFTMAX; tte takes SOFTMAX only at the end of the model"}[type(e)]
        raise self.fail(op, f"input {k}, {t.describe()}, is {what}")

    def tfl_shape(self, a: Act) -> tuple[int, ...]:
        """The TFLite (NHWC) shape of an activation."""
        s = self.g[a.name].shape
        return (s[0], s[2], s[3], s[1]) if a.layout == "nchw" else s

    def set_output(self, op: tr.Operator, name: str, layout: str = "plain", k: int = 0, hwc=()) -> Act:
        e = Act(name, layout, tuple(hwc))
        self.env[op.outputs[k]] = e
        return e

    def out(self, op: tr.Operator, k: int = 0) -> tuple[tr.Tensor, QuantParams]:
        t = self.tensor(op, k, "output")
        return t, self.act_quant(op, t)

    # -- layout changes -----------------------------------------------------------------------
    def to_nchw(self, op: tr.Operator, name: str, out: str) -> Act:
        """An int8 NHWC value as NCHW: a reshape view when C == 1 or H * W == 1, else a transpose."""
        n, h, w, c = self.g[name].shape
        q = self.g[name].quant
        if c == 1 or h * w == 1:
            if (h, w) == (1, 1) and c == 1:
                return Act(name, "nchw")
            return Act(self.emit(op, "reshape", [name], out, q, suffix=".nchw", shape=(n, c, h, w)), "nchw")
        return Act(self.emit(op, "transpose", [name], out, q, suffix=".nchw", perm=TO_NCHW), "nchw")

    def flat(self, op: tr.Operator, a: Act) -> str:
        """An IR value whose row-major order is the TFLite tensor's (NHWC) order."""
        if a.layout == "plain":
            return a.name
        if a.layout == "chw":
            raise self.fail(op, f"'{a.name}' is a flattened NHWC tensor in tte's CHW order; only FULLY_CONNECTED "
                                f"may read it")
        n, c, h, w = self.g[a.name].shape
        if c == 1 or h * w == 1:
            return a.name
        return self.emit(op, "transpose", [a.name], f"{a.name}.nhwc", self.g[a.name].quant, suffix=".nhwc",
                         perm=TO_NHWC)

    def reshape_to(self, op: tr.Operator, a: Act, shape: tuple[int, ...], out_name: str) -> Act:
        """``a`` reshaped to the TFLite shape ``shape`` (row-major, as TFLite's RESHAPE)."""
        q = self.g[a.name].quant
        if tuple(self.tfl_shape(a)) == tuple(shape) and a.layout != "chw":
            return a
        src = self.flat(op, a)
        if len(shape) == 4:
            n, h, w, c = shape
            if c == 1 or h * w == 1:
                target = (n, c, h, w)
                if self.g[src].shape == target:
                    return Act(src, "nchw")
                return Act(self.emit(op, "reshape", [src], out_name, q, shape=target), "nchw")
            nhwc = self.emit(op, "reshape", [src], f"{out_name}.nhwc", q, suffix=".nhwc", shape=tuple(shape))
            return Act(self.emit(op, "transpose", [nhwc], out_name, q, perm=TO_NCHW), "nchw")
        if self.g[src].shape == tuple(shape):
            return Act(src, "plain")
        return Act(self.emit(op, "reshape", [src], out_name, q, shape=tuple(shape)), "plain")

    # -- the walk -----------------------------------------------------------------------------
    def lift(self) -> Graph:
        self.lift_input()
        for op in self.m.operators:
            handler = getattr(self, f"op_{op.type}", None)
            if handler is None:
                raise self.fail(op, f"{op.type} is not supported; tte takes {', '.join(SUPPORTED_OPS)}: "
                                    f"convert the model without it (or move it to pre- or post-processing outside the "
                                    f"model)")
            handler(op)
        self.lift_output()
        self.fold_clamps()
        self.g.remove_unused_values()
        if self.input_shape is None:
            self.cross_check_shapes()
        return self.g

    def lift_input(self) -> None:
        if len(self.m.inputs) != 1:
            raise UnsupportedModelError(f"{self.path}: the model has {len(self.m.inputs)} inputs; tte takes a "
                                        f"single-input model")
        t = self.m.tensors[self.m.inputs[0]]
        shape = self.fixed_input_shape(t)
        name = t.name or f"tensor_{t.index}"
        self.g.add_input(Value(name, "float32", shape))
        if t.type == 9:  # int8: the float API quantizes with the tensor's own parameters
            q = self.act_quant(None, t)
            op = tr.Operator(-1, "INPUT", (), (t.index,))
            qname = self.emit(op, "quantize", [name], f"{name}.quantized", q, suffix=".quantize")
            self.env[t.index] = self.to_nchw(op, qname, f"{name}.nchw") if len(shape) == 4 else Act(qname)
        elif t.type == 0:
            self.env[t.index] = FloatInput(name)
        elif t.type == 3 and t.quantized and t.scale.size == 1:
            self.env[t.index] = FloatInput(name, (float(t.scale[0]), int(t.zero_point[0])))
        else:
            raise UnsupportedModelError(f"{self.path}: the input, {t.describe()}, is {t.dtype}; tte takes int8 (or "
                                        f"float32 / uint8 followed by QUANTIZE) inputs")

    def fixed_input_shape(self, t: tr.Tensor) -> tuple[int, ...]:
        declared = t.signature if t.signature is not None else t.shape
        name = t.name or f"tensor_{t.index}"
        if self.input_shape is not None:
            want = self.input_shape
            if isinstance(want, Mapping):
                if set(want) - {name}:
                    raise DynamicShapeError(f"{self.path}: --input-shape names unknown input(s) "
                                            f"{sorted(set(want) - {name})}; the model's input is '{name}'")
                want = want.get(name)
        else:
            want = None
        if want is not None:
            want = tuple(int(d) for d in want)
            if len(want) != len(declared) or min(want, default=1) < 1:
                raise DynamicShapeError(f"{self.path}: --input-shape {list(want)} for '{name}' must be "
                                        f"{len(declared)} positive sizes (NHWC as the model declares, {list(t.shape)})")
            for axis, (d, w) in enumerate(zip(declared, want)):
                if d > 0 and d != w:
                    raise DynamicShapeError(f"{self.path}: --input-shape gives {w} for axis {axis} of '{name}', the "
                                            f"model fixes it to {d}")
            return want
        dynamic = [i for i, d in enumerate(declared) if d < 0]
        if any(i != 0 for i in dynamic):
            hint = ",".join("1" if i == 0 and d < 0 else (f"D{i}" if d < 0 else str(d)) for i, d in enumerate(declared))
            raise DynamicShapeError(f"{self.path}: input '{name}' has dynamic dimensions {list(declared)}; fix them "
                                    f"with --input-shape {name}={hint} (Python: tte.load(path, input_shape=...))")
        if dynamic:
            self.notes.append(f"input '{name}' declares a dynamic batch (shape signature {list(declared)}): tte uses "
                              f"batch 1")
        return tuple(1 if d < 0 else d for d in declared)

    def lift_output(self) -> None:
        if len(self.m.outputs) != 1:
            raise UnsupportedModelError(f"{self.path}: the model has {len(self.m.outputs)} outputs; tte takes a "
                                        f"single-output model (a classifier)")
        t = self.m.tensors[self.m.outputs[0]]
        e = self.env.get(t.index)
        name = "logits"  # the float output: a dequantized int8 output, or the input of a dropped SOFTMAX
        if isinstance(e, Dropped):
            e = e.src
        elif isinstance(e, Real):  # the model's own DEQUANTIZE: its output tensor's name
            name = t.name or name
        if isinstance(e, Real):
            e = e.src
        if not isinstance(e, Act):
            raise UnsupportedModelError(f"{self.path}: the output, {t.describe()}, is not computed from int8 tensors")
        op = tr.Operator(len(self.m.operators), "OUTPUT", (t.index,), ())
        shape = self.tfl_shape(e) if e.layout != "chw" else self.g[e.name].shape
        x = self.flat(op, e) if e.layout != "chw" else e.name
        if self.g[x].shape != tuple(shape):
            x = self.emit(op, "reshape", [x], f"{x}.nhwc", self.g[x].quant, suffix=".nhwc", shape=tuple(shape))
        out = self.emit(op, "dequantize", [x], name, None, dtype="float32",
                        suffix=".dequantize")
        self.g.outputs.append(out)

    def fold_clamps(self) -> None:
        """Fold a standalone RELU / RELU6 (a ``requantize`` that only clamps: same parameters) into the op
        producing its operand when nothing else reads that: exact, as clamping after rounding equals
        clamping inside the producer's requantization."""
        uses = self.g.use_counts()
        producers = {n.output: n for n in self.g.nodes}
        kept = []
        for node in self.g.nodes:
            prod = producers.get(node.inputs[0]) if node.op == "requantize" else None
            src = node.inputs[0]
            if (prod is not None and "qmin" in prod.attrs and prod.op != "concat" and uses[src] == 1
                    and src not in self.g.outputs and self.g[src].quant == self.g[node.output].quant):
                prod.attrs["qmin"] = max(prod.attrs["qmin"], node.attrs["qmin"])
                prod.attrs["qmax"] = min(prod.attrs["qmax"], node.attrs["qmax"])
                prod.outputs = [node.output]
                producers[node.output] = prod
                what = self.clamp_ops[node.name].describe() if node.name in self.clamp_ops else node.name
                self.notes.append(f"{what} folded into the clamp of {prod.name} (exact)")
                continue
            kept.append(node)
        self.g.nodes = kept

    def cross_check_shapes(self) -> None:
        """Every activation tte keeps under a TFLite tensor's name has that tensor's shape."""
        for idx, e in self.env.items():
            t = self.m.tensors[idx]
            if isinstance(e, Act) and e.name in self.g.values and e.layout != "chw":
                if tuple(self.tfl_shape(e)) != tuple(t.shape):
                    raise UnsupportedModelError(f"{self.path}: {t.describe()} has shape {list(self.tfl_shape(e))} in "
                                                f"tte (NHWC) but {list(t.shape)} in the file")

    def finish_notes(self) -> None:
        if self.bias_dims:
            self.notes.append(f"{len(self.bias_dims)} bias(es) declare a quantized_dimension beyond their single "
                              f"axis (e.g. '{self.bias_dims[0]}'): read per output channel, as TFLite Micro does")
        if self.permuted_fc:
            self.notes.append(f"FULLY_CONNECTED reading a flattened NHWC tensor ({', '.join(self.permuted_fc)}): its "
                              f"weight's input columns are permuted from H,W,C to tte's C,H,W order (exact)")


SUPPORTED_OPS = sorted(k[3:] for k in dir(OperatorHandlers) if k.startswith("op_"))


def load(path: str | os.PathLike, input_shape=None, arithmetic: str = "tflite") -> Graph:
    """Load an int8 TFLite model as a verified tte :class:`Graph` (canonical form: see the module's doc).

    ``input_shape`` fixes the input's shape (NHWC, as the model declares it; a sequence, or a mapping
    from the input's name); a dynamic batch becomes 1 otherwise.  ``arithmetic`` is recorded on the
    graph (:func:`tte.ir.facts.arithmetic`)."""
    model = tr.read(path)
    lifter = Lifter(model, input_shape)
    g = lifter.lift()
    check_graph(g, os.fspath(path))  # the same size bounds as for ONNX models
    lifter.finish_notes()
    set_arithmetic(g, arithmetic)
    for note in lifter.notes:
        add_note(g, note)
    g.metadata.update({"source": os.fspath(path), "format": "tflite",
                       "producer": f"TFLite schema v{model.version}" + (f" ({model.description})"
                                                                         if model.description else "")})
    try:
        g.verify()
    except IRError as e:
        raise UnsupportedModelError(f"{os.fspath(path)}: {str(e).splitlines()[0]}") from None
    return g
