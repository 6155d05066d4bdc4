"""The TFLite frontend on small int8 models built here (tests/tflite_builder.py): each operator, the
layouts (NHWC at the boundary, NCHW inside), the rewrites (PAD folding, FC column permutation, clamp
folding, the dropped SOFTMAX) and one-line errors; numbers against TFLite's reference kernels."""

from __future__ import annotations

import numpy as np
import pytest
from click.testing import CliRunner
from tflite_builder import TFLiteBuilder, differences, litert_tensors, tte_tensors

import tte
from tte.cli import main
from tte.errors import DynamicShapeError, ModelFileError, TteError, UnsupportedModelError
from tte.ir.facts import arithmetic, load_notes


def check(path, seeds: int = 3, float_input: bool = False) -> tte.ir.Graph:
    """tte agrees bit for bit with TFLite's reference kernels on every int8 tensor it keeps."""
    g = tte.load(path)
    g.verify()
    assert arithmetic(g) == "tflite"
    shape = g[g.inputs[0]].shape
    for seed in range(seeds):
        rng = np.random.default_rng(seed)
        x = rng.uniform(-1, 1, shape).astype(np.float32) if float_input else \
            rng.integers(-128, 128, shape).astype(np.int8)
        diff = differences(g, path, x)
        assert diff, "no tensor compared"
        for name, (bad, total, worst) in diff.items():
            assert bad == 0, f"seed {seed}: {name}: {bad} of {total} values differ from TFLite (by up to {worst})"
    return g


def build(tmp_path, fn, name: str = "m", **kw):
    b = TFLiteBuilder(seed=kw.pop("seed", 0))
    fn(b)
    return b.save(tmp_path / f"{name}.tflite", **kw)


def ops(g) -> list[str]:
    return [n.op for n in g.nodes]


# -- the canonical form ------------------------------------------------------------------------------


def test_conv_same_padding_fused_relu6_and_the_canonical_form(tmp_path):
    path = build(tmp_path, lambda b: b.conv2d(b.input((1, 9, 7, 3)), 8, 3, stride=2, padding="SAME",
                                              activation="RELU6"))
    g = check(path)
    assert ops(g) == ["quantize", "transpose", "conv", "transpose", "dequantize"]
    assert g[g.inputs[0]].shape == (1, 9, 7, 3) and g[g.inputs[0]].dtype == "float32"
    q = g.nodes[0]
    assert float(g[q.output].quant.scale) == np.float32(0.02) and int(g[q.output].quant.zero_point) == -3
    assert g.nodes[1].attrs["perm"] == (0, 3, 1, 2)
    conv = g.nodes[2]
    assert conv.attrs["pads"] == (1, 1, 1, 1) and conv.attrs["strides"] == (2, 2)
    assert conv.attrs["qmin"] == -128 and conv.attrs["qmax"] < 127  # RELU6 as the int8 clamp
    assert g[conv.inputs[1]].shape == (8, 3, 3, 3)  # OHWI -> OIHW
    assert g.metadata["source"] == str(path) and "TFLite" in g.metadata["producer"]


def test_asymmetric_same_padding(tmp_path):
    path = build(tmp_path, lambda b: b.conv2d(b.input((1, 8, 8, 2)), 4, (4, 2), stride=2, padding="SAME"))
    g = check(path)
    conv = next(n for n in g.nodes if n.op == "conv")
    assert conv.attrs["pads"] == (1, 0, 1, 0)  # total 2 rows (1, 1), 0 columns: TFLite puts the odd one after


def test_depthwise_with_multiplier(tmp_path):
    path = build(tmp_path, lambda b: b.depthwise_conv2d(b.input((1, 6, 6, 4)), 3, multiplier=2,
                                                        activation="RELU"))
    g = check(path)
    conv = next(n for n in g.nodes if n.op == "conv")
    assert conv.attrs["groups"] == 4 and g[conv.inputs[1]].shape == (8, 1, 3, 3)


def _fc_after_flatten(b, as_input=True):
    x = b.conv2d(b.input((1, 4, 3, 5)), 6, 3, activation="RELU")
    b.fully_connected(b.reshape(x, (1, -1), as_input=as_input), 7)


