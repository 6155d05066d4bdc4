"""Model-level rewrites at load (tte/frontend/normalize.py, reader.fix_input_shapes): one test per rewrite.

Each test edits (or quantizes) a small model built here into the form an exporter writes, and checks that
it loads, that ``tte inspect`` lists the rewrite's note, and that tte's output agrees with onnxruntime
running the original, un-rewritten file within one int8 step.
"""

from __future__ import annotations

import json

import numpy as np
import onnx
import pytest
from click.testing import CliRunner
from onnx import TensorProto, helper, numpy_helper
from ortref import session

import tte
from tte.cli import main
from tte.zoo import INPUT_NAME, OUTPUT_NAME, GraphBuilder, _quiet_root_logger, _Reader, calibration_inputs, quantize

SHAPE = (1, 3, 16, 16)


# -- helpers --------------------------------------------------------------------------------------------------
def inspect_notes(path, *args) -> list[str]:
    """The notes ``tte inspect`` lists, from its table and from its JSON (which must agree)."""
    r = CliRunner().invoke(main, ["inspect", str(path), *map(str, args), "--json"])
    assert r.exit_code == 0, r.output
    notes = json.loads(r.stdout)["notes"]
    table = CliRunner().invoke(main, ["inspect", str(path), *map(str, args)])
    assert table.exit_code == 0, table.output
    assert table.stdout.count("note: ") == len(notes)
    return notes


def has_note(notes: list[str], *needles: str) -> bool:
    return any(all(n in note for n in needles) for note in notes)


def output_step(g) -> float:
    """One int8 step of the graph's (dequantized) output."""
    out = g.outputs[0]
    node = next(n for n in g.nodes if n.output == out)
    src = node.inputs[0] if node.op == "dequantize" else out
    return float(np.asarray(g[src].quant.scale).reshape(-1)[0])


def ort_run(path_or_model, feeds: dict, names: list[str]) -> list[np.ndarray]:
    """onnxruntime on the original model, with ``names`` exposed as graph outputs if they are not already."""
    model = onnx.load(str(path_or_model)) if not isinstance(path_or_model, onnx.ModelProto) else path_or_model
    model = onnx.ModelProto.FromString(model.SerializeToString())
    outputs = {o.name for o in model.graph.output}
    for name in names:
        if name not in outputs:
            model.graph.output.append(helper.make_tensor_value_info(name, TensorProto.FLOAT, None))
    return session(model).run(names, feeds)


def assert_agrees(g, original, logits: str, inputs, feed=lambda x: {INPUT_NAME: x}) -> None:
    """tte's output on each input within one int8 step of onnxruntime's tensor ``logits`` on the original."""
    step = output_step(g)
    for x in inputs:
        ref = ort_run(original, feed(x), [logits])[0]
        got = g.infer(x)
        assert got.shape == ref.shape
        assert np.abs(got - ref).max() <= step * 1.001, (np.abs(got - ref).max() / step)


def random_inputs(count=6, shape=SHAPE, seed=0):
    rng = np.random.default_rng(seed)
    return [rng.uniform(-1, 1, shape).astype(np.float32) for _ in range(count)]


def save(model: onnx.ModelProto, path) -> str:
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return str(path)


def float_cnn() -> onnx.ModelProto:
    g = GraphBuilder("norm", seed=7, input_shape=SHAPE)
    x = g.relu(g.conv(INPUT_NAME, 3, 8, 3))
    x = g.max_pool(x, 2, 2)
    x = g.relu(g.conv(x, 8, 8, 3))
    x = g.reshape(g.global_avg_pool(x), [1, -1])
    return g.finish(g.gemm(x, 8, 5), (1, 5))


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """The float model and its int8 QDQ quantization (onnxruntime quantize_static), built once."""
    d = tmp_path_factory.mktemp("normalize")
    fpath = d / "norm.float.onnx"
    onnx.save(float_cnn(), str(fpath))
    qpath = quantize(fpath, d / "norm.int8.onnx")
    return {"dir": d, "float": fpath, "int8": qpath}


