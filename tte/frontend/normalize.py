"""Exact model-level rewrites of ONNX as exporters write it, before lifting; each says what it did in a note.

:func:`normalize` runs on the ModelProto right after it was read and validated, before input shapes are
fixed and the graph is lifted.  Every rewrite computes exactly what the model computed (or, for the
trailing Softmax, exactly the logits before it), and each one that fires returns one line that ends up in
the graph's notes (``tte inspect`` lists them):

* **Constant nodes** holding ``value_ints`` / ``value_int`` / ``value_float(s)`` / ``value_string(s)`` (or
  ``value``) become initializers.
* **Constant subgraphs** (the TorchScript exporter writes a ``Pad``'s pads as a chain of Cast, Concat,
  Slice, ConstantOfShape, Reshape and Transpose nodes): a node whose inputs are all constants is evaluated
  with :class:`onnx.reference.ReferenceEvaluator` and replaced by an initializer.  QuantizeLinear and
  DequantizeLinear of constants stay (the lifter reads quantized weights through them), except where only
  an op's parameters read them (onnxruntime quantizes a Pad's constant value); tensors over
  :data:`FOLD_LIMIT` elements are left alone.
* **int8 / uint8 graph inputs** (tf2onnx, TFLite-derived models) feeding DequantizeLinear (possibly through
  Transpose / Reshape): the input becomes float32 followed by a QuantizeLinear with that
  DequantizeLinear's own scale and zero point.  The float API quantizes with the model's parameters; the
  C API's int8 entry point (``tte_input_buffer`` / ``tte_train_step_s8``) takes the model's int8 values.
* **A trailing Softmax / LogSoftmax** (possibly wrapped in QuantizeLinear / DequantizeLinear, as tf2onnx
  writes an int8 TFLite softmax, or com.microsoft QLinearSoftmax): the graph output becomes the logits
  before it.  Training needs logits; tte's inference returns them.  ``model.metadata_props`` records it.
* **uint8 quantization** (onnxruntime ``QuantType.QUInt8``, QDQ and QOperator): every uint8 zero point and
  uint8 quantized initializer is shifted by -128 to int8.  Exact, because every use is ``q - z`` (or a
  max / data movement, which commute with the shift); a model with any other use is left as it is.

:func:`fold_static_shapes` runs later, once the input shapes are fixed (``load``): a **Shape / Size of a
statically shaped tensor** (``x.view(x.size(0), -1)`` exported with a dynamic batch) becomes an initializer and
the constant subgraph after it is evaluated as above.
"""

from __future__ import annotations

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

# constant subgraphs: never materialize (or read) a tensor larger than this many elements
FOLD_LIMIT = 1 << 20

# ops never evaluated at load: quantization boundaries of weights stay for the lifter; random ops
_NO_FOLD = {"QuantizeLinear", "DequantizeLinear", "DynamicQuantizeLinear", "RandomNormal", "RandomUniform",
            "RandomNormalLike", "RandomUniformLike", "Multinomial", "Bernoulli", "Dropout", "Constant",
            "Identity"}  # Identity: the lifter passes the initializer (and its name, for save()) through

# ops that only move (or select among) the elements of one tensor, operand 0
_MOVE = {"Transpose", "Reshape", "Flatten", "Squeeze", "Unsqueeze", "Identity"}

_MS = "com.microsoft"


def normalize(model: onnx.ModelProto, path: str) -> tuple[onnx.ModelProto, list[str]]:
    """The rewritten model and one note per rewrite (``tte inspect`` lists them)."""
    used_before = _used_names(model)
    notes: list[str] = []
    for rewrite in (_constant_nodes, _fold_constants, _quantized_inputs, _trailing_softmax, _uint8_to_int8):
        note = rewrite(model)
        if note:
            notes.append(note)
    if notes:
        _drop_unused_initializers(model, used_before)
    return model, notes


# -- small helpers --------------------------------------------------------------------------------------
def _opset(model: onnx.ModelProto) -> int:
    return next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), 13)


def _used_names(model: onnx.ModelProto) -> set[str]:
    return {i for n in model.graph.node for i in n.input if i} | {o.name for o in model.graph.output}


def _drop_unused_initializers(model: onnx.ModelProto, used_before: set[str]) -> None:
    """Initializers only the rewritten nodes used (pads chains, removed Softmax parameters)."""
    used = _used_names(model)
    listed = {i.name for i in model.graph.input}
    keep = [t for t in model.graph.initializer if t.name in used or t.name not in used_before or t.name in listed]
    if len(keep) != len(model.graph.initializer):
        del model.graph.initializer[:]
        model.graph.initializer.extend(keep)


