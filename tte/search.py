"""`tte search` / ``tte.search``: contribution analysis and evolutionary search of a sparse-update scheme.

The method of "On-Device Training Under 256KB Memory" (Lin et al., NeurIPS 2022, Sec. 3.2 and its appendix), on the
user's own data and with tte's own memory planner as the constraint:

1. **Contribution analysis.**  Short fine-tunes of the same initial program (the same new head and stochastic
   rounding, both from ``seed``), each in C exactly as `tte train` trains (:func:`tte.trainer.fit`, frozen prefix
   cached) for ``epochs`` epochs with a warm-up + cosine learning-rate schedule peaking at ``lr``, on the first
   ``train_samples`` samples of the user's *training* split, scored on the next ``eval_samples`` of it (the user's
   test split is never looked at): the *baseline* (the classifier alone), the biases of the last k layers for
   ``bias_steps`` values of k, and the weights of one layer at a channel ratio (its bias frozen).  A trial's
   contribution is its accuracy minus the baseline's.
2. **Candidates.**  Only what can be part of a scheme that fits is measured: k up to the largest k whose bias-only
   scheme fits (by bisection), and layer i at ratio r when "biases of the last n - i layers plus layer i's weights at
   r" fits (a weight-trained layer's bias trains too, as in the published schemes).  First round: the baseline, the
   bias curve, then every layer at its largest ratio that fits, from the last layer back.  Second round: the smaller
   ratios of the layers that contributed, the best layer first.  ``max_trials`` caps both rounds together (a layer
   whose whole weight does not help is not measured in slices, and the early layers are the first to go).
3. **Evolutionary search** over (k, a ratio or nothing per candidate layer): maximize the bias curve at k
   (interpolated between the measured k) plus the measured weight contributions, subject to the planner's figures
   (:mod:`tte.plan`: the peak SRAM + the runtime reserve within ``sram``, flash within ``flash``: what `tte plan`
   prints and checks), each scheme planned once (cached by its key; a generation's children in one batch, on the
   workers).  Population, parents (25 %), mutation (50 %, each gene resampled with probability 0.1) and uniform
   crossover (the rest), as in the once-for-all evolution search the paper builds on; a seeded numpy ``Generator``;
   ties go to fewer bias layers, then fewer channels; the best is then improved one gene at a time while that pays.
4. **Finalists** (:func:`tte.evolution.finalists`).  Parts measured alone overlap, so the summed contribution is a
   score, not a forecast: the evolution's best and up to ``finalists - 1`` simpler schemes (the best-measured layers
   added one at a time to the best bias depth, while the scheme fits) are fine-tuned whole, the same way, on
   ``final_samples`` samples of the training split and scored on the next ``final_eval``; of those within one
   standard error of the best score, the one that needs the least SRAM wins (:func:`tte.evolution.choose`: scores
   that close are noise, memory is not).  ``finalists=1`` keeps the evolution's best.

Trials (:mod:`tte.trials`) run in this process (``workers=1``), in ``workers`` spawned processes, or as Ray tasks
(``ray=ADDRESS``; ``"local"`` starts a local instance, ``"auto"`` joins the running cluster or starts one); they are
gathered by trial, so 1 worker, N workers and Ray give the same scheme for a seed.  The trial cache keys each trial
by the model file, the prepared samples, the trial, the training options, tte's version and a digest of its sources
(Python and C runtime): a rerun (after an interruption, or with another budget, population or number of
generations) runs only the trials it does not hold.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import pathlib
import time
from dataclasses import dataclass, field

import numpy as np

from . import pipeline
from .autodiff.scheme import SparseScheme, channel_count, weighted_layers
from .data import ModelInput, Samples, images_from_arrays, is_sample_file, prepare_one, read_images, split_indices
from .data import value_range as data_range
from .errors import TteError
from .evolution import Key, Space, choose, evolve
from .evolution import finalists as finalist_keys
from .ir import Graph
from .ir.facts import is_depthwise
from .plan import BudgetError, budgets
from .plan import plan as make_plan
from .trials import _WORKER, BUILD_FLAGS, WARMUP, Trial, TrialCache, TrialContext, TrialSpec, Workers, ray_module
from .units import MAX_CLASSES, SEED_LIMIT, check_int, check_number, kb
from .version import __version__

RATIOS = (0.125, 0.25, 0.5, 1.0)


# -- memory: the planner's own figures, once per scheme -------------------------------------------------------------


class Planner:
    """The planner's figures (peak SRAM, SRAM needed = peak + reserve, flash, fits) of each scheme key, computed once
    (:func:`tte.trials.plan_figures`: those of `tte plan MODEL --sram S --flash F --classes N --scheme FILE`);
    ``prefetch`` plans a batch of keys on the workers."""

    def __init__(self, g, sram: int, flash: int, classes: int, workers: Workers | None = None):
        self.g, self.sram, self.flash, self.classes, self.workers = g, sram, flash, classes, workers
        self.figures: dict[Key, tuple[int, int, int, bool]] = {}

    def plan(self, key: Key):
        k, weights = key
        return make_plan(self.g, self.sram, self.flash, scheme=SparseScheme("search", k, dict(weights)),
                         classes=self.classes)

    def prefetch(self, keys) -> None:
        todo = [k for k in dict.fromkeys(keys) if k not in self.figures]
        if self.workers is not None and self.workers.parallel and len(todo) > 1:
            self.figures.update(zip(todo, self.workers.map("plan", [(k, self.sram, self.flash) for k in todo])))
        for k in todo:
            self(k)

    def __call__(self, key: Key) -> tuple[int, int, int, bool]:
        if key not in self.figures:
            p = self.plan(key)
            self.figures[key] = (p.memory.peak_sram, p.sram_needed, p.memory.flash, p.fits)
        return self.figures[key]

    def fits(self, key: Key) -> bool:
        return self(key)[3]


def _largest(fits, hi: int) -> int:
    lo = 0  # fits(0) holds
    while lo < hi:
        mid = (lo + hi + 1) // 2
        lo, hi = (mid, hi) if fits(mid) else (lo, mid - 1)
    return lo


def candidates(g, planner: Planner, ratios, bias_steps: int) -> tuple[list[TrialSpec], dict[int, list[float]], int]:
    """What can be part of a scheme that fits (the module docstring, 2.): the baseline and bias trials, each layer's
    ratios (from the last layer back; ratios that train the same channels as a smaller one left out) and the largest
    k whose bias-only scheme fits."""
    layers, _ = weighted_layers(g)
    n = len(layers)
    kmax = _largest(lambda k: planner.fits((k, ())), n)
    grid = sorted({max(1, round(kmax * j / bias_steps)) for j in range(1, bias_steps + 1)}) if kmax else []
    distinct: dict[int, list[float]] = {}  # per layer, the ratios that train different channels
    for i in range(n - 1, n - kmax - 1, -1):
        node, seen = layers[i], set()
        grouped = node.op == "conv" and node.attrs["groups"] > 1 and not is_depthwise(g, node)
        for r in sorted(ratios):
            channels = max(1, round(r * channel_count(g, node)))
            if channels not in seen and (r == 1 or not grouped):
                seen.add(channels)
                distinct.setdefault(i, []).append(r)
    planner.prefetch([(n - i, ((i, r),)) for i, rs in distinct.items() for r in rs])
    fitting: dict[int, list[float]] = {}
    for i, rs in distinct.items():
        for r in rs:
            if not planner.fits((n - i, ((i, r),))):
                break  # more channels need more memory
            fitting.setdefault(i, []).append(r)
    return [TrialSpec("baseline")] + [TrialSpec("bias", k) for k in grid], fitting, kmax


def screened(fitting: dict[int, list[float]], first: dict[int, float]) -> list[TrialSpec]:
    """The second round: the smaller ratios of the layers whose largest ratio contributed (``first``: layer ->
    contribution), the best layer first (then the later one)."""
    order = sorted((layer for layer, gain in first.items() if gain > 0), key=lambda layer: (-first[layer], -layer))
    return [TrialSpec("weight", 0, layer, r) for layer in order for r in fitting[layer][:-1]]


# -- tte.search --------------------------------------------------------------------------------------------------------
@dataclass
class SearchResult:
    """What :func:`search` found: ``scheme`` (the published format, for `tte plan --scheme`, `tte compile`,
    `tte train`), the trial table (``trials``, in trial order, with contributions), the chosen scheme's summed
    contribution (the search's objective, a fraction: its parts' gains, each measured alone, added up; they overlap,
    so it is a score, not an accuracy forecast) and the planner's figures."""

    scheme: dict
    key: Key
    trials: list[Trial]
    contribution: float
    peak_sram: int
    sram_needed: int
    flash: int
    sram_budget: int
    flash_budget: int
    seed: int
    plans: int
    seconds: float
    layers: list[str] = field(repr=False, default_factory=list)  # "name (kind, C channels)" by layer index
    finalists: list[Trial] = field(default_factory=list)  # their joint fine-tunes (kind "scheme"), evolution's first
    finalist_figures: dict = field(repr=False, default_factory=dict)  # key -> (SRAM needed, summed contribution)

    @property
    def reserve(self) -> int:
        return self.sram_needed - self.peak_sram

    @property
    def baseline(self) -> Trial:
        return self.trials[0]

    @property
    def trials_run(self) -> int:
        return sum(not t.cached for t in self.trials)

    def table(self) -> list[dict]:
        """The trial table as plain rows (the same for 1 worker, N workers and Ray; seconds and cache aside)."""
        return [{**t.spec.to_dict(), "correct": t.correct, "tested": t.tested, "loss": t.loss,
                 "contribution": t.contribution if t.spec.kind != "scheme" else None}  # finalists: other samples
                for t in self.trials + self.finalists]

    def save(self, path: str | os.PathLike) -> None:
        """Write the scheme as JSON, atomically (a temporary file, fsync, rename)."""
        path = pathlib.Path(os.fspath(path))
        tmp = path.with_name(f".{path.name}.tte-tmp")
        try:
            with open(tmp, "w", encoding="utf-8") as fh:
                fh.write(json.dumps(self.scheme, indent=1) + "\n")
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, path)
        except OSError as e:
            tmp.unlink(missing_ok=True)
            raise TteError(f"cannot write '{path}': {e.strerror or e}") from None

    def print(self, console=None) -> None:
        from rich.table import Table

        from .report import terminal_console

        console = console or terminal_console()
        gains = {(t.spec.layer, t.spec.ratio): t.contribution for t in self.trials if t.spec.kind == "weight"}
        k, weights = self.key
        bias = self.contribution - sum(gains[w] for w in weights)
        t = Table(title=f"{self.scheme['model']}: sparse-update scheme for {kb(self.sram_budget)} of SRAM, "
                        f"{kb(self.flash_budget)} of flash (seed {self.seed})", title_justify="left",
                  header_style="bold")
        for col, just in [("trains", "left"), ("layer", "left"), ("contribution", "right")]:
            t.add_column(col, justify=just)
        t.add_row("classifier, weight and bias", "always", f"baseline {100 * self.baseline.accuracy:.1f}%")
        t.add_row(f"biases of the last {k} layers", f"{self.layers[-k].split()[0]} .. {self.layers[-1].split()[0]}"
                  if k else "", f"{100 * bias:+.1f} points")
        for layer, ratio in weights:
            t.add_row(f"layer {layer} weights x {ratio:g}", self.layers[layer], f"{100 * gains[(layer, ratio)]:+.1f}"
                      " points")
        console.print(t)
        console.print(f"summed contribution {100 * self.contribution:+.1f} points (each part's gain over the "
                      f"classifier alone, measured alone; the search's objective, not an accuracy forecast), from "
                      f"{len(self.trials)} trials scored on {self.baseline.tested} held-out training samples",
                      markup=False, highlight=False)
        if self.finalists:
            n, top = self.finalists[0].tested, max(t.correct for t in self.finalists)
            f = Table(title=f"finalists: each fine-tuned whole on more samples than a trial, scored on {n} held-out "
                            f"training samples; chosen: the least SRAM within one standard error "
                            f"({math.sqrt(top * (n - top) / n):.1f} samples) of the best score",
                      title_justify="left", header_style="bold")
            for col, just in [("", "left"), ("scheme", "left"), ("SRAM", "right"), ("summed contribution", "right"),
                              ("accuracy", "right")]:
                f.add_column(col, justify=just)
            for j, t in enumerate(self.finalists):
                key = (t.spec.k, t.spec.weights)
                needed, score = self.finalist_figures[key]
                f.add_row("chosen" if key == self.key else "evolution" if j == 0 else "", t.spec.describe(),
                          kb(needed), f"{100 * score:+.1f} points",
                          f"{100 * t.accuracy:.2f}%")
            console.print(f)
        console.print(f"SRAM {kb(self.peak_sram)} + {kb(self.reserve)} for stack, heap and C library = "
                      f"{kb(self.sram_needed)} of {kb(self.sram_budget)}; flash {kb(self.flash)} of "
                      f"{kb(self.flash_budget)} (tte plan's figures)", markup=False, highlight=False)
        finals = (f"{len(self.finalists)} finalists ({sum(t.cached for t in self.finalists)} from the cache), "
                  if self.finalists else "")
        console.print(f"{self.trials_run} trials run, {len(self.trials) - self.trials_run} from the cache, {finals}"
                      f"{self.plans} schemes planned, {self.seconds / 60:.1f} min", markup=False, highlight=False)


