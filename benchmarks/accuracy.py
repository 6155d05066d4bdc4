"""Does int8 training on the device's integers learn as well as fp32?  The paper's QAS table, on digits.

Transfer learning as in the paper (Lin et al. 2022, Table 1): each ImageNet-pretrained int8 model of
../shared/models gets a new 10-class head and learns the handwritten digits of ../shared/data/mnist10k.npz (all
8000 training images, prepared as `tte data pack` prepares them: bilinear resize, gray to RGB, [-1, 1]; tested on
the 2000 held out) with a sparse-update scheme, batch 1, SGD with a cosine schedule after a linear warm-up over the
first 5% of an epoch.

Rows, on the same graph, the same new head (its seed) and the same trained slices:

* ``fp32``: PyTorch fp32 ("cloud"): the float model the int8 one was quantized from (benchmarks/torch_float.py);
* ``int8``: the native C program (the integers a device computes), without QAS;
* ``int8+qas``: the same with quantization-aware scaling, for each update rounding.

The learning rate is chosen the same way for every row: each candidate of ``--lrs`` trains one epoch on 2000 of
the training images (seed 0) and is scored on 1000 others of them (never the test images); the best then trains
every seed on all 8000.  Should a seed diverge (its last epoch's training loss no better than chance, ln 10, or not
finite), every seed trains again at the next smaller rate of the grid that learned in the rate search; the row
records the rates that diverged and their accuracies (``diverged``).

Affordable because the frozen prefix runs once per image: its output (the tensors the trained tail reads) is
cached, bit for bit what the full step computes (tests/test_cached_prefix.py), so epochs run only the tail.

    python benchmarks/accuracy.py [--models mbv2-w0.35 ...] [--schemes 99kb ...] [--seeds 3] [--epochs 3] [--quick]

Prints one table and merges its rows into benchmarks/results/accuracy.json (rows of other models / schemes kept).
"""

from __future__ import annotations

import argparse
import fcntl
import json
import math
import os
import pathlib
import shutil
import sys
import tempfile
import time

import numpy as np
import torch
from rich.console import Console
from rich.table import Table

import tte
from tte.codegen import build_program
from tte.data import ModelInput, pack
from tte.plan import plan

ROOT = pathlib.Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"
RESULTS = ROOT / "benchmarks" / "results" / "accuracy.json"
MODELS = ("mbv2-w0.35", "mcunet-5fps", "proxyless-w0.3")
CLASSES = 10  # the digits: the new head's classes
SCHEME_99 = {"mbv2-w0.35": "99kb", "mcunet-5fps": "99kb", "proxyless-w0.3": "98kb"}
TRAININGS = ("fp32", "int8", "int8+qas")

sys.path.insert(0, str(ROOT / "benchmarks"))
from torch_float import FloatModel  # noqa: E402


# -- data ---------------------------------------------------------------------------------------------------------
class Digits:
    """The 10,000 digits of mnist10k.npz as one model's int8 inputs (prepared once), and the runs' splits:
    ``split(seed, train, test)`` gives the indices of the training images in the order that seed visits them and
    of the test images; every run of the model reads the same prepared bytes."""

    def __init__(self, program: tte.Program):
        d = np.load(SHARED / "data" / "mnist10k.npz")
        spec = ModelInput(program.forward, program.source_bytes)
        packed = pack(d["images"], spec, y=d["labels"], test_fraction=0.0, seed=0)
        self.inputs = np.empty_like(packed.inputs)  # pack shuffles with its seed: back to the file's order
        self.inputs[np.random.default_rng(0).permutation(len(d["labels"]))] = packed.inputs
        self.labels = d["labels"].astype(np.int32)
        self.train_idx, self.test_idx = d["train_idx"], d["test_idx"]
        self.format, self.value_range = packed.format, packed.value_range

    def split(self, seed: int, train: int | None = None, test: int | None = None) -> tuple[np.ndarray, np.ndarray]:
        tr = np.random.default_rng(seed).permutation(self.train_idx)[:train]
        te = np.random.default_rng(10**6).permutation(self.test_idx)[:test]  # the file lists them by class
        return tr, te


def schedule(step: int, total: int, lr: float, warmup: int) -> float:
    """Linear warm-up over ``warmup`` steps, then cosine decay to 0 at ``total``."""
    if step < warmup:
        return lr * (step + 1) / warmup
    t = (step - warmup) / max(1, total - warmup)
    return lr * 0.5 * (1.0 + math.cos(math.pi * t))