def _consumers(model: onnx.ModelProto) -> dict[str, list[tuple[onnx.NodeProto, int]]]:
    uses: dict[str, list[tuple[onnx.NodeProto, int]]] = {}
    for node in model.graph.node:
        for i, name in enumerate(node.input):
            if name:
                uses.setdefault(name, []).append((node, i))
    return uses


def _producers(model: onnx.ModelProto) -> dict[str, onnx.NodeProto]:
    return {o: n for n in model.graph.node for o in n.output if o}


def _inits(model: onnx.ModelProto) -> dict[str, onnx.TensorProto]:
    return {t.name: t for t in model.graph.initializer}


def _size(t: onnx.TensorProto) -> int:
    return int(np.prod(t.dims, dtype=np.int64))


def _unique(model: onnx.ModelProto, base: str) -> str:
    taken = {t.name for t in model.graph.initializer} | {i.name for i in model.graph.input}
    taken |= {o for n in model.graph.node for o in n.output}
    name, k = base, 1
    while name in taken:
        name, k = f"{base}_{k}", k + 1
    return name


def _evaluate(node: onnx.NodeProto, feeds: dict[str, np.ndarray], opset: int) -> list[np.ndarray] | None:
    from onnx.reference import ReferenceEvaluator

    try:
        outs = ReferenceEvaluator(node, opsets={"": opset}).run(None, feeds)
    except Exception:  # an op the reference runtime lacks or rejects: leave the node to the lifter
        return None
    return [np.asarray(o) for o in outs]


def _listing(names: list[str], most: int = 4) -> str:
    shown = ", ".join(f"'{n}'" for n in names[:most])
    return shown + (f" and {len(names) - most} more" if len(names) > most else "")


# -- Constant nodes ---------------------------------------------------------------------------------------
def _constant_nodes(model: onnx.ModelProto) -> str | None:
    outputs = {o.name for o in model.graph.output}
    kept, kinds, count = [], set(), 0
    for node in model.graph.node:
        if node.op_type != "Constant" or node.domain not in ("", "ai.onnx") or node.output[0] in outputs:
            kept.append(node)
            continue
        if len(node.attribute) == 1 and node.attribute[0].name == "value":  # a tensor already
            tensor = onnx.TensorProto()
            tensor.CopyFrom(node.attribute[0].t)
            tensor.name = node.output[0]
        else:
            value = _evaluate(node, {}, _opset(model))
            if value is None or value[0].size > FOLD_LIMIT:
                kept.append(node)
                continue
            data = value[0].astype(object) if value[0].dtype.kind == "U" else value[0]
            tensor = numpy_helper.from_array(data, node.output[0])
        model.graph.initializer.append(tensor)
        kinds.update(a.name for a in node.attribute)
        count += 1
    if not count:
        return None
    del model.graph.node[:]
    model.graph.node.extend(kept)
    return f"{count} Constant node(s) ({', '.join(sorted(kinds))}) read as initializers"


# -- constant subgraphs -----------------------------------------------------------------------------------
def _output_size(node: onnx.NodeProto, args: list[np.ndarray | None]) -> int | None:
    """Elements the node would produce, for the ops whose output can be far larger than their inputs
    (None when it cannot exceed the inputs by much)."""
    try:
        if node.op_type == "ConstantOfShape":
            return int(np.prod(args[0], dtype=np.int64))
        if node.op_type == "Expand":
            return int(np.prod(np.broadcast_shapes(args[0].shape, tuple(int(d) for d in args[1])), dtype=np.int64))
        if node.op_type == "Tile":
            return args[0].size * int(np.prod(args[1], dtype=np.int64))
        if node.op_type == "Range":
            return int(abs(np.ceil((float(args[1]) - float(args[0])) / float(args[2]))))
        if node.op_type == "Pad":
            pads = np.asarray(args[1], np.int64).reshape(2, -1)
            return int(np.prod(np.asarray(args[0].shape[-pads.shape[1]:]) + pads.sum(0), dtype=np.int64)) * \
                int(np.prod(args[0].shape[:-pads.shape[1]], dtype=np.int64))
        if node.op_type in ("Resize", "Upsample"):
            return FOLD_LIMIT + 1  # never: scales can be anything
    except (ValueError, TypeError, IndexError, ZeroDivisionError, OverflowError):
        return FOLD_LIMIT + 1
    return None


