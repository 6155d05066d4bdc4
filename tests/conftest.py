"""Shared fixtures: the paper's models in ../shared, the generated model zoo, figures for the summary."""

from __future__ import annotations

import os
import pathlib
import shutil

import modelzoo
import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
SHARED = pathlib.Path(os.environ.get("TTE_SHARED", ROOT.parent / "shared"))
SHARED_MODELS = ["mbv2-w0.35", "mcunet-5fps", "proxyless-w0.3"]
ZOO_MODELS = list(modelzoo.GENERATED)

_FIGURES: list[str] = []

# In CI (the CI variable set, as CI services and .ci/run's caller do) nothing may be skipped: a missing
# ../shared, Arm toolchain, QEMU or optional package is a failure there, not a silently smaller suite.
IN_CI = os.environ.get("CI", "").lower() not in ("", "0", "false", "no")
CI_TOOLS = ("gcc", "make", "arm-none-eabi-gcc", "qemu-system-arm")


def ci_problems() -> list[str]:
    """What CI needs and this machine lacks (empty when everything is there)."""
    problems = [] if (SHARED / "models").is_dir() else [f"{SHARED} (the shared/ folder; set TTE_SHARED)"]
    problems += [f"{tool} (on PATH)" for tool in CI_TOOLS if shutil.which(tool) is None]
    return problems


def pytest_sessionstart(session):
    if IN_CI and (missing := ci_problems()):
        pytest.exit("CI is set but the suite cannot run whole; missing: " + "; ".join(missing), returncode=3)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """In CI, a skipped test fails (expected failures excepted)."""
    outcome = yield
    report = outcome.get_result()
    if IN_CI and report.skipped and not hasattr(report, "wasxfail"):
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
        reason = reason.removeprefix("Skipped: ")
        report.outcome = "failed"
        report.longrepr = f"skipped in CI, where nothing may be skipped: {reason}"


DIGITS = SHARED / "data" / "mnist10k.npz"


def digits() -> str:
    """The shared digit data set's path (the test is skipped where ../shared is missing)."""
    if not DIGITS.exists():
        pytest.skip(f"{DIGITS} not found (set TTE_SHARED to the shared/ folder)")
    return str(DIGITS)


def run_cli(*args):
    """`tte ARGS...` in this process (click's runner): its exit code and output."""
    from click.testing import CliRunner

    from tte.cli import main

    return CliRunner().invoke(main, [str(a) for a in args])


def shared_model(name: str) -> pathlib.Path:
    path = SHARED / "models" / f"{name}.int8.onnx"
    if not path.exists():
        pytest.skip(f"{path} not found (set TTE_SHARED to the shared/ folder)")
    return path


@pytest.fixture(scope="session")
def zoo(tmp_path_factory) -> dict[str, pathlib.Path]:
    """Every generated model, built once per session: name -> int8 ONNX path."""
    out = tmp_path_factory.mktemp("zoo")
    return {name: modelzoo.build(name, out) for name in ZOO_MODELS}


@pytest.fixture
def model_path(request, zoo) -> pathlib.Path:
    """Parametrize with 'shared:NAME' or 'zoo:NAME'."""
    kind, name = request.param.split(":", 1)
    return shared_model(name) if kind == "shared" else zoo[name]


ALL_MODELS = [f"shared:{n}" for n in SHARED_MODELS] + [f"zoo:{n}" for n in ZOO_MODELS]


@pytest.fixture
def figures():
    """Append a line to the figures printed at the end of the run (for issue notes and docs)."""
    return _FIGURES.append


def pytest_terminal_summary(terminalreporter):
    if _FIGURES:
        terminalreporter.section("figures")
        for line in _FIGURES:
            terminalreporter.write_line(line)
