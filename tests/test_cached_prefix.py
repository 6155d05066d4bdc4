"""Host training from a cache of the frozen prefix: the layers before the first trained one run once per image
(``NativeProgram.prefix`` / ``infer_prefix``), each step only the rest (``train_step_cached`` / ``predict_cached``),
and the parameters, losses and predictions are those of the whole step, bit for bit.  Every comparison is between
two separate C builds of one program, one trained whole and one from frontiers."""

from __future__ import annotations

import re
import shutil
import subprocess

import numpy as np
import pytest
from conftest import ROOT, SHARED, shared_model

import tte
from tte import data as td
from tte.codegen import build_program
from tte.codegen.c_train import cached_prefixes
from tte.ir.facts import LABEL
from tte.passes.prefix import frozen_prefix
from tte.trainer import fit

EXAMPLE = ROOT / "examples" / "tiny_cnn.int8.onnx"
KWS = SHARED / "models" / "external" / "kws_ref_model.tflite"  # the smallest of the MLPerf Tiny .tflite models
PUBLISHED = {"mbv2-w0.35": "99kb", "mcunet-5fps": "99kb", "proxyless-w0.3": "98kb"}
STEPS = 6


def bits(x) -> bytes:
    return np.ascontiguousarray(x).tobytes()


def pair(program, tmp_path):
    """Two separate C builds of ``program``: one to train whole, one from frontiers."""
    return build_program(program, str(tmp_path / "whole")), build_program(program, str(tmp_path / "cached"))


def assert_cached_training_is_bit_identical(program, tmp_path, computes: bool) -> None:
    whole, cached = pair(program, tmp_path)
    header = (tmp_path / "cached" / "tte_model.h").read_text()
    assert f"#define TTE_FRONTIER_BYTES {cached.frontier_bytes}\n" in header
    assert f"#define TTE_INFER_FRONTIER_BYTES {cached.infer_frontier_bytes}\n" in header
    assert all(bool(p.work) == computes for p in cached.prefixes), cached.prefixes
    rng = np.random.default_rng(7)
    inputs = rng.integers(-128, 128, (STEPS + 4, *whole.in_shape), dtype=np.int8)
    labels = rng.integers(0, 10, STEPS)
    frontiers = [cached.prefix(q) for q in inputs]  # all before any step: a frontier does not depend on the state
    infer_frontiers = [cached.infer_prefix(q) for q in inputs]  # the same for inference: a cut past a trained
    # parameter would make these stale after the steps
    assert all(f.dtype == np.int8 and f.size == cached.frontier_bytes for f in frontiers)
    initial = whole.state()
    for q, f, y in zip(inputs, frontiers, labels):
        assert bits(np.float32(whole.train_step_s8(q, y))) == bits(np.float32(cached.train_step_cached(f, y)))
    a, b = whole.state(), cached.state()
    assert a.keys() == b.keys() and all(bits(a[k]) == bits(b[k]) for k in a)
    assert any(bits(a[k]) != bits(initial[k]) for k in a), "the steps trained nothing: the comparison proves nothing"
    assert whole.steps == cached.steps == STEPS
    for q, f in zip(inputs, infer_frontiers):
        assert whole.predict(q) == cached.predict_cached(f)
        assert np.array_equal(f, cached.infer_prefix(q))
    # the rest of the step does read the frontier: another one gives another step
    loss_a, loss_b = whole.train_step_s8(inputs[0], 1), cached.train_step_cached(frontiers[0][::-1], 1)
    a, b = whole.state(), cached.state()
    assert loss_a != loss_b or any(bits(a[k]) != bits(b[k]) for k in a)


@pytest.mark.parametrize("name", sorted(PUBLISHED))
def test_paper_models_with_their_published_schemes(name, tmp_path):
    scheme = SHARED / "schemes" / f"{name}.{PUBLISHED[name]}.json"
    program = tte.compile(shared_model(name), scheme=str(scheme), classes=10)
    assert_cached_training_is_bit_identical(program, tmp_path, computes=True)


def test_a_prefix_with_nothing_to_run(tmp_path):
    """Every layer trains: the frontier is the int8 input itself (the cut right after the input's quantize)."""
    program = tte.compile(EXAMPLE, scheme="full", classes=10)
    train_prefix, _ = cached_prefixes(program)
    assert train_prefix.cut == 1 and train_prefix.work == 0
    assert_cached_training_is_bit_identical(program, tmp_path, computes=False)