# -- the schemes ---------------------------------------------------------------------------------------------------
def scheme_spec(model: str, name: str):
    if name.endswith(".json"):  # a scheme file of one's own (e.g. `tte search -o`)
        return name
    if name == "classifier":
        return {"bias_update_last": 0, "weight_update": {}, "label": "classifier"}
    if name in ("bias-only", "full") or name.startswith("last-"):
        return name
    return str(SHARED / "schemes" / f"{model}.{name}.json")


def peak(model_path: pathlib.Path, spec) -> int:
    return plan(str(model_path), "16m", "16m", scheme=spec, classes=CLASSES).memory.peak_sram


def last_k_equal(model_path: pathlib.Path, model: str, reference: str) -> str:
    """``last-K`` with the largest K whose peak SRAM is at most the published scheme's."""
    limit = peak(model_path, scheme_spec(model, reference))
    k = 1
    while peak(model_path, f"last-{k + 1}") <= limit:
        k += 1
    return f"last-{k}"


# -- one training run ------------------------------------------------------------------------------------------
class Int8Run:
    """The native C program, on cached prefix outputs: ``cache`` (shared by the runs of one model and scheme, whose
    frozen prefix is the same code on the same weights) holds each image's frontier, computed on first use."""

    def __init__(self, program: tte.Program, data: Digits, cache: dict, tmp: pathlib.Path):
        self.native = n = build_program(program, tempfile.mkdtemp(dir=tmp))
        self.data = data
        key = (n.frontier_bytes, n.infer_frontier_bytes)
        if cache.get("key") not in (None, key):
            raise RuntimeError("runs of one scheme with different frontiers")
        cache["key"] = key
        self.train_cache = cache.setdefault("train", {})
        self.test_cache = cache.setdefault("test", {})
        probe = int(data.train_idx[0])  # the cache is this program's prefix: checked on one image every run
        if probe in self.train_cache and not np.array_equal(n.prefix(data.inputs[probe]), self.train_cache[probe]):
            raise RuntimeError("a cached frontier differs from this program's prefix")

    def set_lr(self, lr: float) -> bool:
        self.native.set_learning_rate(lr)
        return True

    def step(self, i: int) -> float:
        f = self.train_cache.get(i)
        if f is None:
            f = self.train_cache[i] = self.native.prefix(self.data.inputs[i])
        return self.native.train_step_cached(f, int(self.data.labels[i]))

    def predict(self, i: int) -> int:
        f = self.test_cache.get(i)
        if f is None:
            f = self.test_cache[i] = self.native.infer_prefix(self.data.inputs[i])
        return self.native.predict_cached(f)


class Fp32Run:
    """PyTorch fp32 on the same graph and trained slices; the frozen prefix's float outputs cached as for int8."""

    def __init__(self, program: tte.Program, data: Digits, cache: dict):
        trained = {name: (p.axis, p.channels) for name, p in program.params.items()}
        self.model = FloatModel(program.forward, trained)
        self.data = data
        self.shape = (1,) + tuple(program.forward[program.forward.inputs[0]].shape[1:])
        self.cache = cache.setdefault("float", {})
        self.labels = torch.tensor(data.labels.astype(np.int64))
        self.opt = torch.optim.SGD([p for p in self.model.parameters() if p.requires_grad], lr=0.0)

    def _prefix(self, i: int):
        f = self.cache.get(i)
        if f is None:
            fmt = self.data.format
            x = (self.data.inputs[i].astype(np.float32) - fmt.zero_point) * np.float32(fmt.scale)
            with torch.no_grad():
                f = self.cache[i] = self.model.prefix(torch.tensor(x.reshape(self.shape)))
        return f

    def set_lr(self, lr: float) -> bool:
        for group in self.opt.param_groups:
            group["lr"] = lr
        return True

    def step(self, i: int) -> float:
        loss = torch.nn.functional.cross_entropy(self.model.tail(self._prefix(i)), self.labels[i:i + 1])
        self.opt.zero_grad()
        loss.backward()
        self.model.mask_grads()
        self.opt.step()
        return float(loss.detach())

    def predict(self, i: int) -> int:
        with torch.no_grad():
            return int(self.model.tail(self._prefix(i)).argmax())


