"""Does int8 training learn?  QAS and the update rounding, against fp32 PyTorch on the same model.

Transfer learning as in the paper: an ImageNet-pretrained int8 model from ../shared/models with a new
10-class head learns handwritten digits (../shared/data/mnist10k.npz, padded to 32x32, upsampled to
128x128, gray copied to RGB) with a published sparse-update scheme, batch 1, plain SGD.

    python benchmarks/qas_training.py [--model mbv2-w0.35] [--scheme 99kb] [--steps 600] [--test 300]

Prints one table: each configuration's mean training loss over the last 100 steps and test accuracy.
"""

from __future__ import annotations

import argparse
import pathlib
import time

import numpy as np
import torch
from rich.console import Console
from rich.table import Table

import tte

ROOT = pathlib.Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"


def digits(split: str, count: int, seed: int = 0):
    d = np.load(SHARED / "data" / "mnist10k.npz")
    idx = np.random.default_rng(seed).permutation(d[f"{split}_idx"])[:count]
    img = np.pad(d["images"][idx], ((0, 0), (2, 2), (2, 2))).astype(np.float32)  # 32x32
    img = np.kron(img, np.ones((1, 4, 4), np.float32))  # 128x128
    x = (img / np.float32(127.5) - np.float32(1))[:, None].repeat(3, axis=1)
    return x.astype(np.float32), d["labels"][idx].astype(np.int64)


def accuracy(predict, xs, ys) -> float:
    return float(np.mean([predict(x).argmax() == y for x, y in zip(xs, ys)]))


def run_tte(model, scheme, xs, ys, xt, yt, steps, **opts):
    program = tte.compile(model, scheme=scheme, classes=10, **opts)
    losses = [program.train_step(xs[s % len(xs)], ys[s % len(xs)]) for s in range(steps)]
    return float(np.mean(losses[-100:])), accuracy(program.infer, xt, yt), program


def run_torch(program: tte.Program, xs, ys, xt, yt, steps, lr):
    """fp32 PyTorch on the same graph (same new head, same channel selection, same trained slices)."""
    from torch_float import FloatModel

    trained = {name: (p.axis, p.channels) for name, p in program.params.items()}
    # start from the program's initial parameters: recompile to undo training
    fresh = tte.compile(program.source, scheme=program.plan.scheme, classes=10, seed=program.options.seed)
    m = FloatModel(fresh.forward, trained)
    opt = torch.optim.SGD([p for p in m.parameters() if p.requires_grad], lr=lr)
    losses = []
    for s in range(steps):
        x, y = torch.tensor(xs[s % len(xs)][None]), torch.tensor([ys[s % len(xs)]])
        loss = torch.nn.functional.cross_entropy(m(x), y)
        opt.zero_grad()
        loss.backward()
        m.mask_grads()
        opt.step()
        losses.append(float(loss.detach()))
    with torch.no_grad():
        acc = accuracy(lambda x: m(torch.tensor(x[None])).numpy(), xt, yt)
    return float(np.mean(losses[-100:])), acc


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="mbv2-w0.35")
    ap.add_argument("--scheme", default="99kb")
    ap.add_argument("--steps", type=int, default=600)
    ap.add_argument("--test", type=int, default=300)
    ap.add_argument("--lr", type=float, default=0.003)
    args = ap.parse_args()
    torch.manual_seed(0)
    torch.set_num_threads(1)
    model = SHARED / "models" / f"{args.model}.int8.onnx"
    scheme = SHARED / "schemes" / f"{args.model}.{args.scheme}.json"
    xs, ys = digits("train", args.steps)
    xt, yt = digits("test", args.test, seed=1)
    table = Table(title=f"{args.model} + 10-class head, scheme {args.scheme}, {args.steps} SGD steps (batch 1, "
                        f"lr {args.lr}), test on {args.test} digits")
    for col in ("training", "update rounding", "train loss (last 100)", "test accuracy", "time"):
        table.add_column(col)
    program = None
    configs = [(True, r) for r in ("stochastic", "nearest", "trunc", "accumulate")] + [(False, "stochastic")]
    for qas, rounding in configs:
        t = time.perf_counter()
        loss, acc, p = run_tte(model, scheme, xs, ys, xt, yt, args.steps, lr=args.lr, qas=qas, rounding=rounding)
        program = program or p
        table.add_row(f"tte int8{' + QAS' if qas else ' (no QAS)'}", rounding, f"{loss:.3f}", f"{acc:.1%}",
                      f"{time.perf_counter() - t:.0f} s")
    t = time.perf_counter()
    loss, acc = run_torch(program, xs, ys, xt, yt, args.steps, args.lr)
    table.add_row("PyTorch fp32 (same graph, same trained slices)", "-", f"{loss:.3f}", f"{acc:.1%}",
                  f"{time.perf_counter() - t:.0f} s")
    Console(width=140).print(table)


if __name__ == "__main__":
    main()