# operands that are parameters of an op, never its data or weights: a QuantizeLinear / DequantizeLinear pair
# of a constant read only there (onnxruntime quantizes a Pad's constant_value) is evaluated like the rest
_PARAMETER_OPERANDS = {("Pad", 1), ("Pad", 2), ("Reshape", 1), ("Slice", 1), ("Slice", 2), ("Slice", 3),
                       ("Slice", 4), ("Expand", 1), ("Tile", 1), ("Squeeze", 1), ("Unsqueeze", 1),
                       ("ConstantOfShape", 0), ("ReduceMean", 1), ("Split", 1), ("Resize", 1), ("Resize", 2),
                       ("Resize", 3)}


def _parameter_qdq(model: onnx.ModelProto, inits) -> set[str]:
    """Outputs of QuantizeLinear / DequantizeLinear nodes on constants that only parameters read."""
    const, candidates = set(inits), []
    for node in model.graph.node:
        if node.op_type in ("QuantizeLinear", "DequantizeLinear") and node.domain in ("", "ai.onnx") and \
                all(i in const for i in node.input if i):
            candidates.append(node)
            const.add(node.output[0])
    uses, outputs, chosen = _consumers(model), {o.name for o in model.graph.output}, set()
    for node in reversed(candidates):
        readers = uses.get(node.output[0], [])
        if readers and node.output[0] not in outputs and all(
                (r.op_type, i) in _PARAMETER_OPERANDS or r.output[0] in chosen for r, i in readers):
            chosen.add(node.output[0])
    return chosen


def _fold_constants(model: onnx.ModelProto) -> str | None:
    inits = _inits(model)
    outputs = {o.name for o in model.graph.output}
    opset = _opset(model)
    parameters = _parameter_qdq(model, inits)
    kept, folded = [], []
    for node in model.graph.node:
        names = [i for i in node.input if i]
        foldable = (names and node.domain in ("", "ai.onnx")
                    and (node.op_type not in _NO_FOLD or node.output[0] in parameters)
                    and all(n in inits and _size(inits[n]) <= FOLD_LIMIT for n in names)
                    and not any(o in outputs for o in node.output)
                    and not any(a.type in (onnx.AttributeProto.GRAPH, onnx.AttributeProto.GRAPHS)
                                for a in node.attribute))
        if foldable:
            feeds = {n: numpy_helper.to_array(inits[n]) for n in names}
            size = _output_size(node, [feeds.get(i) if i else None for i in node.input])
            results = None if size is not None and size > FOLD_LIMIT else _evaluate(node, feeds, opset)
            if results is not None and all(r.size <= FOLD_LIMIT for r in results):
                for name, value in zip(node.output, results):
                    if name:
                        t = numpy_helper.from_array(value.astype(object) if value.dtype.kind == "U" else value, name)
                        model.graph.initializer.append(t)
                        inits[name] = t
                folded.append(node.op_type)
                continue
        kept.append(node)
    if not folded:
        return None
    del model.graph.node[:]
    model.graph.node.extend(kept)
    kinds = ", ".join(sorted(set(folded)))
    return f"{len(folded)} node(s) on constants ({kinds}) evaluated at load into initializers"