def run(model_path, spec, training, rounding, lr, seed, data, cache, order, test, epochs, tmp) -> dict:
    """Train one configuration on the images ``order`` (indices, visited in that order each epoch) and test it on
    the images ``test``; returns the accuracy and the mean loss of the last epoch."""
    program = tte.compile(str(model_path), scheme=spec, classes=CLASSES, lr=lr, qas=training != "int8",
                          rounding=rounding, seed=seed)
    r = Fp32Run(program, data, cache) if training == "fp32" else Int8Run(program, data, cache, tmp)
    total = epochs * len(order)
    losses = []
    for s in range(total):
        r.set_lr(schedule(s, total, lr, max(1, len(order) // 20)))
        losses.append(r.step(int(order[s % len(order)])))
    correct = sum(int(r.predict(int(i)) == data.labels[i]) for i in test)
    return {"accuracy": correct / len(test), "loss": float(np.mean(losses[-len(order):]))}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", nargs="+", default=list(MODELS), choices=MODELS)
    ap.add_argument("--schemes", nargs="+", default=None,
                    help="scheme rows: 99kb (the model's ~99 KB scheme), another published one (49kb, 138kb, ...), "
                         "classifier, bias-only, last-equal (last-K at the 99 KB scheme's memory), full (fp32 only), "
                         "or a scheme JSON file (its stem labels the row); default: 99kb 49kb classifier bias-only "
                         "last-equal full")
    ap.add_argument("--trainings", nargs="+", default=list(TRAININGS), choices=TRAININGS)
    ap.add_argument("--roundings", nargs="+", default=["stochastic", "nearest"])
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--epochs", type=int, default=2)
    ap.add_argument("--lrs", nargs="+", type=float, default=[0.003, 0.01, 0.03])
    ap.add_argument("--train", type=int, default=None, help="training images (default all 8000)")
    ap.add_argument("--test", type=int, default=None, help="test images (default all 2000)")
    ap.add_argument("--quick", action="store_true", help="1000 / 500 images, 1 epoch, 1 seed, no lr search")
    ap.add_argument("--no-save", action="store_true", help="do not merge the rows into the results file")
    ap.add_argument("--markdown", action="store_true", help="print the results file as the README's table and exit")
    args = ap.parse_args()
    if args.markdown:
        print(markdown(json.loads(RESULTS.read_text())))
        return
    if args.quick:
        args.train, args.test, args.epochs, args.seeds, args.lrs = 1000, 500, 1, 1, args.lrs[:1]
    torch.manual_seed(0)
    torch.set_num_threads(1)
    console = Console(width=150)
    rows = []
    tmp = pathlib.Path(tempfile.mkdtemp(prefix="tte_accuracy_"))
    for model in args.models:
        path = SHARED / "models" / f"{model}.int8.onnx"
        data = Digits(tte.compile(str(path), scheme="full", classes=CLASSES))
        names = args.schemes or ["99kb", "49kb", "classifier", "bias-only", "last-equal", "full"]
        for name in names:
            stem = SCHEME_99[model] if name == "99kb" else name
            spec = last_k_equal(path, model, SCHEME_99[model]) if name == "last-equal" else scheme_spec(model, stem)
            label = spec if name == "last-equal" else pathlib.Path(stem).stem if stem.endswith(".json") else stem
            configs = [(t, r) for t in args.trainings for r in (args.roundings if t == "int8+qas" else ["stochastic"])
                       if name != "full" or t == "fp32"]
            cache: dict = {}
            for training, rounding in configs:
                t0 = time.perf_counter()
                lr, scores = args.lrs[0], {}
                if len(args.lrs) > 1:  # the learning rate: one epoch on 2000 training images, scored on 1000 others
                    order, _ = data.split(0, args.train)
                    n_fit, n_val = min(2000, len(order) * 2 // 3), min(1000, len(order) // 3)
                    for cand in args.lrs:
                        scores[cand] = run(path, spec, training, rounding, cand, 0, data, cache, order[:n_fit],
                                           order[-n_val:], 1, tmp)["accuracy"]
                    lr = max(args.lrs, key=lambda c: (scores[c], -c))
                diverged: dict[str, list[float]] = {}
                while True:
                    accs, losses = [], []
                    for seed in range(args.seeds):
                        order, test = data.split(seed, args.train, args.test)
                        out = run(path, spec, training, rounding, lr, seed, data, cache, order, test, args.epochs,
                                  tmp)
                        accs.append(out["accuracy"])
                        losses.append(out["loss"])
                    # a seed whose last epoch's training loss is no better than chance (or not finite) diverged: back
                    # off to the next smaller rate of the grid that learned in the rate search, for every seed
                    smaller = [c for c in args.lrs if c < lr and scores.get(c, 1.0) > 2 / CLASSES]
                    if not smaller or all(np.isfinite(x) and x < np.log(CLASSES) for x in losses):
                        break
                    diverged[str(lr)] = accs
                    lr = max(smaller)
                row = {"model": model, "scheme": label, "training": training,
                       "rounding": rounding if training != "fp32" else None,
                       "accuracy_mean": float(np.mean(accs)), "accuracy_std": float(np.std(accs)),
                       "seeds": args.seeds, "accuracies": accs, "lr": lr, "lr_scores": scores, "diverged": diverged,
                       "schedule": "linear warm-up (5% of an epoch) + cosine", "epochs": args.epochs,
                       "train_images": len(order), "test_images": len(test),
                       "loss_last_epoch": float(np.mean(losses)), "seconds": round(time.perf_counter() - t0, 1)}
                rows.append(row)
                if not args.no_save and not args.quick:
                    save([row])
                console.print(f"{model} {label} {training} {row['rounding'] or ''}: "
                              f"{100 * row['accuracy_mean']:.2f} +- {100 * row['accuracy_std']:.2f} % "
                              f"(lr {lr:g}, {row['seconds']:.0f} s)")
    shutil.rmtree(tmp, ignore_errors=True)
    table = Table("model", "scheme", "training", "rounding", "accuracy (mean +- std)", "seeds", "lr", "time")
    for r in rows:
        table.add_row(r["model"], r["scheme"], r["training"], r["rounding"] or "-",
                      f"{100 * r['accuracy_mean']:.2f} +- {100 * r['accuracy_std']:.2f} %", str(r["seeds"]),
                      f"{r['lr']:g}", f"{r['seconds']:.0f} s")
    console.print(table)
    if not args.no_save and not args.quick:
        console.print(f"rows merged into {RESULTS.relative_to(ROOT)}")


def markdown(rows: list[dict]) -> str:
    """The results as the README's table: per model and scheme, fp32 first, then int8 + QAS, then int8."""
    order = {"fp32": 0, "int8+qas": 1, "int8": 2}
    rows = sorted(rows, key=lambda r: (MODELS.index(r["model"]), r["scheme"], order[r["training"]],
                                       str(r["rounding"])))
    out = ["| model | scheme | training | update rounding | test accuracy (mean +- std of 3 seeds) | vs fp32 | lr |",
           "|---|---|---|---|---|---|---|"]
    fp32 = {(r["model"], r["scheme"]): r["accuracy_mean"] for r in rows if r["training"] == "fp32"}
    for r in rows:
        ref = fp32.get((r["model"], r["scheme"]))
        delta = "" if ref is None or r["training"] == "fp32" else f"{100 * (r['accuracy_mean'] - ref):+.2f}"
        label = {"fp32": "PyTorch fp32", "int8+qas": "tte int8 + QAS", "int8": "tte int8, no QAS"}[r["training"]]
        out.append(f"| {r['model']} | {r['scheme']} | {label} | {r['rounding'] or '-'} | "
                   f"{100 * r['accuracy_mean']:.2f} +- {100 * r['accuracy_std']:.2f} % | {delta} | {r['lr']:g} |")
    return "\n".join(out)


def save(rows: list[dict]) -> None:
    """Merge ``rows`` into the results file (atomically, under a lock: runs of other models may share it; rows of
    other configurations kept)."""
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    with open(RESULTS.with_suffix(".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        old = json.loads(RESULTS.read_text()) if RESULTS.exists() else []
        key = lambda r: (r["model"], r["scheme"], r["training"], str(r["rounding"]))  # noqa: E731
        merged = {key(r): r for r in old}
        merged.update({key(r): r for r in rows})
        tmpfile = RESULTS.with_suffix(f".json.{os.getpid()}.tmp")
        tmpfile.write_text(json.dumps(sorted(merged.values(), key=key), indent=1) + "\n")
        tmpfile.replace(RESULTS)


if __name__ == "__main__":
    main()
