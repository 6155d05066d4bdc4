"""`tte search` / tte.search: contribution trials and the evolutionary search of a sparse-update scheme.

The example model on 600 digits, small trials: the CLI writes a scheme that `tte plan` accepts within the budget (its
figure is the search's); 1 worker, 2 worker processes and a local Ray instance give the same scheme and trial table;
a rerun takes every trial from the cache; bad input is one line; the search itself finds the optimum of a small
problem whose answer is known; a trial's faster build trains the integers of build_program."""

from __future__ import annotations

import json
import math
import pathlib
import re
import sys
import tempfile
from itertools import product

import numpy as np
import pytest
from conftest import ROOT, digits
from conftest import run_cli as run

import tte
from tte.codegen import build_program
from tte.evolution import choose, finalists
from tte.search import RATIOS, Space, evolve, screened, search
from tte.trainer import fit
from tte.trials import TrialCache, TrialSpec, build_trial_program

EXAMPLE = ROOT / "examples" / "tiny_cnn.int8.onnx"
# small trials: 150 steps on digits, 100 held out, in 30 KB: biases of the last 3 layers at most; 13 trials: the
# baseline, 3 bias points, layers 9, 8 and 7 whole, then 1/8, 1/4 and 1/2 of the two that helped most (9 and 7)
SMALL = dict(sram="30k", limit=600, train_samples=150, eval_samples=100, epochs=1, lr=0.05, max_trials=13,
             population=20, generations=8)
CLI_SMALL = ["--sram", "30k", "--limit", "600", "--trial-samples", "150", "--eval-samples", "100", "--epochs", "1",
             "--lr", "0.05", "--max-trials", "13", "--population", "20", "--generations", "8"]


def one_line_error(r, *needles: str) -> str:
    assert r.exit_code == 1, (r.exit_code, r.output)
    err = r.stderr.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in r.output, err
    for needle in needles:
        assert needle in err, (needle, err)
    return err


@pytest.fixture(scope="module")
def one_worker():
    return search(EXAMPLE, digits(), **SMALL)


def test_cli_writes_a_scheme_that_tte_plan_accepts_and_a_rerun_resumes(tmp_path):
    out = tmp_path / "scheme.json"
    r = run("search", EXAMPLE, "--data", digits(), "-o", out, *CLI_SMALL)
    assert r.exit_code == 0, r.output
    scheme = json.loads(out.read_text())
    assert scheme["model"] == "tiny_cnn" and isinstance(scheme["bias_update_last"], int)
    assert all(k.isdigit() and 0 < v <= 1 for k, v in scheme["weight_update"].items())
    needed = re.search(r"= ([\d.]+) KB of 30.0 KB", r.stdout)
    finals = re.search(r"13 trials run, 0 from the cache, (\d+) finalists \(0 from the cache\)", r.stdout)
    assert needed and finals and int(finals.group(1)) > 1, r.stdout
    p = run("plan", EXAMPLE, "--scheme", out, "--sram", "30k", "--classes", "10", "--json")
    assert p.exit_code == 0, p.output
    plan = json.loads(p.stdout)
    assert plan["fits"] and f"{plan['sram_needed_bytes'] / 1024:.1f}" == needed.group(1)

    cache = tmp_path / "scheme.json.trials.jsonl"
    n = int(finals.group(1))
    assert len(cache.read_text().splitlines()) == 1 + 13 + n  # the header, then one line per trial and finalist
    r = run("search", EXAMPLE, "--data", digits(), "-o", out, *CLI_SMALL)
    one_line_error(r, "exists; pass --force")
    r = run("search", EXAMPLE, "--data", digits(), "-o", out, "--force", *CLI_SMALL)
    assert r.exit_code == 0 and f"0 trials run, 13 from the cache, {n} finalists ({n} from" in r.stdout, r.output
    assert json.loads(out.read_text()) == scheme
    assert len(cache.read_text().splitlines()) == 14 + n


