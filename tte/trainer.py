"""Train on the host with the integers a device trains: ``tte.train`` and `tte train`.

:func:`train` compiles the model as `tte compile` does (the same plan, budgets and ``--scheme auto``), prepares the
samples as `tte data pack` does (:mod:`tte.data`), builds the emitted C for this machine
(:func:`tte.codegen.build_program`) and runs :func:`fit`: each epoch, one SGD step per training sample in the split's
order, then ``tte_predict`` on every test sample: the loop of the emitted demo (`make run DATA=... EPOCHS=...`), so
an epoch's mean loss and accuracy are the numbers the demo prints for the same sample file.  ``engine="reference"``
runs the numpy reference (:class:`tte.Program`) instead: the same integers, slower.
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass, field

import numpy as np

from .codegen import build_program
from .data import ModelInput, Samples, load_samples
from .errors import TteError
from .frontend import load
from .ir import Graph
from .plan import plan as make_plan
from .units import parse_size


@dataclass
class Epoch:
    """One epoch: the mean training loss (a float64 sum of the float32 losses in order, divided by the steps, as
    the demo computes it) and the held-out accuracy."""

    epoch: int
    loss: float
    steps: int
    correct: int
    tested: int
    losses: list[float] = field(default_factory=list, repr=False)  # every step's loss

    @property
    def accuracy(self) -> float:
        return self.correct / self.tested if self.tested else 0.0

    @property
    def loss_bits(self) -> str:
        return f"{int(np.float32(self.loss).view(np.uint32)):08x}"

    def line(self) -> str:
        """The line the emitted demo prints for this epoch (without the Cortex-M tick count)."""
        pct = 100.0 * self.correct / self.tested if self.tested else 0.0
        return (f"epoch {self.epoch} train loss {self.loss:.6f} ({self.loss_bits}) over {self.steps} steps, test "
                f"accuracy {self.correct}/{self.tested} ({pct:.1f}%)")


def _frontiers(prefix, q: np.ndarray, first: int, count: int, nbytes: int):
    """frontier(i) for samples ``first`` .. ``first + count - 1``: ``prefix(q[i])``, computed at the first call for
    each and kept (``count`` x ``nbytes`` int8 in one array; rows never filled take no memory)."""
    rows, done = np.empty((count, nbytes), np.int8), np.zeros(count, bool)

    def frontier(i: int) -> np.ndarray:
        if not done[i - first]:
            rows[i - first] = prefix(q[i])
            done[i - first] = True
        return rows[i - first]

    return frontier


def _steppers(engine, samples: Samples, cache: bool = True):
    """(train_step(i), predict(i)) for sample i of ``samples`` on a NativeProgram (int8 in; with ``cache``, from
    each sample's frozen-prefix frontier, computed once) or a Program (the float32 input that its quantize turns
    back into sample i)."""
    q, y = samples.inputs, samples.labels
    if hasattr(engine, "train_step_s8"):
        prefixes = engine.prefixes if cache and hasattr(engine, "prefix") else None
        if prefixes and prefixes[0].work:  # else the frontier is the input itself: nothing to save
            trained = _frontiers(engine.prefix, q, 0, samples.train, engine.frontier_bytes)

            def step(i: int) -> float:
                return engine.train_step_cached(trained(i), int(y[i]))
        else:
            def step(i: int) -> float:
                return engine.train_step_s8(q[i], int(y[i]))
        if prefixes and prefixes[1].work:
            tested = _frontiers(engine.infer_prefix, q, samples.train, samples.test, engine.infer_frontier_bytes)

            def predict(i: int) -> int:
                return engine.predict_cached(tested(i))
        else:
            def predict(i: int) -> int:
                return engine.predict(q[i])
        return step, predict
    model = ModelInput(engine.forward, engine.source_bytes)
    samples.check(model.format, what="the samples")
    fmt = samples.format

    def floats(i: int) -> np.ndarray:
        x = fmt.dequantize(q[i]).reshape(fmt.shape)
        if not np.array_equal(model.quantize(x).reshape(-1), q[i]):  # cannot happen: (q - z) s / s rounds to q - z
            raise TteError(f"sample {i} does not quantize back to its int8 values")
        return x

    return ((lambda i: engine.train_step(floats(i), int(y[i]))),
            (lambda i: int(np.argmax(engine.infer(floats(i)).reshape(-1)))))


def fit(engine, samples: Samples, epochs: int = 1, on_step=None, on_epoch=None, cache: bool = True) -> list[Epoch]:
    """Train ``engine`` (a :class:`tte.codegen.NativeProgram` or a :class:`tte.Program`) for ``epochs`` epochs on
    the training split of ``samples`` in its order, testing after each epoch on the test split, as the emitted demo
    does.  ``on_step(epoch, step, steps, loss)`` and ``on_epoch(Epoch)`` report progress.

    ``cache`` (a NativeProgram): the layers before the first trained one give an image the same tensors at every
    epoch, so each sample's frozen prefix runs once, at its first step or test, and later epochs run only the rest
    (``NativeProgram.prefix`` / ``train_step_cached``, ``infer_prefix`` / ``predict_cached``): the same losses,
    parameters and predictions, bit for bit.  The cache holds ``engine.frontier_bytes`` per training sample and
    ``engine.infer_frontier_bytes`` per test sample (about 10 KB each for the paper's models at their ~100 KB
    schemes: 8,000 images take some 80 MB).  ``cache=False`` runs every step whole."""
    if int(epochs) != epochs or epochs < 1:
        raise TteError(f"epochs must be a whole number >= 1, got {epochs}")
    step, predict = _steppers(engine, samples, cache)
    history = []
    for epoch in range(1, int(epochs) + 1):
        total, losses = 0.0, []
        for i in range(samples.train):
            loss = step(i)
            losses.append(loss)
            total += loss
            if on_step is not None:
                on_step(epoch, i + 1, samples.train, loss)
        correct = sum(int(predict(i) == samples.labels[i]) for i in range(samples.train, samples.count))
        e = Epoch(epoch, total / samples.train if samples.train else 0.0, samples.train, correct, samples.test, losses)
        history.append(e)
        if on_epoch is not None:
            on_epoch(e)
    return history


@dataclass
class Training:
    """The result of :func:`train`: the compiled program, the engine that trained (its C build, or the program
    itself with ``engine="reference"``), the samples and one :class:`Epoch` per epoch."""

    program: object
    engine: object
    samples: Samples
    history: list[Epoch]
    _tmp: object = field(default=None, repr=False)

    @property
    def accuracy(self) -> float:
        return self.history[-1].accuracy if self.history else 0.0

    def state_blob(self) -> bytes:
        """The trained state as a device's tte_state_save writes it."""
        return self.engine.state_blob()

    def save(self, path: str | os.PathLike) -> None:
        """Write the trained model as ONNX (atomically; :meth:`tte.Program.save`)."""
        if self.engine is not self.program:
            self.program.load_state(self.engine.state_blob())
        self.program.save(path)


