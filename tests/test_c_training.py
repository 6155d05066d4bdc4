"""The generated C training step: identical to the Python reference, step after step."""

from __future__ import annotations

import subprocess

import numpy as np
import pytest
from conftest import ROOT, SHARED, SHARED_MODELS, ZOO_MODELS, shared_model
from inputs import inputs

import tte
from tte.codegen import build_program
from tte.codegen.c_train import emit_program
from tte.codegen.native import SANITIZE, compile_c
from tte.plan import plan

EXAMPLE = ROOT / "examples" / "tiny_cnn.int8.onnx"
PUBLISHED = {"mbv2-w0.35": "99kb", "mcunet-5fps": "99kb", "proxyless-w0.3": "98kb"}


def assert_same_step(program: tte.Program, native, step: int, ref: float, c: float) -> None:
    """After one training step of both: the same loss (float32 sums, 1e-5) and the same state (integers exactly,
    float optimizer state to 1e-5)."""
    assert abs(ref - c) <= 1e-5 * max(abs(ref), 1e-6), (step, ref, c)
    state = native.state()
    for name, value in program.state.items():
        if value.dtype.kind == "f":
            np.testing.assert_allclose(state[name], value, rtol=1e-5, atol=1e-7, err_msg=name)
        else:
            assert np.array_equal(state[name], value), (step, name)


def train_both(program: tte.Program, tmp_path, steps: int = 20):
    """Train the reference and the C build on the same fixed inputs; compare after every step."""
    native = build_program(program, str(tmp_path / "c"))
    shape = program.forward[program.forward.inputs[0]].shape
    classes = program.forward["logits"].shape[1]
    losses = []
    for s, x in enumerate(inputs(shape, steps, seed=5)):
        ref, c = program.train_step(x, s % classes), native.train_step(x, s % classes)
        losses.append((ref, c))
        assert_same_step(program, native, s, ref, c)
    x = next(inputs(shape, 1, seed=9))
    assert np.array_equal(native.infer(x), program.infer(x))
    return losses


@pytest.mark.parametrize("name", SHARED_MODELS)
def test_shared_models_with_a_published_scheme(name, tmp_path, figures):
    scheme = SHARED / "schemes" / f"{name}.{PUBLISHED[name]}.json"
    program = tte.compile(shared_model(name), scheme=scheme, classes=10, lr=0.003)
    losses = train_both(program, tmp_path)
    figures(f"C training {name} [{PUBLISHED[name]}]: 20 steps identical to the reference, loss "
            f"{losses[0][1]:.3f} -> {losses[-1][1]:.3f}")


@pytest.mark.parametrize("name", ZOO_MODELS)
def test_generated_models_full_update(name, zoo, tmp_path):
    train_both(tte.compile(zoo[name], scheme="full", lr=0.05), tmp_path)


def test_large_steps_stop_at_the_int8_bounds(tmp_path):
    """Steps large enough to drive weights to the int8 bounds: C stops at -127 / 127 as the reference."""
    program = tte.compile(EXAMPLE, scheme="full", classes=4, lr=0.5, rounding="nearest")
    train_both(program, tmp_path, steps=12)
    weights = [v for k, v in program.state.items() if k in program.params and program.params[k].kind == "weight"]
    assert sum(int((w == -127).sum()) for w in weights) > 20 and min(int(w.min()) for w in weights) == -127


@pytest.mark.parametrize("options", [dict(rounding="nearest"), dict(rounding="trunc"), dict(rounding="accumulate"),
                                     dict(momentum=0.9), dict(rounding="accumulate", momentum=0.5), dict(qas=False)])
def test_update_options(options, tmp_path):
    train_both(tte.compile(EXAMPLE, scheme="last-4", classes=4, lr=0.05, **options), tmp_path, steps=12)


