"""Peak training memory: tte without and with its passes, the paper's figure, and PyTorch.

For each model in ../shared/models (batch 1, 128x128, a new 10-class head, as in the paper) and each
of {full update, every published scheme in ../shared/schemes}: tte's peak SRAM for one training step
(arena + trained parameters + optimizer state + kernel scratch; code and stack excluded) without the
training-graph passes (autodiff's graph, updates at the end) and with them (pruning, fusion,
reordering), the arena over its lower bound, and the paper's figure (shared/schemes/README.md: "full
update" for full rows, "sparse + operator reordering" for scheme rows).  In the same run it measures
PyTorch's fp32 full-update step in a fresh process (benchmarks/torch_step.py): whole-process peak,
and the growth of the peak during the step; the ratio compares the process growth with our full-update
peak.

    python benchmarks/memory.py [--models mbv2-w0.35,...]
"""

from __future__ import annotations

import argparse
import json
import pathlib
import subprocess
import sys
import time

from rich.console import Console
from rich.table import Table

import tte
from tte.passes.memory import memory_report

ROOT = pathlib.Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"
PAPER = {  # KB: full update, sparse update, sparse + operator reordering
    "mbv2-w0.35": (2939, 335, 141),
    "proxyless-w0.3": (2745, 326, 135),
    "mcunet-5fps": (3650, 560, 173),
}


def kb(n: float) -> str:
    return f"{n / 1024:,.1f}"


def torch_peak(model: pathlib.Path) -> dict:
    out = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "torch_step.py"), str(model)],
                         capture_output=True, text=True, cwd=ROOT / "benchmarks", check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", default=",".join(PAPER))
    args = ap.parse_args()
    table = Table(title="Peak training memory, batch 1, 128x128, 10-class head (KB = 1024 B)")
    for col in ("model", "scheme", "tte, no passes", "tte", "arena / lower bound", "paper", "PyTorch fp32"):
        table.add_column(col, justify="left" if col in ("model", "scheme") else "right")
    for name in args.models.split(","):
        model = SHARED / "models" / f"{name}.int8.onnx"
        g = tte.load(model)
        schemes = ["full"] + sorted(SHARED.glob(f"schemes/{name}.*.json"),
                                    key=lambda p: int(p.stem.split(".")[-1].rstrip("kb")))
        t = time.perf_counter()
        peak = torch_peak(model)
        torch_cell = (f"process {peak['process_peak_bytes'] / 2**20:,.0f} MiB, step +"
                      f"{peak['step_growth_bytes'] / 2**20:,.1f} MiB")
        for scheme in schemes:
            raw = memory_report(tte.compile(g, scheme=scheme, classes=10, optimize=False).train)
            opt = memory_report(tte.compile(g, scheme=scheme, classes=10).train)
            label = "full" if scheme == "full" else scheme.stem.split(".")[-1]
            paper = PAPER[name][0] if scheme == "full" else PAPER[name][2]
            ratio = f" ({peak['step_growth_bytes'] / opt.peak_sram:,.0f}x ours)" if scheme == "full" else ""
            table.add_row(name, label, kb(raw.peak_sram), kb(opt.peak_sram),
                          f"{opt.arena.size / opt.arena.lower_bound:.3f}", f"{paper:,}",
                          torch_cell + ratio if scheme == "full" else "")
        print(f"{name}: {time.perf_counter() - t:.0f} s", file=sys.stderr)
    Console(width=160).print(table)


if __name__ == "__main__":
    main()