def base(built) -> onnx.ModelProto:
    return onnx.load(str(built["int8"]))


def replace_initializer_by_nodes(model, name: str, nodes: list[onnx.NodeProto], extra=()) -> None:
    """Drop initializer ``name``; ``nodes`` (and initializers ``extra``) compute it at the graph's start."""
    keep = [t for t in model.graph.initializer if t.name != name]
    assert len(keep) == len(model.graph.initializer) - 1
    del model.graph.initializer[:]
    model.graph.initializer.extend(keep + list(extra))
    for n in reversed(nodes):
        model.graph.node.insert(0, n)


def reshape_shape_name(model) -> str:
    return next(n.input[1] for n in model.graph.node if n.op_type == "Reshape")


# -- 1. constant subgraphs ----------------------------------------------------------------------------------------
def test_constant_subgraph_is_evaluated(built, tmp_path):
    """The Reshape's target shape computed as the TorchScript exporter writes a Pad's pads: ConstantOfShape,
    Cast, Concat, Reshape, Transpose, Slice on Constant nodes and initializers."""
    model = base(built)
    target = reshape_shape_name(model)
    one = helper.make_tensor("one", TensorProto.INT64, [1], [1])
    nodes = [
        helper.make_node("Constant", [], ["c_len"], value=numpy_helper.from_array(np.array([1], np.int64))),
        helper.make_node("ConstantOfShape", ["c_len"], ["c_ones"], value=one),
        helper.make_node("Constant", [], ["c_minus"], value=numpy_helper.from_array(np.array([-1.0], np.float32))),
        helper.make_node("Cast", ["c_minus"], ["c_minus_i"], to=TensorProto.INT64),
        helper.make_node("Concat", ["c_ones", "c_minus_i"], ["c_cat"], axis=0),
        helper.make_node("Reshape", ["c_cat", "c_col"], ["c_col2"]),
        helper.make_node("Transpose", ["c_col2"], ["c_row"], perm=[1, 0]),
        helper.make_node("Slice", ["c_row", "c_zero", "c_end", "c_zero"], ["c_sliced"]),
        helper.make_node("Reshape", ["c_sliced", "c_flat"], [target]),
    ]
    extra = [numpy_helper.from_array(np.array(v, np.int64), n) for n, v in
             (("c_col", [2, 1]), ("c_zero", [0]), ("c_end", [1]), ("c_flat", [-1]))]
    replace_initializer_by_nodes(model, target, nodes, extra)
    path = save(model, tmp_path / "chain.onnx")
    g = tte.load(path)
    assert has_note(inspect_notes(path), "evaluated at load", "ConstantOfShape", "Concat", "Slice", "Transpose")
    assert_agrees(g, path, OUTPUT_NAME, random_inputs())


def test_huge_constant_subgraphs_stay(built, tmp_path):
    """Work is bounded: a ConstantOfShape of 2**40 elements is not evaluated (the lifter then refuses it)."""
    from tte.frontend.normalize import normalize

    model = base(built)
    model.graph.initializer.append(numpy_helper.from_array(np.array([1 << 20, 1 << 20], np.int64), "huge_shape"))
    model.graph.node.insert(0, helper.make_node("ConstantOfShape", ["huge_shape"], ["huge"]))
    model.graph.output.append(helper.make_tensor_value_info("huge_sum", TensorProto.FLOAT, None))
    model.graph.node.append(helper.make_node("ReduceSum", ["huge"], ["huge_sum"]))
    out, notes = normalize(model, "huge.onnx")
    assert "ConstantOfShape" in {n.op_type for n in out.graph.node} and not notes


def test_weight_quantization_stays(built):
    """QuantizeLinear / DequantizeLinear of constants are not evaluated: the lifter reads weights through them."""
    from tte.frontend.normalize import normalize

    model = base(built)
    before = [n.op_type for n in model.graph.node]
    out, notes = normalize(model, "x.onnx")
    assert [n.op_type for n in out.graph.node] == before and notes == []


