"""Training-step time on this CPU: tte's C build vs tte's numpy reference vs PyTorch fp32, and the time
`tte compile` takes.

Batch 1, 128x128, a 10-class head, each model of ../shared/models with the published scheme nearest the
paper's setting, compiled ``--favor speed`` (the fastest program that fits 256 KB, as benchmarks/cortex_m.py).
PyTorch trains the same graph (dequantized weights, the same trained slices; see benchmarks/torch_float.py) with
torch.optim.SGD on one thread.  Each figure is the median of repeated steps after warm-up, measured in this one run.

    python benchmarks/speed.py [--steps 20] [--json]

--json prints one JSON row per model instead of the table: {model, scheme, c_ms, reference_ms, torch_ms,
compile_s, make_s, c_flags}.
"""

from __future__ import annotations

import argparse
import json
import pathlib
import statistics
import subprocess
import sys
import tempfile
import time

import numpy as np
import torch
from rich.console import Console
from rich.table import Table

import tte
import tte.codegen.native

ROOT = pathlib.Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"
SCHEMES = {"mbv2-w0.35": "99kb", "mcunet-5fps": "99kb", "proxyless-w0.3": "98kb"}


def median_ms(step, xs, warmup: int, steps: int) -> float:
    for i in range(warmup):
        step(xs[i % len(xs)], i % 10)
    times = []
    for i in range(steps):
        t = time.perf_counter()
        step(xs[i % len(xs)], i % 10)
        times.append(time.perf_counter() - t)
    return 1000 * statistics.median(times)


def torch_step_ms(program, xs, warmup, steps) -> float:
    sys.path.insert(0, str(ROOT / "benchmarks"))
    from torch_float import FloatModel

    trained = {name: (p.axis, p.channels) for name, p in program.params.items()}
    m = FloatModel(program.forward, trained)
    opt = torch.optim.SGD([p for p in m.parameters() if p.requires_grad], lr=0.003)

    def step(x, y):
        loss = torch.nn.functional.cross_entropy(m(torch.from_numpy(x)), torch.tensor([y]))
        opt.zero_grad()
        loss.backward()
        m.mask_grads()
        opt.step()

    return median_ms(step, xs, warmup, steps)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--json", action="store_true", help="one JSON row per model instead of the table")
    args = ap.parse_args()
    flags = " ".join(f for f in (*tte.codegen.native.CFLAGS, *tte.codegen.native.HOST_SPEED)
                     if f.startswith(("-O", "-m")) or f.startswith("-f") and f != "-ffp-contract=off")
    torch.set_num_threads(1)
    table = Table(title="One training step, batch 1, 128x128, 10-class head (median ms; this CPU, one thread)")
    for col in ("model", "scheme", f"tte C (host {flags})", "tte numpy reference", "PyTorch fp32", "tte compile",
                "make (host)"):
        table.add_column(col, justify="left" if col in ("model", "scheme") else "right")
    rng = np.random.default_rng(0)
    for name, label in SCHEMES.items():
        model = SHARED / "models" / f"{name}.int8.onnx"
        scheme = SHARED / "schemes" / f"{name}.{label}.json"
        xs = [rng.uniform(-1, 1, (1, 3, 128, 128)).astype(np.float32) for _ in range(4)]
        with tempfile.TemporaryDirectory() as tmp:
            t = time.perf_counter()
            subprocess.run([sys.executable, "-m", "tte", "compile", str(model), "--scheme", str(scheme), "--classes",
                            "10", "--lr", "0.003", "--favor", "speed", "-o", f"{tmp}/out"], check=True,
                           capture_output=True)
            compile_s = time.perf_counter() - t
            t = time.perf_counter()
            subprocess.run(["make", "-s", "-C", f"{tmp}/out"], check=True, capture_output=True)
            make_s = time.perf_counter() - t
        program = tte.compile(model, scheme=scheme, classes=10, lr=0.003, favor="speed")
        native = program.native()
        c_ms = median_ms(native.train_step, xs, 3, args.steps)
        ref_ms = median_ms(program.train_step, xs, 2, max(args.steps // 4, 3))
        pt_ms = torch_step_ms(program, xs, 5, args.steps)
        if args.json:
            print(json.dumps({"model": name, "scheme": label, "c_ms": round(c_ms, 2), "reference_ms": round(ref_ms, 1),
                              "torch_ms": round(pt_ms, 2), "compile_s": round(compile_s, 2), "make_s": round(make_s, 2),
                              "c_flags": flags}), flush=True)
            continue
        table.add_row(name, label, f"{c_ms:.1f}", f"{ref_ms:.1f}", f"{pt_ms:.1f}", f"{compile_s:.1f} s",
                      f"{make_s:.1f} s")
    if not args.json:
        Console(width=150).print(table)


if __name__ == "__main__":
    main()