@pytest.mark.parametrize("as_input", [True, False])
def test_fc_after_nhwc_flatten_permutes_its_columns(tmp_path, as_input):
    g = check(build(tmp_path, lambda b: _fc_after_flatten(b, as_input)))
    gemm = next(n for n in g.nodes if n.op == "gemm")
    assert "transpose" not in ops(g)[2:]  # no copy back to NHWC: the weight was permuted instead
    assert any("permuted" in n for n in load_notes(g))
    assert g[gemm.inputs[1]].shape == (7, 72)


def test_flatten_read_by_something_else_goes_back_to_nhwc(tmp_path):
    def fn(b):
        x = b.conv2d(b.input((1, 3, 3, 4)), 4, 3)
        b.relu(b.reshape(x, (1, 36)), same_quant=False)
    g = check(build(tmp_path, fn))
    assert ops(g).count("transpose") == 2  # to NCHW after the input, to NHWC before the flatten


def test_pad_folds_into_conv_depthwise_and_average_pool(tmp_path):
    def fn(b):
        x = b.pad(b.input((1, 6, 6, 3)), [[0, 0], [1, 2], [0, 1], [0, 0]])
        x = b.conv2d(x, 4, 3, stride=2, padding="VALID", activation="RELU")
        x = b.depthwise_conv2d(b.pad(x, [[0, 0], [1, 1], [1, 1], [0, 0]]), 3, padding="VALID")
        b.avg_pool(b.pad(x, [[0, 0], [1, 0], [1, 0], [0, 0]]), 2, 1)
    g = check(build(tmp_path, fn))
    convs = [n for n in g.nodes if n.op == "conv"]
    assert convs[0].attrs["pads"] == (1, 0, 2, 1) and convs[1].attrs["pads"] == (1, 1, 1, 1)
    pool = next(n for n in g.nodes if n.op == "avgpool")
    assert pool.attrs["pads"] == (1, 1, 0, 0) and pool.attrs["count_include_pad"] == 1
    assert sum("PAD operator" in n for n in load_notes(g)) == 3


def test_pad_into_max_pool_is_refused(tmp_path):
    path = build(tmp_path, lambda b: b.max_pool(b.pad(b.input((1, 4, 4, 2)), [[0, 0], [1, 1], [1, 1], [0, 0]])))
    with pytest.raises(UnsupportedModelError, match=r"operator 0 \(PAD\).*operator 1 \(MAX_POOL_2D\)"):
        tte.load(path)


@pytest.mark.parametrize("keep_dims", [True, False])
def test_mean_is_a_global_average_pool(tmp_path, keep_dims):
    def fn(b):
        x = b.conv2d(b.input((1, 5, 5, 3)), 6, 3, activation="RELU")
        x = b.mean(x, keep_dims=keep_dims)
        if keep_dims:
            x = b.reshape(x, (1, 6))
        b.fully_connected(x, 4)
    g = check(build(tmp_path, fn))
    assert "global_avgpool" in ops(g)


def test_average_and_max_pool_with_same_padding(tmp_path):
    def fn(b):
        x = b.input((1, 7, 7, 4))
        b.add(b.max_pool(x, 3, 2, "SAME"), b.avg_pool(x, 3, 2, "SAME"))
    g = check(build(tmp_path, fn))
    assert next(n for n in g.nodes if n.op == "avgpool").attrs["count_include_pad"] == 0


def test_mul_of_one_shape_and_a_per_channel_gate(tmp_path):
    def fn(b):
        x = b.conv2d(b.input((1, 4, 4, 6)), 6, 1)
        y = b.mul(x, b.conv2d(x, 6, 3))
        gate = b.logistic(b.mean(y, keep_dims=True))
        b.mul(y, gate)
    g = check(build(tmp_path, fn))
    muls = [n for n in g.nodes if n.op == "mul"]
    assert len(muls) == 2 and g[muls[1].inputs[1]].shape == (1, 6, 1, 1)


def test_concatenation_along_channels(tmp_path):
    def fn(b):
        x = b.input((1, 5, 5, 3))
        a = b.conv2d(x, 4, 3, activation="RELU")
        b.concat([a, b.quantize(b.conv2d(x, 2, 1), a.scale, a.zero_point)], axis=-1)  # TFLite: one quantization
    g = check(build(tmp_path, fn))
    assert next(n for n in g.nodes if n.op == "concat").attrs["axis"] == 1


