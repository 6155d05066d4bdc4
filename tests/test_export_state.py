"""From a device's state back to a model: the state blob a C program saved (NativeProgram, the host demo of `tte
compile`, the same demo on Cortex-M4 under QEMU) -> ``Program.load_state`` -> ``save`` / `tte export DIR --state
FILE -o out.onnx`, which onnxruntime scores as tte does.  `tte export` needs only the compiled directory (the
source ONNX may be gone), refuses what it must, and ``save`` is atomic and never reads the source file again."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import numpy as np
import onnx
import ortref
import pytest
from click.testing import CliRunner
from conftest import ROOT, ZOO_MODELS
from inputs import inputs

import tte
from tte.cli import main
from tte.codegen import state as st
from tte.codegen.project import DEMO_STEPS, RECORD, demo_inputs, write_project
from tte.plan import plan
from tte.zoo import gratings

EXAMPLE = ROOT / "examples" / "tiny_cnn.int8.onnx"
PARTIAL = {"bias_update_last": 2, "weight_update": {"8": 0.5, "9": 0.5}}  # permuted channels, split weights
ARM = shutil.which("arm-none-eabi-gcc") is not None and shutil.which("qemu-system-arm") is not None


def run(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


def one_line_error(result, *needles):
    assert result.exit_code == 1, result.output
    err = result.stderr.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in result.output, result.output
    for needle in needles:
        assert needle in err, (needle, err)


def scores_like_tte(program: tte.Program, path, count: int = 16):
    """onnxruntime on the saved model: logits within one int8 step of tte's, the same top-1; tte reloads it
    exactly."""
    sess = ortref.session(str(path))
    reloaded = tte.load(path)
    step = float(reloaded[reloaded.nodes[-1].inputs[0]].quant.scale)
    x, _ = gratings(count, program.forward[program.forward.inputs[0]].shape[1:], classes=4, seed=11)
    for xi in x:
        ours = program.infer(xi)
        theirs = sess.run(None, {"input": xi[None]})[0]
        assert np.abs(theirs - ours).max() <= 1.01 * step
        assert int(np.argmax(theirs)) == int(np.argmax(ours))
        assert np.array_equal(reloaded.infer(xi[None]), ours)


def test_native_state_to_onnx(tmp_path):
    program = tte.compile(EXAMPLE, scheme=PARTIAL, classes=4, lr=0.05)
    native = program.native(str(tmp_path / "c"))
    x, y = gratings(8, (3, 32, 32), classes=4)
    for xi, yi in zip(x, y):
        native.train_step(xi, int(yi))
    fresh = tte.compile(EXAMPLE, scheme=PARTIAL, classes=4, lr=0.05)
    fresh.load_state(native.state_blob())
    assert fresh.steps == 8
    for name, value in native.state().items():
        assert np.array_equal(fresh.state[name], value), name
    trained = tmp_path / "trained.onnx"
    fresh.save(trained)
    saved = {i.name: onnx.numpy_helper.to_array(i) for i in onnx.load(str(trained)).graph.initializer}
    params = fresh.parameters()
    assert any(name in fresh.perms for name in params)  # some weights come back un-permuted
    for name, value in params.items():
        assert np.array_equal(saved[name], value), name
    assert not all(np.array_equal(value, p) for value, p in zip(params.values(),
                                                                 program.parameters().values()))  # it trained
    scores_like_tte(fresh, trained)


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    """`tte compile` of a copy of the example (partial scheme), and the host demo's run, which saves the state."""
    d = tmp_path_factory.mktemp("export")
    model = d / "model.onnx"
    shutil.copyfile(EXAMPLE, model)
    scheme = d / "scheme.json"
    scheme.write_text(json.dumps(PARTIAL))
    out = d / "out"
    r = run("compile", model, "--scheme", scheme, "--classes", 4, "--lr", 0.05, "-o", out)
    assert r.exit_code == 0, r.output
    p = subprocess.run(["make", "-s", "-C", str(out), "run"], capture_output=True, text=True, timeout=600)
    assert p.returncode == 0, p.stdout[-2000:] + p.stderr[-2000:]
    assert "state saved to tte_state.bin: status 0" in p.stdout
    return d, model, scheme, out


def reference(model, steps: int = DEMO_STEPS) -> tte.Program:
    """The Python program of the project, trained on the demo's inputs as the device was."""
    program = tte.compile(model, scheme=PARTIAL, classes=4, lr=0.05)
    quant = program.forward[program.forward.nodes[0].output].quant
    shape = program.forward[program.forward.inputs[0]].shape
    for s, q in enumerate(demo_inputs(steps, int(np.prod(shape)))):
        x = ((q.astype(np.float32) - np.float32(quant.zero_point)) * np.float32(quant.scale)).reshape(shape)
        program.train_step(x.astype(np.float32), s % 4)
    return program