def test_two_workers_and_ray_give_the_scheme_and_trials_of_one_worker(one_worker):
    two = search(EXAMPLE, digits(), workers=2, **SMALL)
    assert two.scheme == one_worker.scheme and two.table() == one_worker.table()
    ray = pytest.importorskip("ray")
    ray.init(num_cpus=2, include_dashboard=False, logging_level="ERROR")
    try:
        on_ray = search(EXAMPLE, digits(), ray="local", **SMALL)
    finally:
        ray.shutdown()
    assert on_ray.scheme == one_worker.scheme and on_ray.table() == one_worker.table()


def test_a_seed_gives_one_scheme_and_another_seed_may_give_another(one_worker):
    assert len(one_worker.trials) == 13 and one_worker.trials_run == 13
    assert [(t.spec.kind, t.spec.k, t.spec.layer, t.spec.ratio) for t in one_worker.trials] == [
        ("baseline", 0, -1, 0), *(("bias", k, -1, 0) for k in (1, 2, 3)), *(("weight", 0, 7, r) for r in RATIOS),
        ("weight", 0, 8, 1), *(("weight", 0, 9, r) for r in RATIOS)]
    assert one_worker.baseline.contribution == 0 and one_worker.sram_needed <= 30 * 1024
    again = search(EXAMPLE, digits(), **SMALL)
    assert again.scheme == one_worker.scheme and again.table() == one_worker.table()
    other = search(EXAMPLE, digits(), **{**SMALL, "seed": 1})
    assert other.table() != one_worker.table()  # another shuffle, head and rounding: other trials
    assert other.sram_needed <= 30 * 1024 and other.scheme["label"].endswith("seed 1)")


def test_bad_input_is_one_line(tmp_path, monkeypatch):
    out = tmp_path / "s.json"
    one_line_error(run("search", EXAMPLE, "--data", digits(), "-o", out, "--sram", "16k", "--limit", "50"),
                   "no scheme fits: even training only the classifier")
    one_line_error(run("search", EXAMPLE, "--data", digits(), "-o", out, "--workers", "0"),
                   "--workers must be at least 1")
    one_line_error(run("search", EXAMPLE, "--data", tmp_path / "none.npz", "-o", out), "none.npz' does not exist")
    (tmp_path / "notes.json").write_text('{"mine": 1}')
    one_line_error(run("search", EXAMPLE, "--data", digits(), "-o", tmp_path / "notes.json", "--force"),
                   "refusing to overwrite")
    (tmp_path / "foreign.jsonl").write_text("my own notes\n")
    one_line_error(run("search", EXAMPLE, "--data", digits(), "-o", out, "--cache", tmp_path / "foreign.jsonl",
                       "--limit", "50"), "is not a trial cache of tte search")
    monkeypatch.setitem(sys.modules, "ray", None)  # import ray fails as when it is not installed
    one_line_error(run("search", EXAMPLE, "--data", digits(), "-o", out, "--ray", "local"),
                   "--ray needs Ray", "pip install 'tte[ray]'")
    assert not out.exists()


def test_the_cache_skips_a_damaged_last_line(tmp_path):
    path = tmp_path / "trials.jsonl"
    cache = TrialCache(path)
    cache.put("a", TrialSpec("baseline"), {"correct": 3, "tested": 4, "loss": 0.5, "seconds": 1.0})
    with open(path, "a") as fh:
        fh.write('{"key": "b", "trial": {"kind": "bias", "k"')  # interrupted in the middle of a line
    assert TrialCache(path).records == {"a": {"correct": 3, "tested": 4, "loss": 0.5, "seconds": 1.0}}


def test_the_second_round_measures_the_slices_of_the_layers_that_helped_best_first():
    fitting = {9: [0.125, 0.25, 0.5, 1.0], 8: [0.125, 1.0], 7: [0.5], 6: [0.25, 0.5]}
    assert screened(fitting, {9: 0.02, 8: 0.05, 7: 0.01, 6: 0.0}) == [
        TrialSpec("weight", 0, 8, 0.125), *(TrialSpec("weight", 0, 9, r) for r in (0.125, 0.25, 0.5))]


