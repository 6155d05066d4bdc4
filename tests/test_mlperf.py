"""The three MLPerf Tiny reference models (../shared/models/external/*.tflite, written by others) taken
directly as .tflite files: inspect, forward against TFLite's reference kernels ("tflite" arithmetic, the default)
and TFLite Micro's ("tflite-micro"), plan, compile and train in C exactly as the Python reference does."""

from __future__ import annotations

import subprocess

import numpy as np
import pytest
from click.testing import CliRunner
from conftest import SHARED
from test_c_training import assert_same_step
from tflite_builder import differences, logits_model, micro_output, tte_tensors

import tte
from tte.cli import main
from tte.codegen import build_program
from tte.codegen.project import DEMO_STEPS, demo_inputs
from tte.ir.facts import arithmetic, load_notes
from tte.plan import plan
from tte.reference import semantics as sem

MODELS = {"vww": "vww_96_int8", "resnet8": "pretrainedResnet_quant", "kws": "kws_ref_model"}
CLASSES = {"vww": 2, "resnet8": 10, "kws": 12}
SRAM = 256 * 1024


def model(name: str):
    path = SHARED / "models" / "external" / f"{MODELS[name]}.tflite"
    if not path.exists():
        pytest.skip(f"{path} not found (set TTE_SHARED to the shared/ folder)")
    return path