def test_quantized_pad_value_is_evaluated(built):
    """onnxruntime quantizes a Pad's constant value (QuantizeLinear -> DequantizeLinear of a Constant): only a
    parameter reads it, so it is evaluated; the weights' DequantizeLinear nodes stay."""
    from tte.frontend.normalize import normalize

    model = base(built)
    dq_weights = sum(n.op_type == "DequantizeLinear" and n.input[0].endswith("_quantized") for n in model.graph.node)
    q = next(n for n in model.graph.node if n.op_type == "QuantizeLinear" and n.input[0] == INPUT_NAME)
    model.graph.initializer.append(numpy_helper.from_array(np.array([0, 0, 1, 1, 0, 0, 1, 1], np.int64), "pads"))
    model.graph.node.extend([
        helper.make_node("Constant", [], ["pad_value"], value=numpy_helper.from_array(np.array(0.0, np.float32))),
        helper.make_node("QuantizeLinear", ["pad_value", q.input[1], q.input[2]], ["pad_value_q"]),
        helper.make_node("DequantizeLinear", ["pad_value_q", q.input[1], q.input[2]], ["pad_value_dq"]),
        helper.make_node("Pad", [INPUT_NAME, "pads", "pad_value_dq"], ["padded"]),
    ])
    model.graph.output.append(helper.make_tensor_value_info("padded", TensorProto.FLOAT, None))
    out, notes = normalize(model, "pad.onnx")
    pad = next(n for n in out.graph.node if n.op_type == "Pad")
    value = next(t for t in out.graph.initializer if t.name == pad.input[2])
    assert numpy_helper.to_array(value) == np.float32(0.0) and has_note(notes, "QuantizeLinear", "DequantizeLinear")
    assert sum(n.op_type == "DequantizeLinear" and n.input[0].endswith("_quantized") for n in out.graph.node) == \
        dq_weights > 0


# -- 2. Constant nodes of every attribute kind --------------------------------------------------------------------
def test_constant_nodes_of_every_kind(built, tmp_path):
    model = base(built)
    inits = {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}
    target = reshape_shape_name(model)
    replace_initializer_by_nodes(model, target, [helper.make_node("Constant", [], [target], value_ints=[1, -1])])
    # an activation scale (a scalar) as value_float, a per-channel weight scale as value_floats
    act = next(n.input[1] for n in model.graph.node if n.op_type == "QuantizeLinear")
    w_dq = next(n for n in model.graph.node if n.op_type == "DequantizeLinear" and inits[n.input[1]].size > 1)
    w_scale = w_dq.input[1]
    replace_initializer_by_nodes(model, act, [helper.make_node("Constant", [], [act],
                                                               value_float=float(inits[act]))])
    replace_initializer_by_nodes(model, w_scale, [helper.make_node("Constant", [], [w_scale],
                                                                   value_floats=inits[w_scale].tolist())])
    model.graph.node.insert(0, helper.make_node("Constant", [], ["unused_text"], value_string="made by hand"))
    model.graph.node.insert(0, helper.make_node("Constant", [], ["unused_int"], value_int=3))
    path = save(model, tmp_path / "constants.onnx")
    g = tte.load(path)
    assert has_note(inspect_notes(path), "Constant node(s)", "value_float", "value_floats", "value_ints",
                    "value_string", "value_int")
    assert_agrees(g, path, OUTPUT_NAME, random_inputs())


