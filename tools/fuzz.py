#!/usr/bin/env python3
"""Fuzz tte's ONNX frontend with seeded mutants of an int8 model, onnxruntime as the oracle.

Each mutant is the example model changed at the byte level (bits flipped, bytes set, inserted,
deleted or duplicated, the file truncated) or structurally (attributes, initializer dims, dtypes and
data, scales and zero points, nodes removed, duplicated, reordered, rewired or retyped, graph inputs
and outputs; :mod:`fuzz_mutants`).  Mutant ``i`` of seed ``s`` depends only on (s, i) and the model, so
any mutant can be rebuilt on its own (``--only I``).  For every mutant:

* **onnxruntime**: does it build an ``InferenceSession`` and run once on a fixed input?
* **tte**: ``tte.load`` returns a graph or raises a :class:`tte.errors.TteError` (one line);
  ``tte inspect`` and ``tte plan`` (in-process, click's CliRunner) exit 0 or print one ``error:`` line.

Verdicts: ``crash`` (any other exception, an ``internal error``, a traceback, a multi-line error, a
timeout or a dead worker), ``miss`` (onnxruntime refuses the mutant, tte loads it), ``allowed`` (a miss
whose onnxruntime message is in :data:`ALLOWED`: an onnxruntime limit, not the model's fault), ``ok``.
``--native K`` also trains up to K accepted mutants in C and in Python and compares the integers.

Mutants run in worker processes (``--jobs``) with a memory limit, so a mutant that hangs or
exhausts memory is a verdict, not the end of the run.

    python tools/fuzz.py                         # 3000 mutants of the example model, seed 0
    python tools/fuzz.py --count 300 --seed 1 --native 5
    python tools/fuzz.py --model other.int8.onnx --show all
    python tools/fuzz.py --only 17 --show all    # one mutant, with its messages
    python tools/fuzz.py --no-validate           # without tte.frontend.validate: what it catches
"""

from __future__ import annotations

import argparse
import collections
import json
import math
import os
import pathlib
import select
import subprocess
import sys
import tempfile
import time

import numpy as np
import onnx

ROOT = pathlib.Path(__file__).resolve().parents[1]
for _p in (str(ROOT), str(ROOT / "tools")):
    if _p not in sys.path:
        sys.path.insert(0, _p)
from fuzz_mutants import mutant  # noqa: E402 - after the path set-up

# onnxruntime refusals that are not the model's fault, so tte may load the mutant: (needle, why)
ALLOWED = [
    ("[optimizer only]",
     "onnxruntime refuses the model only with its graph optimizations on: a QDQ fusion makes a node its own "
     "schema refuses (say a [1]-shaped scale into QLinearAveragePool, which wants a scalar); without them it "
     "runs the model"),
    ("NOT_IMPLEMENTED : Could not find an implementation",
     "onnxruntime has no kernel for that type combination (say a uint8 activation into an int8 QLinearConv); "
     "the model is valid, and tte rewrites uint8 activations exactly to int8"),
    ("is not in valid range [-1,0]",
     "a per-channel axis out of range on a 1-d tensor (a bias's DequantizeLinear with its weight's axis): "
     "onnxruntime runs such models when its QDQ fusion folds the DequantizeLinear and refuses them only when it "
     "does not; exporters write them, and tte reads the axis as 0 (with a note)"),
    ("parameter out of computation range",
     "QLinearGlobalAveragePool's fixed-point implementation limits the ratio of its scales; tte requantizes with "
     "a float multiplier"),
]
MEMORY_LIMIT = 6 << 30  # per worker (address space): a mutant that allocates more is a crash, not an OOM kill
TIMEOUT = 60.0  # seconds per mutant


def example_models() -> list[pathlib.Path]:
    """The packaged example model(s), else the one in examples/."""
    found = sorted((ROOT / "tte" / "data").glob("*.onnx"))
    return found or [ROOT / "examples" / "tiny_cnn.int8.onnx"]


# -- evaluation -------------------------------------------------------------------------------------
def ort_verdict(data: bytes, optimize: bool = True) -> str | None:
    """None if onnxruntime builds a session and runs the model once; else its message (one line).

    A model refused only with graph optimizations on (a fusion builds a node onnxruntime's own schema then
    refuses) is marked ``[optimizer only]``."""
    import onnxruntime as ort

    ort.set_default_logger_severity(4)
    try:
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = opts.inter_op_num_threads = 1
        if not optimize:
            opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
        s = ort.InferenceSession(data, opts, providers=["CPUExecutionProvider"])
        rng = np.random.default_rng(0)
        feeds = {}
        for i in s.get_inputs():
            shape = [d if isinstance(d, int) and d >= 0 else 1 for d in i.shape]  # a declared 0 stays 0
            if math.prod(shape) > 1 << 26:
                return f"input '{i.name}' of {shape} is too large to feed"
            feeds[i.name] = rng.uniform(-1, 1, shape).astype(np.float32) if "float" in i.type else \
                np.zeros(shape, np.int64 if "int64" in i.type else np.int8)
        s.run(None, feeds)
    except Exception as e:  # noqa: BLE001 - onnxruntime raises several classes
        msg = " ".join(str(e).split())[:400] or type(e).__name__
        return f"[optimizer only] {msg}" if optimize and ort_verdict(data, optimize=False) is None else msg
    return None


