"""A compiled training program: the Python face of tte (`tte.compile(...)`)."""

from __future__ import annotations

import functools
import os

import numpy as np

from .autodiff.backward import Builder, TrainedParam, TrainOptions
from .autodiff.channels import Permutation
from .codegen import state as st
from .errors import TteError
from .ir import Graph
from .ir.executor import batched, evaluate
from .ir.facts import LABEL, LOSS
from .passes.arena import ArenaPlan
from .passes.forward import fuse_pointwise_depthwise
from .passes.memory import MemoryReport, arena_of, memory_report
from .passes.patch import patch_like


def _read_source(source: str | None) -> bytes | None:
    if source is None:
        return None
    try:
        with open(source, "rb") as f:
            return f.read()
    except OSError:
        return None


class Program:
    """Forward graph, training graph and the trained parameters' current values.

    ``infer``, ``grads`` and ``train_step`` run the numpy reference executor.  Parameters are exposed
    in the model's own layout (offline channel permutations are undone) and keyed by ONNX initializer.
    """

    def __init__(self, forward: Graph, builder: Builder, train: Graph, pass_log: list[str],
                 perms: dict[str, Permutation], opts: TrainOptions, source: str | None, notes: list[str]):
        self.forward = forward
        # the graph autodiff built (every gradient materialized: grads() reads it) and the optimized
        # one that train_step runs and the planner and codegen use (tte.pipeline makes both)
        self.autodiff = builder.g
        self.train, self.pass_log = train, pass_log
        self.plan = builder.plan
        self.params: dict[str, TrainedParam] = builder.params
        self.state = {k: np.array(v, copy=True) for k, v in builder.initial.items()}
        # forward values that backward reads, and for each backward op the forward op it differentiates
        self.saved = set(builder.saved_values)
        self.backward_origin = dict(builder.origin)
        self.perms = perms
        self.options = opts
        self.source = source
        # the source model's bytes, read once at compile time: save() never reads the file again
        self.source_bytes = _read_source(source)
        self.notes = notes
        self.steps = 0  # training steps taken (train_step; load_state sets it from the blob)

    @functools.cached_property
    def memory(self) -> MemoryReport:
        """The pipeline's plan stage, computed once: where every byte of a training step lives (arena
        offsets, scratch); the memory report and the C emitter both read it."""
        return memory_report(self.train)

    # -- running --------------------------------------------------------------------------------
    def _consts(self, g: Graph) -> dict[str, np.ndarray]:
        return {v.name: v.data for v in g.constants()}

    def _batch(self, x: np.ndarray) -> np.ndarray:
        return batched(x, self.forward[self.forward.inputs[0]].shape)

    def _labels(self, label, batch: int) -> np.ndarray:
        """``label`` as int32 class indices, checked: integers (not 1.5, not True), one per sample, in range."""
        classes = self.forward[self.forward.outputs[0]].shape[1]
        want = f"{batch} class index(es), integers in [0, {classes})"
        if isinstance(label, (bool, np.bool_, str, bytes)):
            raise TteError(f"label must be {want}, got {type(label).__name__} {label!r}")
        try:
            a = np.asarray(label)
        except (TypeError, ValueError):
            raise TteError(f"label must be {want}, got {type(label).__name__}") from None
        if a.dtype.kind not in "iuf" or a.size != batch:
            raise TteError(f"label must be {want}, got {label!r}")
        a = a.reshape(-1)
        if a.dtype.kind == "f" and not (np.isfinite(a).all() and (a == np.round(a)).all()):
            raise TteError(f"label must be {want}, got {a.tolist()} (a label is a class index, not a fraction)")
        if (a < 0).any() or (a >= classes).any():
            raise TteError(f"label must be {want}, got {a.tolist()}")
        return a.astype(np.int32)

    def infer(self, x: np.ndarray) -> np.ndarray:
        """float32 logits of the current model for a float32 input of the model's input shape (batch of 1
        included, e.g. (1, 3, H, W)) or one sample without the batch axis ((3, H, W)); the logits keep the batch
        axis either way ([1, classes]), as :meth:`tte.Graph.infer`."""
        env = self._consts(self.forward)
        env.update({k: v for k, v in self.state.items() if k in self.forward.values})
        env[self.forward.inputs[0]] = self._batch(x)
        evaluate(self.forward, env)
        return env[self.forward.outputs[0]]

    def _run(self, g: Graph, x, label) -> dict[str, np.ndarray]:
        x = self._batch(x)
        label = self._labels(label, x.shape[0])
        env = self._consts(g)
        env.update(self.state)
        env[g.inputs[0]] = x
        env[LABEL] = label
        evaluate(g, env)
        return env

    def grads(self, x: np.ndarray, label) -> dict[str, np.ndarray]:
        """dLoss/dParameter in real (dequantized) units for each trained parameter, by ONNX initializer
        name, in the model's layout; entries outside a partially trained slice are zero."""
        env = self._run(self.autodiff, x, label)
        out = {}
        for p in self.params.values():
            full = np.zeros(self.train[p.name].shape, np.float32)
            if p.grad:
                idx = [slice(None)] * full.ndim
                idx[p.axis] = slice(0, p.channels)
                full[tuple(idx)] = env[p.grad]
            out[p.name] = self._unpermute(p.name, full)
        return out

    @property
    def learning_rate(self) -> float:
        """The SGD learning rate the next step uses (``lr`` of :func:`tte.compile`, or :meth:`set_learning_rate`'s)."""
        return float(np.float32(self.options.lr))  # float32, as every update uses it

    def set_learning_rate(self, lr: float) -> None:
        """Use learning rate ``lr`` (float32) from the next step on: a schedule (warm-up, decay) calls it between
        steps.  The emitted C has the same, ``tte_set_learning_rate``, with the same arithmetic: the same steps
        give the same integers.  C emitted later starts from this rate."""
        from dataclasses import replace

        if isinstance(lr, (bool, np.bool_)) or not isinstance(lr, (int, float, np.floating, np.integer)):
            raise TteError(f"learning rate must be a number, got {type(lr).__name__}")
        with np.errstate(over="ignore"):
            value = float(np.float32(lr))
        if not (value > 0 and np.isfinite(value)):
            raise TteError(f"learning rate must be positive and finite (as a float32), got {lr}")
        self.options = replace(self.options, lr=value)
        for g in (self.train, self.autodiff):
            for node in g.nodes:
                if "lr" in node.attrs:
                    node.attrs["lr"] = value

    def train_step(self, x: np.ndarray, label) -> float:
        """One SGD step on (x, label); returns the loss before the step."""
        env = self._run(self.train, x, label)
        for name, new in self.train.state_updates.items():
            self.state[name] = env[new]
        self.steps += 1
        return float(env[LOSS])

    # -- parameters ---------------------------------------------------------------------------------
    def _unpermute(self, name: str, a: np.ndarray) -> np.ndarray:
        """A parameter in the model's own layout: tte's channel permutation undone, and the frontend's exact
        rewrites of it (tte.frontend.rewrites / batchnorm) undone."""
        a = self.perms[name].undo(a) if name in self.perms else a
        meta = self.forward.metadata
        if f"negated:{name}" in meta:  # a BatchNormalization with negative gamma folded into this conv
            rows = [int(i) for i in meta[f"negated:{name}"].split(",")]
            a = a.copy()
            a[rows] = -a[rows]
        if f"columns:{name}" in meta:  # a Transpose before the flatten into this classifier, folded
            cols = np.array([int(i) for i in meta[f"columns:{name}"].split(",")])
            out = np.empty_like(a)
            out[:, cols] = a
            a = out
        return a

    def parameters(self) -> dict[str, np.ndarray]:
        """Current integer values of the trained parameters (int8 weights, int32 biases), model layout."""
        return {name: self._unpermute(name, self.state[name]) for name in self.params}

    def trained_channels(self, name: str) -> np.ndarray:
        """Indices (in the model's layout, along the trained axis) of the channels of ``name`` that train."""
        p = self.params[name]
        size = self.train[name].shape[p.axis]
        order = np.arange(size)
        if name in self.perms:
            for axis, perm in self.perms[name].steps:
                if axis == p.axis:
                    order = order[perm]
        return np.sort(order[: p.channels])

    @functools.cached_property
    def inference(self) -> tuple[Graph, dict[str, str], ArenaPlan]:
        """The forward graph the C inference function runs (frozen 1x1 + depthwise pairs fused and the frozen prefix
        run band by band, as in the training step: the same stage and bands, tte.passes.patch), which buffer each
        value lives in, and its arena plan: computed once."""
        g = fuse_pointwise_depthwise(self.forward, set(self.params))[0]
        like = next((n for n in self.train.nodes if n.op == "patch"), None)
        if like is not None:
            g = patch_like(g, like, set(self.params))
        _, root, arena = arena_of(g)
        return g, root, arena

    def memory_report(self) -> MemoryReport:
        """Where every byte of a training step lives (:class:`tte.passes.memory.MemoryReport`)."""
        return self.memory

    def emit_c(self, directory) -> list:
        """Write the C training program (tte_model.h / tte_model.c and the runtime) into ``directory``."""
        from .codegen.c_train import emit_program

        return emit_program(self, directory)

    def native(self, directory: str | None = None):
        """This program as C, compiled for this machine (:class:`tte.codegen.NativeProgram`): the same
        ``train_step`` and ``infer``, at C speed, training the same integers.  It starts from the
        program's current parameters; the two then train independently."""
        from .codegen import build_program

        return build_program(self, directory)

    def dump(self) -> str:
        """The training graph as text."""
        return self.train.dump()

    # -- the state a device keeps ----------------------------------------------------------------------
    @functools.cached_property
    def fingerprint(self) -> int:
        """64 bits identifying this compiled program (the C's TTE_FINGERPRINT; :mod:`tte.codegen.state`)."""
        return st.fingerprint(self)

    def state_blob(self, sequence: int = 1) -> bytes:
        """The current state as the blob a device's ``tte_state_save`` writes (the same bytes, for the same
        values, step count and sequence number)."""
        layout = st.state_layout(self)
        parts = {t.name: t.device_part(self.state[t.name]) for t in layout}
        return st.encode(layout, self.fingerprint, parts, self.steps, sequence)

    def load_state(self, blob: bytes | bytearray | memoryview | str | os.PathLike) -> None:
        """Load a state blob: the bytes a device saved (one blob, or a dump of its two-slot storage), from
        :meth:`tte.codegen.NativeProgram.state_blob` or :meth:`state_blob`, or a file holding them.  The newest
        complete state is loaded (trained parameters, optimizer state, step count); then :meth:`save` writes the
        trained ONNX model.  A blob of another model, of another format version or a corrupted one is refused
        (:class:`tte.codegen.state.StateBlobError`) and nothing changes."""
        what = "the state data"
        if isinstance(blob, (str, os.PathLike)):
            what = os.fspath(blob)
            try:
                with open(blob, "rb") as f:
                    blob = f.read()
            except OSError as e:
                raise TteError(f"cannot read state file '{what}': {e.strerror or e}") from None
        layout = st.state_layout(self)
        found = st.decode(blob, layout, self.fingerprint, what)
        for t in layout:
            self.state[t.name] = t.whole(found.arrays[t.name], self.state[t.name])
        self.steps = found.steps

    def save(self, path: str | os.PathLike) -> None:
        """Write the trained model as an ONNX file (same format as the input model), atomically: a temporary
        file in the same directory, flushed to disk, then renamed over ``path``.  The source model is the one
        read at compile time; the file it came from is not read again."""
        from .frontend.export import save_trained

        if self.source_bytes is None:
            why = "was not compiled from a model file" if self.source is None else \
                f"could not read its source '{self.source}' at compile time"
            raise TteError(f"cannot save: this program {why}; nothing to save into")
        if self.source_bytes[4:8] == b"TFL3":
            raise TteError(f"cannot save: '{os.path.basename(str(self.source))}' is a TFLite model and tte writes "
                           "trained models as ONNX only (TFLite export is not supported)")
        save_trained(self, path)

    def __repr__(self) -> str:
        n = sum(int(np.prod(self.autodiff[p].shape)) for p in self.params)
        return (f"<Program {self.forward.name}: scheme {self.plan.scheme.name}, {len(self.params)} trained tensors "
                f"({n:,} values), {len(self.train.nodes)} training ops>")

