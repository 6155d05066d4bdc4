"""Cortex-M4 and M7 under QEMU: the emitted training loop links inside the budgets and trains exactly
like the host build."""

from __future__ import annotations

import re
import shutil
import subprocess

import pytest
from click.testing import CliRunner
from conftest import ROOT, SHARED, shared_model

from tte.cli import main

pytestmark = pytest.mark.skipif(shutil.which("arm-none-eabi-gcc") is None or shutil.which("qemu-system-arm") is None,
                                reason="the Arm toolchain and QEMU are not installed (.ci/run installs them)")
EXAMPLE = ROOT / "examples" / "tiny_cnn.int8.onnx"
STEP = re.compile(r"^step (\d+) loss \S+ \(([0-9a-f]{8})\)", re.M)


def compile_and_run(model, out, *args) -> dict[str, str]:
    r = CliRunner().invoke(main, ["compile", str(model), "--sram", "256k", "--flash", "1m", "-o", str(out), *args])
    assert r.exit_code == 0, r.output
    outputs = {}
    for target in ("run", "run-cortex-m4", "run-cortex-m7"):
        p = subprocess.run(["make", "-s", "-C", str(out), target], capture_output=True, text=True, timeout=900)
        assert p.returncode == 0, (target, p.stdout[-2000:], p.stderr[-2000:])
        outputs[target] = p.stdout
    return outputs


def losses(text: str) -> list[tuple[str, str]]:
    return STEP.findall(text)


@pytest.mark.parametrize("model,args", [
    (EXAMPLE, ["--classes", "4", "--scheme", "full"]),
    (EXAMPLE, ["--classes", "4", "--scheme", "last-3", "--stream-input"]),  # the demo's rows from its generator
    ("mbv2-w0.35", ["--classes", "10", "--lr", "0.003"]),
])
def test_qemu_training_equals_host(model, args, tmp_path, figures):
    if model == "mbv2-w0.35":
        model = shared_model(model)
        args = [*args, "--scheme", str(SHARED / "schemes" / "mbv2-w0.35.99kb.json")]
    out = compile_and_run(model, tmp_path / "out", *args)
    host = losses(out["run"])
    assert len(host) == 5
    for target in ("run-cortex-m4", "run-cortex-m7"):
        assert losses(out[target]) == host, target  # the same float32 bits, step after step
        assert "stack peak" in out[target] and "fault" not in out[target]
        ticks = [int(t) for t in re.findall(r"ticks (\d+)", out[target])]
        stack = re.search(r"stack peak (\d+)", out[target]).group(1)
        figures(f"QEMU {target[4:]} {model.name}: 5 steps equal to the host build, ~{5 * ticks[0] / 1e6:.0f} M "
                f"instructions per step, stack peak {stack} B")


def test_image_that_does_not_fit_is_a_link_error_not_a_silent_overflow(tmp_path):
    r = CliRunner().invoke(main, ["compile", str(EXAMPLE), "--sram", "256k", "--classes", "4", "--scheme", "full",
                                  "-o", str(tmp_path / "out")])
    assert r.exit_code == 0
    ld = tmp_path / "out" / "tte_cortex_m.ld"
    ld.write_text(ld.read_text().replace("LENGTH = 262144", "LENGTH = 65536"))
    p = subprocess.run(["make", "-s", "-C", str(tmp_path / "out"), "cortex-m4"], capture_output=True, text=True)
    assert p.returncode != 0 and "region `RAM' overflowed" in p.stderr


@pytest.mark.parametrize("name,scheme", [("proxyless-w0.3", "98kb"), ("mcunet-5fps", "99kb")])
def test_paper_models_link_in_256k_and_train(name, scheme, tmp_path, figures):
    from tte.device import run_demo

    out = tmp_path / "out"
    r = CliRunner().invoke(main, ["compile", str(shared_model(name)), "--sram", "256k", "--flash", "1m", "--scheme",
                                  str(SHARED / "schemes" / f"{name}.{scheme}.json"), "--classes", "10", "--lr",
                                  "0.003", "-o", str(out)])
    assert r.exit_code == 0, r.output
    result = run_demo(out, "cortex-m7")
    assert result.exit_code == 0 and len(result.losses) == 5
    assert result.ram_bytes <= 256 * 1024 and result.flash_bytes <= 1024 * 1024
    figures(f"QEMU M7 {name} [{scheme}]: {result.summary()}")


def test_tte_run_command(tmp_path):
    out = tmp_path / "out"
    assert CliRunner().invoke(main, ["compile", str(EXAMPLE), "--classes", "4", "-o", str(out)]).exit_code == 0
    r = CliRunner().invoke(main, ["run", str(out), "--target", "cortex-m4"])
    assert r.exit_code == 0, r.output
    assert "cortex-m4: exit code 0, 5 steps; flash" in r.stdout and "stack peak" in r.stdout
    assert "M instructions per step" in r.stdout
    r = CliRunner().invoke(main, ["run", str(tmp_path), "--target", "host"])
    assert r.exit_code == 1 and "no Makefile" in r.stderr