def train(model, x, y=None, *, classes: int | None = None, scheme="auto", sram="256k", flash="1m",
          epochs: int = 1, lr: float = 0.005, momentum: float = 0.0, rounding: str = "stochastic", qas: bool = True,
          seed: int = 0, test_fraction: float | None = None, split: int | None = None, limit: int | None = None,
          value_range: str = "auto", engine: str = "native", on_step=None, on_epoch=None,
          on_prepare=None, calibrate: int = 0) -> Training:
    """Train ``model`` (an ONNX / TFLite path or a :class:`tte.Graph`) on samples and test it after each epoch.

    Samples: ``x`` images with labels ``y`` (as an ``.npz`` holds them, see :mod:`tte.data`), or ``x`` an image
    folder, an ``.npz`` path or a sample file of `tte data pack` (its split is used as it is), or a
    :class:`tte.data.Samples`.  ``test_fraction`` (default 0.2) / ``split`` / ``limit`` / ``value_range`` / ``seed``
    prepare and split them as `tte data pack` does.

    The program is the one `tte compile MODEL --sram S --flash F --scheme X --classes N --lr ...` builds (the same
    plan and ``--scheme auto``); ``classes`` defaults to the samples' number of classes (a new head); ``seed`` sets
    the new head, stochastic rounding and the shuffle of the samples.  ``calibrate=N`` calibrates the new head on
    the first N training samples (:func:`tte.autodiff.head.feature_rms`; for models whose features are small, whose
    uncalibrated head starts with the same logit for every class).  ``engine``: ``"native"`` (the emitted C,
    compiled for this machine) or ``"reference"`` (numpy).  Returns a :class:`Training`; ``.save(path)`` writes
    the trained ONNX model."""
    if engine not in ("native", "reference"):
        raise TteError(f"engine must be 'native' or 'reference', got {engine!r}")
    g = model if isinstance(model, Graph) else load(os.fspath(model))
    source = g.metadata.get("source")
    data = None
    if source:
        try:
            with open(source, "rb") as fh:
                data = fh.read()
        except OSError:
            data = None
    spec = ModelInput(g, data)
    if isinstance(x, Samples):
        samples = x
        samples.check(spec.format)
    else:
        options = {"test_fraction": test_fraction, "split": split, "limit": limit}
        if y is None and not isinstance(x, np.ndarray) and os.path.isfile(os.fspath(x)):
            from .data import is_sample_file

            if is_sample_file(x) and any(v is not None for v in options.values()):
                raise TteError(f"'{x}' is a packed sample file: its split is fixed (drop --test-fraction, --split and"
                               " --limit, or give the images)")
        samples = load_samples(x, spec, y=y, value_range_choice=value_range, seed=seed, progress=on_prepare,
                               **options)
    if samples.train == 0:
        raise TteError("there are no training samples (all went to the test split)")
    if classes is None:
        classes = samples.classes
    if int(classes) != classes or classes < samples.classes:
        raise TteError(f"the samples have {samples.classes} classes; --classes must be at least that, got {classes}")
    sram_bytes = parse_size(sram, "--sram") if isinstance(sram, str) else int(sram)
    flash_bytes = parse_size(flash, "--flash") if isinstance(flash, str) else int(flash)
    if isinstance(calibrate, (bool, np.bool_)) or not isinstance(calibrate, (int, np.integer)) or calibrate < 0:
        raise TteError(f"calibrate must be a number of samples >= 0, got {calibrate!r}")
    calibration = None
    if calibrate:
        calibration = samples.format.dequantize(samples.inputs[:min(int(calibrate), samples.train)])
    p = make_plan(g, sram_bytes, flash_bytes, scheme=scheme, classes=int(classes), lr=lr, momentum=momentum,
                  rounding=rounding, qas=qas, seed=seed, calibration=calibration)
    problem = p.problem()
    if problem:
        raise TteError(problem)
    program = p.program
    tmp = None
    if engine == "native":
        tmp = tempfile.TemporaryDirectory(prefix="tte_train_")
        runner = build_program(program, tmp.name)
    else:
        runner = program
    history = fit(runner, samples, epochs, on_step=on_step, on_epoch=on_epoch)
    return Training(program, runner, samples, history, tmp)