def is_scheme_file(path: str | os.PathLike) -> bool:
    """A JSON object with ``bias_update_last``: a scheme file, which `tte search --force` may replace."""
    try:
        with open(path, encoding="utf-8") as fh:
            d = json.load(fh)
    except (OSError, ValueError, RecursionError):
        return False
    return isinstance(d, dict) and "bias_update_last" in d


def sources_digest() -> str:
    """A SHA-256 of tte's own sources, the Python and the C runtime: trials cached by an older tte (a kernel or pass
    changed without a version bump) are not taken for this one's."""
    if "sources" not in _WORKER:
        from .ops.cgen import RUNTIME_DIR

        h = hashlib.sha256()
        package = pathlib.Path(__file__).resolve().parent
        for root in (package, RUNTIME_DIR):
            for f in sorted(root.rglob("*")):
                if f.is_file() and f.suffix in (".py", ".c", ".h"):
                    h.update(f.relative_to(root).as_posix().encode() + b"\0" + f.read_bytes() + b"\0")
        _WORKER["sources"] = h.hexdigest()
    return _WORKER["sources"]


def _digest(*parts) -> str:
    h = hashlib.sha256()
    for p in parts:
        h.update(p if isinstance(p, bytes) else json.dumps(p, sort_keys=True).encode())
        h.update(b"\0")
    return h.hexdigest()


