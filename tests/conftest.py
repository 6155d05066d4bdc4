"""Shared fixtures: the paper's models in ../shared, the generated model zoo, figures for the summary."""

from __future__ import annotations

import os
import pathlib

import modelzoo
import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
SHARED = pathlib.Path(os.environ.get("TTE_SHARED", ROOT.parent / "shared"))
SHARED_MODELS = ["mbv2-w0.35", "mcunet-5fps", "proxyless-w0.3"]
ZOO_MODELS = list(modelzoo.GENERATED)

_FIGURES: list[str] = []


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
