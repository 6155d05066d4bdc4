"""Trained programs saved back to ONNX, for every model form users have: QDQ and QOperator, per-channel
and per-tensor weights, Gemm with transB=0, MatMul heads, new heads and kept heads."""

from __future__ import annotations

import numpy as np
import onnx
import ortref
import pytest
from conftest import ZOO_MODELS
from inputs import inputs
from onnx import numpy_helper

import tte
from tte.zoo import INPUT_NAME, GraphBuilder, _Reader, calibration_inputs


def check_saved(program: tte.Program, path, shape, steps=6):
    """Train a few steps, save, reload: tte agrees exactly with the program, onnxruntime within a step."""
    xs = list(inputs(shape, steps, seed=4))
    classes = program.forward["logits"].shape[1]
    for i, x in enumerate(xs):
        program.train_step(x, i % classes)
    program.save(path)
    onnx.checker.check_model(onnx.load(str(path)), full_check=True)
    reloaded = tte.load(path)
    sess = ortref.session(str(path))
    step = float(reloaded[reloaded.nodes[-1].inputs[0]].quant.scale)
    for x in xs:
        ours = program.infer(x)
        assert np.array_equal(reloaded.infer(x), ours)
        assert np.abs(sess.run(None, {"input": x})[0] - ours).max() <= 1.01 * step
    return reloaded


@pytest.mark.parametrize("classes", [None, 3])
@pytest.mark.parametrize("name", ZOO_MODELS)
def test_zoo_models_save(zoo, tmp_path, name, classes):
    g = tte.load(zoo[name])
    if name == "concat_matmul" and classes:
        with pytest.raises(tte.TteError, match="followed by add"):
            tte.compile(zoo[name], classes=classes)
        return
    program = tte.compile(zoo[name], scheme="full", classes=classes, lr=0.05)
    reloaded = check_saved(program, tmp_path / "trained.onnx", g["input"].shape)
    # the trained values really are in the file, in the model's own layout
    for pname, value in program.parameters().items():
        assert np.array_equal(reloaded[pname].data, value), pname


def _gemm_transb0_model(tmp_path, per_channel: bool):
    from onnxruntime.quantization import QuantType, quantize_static

    g = GraphBuilder("transb0", seed=3, input_shape=(1, 3, 16, 16))
    x = g.flatten(g.global_avg_pool(g.relu(g.conv(INPUT_NAME, 3, 8, 3, stride=2))))
    w = g.const("fc_w", (g.rng.standard_normal((8, 6)) * 0.5).astype(np.float32))  # [K, N]
    b = g.const("fc_b", np.zeros(6, np.float32))
    out = g._node("Gemm", [x, w, b])  # transB = 0
    fpath = tmp_path / "transb0.float.onnx"
    onnx.save(g.finish(out, (1, 6)), str(fpath))
    qpath = tmp_path / f"transb0.{'pc' if per_channel else 'pt'}.int8.onnx"
    quantize_static(str(fpath), str(qpath), _Reader(calibration_inputs((1, 3, 16, 16))), per_channel=per_channel,
                    activation_type=QuantType.QInt8, weight_type=QuantType.QInt8)
    return qpath


@pytest.mark.parametrize("per_channel", [True, False])
@pytest.mark.parametrize("classes", [None, 4])
def test_gemm_transb0_and_per_tensor_save(tmp_path, per_channel, classes):
    path = _gemm_transb0_model(tmp_path, per_channel)
    w_before = {i.name: numpy_helper.to_array(i).shape for i in onnx.load(str(path)).graph.initializer}
    program = tte.compile(path, scheme="full", classes=classes, lr=0.05)
    check_saved(program, tmp_path / "trained.onnx", (1, 3, 16, 16))
    saved_model = onnx.load(str(tmp_path / "trained.onnx"))
    saved = {i.name: numpy_helper.to_array(i).shape for i in saved_model.graph.initializer}
    w = "fc_w_quantized"
    assert saved[w] == ((8, classes) if classes else w_before[w])  # still [K, N]


def test_bias_less_layers_train_their_weights_only(tmp_path):
    g = GraphBuilder("nobias", seed=2, input_shape=(1, 3, 16, 16))
    x = g.conv(INPUT_NAME, 3, 8, 3)
    g.nodes[-1].input.pop()  # no bias
    x = g.flatten(g.global_avg_pool(g.relu(x)))
    fpath = tmp_path / "nobias.float.onnx"
    onnx.save(g.finish(g.gemm(x, 8, 5), (1, 5)), str(fpath))
    from tte.zoo import quantize

    path = quantize(fpath, tmp_path / "nobias.int8.onnx")
    program = tte.compile(path, scheme="full", lr=0.05)
    inits = {i.name for i in onnx.load(str(path)).graph.initializer}
    assert set(program.params) <= inits  # gradients keyed by real initializers only
    assert sum(p.kind == "bias" for p in program.params.values()) == 1  # the Gemm's
    check_saved(program, tmp_path / "trained.onnx", (1, 3, 16, 16))