def _samples_id(s: Samples, *tag) -> str:
    """What identifies prepared samples in the trial cache (``tag`` first: the finalists' set is told apart)."""
    return _digest(*tag, s.format.describe(), list(s.value_range), s.train, s.inputs.tobytes(),
                   s.labels.astype("<i4").tobytes())


def _sizes(n: int, train: int, held_out: int) -> tuple[int, int]:
    """``train`` + ``held_out`` samples out of a training split of ``n`` (scaled down together when it is smaller)."""
    if n < 2:
        raise TteError(f"the search needs at least 2 training samples (one to train a trial, one to score it); the "
                       f"training split has {n}")
    if train + held_out > n:
        held_out = min(n - 1, max(1, round(n * held_out / (train + held_out))))
        train = n - held_out
    return train, held_out


def _graph_contents(g) -> bytes:
    """What identifies an in-memory Graph's trials: its structure and every constant's bytes (the dump prints no
    weights) and the metadata that changes its arithmetic or layout."""
    parts = [g.dump().encode()]
    for v in g.constants():
        parts += [v.name.encode(), str(v.dtype).encode(), np.ascontiguousarray(v.data).tobytes()]
    parts.append(json.dumps({k: str(v) for k, v in sorted(g.metadata.items()) if k != "source"}).encode())
    return b"\0".join(parts)


