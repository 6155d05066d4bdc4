"""Training end to end on the reference executor: QAS makes int8 SGD learn; the trained model saves."""

from __future__ import annotations

import json

import numpy as np
import ortref
import pytest
from conftest import ROOT, SHARED

import tte
from tte.autodiff.scheme import SchemeError
from tte.zoo import gratings

EXAMPLE = ROOT / "examples" / "tiny_cnn.int8.onnx"


def mean_loss(program: tte.Program, images, labels) -> float:
    total = 0.0
    for x, y in zip(images, labels):
        z = program.infer(x).astype(np.float64)[0]
        z -= z.max()
        total += np.log(np.exp(z).sum()) - z[y]
    return total / len(images)


def train(program, images, labels, steps=100):
    for s in range(steps):
        i = s % len(images)
        program.train_step(images[i], labels[i])


def test_qas_sgd_learns_a_small_task(figures):
    images, labels = gratings(32, (3, 32, 32), classes=4)
    results = {}
    for qas in (True, False):
        program = tte.compile(EXAMPLE, scheme="full", classes=4, qas=qas, lr=0.05)
        start = mean_loss(program, images, labels)
        train(program, images, labels)
        results[qas] = (start, mean_loss(program, images, labels))
    figures(f"100 SGD steps, tiny_cnn, 4-class gratings: QAS {results[True][0]:.3f} -> {results[True][1]:.3f}, "
            f"without QAS {results[False][0]:.3f} -> {results[False][1]:.3f}")
    assert results[True][1] < 0.3 * results[True][0]
    assert results[False][1] > 0.9 * results[False][0]  # integer-unit gradients barely move int8 weights


@pytest.mark.parametrize("rounding", ["nearest", "trunc", "stochastic", "accumulate"])
def test_every_rounding_mode_trains(rounding):
    images, labels = gratings(16, (3, 32, 32), classes=4)
    program = tte.compile(EXAMPLE, scheme="last-3", classes=4, rounding=rounding, lr=0.05, momentum=0.5)
    start = mean_loss(program, images, labels)
    train(program, images, labels, steps=48)
    assert mean_loss(program, images, labels) < 0.8 * start


def test_large_steps_keep_int8_weights_symmetric():
    """Trained int8 weights stay in [-127, 127] (symmetric, as the quantizer made them) however large the
    step: big steps drive many weights to the bounds, and none goes past -127."""
    images, labels = gratings(16, (3, 32, 32), classes=4)
    program = tte.compile(EXAMPLE, scheme="full", classes=4, lr=0.5, rounding="nearest")
    train(program, images, labels, steps=20)
    weights = {k: v for k, v in program.parameters().items() if program.params[k].kind == "weight"}
    assert all(v.dtype == np.int8 for v in weights.values())
    low = sum(int((v == -127).sum()) for v in weights.values())
    high = sum(int((v == 127).sum()) for v in weights.values())
    assert low > 20 and high > 20, (low, high)  # the bounds were reached ...
    assert min(int(v.min()) for v in weights.values()) == -127  # ... and never crossed


@pytest.mark.parametrize("qas", [True, False])
def test_bias_only_training_moves_biases_and_lowers_the_loss(qas):
    """With QAS, the biases of a bias-only scheme move (the bias step is scaled like the weights') and the
    loss falls; without QAS integer-unit steps leave them where they are."""
    images, labels = gratings(32, (3, 32, 32), classes=4)
    program = tte.compile(EXAMPLE, scheme="bias-only", classes=4, lr=0.05, qas=qas)
    initial = program.parameters()
    start = mean_loss(program, images, labels)
    train(program, images, labels, steps=20)
    params = program.parameters()
    biases = [k for k, p in program.params.items() if p.kind == "bias" and p.node != program.plan.classifier]
    assert len(biases) == 10
    moved = sum(int((params[k] != initial[k]).sum()) for k in biases)
    total = sum(initial[k].size for k in biases)
    if qas:
        assert moved >= 0.9 * total, (moved, total)
        assert all((params[k] != initial[k]).any() for k in biases)
        assert mean_loss(program, images, labels) < 0.7 * start
    else:
        assert moved == 0


def test_training_is_deterministic_and_seeded():
    images, labels = gratings(8, (3, 32, 32), classes=4)
    runs = []
    for seed in (5, 5, 6):
        program = tte.compile(EXAMPLE, scheme="last-2", rounding="stochastic", seed=seed, lr=0.05)
        train(program, images, labels, steps=10)
        runs.append(program.parameters())
    assert all(np.array_equal(runs[0][k], runs[1][k]) for k in runs[0])
    assert not all(np.array_equal(runs[0][k], runs[2][k]) for k in runs[0])


