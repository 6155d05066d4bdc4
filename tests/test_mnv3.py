"""HardSwish, Sigmoid and per-channel Mul end to end, on the MobileNetV3-style model of ``mnv3.py`` (SE blocks
``x * sigmoid(conv(relu(conv(gap(x)))))``, HardSwish) in QDQ and QOperator form.

* the new ops' reference kernels against ``tte.reference.activations`` on tiny graphs, and their backward
  kernels against finite differences of the real-valued ops they differentiate;
* the frontend's patterns (either Mul operand order, QOperator's float ``HardSwish -> GlobalAveragePool``
  chains fused into ``lut_global_avgpool``) and its one-line errors;
* per layer against onnxruntime, gradients against PyTorch (``torchref``) under ``full`` and a sparse scheme
  that trains through the last SE block (partial channels, so the channel permutation crosses the Mul);
* the generated C training step against the reference over 20 steps, and the memory plan.
"""

from __future__ import annotations

import mnv3
import numpy as np
import onnx
import ortref
import pytest
import torchref
from inputs import inputs
from test_autodiff import check_forward, compare_with_torch
from test_c_training import train_both
from test_grad_rules import fd_check

import tte
from tte.autodiff.scheme import weighted_layers
from tte.errors import ModelFileError, UnsupportedModelError
from tte.ir import Graph, QuantParams, Value
from tte.ir.facts import is_depthwise
from tte.ops import OPS
from tte.ops.activation import real_tables
from tte.plan import plan
from tte.reference import activations as act
from tte.reference import semantics as sem

KINDS = ("hardswish", "sigmoid")
F64 = {"hardswish": lambda v: v * np.clip(v + 3, 0, 6) / 6, "sigmoid": lambda v: 1 / (1 + np.exp(-v))}


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    out = tmp_path_factory.mktemp("mnv3")
    return {fmt: mnv3.build(out, fmt) for fmt in mnv3.FORMATS}


# -- tiny graphs -------------------------------------------------------------------------------------------


def tiny(op: str, operands: list[tuple[np.ndarray, QuantParams]], out_shape, out_quant: QuantParams,
         mask: bool = False, **attrs) -> Graph:
    """One forward node reading int8 graph inputs x0, x1, ...; ``mask``: it also writes its saturation mask."""
    g = Graph("tiny")
    names = [g.add_input(Value(f"x{i}", "int8", data.shape, q)).name for i, (data, q) in enumerate(operands)]
    outs = [Value("y", "int8", tuple(out_shape), out_quant)]
    if mask:
        outs.append(Value("y.mask", "bool", tuple(out_shape)))
        attrs["save_mask"] = True
    g.add_node(op, "n", names, outs, **attrs)
    g.outputs = [v.name for v in outs]
    g.verify()
    return g


def run(g: Graph, *arrays):
    out = g.run({f"x{i}": a for i, a in enumerate(arrays)})
    return [out[o] for o in g.outputs]


def every_int8(shape) -> np.ndarray:
    """All 256 int8 values (repeated, shuffled) in ``shape``."""
    rng = np.random.default_rng(int(np.prod(shape)))
    return rng.permutation(np.resize(np.arange(-128, 128), int(np.prod(shape)))).astype(np.int8).reshape(shape)


CLAMPS = [(-128, 127), (-20, 90)]


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("qmin,qmax", CLAMPS)
def test_hardswish_and_sigmoid_are_their_tables(kind, qmin, qmax):
    x = every_int8((1, 4, 8, 8))
    qx, qy = QuantParams.per_tensor(0.047, 11), QuantParams.per_tensor(0.031 if kind == "hardswish" else 0.0041, -7)
    table, mask, _ = act.unary_tables(kind, qx.scale, 11, qy.scale, -7, qmin, qmax)
    (y,) = run(tiny(kind, [(x, qx)], x.shape, qy, qmin=qmin, qmax=qmax), x)
    y2, m = run(tiny(kind, [(x, qx)], x.shape, qy, mask=True, qmin=qmin, qmax=qmax), x)
    assert np.array_equal(y, table[x.astype(np.int32) + 128]) and np.array_equal(y, y2)
    assert np.array_equal(m, mask[x.astype(np.int32) + 128])
    # independently (float64): within half a step of f(real(x)) where the clamp did not act, else the bound
    want = F64[kind](0.047 * (x.astype(np.float64) - 11)) / float(np.float32(qy.scale)) - 7
    assert np.abs(y - want)[m].max() <= 0.5 + 1e-4
    assert (y[~m] == np.where(want[~m] < qmin, qmin, qmax)).all() and (~m).any()