def trial_samples(x, y, model: ModelInput, train: int, held_out: int, progress=None, value_range: str = "auto",
                  **split) -> Samples:
    """The trials' samples: the first ``train`` samples of the training split that `tte train` would use (the same
    shuffle and split) to train on, the next ``held_out`` to test on.  Only those are prepared."""
    if isinstance(x, Samples) or (not isinstance(x, np.ndarray) and y is None and is_sample_file(x)):
        if any(v is not None for k, v in split.items() if k != "seed"):
            raise TteError(f"'{x}' is a packed sample file: its split is fixed (drop --test-fraction, --split and "
                           f"--limit, or give the images)")
        s = x if isinstance(x, Samples) else Samples.read(x)
        s.check(model.format, what="the samples")
        train, held_out = _sizes(s.train, train, held_out)
        m = train + held_out
        return Samples(s.format, s.inputs[:m], s.labels[:m], train, s.classes, s.value_range, s.class_names)
    images = images_from_arrays(x, y) if y is not None else read_images(x, model.format.hwc[2])
    order, _ = split_indices(len(images), **split)
    train, held_out = _sizes(len(order), train, held_out)
    order = order[:train + held_out]
    lo_hi = data_range(model.format, value_range)
    inputs = np.empty((len(order), model.format.sample_bytes), np.int8)
    for j, i in enumerate(order):
        inputs[j] = prepare_one(images.get(int(i)), model, lo_hi)
        if progress is not None:
            progress("prepare", j + 1, len(order))
    return Samples(model.format, inputs, images.labels[order].astype(np.int32), train, images.classes, lo_hi,
                   images.class_names)


