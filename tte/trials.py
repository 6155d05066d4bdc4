"""The work of `tte search`, run in this process, in spawned worker processes or as Ray tasks (:class:`Workers`):
short fine-tunes of one program each (trials) and the planner's figures of schemes; and the trials' cache.

A trial compiles its program with the flags of :func:`tte.codegen.build_program` but links the runtime from an archive
compiled once per machine and compiler (the same objects, so the same integers: ~0.7 s of gcc per mbv2 trial instead
of ~3 s), trains it with :func:`tte.trainer.fit` (the loop of `tte train` and of the emitted demo, frozen prefix
cached) under a warm-up + cosine learning-rate schedule (:func:`schedule`, through ``set_learning_rate`` between
steps) and tests it.  Results are gathered by job, so what a search makes of them never depends on which worker
finished first.

The cache is a JSON-lines file: a header line, then one trial per line, appended and synced as each finishes, keyed
by a SHA-256 of the model file, the prepared samples, the trial, the training options, tte's version and a digest
of its sources.
"""

from __future__ import annotations

import _ctypes
import atexit
import json
import math
import os
import pathlib
import shutil
import tempfile
import time
from dataclasses import dataclass, field

from . import pipeline
from .autodiff.scheme import SparseScheme
from .codegen import build_program
from .codegen.native import SHARED_FLAGS, NativeProgram
from .data import Samples
from .errors import TteError
from .frontend import load
from .plan import plan as make_plan
from .trainer import fit
from .version import __version__

CACHE_FORMAT = 1
WARMUP = 0.05  # of a trial's steps, before the cosine decay
BUILD_FLAGS = SHARED_FLAGS  # what a trial's build compiles with (its cache key)


# -- trials --------------------------------------------------------------------------------------------------------
@dataclass(frozen=True, order=True)
class TrialSpec:
    """One fine-tune: ``kind`` "baseline" (the classifier alone), "bias" (biases of the last ``k`` layers),
    "weight" (the weights of layer ``layer`` for a ``ratio`` of its input channels) or "scheme" (a whole scheme: the
    biases of the last ``k`` layers and ``weights``, ((layer, ratio), ...): a finalist).  Ordered as the trial
    table."""

    kind: str
    k: int = 0
    layer: int = -1
    ratio: float = 0.0
    weights: tuple = ()

    def scheme(self) -> SparseScheme:
        weights = {self.layer: self.ratio} if self.kind == "weight" else dict(self.weights)
        return SparseScheme(f"trial: {self.describe()}", self.k, weights)

    def describe(self) -> str:
        if self.kind == "scheme":
            return f"biases of the last {self.k} layers, weights " + (
                " ".join(f"{i}:{r:g}" for i, r in self.weights) or "none")
        return {"baseline": "classifier only", "bias": f"biases of the last {self.k} layers",
                "weight": f"layer {self.layer} weights x {self.ratio:g}"}[self.kind]

    def to_dict(self) -> dict:
        d = {"kind": self.kind, "k": self.k, "layer": self.layer, "ratio": self.ratio}
        return {**d, "weights": [list(w) for w in self.weights]} if self.kind == "scheme" else d


@dataclass
class Trial:
    """A trial's result: accuracy on the held-out part of the training split, its contribution (accuracy minus
    the baseline's), the mean training loss, the seconds it took and whether it came from the cache."""

    spec: TrialSpec
    correct: int
    tested: int
    loss: float
    seconds: float = field(default=0.0, compare=False)
    cached: bool = field(default=False, compare=False)
    contribution: float = 0.0

    @property
    def accuracy(self) -> float:
        return self.correct / self.tested if self.tested else 0.0


@dataclass
class TrialContext:
    """What every worker needs, sent once: the model file, the trial samples and the training options."""

    model_bytes: bytes
    model_name: str
    input_shape: object
    arithmetic: str | None
    classes: int
    lr: float
    seed: int
    epochs: int
    samples: Samples
    digest: str = ""


_WORKER: dict = {}  # per process: the context (pool workers), loaded graphs by digest, gcc's version


def _worker_init(ctx: TrialContext) -> None:
    _WORKER["context"] = ctx


def _graph(ctx: TrialContext):
    if ctx.digest not in _WORKER:
        d = tempfile.mkdtemp(prefix="tte_search_")
        atexit.register(shutil.rmtree, d, True)
        path = os.path.join(d, ctx.model_name)
        with open(path, "wb") as fh:
            fh.write(ctx.model_bytes)
        _WORKER[ctx.digest] = load(path, input_shape=ctx.input_shape, arithmetic=ctx.arithmetic)
    return _WORKER[ctx.digest]