@pytest.mark.parametrize("per_channel", [False, True])
def test_mul_is_the_int8_product(per_channel):
    rng = np.random.default_rng(3)
    a = rng.integers(-128, 128, (2, 3, 4, 5), dtype=np.int8)
    b = rng.integers(-128, 128, (2, 3, 1, 1) if per_channel else a.shape, dtype=np.int8)
    qa, qb, qy = QuantParams.per_tensor(0.02, 5), QuantParams.per_tensor(0.004, -128), QuantParams.per_tensor(0.03, 2)
    g = tiny("mul", [(a, qa), (b, qb)], a.shape, qy, mask=True, qmin=-128, qmax=100)
    y, m = run(g, a, b)
    m_ref = act.mul_multiplier(qa.scale, qb.scale, qy.scale)
    want_y, want_m = act.mul_forward(a, 5, b, -128, m_ref, 2, -128, 100)
    assert np.array_equal(y, want_y) and np.array_equal(m, want_m)
    exact = 0.02 * (a.astype(np.float64) - 5) * 0.004 * (b.astype(np.float64) + 128) / 0.03 + 2
    assert np.abs(y - exact)[m].max() <= 0.5 + 1e-4 and (y[~m] == np.where(exact[~m] < 0, -128, 100)).all()
    with pytest.raises(Exception, match="neither|per channel"):
        tiny("mul", [(b, qb), (a, qa)], b.shape, qy, qmin=-128, qmax=127) if per_channel else \
            tiny("mul", [(a, qa), (b[:, :2], qb)], a.shape, qy, qmin=-128, qmax=127)


@pytest.mark.parametrize("kind", KINDS)
def test_lut_global_avgpool_is_the_mean_of_the_activation(kind):
    x = every_int8((2, 5, 7, 6))
    s_y = 0.02 if kind == "hardswish" else 0.004
    qx, qy = QuantParams.per_tensor(0.05, -3), QuantParams.per_tensor(s_y, -60)
    (y,) = run(tiny("lut_global_avgpool", [(x, qx)], (2, 5, 1, 1), qy, kind=kind, qmin=-128, qmax=127), x)
    table, _ = real_tables(tiny("lut_global_avgpool", [(x, qx)], (2, 5, 1, 1), qy, kind=kind, qmin=-128,
                                qmax=127), "x0", kind)
    # the definition: a float32 left-to-right sum of the table, times float32(1 / (s_y * H * W))
    terms = table[x.astype(np.int32) + 128].reshape(2, 5, -1)
    acc = np.zeros((2, 5), np.float32)
    for k in range(terms.shape[2]):
        acc = (acc + terms[:, :, k]).astype(np.float32)
    m = np.float32(1 / (np.float64(np.float32(s_y)) * 42))
    assert np.array_equal(y.reshape(2, 5), sem.round_clamp((acc * m).astype(np.float32), -60))
    # and within rounding of the float64 mean
    exact = F64[kind](0.05 * (x.astype(np.float64) + 3)).mean(axis=(2, 3)) / s_y - 60
    assert np.abs(exact).max() < 100 and np.abs(y.reshape(2, 5) - exact).max() <= 0.5 + 1e-3


def training_graph(**operands) -> Graph:
    """A graph holding float32 gradients and int8 saved operands (name -> (array, quant))."""
    g = Graph("train")
    for name, (data, q) in operands.items():
        g.add_input(Value(name, str(data.dtype), data.shape, q))
    return g


def backward(g: Graph, op: str, inputs: list[str], arrays: list[np.ndarray], **attrs) -> np.ndarray:
    """Run one backward node through the graph's checks (its op's shape rule and operand types)."""
    out_dtype, out_shape = tte.ir.output_types(g, tte.ir.Node(op, "n", inputs, [], attrs))[0]
    name = g.unique_name(f"{op}.out")
    g.add_node(op, g.unique_name(op), inputs, [Value(name, out_dtype, out_shape)], **attrs)
    got = OPS[op].kernel(g, g.nodes[-1], *arrays)
    assert got.dtype == np.float32 and got.shape == out_shape
    return got


