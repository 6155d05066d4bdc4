"""README.md starts with the two commands, CI runs exactly the test one, and the API example runs."""

from __future__ import annotations

import re
import subprocess
import sys

from conftest import ROOT

README = (ROOT / "README.md").read_text()
BLOCKS = re.findall(r"```(\w+)\n(.*?)```", README, flags=re.S)


def test_readme_starts_with_install_and_test_commands():
    (lang1, run), (lang2, test) = BLOCKS[:2]
    assert (lang1, lang2) == ("bash", "bash")
    assert run.strip() == ("pip install -e . && tte compile examples/tiny_cnn.int8.onnx --sram 256k --classes 4 "
                           "-o out && make -C out run")
    assert "pytest" in test
    ci = (ROOT / ".ci" / "run").read_text()
    assert test.strip() in ci.splitlines(), "CI must run exactly the README's test command"
    # per-file progress: pytest's default output (a line per test file with its percentage), not -q's dots
    pytest_args = test.split("pytest", 1)[1].split()
    assert "-q" not in pytest_args and "--quiet" not in pytest_args, test


def test_readme_says_how_to_get_the_toolchain():
    """The apt-get line of the README installs what .ci/run installs."""
    ci = (ROOT / ".ci" / "run").read_text()
    packages = {"gcc-arm-none-eabi", "libnewlib-arm-none-eabi", "qemu-system-arm"}
    assert packages <= set(ci.split())
    lines = re.findall(r"`apt-get install ([^`]*)`", README)
    assert lines and all(set(line.split()) == packages for line in lines), lines


def test_readme_says_what_the_code_does():
    """The new head's logits range is the code's (tte/autodiff/head.py), the Cortex-M targets build ELF images
    (the emitted Makefile's), and the runtime reserve is the code's."""
    from tte.autodiff.head import LOGIT_RANGE
    from tte.codegen.project import MAKEFILE, RUNTIME_RESERVE

    text = " ".join(README.split())
    assert f"fixed symmetric range of +-{LOGIT_RANGE:g} (scale {LOGIT_RANGE:g}/127, zero point 0" in text
    assert "the old head's output quantization is kept" not in text
    assert "static library" not in text and "bare-metal ELF images" in text
    assert "cortex-m4: tte_demo_cortex-m4.elf" in MAKEFILE
    assert f"{RUNTIME_RESERVE // 1024} KB kept for" in text


def test_first_command_runs(tmp_path):
    """Everything after the install, as written, from a scratch directory that has examples/."""
    (tmp_path / "examples").symlink_to(ROOT / "examples")
    compile_cmd, make_cmd = [c.split() for c in BLOCKS[0][1].strip().split("&&")[1:]]
    p = subprocess.run([sys.executable, "-m", "tte", *compile_cmd[1:]], cwd=tmp_path, capture_output=True, text=True)
    assert p.returncode == 0, p.stderr
    p = subprocess.run(make_cmd, cwd=tmp_path, capture_output=True, text=True)
    assert p.returncode == 0, p.stderr
    assert p.stdout.count(" loss ") == 5


def test_python_examples_run(tmp_path):
    """Every python block of the README, run as written from a scratch directory that has examples/."""
    (tmp_path / "examples").symlink_to(ROOT / "examples")
    blocks = [body for lang, body in BLOCKS if lang == "python"]
    assert len(blocks) >= 2
    stdout = ""
    for code in blocks:
        p = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True)
        assert p.returncode == 0, p.stderr
        stdout += p.stdout
    assert (tmp_path / "tiny_cnn.trained.onnx").exists()
    loss = float(re.search(r"loss after 100 steps: ([0-9.]+)", stdout).group(1))
    assert loss < 0.5