# -- 3. int8 graph input ------------------------------------------------------------------------------------------
@pytest.mark.parametrize("through_reshape", [False, True])
def test_int8_input(built, tmp_path, through_reshape):
    """tf2onnx's form: the graph input is int8 and feeds DequantizeLinear (here also through a Reshape)."""
    model = base(built)
    q = next(n for n in model.graph.node if n.op_type == "QuantizeLinear" and n.input[0] == INPUT_NAME)
    inits = {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}
    scale, zp = float(inits[q.input[1]]), int(inits[q.input[2]])
    model.graph.node.remove(q)
    src = INPUT_NAME
    if through_reshape:
        model.graph.initializer.append(numpy_helper.from_array(np.array(SHAPE, np.int64), "same_shape"))
        model.graph.node.insert(0, helper.make_node("Reshape", [INPUT_NAME, "same_shape"], ["input_moved"]))
        src = "input_moved"
    for n in model.graph.node:
        n.input[:] = [src if i == q.output[0] else i for i in n.input]
    model.graph.input[0].type.tensor_type.elem_type = TensorProto.INT8
    path = save(model, tmp_path / "int8_input.onnx")

    g = tte.load(path)
    assert g[g.inputs[0]].dtype == "float32" and g[g.inputs[0]].shape == SHAPE
    notes = inspect_notes(path)
    assert has_note(notes, "input 'input' is int8", f"zero point {zp}", "tte_train_step_s8")
    rng = np.random.default_rng(3)
    codes = [rng.integers(-128, 128, SHAPE).astype(np.int8) for _ in range(6)]
    # tte takes the real value of each int8 code and quantizes it back with the input's own parameters
    reals = [((c.astype(np.float32) - zp) * np.float32(scale)).astype(np.float32) for c in codes]
    step = output_step(g)
    for c, x in zip(codes, reals):
        assert np.array_equal(g.run({g.inputs[0]: x}, keep=True)[g.nodes[0].output], c)
        ref = ort_run(path, {INPUT_NAME: c}, [OUTPUT_NAME])[0]
        assert np.abs(g.infer(x) - ref).max() <= step * 1.001


# -- 4. trailing Softmax ------------------------------------------------------------------------------------------
def _append_softmax(model, kind: str) -> None:
    """After the float logits: Softmax -> QuantizeLinear (int8 output, tf2onnx), Softmax -> Q -> DQ
    (onnxruntime QDQ) or LogSoftmax alone."""
    op = "LogSoftmax" if kind == "log" else "Softmax"
    nodes = [helper.make_node(op, [OUTPUT_NAME], ["probs_f"], axis=-1)]
    out_type = TensorProto.FLOAT
    if kind in ("tf2onnx", "qdq"):
        model.graph.initializer.extend([numpy_helper.from_array(np.array(1 / 256, np.float32), "p_scale"),
                                        numpy_helper.from_array(np.array(-128, np.int8), "p_zp")])
        nodes.append(helper.make_node("QuantizeLinear", ["probs_f", "p_scale", "p_zp"], ["probs_q"]))
        out_type = TensorProto.INT8
    if kind == "qdq":
        nodes.append(helper.make_node("DequantizeLinear", ["probs_q", "p_scale", "p_zp"], ["probs_dq"]))
        out_type = TensorProto.FLOAT
    nodes[-1].output[0] = "probs"
    model.graph.node.extend(nodes)
    del model.graph.output[:]
    model.graph.output.append(helper.make_tensor_value_info("probs", out_type, [1, 5]))


@pytest.mark.parametrize("kind", ["tf2onnx", "qdq", "log"])
def test_trailing_softmax(built, tmp_path, kind):
    model = base(built)
    _append_softmax(model, kind)
    path = save(model, tmp_path / f"softmax_{kind}.onnx")
    g = tte.load(path)
    assert g.outputs == [OUTPUT_NAME] and g[OUTPUT_NAME].dtype == "float32"
    word = "LogSoftmax" if kind == "log" else "Softmax"
    assert has_note(inspect_notes(path), "output 'probs'", f"logits '{OUTPUT_NAME}'", "inference return them",
                    f"keep the {word}")
    assert_agrees(g, path, OUTPUT_NAME, random_inputs())
    # training takes the logits: a few steps lower the loss
    x, y = random_inputs(1)[0], 2
    program = tte.compile(g, scheme="last-2", lr=0.05)
    losses = [program.train_step(x, y) for _ in range(6)]
    assert losses[-1] < losses[0]