def _cli(args: list[str]) -> tuple[str, str]:
    """(verdict, detail) of one in-process CLI run: ok / error / crash."""
    from click.testing import CliRunner

    from tte.cli import main

    r = CliRunner().invoke(main, args)
    err = (getattr(r, "stderr", "") or "") if r.exit_code else ""
    text = err or r.output
    if r.exception is not None and not isinstance(r.exception, SystemExit):
        return "crash", f"{type(r.exception).__name__}: {r.exception}"
    if r.exit_code == 0:
        return "ok", ""
    lines = [ln for ln in text.splitlines() if ln.strip()]
    if r.exit_code == 70 or "internal error" in text or "Traceback" in text:
        return "crash", text.strip()[:400]
    if r.exit_code == 2:  # click usage error: not about the model
        return "error", text.strip()[-200:]
    if len(lines) != 1 or not lines[0].startswith("error: "):
        return "crash", f"exit {r.exit_code} with {len(lines)} lines: {text.strip()[:300]}"
    return "error", lines[0]


def _where(e: BaseException) -> str:
    """The innermost tte frame of an exception: file:line."""
    import traceback

    frames = [f for f in traceback.extract_tb(e.__traceback__) if "/tte/" in f.filename]
    f = frames[-1] if frames else traceback.extract_tb(e.__traceback__)[-1]
    return f"{pathlib.Path(f.filename).name}:{f.lineno}"


def evaluate(data: bytes, path: pathlib.Path, scheme: str | None = None) -> dict:
    """Run one mutant through onnxruntime, tte.load, tte inspect and tte plan (``--scheme scheme``, if given)."""
    import tte
    from tte.errors import TteError

    path.write_bytes(data)
    res: dict = {"ort": ort_verdict(data)}
    try:
        tte.load(path)
        res["load"] = "ok"
    except TteError as e:
        msg = str(e)
        res["load"] = "error"
        res["message"] = f"{type(e).__name__}: {msg}"
        if "\n" in msg.strip():
            res["load"], res["crash"] = "crash", f"multi-line TteError: {msg[:300]}"
    except Exception as e:  # noqa: BLE001 - every other exception is the finding
        res["load"], res["crash"] = "crash", f"{type(e).__name__} at {_where(e)}: {str(e)[:300]}"
    runs = [["inspect", str(path)], ["plan", str(path), *(["--scheme", scheme] if scheme else [])]]
    for args in runs:
        verdict, detail = _cli(args)
        res[args[0]] = verdict
        if verdict == "crash":
            res.setdefault("crash", f"tte {args[0]}: {detail}")
    missed = res["ort"] and res["load"] == "ok"
    allowed = missed and any(needle in res["ort"] for needle, _ in ALLOWED)
    res["verdict"] = "crash" if "crash" in res else "allowed" if allowed else "miss" if missed else "ok"
    return res


def native_agrees(path: pathlib.Path, workdir: pathlib.Path, steps: int = 4) -> str | None:
    """Train the mutant in C and in Python for a few steps: None if every integer agrees, else why not."""
    import tte
    from tte.codegen import build_program

    program = tte.compile(path, scheme="full", lr=0.05, rounding="nearest")
    native = build_program(program, str(workdir))
    fwd = program.forward
    shape, classes = fwd[fwd.inputs[0]].shape, fwd[fwd.outputs[0]].shape[-1]
    rng = np.random.default_rng(5)
    for s in range(steps):
        x = rng.uniform(-1, 1, shape).astype(np.float32)
        ref, c = program.train_step(x, s % classes), native.train_step(x, s % classes)
        state = native.state()
        for name, value in program.state.items():
            if value.dtype.kind == "f":
                if not np.allclose(state[name], value, rtol=1e-5, atol=1e-7, equal_nan=True):
                    return f"step {s}: float state '{name}' differs"
            elif not np.array_equal(state[name], value):
                return f"step {s}: integer state '{name}' differs"
        if not (abs(ref - c) <= 1e-5 * max(abs(ref), 1e-6) or (math.isnan(ref) and math.isnan(c))):
            return f"step {s}: loss {ref} (Python) vs {c} (C)"
    x = rng.uniform(-1, 1, shape).astype(np.float32)
    if not np.array_equal(native.infer(x), program.infer(x), equal_nan=True):
        return "inference differs"
    return None