# -- Shape of statically shaped tensors (after the input shapes are fixed) ------------------------------------
def fold_static_shapes(model: onnx.ModelProto) -> str | None:
    """``Shape`` (and ``Size``) of a tensor whose shape is static is a constant: each becomes an initializer, and
    the constant subgraph after it (``x.view(x.size(0), -1)``: Shape -> Gather -> Unsqueeze -> Concat ->
    Reshape's target) is evaluated.

    Runs after :func:`tte.frontend.reader.fix_input_shapes`, never in :func:`normalize`: a dynamic batch is 1
    only from then on, and a static batch set to 1 by ``--input-shape`` must not be read as the model's old one.
    The shapes come from onnx's shape inference on the inputs and initializers alone (the model's own
    value_info, which may still hold the old batch, is not read)."""
    wanted = {i for i, n in enumerate(model.graph.node) if n.op_type in ("Shape", "Size") and
              n.domain in ("", "ai.onnx")}
    if not wanted:
        return None
    from onnx import shape_inference

    probe = onnx.ModelProto()
    probe.CopyFrom(model)
    del probe.graph.value_info[:]
    for out in probe.graph.output:
        out.type.tensor_type.ClearField("shape")
    try:
        inferred = shape_inference.infer_shapes(probe, check_type=False, strict_mode=False, data_prop=False)
    except Exception:  # the lifter reports what it cannot take
        return None
    static: dict[str, tuple[int, ...]] = {}
    for vi in list(inferred.graph.value_info) + list(inferred.graph.input) + list(inferred.graph.output):
        t = vi.type.tensor_type
        if t.HasField("shape") and all(d.HasField("dim_value") and d.dim_value >= 0 for d in t.shape.dim):
            static[vi.name] = tuple(d.dim_value for d in t.shape.dim)
    for t in model.graph.initializer:
        static[t.name] = tuple(t.dims)
    used_before = _used_names(model)
    outputs = {o.name for o in model.graph.output}
    kept, folded = [], []
    for i, node in enumerate(model.graph.node):
        shape = static.get(node.input[0]) if i in wanted else None
        if shape is None or node.output[0] in outputs:
            kept.append(node)
            continue
        if node.op_type == "Size":
            value = np.array(int(np.prod(shape, dtype=np.int64)), np.int64)
        else:
            a = {x.name: x.i for x in node.attribute}
            value = np.array(shape[a.get("start", 0):a.get("end")], np.int64)  # ONNX clamps as Python slices
        model.graph.initializer.append(numpy_helper.from_array(value, node.output[0]))
        folded.append(f"'{node.name or node.output[0]}' {list(shape)}")
    if not folded:
        return None
    del model.graph.node[:]
    model.graph.node.extend(kept)
    then = _fold_constants(model)
    _drop_unused_initializers(model, used_before)
    after = f"; then {then}" if then else ""
    return (f"{len(folded)} Shape / Size node(s) of statically shaped tensors ({_listing(folded)}) evaluated at load "
            f"with the fixed input shapes{after}")


# -- int8 / uint8 graph inputs ----------------------------------------------------------------------------
def _input_dequantizers(model, name: str, uses) -> list[onnx.NodeProto] | None:
    """The DequantizeLinear nodes an integer input reaches through data movement, or None if it reaches
    anything else."""
    found, todo = [], [name]
    while todo:
        t = todo.pop()
        for node, i in uses.get(t, []):
            if node.op_type == "DequantizeLinear" and i == 0:
                found.append(node)
            elif node.op_type in _MOVE and i == 0 and node.domain in ("", "ai.onnx"):
                todo.extend(node.output)
            else:
                return None
    return found or None


def _quantized_inputs(model: onnx.ModelProto) -> str | None:
    inits = _inits(model)
    uses = _consumers(model)
    notes = []
    for inp in list(model.graph.input):
        elem = inp.type.tensor_type.elem_type
        if inp.name in inits or elem not in (TensorProto.INT8, TensorProto.UINT8) or \
                inp.name in {o.name for o in model.graph.output}:
            continue
        dqs = _input_dequantizers(model, inp.name, uses)
        if not dqs:
            continue
        params = []
        for dq in dqs:
            if dq.input[1] not in inits or (len(dq.input) > 2 and dq.input[2] and dq.input[2] not in inits):
                break
            scale = numpy_helper.to_array(inits[dq.input[1]])
            zp = numpy_helper.to_array(inits[dq.input[2]]) if len(dq.input) > 2 and dq.input[2] else None
            if scale.size != 1 or (zp is not None and zp.size != 1):
                break
            params.append((float(scale.reshape(())), 0 if zp is None else int(zp.reshape(())), dq))
        if len(params) != len(dqs) or len({p[:2] for p in params}) != 1:
            continue  # per-channel or disagreeing parameters: the lifter says what it cannot take
        scale, zp, dq = params[0]
        zp_name = dq.input[2] if len(dq.input) > 2 and dq.input[2] else ""
        if not zp_name:  # no zero point: 0 in the input's own type, written out
            zp_name = _unique(model, f"{inp.name}_zero_point")
            dtype = np.int8 if elem == TensorProto.INT8 else np.uint8
            model.graph.initializer.append(numpy_helper.from_array(np.array(0, dtype), zp_name))
            for d in dqs:
                d.input[:] = [d.input[0], d.input[1], zp_name]
        quantized = _unique(model, f"{inp.name}_quantized")
        for node in model.graph.node:
            node.input[:] = [quantized if i == inp.name else i for i in node.input]
        model.graph.node.insert(0, helper.make_node("QuantizeLinear", [inp.name, dq.input[1], zp_name], [quantized],
                                                    name=f"{inp.name}_quantize"))
        inp.type.tensor_type.elem_type = TensorProto.FLOAT
        kind = "int8" if elem == TensorProto.INT8 else "uint8"
        notes.append(f"input '{inp.name}' is {kind} in the model: tte takes it as float32 and quantizes it with the "
                     f"model's own input parameters (scale {scale:.9g}, zero point {zp}); the C API's int8 input "
                     f"(tte_input_buffer, tte_train_step_s8) takes the model's quantized values"
                     f"{' minus 128' if kind == 'uint8' else ''}")
    return "; ".join(notes) or None