def test_the_device_saved_the_reference_state(project):
    d, model, _, out = project
    program = reference(model)
    record = json.loads((out / RECORD).read_text())
    assert record["fingerprint"] == f"{program.fingerprint:016x}"
    assert (out / record["source"]).read_bytes() == EXAMPLE.read_bytes()
    data = (out / "tte_state.bin").read_bytes()
    # the file is the demo's storage: slot 0 holds the blob the Python reference encodes, byte for byte
    assert data[:st.blob_bytes(st.state_layout(program))] == program.state_blob()


def test_tte_export_needs_only_the_compiled_directory(project):
    d, model, _, out = project
    program = reference(model)
    expected = d / "expected.onnx"
    program.save(expected)
    state = out / "tte_state.bin"
    first = d / "exported.onnx"
    r = run("export", out, "--state", state, "-o", first)
    assert r.exit_code == 0, r.output
    assert f"after {DEMO_STEPS} steps" in r.output
    assert first.read_bytes() == expected.read_bytes()
    scores_like_tte(program, first)
    # the source ONNX is gone: the directory has what export needs; and another process (another hash seed)
    # rebuilds the same program
    moved = d / "moved.onnx"
    os.replace(model, moved)
    try:
        second = d / "exported2.onnx"
        env = dict(os.environ, PYTHONPATH=str(ROOT), PYTHONHASHSEED="123")
        p = subprocess.run([sys.executable, "-m", "tte", "export", str(out), "--state", str(state), "-o", str(second)],
                           capture_output=True, text=True, cwd=d, env=env, timeout=600)
        assert p.returncode == 0, p.stderr
        assert second.read_bytes() == expected.read_bytes()
    finally:
        os.replace(moved, model)


def test_tte_export_refuses(project, tmp_path):
    d, model, _, out = project
    state = out / "tte_state.bin"
    target = tmp_path / "trained.onnx"
    assert run("export", out, "--state", state, "-o", target).exit_code == 0
    before = target.read_bytes()
    # an existing ONNX file only with --force; anything else never
    one_line_error(run("export", out, "--state", state, "-o", target), "exists", "--force")
    assert run("export", out, "--state", state, "-o", target, "--force").exit_code == 0
    assert target.read_bytes() == before
    notes = tmp_path / "notes.txt"
    notes.write_text("mine")
    one_line_error(run("export", out, "--state", state, "-o", notes, "--force"), "not an ONNX model")
    assert notes.read_text() == "mine"
    one_line_error(run("export", out, "--state", state, "-o", tmp_path), "is a directory")
    one_line_error(run("export", out, "--state", state, "-o", tmp_path / "no" / "such.onnx"), "cannot write")
    # not a compiled directory; a state of another model; not a state at all
    one_line_error(run("export", tmp_path, "--state", state, "-o", tmp_path / "a.onnx"), "tte compile")
    other = tte.compile(EXAMPLE, scheme=PARTIAL, classes=3)
    (tmp_path / "other.bin").write_bytes(other.state_blob())
    one_line_error(run("export", out, "--state", tmp_path / "other.bin", "-o", tmp_path / "a.onnx"),
                   "another model")
    (tmp_path / "junk.bin").write_bytes(b"\x00" * 100)
    one_line_error(run("export", out, "--state", tmp_path / "junk.bin", "-o", tmp_path / "a.onnx"),
                   "no tte state blob")
    assert not (tmp_path / "a.onnx").exists()
    help_text = run("export", "--help").output
    assert "--force" in help_text and "only" in help_text


def test_tte_export_of_a_tflite_directory_is_refused(project, tmp_path):
    _, _, _, out = project
    copy = tmp_path / "tflite"
    shutil.copytree(out, copy, ignore=shutil.ignore_patterns("tte_demo", "runtime"))
    record = json.loads((copy / RECORD).read_text())
    os.replace(copy / record["source"], copy / "tte_source.tflite")
    record["source"] = "tte_source.tflite"
    (copy / RECORD).write_text(json.dumps(record))
    one_line_error(run("export", copy, "--state", out / "tte_state.bin", "-o", tmp_path / "a.onnx"), "TFLite")