class AdditivePlanner:
    """A planner stand-in: memory adds up (bias layers and weight channels), so the optimum is known by brute force."""

    def __init__(self, budget: float):
        self.budget, self.figures = budget, {}

    def __call__(self, key):
        if key not in self.figures:
            k, weights = key
            need = 2 * k + sum(10 * r * (1 + layer % 3) for layer, r in weights)
            self.figures[key] = (need, need, 0, need <= self.budget)
        return self.figures[key]

    def fits(self, key) -> bool:
        return self(key)[3]

    def prefetch(self, keys) -> None:
        for key in keys:
            self(key)


def test_the_evolutionary_search_finds_the_optimum_of_a_small_problem():
    rng = np.random.default_rng(3)
    layers, ratios = [4, 5, 6, 7], [0.25, 0.5, 1.0]
    gain = {(layer, r): float(rng.uniform(-0.01, 0.04) * (1 + r)) for layer in layers for r in ratios}
    space = Space(8, 8, layers, [ratios] * 4, [0, 2, 4, 8], [0.0, 0.01, 0.015, 0.02], gain)
    planner = AdditivePlanner(budget=40)
    best = evolve(space, planner, np.random.default_rng(0), population=30, generations=15)
    keys = {space.key(g) for g in product(range(9), *[range(4)] * 4)}
    optimum = max(space.score(k) for k in keys if planner.fits(k))
    assert planner.fits(best) and space.score(best) == pytest.approx(optimum)


def test_the_finalists_start_with_the_evolutions_best_and_the_best_joint_score_wins(one_worker):
    finals, keys = one_worker.finalists, [(t.spec.k, t.spec.weights) for t in one_worker.finalists]
    assert len(finals) > 1 and all(t.spec.kind == "scheme" for t in finals) and len(set(keys)) == len(keys)
    alone = search(EXAMPLE, digits(), **SMALL, finalists=1)
    assert alone.finalists == [] and alone.table() == one_worker.table()[:len(alone.trials)]
    assert keys[0] == alone.key  # the evolution's best comes first
    assert finals[0].tested > one_worker.baseline.tested  # scored on more held-out samples than a trial
    n, best = finals[0].tested, max(t.correct for t in finals)
    close = [key for key, t in zip(keys, finals) if t.correct >= best - math.sqrt(best * (n - best) / n)]
    assert one_worker.key == min(close, key=lambda key: one_worker.finalist_figures[key][0])
    assert all(one_worker.finalist_figures[key][0] <= 30 * 1024 for key in keys)
    k, weights = one_worker.key
    assert one_worker.scheme["bias_update_last"] == k and one_worker.scheme["weight_update"] == {
        str(i): (1 if r == 1 else r) for i, r in weights}


def test_the_finalist_kept_is_the_least_sram_within_one_standard_error_of_the_best_score():
    # 974 of 1000: a standard error of sqrt(974 * 26 / 1000) = 5.03 samples, so 969 is within it and 968 is not
    assert choose([974, 969, 968, 972], 1000, [250, 210, 150, 240]) == 1
    assert choose([974, 968, 972], 1000, [250, 150, 240]) == 2
    assert choose([974, 969, 972], 1000, [250, 210, 210]) == 2  # equal SRAM: the higher score
    assert choose([970, 970], 1000, [200, 200]) == 0  # then the earlier finalist (the evolution's best)
    assert choose([1000, 999], 1000, [250, 100]) == 0  # all correct: no error to speak of, the best score alone
    assert choose([3, 2], 4, [9, 1]) == 0  # 3 of 4: 0.87 samples, a score of 2 is not within it