# -- trailing Softmax -------------------------------------------------------------------------------------
def _softmax_axis_ok(node: onnx.NodeProto, rank: int | None, opset: int) -> bool:
    axis = next((a.i for a in node.attribute if a.name == "axis"), -1 if opset >= 13 or node.domain else 1)
    return axis in (-1, 1) and rank in (None, 2)  # over the classes of [N, classes] logits


def _trailing_softmax(model: onnx.ModelProto) -> str | None:
    producers = _producers(model)
    uses = _consumers(model)
    outputs = [o.name for o in model.graph.output]
    opset = _opset(model)
    notes = []
    for k, out in enumerate(list(model.graph.output)):
        name = out.name
        chain, t = [], name
        node = producers.get(t)
        for wrapper in ("DequantizeLinear", "QuantizeLinear"):
            if node is not None and node.op_type == wrapper:
                chain.append(node)
                t = node.input[0]
                node = producers.get(t)
        if node is None or (node.op_type, node.domain) not in (("Softmax", ""), ("LogSoftmax", ""),
                                                               ("Softmax", "ai.onnx"), ("LogSoftmax", "ai.onnx"),
                                                               ("QLinearSoftmax", _MS)):
            continue
        dims = out.type.tensor_type.shape.dim if out.type.tensor_type.HasField("shape") else None
        if not _softmax_axis_ok(node, len(dims) if dims is not None else None, opset):
            continue
        # every tensor between the softmax and the output feeds only the next one
        inner = [node.output[0]] + [c.output[0] for c in reversed(chain)]
        if any(len(uses.get(x, [])) != 1 or x in outputs for x in inner[:-1]) or uses.get(name) \
                or outputs.count(name) != 1:
            continue
        logits = node.input[0]
        removed = [node] + chain
        added = []
        if node.op_type == "QLinearSoftmax":  # int8 logits: dequantize them with their own parameters
            real = _unique(model, f"{logits}_dequantized")
            added.append(helper.make_node("DequantizeLinear", [logits, node.input[1], node.input[2]], [real],
                                          name=f"{real}_node"))
            logits = real
        if logits in outputs:
            continue
        index = min(list(model.graph.node).index(n) for n in removed)
        for n in removed:
            model.graph.node.remove(n)
        for j, n in enumerate(added):
            model.graph.node.insert(index + j, n)
        new = helper.make_tensor_value_info(logits, TensorProto.FLOAT, None)
        if dims is not None:
            new.type.tensor_type.shape.CopyFrom(out.type.tensor_type.shape)
        model.graph.output[k].CopyFrom(new)
        outputs[k] = logits
        kind = node.op_type.replace("QLinear", "")
        what = "+".join(n.op_type for n in [node] + list(reversed(chain)))
        helper.set_model_props(model, {**{p.key: p.value for p in model.metadata_props},
                                       f"tte.removed_output:{name}": f"{what} after '{logits}'"})
        notes.append(f"output '{name}' is {kind} of the logits ({what}): tte's output is the logits '{logits}' "
                     f"before it; training uses them and tte's Python and C inference return them, not {kind} "
                     f"(the source model, and program.save()'s copy of it, keep the {kind})")
    return "; ".join(notes) or None


# -- uint8 -> int8 ----------------------------------------------------------------------------------------
# operand positions of quantized data and zero points (every use is q - z) in the quantized ops;
# the rest of each op's operands are scales and int32 biases
_Q_POSITIONS = {
    ("QuantizeLinear", ""): {2},
    ("DequantizeLinear", ""): {0, 2},
    ("QLinearConv", ""): {0, 2, 3, 5, 7},
    ("QLinearMatMul", ""): {0, 2, 3, 5, 7},
    ("QGemm", _MS): {0, 2, 3, 5, 8},
    ("QLinearAdd", _MS): {0, 2, 3, 5, 7},
    ("QLinearMul", _MS): {0, 2, 3, 5, 7},
    ("QLinearGlobalAveragePool", _MS): {0, 2, 4},
    ("QLinearAveragePool", _MS): {0, 2, 4},
    ("QLinearSigmoid", _MS): {0, 2, 4},
    ("QLinearLeakyRelu", _MS): {0, 2, 4},
    ("QLinearSoftmax", _MS): {0, 2, 4},
}
# ops whose output is the same quantized tensor with its elements moved, selected or maxed (the shift
# commutes with them); every operand in the set is data
_Q_MOVES = {"Transpose": {0}, "Reshape": {0}, "Flatten": {0}, "Squeeze": {0}, "Unsqueeze": {0}, "Identity": {0},
            "MaxPool": {0}, "Slice": {0}, "Split": {0}, "Gather": {0}}