# -- workers ----------------------------------------------------------------------------------------
def _limit_memory() -> None:
    import resource

    resource.setrlimit(resource.RLIMIT_AS, (MEMORY_LIMIT, MEMORY_LIMIT))


def worker(seed: int, models: list[str], validate: bool = True, scheme: str | None = None) -> None:
    """Read job lines (``INDEX`` or ``native INDEX``) on stdin, answer one JSON line each on stdout."""
    import tte

    if not validate:  # measure what tte.frontend.validate catches: load without it
        from tte.frontend import onnx_frontend

        onnx_frontend.check_model = onnx_frontend.check_graph = lambda *args: None

    answer = os.fdopen(os.dup(1), "w")  # the replies; anything else printed to stdout goes to stderr
    os.dup2(2, 1)
    bases = [(onnx.load(p), pathlib.Path(p).read_bytes()) for p in models]
    dumps = [tte.load(p).dump() for p in models]
    work = pathlib.Path(tempfile.mkdtemp(prefix="tte_fuzz_"))
    print("ready", file=answer, flush=True)
    for line in sys.stdin:
        job = line.split()
        index = int(job[-1])
        base, data = bases[index % len(bases)]
        what, mutated = mutant(seed, index, base, data)
        path = work / f"m{index}.onnx"
        if job[0] == "native":  # the default tte plan (--scheme auto), then C against Python
            path.write_bytes(mutated)
            verdict, detail = _cli(["plan", str(path)])
            try:
                out = {"native": native_agrees(path, work / f"c{index}")}
            except Exception as e:  # noqa: BLE001
                out = {"native": f"{type(e).__name__} at {_where(e)}: {str(e)[:300]}"}
            if verdict == "crash":
                out["native"] = f"tte plan: {detail}"
        else:
            out = evaluate(mutated, path, scheme)
            if out["load"] == "ok":
                out["changed"] = tte.load(path).dump() != dumps[index % len(bases)]
        path.unlink(missing_ok=True)
        print(json.dumps({"index": index, "what": what, **out}), file=answer, flush=True)


class _Worker:
    def __init__(self, seed: int, models: list[str], validate: bool = True, scheme: str | None = None):
        self.args = (seed, models, validate, scheme)
        self.p = subprocess.Popen(
            [sys.executable, __file__, "--worker", "--seed", str(seed), *sum((["--model", m] for m in models), []),
             *([] if validate else ["--no-validate"]), *(["--scheme", scheme] if scheme else [])],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, cwd=ROOT,
            preexec_fn=_limit_memory, env={**os.environ, "OMP_NUM_THREADS": "1", "TTE_DEBUG": ""})
        self.job: str | None = None
        self.started = 0.0
        ready = select.select([self.p.stdout], [], [], 120)[0]
        if not ready or self.p.stdout.readline().strip() != "ready":
            self.p.kill()
            raise RuntimeError("fuzz worker did not start (run it alone: python tools/fuzz.py --worker)")

    def send(self, job: str) -> None:
        self.job, self.started = job, time.monotonic()
        self.p.stdin.write(job + "\n")
        self.p.stdin.flush()

    def close(self) -> None:
        if self.p.poll() is None:
            self.p.kill()
        self.p.wait()


def run(models: list[str], seed: int, jobs: list[str], workers: int = 2, timeout: float = TIMEOUT,
        validate: bool = True, scheme: str | None = None) -> list[dict]:
    """Run jobs (``"I"``: evaluate mutant I, ``"native I"``: train it in C and Python) on worker processes."""
    models = [str(m) for m in models]
    pending = list(jobs)
    pool = [_Worker(seed, models, validate, scheme) for _ in range(max(1, min(workers, len(pending))))]
    results = []
    try:
        while pending or any(w.job for w in pool):
            for w in pool:
                if w.job is None and pending:
                    w.send(pending.pop(0))
            busy = [w for w in pool if w.job]
            ready = select.select([w.p.stdout for w in busy], [], [], 1.0)[0]
            for i, w in enumerate(pool):
                if not w.job:
                    continue
                failure = None
                if w.p.stdout in ready:
                    line = w.p.stdout.readline()
                    if line:
                        results.append(json.loads(line))
                        w.job = None
                        continue
                    failure = f"worker died (exit {w.p.wait()})"
                elif time.monotonic() - w.started > timeout:
                    failure = f"timeout after {timeout:.0f} s"
                if failure:
                    index = int(w.job.split()[-1])
                    key = "native" if w.job.startswith("native") else "crash"
                    results.append({"index": index, "what": "?", key: failure, "verdict": "crash", "ort": None,
                                    "load": "crash"})
                    w.close()
                    pool[i] = _Worker(*w.args)
    finally:
        for w in pool:
            w.close()
    return sorted(results, key=lambda r: (r["index"], "native" in r))