def build_trial_program(program, directory: pathlib.Path) -> NativeProgram:
    """A trial's native program: :func:`tte.codegen.build_program` (its runtime from the archive compiled once per
    set of flags, :func:`tte.codegen.native.runtime_archive`)."""
    return build_program(program, str(directory))


def schedule(step: int, total: int, lr: float) -> float:
    """The learning rate of step ``step`` of ``total``: a linear warm-up over the first 5 %, then a cosine decay
    towards 0 (so that a trial ends on a settled model, not on wherever the last few batch-1 steps left it)."""
    warm = max(1, round(WARMUP * total))
    if step < warm:
        return lr * (step + 1) / warm
    return lr * 0.5 * (1.0 + math.cos(math.pi * (step - warm) / max(1, total - warm)))


def run_trial(ctx: TrialContext, spec: TrialSpec) -> dict:
    """Fine-tune the trial's program for ``ctx.epochs`` epochs (:func:`schedule`, peak ``ctx.lr``) and test it on
    the held-out samples (runs in a worker)."""
    start = time.perf_counter()
    program = pipeline.compile(_graph(ctx), scheme=spec.scheme(), classes=ctx.classes, lr=ctx.lr, seed=ctx.seed)
    total = ctx.epochs * ctx.samples.train
    with tempfile.TemporaryDirectory(prefix="tte_trial_") as d:
        native = build_trial_program(program, pathlib.Path(d))

        def next_rate(epoch: int, step: int, steps: int, loss: float) -> None:
            if (done := (epoch - 1) * steps + step) < total:
                native.set_learning_rate(schedule(done, total, ctx.lr))

        try:
            native.set_learning_rate(schedule(0, total, ctx.lr))
            last = fit(native, ctx.samples, ctx.epochs, on_step=next_rate)[-1]
        finally:
            _ctypes.dlclose(native.lib._handle)  # a search loads hundreds of programs into one process
    return {"correct": last.correct, "tested": last.tested, "loss": last.loss,
            "seconds": round(time.perf_counter() - start, 3)}


def plan_figures(ctx: TrialContext, key: tuple, sram: int, flash: int) -> tuple[int, int, int, bool]:
    """(peak SRAM of the step, SRAM needed with the runtime reserve, flash, fits) of the scheme ``key`` = (k,
    ((layer, ratio), ...)): the figures of `tte plan MODEL --sram S --flash F --classes N --scheme FILE`."""
    k, weights = key
    p = make_plan(_graph(ctx), sram, flash, scheme=SparseScheme("search", k, dict(weights)), classes=ctx.classes)
    return p.memory.peak_sram, p.sram_needed, p.memory.flash, p.fits


TASKS = {"trial": run_trial, "plan": plan_figures}


def _pool_task(kind: str, args: tuple):
    return TASKS[kind](_WORKER["context"], *args)


def _ray_task(ctx: TrialContext, kind: str, args: tuple):
    return TASKS[kind](ctx, *args)


def ray_module():
    try:
        import ray
    except ImportError:
        raise TteError("--ray needs Ray, which is not installed: pip install 'tte[ray]'") from None
    return ray