def test_backward_kernels_are_the_activations_math():
    rng = np.random.default_rng(4)
    x = every_int8((1, 3, 4, 4))
    gate = x[:, :, :1, :1].copy()
    dy = rng.standard_normal(x.shape).astype(np.float32)
    table = rng.standard_normal(256).astype(np.float32)
    q = QuantParams.per_tensor(0.02, 3)
    g = training_graph(dy=(dy, None), x=(x, q), gate=(gate, q))
    g.add_const("table", table)
    assert np.array_equal(backward(g, "lut_grad", ["dy", "x", "table"], [dy, x, table]), act.lut_grad(dy, x, table))
    real = {"x": sem.dequantize(x, q.scale, 3), "gate": sem.dequantize(gate, q.scale, 3)}
    assert np.array_equal(backward(g, "mul_grad", ["dy", "gate"], [dy, gate]), act.mul_grad(dy, real["gate"]))
    assert np.array_equal(backward(g, "mul_grad", ["dy", "x"], [dy, x]), act.mul_grad(dy, real["x"]))
    assert np.array_equal(backward(g, "mul_grad_channel", ["dy", "x"], [dy, x]),
                          act.mul_grad_channel(dy, real["x"]))
    with pytest.raises(ValueError, match="256 entries"):
        g.add_const("short", table[:255])
        backward(g, "lut_grad", ["dy", "x", "short"], [dy, x, table[:255]])


# -- finite differences of the gradient rules' kernels ------------------------------------------------------


@pytest.mark.parametrize("kind", KINDS)
def test_lut_grad_is_the_derivative(kind):
    """dx = dy * f'(r) at every real input value r of the int8 grid (away from hardswish's kinks at +-3)."""
    rng = np.random.default_rng(5)
    q = QuantParams.per_tensor(0.0437, 9)
    x = every_int8((1, 4, 8, 8))
    g = tiny("lut_global_avgpool", [(x, q)], (1, 4, 1, 1), QuantParams.per_tensor(0.01), kind=kind, qmin=-128,
             qmax=127)
    r = 0.0437 * (x.astype(np.float64) - 9)
    smooth = np.abs(np.abs(r) - 3) > 0.05
    gy = rng.standard_normal(x.shape).astype(np.float32)
    dx = OPS["lut_grad"].kernel(g, None, gy, x, real_tables(g, "x0", kind)[1])
    fd_check(lambda v: np.sum(gy * F64[kind](v)), r, dx, rng, mask=smooth)


@pytest.mark.parametrize("kind", KINDS)
def test_folded_mask_is_the_straight_through_gradient(kind):
    """The forward node's derivative table carries its output mask: f'(r) where round(v) + z landed inside
    [qmin, qmax], 0 where it clamped (checked by finite differences of the clamped real function, away from
    the half-step bands next to the bounds where straight-through and clamp disagree by design)."""
    rng = np.random.default_rng(6)
    qx, qy, qmin, qmax = QuantParams.per_tensor(0.05, 0), QuantParams.per_tensor(0.004 if kind == "sigmoid"
                                                                                 else 0.02, 0), -40, 60
    x = every_int8((1, 4, 8, 8))
    g = tiny(kind, [(x, qx)], x.shape, qy, qmin=qmin, qmax=qmax)
    _, mask, grad = act.unary_tables(kind, qx.scale, 0, qy.scale, 0, qmin, qmax)
    r = 0.05 * x.astype(np.float64)
    s = float(qy.scale)
    lo, hi = qmin * s, qmax * s
    v = F64[kind](r) / s
    away = (np.abs(v - qmin) > 1) & (np.abs(v - qmax) > 1) & (np.abs(np.abs(r) - 3) > 0.05)
    gy = rng.standard_normal(x.shape).astype(np.float32)
    dx = OPS["lut_grad"].kernel(g, None, gy, x, grad)
    assert mask.any() and not mask.all()
    fd_check(lambda t: np.sum(gy * np.clip(F64[kind](t), lo, hi)), r, dx, rng, mask=away)