def test_qlinear_softmax(built, tmp_path):
    """onnxruntime's QOperator form: com.microsoft QLinearSoftmax, then DequantizeLinear."""
    fmodel = onnx.load(str(built["float"]))
    gemm_out = next(n.output[0] for n in fmodel.graph.node if n.op_type == "Gemm")
    for n in fmodel.graph.node:
        n.output[:] = ["pre_softmax" if o == gemm_out else o for o in n.output]
    fmodel.graph.node.append(helper.make_node("Softmax", ["pre_softmax"], [OUTPUT_NAME], axis=-1))
    fpath = tmp_path / "softmax.float.onnx"
    onnx.save(fmodel, str(fpath))
    path = quantize(fpath, tmp_path / "softmax.qop.onnx", fmt="qop")
    assert "QLinearSoftmax" in {n.op_type for n in onnx.load(str(path)).graph.node}
    g = tte.load(path)
    assert has_note(inspect_notes(path), "QLinearSoftmax", "inference return them")
    logits = next(n.input[0] for n in onnx.load(str(path)).graph.node if n.op_type == "QLinearSoftmax")
    # the int8 logits, dequantized on our side, against onnxruntime's int8 logits
    scale = output_step(g)
    zp = int(np.asarray(g[next(n for n in g.nodes if n.output == g.outputs[0]).inputs[0]].quant.zero_point)
             .reshape(-1)[0])
    for x in random_inputs():
        ref = session(_with_output(onnx.load(str(path)), logits, TensorProto.INT8)).run([logits], {INPUT_NAME: x})[0]
        assert np.abs(g.infer(x) - (ref.astype(np.float32) - zp) * scale).max() <= scale * 1.001


def _with_output(model, name, elem) -> onnx.ModelProto:
    model.graph.output.append(helper.make_tensor_value_info(name, elem, None))
    return model


# -- 5. uint8 activations (and weights) ---------------------------------------------------------------------------
@pytest.mark.parametrize("fmt", ["QDQ", "QOperator"])
@pytest.mark.parametrize("weights", ["QInt8", "QUInt8"])
def test_uint8_quantization(built, tmp_path, fmt, weights):
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static

    path = tmp_path / f"u8_{fmt}_{weights}.onnx"
    with _quiet_root_logger():
        quantize_static(str(built["float"]), str(path), _Reader(calibration_inputs(SHAPE)),
                        quant_format=getattr(QuantFormat, fmt), per_channel=True,
                        activation_type=QuantType.QUInt8, weight_type=getattr(QuantType, weights),
                        calibrate_method=CalibrationMethod.MinMax)
    u8 = [t.name for t in onnx.load(str(path)).graph.initializer if t.data_type == TensorProto.UINT8]
    assert u8
    g = tte.load(path)
    notes = inspect_notes(path)
    assert has_note(notes, "uint8", "rewritten exactly to int8", "-128", "q - z")
    assert has_note(notes, "quantized initializer") == (weights == "QUInt8")
    assert_agrees(g, path, OUTPUT_NAME, random_inputs(10))


def test_uint8_with_another_use_is_left_alone(built, tmp_path):
    """A uint8 tensor read other than as q - z (a Cast to float): not rewritten; the lifter says uint8."""
    from onnxruntime.quantization import CalibrationMethod, QuantType, quantize_static

    path = tmp_path / "u8.onnx"
    with _quiet_root_logger():
        quantize_static(str(built["float"]), str(path), _Reader(calibration_inputs(SHAPE)),
                        activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
                        calibrate_method=CalibrationMethod.MinMax)
    model = onnx.load(str(path))
    q = next(n for n in model.graph.node if n.op_type == "QuantizeLinear" and n.input[0] == INPUT_NAME)
    model.graph.node.append(helper.make_node("Cast", [q.output[0]], ["as_float"], to=TensorProto.FLOAT))
    model.graph.output.append(helper.make_tensor_value_info("as_float", TensorProto.FLOAT, list(SHAPE)))
    path = save(model, tmp_path / "u8_cast.onnx")
    with pytest.raises(tte.TteError, match="uint8"):
        tte.load(path)