class Workers:
    """Where trials and plans run: this process (``workers`` 1), ``workers`` spawned processes, or Ray tasks (at
    ``ray``: an address, "local" for a new local instance of ``workers`` CPUs, "auto" for the running cluster or
    a new local one).  ``run`` hands each result back in this process as it comes; ``map`` in the jobs' order."""

    def __init__(self, ctx: TrialContext, workers: int = 1, ray: str | None = None):
        self.ctx, self.workers, self.address = ctx, workers, ray
        self.pool = self.ray = self.ctx_ref = None
        self.started_ray = False

    @property
    def parallel(self) -> bool:
        return self.address is not None or self.workers > 1

    def __enter__(self) -> Workers:
        if self.address is not None:
            self.ray = ray = ray_module()
            if not ray.is_initialized():
                kwargs = {"address": self.address} if self.address != "auto" else {}
                if self.address == "local":
                    kwargs.update(include_dashboard=False, num_cpus=self.workers if self.workers > 1 else None)
                try:
                    ray.init(**kwargs, logging_level="ERROR", log_to_driver=False)
                except (ConnectionError, RuntimeError, ValueError) as e:
                    raise TteError(f"--ray {self.address}: cannot connect to Ray: {str(e).splitlines()[0]}") from None
                self.started_ray = True
            self.ctx_ref = ray.put(self.ctx)
            self.task = ray.remote(num_cpus=1)(_ray_task)
        elif self.workers > 1:
            import multiprocessing
            from concurrent.futures import ProcessPoolExecutor

            self.pool = ProcessPoolExecutor(self.workers, mp_context=multiprocessing.get_context("spawn"),
                                            initializer=_worker_init, initargs=(self.ctx,))
        return self

    def __exit__(self, *exc) -> None:
        if self.pool is not None:
            self.pool.shutdown(wait=exc[0] is None, cancel_futures=True)
        if self.started_ray:
            self.ray.shutdown()

    def run(self, kind: str, jobs: list[tuple], done) -> None:
        """Run ``TASKS[kind](ctx, *job)`` for each job, calling ``done(job, result)`` here as each finishes."""
        if not jobs:
            return
        if self.ray is not None:
            pending = {self.task.remote(self.ctx_ref, kind, job): job for job in jobs}
            while pending:
                finished, _ = self.ray.wait(list(pending), num_returns=1)
                job = pending.pop(finished[0])
                try:
                    result = self.ray.get(finished[0])
                except self.ray.exceptions.RayTaskError as e:
                    cause = e.as_instanceof_cause()
                    raise TteError(str(cause) if isinstance(cause, TteError)
                                   else f"{kind} {job} failed on Ray: {_first_line(cause)}") from None
                except self.ray.exceptions.RayError as e:  # a crashed worker, a lost object
                    raise TteError(f"{kind} {job} failed on Ray: {_first_line(e)}") from None
                done(job, result)
        elif self.pool is not None:
            from concurrent.futures import FIRST_COMPLETED, wait

            pending = {self.pool.submit(_pool_task, kind, job): job for job in jobs}
            while pending:
                finished, _ = wait(pending, return_when=FIRST_COMPLETED)
                for f in sorted(finished, key=lambda f: jobs.index(pending[f])):
                    job = pending.pop(f)
                    try:
                        result = f.result()
                    except TteError:
                        raise
                    except Exception as e:  # a worker that crashed (BrokenProcessPool) or raised
                        raise TteError(f"{kind} {job} failed in a worker process: {_first_line(e)}") from None
                    done(job, result)
        else:
            for job in jobs:
                done(job, TASKS[kind](self.ctx, *job))

    def map(self, kind: str, jobs: list[tuple]) -> list:
        results = {}
        self.run(kind, jobs, lambda job, result: results.__setitem__(job, result))
        return [results[job] for job in jobs]


def _first_line(e: BaseException) -> str:
    text = str(e).strip().splitlines()
    return f"{type(e).__name__}: {text[0]}" if text else type(e).__name__


class TrialCache:
    """Trials by key in a JSON-lines file (a header line, then one trial per line, appended and synced as each
    finishes); ``path`` None keeps them in memory only.  A damaged last line (an interrupted write) is ignored."""

    def __init__(self, path: str | os.PathLike | None):
        self.path = None if path is None else pathlib.Path(os.fspath(path))
        self.records: dict[str, dict] = {}
        if self.path is None or not self.path.exists():
            return
        if self.path.is_dir():
            raise TteError(f"the trial cache '{self.path}' is a directory; give a file (--cache FILE)")
        try:
            lines = self.path.read_text(encoding="utf-8").splitlines()
        except (OSError, UnicodeDecodeError) as e:
            raise TteError(f"cannot read the trial cache '{self.path}': {getattr(e, 'strerror', None) or e}") from None
        try:
            head = json.loads(lines[0]) if lines else None
        except ValueError:
            head = None
        if lines and (not isinstance(head, dict) or head.get("tte_search_trials") != CACHE_FORMAT):
            raise TteError(f"'{self.path}' is not a trial cache of tte search (format {CACHE_FORMAT}); give another "
                           f"--cache file or remove it")
        for line in lines[1:]:
            try:
                r = json.loads(line)
                self.records[r["key"]] = {k: r[k] for k in ("correct", "tested", "loss", "seconds")}
            except (ValueError, KeyError, TypeError):
                continue

    def put(self, key: str, spec: TrialSpec, result: dict) -> None:
        self.records[key] = result
        if self.path is None:
            return
        new = not self.path.exists() or self.path.stat().st_size == 0
        try:
            with open(self.path, "a", encoding="utf-8") as fh:
                if new:
                    fh.write(json.dumps({"tte_search_trials": CACHE_FORMAT, "tte": __version__}) + "\n")
                fh.write(json.dumps({"key": key, "trial": spec.to_dict(), **result}) + "\n")
                fh.flush()
                os.fsync(fh.fileno())
        except OSError as e:
            raise TteError(f"cannot write the trial cache '{self.path}': {e.strerror or e}") from None
