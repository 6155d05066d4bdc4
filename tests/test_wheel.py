"""tte installed the ordinary way: a wheel built from this tree, installed into a fresh virtual environment, compiles
the example model and the emitted project builds and trains there (the wheel carries runtime_c as package data).
And the declared dependencies are exactly the ones used."""

from __future__ import annotations

import ast
import importlib.metadata
import importlib.util
import os
import pathlib
import re
import shutil
import subprocess
import sys

import pytest
import tomllib
from conftest import ROOT

PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
# import name -> distribution name, where they differ (and the distribution may not be installed here)
DISTRIBUTIONS = {"PIL": "pillow", "ai_edge_litert": "ai-edge-litert", "tflite_micro": "tflite-micro"}


def requirement_name(spec: str) -> str:
    return re.split(r"[<>=!~;\[ ]", spec, maxsplit=1)[0].strip().lower().replace("_", "-")


def third_party_imports(paths) -> dict[str, set[str]]:
    """Top-level names of the third-party modules imported in ``paths`` (function-local imports included) ->
    the files importing them."""
    local = {p.stem for p in (ROOT / "tests").glob("*.py")} | {p.stem for p in (ROOT / "tools").glob("*.py")} | \
        {p.stem for p in (ROOT / "benchmarks").glob("*.py")} | {"tte"}
    found: dict[str, set[str]] = {}
    for path in paths:
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else \
                [node.module] if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module else []
            for name in names:
                top = name.split(".")[0]
                if top not in sys.stdlib_module_names and top not in local:
                    found.setdefault(top, set()).add(str(path.relative_to(ROOT)))
    return found


def distribution(module: str) -> str:
    if module in DISTRIBUTIONS:
        return DISTRIBUTIONS[module]
    dists = importlib.metadata.packages_distributions().get(module)
    return (dists[0] if dists else module).lower().replace("_", "-")


def test_declared_dependencies_are_the_used_ones():
    """Every runtime dependency is imported by tte; every third-party module tte imports is declared (a runtime
    dependency, or an extra for the optional ones: matplotlib, Pillow); tests, tools and benchmarks import only
    declared packages (runtime or dev)."""
    project = PYPROJECT["project"]
    runtime = {requirement_name(s) for s in project["dependencies"]}
    extras = {name: {requirement_name(s) for s in specs} for name, specs in project["optional-dependencies"].items()}
    used = {distribution(m): files for m, files in third_party_imports(sorted((ROOT / "tte").rglob("*.py"))).items()}
    assert not runtime - set(used), f"declared but never imported by tte: {sorted(runtime - set(used))}"
    optional = set().union(*(deps for name, deps in extras.items() if name != "dev"))
    undeclared = {d: sorted(f) for d, f in used.items() if d not in runtime | optional}
    assert not undeclared, f"imported by tte but not declared: {undeclared}"
    others = [p for d in ("tests", "tools", "benchmarks", "examples") for p in sorted((ROOT / d).rglob("*.py"))]
    used = {distribution(m): files for m, files in third_party_imports(others).items()}
    undeclared = {d: sorted(f)[:3] for d, f in used.items() if d not in runtime | set().union(*extras.values())}
    assert not undeclared, f"imported by tests, tools or benchmarks but declared nowhere: {undeclared}"


def test_every_package_is_in_the_wheel_configuration():
    """pyproject lists tte's packages one by one (to map runtime_c into the package): a new one must be listed."""
    listed = set(PYPROJECT["tool"]["setuptools"]["packages"])
    packages = {".".join(p.relative_to(ROOT).parts) for p in (ROOT / "tte").rglob("*")
                if p.is_dir() and p.name != "__pycache__" and any(p.glob("*.py"))} | {"tte"}
    assert packages <= listed, f"not listed in pyproject.toml [tool.setuptools] packages: {sorted(packages - listed)}"
    runtime = {f"tte.runtime_c.{p.name}" for p in (ROOT / "runtime_c").iterdir() if p.is_dir()}
    assert runtime <= listed and PYPROJECT["tool"]["setuptools"]["package-dir"] == {"tte.runtime_c": "runtime_c"}


