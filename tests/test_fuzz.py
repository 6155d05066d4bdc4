"""A seeded, bounded fuzz of the ONNX frontend (tools/fuzz.py), with onnxruntime as the oracle.

A few hundred mutants of the example model -- byte-level (bits flipped, bytes set, inserted, deleted,
duplicated, the file truncated) and structural (attributes, dims, dtypes, initializer data, scales and
zero points, nodes and graph outputs removed, duplicated, rewired; tools/fuzz_mutants.py) -- each run
through onnxruntime, ``tte.load``, ``tte inspect`` and ``tte plan --scheme full``.  Every mutant ends in
success or in one ``error:`` line (never an internal error or a traceback); every mutant onnxruntime
refuses, tte refuses too (but for the onnxruntime limits in tools/fuzz.py's ALLOWED); and a few accepted,
changed mutants pass the default ``tte plan`` and train the same integers in C and in Python.
``python tools/fuzz.py`` runs the bigger offline fuzz (3000 mutants by default).
"""

from __future__ import annotations

import importlib.util
import sys

import onnx
import pytest
from conftest import ROOT

SEED, COUNT, NATIVE = 20240, 300, 5

def _load_fuzz():
    spec = importlib.util.spec_from_file_location("tte_tools_fuzz", ROOT / "tools" / "fuzz.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


fuzz = _load_fuzz()
ALLOWED = fuzz.ALLOWED  # onnxruntime refusals that are not the model's fault: (needle, why)


@pytest.fixture(scope="module")
def outcome():
    # tte plan --scheme full on every mutant; the default tte plan (--scheme auto) on the NATIVE trained ones
    out = fuzz.fuzz([str(p) for p in fuzz.example_models()], SEED, COUNT, workers=2, native=NATIVE, scheme="full")
    print("\n" + fuzz.summary(out))
    return out


def test_mutants_are_deterministic():
    path = fuzz.example_models()[0]
    base, data = onnx.load(str(path)), path.read_bytes()
    for i in range(20):
        assert fuzz.mutant(SEED, i, base, data) == fuzz.mutant(SEED, i, base, data)
    assert len({fuzz.mutant(SEED, i, base, data)[1] for i in range(20)}) == 20


def test_every_mutant_ends_in_success_or_one_error_line(outcome, figures):
    results = outcome["results"]
    assert len(results) == COUNT
    crashes = [f"[{r['index']}] {r['what']}: {r['crash']}" for r in results if r["verdict"] == "crash"]
    assert not crashes, "\n".join(crashes)
    kinds = {r["what"].split(":")[0] for r in results}
    assert "bytes" in kinds and len(kinds) >= 10, kinds  # both kinds of mutation, most structural mutators
    loads = {r["load"] for r in results}
    assert loads == {"ok", "error"}, loads
    figures(f"fuzz: {fuzz.summary(outcome).splitlines()[0]}")


def test_what_onnxruntime_refuses_tte_refuses(outcome, figures):
    refused = [r for r in outcome["results"] if r["ort"]]
    assert len(refused) > COUNT // 2
    misses = [r for r in refused if r["load"] == "ok"]
    unexplained = [f"[{r['index']}] {r['what']}: onnxruntime: {r['ort'][:200]}" for r in misses
                   if not any(needle in r["ort"] for needle, _ in ALLOWED)]
    assert not unexplained, "\n".join(unexplained)
    figures(f"fuzz: onnxruntime refuses {len(refused)} of {COUNT} mutants; tte refuses {len(refused) - len(misses)} "
            f"of them, loads {len(misses)} (onnxruntime limits)")


def test_accepted_mutants_train_the_same_in_c_and_python(outcome, figures):
    natives = outcome["natives"]
    assert natives, "no accepted mutant changed the model: raise COUNT"
    bad = [f"[{n['index']}] {n['what']}: {n['native']}" for n in natives if n.get("native")]
    assert not bad, "\n".join(bad)
    figures(f"fuzz: {len(natives)} accepted mutants train identically in C and Python")