@pytest.mark.parametrize("per_channel", [False, True])
def test_mul_grads_are_the_derivatives(per_channel):
    rng = np.random.default_rng(7)
    qa, qb = QuantParams.per_tensor(0.03, 4), QuantParams.per_tensor(0.006, -128)
    a = rng.integers(-128, 128, (2, 3, 4, 5), dtype=np.int8)
    b = rng.integers(-128, 128, (2, 3, 1, 1) if per_channel else a.shape, dtype=np.int8)
    gy = rng.standard_normal(a.shape).astype(np.float32)
    g = training_graph(gy=(gy, None), a=(a, qa), b=(b, qb))
    ra, rb = 0.03 * (a.astype(np.float64) - 4), 0.006 * (b.astype(np.float64) + 128)
    ga = backward(g, "mul_grad", ["gy", "b"], [gy, b])
    gb = backward(g, "mul_grad_channel" if per_channel else "mul_grad", ["gy", "a"], [gy, a])
    assert ga.shape == a.shape and gb.shape == b.shape
    fd_check(lambda v: np.sum(gy * v * rb), ra, ga, rng)
    fd_check(lambda v: np.sum(gy * ra * v), rb, gb, rng)


@pytest.mark.parametrize("kind", KINDS)
def test_lut_global_avgpool_backward_chain(kind):
    """The rule's chain, global_avgpool_grad then lut_grad with the unmasked derivative: d mean(f(x))."""
    rng = np.random.default_rng(8)
    q = QuantParams.per_tensor(0.0391, -5)
    x = every_int8((2, 3, 5, 4))
    g = tiny("lut_global_avgpool", [(x, q)], (2, 3, 1, 1), QuantParams.per_tensor(0.01), kind=kind, qmin=-128,
             qmax=127)
    gy = rng.standard_normal((2, 3, 1, 1)).astype(np.float32)
    spread = OPS["global_avgpool_grad"].kernel(g, tte.ir.Node("global_avgpool_grad", "n", ["gy"], ["d"],
                                                              {"in_shape": x.shape}), gy)
    dx = OPS["lut_grad"].kernel(g, None, spread, x, real_tables(g, "x0", kind)[1])
    r = 0.0391 * (x.astype(np.float64) + 5)
    fd_check(lambda v: np.sum(gy * F64[kind](v).mean(axis=(2, 3), keepdims=True)), r, dx, rng,
             mask=np.abs(np.abs(r) - 3) > 0.05)


# -- the frontend --------------------------------------------------------------------------------------------

EXPECTED = {  # op -> count in the lifted graphs
    "qdq": {"hardswish": 4, "sigmoid": 2, "mul": 2, "global_avgpool": 3, "lut_global_avgpool": 0},
    "qoperator": {"hardswish": 3, "sigmoid": 2, "mul": 2, "global_avgpool": 1, "lut_global_avgpool": 2},
}


@pytest.mark.parametrize("fmt", mnv3.FORMATS)
def test_frontend_lifts_the_patterns(models, fmt):
    g = tte.load(models[fmt])
    ops = [n.op for n in g.nodes]
    assert {op: ops.count(op) for op in EXPECTED[fmt]} == EXPECTED[fmt]
    for n in g.nodes:
        if n.op == "mul":  # the gate second, per channel
            a, b = (g[i].shape for i in n.inputs)
            assert b == a[:2] + (1, 1) and g.producer(n.inputs[1]).op == "sigmoid"
        if n.op == "lut_global_avgpool":
            assert n.attrs["kind"] == "hardswish" and g.producer(n.inputs[0]).op == "conv"
    if fmt == "qoperator":  # the head: the fused mean, a Flatten (a view), the classifier
        assert ops[-4:] == ["lut_global_avgpool", "reshape", "gemm", "dequantize"]


def _swap_mul_operands(model: onnx.ModelProto) -> int:
    swapped = 0
    for n in model.graph.node:
        if n.op_type == "Mul":
            n.input[0], n.input[1] = n.input[1], n.input[0]
        elif n.op_type == "QLinearMul":
            ins = list(n.input)
            del n.input[:]
            n.input.extend(ins[3:6] + ins[0:3] + ins[6:])
        else:
            continue
        swapped += 1
    return swapped


@pytest.mark.parametrize("fmt", mnv3.FORMATS)
def test_the_gate_may_come_first(models, fmt, tmp_path):
    model = onnx.load(str(models[fmt]))
    assert _swap_mul_operands(model) == 2
    path = tmp_path / "swapped.onnx"
    onnx.save(model, str(path))
    g, original = tte.load(path), tte.load(models[fmt])
    assert [(n.op, n.inputs) for n in g.nodes] == [(n.op, n.inputs) for n in original.nodes]
    stats = ortref.LayerStats()
    run_ort = ortref.Intermediates(str(path))
    for x in inputs(g["input"].shape, 3, seed=2):
        ortref.compare_layers(g, run_ort(x), x, stats)
    assert stats.max_diff <= 1 and stats.exact_fraction >= 0.999


