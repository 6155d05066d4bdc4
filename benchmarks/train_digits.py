"""`tte train` on real digits: how far the device's own integer training gets, measured on the host in C.

Runs ``tte.train`` (what `tte train` runs: the program `tte compile` builds with the same options, the emitted C
compiled for this machine, the loop of the emitted demo) on ../shared/data/mnist10k.npz, prepared as
`tte data pack` prepares it (bilinear resize to the model's input, gray copied to R, G and B, [-1, 1]), and prints
each epoch's line (mean training loss, held-out accuracy: the numbers `make run DATA=... EPOCHS=...` prints for the
same sample file) and a summary table.

    python benchmarks/train_digits.py [--quick]
"""

from __future__ import annotations

import argparse
import pathlib
import time

from rich.console import Console
from rich.table import Table

import tte

ROOT = pathlib.Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"
DIGITS = SHARED / "data" / "mnist10k.npz"

RUNS = [  # name, model, options
    ("tiny_cnn (example), full update", ROOT / "examples" / "tiny_cnn.int8.onnx",
     {"scheme": "full", "lr": 0.05, "epochs": 3, "limit": None}),
    ("mbv2-w0.35, 49kb scheme", SHARED / "models" / "mbv2-w0.35.int8.onnx",
     {"scheme": str(SHARED / "schemes" / "mbv2-w0.35.49kb.json"), "lr": 0.003, "epochs": 2, "limit": 3000}),
]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="a tenth of the samples, one epoch")
    args = ap.parse_args()
    console = Console(soft_wrap=True) if Console().is_terminal else Console(width=160)
    table = Table("model", "samples (train / test)", "epochs", "lr", "train loss (last epoch)", "test accuracy",
                  "time")
    for name, model, opts in RUNS:
        opts = dict(opts)
        if args.quick:
            opts["limit"] = (opts["limit"] or 10000) // 10
            opts["epochs"] = 1
        t0 = time.perf_counter()
        result = tte.train(model, str(DIGITS), classes=10, test_fraction=0.2,
                           on_epoch=lambda e, name=name: console.print(f"{name}: {e.line()}"), **opts)
        elapsed = time.perf_counter() - t0
        s, last = result.samples, result.history[-1]
        table.add_row(name, f"{s.train:,} / {s.test:,}", str(opts["epochs"]), f"{opts['lr']:g}", f"{last.loss:.3f}",
                      f"{last.correct}/{last.tested} ({100 * last.accuracy:.1f}%)", f"{elapsed:.0f} s")
    console.print(table)


if __name__ == "__main__":
    main()
