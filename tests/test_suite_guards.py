"""The suite guards itself: in CI nothing may be skipped, and a missing ../shared or toolchain fails the run."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from conftest import ROOT, ci_problems


def run_pytest(tmp_path, test_source: str, **env) -> subprocess.CompletedProcess:
    """Run pytest with the suite's conftest on one small test module written to ``tmp_path``."""
    test = tmp_path / "test_probe.py"
    test.write_text(test_source)
    environ = {k: v for k, v in os.environ.items() if k not in ("CI", "TTE_SHARED")} | env
    return subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "conftest",
                           "--rootdir", str(tmp_path), str(test)], capture_output=True, text=True, timeout=300,
                          cwd=tmp_path, env=environ | {"PYTHONPATH": str(ROOT / "tests")})


def test_ci_without_shared_fails(tmp_path):
    p = run_pytest(tmp_path, "def test_nothing():\n    pass\n", CI="1", TTE_SHARED=str(tmp_path / "nowhere"))
    assert p.returncode != 0, p.stdout
    assert "CI is set but the suite cannot run whole" in p.stdout + p.stderr
    assert "nowhere" in p.stdout + p.stderr


def test_skips_fail_in_ci_and_only_there(tmp_path):
    if ci_problems():  # in CI the session would have stopped already; elsewhere this check needs the tools
        pytest.skip("needs ../shared and the toolchain: " + "; ".join(ci_problems()))
    source = "import pytest\n\ndef test_skipping():\n    pytest.skip('no toolchain')\n"
    p = run_pytest(tmp_path, source, CI="true")
    assert p.returncode == 1 and "skipped in CI, where nothing may be skipped: no toolchain" in p.stdout, p.stdout
    p = run_pytest(tmp_path, source)
    assert p.returncode == 0 and "1 skipped" in p.stdout, p.stdout


def test_runtime_c_line_coverage_by_direct_kernel_tests():
    """tools/coverage.py: the per-kernel tests reach (nearly) every line of runtime_c."""
    p = subprocess.run([sys.executable, str(ROOT / "tools" / "coverage.py"), "--fail-under", "95"],
                       capture_output=True, text=True, timeout=600, cwd=ROOT)
    assert p.returncode == 0, p.stdout[-3000:] + p.stderr[-2000:]
    total = float(p.stdout.split("TOTAL")[1].split()[-1])
    assert total >= 95.0


def test_readme_test_command_prints_per_file_progress(tmp_path):
    """The README's pytest command (its options, on two small files) prints one line per test file with its
    percentage, so a long run shows where it is."""
    import re

    readme = (ROOT / "README.md").read_text()
    command = re.findall(r"```bash\n(.*?)```", readme, flags=re.S)[1].strip()
    args = command.split("python -m pytest", 1)[1].split()
    for name in ("test_one.py", "test_two.py"):
        (tmp_path / name).write_text("def test_a():\n    pass\n\ndef test_b():\n    pass\n")
    environ = {k: v for k, v in os.environ.items() if k not in ("CI", "TTE_SHARED")}
    p = subprocess.run([sys.executable, "-m", "pytest", *args, "-p", "no:cacheprovider", "--rootdir", str(tmp_path),
                        str(tmp_path / "test_one.py"), str(tmp_path / "test_two.py")], capture_output=True, text=True,
                       timeout=300, cwd=tmp_path, env=environ)
    assert p.returncode == 0, p.stdout
    lines = p.stdout.splitlines()
    assert any(re.fullmatch(r"test_one\.py \.\. +\[ 50%\]", line) for line in lines), p.stdout
    assert any(re.fullmatch(r"test_two\.py \.\. +\[100%\]", line) for line in lines), p.stdout


def test_every_mutant_still_applies():
    """tools/mutate.py's mutants name code by its text: after a refactor each must still match exactly once (the
    script stops on one that does not; this catches it in the suite, before anyone runs the mutation score)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("tte_tools_mutate", ROOT / "tools" / "mutate.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    stale = [f"{m.name}: {m.path} holds its original text {(ROOT / m.path).read_text().count(m.old)} times"
             for m in module.MUTANTS if (ROOT / m.path).read_text().count(m.old) != 1]
    assert not stale, "\n".join(stale)