@pytest.mark.parametrize("scheme", ["last-2", "full"])
def test_a_tflite_model(scheme, tmp_path):
    """TFLite arithmetic, an NHWC input; with ``full`` the frontier is a view of the input (its free transpose)."""
    if not KWS.exists():
        pytest.skip(f"{KWS} not found (set TTE_SHARED to the shared/ folder)")
    program = tte.compile(KWS, scheme=scheme, classes=10)
    assert_cached_training_is_bit_identical(program, tmp_path, computes=scheme != "full")


def test_the_cut_is_the_first_node_that_reads_what_trains():
    program = tte.compile(EXAMPLE, scheme="last-2", classes=10)
    g = program.train
    p = frozen_prefix(g)
    varying = set(g.state) | {LABEL}
    assert 1 < p.cut < len(g.nodes) and p.work > 0
    assert not any(varying & set(n.inputs) for n in g.nodes[:p.cut]) and varying & set(g.nodes[p.cut].inputs)
    produced = {o for n in g.nodes[:p.cut] for o in n.outputs}
    read = {i for n in g.nodes[p.cut:] for i in n.inputs}
    assert set(p.frontier) == produced & read
    fwd = program.inference[0]
    q = frozen_prefix(fwd, program.params)
    assert not any(set(program.params) & set(n.inputs) for n in fwd.nodes[:q.cut])
    assert set(program.params) & set(fwd.nodes[q.cut].inputs)


def test_fit_with_and_without_the_cache(tmp_path):
    """tte.trainer.fit: the same epochs (losses, accuracies) and state; with the cache, each sample's prefix runs
    once and no step runs whole."""
    program = tte.compile(EXAMPLE, scheme="last-2", classes=4)
    whole, cached = pair(program, tmp_path)
    rng = np.random.default_rng(3)
    fmt = td.model_input(program).format
    samples = td.Samples(fmt, rng.integers(-128, 128, (20, fmt.sample_bytes), dtype=np.int8),
                         rng.integers(0, 4, 20).astype(np.int32), 14, 4)
    calls = {"prefix": 0, "infer_prefix": 0}

    def counted(name):
        method = getattr(cached, name)

        def call(q):
            calls[name] += 1
            return method(q)
        return call

    def refused(*_):
        raise AssertionError("fit ran a whole step or prediction with the cache on")

    cached.prefix, cached.infer_prefix = counted("prefix"), counted("infer_prefix")
    cached.train_step_s8 = cached.predict = refused
    expected = fit(whole, samples, 3, cache=False)
    got = fit(cached, samples, 3, cache=True)
    assert got == expected and [e.line() for e in got] == [e.line() for e in expected]
    assert calls == {"prefix": 14, "infer_prefix": 6}
    a, b = whole.state(), cached.state()
    assert all(bits(a[k]) == bits(b[k]) for k in a)


@pytest.mark.skipif(shutil.which("arm-none-eabi-gcc") is None, reason="arm-none-eabi-gcc not installed")
def test_a_bare_metal_build_leaves_the_cached_functions_out_unless_asked(tmp_path):
    out = tmp_path / "c"
    tte.compile(EXAMPLE, scheme="last-2", classes=4).emit_c(out)
    flags = ["-std=c99", "-O2", "-Wall", "-Wextra", "-Wconversion", "-Wsign-conversion", "-Werror",
             "-ffp-contract=off", "-mcpu=cortex-m4", "-mfpu=fpv4-sp-d16", "-mfloat-abi=hard", "-mthumb",
             f"-I{out}", f"-I{out / 'runtime' / 'include'}", "-c", str(out / "tte_model.c")]
    symbols = {}
    for extra in ([], ["-DTTE_CACHED_PREFIX"]):
        obj = tmp_path / f"m{len(extra)}.o"
        p = subprocess.run(["arm-none-eabi-gcc", *flags, "-DTTE_BARE_METAL", *extra, "-o", str(obj)],
                           capture_output=True, text=True)
        assert p.returncode == 0 and not p.stderr, p.stderr
        nm = subprocess.run(["arm-none-eabi-nm", str(obj)], capture_output=True, text=True, check=True).stdout
        symbols[bool(extra)] = set(re.findall(r" T (tte_\w+)", nm))
    cached = {"tte_prefix_s8", "tte_train_step_cached", "tte_infer_prefix_s8", "tte_predict_cached"}
    assert not cached & symbols[False] and cached <= symbols[True]
    assert symbols[True] - cached == symbols[False]