def test_logistic_and_hard_swish(tmp_path):
    def fn(b):
        x = b.conv2d(b.input((1, 4, 4, 3)), 8, 3)
        b.add(b.hard_swish(x), b.conv2d(b.logistic(x), 8, 1))
    g = check(build(tmp_path, fn))
    assert {"sigmoid", "hardswish"} <= set(ops(g))


def test_residual_add_with_fused_relu(tmp_path):
    def fn(b):
        x = b.conv2d(b.input((1, 6, 6, 4)), 4, 3, activation="RELU")
        b.add(x, b.conv2d(x, 4, 3), activation="RELU")
    check(build(tmp_path, fn))


@pytest.mark.parametrize("shape", [(1, 1, 20, 4), (1, 49, 10, 1)])
def test_one_dimensional_models(tmp_path, shape):
    def fn(b):
        x = b.conv2d(b.input(shape), 8, (1, 3) if shape[1] == 1 else (10, 4), stride=(1, 2), activation="RELU")
        b.fully_connected(b.reshape(b.mean(x), (1, 8)), 5)
    g = check(build(tmp_path, fn))
    if shape[3] == 1:  # C == 1: NHWC and NCHW hold the same bytes, a reshape view instead of a transpose
        assert ops(g)[:2] == ["quantize", "reshape"]


def test_standalone_relus_fold_into_the_producer_or_requantize(tmp_path):
    def fn(b):
        x = b.relu6(b.conv2d(b.input((1, 4, 4, 3)), 4, 3))  # same parameters: a clamp, folded
        b.relu(x, same_quant=False)  # other parameters: a requantize with a clamp
    g = check(build(tmp_path, fn))
    assert ops(g).count("requantize") == 1 and any("RELU6" in n and "folded" in n for n in load_notes(g))


def test_int8_requantize_and_float_boundaries(tmp_path):
    def fn(b):
        x = b.input((1, 4, 4, 3), dtype="float32")
        x = b.quantize(x, 0.03, 5)
        x = b.conv2d(x, 4, 3)
        b.dequantize(b.quantize(x, x.scale * 1.7, 1))
    g = check(build(tmp_path, fn), float_input=True)
    assert ops(g)[0] == "quantize" and "requantize" in ops(g) and ops(g)[-1] == "dequantize"


# -- biases, names, notes ----------------------------------------------------------------------------


def test_missing_bias_is_synthetic_zeros(tmp_path):
    """litert refuses an int8 conv without bias: tte computes what TFLite does with a zero bias."""
    def fn(bias):
        return lambda b: b.fully_connected(b.reshape(b.conv2d(b.input((1, 4, 4, 3)), 4, 3, bias=bias), (1, -1)), 3,
                                           bias=bias)
    g = tte.load(build(tmp_path, fn(False), "none"))
    zeros = check(build(tmp_path, fn("zeros"), "zeros"))
    for n in (n for n in g.nodes if n.op in ("conv", "gemm")):
        assert not g[n.inputs[2]].data.any() and f"synthetic:{n.inputs[2]}" in g.metadata
    x = np.random.default_rng(0).integers(-128, 128, (1, 4, 4, 3)).astype(np.int8)
    a, b = tte_tensors(g, x), tte_tensors(zeros, x)
    assert all(np.array_equal(a[k], b[k]) for k in b if not k.endswith("bias"))


def test_bias_with_quantized_dimension_3_is_normalized(tmp_path):
    """litert refuses such files (TFLite Micro runs them): tte loads them and computes what TFLite
    computes with the bias read per output channel (the same model with quantized_dimension 0)."""
    def fn(dimension):
        def f(b):
            x = b.depthwise_conv2d(b.input((1, 5, 5, 4)), 3, bias_dimension=dimension)
            b.fully_connected(b.reshape(x, (1, -1)), 3, bias_dimension=dimension)
        return f
    odd, good_path = build(tmp_path, fn(3), "odd"), build(tmp_path, fn(0), "good")
    good = check(good_path)
    g = tte.load(odd)
    assert any("quantized_dimension" in n for n in load_notes(g))
    x = np.random.default_rng(0).integers(-128, 128, (1, 5, 5, 4)).astype(np.int8)
    a, b = tte_tensors(g, x), tte_tensors(good, x)
    assert all(np.array_equal(a[k], b[k]) for k in b)
    try:
        from tflite_micro.python.tflite_micro import runtime
    except ImportError:
        return
    it = runtime.Interpreter.from_file(str(odd))
    it.set_input(x, 0)
    it.invoke()
    assert np.array_equal(it.get_output(0), litert_tensors(good_path, x)["fc_2/out"])


