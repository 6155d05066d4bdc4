"""The compile pipeline, top to bottom: each stage a function whose result the next consumes.

    load -> new head -> scheme -> channel selection -> autodiff -> passes -> (plan -> emit)

``tte.compile``, :class:`tte.Program`, ``tte plan`` and ``tte compile`` all go through :func:`compile`; the
memory plan (arena offsets, scratch) is computed once per program (``Program.memory``) and both the
memory report and the C emitter consume it.  ``TTE_DUMP=<stage or pass>[,...]`` (or ``all``) prints the
graph after that stage (``load``, ``head``, ``channels``, ``autodiff``) or training-graph pass to stderr.
"""

from __future__ import annotations

import os
import sys

from .autodiff.backward import TrainOptions, build_training_graph
from .autodiff.channels import select_channels
from .autodiff.head import replace_head
from .autodiff.scheme import SparseScheme, resolve
from .frontend import load
from .ir import Graph
from .passes.training import optimize as run_passes
from .program import Program


def _dump(stage: str, g: Graph) -> Graph:
    wanted = {s.strip() for s in os.environ.get("TTE_DUMP", "").split(",") if s.strip()}
    if stage in wanted or "all" in wanted:
        print(f"// after {stage}\n{g.dump()}", file=sys.stderr)
    return g


def load_stage(model, input_shape=None, arithmetic: str | None = None) -> tuple[Graph, str | None]:
    """A model path (ONNX or TFLite, loaded and lifted) or a Graph from :func:`tte.load`, and the source
    file."""
    if isinstance(model, Graph):
        return model, model.metadata.get("source")
    return load(os.fspath(model), input_shape=input_shape, arithmetic=arithmetic), os.fspath(model)


def compile(model, scheme=None, classes: int | None = None, lr: float = 0.005, momentum: float = 0.0,
            qas: bool = True, rounding: str = "stochastic", seed: int = 0, input_shape=None,
            optimize: bool = True, arithmetic: str | None = None) -> Program:
    """Compile a model for training.

    ``model``: an ONNX path or a :class:`Graph` from :func:`tte.load`.  ``scheme``: ``"full"``
    (default), ``"bias-only"``, ``"last-K"``, a scheme JSON file or dict (see
    :mod:`tte.autodiff.scheme`).  ``classes=N`` puts a new N-class head on the model
    (:mod:`tte.autodiff.head`); ``None`` keeps the model's own.  ``lr``, ``momentum``, ``qas``,
    ``rounding`` and ``seed`` set the update (:class:`tte.autodiff.backward.TrainOptions`).
    ``optimize=False`` skips the training-graph passes (:mod:`tte.passes.training`).  ``arithmetic``:
    ``"tflite"`` or ``"onnxruntime"`` when ``model`` is a path (see :func:`tte.load`).
    """
    opts = TrainOptions(lr=lr, momentum=momentum, qas=qas, rounding=rounding, seed=seed)
    g, source = load_stage(model, input_shape, arithmetic)                         # load
    g = _dump("load", g)
    if classes is not None:
        g = _dump("head", replace_head(g, int(classes), seed=seed))                # new head
    plan = resolve(g, SparseScheme.parse(scheme))                                  # scheme
    g, perms, notes = select_channels(g, plan)                                     # channel selection
    g = _dump("channels", g)
    g.verify()
    builder = build_training_graph(g, plan, opts)                                  # autodiff
    _dump("autodiff", builder.g)
    train, log = run_passes(builder.g) if optimize else (builder.g, [])            # passes
    return Program(g, builder, train, log, perms, opts, source, notes)             # plan, emit: Program