# -- 6. batch -------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("symbolic", [True, False])
def test_dynamic_batch_becomes_one(built, tmp_path, symbolic):
    model = base(built)
    for vi in [model.graph.input[0], *model.graph.output]:
        dim = vi.type.tensor_type.shape.dim[0]
        dim.Clear()
        if symbolic:
            dim.dim_param = "N"
    del model.graph.value_info[:]
    path = save(model, tmp_path / "dyn.onnx")
    g = tte.load(path)
    assert g[g.inputs[0]].shape == SHAPE
    assert has_note(inspect_notes(path), "input 'input'", "dynamic batch dimension", "'N'" if symbolic else "unknown",
                    "set to 1")
    assert_agrees(g, path, OUTPUT_NAME, random_inputs(3))


def test_other_dynamic_dimensions_still_need_input_shape(built, tmp_path):
    model = base(built)
    dims = model.graph.input[0].type.tensor_type.shape.dim
    dims[0].dim_param, dims[2].dim_param = "N", "H"
    path = save(model, tmp_path / "dyn_h.onnx")
    with pytest.raises(tte.TteError, match=r"dynamic dimension 'H' at axis 2.*--input-shape input=1,3,D2,16"):
        tte.load(path)
    g = tte.load(path, input_shape=SHAPE)
    assert g[g.inputs[0]].shape == SHAPE


def test_static_batch_set_to_one(built, tmp_path):
    """A model exported with a static batch of 16: --input-shape may set the batch (only) to 1."""
    model = base(built)
    for vi in [model.graph.input[0], *model.graph.output]:
        vi.type.tensor_type.shape.dim[0].dim_value = 16
    del model.graph.value_info[:]
    target = reshape_shape_name(model)  # the float model reshapes to [1, -1]: make it batch-agnostic
    model.graph.initializer.append(numpy_helper.from_array(np.array([0, -1], np.int64), "keep_batch"))
    for n in model.graph.node:
        n.input[:] = ["keep_batch" if i == target else i for i in n.input]
    path = save(model, tmp_path / "batch16.onnx")
    g = tte.load(path, input_shape=SHAPE)
    assert g[g.inputs[0]].shape == SHAPE
    assert has_note(inspect_notes(path, "--input-shape", "1,3,16,16"), "static batch of 16 set to 1")
    batch = np.stack([x[0] for x in random_inputs(16)])
    ref = ort_run(path, {INPUT_NAME: batch}, [OUTPUT_NAME])[0]
    got = np.concatenate([g.infer(batch[i:i + 1]) for i in range(16)])
    assert np.abs(got - ref).max() <= output_step(g) * 1.001
    for bad, needle in (((2, 3, 16, 16), "only the batch, axis 0, may change, and only to 1"),
                        ((1, 3, 8, 8), "axis 2")):
        with pytest.raises(tte.TteError, match=needle.replace("(", r"\(").replace(")", r"\)")):
            tte.load(path, input_shape=bad)


# -- 7. Shape of a statically shaped tensor, after the input shapes are fixed -----------------------------------------
def shape_chain(model, with_size: bool) -> None:
    """The Reshape's target as ``x.view(x.size(0), -1)`` exports it (Shape -> Gather -> Unsqueeze -> Concat), or
    ``x.view(x.size(0), x.numel() // x.size(0))`` (with Size and Div)."""
    reshape = next(n for n in model.graph.node if n.op_type == "Reshape")
    x, target = reshape.input[0], f"{reshape.input[1]}_computed"
    ints = {"c_zero": [0], "c_minus": [-1], "c_index": 0}
    model.graph.initializer.extend(numpy_helper.from_array(np.array(v, np.int64), k) for k, v in ints.items())
    nodes = [helper.make_node("Shape", [x], ["x_shape"], name="shape"),
             helper.make_node("Gather", ["x_shape", "c_index"], ["x_batch"], axis=0),
             helper.make_node("Unsqueeze", ["x_batch", "c_zero"], ["x_batch_1d"])]
    if with_size:
        nodes += [helper.make_node("Size", [x], ["x_size"], name="size"),
                  helper.make_node("Div", ["x_size", "x_batch"], ["x_rest"]),
                  helper.make_node("Unsqueeze", ["x_rest", "c_zero"], ["x_rest_1d"]),
                  helper.make_node("Concat", ["x_batch_1d", "x_rest_1d"], [target], axis=0)]
    else:
        nodes.append(helper.make_node("Concat", ["x_batch_1d", "c_minus"], [target], axis=0))
    at = list(model.graph.node).index(reshape)
    for k, node in enumerate(nodes):
        model.graph.node.insert(at + k, node)
    reshape.input[1] = target