def test_tflite_names_and_dynamic_batch(tmp_path):
    b = TFLiteBuilder()
    b.fully_connected(b.reshape(b.conv2d(b.input((1, 4, 4, 3), signature=(-1, 4, 4, 3)), 4, 3), (-1, 64)), 3)
    b.softmax(b.last)
    g = tte.load(b.save(tmp_path / "m.tflite"))
    assert g.inputs == ["input"] and g.outputs == ["logits"] and "conv_0/weight" in g.values
    notes = load_notes(g)
    assert any("dynamic batch" in n for n in notes) and any("SOFTMAX" in n and "dropped" in n for n in notes)
    assert g[g.nodes[-1].inputs[0]].shape == (1, 3)
    g2 = tte.load(tmp_path / "m.tflite", input_shape=(2, 4, 4, 3))
    assert g2[g2.inputs[0]].shape == (2, 4, 4, 3) and g2[g2.outputs[0]].shape == (2, 3)


def test_onnxruntime_arithmetic_can_be_chosen(tmp_path):
    path = build(tmp_path, lambda b: b.conv2d(b.input((1, 4, 4, 3)), 4, 3))
    assert arithmetic(tte.load(path, arithmetic="onnxruntime")) == "onnxruntime"


def test_inspect_lists_the_notes(tmp_path):
    b = TFLiteBuilder()
    b.softmax(b.fully_connected(b.reshape(b.conv2d(b.input((1, 4, 4, 3), signature=(-1, 4, 4, 3)), 4, 3),
                                          (1, -1)), 3))
    r = CliRunner().invoke(main, ["inspect", str(b.save(tmp_path / "m.tflite"))])
    assert r.exit_code == 0, r.output
    assert "arithmetic: tflite" in r.output and "note: trailing SOFTMAX" in r.output and "dynamic batch" in r.output


# -- errors: one line, naming the operator and the tensor --------------------------------------------


def one_line(excinfo) -> str:
    msg = str(excinfo.value)
    assert "\n" not in msg and "Traceback" not in msg
    return msg


def test_unknown_operator(tmp_path):
    b = TFLiteBuilder()
    x = b.conv2d(b.input((1, 4, 4, 3)), 4, 3)
    y = b.tensor("tanh/out", x.shape, scale=1 / 128, zero_point=0)
    b.op("TANH", [x.index], [y])
    with pytest.raises(UnsupportedModelError) as e:
        tte.load(b.save(tmp_path / "m.tflite", outputs=[type(x)(y, x.shape)]))
    assert "operator 1 (TANH): TANH is not supported" in one_line(e) and "CONV_2D" in str(e.value)


def test_softmax_inside_the_model(tmp_path):
    b = TFLiteBuilder()
    b.fully_connected(b.softmax(b.fully_connected(b.input((1, 8)), 4)), 3)
    with pytest.raises(UnsupportedModelError, match=r"operator 1 \(SOFTMAX\)"):
        tte.load(b.save(tmp_path / "m.tflite"))


def test_two_inputs(tmp_path):
    b = TFLiteBuilder()
    x, y = b.input((1, 4, 4, 2)), b.input((1, 4, 4, 2), name="other")
    b.add(x, y)
    with pytest.raises(UnsupportedModelError, match="2 inputs"):
        tte.load(b.save(tmp_path / "m.tflite", inputs=[x, y]))


def test_several_subgraphs(tmp_path):
    b = TFLiteBuilder()
    b.conv2d(b.input((1, 4, 4, 3)), 4, 3)
    path = tmp_path / "m.tflite"
    path.write_bytes(b.build(subgraphs=2))
    with pytest.raises(UnsupportedModelError, match="2 subgraphs") as e:
        tte.load(path)
    one_line(e)


