"""Training on real samples, in C, on the host and on Cortex-M4 under QEMU, with the integers of the Python reference
(issue 12, acceptance 1), and `tte train` (acceptance 3): the epochs' mean losses and held-out accuracies are the
Python reference's exactly; the device's state becomes an ONNX model that onnxruntime scores as tte does."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys

import numpy as np
import pytest
from conftest import ROOT, SHARED, digits, shared_model
from conftest import run_cli as run

import tte
from tte import data as td
from tte.cli import program_of_directory
from tte.trainer import fit

EXAMPLE = ROOT / "examples" / "tiny_cnn.int8.onnx"
QEMU = shutil.which("arm-none-eabi-gcc") is not None and shutil.which("qemu-system-arm") is not None
EPOCH = re.compile(r"^(epoch \d+ train loss .*\))(?: ticks/step \d+)?$", re.M)

ORT_SCORE = r"""
import sys
import numpy as np
import onnxruntime as ort

ort.set_default_logger_severity(0)  # everything onnxruntime says, warnings included, goes to stderr
data = np.load(sys.argv[2])
session = ort.InferenceSession(sys.argv[1], providers=["CPUExecutionProvider"])
name = session.get_inputs()[0].name
print(" ".join(str(int(np.argmax(session.run(None, {name: x[None]})[0]))) for x in data["x"]))
"""


def epochs_of(text: str) -> list[str]:
    """The demo's epoch lines, without the Cortex-M tick counts."""
    return EPOCH.findall(text)


def onnxruntime_score(model, samples: td.Samples, tmp_path) -> tuple[list[int], str]:
    """onnxruntime's top-1 class of each test sample (float inputs that quantize to the samples), and what
    onnxruntime wrote on stderr at its most verbose."""
    test = np.arange(samples.train, samples.count)
    x = samples.format.dequantize(samples.inputs[test])
    np.savez(tmp_path / "test.npz", x=x, y=samples.labels[test])
    script = tmp_path / "ort_score.py"
    script.write_text(ORT_SCORE)
    p = subprocess.run([sys.executable, str(script), str(model), str(tmp_path / "test.npz")], capture_output=True,
                       text=True, timeout=600)
    assert p.returncode == 0, p.stderr[-3000:]
    return [int(t) for t in p.stdout.split()], p.stderr


def correct(tops: list[int], samples: td.Samples) -> int:
    return sum(int(t == y) for t, y in zip(tops, samples.labels[samples.train:]))


def reference(directory, samples: td.Samples, epochs: int):
    """The Python reference (numpy, tte.Program) of the program compiled in ``directory``, trained on the samples as
    the demo trains: its epoch lines and its state blob after each epoch."""
    program = program_of_directory(str(directory))  # the directory's program: the fingerprint is checked
    blobs = []
    history = fit(program, samples, epochs, on_epoch=lambda e: blobs.append(program.state_blob()))
    return [e.line() for e in history], blobs


def exported_from_blob(directory, blob: bytes, path, samples: td.Samples):
    """Save the reference's state as ONNX; and its top-1 class of each test sample."""
    program = program_of_directory(str(directory))
    program.load_state(blob)
    program.save(path)
    fmt = samples.format
    return [int(np.argmax(program.infer(fmt.dequantize(samples.inputs[i]).reshape(fmt.shape))))
            for i in range(samples.train, samples.count)]


def device_round_trip(tmp_path, model, compile_args, pack_args, host_epochs, figures, name):
    out, samples_file = tmp_path / "out", tmp_path / "samples.bin"
    r = run("compile", model, "-o", out, *compile_args)
    assert r.exit_code == 0, r.output
    r = run("data", "pack", digits(), "--model", model, "-o", samples_file, *pack_args)
    assert r.exit_code == 0, r.output
    samples = td.Samples.read(samples_file)
    expected, blobs = reference(out, samples, host_epochs)

    # the host build: `make run DATA=... EPOCHS=...` through `tte run`
    r = run("run", out, "--data", samples_file, "--epochs", host_epochs)
    assert r.exit_code == 0, r.output
    assert epochs_of(r.stdout) == expected
    assert "ticks" not in r.stdout
    figures(f"{name}: host C, {samples.train} train / {samples.test} test digits: " + " | ".join(expected))

    if not QEMU:
        pytest.skip("the Arm toolchain and QEMU are not installed (.ci/run installs them)")
    # Cortex-M4 under QEMU reads the same file by semihosting, one epoch
    r = run("run", out, "--target", "cortex-m4", "--data", samples_file, "--epochs", 1)
    assert r.exit_code == 0, r.output
    assert epochs_of(r.stdout) == expected[:1]
    assert "fault" not in r.stdout and re.search(r"ticks/step \d+", r.stdout)
    figures(f"{name}: Cortex-M4 (QEMU) 1 epoch: {expected[0]}; {r.stdout.strip().splitlines()[-1]}")

    # the state the device saved (the newest of its two slots) becomes an ONNX model: the reference's after epoch 1
    exported = tmp_path / "device.onnx"
    r = run("export", out, "--state", out / "tte_state.bin", "-o", exported)
    assert r.exit_code == 0, r.output
    assert f"after {samples.train} steps" in r.output
    tte_tops = exported_from_blob(out, blobs[0], tmp_path / "ref.onnx", samples)
    assert exported.read_bytes() == (tmp_path / "ref.onnx").read_bytes()
    tops, log = onnxruntime_score(exported, samples, tmp_path)
    tte_correct = int(re.search(r"test accuracy (\d+)/", expected[0]).group(1))
    assert tops == tte_tops and correct(tops, samples) == tte_correct, (tops, tte_tops, expected[0])
    assert "[W:" not in log, log
    figures(f"{name}: onnxruntime on the exported model: the same top-1 on all {samples.test} test samples, "
            f"{tte_correct}/{samples.test} correct")