@pytest.mark.skipif(not ARM, reason="the Arm toolchain and QEMU are not installed (.ci/run installs them)")
def test_the_state_a_cortex_m4_saved_becomes_the_same_onnx(project, tmp_path):
    """The demo on Cortex-M4 under QEMU saves its state by semihosting: the same bytes as the host's, and
    `tte export` turns it into the same model."""
    d, model, _, out = project
    m4 = tmp_path / "m4"
    shutil.copytree(out, m4, ignore=shutil.ignore_patterns("tte_demo", "tte_state.bin"))
    p = subprocess.run(["make", "-s", "-C", str(m4), "run-cortex-m4"], capture_output=True, text=True, timeout=900)
    assert p.returncode == 0, p.stdout[-2000:] + p.stderr[-2000:]
    assert "state saved to tte_state.bin: status 0" in p.stdout
    assert (m4 / "tte_state.bin").read_bytes() == (out / "tte_state.bin").read_bytes()
    r = run("export", m4, "--state", m4 / "tte_state.bin", "-o", tmp_path / "m4.onnx")
    assert r.exit_code == 0, r.output
    expected = tmp_path / "expected.onnx"
    reference(model).save(expected)
    assert (tmp_path / "m4.onnx").read_bytes() == expected.read_bytes()


@pytest.mark.parametrize("name", ZOO_MODELS)
def test_every_compiled_directory_rebuilds_its_program(zoo, name, tmp_path):
    """`tte compile`'s directory (here with --scheme auto: the resolved scheme is recorded) rebuilds the same
    program for export, on every generated model (QDQ and QOperator, gemm heads stored [K, N], concat)."""
    from tte.cli import program_of_directory

    p = plan(zoo[name], 256 * 1024, 1024 * 1024, scheme="auto", lr=0.01)
    write_project(p.program, p, tmp_path / "out")
    rebuilt = program_of_directory(str(tmp_path / "out"))
    assert rebuilt.fingerprint == p.program.fingerprint
    x = next(inputs(p.program.forward[p.program.forward.inputs[0]].shape, 1, seed=3))
    p.program.train_step(x, 1)
    rebuilt.load_state(p.program.state_blob())
    p.program.save(tmp_path / "a.onnx")
    rebuilt.save(tmp_path / "b.onnx")
    assert (tmp_path / "a.onnx").read_bytes() == (tmp_path / "b.onnx").read_bytes()


# -- save ----------------------------------------------------------------------------------------------------------
def test_save_is_atomic_and_never_reads_the_source_again(tmp_path, monkeypatch):
    model = tmp_path / "model.onnx"
    shutil.copyfile(EXAMPLE, model)
    program = tte.compile(model, scheme="last-2", classes=4, lr=0.05)
    x, y = gratings(4, (3, 32, 32), classes=4)
    target = tmp_path / "trained.onnx"
    program.save(target)
    good = target.read_bytes()
    assert oct(target.stat().st_mode & 0o777) == oct(0o666 & ~_umask())
    for xi, yi in zip(x, y):
        program.train_step(xi, int(yi))

    def fail(*args, **kwargs):
        raise OSError(28, "No space left on device")

    for where in ("fsync", "replace"):
        with monkeypatch.context() as m:
            m.setattr(os, where, fail)
            with pytest.raises(tte.TteError, match="cannot write .*No space left on device"):
                program.save(target)
        assert target.read_bytes() == good  # the previous file, intact
        assert sorted(p.name for p in tmp_path.iterdir()) == ["model.onnx", "trained.onnx"]  # no temporary left
    with monkeypatch.context() as m:  # an interrupted write
        m.setattr(onnx.ModelProto, "SerializeToString", lambda self: (_ for _ in ()).throw(KeyboardInterrupt()))
        with pytest.raises(KeyboardInterrupt):
            program.save(target)
    assert target.read_bytes() == good
    # the source file edited, then deleted: save writes the model compiled from the original
    program.save(tmp_path / "a.onnx")
    shutil.copyfile(tmp_path / "trained.onnx", model)
    program.save(tmp_path / "b.onnx")
    model.unlink()
    program.save(tmp_path / "c.onnx")
    assert (tmp_path / "a.onnx").read_bytes() == (tmp_path / "b.onnx").read_bytes() == \
        (tmp_path / "c.onnx").read_bytes() != good


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def test_tflite_programs_refuse_to_save(tmp_path):
    program = tte.compile(EXAMPLE, scheme="last-2", classes=4)
    program.source, program.source_bytes = "model.tflite", b"\x1c\x00\x00\x00TFL3" + b"\x00" * 32
    with pytest.raises(tte.TteError, match="TFLite model and tte writes trained models as ONNX only"):
        program.save(tmp_path / "x.onnx")
    program.source_bytes = None
    with pytest.raises(tte.TteError, match="could not read its source"):
        program.save(tmp_path / "x.onnx")
    assert not (tmp_path / "x.onnx").exists()