def plot_history(history: list[Epoch], path: str | os.PathLike, title: str = "") -> None:
    """The training curve: every step's loss (and each epoch's mean) and the test accuracy per epoch."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise TteError("--plot needs matplotlib: pip install 'tte[plot]'") from None
    fig, ax = plt.subplots(figsize=(7, 4))
    losses = [loss for e in history for loss in e.losses]
    steps = np.arange(1, len(losses) + 1)
    ax.plot(steps, losses, lw=0.5, alpha=0.4, color="tab:blue", label="loss per step")
    ends = np.cumsum([e.steps for e in history])
    ax.plot(ends, [e.loss for e in history], "o-", color="tab:blue", label="mean loss per epoch")
    ax.set_xlabel("step")
    ax.set_ylabel("training loss")
    acc = ax.twinx()
    acc.plot(ends, [100 * e.accuracy for e in history], "s-", color="tab:orange", label="test accuracy")
    acc.set_ylabel("test accuracy (%)")
    acc.set_ylim(0, 100)
    lines = ax.get_legend_handles_labels()
    more = acc.get_legend_handles_labels()
    ax.legend(lines[0] + more[0], lines[1] + more[1], loc="upper right", fontsize=8)
    if title:
        ax.set_title(title, fontsize=9)
    fig.tight_layout()
    try:
        fig.savefig(os.fspath(path), dpi=120)
    except OSError as e:
        raise TteError(f"cannot write '{path}': {e.strerror or e}") from None
    finally:
        plt.close(fig)