def test_example_trains_on_digits_in_c_as_in_python(tmp_path, figures):
    """tiny_cnn with a new 10-class head, full update: 200 training / 100 test digits, 2 epochs on the host and 1
    on Cortex-M4."""
    compile_args = ["--classes", 10, "--scheme", "full", "--lr", 0.05]
    device_round_trip(tmp_path, EXAMPLE, compile_args, ["--limit", 300, "--split", 200], 2, figures, "tiny_cnn")


def test_tte_train_on_a_sample_file_is_the_demo(tmp_path):
    """The Python API (native C) on a packed file prints what the demo prints for it, for the program `tte compile`
    builds with the same options."""
    out, samples_file = tmp_path / "out", tmp_path / "samples.bin"
    assert run("compile", EXAMPLE, "-o", out, "--classes", 10, "--scheme", "full", "--lr", 0.05).exit_code == 0
    assert run("data", "pack", digits(), "--model", EXAMPLE, "-o", samples_file, "--limit", 60,
               "--split", 40).exit_code == 0
    r = run("run", out, "--data", samples_file, "--epochs", 2)
    assert r.exit_code == 0, r.output
    result = tte.train(EXAMPLE, samples_file, classes=10, scheme="full", lr=0.05, epochs=2)
    assert [e.line() for e in result.history] == epochs_of(r.stdout)
    assert result.program.fingerprint == program_of_directory(str(out)).fingerprint


def test_mbv2_trains_on_digits_in_c_as_in_python(tmp_path, figures):
    """mbv2-w0.35, the published 49kb scheme, a new 10-class head: 20 training / 20 test digits at 128 x 128, one
    epoch on the host and on Cortex-M4."""
    model = shared_model("mbv2-w0.35")
    compile_args = ["--classes", 10, "--scheme", SHARED / "schemes" / "mbv2-w0.35.49kb.json", "--lr", 0.003]
    device_round_trip(tmp_path, model, compile_args, ["--limit", 40, "--split", 20], 1, figures, "mbv2-w0.35 49kb")


def test_nhwc_tflite_model_trains_from_a_sample_file(tmp_path):
    """A TFLite model declares an NHWC input: the file holds NHWC samples, and the C trains as the reference."""
    from tflite_builder import TFLiteBuilder

    b = TFLiteBuilder(seed=1)
    t = b.input((1, 12, 12, 3))
    t = b.conv2d(t, 8, 3, stride=2, padding="SAME", activation="RELU6")
    t = b.fully_connected(b.reshape(t, (1, -1)), 10)
    b.softmax(t)
    model = tmp_path / "m.tflite"
    b.save(model)
    out = tmp_path / "out"
    r = run("compile", model, "-o", out, "--scheme", "full", "--lr", 0.02)
    assert r.exit_code == 0, r.output
    assert run("data", "pack", digits(), "--model", model, "-o", tmp_path / "s.bin", "--limit", 60, "--split",
               40).exit_code == 0
    samples = td.Samples.read(tmp_path / "s.bin")
    assert samples.format.layout == "NHWC" and samples.format.shape == (1, 12, 12, 3)
    program = tte.compile(model, scheme="full", lr=0.02)  # (tte export rebuilds ONNX programs only)
    assert f"{program.fingerprint:016x}" == json.loads((out / "tte_compile.json").read_text())["fingerprint"]
    expected = [e.line() for e in fit(program, samples, 2)]
    r = run("run", out, "--data", tmp_path / "s.bin", "--epochs", 2)
    assert r.exit_code == 0, r.output
    assert epochs_of(r.stdout) == expected