def test_learning_rate_schedule_in_c_and_reference(tmp_path):
    """A schedule set between steps (tte_set_learning_rate / Program.set_learning_rate) trains the same integers;
    the rate changes the steps (a constant rate trains others); bad rates are refused by both, rate kept."""
    program = tte.compile(EXAMPLE, scheme="last-4", classes=4, lr=0.05, rounding="nearest")
    constant = tte.compile(EXAMPLE, scheme="last-4", classes=4, lr=0.05, rounding="nearest")
    native = build_program(program, str(tmp_path / "c"))
    assert native.learning_rate == program.learning_rate == np.float32(0.05)
    shape = program.forward[program.forward.inputs[0]].shape
    for s, x in enumerate(inputs(shape, 10, seed=5)):
        lr = 0.05 * (s + 1) / 3 if s < 3 else 0.05 * 0.5 * (1 + np.cos(np.pi * (s - 3) / 7))
        program.set_learning_rate(lr + 1e-4)
        native.set_learning_rate(lr + 1e-4)
        assert native.learning_rate == program.learning_rate == np.float32(lr + 1e-4)
        ref, c = program.train_step(x, s % 4), native.train_step(x, s % 4)
        constant.train_step(x, s % 4)
        assert_same_step(program, native, s, ref, c)
    assert any(not np.array_equal(constant.state[k], v) for k, v in program.state.items())
    for bad in (0.0, -1.0, float("nan"), float("inf"), 1e39):
        with pytest.raises(tte.TteError, match="positive and finite"):
            program.set_learning_rate(bad)
        with pytest.raises(tte.TteError, match="positive and finite"):
            native.set_learning_rate(bad)
    assert native.learning_rate == program.learning_rate
    program.set_learning_rate(0.0125)
    emit_program(program, tmp_path / "later")  # C emitted later starts from the program's rate
    assert "#define TTE_LEARNING_RATE 0x1.99999ap-7f" in (tmp_path / "later" / "tte_model.h").read_text()


def test_two_builds_in_one_directory_are_two_programs(tmp_path):
    """The loader keeps one library per path: a second build into the same directory must still run its own code
    and its own state (it once silently ran the first one's)."""
    a = tte.compile(EXAMPLE, scheme="full", classes=4, lr=0.05)
    b = tte.compile(EXAMPLE, scheme="full", classes=4, lr=0.2)
    na, nb = build_program(a, str(tmp_path)), build_program(b, str(tmp_path))
    x = next(inputs(a.forward[a.forward.inputs[0]].shape, 1, seed=3))
    for program, native in ((a, na), (b, nb)):
        assert_same_step(program, native, 0, program.train_step(x, 1), native.train_step(x, 1))
    assert na.steps == nb.steps == 1


def test_training_sources_are_deterministic(tmp_path):
    a = emit_program(tte.compile(EXAMPLE, scheme="full", classes=4), tmp_path / "a")
    b = emit_program(tte.compile(EXAMPLE, scheme="full", classes=4), tmp_path / "b")
    for pa, pb in zip(a, b):
        assert pa.read_bytes() == pb.read_bytes(), pa.name


def sanitizer_input(step: int, size: int) -> np.ndarray:
    """The input main.c below computes for ``step``, in the same float32 operations."""
    k = (np.arange(size, dtype=np.int64) * 7 + step * 13) % 255
    return (k.astype(np.float32) / np.float32(127.5) - np.float32(1)).astype(np.float32)


def test_training_under_sanitizers(tmp_path):
    """Training steps of a host build under AddressSanitizer and UndefinedBehaviorSanitizer, on mcunet (the
    model with int32-limit biases): clean, and the losses are the reference's."""
    steps = 8
    program = tte.compile(shared_model("mcunet-5fps"), scheme=SHARED / "schemes" / "mcunet-5fps.49kb.json",
                          classes=10, lr=0.01)
    emit_program(program, tmp_path)
    (tmp_path / "main.c").write_text(r"""
#include <stdio.h>
#include "tte_model.h"
int main(void) {
    static float input[TTE_INPUT_SIZE];
    float loss = 0.0f;
    for (int step = 0; step < %d; step++) {
        for (int i = 0; i < TTE_INPUT_SIZE; i++) input[i] = (float)((i * 7 + step * 13) %% 255) / 127.5f - 1.0f;
        if (tte_train_step(input, step %% TTE_CLASSES, &loss) != 0) return 1;
        printf("%%.9g\n", loss);
    }
    return 0;
}
""" % steps)
    exe = compile_c(tmp_path, tmp_path / "train", SANITIZE)
    p = subprocess.run([str(exe)], capture_output=True, text=True, timeout=600)
    assert p.returncode == 0, p.stderr[-2000:]
    assert "runtime error" not in p.stderr, p.stderr[-2000:]
    losses = [float(v) for v in p.stdout.split()]
    shape = program.forward[program.forward.inputs[0]].shape
    size = int(np.prod(shape))
    expected = [program.train_step(sanitizer_input(s, size).reshape(shape), s % 10) for s in range(steps)]
    assert len(losses) == steps
    np.testing.assert_allclose(losses, expected, rtol=1e-5)


def test_program_api_memory_report_and_emit_c(tmp_path):
    program = tte.compile(EXAMPLE, scheme="last-2")
    report = program.memory_report()
    # the Python API and `tte plan` account the same program the same way
    assert report.to_dict() == plan(EXAMPLE, sram=256 * 1024, scheme="last-2").memory.to_dict()
    files = program.emit_c(tmp_path)
    assert (tmp_path / "tte_model.c") in files and (tmp_path / "runtime" / "include" / "tte_runtime.h") in files
