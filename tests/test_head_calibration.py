"""The new head calibrated on the user's samples (tte.autodiff.head.feature_rms): initial logits that spread
whatever the scale of the model's features."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import ROOT, SHARED

import tte
from tte.autodiff.head import feature_rms
from tte.autodiff.scheme import weighted_layers
from tte.ir.executor import batched, evaluate

VWW = SHARED / "models" / "external" / "vww_96_int8.tflite"  # features of RMS ~0.1
EXAMPLE = ROOT / "examples" / "tiny_cnn.int8.onnx"


def _inputs(g, n, seed=0):
    shape = g[g.inputs[0]].shape
    return np.random.default_rng(seed).uniform(-1, 1, (n,) + tuple(shape[1:])).astype(np.float32)


def _head_weights(program):
    _, head = weighted_layers(program.forward)
    w = program.forward[head.inputs[1]]
    return w.data.astype(np.float64) * w.quant.scale.reshape(-1, *[1] * (w.data.ndim - 1))


def test_small_features_get_a_head_whose_logits_spread():
    g = tte.load(VWW)
    x = _inputs(g, 8)
    rms = feature_rms(g, x)
    assert 0.01 < rms < 0.5
    raw = tte.compile(VWW, scheme="bias-only", classes=10)
    cal = tte.compile(VWW, scheme="bias-only", classes=10, calibration=x[:4])
    logits = {name: np.array([p.infer(v).ravel() for v in x[4:]]) for name, p in (("raw", raw), ("cal", cal))}
    assert len(np.unique(logits["raw"])) <= 3  # one output step is 1/4: all but a few logits read 0
    assert len(np.unique(logits["cal"])) >= 4 and 0.25 < logits["cal"].std() < 1.0
    # the same draw, scaled by 1 / RMS (of the 4 calibration samples), up to int8 rounding
    ratio = _head_weights(cal) / np.where(_head_weights(raw) == 0, np.nan, _head_weights(raw))
    assert np.nanmedian(ratio) == pytest.approx(1 / feature_rms(g, x[:4]), rel=0.05)
    assert "calibrated on features of RMS" in cal.forward.metadata["head"]


def test_feature_rms_is_the_classifier_inputs():
    g = tte.load(EXAMPLE)
    x = _inputs(g, 3, seed=1)
    _, head = weighted_layers(g)
    feats = []
    for v in x:
        env = {c.name: c.data for c in g.constants()}
        env[g.inputs[0]] = batched(v, g[g.inputs[0]].shape)
        evaluate(g, env)
        q = g[head.inputs[0]].quant
        feats.append((env[head.inputs[0]].astype(np.float64) - float(np.ravel(q.zero_point)[0])) * float(q.scale))
    assert feature_rms(g, x) == pytest.approx(float(np.sqrt(np.mean(np.square(np.concatenate(feats))))), rel=1e-12)
    assert feature_rms(g, x) != feature_rms(g, x[:1])


def test_calibration_errors_are_one_line():
    g = tte.load(EXAMPLE)
    with pytest.raises(tte.TteError, match="give classes=N"):
        tte.compile(EXAMPLE, scheme="full", calibration=_inputs(g, 2))
    with pytest.raises(tte.TteError, match="calibration samples must be finite float inputs of shape"):
        tte.compile(EXAMPLE, scheme="full", classes=4, calibration=np.zeros((2, 5), np.float32))
    bad = _inputs(g, 2)
    bad[0, 0, 0, 0] = np.nan
    with pytest.raises(tte.TteError, match="must be finite"):
        tte.compile(EXAMPLE, scheme="full", classes=4, calibration=bad)
    x = np.random.default_rng(0).integers(0, 255, (12, 28, 28)).astype(np.uint8)
    y = np.arange(12) % 4
    with pytest.raises(tte.TteError, match="calibrate must be a number of samples >= 0"):
        tte.train(EXAMPLE, x, y, calibrate=-1, engine="reference")


def test_train_calibrates_on_its_first_samples():
    x = np.random.default_rng(0).integers(0, 255, (12, 28, 28)).astype(np.uint8)
    y = np.arange(12) % 4
    a = tte.train(EXAMPLE, x, y, scheme="full", calibrate=4, engine="reference", test_fraction=0.25)
    b = tte.train(EXAMPLE, x, y, scheme="full", engine="reference", test_fraction=0.25)
    assert "calibrated" in a.program.forward.metadata["head"] and "calibrated" not in b.program.forward.metadata["head"]


def test_tte_train_calibrate_option(tmp_path):
    from click.testing import CliRunner

    from tte.cli import main

    x = np.random.default_rng(0).integers(0, 255, (12, 28, 28)).astype(np.uint8)
    np.savez(tmp_path / "d.npz", x=x, y=np.arange(12) % 4)
    args = ["train", str(EXAMPLE), "--data", str(tmp_path / "d.npz"), "--scheme", "full", "--test-fraction", "0.25"]
    ok = CliRunner().invoke(main, args + ["--calibrate", "4", "-o", str(tmp_path / "a.onnx")])
    assert ok.exit_code == 0, ok.output
    bad = CliRunner().invoke(main, args + ["--calibrate", "-1", "-o", str(tmp_path / "b.onnx")])
    assert bad.exit_code != 0 and "--calibrate" in bad.output and "Traceback" not in bad.output