def fuzz(models: list[str], seed: int, count: int, workers: int = 2, native: int = 0, start: int = 0,
         validate: bool = True, scheme: str | None = None) -> dict:
    """Evaluate ``count`` mutants (``tte plan --scheme scheme``); then, for up to ``native`` accepted, changed
    mutants, run the default ``tte plan`` and train them in C and Python."""
    t0 = time.monotonic()
    results = run(models, seed, [str(i) for i in range(start, start + count)], workers, validate=validate,
                  scheme=scheme)
    chosen = [r["index"] for r in results
              if r.get("load") == "ok" and r.get("plan") == "ok" and r.get("changed")][:native]
    natives = run(models, seed, [f"native {i}" for i in chosen], workers) if chosen else []
    return {"results": results, "natives": natives, "seconds": time.monotonic() - t0}


# -- report -----------------------------------------------------------------------------------------
def summary(out: dict) -> str:
    results, natives = out["results"], out["natives"]
    verdicts = collections.Counter(r["verdict"] for r in results)
    outcome = collections.Counter()
    for r in results:
        ort = "ort-refuses" if r.get("ort") else "ort-accepts"
        tte = {"ok": "tte-accepts", "error": "tte-refuses"}.get(r.get("load"), "tte-crashes")
        outcome[f"{ort}/{tte}"] += 1
    kinds = collections.Counter(r.get("what", "?").split(":")[0] for r in results)
    lines = [f"{len(results)} mutants in {out['seconds']:.0f} s: " + ", ".join(f"{k} {v}" for k, v in
                                                                            sorted(verdicts.items())),
             "  " + ", ".join(f"{k} {v}" for k, v in sorted(outcome.items())),
             "  mutators: " + ", ".join(f"{k} {v}" for k, v in sorted(kinds.items()))]
    causes = collections.Counter(r["crash"].split(": ")[0] if " at " in r["crash"] else r["crash"][:120]
                                 for r in results if "crash" in r)
    for cause, n in causes.most_common():
        lines.append(f"  crash x{n}: {cause}")
    misses = collections.Counter((r["verdict"], r["ort"][:160]) for r in results if r["verdict"] in ("miss", "allowed"))
    for (verdict, cause), n in misses.most_common():
        lines.append(f"  {verdict} x{n}: onnxruntime: {cause}")
    if natives:
        bad = [n for n in natives if n.get("native")]
        lines.append(f"  C vs Python training on {len(natives)} accepted mutants: {len(natives) - len(bad)} agree"
                     + "".join(f"\n    mutant {n['index']} ({n['what']}): {n['native']}" for n in bad))
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", action="append", help="model(s) to mutate (default: the example model)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--count", type=int, default=3000)
    ap.add_argument("--start", type=int, default=0, help="first mutant index")
    ap.add_argument("--only", type=int, action="append", help="evaluate only these mutant indices")
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--native", type=int, default=0, help="train up to N accepted mutants in C and Python")
    ap.add_argument("--show", default="crash,miss", help="which mutants to list: crash,miss,allowed,ok or all")
    ap.add_argument("--json", help="write every result to this file")
    ap.add_argument("--scheme", help="tte plan's --scheme for every mutant (default: tte plan's own, auto)")
    ap.add_argument("--no-validate", action="store_true",
                    help="load without tte.frontend.validate (to count what it catches)")
    ap.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    a = ap.parse_args(argv)
    models = a.model or [str(p) for p in example_models()]
    if a.worker:
        worker(a.seed, models, not a.no_validate, a.scheme)
        return 0
    if a.only:
        out = {"results": run(models, a.seed, [str(i) for i in a.only], a.jobs, validate=not a.no_validate,
                              scheme=a.scheme), "natives": [], "seconds": 0.0}
    else:
        out = fuzz(models, a.seed, a.count, a.jobs, a.native, a.start, not a.no_validate, a.scheme)
    show = {"crash", "miss", "allowed", "ok"} if a.show == "all" else set(a.show.split(","))
    for r in out["results"]:
        if r["verdict"] in show:
            detail = r.get("crash") or (f"onnxruntime: {r['ort']}" if r["verdict"] in ("miss", "allowed") else
                                        r.get("message", "accepted"))
            print(f"[{r['index']}] {r['verdict']}: {r['what']}\n    {detail}")
    print(summary(out))
    if a.json:
        pathlib.Path(a.json).write_text(json.dumps(out, indent=1))
    bad = sum(r["verdict"] not in ("ok", "allowed") for r in out["results"])
    bad += sum(bool(n.get("native")) for n in out["natives"])
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