# -- tte train (acceptance 3) -------------------------------------------------------------------------------------
def test_tte_train_shows_progress_matches_the_api_and_writes_a_clean_onnx(tmp_path, figures):
    out, curve = tmp_path / "trained.onnx", tmp_path / "curve.png"
    args = ["--limit", 300, "--split", 200, "--epochs", 2, "--scheme", "full", "--classes", 10, "--lr", 0.05]
    r = run("train", EXAMPLE, "--data", digits(), "-o", out, "--plot", curve, *args)
    assert r.exit_code == 0, r.output
    lines = epochs_of(r.stdout)
    assert len(lines) == 2 and "over 200 steps, test accuracy" in lines[1]
    # a progress bar per epoch (rich, on stderr; a terminal sees it move)
    assert re.search(r"epoch 1/2 .*200/200 loss \d+\.\d{3}", r.stderr) and "epoch 2/2" in r.stderr
    assert f"wrote {out}" in r.stdout and curve.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    api = tte.train(EXAMPLE, digits(), limit=300, split=200, epochs=2, scheme="full", classes=10, lr=0.05)
    assert [e.line() for e in api.history] == lines  # the same accuracy (and losses) as the Python API

    tops, log = onnxruntime_score(out, api.samples, tmp_path)
    assert "[W:" not in log, log  # onnxruntime loads the trained model without a warning
    s = api.samples
    assert tops == [api.engine.predict(s.inputs[i]) for i in range(s.train, s.count)]
    assert correct(tops, s) == api.history[-1].correct
    figures(f"tte train tiny_cnn: {lines[-1]}; onnxruntime {correct(tops, s)}/{s.test}, the same top-1 throughout")

    # the Python API's model is the same file
    api.save(tmp_path / "api.onnx")
    assert (tmp_path / "api.onnx").read_bytes() == out.read_bytes()


def test_tte_train_reference_engine_is_the_same_integers():
    kwargs = {"limit": 30, "split": 20, "epochs": 1, "scheme": "full", "classes": 10, "lr": 0.05}
    native = tte.train(EXAMPLE, digits(), **kwargs)
    ref = tte.train(EXAMPLE, digits(), engine="reference", **kwargs)
    assert [e.line() for e in native.history] == [e.line() for e in ref.history]
    assert native.history[0].losses == ref.history[0].losses
    assert native.state_blob() == ref.program.state_blob()


def test_tte_train_refuses_to_overwrite_and_bad_options_are_one_line(tmp_path, monkeypatch):
    out = tmp_path / "x.onnx"
    out.write_text("my notes")
    r = run("train", EXAMPLE, "--data", digits(), "-o", out, "--limit", 20)
    assert r.exit_code == 1 and "refusing to overwrite" in r.stderr and out.read_text() == "my notes"
    r = run("train", EXAMPLE, "--data", digits(), "-o", out, "--limit", 20, "--force")
    assert r.exit_code == 1 and out.read_text() == "my notes"  # not an ONNX model: never replaced
    good = tmp_path / "m.onnx"
    assert run("train", EXAMPLE, "--data", digits(), "-o", good, "--limit", 20).exit_code == 0
    r = run("train", EXAMPLE, "--data", digits(), "-o", good, "--limit", 20)
    assert r.exit_code == 1 and "--force" in r.stderr
    assert run("train", EXAMPLE, "--data", digits(), "-o", good, "--limit", 20, "--force").exit_code == 0
    r = run("train", EXAMPLE, "--data", digits(), "-o", tmp_path / "y.onnx", "--classes", 3, "--limit", 20)
    assert r.exit_code == 1 and "10 classes" in r.stderr and len(r.stderr.strip().splitlines()) == 1
    r = run("train", EXAMPLE, "--data", digits(), "-o", tmp_path / "y.onnx", "--split", 0, "--limit", 20)
    assert r.exit_code == 1 and "no training samples" in r.stderr
    kws = SHARED / "models" / "external" / "kws_ref_model.tflite"  # cannot become ONNX: refused first
    r = run("train", kws, "--data", digits(), "-o", tmp_path / "k.onnx", "--limit", 20)
    assert r.exit_code == 1 and "a .tflite source cannot become" in r.stderr and len(r.stderr.strip().splitlines()) == 1
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # the 'plot' extra missing
    r = run("train", EXAMPLE, "--data", digits(), "-o", tmp_path / "z.onnx", "--plot", tmp_path / "c.png")
    assert r.exit_code == 1 and "pip install 'tte[plot]'" in r.stderr and not (tmp_path / "z.onnx").exists()
