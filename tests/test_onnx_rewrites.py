"""ONNX as exporters write it: the lifter's exact rewrites (tte/frontend/rewrites.py, batchnorm.py) and its
errors, each on a model built here (onnx.helper float graphs quantized by onnxruntime, torch.onnx exports, or
hand-made QDQ / QOperator graphs).

Each rewrite: the model loads, ``tte inspect`` lists the note, and the logits agree with onnxruntime within one
int8 step; the Pad fold and BatchNormalization / affine models also train, and the affine op's C equals the
reference.  Each error: one line that names the node and what to do.
"""

from __future__ import annotations

import json
import pathlib
import warnings

import numpy as np
import onnx
import ortref
import pytest
from inputs import inputs
from onnx import TensorProto, helper, numpy_helper
from test_cli import assert_clean_error, run

import tte
from tte.errors import UnsupportedModelError
from tte.ir.facts import load_notes
from tte.zoo import calibration_inputs, quantize

PREPROCESS = "python -m onnxruntime.quantization.preprocess --input in.onnx --output out.onnx"


# -- building models ----------------------------------------------------------------------------------------
class Net:
    """A float ONNX graph written node by node (opset 13 unless told), seeded random weights."""

    def __init__(self, shape, seed=0, opset=13):
        self.shape, self.opset = tuple(shape), opset
        self.rng = np.random.default_rng(seed)
        self.nodes, self.inits, self.n = [], [], 0

    def const(self, value, dtype=np.float32) -> str:
        self.n += 1
        name = f"c{self.n}"
        self.inits.append(numpy_helper.from_array(np.asarray(value, dtype), name))
        return name

    def op(self, op_type, inputs, name=None, **attrs) -> str:
        self.n += 1
        out = name or f"t{self.n}"
        self.nodes.append(helper.make_node(op_type, list(inputs), [out], name=f"{op_type.lower()}{self.n}", **attrs))
        return out

    def conv(self, x, cin, cout, k=3, pads=None, bias=True, group=1):
        w = self.const(self.rng.standard_normal((cout, cin // group, k, k)) * np.sqrt(2 / (cin // group * k * k)))
        ins = [x, w] + ([self.const(self.rng.standard_normal(cout) * 0.1)] if bias else [])
        p = [k // 2] * 4 if pads is None else pads
        return self.op("Conv", ins, kernel_shape=[k, k], pads=p, group=group)

    def gemm(self, x, k, n):
        w = self.const(self.rng.standard_normal((n, k)) * np.sqrt(2 / k))
        return self.op("Gemm", [x, w, self.const(self.rng.standard_normal(n) * 0.1)], transB=1)

    def model(self, out, out_shape, dtype=TensorProto.FLOAT) -> onnx.ModelProto:
        self.nodes[-1].output[0] = "logits" if self.nodes[-1].output[0] == out else self.nodes[-1].output[0]
        graph = helper.make_graph(self.nodes, "net", [helper.make_tensor_value_info("input", TensorProto.FLOAT,
                                                                                   list(self.shape))],
                                  [helper.make_tensor_value_info("logits", dtype, list(out_shape))], self.inits)
        m = helper.make_model(graph, opset_imports=[helper.make_opsetid("", self.opset)], ir_version=8)
        onnx.checker.check_model(m)
        return m


def quantized(model: onnx.ModelProto, tmp_path, fmt="qdq", name="m"):
    fpath = tmp_path / f"{name}.float.onnx"
    onnx.save(model, str(fpath))
    return quantize(fpath, tmp_path / f"{name}.{fmt}.onnx", fmt=fmt)


def agree(path, g=None, count=6, seed=0) -> tte.Graph:
    """Load ``path``: every layer, fed onnxruntime's int8 operands, is within one int8 step of onnxruntime's (the
    classifier's output included), and differs only on rounding ties (onnxruntime's fused average pool rounds
    after adding an odd zero point) or, where tte finds no tie (affine), on under 0.1% of the values.  End to
    end, one-step differences at ties grow through the layers after them: there the logits only stay close."""
    g = g or tte.load(path)
    sess = ortref.session(str(path))
    name = sess.get_inputs()[0].name
    ort_run = ortref.Intermediates(str(path))
    stats = ortref.LayerStats()
    step = float(g[g.nodes[-1].inputs[0]].quant.scale)
    for x in inputs(g[g.inputs[0]].shape, count, seed):
        ortref.compare_layers(g, ort_run(x), x, stats)
        want, ours = sess.run(None, {name: x})[0], g.infer(x)
        assert want.size == ours.size
        assert np.abs(want.reshape(ours.shape) - ours).max() <= 0.2 * np.abs(want).max() + step, (want, ours)
    assert stats.total > 0 and stats.max_diff <= 1, stats
    assert stats.off_tie == 0 or stats.off_tie <= 0.001 * stats.total, stats
    return g


def inspect_lists(path, *needles: str) -> None:
    """``tte inspect`` lists notes holding every needle (in its table, and all of them in full in --json)."""
    r = run("inspect", path)
    assert r.exit_code == 0, r.output
    assert "note: " in r.stdout
    notes = json.loads(run("inspect", path, "--json").stdout)["notes"]
    for needle in needles:
        assert any(needle in n for n in notes), (needle, notes)


def trains(path, steps=8, **kw) -> tte.Program:
    """tte.compile trains the model: the loss on one sample falls."""
    program = tte.compile(path, scheme="full", lr=0.05, rounding="nearest", **kw)
    x = calibration_inputs(program.forward[program.forward.inputs[0]].shape, 1)[0]
    losses = [program.train_step(x, 1) for _ in range(steps)]
    assert np.isfinite(losses).all() and losses[-1] < losses[0], losses
    return program


def error(path, *needles: str) -> str:
    """tte.load fails with one line holding every needle; so does the CLI (no traceback)."""
    with pytest.raises(UnsupportedModelError) as e:
        tte.load(path)
    text = str(e.value)
    assert "\n" not in text
    for needle in needles:
        assert needle in text, (needle, text)
    assert_clean_error(run("inspect", path), *needles)
    return text


# -- 1, 2, 3: NHWC input, zero Pad, Transpose before the classifier ----------------------------------------
def nhwc_padded_net() -> onnx.ModelProto:
    """tf2onnx-like: an NHWC input transposed to NCHW, explicit zero Pads before a conv and an average pool, an
    NHWC Transpose before the Reshape into the classifier MatMul (+ bias Add)."""
    n = Net((1, 8, 8, 3))
    x = n.op("Transpose", ["input"], perm=[0, 3, 1, 2])
    x = n.op("Relu", [n.conv(x, 3, 4)])
    pads = n.const([0, 0, 1, 1, 0, 0, 1, 1], np.int64)
    x = n.conv(n.op("Pad", [x, pads], mode="constant"), 4, 4, pads=[0, 0, 0, 0])
    x = n.op("AveragePool", [n.op("Pad", [x, pads])], kernel_shape=[2, 2], strides=[2, 2])
    x = n.op("Reshape", [n.op("Transpose", [x], perm=[0, 2, 3, 1]), n.const([1, -1], np.int64)])
    x = n.op("MatMul", [x, n.const(n.rng.standard_normal((100, 5)) * 0.1)])
    return n.model(n.op("Add", [x, n.const(n.rng.standard_normal(5) * 0.1)]), (1, 5))


@pytest.mark.parametrize("fmt", ["qdq", "qop"])
def test_nhwc_input_pads_and_classifier_transpose(fmt, tmp_path):
    path = quantized(nhwc_padded_net(), tmp_path, fmt)
    g = agree(path)
    assert g[g.inputs[0]].shape == (1, 8, 8, 3)  # the input keeps the model's layout
    assert [n.op for n in g.nodes][:2] == ["quantize", "transpose"]
    convs = [n for n in g.nodes if n.op == "conv"]
    pool = next(n for n in g.nodes if n.op == "avgpool")
    assert convs[1].attrs["pads"] == (1, 1, 1, 1) and pool.attrs["pads"] == (1, 1, 1, 1)
    assert pool.attrs["count_include_pad"] == 1  # ONNX averages over the Pad's zeros
    assert any(k.startswith("columns:") for k in g.metadata)
    inspect_lists(path, "of the graph input 'input' runs on its int8 values", "(zero padding [1, 1, 1, 1] of H, W) "
                  "folded into", "before the flatten into", "input columns permuted")
    trains(path)


def test_pad_as_attribute_in_opset_10(tmp_path):
    """Opset 10 (pads an attribute, value a float), QDQ by hand: Q -> DQ -> Pad -> Conv -> Q."""
    rng = np.random.default_rng(3)
    init = [numpy_helper.from_array(np.asarray(v), k) for k, v in {
        "s": np.float32(0.02), "z": np.int8(0), "w": rng.integers(-60, 60, (4, 3, 3, 3)).astype(np.int8),
        "ws": np.float32(0.01), "wz": np.int8(0), "ys": np.float32(0.05), "yz": np.int8(3),
        "b": rng.integers(-500, 500, 4).astype(np.int32), "bs": np.float32(0.0002), "bz": np.int32(0)}.items()]
    nodes = [helper.make_node("QuantizeLinear", ["input", "s", "z"], ["xq"]),
             helper.make_node("DequantizeLinear", ["xq", "s", "z"], ["x"]),
             helper.make_node("DequantizeLinear", ["w", "ws", "wz"], ["wf"]),
             helper.make_node("DequantizeLinear", ["b", "bs", "bz"], ["bf"]),
             helper.make_node("Pad", ["x"], ["xp"], name="pad", mode="constant", pads=[0, 0, 2, 1, 0, 0, 0, 1]),
             helper.make_node("Conv", ["xp", "wf", "bf"], ["y"], name="conv", kernel_shape=[3, 3]),
             helper.make_node("QuantizeLinear", ["y", "ys", "yz"], ["yq"]),
             helper.make_node("DequantizeLinear", ["yq", "ys", "yz"], ["logits"])]
    graph = helper.make_graph(nodes, "pad10", [helper.make_tensor_value_info("input", TensorProto.FLOAT, [1, 3, 6, 6])],
                              [helper.make_tensor_value_info("logits", TensorProto.FLOAT, [1, 4, 6, 6])], init)
    path = tmp_path / "pad10.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 10)], ir_version=5), str(path))
    g = agree(path)
    assert next(n for n in g.nodes if n.op == "conv").attrs["pads"] == (2, 1, 0, 1)
    inspect_lists(path, "Pad node 'pad' (zero padding [2, 1, 0, 1] of H, W) folded into Conv node 'conv'")


def maxpool_net(relu: bool) -> onnx.ModelProto:
    n = Net((1, 3, 8, 8))
    x = n.conv("input", 3, 4)
    x = n.op("Relu", [x]) if relu else x
    x = n.op("Pad", [x, n.const([0, 0, 1, 1, 0, 0, 1, 1], np.int64), n.const(0.0)], mode="constant")
    x = n.op("MaxPool", [x], kernel_shape=[3, 3], strides=[2, 2])
    x = n.op("Flatten", [n.op("GlobalAveragePool", [x])])
    return n.model(n.gemm(x, 4, 5), (1, 5))


def test_pad_folds_into_maxpool_after_relu(tmp_path):
    path = quantized(maxpool_net(relu=True), tmp_path)
    g = agree(path)
    assert next(n for n in g.nodes if n.op == "maxpool").attrs["pads"] == (1, 1, 1, 1)
    inspect_lists(path, "folded into MaxPool node")


def test_pad_errors(tmp_path):
    error(quantized(maxpool_net(relu=False), tmp_path, name="noneg"), "MaxPool node", "cannot be negative")
    n = Net((1, 3, 8, 8))
    x = n.op("Pad", [n.conv("input", 3, 4), n.const([0, 0, 1, 1, 0, 0, 1, 1], np.int64)], mode="reflect")
    reflect = n.model(n.gemm(n.op("Flatten", [n.op("GlobalAveragePool", [n.conv(x, 4, 4, pads=[0] * 4)])]), 4, 5),
                      (1, 5))
    error(quantized(reflect, tmp_path, name="reflect"), "Pad node", "'reflect' mode", "padding_mode='zeros'")
    n = Net((1, 3, 8, 8))
    x = n.op("Pad", [n.conv("input", 3, 4), n.const([0, 0, 1, 1, 0, 0, 1, 1], np.int64)], mode="constant")
    x = n.op("AveragePool", [x], kernel_shape=[3, 3], pads=[1, 1, 1, 1])
    both = n.model(n.gemm(n.op("Flatten", [n.op("GlobalAveragePool", [x])]), 4, 5), (1, 5))
    error(quantized(both, tmp_path, name="both"), "AveragePool node", "count_include_pad=0")
    n = Net((1, 3, 8, 8))
    x = n.op("Pad", [n.conv("input", 3, 4), n.const([0, 0, 1, 1, 0, 0, 1, 1], np.int64)], mode="constant")
    x = n.op("Add", [x, n.conv("input", 3, 4, pads=[2] * 4)])
    other = n.model(n.gemm(n.op("Flatten", [n.op("GlobalAveragePool", [x])]), 4, 5), (1, 5))
    error(quantized(other, tmp_path, name="other"), "reads the output of the zero Pad node", "Conv, AveragePool or "
          "MaxPool")


def test_transpose_mid_graph_is_a_clear_error(tmp_path):
    n = Net((1, 3, 8, 8))
    x = n.op("Transpose", [n.conv("input", 3, 4)], perm=[0, 1, 3, 2])
    x = n.op("Flatten", [n.op("GlobalAveragePool", [n.conv(x, 4, 4)])])
    error(quantized(n.model(n.gemm(x, 4, 5), (1, 5)), tmp_path), "Conv node", "Transpose node",
          "only of the graph input")


# -- 3b: data movement and zero padding of the float graph input, before its QuantizeLinear ---------------------
def float_input_net(kind: str) -> onnx.ModelProto:
    """The graph input reaches its first QuantizeLinear through ``kind``: onnxruntime's QOperator quantizer (and for
    most of them its QDQ one) leaves an op it only moves values with float when its input is not quantized yet."""
    nhwc = kind in ("transpose", "transpose-pad")
    n = Net((1, 8, 8, 3) if nhwc else (1, 3, 8, 8))
    x, c, pads = "input", 3, None
    if nhwc:
        x = n.op("Transpose", [x], perm=[0, 3, 1, 2])
    if kind in ("pad", "transpose-pad"):  # pads as an input, the value 0.0 given or not
        value = [n.const(0.0)] if kind == "pad" else []
        x = n.op("Pad", [x, n.const([0, 0, 1, 2, 0, 0, 1, 0], np.int64), *value], mode="constant")
        pads = [0] * 4
    elif kind == "flatten":  # an MLP on the image
        x = n.op("Relu", [n.gemm(n.op("Flatten", [x]), 192, 16)])
        return n.model(n.gemm(x, 16, 5), (1, 5))
    elif kind == "reshape":
        x, c = n.op("Reshape", [x, n.const([1, 6, 4, 8], np.int64)]), 6
    elif kind == "unsqueeze-squeeze":
        x = n.op("Squeeze", [n.op("Unsqueeze", [x, n.const([0], np.int64)]), n.const([0], np.int64)])
    elif kind == "maxpool":
        x = n.op("MaxPool", [x], kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1])
    x = n.op("Relu", [n.conv(x, c, 4, pads=pads)])
    x = n.op("Flatten", [n.op("GlobalAveragePool", [x])])
    return n.model(n.gemm(x, 4, 5), (1, 5))


def before_quantization(path) -> list[str]:
    """The ops between the graph input and its first QuantizeLinear."""
    model = onnx.load(str(path))
    ops, name = [], model.graph.input[0].name
    while (node := next(nd for nd in model.graph.node if name in nd.input)).op_type != "QuantizeLinear":
        ops.append(node.op_type)
        name = node.output[0]
    return ops


FLOAT_INPUT_FORMS = {  # kind: (ONNX ops before the QuantizeLinear in QOperator models, IR ops they become, note)
    "pad": (["Pad"], ["quantize", "conv"], "of the float graph input 'input' moves after QuantizeLinear node"),
    "transpose-pad": (["Transpose", "Pad"], ["quantize", "transpose", "conv"],
                      "of the float graph input 'input' moves after QuantizeLinear node"),
    "transpose": (["Transpose"], ["quantize", "transpose", "conv"], "(perm [0, 3, 1, 2]) of the graph input 'input' "
                                                                    "runs on its int8 values"),
    "flatten": (["Flatten"], ["quantize", "reshape", "gemm"], "([1, 3, 8, 8] -> [1, 192]) of the graph input "
                                                              "'input' runs on its int8 values"),
    "reshape": (["Reshape"], ["quantize", "reshape", "conv"], "([1, 3, 8, 8] -> [1, 6, 4, 8]) of the graph input"),
    "unsqueeze-squeeze": (["Unsqueeze", "Squeeze"], ["quantize", "reshape", "conv"],
                          "([1, 1, 3, 8, 8] -> [1, 3, 8, 8]) of the graph input"),
    "maxpool": (["MaxPool"], ["quantize", "maxpool", "conv"], "quantizing is monotonic: it commutes with the max"),
}


@pytest.mark.parametrize("fmt", ["qdq", "qop"])
@pytest.mark.parametrize("kind", list(FLOAT_INPUT_FORMS))
def test_float_input_moved_or_padded_before_its_quantization(kind, fmt, tmp_path):
    """Quantizing is elementwise and monotonic: a Transpose / Flatten / Reshape / Squeeze / Unsqueeze / MaxPool of
    the float input runs on its int8 values after the quantization, and a Pad of 0.0 pads them with the zero point
    (0.0 quantizes to it exactly), which then folds into the conv."""
    onnx_ops, ir_ops, note = FLOAT_INPUT_FORMS[kind]
    path = quantized(float_input_net(kind), tmp_path, fmt, name=kind)
    if fmt == "qop":
        assert before_quantization(path) == onnx_ops
    g = agree(path)
    assert [n.op for n in g.nodes][:len(ir_ops)] == ir_ops
    assert g[g.inputs[0]].shape == ((1, 8, 8, 3) if "transpose" in kind else (1, 3, 8, 8))
    if "pad" in kind:
        assert next(n for n in g.nodes if n.op == "conv").attrs["pads"] == (1, 2, 1, 0)
        if fmt == "qop":
            inspect_lists(path, note, "padded with the zero point", "folded into QLinearConv node")
    elif kind in ("transpose", "maxpool") or fmt == "qop":
        inspect_lists(path, note)
    trains(path, steps=4)


def test_float_input_pad_errors(tmp_path):
    """A Pad of the float input with a value other than 0.0 does not quantize to the zero point; one whose output
    another float op reads is not folded."""
    n = Net((1, 3, 8, 8))
    x = n.op("Pad", ["input", n.const([0, 0, 1, 1, 0, 0, 1, 1], np.int64), n.const(0.5)], mode="constant")
    model = n.model(n.gemm(n.op("Flatten", [n.op("GlobalAveragePool", [n.conv(x, 3, 4, pads=[0] * 4)])]), 4, 5),
                    (1, 5))
    path = quantized(model, tmp_path, "qop", name="half")
    assert before_quantization(path) == ["Pad"]
    error(path, "Pad node", "pads with the value 0.5, not 0.0")
    n = Net((1, 3, 8, 8))
    x = n.op("Relu", [n.op("Pad", ["input", n.const([0, 0, 1, 1, 0, 0, 1, 1], np.int64)], mode="constant")])
    model = n.model(n.gemm(n.op("Flatten", [n.op("GlobalAveragePool", [n.conv(x, 3, 4, pads=[0] * 4)])]), 4, 5),
                    (1, 5))
    path = quantized(model, tmp_path, "qop", name="relu")
    assert before_quantization(path) == ["Pad", "Relu"]
    error(path, "Relu node", "reads the output of the zero Pad node", "Conv, AveragePool or MaxPool")


# -- 4: global average pooling written as ReduceMean ----------------------------------------------------------
def mean_net(kind: str) -> onnx.ModelProto:
    n = Net((1, 3, 8, 6))
    x = n.op("Relu", [n.conv("input", 3, 4)])
    if kind == "w-then-h":
        x = n.op("ReduceMean", [n.op("ReduceMean", [x], axes=[3], keepdims=1)], axes=[2], keepdims=1)
        x = n.op("Flatten", [x])
    elif kind == "w-then-h-squeezed":
        x = n.op("ReduceMean", [n.op("ReduceMean", [x], axes=[-1], keepdims=0)], axes=[2], keepdims=0)
    elif kind == "nhwc":
        x = n.op("ReduceMean", [n.op("Transpose", [x], perm=[0, 2, 3, 1])], axes=[1, 2], keepdims=0)
    elif kind == "then-pool":
        x = n.op("Flatten", [n.op("GlobalAveragePool", [n.op("ReduceMean", [x], axes=[3], keepdims=1)])])
    return n.model(n.gemm(x, 4, 5), (1, 5))


@pytest.mark.parametrize("fmt", ["qdq", "qop"])
@pytest.mark.parametrize("kind", ["w-then-h", "w-then-h-squeezed", "nhwc", "then-pool"])
def test_reduce_mean_forms_are_global_average_pools(kind, fmt, tmp_path):
    path = quantized(mean_net(kind), tmp_path, fmt)
    g = agree(path)
    ops = [n.op for n in g.nodes]
    assert "global_avgpool" in ops or ops.count("avgpool") == 2, ops
    assert load_notes(g)
    inspect_lists(path, "ReduceMean node")


def test_quantized_means_over_one_axis_are_average_pools(tmp_path):
    """A QuantizeLinear between the two ReduceMeans (keepdims 0: [N, C, H] in between): each mean is exact on its
    own, as an average pool whose window spans W, then H."""
    model = onnx.load(str(quantized(mean_net("w-then-h-squeezed"), tmp_path)))
    first, second = [n for n in model.graph.node if n.op_type == "ReduceMean"]
    q = next(n for n in model.graph.node if n.op_type == "QuantizeLinear" and n.input[0] == second.output[0])
    nodes = list(model.graph.node)
    at = nodes.index(first) + 1
    nodes[at:at] = [helper.make_node("QuantizeLinear", [first.output[0], *q.input[1:]], ["w_mean_q"]),
                    helper.make_node("DequantizeLinear", ["w_mean_q", *q.input[1:]], ["w_mean_dq"])]
    second.input[0] = "w_mean_dq"
    del model.graph.node[:]
    model.graph.node.extend(nodes)
    path = tmp_path / "quantized_means.onnx"
    onnx.save(model, str(path))
    g = agree(path)
    pools = [n for n in g.nodes if n.op == "avgpool"]
    assert [p.attrs["kernel"] for p in pools] == [(1, 6), (8, 1)]
    inspect_lists(path, "(a mean over W only) runs as an average pool whose 1x6 window spans it",
                  "(a mean over H only) runs as an average pool whose 8x1 window spans it")


def test_mean_over_channels_is_a_clear_error(tmp_path):
    n = Net((1, 3, 8, 8))
    x = n.op("ReduceMean", [n.conv("input", 3, 4)], axes=[1, 2, 3], keepdims=0)
    error(quantized(n.model(n.op("Unsqueeze", [x, n.const([1], np.int64)]), (1, 1)), tmp_path), "ReduceMean node",
          "not only over H and W")


# -- 5: Squeeze without axes on the logits ------------------------------------------------------------------------
def test_squeeze_without_axes_keeps_the_batch(tmp_path):
    n = Net((1, 3, 8, 8))
    x = n.op("GlobalAveragePool", [n.op("Relu", [n.conv("input", 3, 8)])])
    x = n.op("Squeeze", [n.conv(x, 8, 5, k=1, pads=[0] * 4)])
    path = quantized(n.model(x, (5,)), tmp_path)
    g = agree(path)
    assert g[g.outputs[0]].shape == (1, 5)
    inspect_lists(path, "without axes on [1, 5, 1, 1] keeps the batch dimension: [1, 5]")
    trains(path, steps=4)


# -- 6: constant operand first ------------------------------------------------------------------------------------
def swap_first_constant(path, op_type: str):
    model = onnx.load(str(path))
    inits = {i.name for i in model.graph.initializer}
    node = next(n for n in model.graph.node if n.op_type == op_type)
    ins = list(node.input)
    if ins[3] in inits:  # the constant second: put it first
        node.input[:6] = ins[3:6] + ins[0:3]
    assert node.input[0] in inits
    onnx.save(model, str(path))
    return path


def test_qlinear_add_and_mul_with_the_constant_first(tmp_path):
    n = Net((1, 3, 8, 8))
    x = n.op("Relu", [n.conv("input", 3, 4)])
    x = n.op("Mul", [n.const(n.rng.uniform(-2, 2, (1, 4, 1, 1))), x])  # a per-channel constant scale
    x = n.op("Flatten", [n.op("GlobalAveragePool", [x])])
    x = n.op("MatMul", [x, n.const(n.rng.standard_normal((4, 5)))])
    x = n.op("Add", [x, n.const(n.rng.standard_normal(5) * 0.1)])
    path = quantized(n.model(x, (1, 5)), tmp_path, "qop")
    swap_first_constant(path, "QLinearAdd")
    swap_first_constant(path, "QLinearMul")
    g = agree(path)
    assert "affine" in [n.op for n in g.nodes]
    inspect_lists(path, "QLinearAdd node", "constant operand first, swapped", "QLinearMul node",
                  "multiply by a constant")
    qdq = quantized(n.model(x, (1, 5)), tmp_path, "qdq", name="qdq")
    agree(qdq)
    inspect_lists(qdq, "Mul node", "per-channel int8 affine op")


# -- 7: a per-channel axis out of range on a 1-D tensor --------------------------------------------------------
def test_bias_axis_out_of_range_reads_as_axis_0(tmp_path):
    """onnxruntime (default session options) runs a 1-D bias DequantizeLinear with axis 3; tte reads it as axis 0
    (validation lets exactly this case through: a 1-d constant with one scale per entry)."""
    n = Net((1, 3, 8, 8))
    x = n.op("Flatten", [n.op("GlobalAveragePool", [n.op("Relu", [n.conv("input", 3, 4)])])])
    path = quantized(n.model(n.gemm(x, 4, 5), (1, 5)), tmp_path)
    model = onnx.load(str(path))
    inits = {i.name: numpy_helper.to_array(i) for i in model.graph.initializer}
    bias_dq = next(d for d in model.graph.node if d.op_type == "DequantizeLinear" and inits[d.input[0]].ndim == 1
                   and inits[d.input[0]].dtype == np.int32)
    next(a for a in bias_dq.attribute if a.name == "axis").i = 3
    onnx.save(model, str(path))
    g = tte.load(path)
    inspect_lists(path, "per-channel axis 3 of the 1-d tensor")
    sess = ortref.session(str(path))  # with its graph optimizations, which fold the bias's DequantizeLinear
    step = float(g[g.nodes[-1].inputs[0]].quant.scale)
    for x in inputs((1, 3, 8, 8), 6):
        assert np.abs(sess.run(None, {"input": x})[0] - g.infer(x)).max() <= step * 1.001
    assert any("per-channel axis 3 of the 1-d tensor" in n and "read as axis 0" in n for n in load_notes(g))


# -- 8: BatchNormalization left in the model ------------------------------------------------------------------
def bn_model(tmp_path, tail: str = "conv", negative: bool = False) -> pathlib.Path:
    """PyTorch with its BatchNormalization kept (TrainingMode.PRESERVE), float ONNX: conv -> BN -> ReLU, then
    another conv ("conv") or straight the classifier's mean ("mean"), then a Linear."""
    import torch

    torch.manual_seed(0)

    class Net(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.c1, self.bn = torch.nn.Conv2d(3, 4, 3, padding=1), torch.nn.BatchNorm2d(4)
            self.c2 = torch.nn.Conv2d(4, 6, 3, padding=1) if tail == "conv" else None
            self.fc = torch.nn.Linear(6 if tail == "conv" else 4, 5)

        def forward(self, x):
            x = torch.relu(self.bn(self.c1(x)))
            if self.c2 is not None:
                x = torch.relu(self.c2(x))
            return self.fc(x.mean((2, 3)))

    net = Net().eval()
    with torch.no_grad():
        net.bn.running_mean.uniform_(-0.5, 0.5)
        net.bn.running_var.uniform_(0.5, 2.0)
        net.bn.weight.uniform_(0.5, 1.5)
        if negative:
            net.bn.weight[1::2] *= -1
        net.bn.bias.uniform_(-0.3, 0.3)
    path = tmp_path / f"bn_{tail}.float.onnx"
    with warnings.catch_warnings():  # the TorchScript exporter is deprecated; it is what keeps the BN
        warnings.simplefilter("ignore")
        torch.onnx.export(net, torch.zeros(1, 3, 8, 8), str(path), dynamo=False, opset_version=13,
                          training=torch.onnx.TrainingMode.PRESERVE, do_constant_folding=False,
                          input_names=["input"], output_names=["logits"])
    return path


def test_batchnorm_runs_as_affine_and_trains_in_c(tmp_path):
    """onnxruntime's QDQ keeps Conv -> Q -> DQ -> BatchNormalization -> Q: no fold is exact, so it is ``affine``;
    the model trains, and its C (forward, affine_grad) equals the reference step by step."""
    from test_c_training import train_both  # C == reference: state after every step, then inference

    path = quantize(bn_model(tmp_path), tmp_path / "bn.qdq.onnx")
    g = agree(path)
    assert [n.op for n in g.nodes].count("affine") == 1
    inspect_lists(path, "BatchNormalization node", "runs as a per-channel int8 affine op")
    program = trains(path)
    assert {"affine", "affine_grad"} <= {n.op for n in program.train.nodes}
    train_both(program, tmp_path, steps=4)


def test_batchnorm_in_qoperator_models(tmp_path):
    """QOperator leaves DQ -> BatchNormalization -> Relu float: before a QuantizeLinear it is ``affine`` with the
    ReLU as its clamp; before the classifier's float ReduceMean nothing int8 computes it (preprocess first)."""
    path = quantize(bn_model(tmp_path), tmp_path / "bn.qop.onnx", fmt="qop")
    g = agree(path)
    affine = next(n for n in g.nodes if n.op == "affine")
    assert affine.attrs["qmin"] == int(g[affine.output].quant.zero_point)  # the ReLU
    inspect_lists(path, "runs as a per-channel int8 affine op")
    error(quantize(bn_model(tmp_path, tail="mean"), tmp_path / "bn_mean.qop.onnx", fmt="qop"), "ReduceMean node",
          "float output of BatchNormalization node", PREPROCESS)


def unquantized_bn_input(path, out):
    """Conv -> BatchNormalization with no Q / DQ between (the float conv output feeds the BN)."""
    model = onnx.load(str(path))
    nodes = {o: n for n in model.graph.node for o in n.output}
    bn = next(n for n in model.graph.node if n.op_type == "BatchNormalization")
    dq = nodes[bn.input[0]]
    q = nodes[dq.input[0]]
    bn.input[0] = q.input[0]
    model.graph.node.remove(dq)
    model.graph.node.remove(q)
    onnx.save(model, str(out))
    return out


def test_batchnorm_folds_into_the_conv_before_it(tmp_path):
    qdq = quantize(bn_model(tmp_path, negative=True), tmp_path / "bn.qdq.onnx")
    path = unquantized_bn_input(qdq, tmp_path / "fold.onnx")
    g = agree(path)
    assert "affine" not in [n.op for n in g.nodes]
    conv = next(n for n in g.nodes if n.op == "conv")
    assert g.metadata[f"negated:{conv.inputs[1]}"] == "1,3"
    assert f"synthetic:{conv.inputs[2]}" in g.metadata  # the folded bias is not the model's: not trained
    inspect_lists(path, "BatchNormalization node", "folded into Conv node", "2 channels negated")
    trains(path)


def test_batchnorm_errors(tmp_path):
    qdq = quantize(bn_model(tmp_path, negative=True), tmp_path / "bn.qdq.onnx")
    model = onnx.load(str(unquantized_bn_input(qdq, tmp_path / "fold.onnx")))
    conv = next(n for n in model.graph.node if n.op_type == "Conv")
    w = next(i for i in model.graph.initializer if i.name == conv.input[1].replace("_DequantizeLinear_Output",
                                                                                   "_quantized"))
    data = numpy_helper.to_array(w).copy()
    data[1, 0, 0, 0] = -128  # channel 1 has a negative gamma
    w.CopyFrom(numpy_helper.from_array(data, w.name))
    onnx.save(model, str(tmp_path / "m128.onnx"))
    error(tmp_path / "m128.onnx", "BatchNormalization node", "-128", PREPROCESS)
    # a shift whose int32 rounding would move the output by more than a step
    model = onnx.load(str(tmp_path / "fold.onnx"))
    bn = next(n for n in model.graph.node if n.op_type == "BatchNormalization")
    q = next(n for n in model.graph.node if n.op_type == "QuantizeLinear" and n.input[0] == bn.output[0])
    scale = next(i for i in model.graph.initializer if i.name == q.input[1])
    scale.CopyFrom(numpy_helper.from_array(np.array(1e-7, np.float32), scale.name))
    onnx.save(model, str(tmp_path / "tiny.onnx"))
    error(tmp_path / "tiny.onnx", "BatchNormalization node", "output steps", PREPROCESS)
    # a BatchNormalization in training mode (it also writes its running statistics)
    model = onnx.load(str(qdq))
    bn = next(n for n in model.graph.node if n.op_type == "BatchNormalization")
    bn.output.extend(["bn_mean", "bn_var", "bn_saved_mean", "bn_saved_var"])
    onnx.save(model, str(tmp_path / "training.onnx"))
    error(tmp_path / "training.onnx", "BatchNormalization node", "training mode", "model.eval()")
    # no TFLite arithmetic for affine
    with pytest.raises(UnsupportedModelError, match="no TFLite integer arithmetic"):
        tte.load(qdq, arithmetic="tflite")


# -- 9: errors that say what to do ------------------------------------------------------------------------------
def test_unsupported_ops_name_the_node_and_what_to_do(tmp_path):
    n = Net((1, 3, 8, 8))
    x = n.op("Resize", [n.conv("input", 3, 4), "", n.const([1, 1, 2, 2])], mode="nearest")
    x = n.op("Flatten", [n.op("GlobalAveragePool", [n.conv(x, 4, 4)])])
    text = error(quantized(n.model(n.gemm(x, 4, 5), (1, 5)), tmp_path, name="resize"), "unsupported op 'Resize'",
                 "Resize node", "upsampling", "cut the model before it")
    assert "supports" not in text  # no list of every op
    n = Net((1, 3, 8, 8))
    x = n.op("Flatten", [n.op("GlobalAveragePool", [n.conv("input", 3, 4)])])
    x = n.gemm(n.op("Softmax", [n.gemm(x, 4, 6)], axis=1), 6, 5)  # a Softmax between two layers
    error(quantized(n.model(x, (1, 5)), tmp_path, name="softmax"), "unsupported op 'Softmax'", "Softmax node",
          "only as the model's last op")


def test_an_op_after_the_logits_names_the_tensor_to_train_on(tmp_path):
    n = Net((1, 3, 8, 8))
    x = n.op("Flatten", [n.op("GlobalAveragePool", [n.op("Relu", [n.conv("input", 3, 4)])])])
    model = n.model(n.op("ArgMax", [n.gemm(x, 4, 5)], axis=1, keepdims=1), (1, 1), TensorProto.INT64)
    path = quantized(model, tmp_path, name="argmax")
    text = error(path, "unsupported op 'ArgMax'", "after the logits: tte would train on", "[1, 5]",
                 "onnx.utils.extract_model")
    assert "ArgMax node" in text


def test_a_float_graph_output_names_the_op(tmp_path):
    n = Net((1, 3, 8, 8))
    x = n.op("Flatten", [n.op("GlobalAveragePool", [n.op("Relu", [n.conv("input", 3, 4)])])])
    model = onnx.load(str(quantized(n.model(n.gemm(x, 4, 5), (1, 5)), tmp_path)))
    nodes = {o: nd for nd in model.graph.node for o in nd.output}
    dq = nodes["logits"]
    q = nodes[dq.input[0]]
    nodes[q.input[0]].output[0] = "logits"  # the Gemm's float output is the graph's
    model.graph.node.remove(dq)
    model.graph.node.remove(q)
    onnx.save(model, str(tmp_path / "float_out.onnx"))
    error(tmp_path / "float_out.onnx", "graph output 'logits' comes from Gemm node", "in float",
          "not fully quantized", "quantize_static")


# -- save(): the rewrites undone in the written model ------------------------------------------------------
@pytest.mark.parametrize("case", ["nhwc-classifier-columns", "batchnorm-negated-rows"])
def test_saved_models_undo_the_rewrites(case, tmp_path):
    """A trained model whose classifier had a Transpose folded into its columns, and one whose conv had a
    BatchNormalization with negative gamma folded in (weights negated): save() writes them in the model's own
    layout.  The reloaded file equals the program exactly (a layout left permuted or negated would not, since
    loading applies the rewrite again), and every layer of the saved model agrees with onnxruntime's fed the
    same operands (``agree``: end to end, one-step ties at the average pool fan out through the classifier)."""
    if case == "nhwc-classifier-columns":
        path = quantized(nhwc_padded_net(), tmp_path, "qdq", name="nhwc")
    else:
        path = unquantized_bn_input(quantize(bn_model(tmp_path, negative=True), tmp_path / "bn.qdq.onnx"),
                                    tmp_path / "fold.onnx")
    program = trains(path)
    out = tmp_path / "trained.onnx"
    program.save(out)
    onnx.checker.check_model(onnx.load(str(out)), full_check=True)
    reloaded = agree(out)
    for x in inputs(program.forward[program.forward.inputs[0]].shape, 4, seed=9):
        assert np.array_equal(reloaded.infer(x), program.infer(x))