def _copy_tree(dst: pathlib.Path) -> pathlib.Path:
    """The source tree without its build leftovers, caches and VCS data (the wheel is built from the copy, so that
    building leaves nothing in the working tree)."""
    ignore = shutil.ignore_patterns(".git", "build", "dist", "*.egg-info", "__pycache__", ".pytest_cache", "out")
    shutil.copytree(ROOT, dst, ignore=ignore, symlinks=True)
    return dst


def _setuptools_ok() -> bool:
    if importlib.util.find_spec("setuptools") is None:
        return False
    version = tuple(int(x) for x in re.findall(r"\d+", importlib.metadata.version("setuptools"))[:2])
    return version >= (77, 0)


@pytest.mark.skipif(shutil.which("gcc") is None or shutil.which("make") is None, reason="needs gcc and make")
def test_wheel_installs_compiles_and_trains(tmp_path):
    """Acceptance: build the wheel, install it into a fresh virtual environment (numpy, onnx and onnxruntime come
    from this environment's site-packages; tte only from the wheel), then, from a directory outside the source
    tree, `tte compile examples/tiny_cnn.int8.onnx --classes 4 -o out` and `make -C out run` train."""
    src = _copy_tree(tmp_path / "src")
    dist = tmp_path / "dist"
    build = [sys.executable, "-m", "pip", "wheel", str(src), "--no-deps", "-w", str(dist), "-q",
             "--disable-pip-version-check"]
    if _setuptools_ok():
        build.append("--no-build-isolation")  # offline and fast: the setuptools already here
    p = subprocess.run(build, capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stdout + p.stderr
    (wheel,) = dist.glob("tte-*.whl")
    import zipfile

    names = zipfile.ZipFile(wheel).namelist()
    for f in ("tte/runtime_c/include/tte_runtime.h", "tte/runtime_c/board/tte_startup_cortex_m.c",
              "tte/runtime_c/src/tte_conv_s8.c", "tte/runtime_c/src/tte_internal.h"):
        assert f in names, f
    assert not [n for n in names if n.startswith(("runtime_c/", "tests/"))]

    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--system-site-packages", str(venv)], check=True, timeout=300)
    bindir = venv / ("Scripts" if os.name == "nt" else "bin")
    python = bindir / "python"
    p = subprocess.run([str(python), "-m", "pip", "install", "--no-deps", "--no-index", "--force-reinstall", "-q",
                        "--disable-pip-version-check", str(wheel)], capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stdout + p.stderr

    work = tmp_path / "work"
    (work / "examples").mkdir(parents=True)
    shutil.copy(ROOT / "examples" / "tiny_cnn.int8.onnx", work / "examples")
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "TTE_RUNTIME_DIR", "PYTHONHOME")}
    env["PATH"] = f"{bindir}{os.pathsep}{env.get('PATH', '')}"
    p = subprocess.run([str(python), "-c", "import tte, tte.ops.cgen as c; print(tte.__file__); print(c.RUNTIME_DIR)"],
                       cwd=work, env=env, capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stderr
    module, runtime = (pathlib.Path(line).resolve() for line in p.stdout.split())
    assert module.is_relative_to(venv.resolve()), f"tte imported from {module}, not from the wheel in {venv}"
    assert runtime.is_relative_to(venv.resolve()) and (runtime / "include" / "tte_runtime.h").is_file(), runtime

    p = subprocess.run([str(bindir / "tte"), "compile", "examples/tiny_cnn.int8.onnx", "--classes", "4", "-o", "out"],
                       cwd=work, env=env, capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stdout + p.stderr
    p = subprocess.run(["make", "-s", "-C", "out", "run"], cwd=work, env=env, capture_output=True, text=True,
                       timeout=300)
    assert p.returncode == 0, p.stdout + p.stderr
    losses = [float(line.split()[3]) for line in p.stdout.splitlines() if line.startswith("step ")]
    assert len(losses) == 5 and all(0 < x < 100 for x in losses), p.stdout
