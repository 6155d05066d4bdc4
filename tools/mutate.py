#!/usr/bin/env python3
"""Mutation testing: does the test suite catch small, realistic bugs?

Each mutant below is one small edit to tte's Python or C (a rounding rule, a padding bound, a gradient
sign, a zero point, a mask bound, a clamp range, a QAS factor, a slice offset, a planner interval, a
scheme choice, ...), the kind of bug a tired developer writes.  For each mutant the script applies the
edit to a private copy of the repository, runs the tests of the mutated area there (``pytest -x``), and
reports whether some test failed (the mutant is *killed*) or everything passed (it *survived*).  A
survivor is run once more against the whole suite before it is reported, so that a survivor always
means "no test in the suite fails".

    python tools/mutate.py                 # every mutant, 2 workers; exit 1 if more survive than allowed
    python tools/mutate.py --list          # the mutants, one line each
    python tools/mutate.py --only qas-bias-naive --only sgd-clamp-128
    python tools/mutate.py --jobs 1 --max-survivors 0 --json result.json

The copies see ../shared through TTE_SHARED (default: the shared/ folder beside the repository).
Nothing in the working tree is modified.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import json
import os
import pathlib
import re
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass

ROOT = pathlib.Path(__file__).resolve().parents[1]

# Test groups: the tests a developer runs after touching an area (fast files first: pytest -x stops at
# the first failure).
KERNELS = ["tests/test_kernels_forward.py", "tests/test_kernels_train.py"]
RUNTIME = [*KERNELS, "tests/test_c_training.py", "tests/test_codegen.py"]
REFERENCE = ["tests/test_semantics.py", *KERNELS, "tests/test_grad_rules.py", "tests/test_onnxruntime_agreement.py",
             "tests/test_autodiff.py", "tests/test_training.py"]
AUTODIFF = ["tests/test_grad_rules.py", "tests/test_training.py", "tests/test_autodiff.py", "tests/test_passes.py"]
PLANNER = ["tests/test_arena.py", "tests/test_plan.py", "tests/test_c_training.py"]


@dataclass(frozen=True)
class Mutant:
    name: str
    kind: str  # the bug class
    path: str  # file to edit, relative to the repository
    old: str  # must occur exactly once in the file
    new: str
    tests: tuple[str, ...]
    why: str  # what the bug does


def m(name, kind, path, old, new, tests, why) -> Mutant:
    return Mutant(name, kind, path, old, new, tuple(tests), why)


C = "runtime_c/src/"
MUTANTS = [
    # ---- C runtime ------------------------------------------------------------------------------------
    m("c-round-half-away", "rounding", C + "tte_internal.h",
      "    float shifted = v + 12582912.0f; /* IEEE float32: the compiler may not fold this away */\n"
      "    return (int32_t)(shifted - 12582912.0f);",
      "    return (int32_t)(v + (v >= 0.0f ? 0.5f : -0.5f));",
      RUNTIME, "requantization rounds ties away from zero instead of to even"),
    m("c-mask-lower-bound", "mask bound", C + "tte_internal.h",
      "    int32_t r = tte_round_s32(v) + zero_point;\n    if (mask) {\n"
      "        const uint8_t bit = (uint8_t)(1u << (index & 7u));\n        if (r >= qmin && r <= qmax) mask",
      "    int32_t r = tte_round_s32(v) + zero_point;\n    if (mask) {\n"
      "        const uint8_t bit = (uint8_t)(1u << (index & 7u));\n        if (r > qmin && r <= qmax) mask",
      RUNTIME, "the straight-through mask drops values that land exactly on qmin"),
    m("c-weight-zero-point-sign", "zero point", C + "tte_internal.h",
      "((int32_t)wr[j] - wz)", "((int32_t)wr[j] + wz)",
      RUNTIME, "conv windows add the weight zero point instead of subtracting it"),
    m("c-gemm-zero-point-sign", "zero point", C + "tte_internal.h",
      "for (; i < n; i++) acc += ((int32_t)x[i] - zx) * ((int32_t)w[i] - wz);",
      "for (; i < n; i++) acc += ((int32_t)x[i] - zx) * ((int32_t)w[i] + wz);",
      RUNTIME, "gemm adds the weight zero point instead of subtracting it"),
    m("c-acc-saturation", "int32 edge", C + "tte_internal.h",
      "    if (bias > 0 && acc > INT32_MAX - bias) return INT32_MAX;\n", "",
      RUNTIME, "acc + bias wraps around instead of saturating at INT32_MAX"),
    m("c-avgpool-grad-counts-padding", "padding", C + "tte_avgpool_grad_f32.c",
      "count += ih >= 0 && ih < H && iw >= 0 && iw < W;", "count += ih >= 0 && iw >= 0;",
      RUNTIME, "average-pool gradient counts bottom/right padding with count_include_pad=0"),
    m("c-avgpool-pad-swap", "padding", C + "tte_avgpool_s8.c",
      "const int32_t ih = oh * geo->stride_h - geo->pad_top + i;",
      "const int32_t ih = oh * geo->stride_h - geo->pad_left + i;",
      RUNTIME, "average pool offsets rows by the left padding"),
    m("c-maxpool-padding-wins", "padding", C + "tte_maxpool_s8.c",
      "int32_t best = -129;", "int32_t best = q->input_zero_point;",
      RUNTIME, "max pool lets padding (the zero point) win the window"),
    m("c-sgd-clamp-128", "clamp range", C + "tte_sgd_core.h",
      "    if (v < p->qmin) v = p->qmin;", "    if (v < -128) v = -128;",
      RUNTIME, "int8 weight updates clamp at -128 instead of the symmetric -127"),
    m("c-sgd-nan-moves", "NaN", C + "tte_sgd_core.h",
      "    if (delta != delta) delta = 0.0f; /* NaN: a diverged gradient moves nothing */\n", "",
      RUNTIME, "a NaN gradient moves parameters"),
    m("c-sgd-stochastic-is-nearest", "rounding", C + "tte_sgd_core.h",
      "delta = floorf(step + tte_uniform(p->seed, p->step, p->stream, index));",
      "delta = floorf(step + 0.5f);",
      RUNTIME, "stochastic rounding ignores its random stream"),
    m("c-xent-grad-sign", "gradient sign", C + "tte_xent_f32.c",
      "if (i == labels[b]) p = p - 1.0f;", "if (i == labels[b]) p = 1.0f - p;",
      RUNTIME, "the loss gradient of the true class has the wrong sign"),
    m("c-bias-update-no-factor", "QAS factor", C + "tte_bias_update_s32.c",
      "tte_bias_grad_row(dz_dims, dz, o), factors[o]", "tte_bias_grad_row(dz_dims, dz, o), factors[0]",
      RUNTIME, "every bias channel takes the first channel's QAS factor"),
    m("c-concat-offset", "slice offset", C + "tte_concat_channels_s8.c",
      "const size_t base = ((size_t)n * (size_t)out_channels + (size_t)channel_offset) * (size_t)plane;",
      "const size_t base = ((size_t)n * (size_t)out_channels) * (size_t)plane;",
      RUNTIME, "concat writes every operand at channel 0"),
    # ---- Python reference (ground truth) --------------------------------------------------------------
    m("py-mask-lower-bound", "mask bound", "tte/reference/semantics.py",
      "return np.clip(r, qmin, qmax).astype(np.int8), (r >= qmin) & (r <= qmax)",
      "return np.clip(r, qmin, qmax).astype(np.int8), (r > qmin) & (r <= qmax)",
      REFERENCE, "the reference's straight-through mask drops values exactly on qmin"),
    m("py-round-half-up", "rounding", "tte/reference/semantics.py",
      "    r = np.rint(_clamped(v))\n    return np.clip(r.astype(np.int32)",
      "    r = np.floor(_clamped(v) + np.float32(0.5))\n    return np.clip(r.astype(np.int32)",
      REFERENCE, "the reference rounds ties up instead of to even"),
    m("py-pad-swap", "padding", "tte/reference/numerics.py",
      "    top, left, bottom, right = pads\n    if not any(pads):\n        return x\n",
      "    left, top, bottom, right = pads\n    if not any(pads):\n        return x\n",
      REFERENCE, "the reference pads rows with the left padding and columns with the top"),
    m("py-avgpool-grad-counts-padding", "padding", "tte/ops/pool.py",
      "ones = nx.pad(np.ones((1, 1, h, w), F32), pads)",
      "ones = np.ones((1, 1, h + top + bottom, w + left + right), F32)",
      REFERENCE, "the reference average-pool gradient counts padding with count_include_pad=0"),
    m("py-gemm-grad-input-sign", "gradient sign", "tte/ops/gemm.py",
      "return nx.seq_sum(gy[:, :, None] * wr[None], axis=1).astype(nx.F32)",
      "return nx.seq_sum(-gy[:, :, None] * wr[None], axis=1).astype(nx.F32)",
      REFERENCE, "the gemm input gradient has the wrong sign"),
    m("py-sgd-nearest-truncates", "rounding", "tte/ops/update.py",
      "        delta = np.rint(step)\n    elif mode == \"trunc\":",
      "        delta = np.trunc(step)\n    elif mode == \"trunc\":",
      REFERENCE, "round-to-nearest updates truncate"),
    m("py-relu-bound", "clamp range", "tte/reference/semantics.py",
      "qmin = -128 if lo is None else int(quantize(np.float32(lo), scale, zero_point))",
      "qmin = -128 if lo is None else int(quantize(np.float32(lo), scale, zero_point)) + 1",
      REFERENCE, "a folded ReLU clamps one step above its zero point"),
    # ---- autodiff ---------------------------------------------------------------------------------------
    m("concat-backward-offset", "slice offset", "tte/ops/shape.py",
      "            b.contribute(x, b.emit(\"slice\", [dz], f\"{x}.grad_from.{node.name}\", axis=axis, start=start, "
      "stop=stop))\n        start = stop\n",
      "            b.contribute(x, b.emit(\"slice\", [dz], f\"{x}.grad_from.{node.name}\", axis=axis, start=start, "
      "stop=stop))\n            start = stop\n",
      AUTODIFF, "concat backward stops advancing its slice offset past an input that needs no gradient"),
    m("qas-bias-naive", "QAS factor", "tte/autodiff/backward.py",
      "f = (1.0 / s) if self.opts.qas else s", "f = (1.0 / s) if self.opts.qas and p.kind == \"weight\" else s",
      AUTODIFF, "QAS scales weight steps only; biases take the naive update"),
    m("qas-squared", "QAS factor", "tte/autodiff/backward.py",
      "f = (1.0 / s) if self.opts.qas else s", "f = (1.0 / s**2) if self.opts.qas else s",
      AUTODIFF, "QAS divides the step by the scale squared"),
    m("sgd-clamp-128", "clamp range", "tte/autodiff/backward.py",
      "qmin = -127 if g[p.name].dtype == \"int8\" else info.min",
      "qmin = -128 if g[p.name].dtype == \"int8\" else info.min",
      AUTODIFF, "int8 weight updates clamp at -128 instead of -127"),
    # ---- planner and schemes ----------------------------------------------------------------------------
    m("interval-open", "planner interval", "tte/passes/arena.py",
      "return self.start <= other.end and other.start <= self.end",
      "return self.start < other.end and other.start < self.end",
      PLANNER, "buffers whose lifetimes touch at one step are treated as disjoint (planner and checker)"),
    m("first-fit-one-byte", "planner interval", "tte/passes/arena.py",
      "            if offset + size <= o:\n", "            if offset + size <= o + 1:\n",
      PLANNER, "first fit lets a buffer overlap its neighbour by one byte"),
    m("in-place-while-read", "in-place reuse", "tte/passes/memory.py",
      "and max(last_use.get(m, start[r]) for m in members[r]) == i))",
      "and max(last_use.get(m, start[r]) for m in members[r]) >= i))",
      PLANNER, "an in-place op writes over its operand although a later node still reads it"),
    m("auto-no-weights", "scheme choice", "tte/plan.py",
      "        widen(i, (1.0,) if grouped(i) else RATIOS[:1])\n", "        pass\n",
      PLANNER, "--scheme auto never trains its first-choice weights"),
    m("auto-one-short", "scheme choice", "tte/plan.py",
      "    b = lo\n", "    b = max(lo - 1, 0)\n",
      PLANNER, "--scheme auto stops one bias layer short of the largest that fits"),
]


def copy_repo(dest: pathlib.Path) -> None:
    """The repository's files as git sees them (tracked, and new files not ignored), without .git."""
    files = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=ROOT,
                           capture_output=True, text=True, check=True).stdout.split("\0")
    for name in filter(None, files):
        src = ROOT / name
        if src.is_file():
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / name)