def test_the_finalists_add_the_best_measured_layers_one_at_a_time():
    """After the evolution's best: the biases of the best measured k, plus layers by contribution (each at its best
    ratio, a layer that does not fit skipped), points spread over that chain."""
    gain = {(5, 0.5): 0.03, (5, 1.0): 0.02, (6, 1.0): 0.05, (7, 1.0): -0.01, (4, 1.0): 0.01, (3, 1.0): 0.04}
    space = Space(8, 8, [3, 4, 5, 6, 7], [[1.0], [1.0], [0.5, 1.0], [1.0], [1.0]], [0, 2, 4], [0.0, 0.02, 0.01],
                  gain)
    best = (3, ((5, 0.5),))
    planner = AdditivePlanner(budget=40)  # need: 2 k + 10 r (1 + layer % 3), weights of layer i need k >= 8 - i
    assert finalists(space, planner, best, 1) == [best]
    # by contribution: 6 (k 2: 14), then 3 (k 5: 30); 5 at 1/2 (45) and 4 (50) do not fit; 7 did not help
    chain = [(2, ((6, 1.0),)), (5, ((3, 1.0), (6, 1.0)))]
    assert [planner(key)[0] for key in chain] == [14, 30]
    assert not any(planner.fits((5, ((3, 1.0), w, (6, 1.0)))) for w in [(4, 1.0), (5, 0.5)])
    assert finalists(space, planner, best, 4) == [best, *chain]
    assert finalists(space, planner, best, 2) == [best, chain[-1]]
    assert finalists(space, planner, chain[-1], 3) == [chain[-1], chain[0]]  # the best is not repeated


def test_a_trial_build_trains_the_integers_of_build_program(one_worker):
    from tte.data import ModelInput, load_samples

    g = tte.load(EXAMPLE)
    samples = load_samples(digits(), ModelInput(g, EXAMPLE.read_bytes()), limit=60, split=40)
    program = tte.compile(g, scheme={"bias_update_last": 4, "weight_update": {"8": 0.5}}, classes=10, lr=0.05)
    with tempfile.TemporaryDirectory() as a, tempfile.TemporaryDirectory() as b:
        ours, theirs = build_trial_program(program, pathlib.Path(a)), build_program(program, b)
        assert [e.line() for e in fit(ours, samples, 2)] == [e.line() for e in fit(theirs, samples, 2)]
        assert all(np.array_equal(v, theirs.state()[k]) for k, v in ours.state().items())


def test_graphs_with_the_same_structure_and_other_weights_are_other_models():
    """An in-memory Graph's trials are keyed by its contents: the dump prints no weights."""
    from tte.search import _graph_contents

    g = tte.load(EXAMPLE)
    h = g.copy()
    w = next(v for v in h.constants() if v.dtype == "int8" and v.data.size > 1)
    w.data = w.data.copy()
    w.data.flat[0] = np.int8(-w.data.flat[0] if w.data.flat[0] else 1)
    assert g.dump() == h.dump() and _graph_contents(g) != _graph_contents(h)
    with pytest.raises(tte.TteError, match="needs the model as a file path"):
        tte.search(g, np.zeros((8, 28, 28), np.uint8), np.arange(8) % 2, workers=2)


def test_trials_cached_by_other_sources_are_run_again(tmp_path, monkeypatch):
    """The cache key holds a digest of tte's sources: a changed kernel or pass (same version) reruns its trials."""
    from tte.search import sources_digest
    from tte.trials import _WORKER

    small = dict(SMALL, max_trials=2, population=4, generations=1, cache=tmp_path / "trials.jsonl")
    assert re.fullmatch("[0-9a-f]{64}", sources_digest())
    assert search(EXAMPLE, digits(), **small).trials_run == 2
    assert search(EXAMPLE, digits(), **small).trials_run == 0
    monkeypatch.setitem(_WORKER, "sources", "0" * 64)  # what another build of the same version would hash to
    assert search(EXAMPLE, digits(), **small).trials_run == 2