def test_dynamic_spatial_size_needs_an_input_shape(tmp_path):
    b = TFLiteBuilder()
    b.conv2d(b.input((1, 4, 4, 3), signature=(-1, -1, -1, 3)), 4, 3)
    path = b.save(tmp_path / "m.tflite")
    with pytest.raises(DynamicShapeError, match="--input-shape input=1,D1,D2,3"):
        tte.load(path)
    for shape in ({"input": (1, 6, 5, 3)}, (1, 6, 5, 3)):
        g = tte.load(path, input_shape=shape)
        assert g["input"].shape == (1, 6, 5, 3) and g[g.outputs[0]].shape == (1, 6, 5, 4)
    with pytest.raises(DynamicShapeError, match="the model fixes it to 3"):
        tte.load(path, input_shape=(1, 6, 5, 4))


def test_float_weights_are_refused(tmp_path):
    b = TFLiteBuilder()
    x = b.input((1, 4))
    w = b.tensor("w", (2, 4), "float32", data=np.ones((2, 4), np.float32))
    y = b.tensor("y", (1, 2), scale=0.1, zero_point=0)
    b.op("FULLY_CONNECTED", [x.index, w, -1], [y])
    with pytest.raises(UnsupportedModelError) as e:
        tte.load(b.save(tmp_path / "m.tflite", outputs=[type(x)(y, (1, 2))]))
    assert "operator 0 (FULLY_CONNECTED)" in one_line(e) and "tensor 1 'w'" in str(e.value)


@pytest.mark.parametrize("cut", [8, 100, 0.5, 0.9])
def test_truncated_and_corrupt_files(tmp_path, cut):
    b = TFLiteBuilder()
    b.conv2d(b.input((1, 4, 4, 3)), 4, 3)
    raw = b.build()
    n = cut if isinstance(cut, int) else int(len(raw) * cut)
    bad = tmp_path / "bad.tflite"
    bad.write_bytes(raw[:n])
    with pytest.raises((ModelFileError, UnsupportedModelError)) as e:
        tte.load(bad)
    one_line(e)


def test_corrupt_bytes_never_give_a_traceback(tmp_path):
    b = TFLiteBuilder()
    b.conv2d(b.input((1, 4, 4, 3)), 4, 3)
    raw = bytearray(b.build())
    rng = np.random.default_rng(0)
    for trial in range(40):
        bad = bytearray(raw)
        for i in rng.integers(8, len(raw), 6):
            bad[i] = int(rng.integers(0, 256))
        path = tmp_path / f"bad{trial}.tflite"
        path.write_bytes(bytes(bad))
        try:
            tte.load(path)
        except TteError as e:
            assert "\n" not in str(e)
    r = CliRunner().invoke(main, ["inspect", str(tmp_path / "bad0.tflite")])
    assert "Traceback" not in r.output


def test_training_a_tflite_model_and_saving_it(tmp_path):
    def fn(b):
        x = b.conv2d(b.input((1, 6, 6, 3), signature=(-1, 6, 6, 3)), 8, 3, stride=2, activation="RELU6")
        x = b.depthwise_conv2d(x, 3, activation="RELU6")
        b.softmax(b.fully_connected(b.reshape(x, (1, -1)), 4))
    program = tte.compile(build(tmp_path, fn), scheme="full", lr=0.05)
    x = np.random.default_rng(0).uniform(-1, 1, (1, 6, 6, 3)).astype(np.float32)
    losses = [program.train_step(x, 1) for _ in range(8)]
    assert losses[-1] < losses[0] and program.infer(x).shape == (1, 4)
    with pytest.raises(TteError, match="TFLite") as e:
        program.save(tmp_path / "trained.onnx")
    one_line(e)


def test_squeeze_after_mean(tmp_path):
    def fn(b):
        x = b.mean(b.conv2d(b.input((1, 5, 5, 3)), 6, 3, activation="RELU"), keep_dims=True)
        b.fully_connected(b.squeeze(x, [1, 2]), 4)
    g = check(build(tmp_path, fn))
    assert ops(g).count("reshape") == 1 and "transpose" not in ops(g)[2:]