# ops whose output is uint8 exactly when the zero point at this position is
_Q_OUTPUT_ZP = {("QuantizeLinear", ""): 2, ("QLinearConv", ""): 7, ("QLinearMatMul", ""): 7, ("QGemm", _MS): 8,
                ("QLinearAdd", _MS): 7, ("QLinearMul", _MS): 7, ("QLinearGlobalAveragePool", _MS): 4,
                ("QLinearAveragePool", _MS): 4, ("QLinearSigmoid", _MS): 4, ("QLinearLeakyRelu", _MS): 4,
                ("QLinearSoftmax", _MS): 4, ("QLinearConcat", _MS): 1}


def _q_positions(node: onnx.NodeProto) -> set[int] | None:
    domain = "" if node.domain == "ai.onnx" else node.domain
    if (node.op_type, domain) == ("QLinearConcat", _MS):  # y_scale, y_zp, then (x, scale, zp) triplets
        return {1} | {i for i in range(2, len(node.input)) if (i - 2) % 3 != 1}
    if node.op_type == "Concat" and domain == "":
        return set(range(len(node.input)))
    if domain == "" and node.op_type in _Q_MOVES:
        return _Q_MOVES[node.op_type]
    return _Q_POSITIONS.get((node.op_type, domain))


def _uint8_to_int8(model: onnx.ModelProto) -> str | None:
    inits = _inits(model)
    u8 = {n for n, t in inits.items() if t.data_type == TensorProto.UINT8}
    if not u8:
        return None
    data_inits = {n for n in u8 if any(
        n == node.input[0] or (node.op_type in ("QLinearConv", "QLinearMatMul", "QGemm", "QLinearAdd", "QLinearMul")
                               and len(node.input) > 3 and n == node.input[3])
        for node in model.graph.node)}
    # uint8 activations: outputs of ops with a uint8 output zero point, and what data movement makes of them
    for node in model.graph.node:
        domain = "" if node.domain == "ai.onnx" else node.domain
        zp_at = _Q_OUTPUT_ZP.get((node.op_type, domain))
        if zp_at is not None and len(node.input) > zp_at and node.input[zp_at] in u8:
            u8.add(node.output[0])
        elif (node.op_type in _Q_MOVES or node.op_type == "Concat") and node.input and node.input[0] in u8:
            u8.update(o for o in node.output if o)
    # exact only if every use of every uint8 tensor is a zero point, quantized data or data movement
    for node in model.graph.node:
        allowed = _q_positions(node)
        for i, name in enumerate(node.input):
            if name in u8 and (allowed is None or i not in allowed):
                return None
        if allowed is not None and node.op_type in ("Concat", "QLinearConcat"):  # all operands shift, or none
            data = [x for i, x in enumerate(node.input) if i in allowed]
            if any(x in u8 for x in data) and not all(x in u8 for x in data):
                return None
    zero_points = 0
    for t in model.graph.initializer:
        if t.data_type == TensorProto.UINT8:
            shifted = (numpy_helper.to_array(t).astype(np.int16) - 128).astype(np.int8)
            t.CopyFrom(numpy_helper.from_array(shifted, t.name))
            zero_points += t.name not in data_inits
    for vi in list(model.graph.value_info) + list(model.graph.output):
        if vi.name in u8 and vi.type.tensor_type.elem_type == TensorProto.UINT8:
            vi.type.tensor_type.elem_type = TensorProto.INT8
    data = len(data_inits)
    return (f"uint8 quantization (onnxruntime QuantType.QUInt8) rewritten exactly to int8: {zero_points} uint8 zero "
            f"point(s){f' and {data} uint8 quantized initializer(s)' if data else ''} shifted by -128 (q - 128, "
            f"z - 128; every use is q - z)")