def test_sgd_step_edge_cases():
    """Steps never wrap around: +-inf saturate, NaN moves nothing, an unmoved -128 stays."""
    from tte.ir import Graph, Node
    from tte.ops.update import sgd

    node = Node("sgd", "u", [], [], dict(lr=1.0, rounding="nearest", axis=0, channels=4, qmin=-127, qmax=127))
    param = np.array([0, 5, -128, 100], np.int8)
    grad = np.array([-np.inf, np.nan, 0.0, np.inf], np.float32)
    with np.errstate(invalid="ignore"):
        out = sgd(Graph(), node, param, grad, np.ones(4, np.float32))
    assert out.tolist() == [127, 5, -128, -127]


@pytest.mark.parametrize("classes", [None, 4])
def test_trained_model_saves_to_onnx(tmp_path, classes):
    images, labels = gratings(16, (3, 32, 32), classes=classes or 10)
    program = tte.compile(EXAMPLE, scheme="full", classes=classes, lr=0.05)
    initial = program.parameters()
    train(program, images, labels, steps=30)
    path = tmp_path / "trained.onnx"
    program.save(path)
    reloaded = tte.load(path)
    sess = ortref.session(str(path))
    q = float(reloaded[reloaded.nodes[-1].inputs[0]].quant.scale)
    for x in images[:8]:
        ours = program.infer(x)
        assert np.array_equal(reloaded.infer(x[None]), ours)
        assert np.abs(sess.run(None, {"input": x[None]})[0] - ours).max() <= q * 1.01
    # training moved most tensors, and the saved file holds the trained values, not the initial ones
    params = program.parameters()
    changed = [k for k in params if not np.array_equal(params[k], initial[k])]
    assert len(changed) >= 0.75 * len(params), (len(changed), len(params))
    saved = {k: reloaded[k].data for k in params}
    assert all(np.array_equal(saved[k], params[k]) for k in params)


def test_grads_are_keyed_by_onnx_initializer(tmp_path):
    program = tte.compile(EXAMPLE, scheme="last-1")
    x, _ = gratings(1, (3, 32, 32), classes=10)
    grads = program.grads(x[0], 3)
    assert set(grads) == {"conv_param9_w_quantized", "conv_param9_b_quantized", "gemm_param0_w_quantized",
                          "gemm_param0_b_quantized"}
    assert grads["gemm_param0_w_quantized"].shape == (10, 24)


@pytest.mark.parametrize("content,needle", [
    ("{not json", "not valid JSON"),
    ('{"weight_update": {}}', "missing 'bias_update_last'"),
    ('{"bias_update_last": -1}', "non-negative integer"),
    ('{"bias_update_last": 2, "weight_update": {"3": 1.5}}', "number in [0, 1]"),
    ('{"bias_update_last": 2, "weight_update": {"x": 1}}', "not a layer index"),
    ('{"bias_update_last": 2, "weight_update": {"99": 1}}', "has layers 0..9"),
    ('{"bias_update_last": 50}', "only 10 layers"),
    ('{"bias_update_last": 1, "weights": {}}', "unknown key"),
    ('[1, 2]', "expected a JSON object"),
])
def test_bad_scheme_files(tmp_path, content, needle):
    path = tmp_path / "scheme.json"
    path.write_text(content)
    with pytest.raises(SchemeError) as e:
        tte.compile(EXAMPLE, scheme=path)
    assert needle in str(e.value) and "scheme.json" in str(e.value), str(e.value)


def test_scheme_presets_and_unknown_names():
    # tiny_cnn: 10 conv layers + the classifier; bias-only trains 10 biases + the classifier's weight and bias
    assert len(tte.compile(EXAMPLE, scheme="bias-only").params) == 10 + 2
    assert len(tte.compile(EXAMPLE, scheme="last-2").params) == 2 * 2 + 2
    with pytest.raises(SchemeError, match="unknown scheme 'most'"):
        tte.compile(EXAMPLE, scheme="most")
    with pytest.raises(tte.TteError, match="unknown rounding"):
        tte.compile(EXAMPLE, rounding="up")


def test_published_scheme_format():
    path = SHARED / "schemes" / "mbv2-w0.35.99kb.json"
    if not path.exists():
        pytest.skip(f"{path} not found")
    scheme = json.loads(path.read_text())
    parsed = tte.SparseScheme.from_dict(scheme)
    assert parsed.bias_last == 25 and parsed.weights[42] == 0.125 and parsed.weights[27] == 1.0