@pytest.mark.parametrize("with_size", [False, True], ids=["shape", "shape-and-size"])
@pytest.mark.parametrize("batch", ["dynamic", "static-16"])
def test_shape_of_static_tensors_is_evaluated_after_the_batch_is_fixed(built, tmp_path, batch, with_size):
    """A dynamic batch becomes 1, a static batch of 16 is set to 1 by --input-shape: only then is the Shape (Size) a
    constant, the batch read as 1, never as 16."""
    model = base(built)
    for vi in [model.graph.input[0], *model.graph.output]:
        dim = vi.type.tensor_type.shape.dim[0]
        dim.Clear()
        if batch == "dynamic":
            dim.dim_param = "N"
        else:
            dim.dim_value = 16
    del model.graph.value_info[:]
    shape_chain(model, with_size)
    path = save(model, tmp_path / f"shape_{batch}.onnx")
    args = () if batch == "dynamic" else ("--input-shape", "1,3,16,16")
    g = tte.load(path, input_shape=None if batch == "dynamic" else SHAPE)
    assert next(n for n in g.nodes if n.op == "reshape").attrs["shape"] == (1, 8)
    want = ["Shape / Size node(s) of statically shaped tensors", "'shape' [1, 8, 1, 1]", "with the fixed input shapes",
            "evaluated at load into initializers"]
    want += ["'size' [1, 8, 1, 1]", "(Concat, Div, Gather, Unsqueeze)"] if with_size else \
        ["(Concat, Gather, Unsqueeze)"]
    assert has_note(inspect_notes(path, *args), *want), inspect_notes(path, *args)
    count = 1 if batch == "dynamic" else 16
    xs = random_inputs(count)
    ref = ort_run(path, {INPUT_NAME: np.concatenate(xs)}, [OUTPUT_NAME])[0]
    got = np.concatenate([g.infer(x) for x in xs])
    assert np.abs(got - ref).max() <= output_step(g) * 1.001


def test_shape_start_end_and_what_stays():
    """Shape's start / end (opset 15) slice the static shape as ONNX does; a Shape of a tensor whose shape is not
    static, and a Shape that is a graph output, stay."""
    from tte.frontend.normalize import fold_static_shapes

    nodes = [helper.make_node("Shape", ["x"], ["s_mid"], start=1, end=-1),
             helper.make_node("Shape", ["x"], ["s_tail"], start=-2),
             helper.make_node("Shape", ["x"], ["s_out"]),
             helper.make_node("Shape", ["y"], ["s_dyn"]),
             helper.make_node("Concat", ["s_mid", "s_tail", "s_dyn"], ["cat"], axis=0),
             helper.make_node("Identity", ["cat"], ["out"])]
    graph = helper.make_graph(nodes, "shapes", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 5, 7]),
                                                helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 2])],
                              [helper.make_tensor_value_info("out", TensorProto.INT64, [6]),
                               helper.make_tensor_value_info("s_out", TensorProto.INT64, [4])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 15)], ir_version=8)
    onnx.checker.check_model(model)
    note = fold_static_shapes(model)
    inits = {t.name: numpy_helper.to_array(t).tolist() for t in model.graph.initializer}
    assert inits == {"s_mid": [3, 5], "s_tail": [5, 7]}
    assert [n.output[0] for n in model.graph.node] == ["s_out", "s_dyn", "cat", "out"]
    assert note.startswith("2 Shape / Size node(s)") and "[1, 3, 5, 7]" in note
