"""`tte compile`: the emitted directory builds without edits, runs, and matches the reference."""

from __future__ import annotations

import filecmp
import shutil
import subprocess

import numpy as np
import pytest
from click.testing import CliRunner
from conftest import ROOT, shared_model

from tte.cli import main
from tte.codegen.project import DEMO_STEPS, demo_inputs
from tte.plan import plan
from tte.reference import semantics as sem

EXAMPLE = ROOT / "examples" / "tiny_cnn.int8.onnx"


def run(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


def test_compile_make_run_matches_reference(tmp_path):
    out = tmp_path / "out"
    r = run("compile", EXAMPLE, "--sram", "256k", "--classes", "4", "-o", out)
    assert r.exit_code == 0, r.output
    assert "make -C" in r.stdout and (out / "memory.txt").read_text().count("SRAM: peak") == 1
    p = subprocess.run(["make", "-s", "-C", str(out), "run"], capture_output=True, text=True)
    assert p.returncode == 0, p.stderr
    losses = [float(line.split()[3]) for line in p.stdout.splitlines() if line.startswith("step")]
    assert len(losses) == DEMO_STEPS
    # the same program in Python, on the demo's int8 inputs (as floats that quantize back exactly)
    program = plan(EXAMPLE, sram=256 * 1024, scheme="auto", classes=4).program
    q = program.forward[program.forward.nodes[0].output].quant
    expected = []
    for s, xq in enumerate(demo_inputs(DEMO_STEPS, 3 * 32 * 32)):
        x = sem.dequantize(xq, q.scale, q.zero_point).reshape(1, 3, 32, 32)
        assert np.array_equal(sem.quantize(x, float(q.scale), int(q.zero_point)).reshape(-1), xq)
        expected.append(program.train_step(x, s % 4))
    np.testing.assert_allclose(losses, expected, rtol=1e-5)


def test_compile_is_deterministic(tmp_path):
    for d in ("a", "b"):
        assert run("compile", EXAMPLE, "--scheme", "full", "-o", tmp_path / d).exit_code == 0
    cmp = filecmp.dircmp(tmp_path / "a", tmp_path / "b")
    assert not cmp.diff_files and not cmp.left_only and not cmp.right_only
    assert not filecmp.dircmp(tmp_path / "a" / "runtime" / "src", tmp_path / "b" / "runtime" / "src").diff_files


def test_budget_fails_before_any_c_is_written(tmp_path):
    out = tmp_path / "never"
    r = run("compile", shared_model("mbv2-w0.35"), "--sram", "128k", "--scheme", "full", "--classes", "10", "-o", out)
    assert r.exit_code == 1 and "KB budget" in r.stderr and "Traceback" not in r.output
    assert "kept for stack, heap and C library" in r.stderr and len(r.stderr.strip().splitlines()) == 1
    assert not out.exists()


@pytest.mark.skipif(shutil.which("arm-none-eabi-gcc") is None, reason="arm-none-eabi-gcc not installed")
def test_cortex_m_images_build_warning_free(tmp_path):
    out = tmp_path / "out"
    assert run("compile", shared_model("mbv2-w0.35"), "--sram", "256k", "--classes", "10", "-o", out).exit_code == 0
    for target in ("cortex-m4", "cortex-m7"):
        p = subprocess.run(["make", "-s", "-C", str(out), target], capture_output=True, text=True)
        assert p.returncode == 0 and not p.stderr.strip(), p.stderr
        assert (out / f"tte_demo_{target}.elf").exists()
        assert "RAM:" in p.stdout and "256 KB" in p.stdout


def test_compile_help():
    r = run("compile", "--help")
    assert r.exit_code == 0 and "--sram" in r.stdout and "--target" in r.stdout and "-o, --output" in r.stdout