def _layer_names(g) -> list[str]:
    layers, _ = weighted_layers(g)
    out = []
    for node in layers:
        w = g[node.inputs[1]].shape
        kind = "gemm" if node.op != "conv" else "depthwise" if is_depthwise(g, node) else \
            "pointwise" if all(d == 1 for d in w[2:]) else "x".join(map(str, w[2:]))
        out.append(f"{node.name} ({kind}, {channel_count(g, node)} channels)")
    return out


def _model_label(g, source: str | None) -> str:
    if not source:
        return g.name
    name = os.path.basename(source)
    for suffix in (".onnx", ".tflite", ".int8"):
        name = name.removesuffix(suffix)
    return name


def search(model, x, y=None, *, sram="256k", flash="1m", classes: int | None = None, workers: int = 1,
           ray: str | None = None, max_trials: int | None = 100, train_samples: int = 400, eval_samples: int = 400,
           epochs: int = 3, lr: float = 0.005, seed: int = 0, ratios=RATIOS, bias_steps: int = 8,
           population: int = 50, generations: int = 20, finalists: int = 6, final_samples: int = 2000,
           final_eval: int = 1000, cache: str | os.PathLike | None = None,
           test_fraction: float | None = None, split: int | None = None, limit: int | None = None,
           value_range: str = "auto", input_shape=None, arithmetic: str | None = None,
           progress=None) -> SearchResult:
    """Search a sparse-update scheme for ``model`` (a path, or a :class:`tte.Graph` with ``workers=1``) that fits
    ``sram`` / ``flash``, from trials on samples ``x`` (as :func:`tte.train` takes them: images with labels ``y``,
    an image folder, an ``.npz`` or a sample file; split with ``seed`` / ``test_fraction`` / ``split`` / ``limit``;
    only the training split is used).  See the module docstring for the method and the options.

    ``workers`` processes, or Ray tasks at ``ray`` (an address, ``"local"`` or ``"auto"``); ``cache`` a JSON-lines
    file of trials to resume from and add to; ``progress(stage, done, total)`` with stage "prepare", "trials" or
    "search".  Returns a :class:`SearchResult`; ``.save(path)`` writes the scheme."""
    start = time.monotonic()
    workers = check_int(workers, "workers", 1, 1024)
    if ray is not None:
        if not isinstance(ray, str) or not ray.strip():
            raise TteError(f"ray must be a Ray address, 'local' or 'auto', got {ray!r}")
        ray_module()
    if max_trials is not None:
        max_trials = check_int(max_trials, "max_trials", 1)
    train_samples, eval_samples = check_int(train_samples, "train_samples", 1), check_int(eval_samples,
                                                                                            "eval_samples", 1)
    epochs, bias_steps = check_int(epochs, "epochs", 1), check_int(bias_steps, "bias_steps", 1)
    population, generations = check_int(population, "population", 2), check_int(generations, "generations", 0)
    finalists = check_int(finalists, "finalists", 1)
    final_samples, final_eval = check_int(final_samples, "final_samples", 1), check_int(final_eval, "final_eval", 1)
    seed, lr = check_int(seed, "seed", 0, SEED_LIMIT - 1), check_number(lr, "lr")
    ratios = sorted({check_number(r, "ratios") for r in ratios})
    if not ratios or not all(0 < r <= 1 for r in ratios):
        raise TteError(f"ratios must be channel ratios in (0, 1], got {ratios}")
    sram_bytes, flash_bytes = budgets(sram, flash)
    g, source = pipeline.load_stage(model, input_shape, arithmetic)
    if isinstance(model, Graph):
        # workers would reload the file with this call's own options, not the Graph's (its arithmetic, its input
        # shape): a Graph's trials run here, keyed by its own contents
        if workers > 1 or ray is not None:
            raise TteError("search with workers or Ray needs the model as a file path, not a Graph")
        model_bytes = b""
    else:
        model_bytes = pathlib.Path(source).read_bytes() if source and os.path.isfile(source) else b""
    samples = trial_samples(x, y, ModelInput(g, model_bytes or None), train_samples, eval_samples, progress,
                            value_range, test_fraction=test_fraction, split=split, limit=limit, seed=seed)
    classes = samples.classes if classes is None else check_int(classes, "classes", 1, MAX_CLASSES)
    if classes < samples.classes:
        raise TteError(f"the samples have {samples.classes} classes; classes must be at least that, got {classes}")

    planner = Planner(g, sram_bytes, flash_bytes, classes)
    base = planner.plan((0, ()))
    if not base.fits:
        m = base.memory
        raise BudgetError(f"no scheme fits: even training only the classifier needs {kb(m.peak_sram)} of SRAM (and "
                          f"{kb(base.reserve)} kept for stack, heap and C library) and {kb(m.flash)} of flash (budgets "
                          f"{kb(sram_bytes)} / {kb(flash_bytes)}); largest: {base.largest_contributors()}")
    graph_id = _digest(model_bytes or _graph_contents(g), {"input_shape": input_shape, "arithmetic": arithmetic})
    ctx = TrialContext(model_bytes, os.path.basename(source or "model.onnx"), input_shape, arithmetic, classes, lr,
                       seed, epochs, samples, graph_id)
    _WORKER[graph_id] = g  # trials in this process use it
    data_id = _samples_id(samples)
    options = {"classes": classes, "lr": lr, "seed": seed, "epochs": epochs, "build": BUILD_FLAGS,
               "schedule": f"warm-up {WARMUP}, cosine"}
    store, results, ran = TrialCache(cache), {}, set()

    def run_trials(pool: Workers, specs: list[TrialSpec], data: str, stage: str, total: int) -> None:
        """Run the specs the cache lacks on ``pool`` (their results into ``results``, in the cache as each ends)."""
        keys = {s: _digest(graph_id, data, s.to_dict(), options, __version__, sources_digest()) for s in specs}

        def done(job: tuple, result: dict) -> None:
            spec = job[0]
            if keys[spec] not in store.records:
                store.put(keys[spec], spec, result)
                ran.add(spec)
            results[spec] = Trial(spec, **store.records[keys[spec]], cached=spec not in ran)
            if progress is not None:
                progress(stage, sum(t.spec.kind == "scheme" for t in results.values()) if stage == "finalists"
                         else len(results), total)

        for s in specs:
            if keys[s] in store.records:
                done((s,), store.records[keys[s]])
        pool.run("trial", [(s,) for s in specs if s not in results], done)

    with Workers(ctx, workers, ray) as pool:
        planner.workers = pool
        first, fitting, kmax = candidates(g, planner, ratios, bias_steps)
        first = (first + [TrialSpec("weight", 0, i, r[-1]) for i, r in fitting.items()])[:max_trials]
        second = sum(len(r) - 1 for r in fitting.values())  # at most, until the first round says which layers
        # the baseline, the bias curve and each layer at its largest ratio that fits
        run_trials(pool, first, data_id, "trials", min(max_trials or 2**31, len(first) + second))
        base_accuracy = results[first[0]].accuracy
        gain = {t.spec.layer: t.accuracy - base_accuracy for t in results.values() if t.spec.kind == "weight"}
        more = screened(fitting, gain)[:max(0, (max_trials or 2**31) - len(first))]
        run_trials(pool, more, data_id, "trials", len(first) + len(more))
        trials = [results[s] for s in sorted(results)]
        for t in trials:
            t.contribution = t.accuracy - base_accuracy

        bias = [t for t in trials if t.spec.kind == "bias"]
        weight = [t for t in trials if t.spec.kind == "weight"]
        layers = sorted({t.spec.layer for t in weight})
        space = Space(len(weighted_layers(g)[0]), kmax, layers,
                      [[t.spec.ratio for t in weight if t.spec.layer == i] for i in layers],
                      [0] + [t.spec.k for t in bias], [0.0] + [t.contribution for t in bias],
                      {(t.spec.layer, t.spec.ratio): t.contribution for t in weight})
        best = evolve(space, planner, np.random.default_rng(seed), population, generations, progress)
        picks = finalist_keys(space, planner, best, finalists)
    final: list[Trial] = []
    if len(picks) > 1:  # fine-tune each finalist whole on more of the training split; the best held-out score wins
        final_set = trial_samples(x, y, ModelInput(g, model_bytes or None), final_samples, final_eval, None,
                                  value_range, test_fraction=test_fraction, split=split, limit=limit, seed=seed)
        final_ctx = TrialContext(model_bytes, ctx.model_name, input_shape, arithmetic, classes, lr, seed, epochs,
                                 final_set, graph_id)
        final_data = _samples_id(final_set, "finalists")
        specs = [TrialSpec("scheme", k, weights=w) for k, w in picks]
        with Workers(final_ctx, workers, ray) as pool:
            run_trials(pool, specs, final_data, "finalists", len(specs))
        final = [results[s] for s in specs]
        best = picks[choose([t.correct for t in final], final[0].tested, [planner(key)[1] for key in picks])]
    peak, needed, flash_used, _ = planner(best)
    k, weights = best
    label = f"{sram_bytes // 1024}kb" if sram_bytes % 1024 == 0 else f"{sram_bytes}b"
    scheme = {"model": _model_label(g, source), "label": f"{label} (tte search, seed {seed})", "bias_update_last": k,
              "weight_update": {str(i): (1 if r == 1 else r) for i, r in weights},
              "classifier": "weight and bias always updated"}
    return SearchResult(scheme, best, trials, space.score(best), peak, needed, flash_used, sram_bytes, flash_bytes,
                        seed, len(planner.figures), time.monotonic() - start, _layer_names(g), final,
                        {key: (planner(key)[1], space.score(key)) for key in picks})