def run(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


@pytest.mark.parametrize("name", MODELS)
def test_inspect(name):
    r = run("inspect", model(name))
    assert r.exit_code == 0, r.output
    assert "arithmetic: tflite" in r.output
    assert "note: input" in r.output and "dynamic batch" in r.output and "note: trailing SOFTMAX" in r.output


@pytest.mark.parametrize("name", MODELS)
def test_canonical_form(name):
    g = tte.load(model(name))
    assert arithmetic(g) == "tflite" and g.metadata["format"] == "tflite"
    x = g[g.inputs[0]]
    assert x.dtype == "float32" and x.shape[0] == 1 and len(x.shape) == 4
    assert [n.op for n in g.nodes[:2]] == ["quantize", "reshape" if x.shape[3] == 1 else "transpose"]
    assert g.nodes[-1].op == "dequantize" and g[g.outputs[0]].shape == (1, CLASSES[name])
    assert len(load_notes(g)) == 2


@pytest.mark.parametrize("name", MODELS)
def test_forward_matches_tflite_reference_kernels(name, figures):
    """20 seeded int8 inputs: the logits (the SOFTMAX's input) and every intermediate tensor tte keeps,
    NHWC compared as NCHW, bit for bit with litert's reference kernels."""
    path = model(name)
    g = tte.load(path)
    logits = g.nodes[-1].inputs[0]
    layers = [n.output for n in g.nodes if n.op in ("conv", "gemm")]
    compared = 0
    for seed in range(20):
        x = np.random.default_rng(seed).integers(-128, 128, g[g.inputs[0]].shape).astype(np.int8)
        diff = differences(g, path, x)
        assert logits in diff and set(layers) <= set(diff)
        for tensor, (bad, total, worst) in diff.items():
            assert bad == 0, f"seed {seed}: {tensor}: {bad} of {total} values differ (by up to {worst})"
            compared += total
    figures(f"MLPerf Tiny {name}: {compared:,} int8 values ({len(diff)} tensors x 20 inputs) identical to TFLite's "
            f"reference kernels")


@pytest.mark.parametrize("name", MODELS)
def test_forward_matches_tflite_micro(name, figures):
    """arithmetic="tflite-micro" on 20 seeded int8 inputs: the logits equal, bit for bit, those of TFLite Micro
    (the tflite-micro package's interpreter, the kernels a device runs).  TFLite Micro keeps no intermediate
    tensor and the model's output is its SOFTMAX's, so TFLite Micro runs a copy of the model whose output is the
    SOFTMAX's input (tflite_builder.logits_model): the logits, the last tensor tte computes, which every layer's
    rounding reaches."""
    path = model(name)
    g, ref = tte.load(path, arithmetic="tflite-micro"), tte.load(path)
    assert arithmetic(g) == "tflite-micro" and arithmetic(ref) == "tflite"
    logits = g.nodes[-1].inputs[0]
    data = logits_model(path.read_bytes())
    differ = 0
    for seed in range(20):
        x = np.random.default_rng(seed).integers(-128, 128, g[g.inputs[0]].shape).astype(np.int8)
        want = micro_output(data, x).reshape(-1)
        got = tte_tensors(g, x)[logits].reshape(-1)
        np.testing.assert_array_equal(got, want, err_msg=f"seed {seed}")
        differ += not np.array_equal(tte_tensors(ref, x)[logits].reshape(-1), want)
    figures(f"MLPerf Tiny {name}, tflite-micro arithmetic: logits of 20 inputs identical to TFLite Micro's "
            f"(tflite arithmetic, litert's reference kernels: {differ} of 20 differ from TFLite Micro)")


def test_inspect_tflite_micro():
    r = run("inspect", model("kws"), "--arithmetic", "tflite-micro")
    assert r.exit_code == 0, r.output
    assert "arithmetic: tflite-micro" in r.output


@pytest.mark.parametrize("name", MODELS)
def test_plan_fits_256k_with_auto_scheme(name):
    r = run("plan", model(name), "--sram", "256k", "--scheme", "auto")
    assert r.exit_code == 0, r.output
    assert "fits" in r.output


@pytest.mark.parametrize("name", MODELS)
def test_compile_make_run_trains_as_the_reference(name, tmp_path, figures):
    path = model(name)
    out = tmp_path / "out"
    r = run("compile", path, "--sram", "256k", "-o", out)
    assert r.exit_code == 0, r.output
    p = subprocess.run(["make", "-s", "-C", str(out), "run"], capture_output=True, text=True)
    assert p.returncode == 0, p.stderr[-3000:]
    steps = [line.split() for line in p.stdout.splitlines() if line.startswith("step")]
    assert len(steps) == DEMO_STEPS, p.stdout
    # the same program in Python (the same budget and accounting as the CLI), on the demo's
    # int8 NHWC inputs given as floats that quantize back exactly
    program = plan(path, sram=SRAM, scheme="auto").program
    assert program.plan.scheme.name in r.output
    g = program.forward
    shape, q = g[g.inputs[0]].shape, g[g.nodes[0].output].quant
    for s, xq in enumerate(demo_inputs(DEMO_STEPS, int(np.prod(shape)))):
        x = sem.dequantize(xq, q.scale, q.zero_point).reshape(shape)
        assert np.array_equal(sem.quantize(x, float(q.scale), int(q.zero_point)).reshape(-1), xq)
        loss = program.train_step(x, s % CLASSES[name])
        c_bits = int(steps[s][4].strip("()"), 16)  # the float32 loss's bits, as main.c prints them
        assert np.float32(loss).view(np.uint32) == c_bits, (s, loss, steps[s][3])
    figures(f"MLPerf Tiny {name} from .tflite: `make run` trains {DEMO_STEPS} steps, losses "
            f"{steps[0][3]} -> {steps[-1][3]}, bit for bit the Python reference's ({program.plan.scheme.name})")


@pytest.mark.parametrize("arith", ["tflite", "tflite-micro"])
@pytest.mark.parametrize("name", MODELS)
def test_native_training_state_equals_the_reference(name, arith, tmp_path):
    """The trained int8 weights and int32 biases and the loss after each of three steps: the C build's equal
    Python's, in both TFLite arithmetics (tflite-micro: fully connected layers requantized with MBQM by
    tte_gemm_s8)."""
    program = plan(model(name), sram=SRAM, scheme="auto", arithmetic=arith).program
    g = program.forward
    assert arithmetic(g) == arith and any(n.op == "gemm" for n in g.nodes)
    native = build_program(program, str(tmp_path / "c"))
    shape, q = g[g.inputs[0]].shape, g[g.nodes[0].output].quant
    for s, xq in enumerate(demo_inputs(3, int(np.prod(shape)))):
        x = sem.dequantize(xq, q.scale, q.zero_point).reshape(shape)
        assert_same_step(program, native, s, program.train_step(x, s % CLASSES[name]),
                         native.train_step(x, s % CLASSES[name]))
    assert np.array_equal(native.infer(x), program.infer(x))