def _rewire(model: onnx.ModelProto, op_type: str, index: int, new_input: str) -> None:
    node = next(n for n in model.graph.node if n.op_type == op_type)
    node.input[index] = new_input


def test_clear_errors(models, tmp_path):
    # a Relu between a float HardSwish and its GlobalAveragePool (QOperator)
    model = onnx.load(str(models["qoperator"]))
    gap = next(n for n in model.graph.node if n.op_type == "GlobalAveragePool")
    relu = onnx.helper.make_node("Relu", [gap.input[0]], ["relu_before_gap"], name="relu_before_gap")
    gap.input[0] = "relu_before_gap"
    nodes = list(model.graph.node)
    nodes.insert(nodes.index(gap), relu)
    del model.graph.node[:]
    model.graph.node.extend(nodes)
    path = tmp_path / "relu_gap.onnx"
    onnx.save(model, str(path))
    with pytest.raises(UnsupportedModelError, match=r"GlobalAveragePool node .*Clip/Relu.*QDQ format") as e:
        tte.load(path)
    assert "\n" not in str(e.value)
    # a Mul by a constant that does not broadcast (QDQ: the gate replaced by a dequantized conv weight): invalid,
    # onnxruntime refuses it on load, and so does tte's validation (a per-channel constant runs as ``affine``)
    model = onnx.load(str(models["qdq"]))
    _rewire(model, "Mul", 1, "blocks.0.body.2.expand.weight_DequantizeLinear_Output")
    path = tmp_path / "mul_const.onnx"
    onnx.save(model, str(path))
    with pytest.raises(ModelFileError, match=r"Mul node .*Incompatible dimensions") as e:
        tte.load(path)
    assert "\n" not in str(e.value)
    # operands that do not broadcast: the block's 16 channels times the SE's 8 squeezed ones
    model = onnx.load(str(models["qdq"]))
    _rewire(model, "Mul", 1, "/blocks/blocks.0/body/body.2/relu/Relu_output_0_DequantizeLinear_Output")
    path = tmp_path / "mul_shapes.onnx"
    onnx.save(model, str(path))
    with pytest.raises(ModelFileError, match=r"Mul node .*Incompatible dimensions"):  # invalid ONNX, as above
        tte.load(path)


# -- whole models --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", mnv3.FORMATS)
def test_per_layer_agreement_with_onnxruntime(models, fmt, figures):
    path = models[fmt]
    g = tte.load(path)
    run_ort = ortref.Intermediates(str(path))
    stats = ortref.LayerStats()
    for x in inputs(g["input"].shape, 20, seed=11):
        vals = run_ort(x)
        ortref.compare_layers(g, vals, x, stats)
    new = [n for n in g.nodes if n.op in ("hardswish", "sigmoid", "mul", "lut_global_avgpool")]
    # every new op is compared (the head's fused mean through the Flatten view after it)
    assert all(n.name in stats.per_node or g.consumers(n.output)[0].name in stats.per_node for n in new)
    exact_new = sum(stats.per_node[n.name][1] for n in new if n.name in stats.per_node)
    total_new = sum(stats.per_node[n.name][0] for n in new if n.name in stats.per_node)
    figures(f"mnv3 {fmt} per layer vs onnxruntime: {stats.exact_fraction:.5%} of {stats.total:,} int8 entries "
            f"identical (hardswish/sigmoid/mul/lut_global_avgpool: {exact_new:,} of {total_new:,}), max diff "
            f"{stats.max_diff}, mismatches off a tie {stats.off_tie}")
    assert stats.exact_fraction >= 0.999 and stats.max_diff <= 1 and stats.off_tie == 0
    for n in new:
        if n.name in stats.per_node:
            total, exact, diff = stats.per_node[n.name]
            assert exact >= 0.999 * total and diff <= 1, n.name


@pytest.mark.parametrize("fmt", mnv3.FORMATS)
def test_end_to_end_logits_match_onnxruntime(models, fmt):
    g = tte.load(models[fmt])
    sess = ortref.session(str(models[fmt]))
    step = float(g[g.nodes[-1].inputs[0]].quant.scale)
    for x in mnv3.inputs(8):
        ours, theirs = g.infer(x), sess.run(None, {"input": x})[0]
        assert np.abs(ours - theirs).max() <= 2.01 * step