def check(mutant: Mutant) -> str:
    """The file's text with the mutation applied (raises when the edit no longer applies exactly once)."""
    text = (ROOT / mutant.path).read_text()
    count = text.count(mutant.old)
    if count != 1:
        raise SystemExit(f"mutant {mutant.name}: its original text occurs {count} times in {mutant.path} "
                         f"(the code moved: update the mutant)")
    return text.replace(mutant.old, mutant.new)


def run_tests(copy: pathlib.Path, tests: list[str], timeout: int, shared: str) -> tuple[str, str]:
    """(outcome, detail): "passed", or "failed" with the first failing test, or "timeout"."""
    env = dict(os.environ, PYTHONPATH=str(copy), PYTHONDONTWRITEBYTECODE="1", TTE_SHARED=shared)
    env.pop("CI", None)  # a mutant run is not CI: missing optional bits may skip
    tests = [t for t in tests if (copy / t.split("::")[0]).exists()]
    cmd = [sys.executable, "-m", "pytest", "-x", "-q", "-p", "no:cacheprovider", "--no-header", *tests]
    try:
        p = subprocess.run(cmd, cwd=copy, env=env, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return "timeout", f"no result within {timeout} s"
    if p.returncode == 0:
        return "passed", ""
    if "building runtime_c failed" in p.stdout or "the C compiler failed" in p.stdout:
        return "invalid", "the mutated C does not compile (fix the mutant)"
    failed = re.search(r"^(?:FAILED|ERROR) (\S+)", p.stdout, re.M)
    return "failed", failed.group(1) if failed else (p.stdout + p.stderr).strip().splitlines()[-1][:200]


def baseline_failures(copy: pathlib.Path, tests: list[str], args) -> set[str]:
    """Which of ``tests`` (pytest node ids) fail on the unmutated copy."""
    env = dict(os.environ, PYTHONPATH=str(copy), PYTHONDONTWRITEBYTECODE="1", TTE_SHARED=args.shared)
    env.pop("CI", None)
    cmd = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--no-header", "-rf", *tests]
    p = subprocess.run(cmd, cwd=copy, env=env, capture_output=True, text=True, timeout=args.timeout * 3)
    return set(re.findall(r"^(?:FAILED|ERROR) (\S+)", p.stdout, re.M))


def mutate_and_test(mutant: Mutant, copy: pathlib.Path, args) -> dict:
    target = copy / mutant.path
    original = target.read_text()
    start = time.monotonic()
    try:
        target.write_text(check(mutant))
        outcome, detail = run_tests(copy, list(mutant.tests), args.timeout, args.shared)
        scope = "area"
        if outcome == "passed" and not args.no_confirm:
            outcome, detail = run_tests(copy, ["tests"], args.timeout * 3, args.shared)
            scope = "whole suite"
    finally:
        target.write_text(original)
    return {"name": mutant.name, "kind": mutant.kind, "path": mutant.path, "why": mutant.why,
            "killed": outcome != "passed", "outcome": outcome, "by": detail, "scope": scope,
            "seconds": round(time.monotonic() - start, 1)}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--list", action="store_true", help="list the mutants and exit")
    ap.add_argument("--only", action="append", default=[], metavar="NAME", help="run only these mutants")
    ap.add_argument("--jobs", type=int, default=2, help="mutants tested at once (default 2)")
    ap.add_argument("--timeout", type=int, default=600, help="seconds per test run (default 600)")
    ap.add_argument("--no-confirm", action="store_true", help="do not rerun survivors against the whole suite")
    ap.add_argument("--max-survivors", type=int, default=1, help="exit 1 when more survive (default 1)")
    ap.add_argument("--shared", default=os.environ.get("TTE_SHARED", str(ROOT.parent / "shared")),
                    help="the shared/ folder (default: TTE_SHARED or ../shared)")
    ap.add_argument("--json", metavar="FILE", help="also write the results as JSON")
    args = ap.parse_args(argv)

    mutants = [mu for mu in MUTANTS if not args.only or mu.name in args.only]
    unknown = set(args.only) - {mu.name for mu in MUTANTS}
    if unknown:
        ap.error(f"unknown mutant(s): {', '.join(sorted(unknown))} (see --list)")
    if args.list:
        for mu in mutants:
            print(f"{mu.name:32} {mu.kind:16} {mu.path}: {mu.why}")
        return 0
    for mu in mutants:
        check(mu)

    start = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="tte_mutate_") as tmp:
        copies = []
        for i in range(max(1, args.jobs)):
            copies.append(pathlib.Path(tmp) / f"copy{i}")
            copy_repo(copies[-1])
        free = list(copies)
        results = []
        with concurrent.futures.ThreadPoolExecutor(len(copies)) as pool:
            pending = {}
            queue = list(mutants)
            while queue or pending:
                while queue and free:
                    mu, copy = queue.pop(0), free.pop()
                    pending[pool.submit(mutate_and_test, mu, copy, args)] = copy
                done, _ = concurrent.futures.wait(pending, return_when=concurrent.futures.FIRST_COMPLETED)
                for fut in done:
                    free.append(pending.pop(fut))
                    r = fut.result()
                    results.append(r)
                    state = f"killed by {r['by']}" if r["killed"] else f"SURVIVED ({r['scope']})"
                    print(f"[{len(results):2}/{len(mutants)}] {r['name']:32} {state}  ({r['seconds']} s)", flush=True)
        # a kill counts only if the killing test passes without the mutation
        killers = sorted({r["by"] for r in results if r["outcome"] == "failed" and "::" in r["by"]})
        if killers:
            broken = baseline_failures(copies[0], killers, args)
            for r in results:
                if r["by"] in broken:
                    r.update(killed=False, outcome="inconclusive", by=f"{r['by']} fails without the mutation too")
    results.sort(key=lambda r: [mu.name for mu in MUTANTS].index(r["name"]))
    invalid = [r for r in results if r["outcome"] == "invalid"]
    if invalid:
        raise SystemExit("mutants that do not compile prove nothing: " + ", ".join(r["name"] for r in invalid))
    survivors = [r for r in results if not r["killed"]]
    minutes = (time.monotonic() - start) / 60
    print(f"\n{len(results) - len(survivors)} of {len(results)} mutants killed, {len(survivors)} survived "
          f"({minutes:.1f} min, {args.jobs} workers)")
    for r in survivors:
        print(f"  survived: {r['name']} ({r['kind']}, {r['path']}): {r['why']}")
    if args.json:
        pathlib.Path(args.json).write_text(json.dumps({"results": results, "minutes": round(minutes, 1)}, indent=1))
    return 1 if len(survivors) > args.max_survivors else 0


if __name__ == "__main__":
    sys.exit(main())