def test_add_of_a_constant_broadcast_per_channel(tmp_path):
    def fn(b):
        x = b.conv2d(b.input((1, 4, 4, 3)), 5, 3)
        c = b.tensor("bias_like", (5,), "int8", data=np.arange(-40, 60, 20, dtype=np.int8), scale=0.05, zero_point=3)
        y = b._act("add/out", x.shape, x.std)
        b.op("ADD", [x.index, c], [y.index], activation="RELU")
    g = check(build(tmp_path, fn))
    add = next(n for n in g.nodes if n.op == "add")
    assert g[add.inputs[1]].shape == (1, 5, 1, 1) and g[add.inputs[1]].is_const
    # the C kernel reads the constant per channel (b[(i / (H * W)) % C]) as the reference broadcasts it
    from tte.codegen import build_program

    def classifier(b):
        x = b.conv2d(b.input((1, 4, 4, 3)), 5, 3)
        c = b.tensor("bias_like", (5,), "int8", data=np.arange(-40, 60, 20, dtype=np.int8), scale=0.05, zero_point=3)
        y = b._act("add/out", x.shape, x.std)
        b.op("ADD", [x.index, c], [y.index], activation="RELU")
        b.fully_connected(b.reshape(b.mean(y, keep_dims=False), (1, 5)), 3)

    path = build(tmp_path, classifier, name="cls")
    for kind in ("tflite", "onnxruntime"):
        program = tte.compile(path, scheme="full", arithmetic=kind)
        native = build_program(program, str(tmp_path / f"c-{kind}"))
        for seed in range(3):
            x = np.random.default_rng(seed).uniform(-1, 1, g[g.inputs[0]].shape).astype(np.float32)
            assert np.array_equal(native.infer(x), program.infer(x)), (kind, seed)


def test_uint8_input_quantized_to_int8(tmp_path):
    b = TFLiteBuilder()
    x = b.input((1, 4, 4, 3), dtype="uint8", scale=0.02, zero_point=125)
    b.conv2d(b.quantize(x, 0.02, -3), 4, 3)
    path = b.save(tmp_path / "m.tflite")
    g = tte.load(path)
    assert any("uint8 input" in n for n in load_notes(g))
    u = np.random.default_rng(0).integers(0, 256, (1, 4, 4, 3)).astype(np.uint8)
    ref, got = litert_tensors(path, u), tte_tensors(g, ((u.astype(np.float32) - 125) * np.float32(0.02)))
    assert np.array_equal(got["quantize_0/out"], ref["quantize_0/out"].transpose(0, 3, 1, 2))
    assert np.array_equal(got["conv_1/out"], ref["conv_1/out"].transpose(0, 3, 1, 2))


def test_dilation_and_per_channel_activations_are_refused(tmp_path):
    b = TFLiteBuilder()
    x = b.input((1, 6, 6, 2))
    w = b.tensor("w", (2, 3, 3, 2), "int8", data=np.ones((2, 3, 3, 2), np.int8), scale=[0.1, 0.1])
    y = b.tensor("y", (1, 2, 2, 2), scale=0.1, zero_point=0)
    b.op("CONV_2D", [x.index, w], [y], padding="VALID", stride_h=1, stride_w=1, dilation_h=2, dilation_w=2)
    with pytest.raises(UnsupportedModelError, match=r"operator 0 \(CONV_2D\): dilation \[2, 2\]"):
        tte.load(b.save(tmp_path / "d.tflite", outputs=[type(x)(y, (1, 2, 2, 2))]))
    b = TFLiteBuilder()
    x = b.input((1, 4))
    y = b.tensor("y", (1, 4), scale=[0.1, 0.2, 0.1, 0.1], zero_point=[0, 0, 0, 0])
    b.op("RELU", [x.index], [y])
    with pytest.raises(UnsupportedModelError, match=r"operator 0 \(RELU\): tensor 1 'y'.*per channel"):
        tte.load(b.save(tmp_path / "p.tflite", outputs=[type(x)(y, (1, 4))]))


def test_fully_connected_over_rows_of_a_flattened_nhwc_tensor(tmp_path):
    """A FULLY_CONNECTED whose weight takes 8 of the 16 values a sample flattens to (two rows per sample): the
    flatten keeps TFLite's NHWC order (a transpose back), not the column permutation of whole-sample rows."""
    def fn(b):
        y = b.conv2d(b.input((1, 2, 2, 3)), 4, 1)
        r = b.reshape(y, (1, 16))
        w = b.tensor("w", (3, 8), "int8", data=(np.arange(24, dtype=np.int8).reshape(3, 8) - 12), scale=0.01,
                     zero_point=0)
        out = b._act("fc/out", (2, 3), 1.0)
        b.op("FULLY_CONNECTED", [r.index, w, -1], [out.index])
    g = check(build(tmp_path, fn))
    assert ops(g).count("transpose") == 2 and g[g.outputs[0]].shape == (2, 3)