def se_scheme(model) -> dict:
    """Train through the last SE block: partial channels of its depthwise conv (whose channels the Mul ties to
    the gate's), the SE convs whole, a quarter of the projection's input channels, half of the head's."""
    g = model if isinstance(model, Graph) else tte.load(model)
    layers, _ = weighted_layers(g)
    index = {k: next(i for i, n in enumerate(layers) if k in n.name) for k in
             ("blocks.2/body/body.2/", "body.4/reduce", "body.4/expand", "blocks.2/body/body.5/", "head.0")}
    assert is_depthwise(g, layers[index["blocks.2/body/body.2/"]])
    ratios = (0.5, 1.0, 1.0, 0.25, 0.5)
    return {"bias_update_last": len(layers) - index["blocks.2/body/body.2/"] + 1,
            "weight_update": {str(i): r for i, r in zip(index.values(), ratios)}}


def compile_case(model, scheme: str, **options) -> tte.Program:
    return tte.compile(model, scheme=se_scheme(model) if scheme == "se" else scheme, **options)


CASES = [(fmt, s) for fmt in mnv3.FORMATS for s in ("full", "se")]


@pytest.mark.parametrize("fmt,scheme", CASES)
def test_gradients_match_pytorch(models, fmt, scheme, figures):
    program = compile_case(models[fmt], scheme)
    worst, differ, total = 0.0, 0, 0
    for i, x in enumerate(inputs(program.forward["input"].shape, 3, seed=21)):
        fwd = torchref.forward(program.forward, x)
        bad, size, _ = check_forward(program, x, fwd)
        differ, total = differ + bad, total + size
        worst = max(worst, max(compare_with_torch(program, x, (3 * i + 1) % 10, fwd=fwd).values()))
    if scheme == "se":  # the SE block trains (its Mul passes gradients to both operands), partly
        assert any("expand" in p.node for p in program.params.values())
        assert any(p.channels < program.forward[n].shape[p.axis] for n, p in program.params.items())
        assert {"mul_grad", "mul_grad_channel", "lut_grad"} <= {n.op for n in program.train.nodes}
    figures(f"mnv3 {fmt} [{scheme}] gradients vs PyTorch: {len(program.params)} trained tensors, worst relative "
            f"error {worst:.1e}; torch forward differs on {differ} of {total:,} int8 entries")
    assert worst <= 1e-4


@pytest.mark.parametrize("fmt", mnv3.FORMATS)
def test_channel_selection_crosses_the_se_block(models, fmt):
    """The partial depthwise conv's channels are tied, through hardswish, the (fused) mean, the Mul and the
    gate, to the SE convs': all permute together, and the permuted model computes the same logits."""
    original = tte.load(models[fmt])
    program = compile_case(original, "se")
    permuted = {n for n in program.perms}
    assert any("expand.weight" in n for n in permuted) and any("reduce.weight" in n for n in permuted)
    for x in mnv3.inputs(3):
        assert np.array_equal(program.infer(x), original.infer(x))


@pytest.mark.parametrize("fmt,scheme", CASES)
def test_c_training_is_the_reference(models, fmt, scheme, tmp_path, figures):
    """Needs codegen to dispatch through the registry's ``emit`` facet (and, for QOperator, the runtime kernel
    ``tte_lut_global_avgpool_s8``); see the report that introduced these ops."""
    program = compile_case(models[fmt], scheme, lr=0.001)
    losses = train_both(program, tmp_path)
    figures(f"mnv3 {fmt} [{scheme}] C training: 20 steps identical to the reference, loss {losses[0][1]:.3f} -> "
            f"{losses[-1][1]:.3f}")


@pytest.mark.parametrize("fmt", mnv3.FORMATS)
def test_plan_fits_256kb(models, fmt, figures):
    for scheme in ("full", "se"):
        p = plan(models[fmt], sram=256 * 1024, scheme=se_scheme(models[fmt]) if scheme == "se" else scheme)
        figures(f"mnv3 {fmt} [{scheme}] plan: peak SRAM {p.memory.peak_sram:,} B (arena {p.memory.arena.size:,} B), "
                f"flash {p.memory.flash:,} B")
        assert p.fits, p.problem
