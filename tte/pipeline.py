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
import warnings

from .autodiff.backward import ROUNDINGS, TrainOptions, build_training_graph
from .autodiff.channels import select_channels
from .autodiff.head import feature_rms, replace_head
from .autodiff.scheme import SchemeWarning, SparseScheme, made_for_another_model, resolve
from .errors import TteError
from .frontend import load
from .ir import Graph
from .passes.block_backward import fuse_block_backward
from .passes.patch import StreamError, patch_frozen_prefix, stream_input_rows
from .passes.training import PIPELINE
from .passes.training import optimize as run_passes
from .program import Program
from .units import SEED_LIMIT, check_bool, check_classes, check_input_shape, check_int, check_number, check_path


def _dump(stage: str, g: Graph) -> Graph:
    wanted = {s.strip() for s in os.environ.get("TTE_DUMP", "").split(",") if s.strip()}
    if stage in wanted or "all" in wanted:
        print(f"// after {stage}\n{g.dump()}", file=sys.stderr)
    return g


def _caller_level() -> int:
    """The ``stacklevel`` of a warning that points at the first caller outside tte (the user's line)."""
    package = os.path.dirname(os.path.abspath(__file__))
    frame, level = sys._getframe(1), 1
    while frame is not None and os.path.abspath(frame.f_code.co_filename).startswith(package + os.sep):
        frame, level = frame.f_back, level + 1
    return level


def load_stage(model, input_shape=None, arithmetic: str | None = None) -> tuple[Graph, str | None]:
    """A model path (ONNX or TFLite, loaded and lifted) or a Graph from :func:`tte.load`, and the source
    file."""
    if isinstance(model, Graph):
        return model, model.metadata.get("source")
    path = check_path(model)
    return load(path, input_shape=check_input_shape(input_shape), arithmetic=arithmetic), path


def check_options(scheme, classes, lr, momentum, qas, rounding, seed, optimize) -> dict:
    """The compile options, checked (types and ranges; one :class:`TteError` line naming the argument)."""
    if scheme is not None and not isinstance(scheme, (str, os.PathLike, dict, SparseScheme)):
        raise TteError(f"scheme must be 'full', 'bias-only', 'last-K', a scheme JSON file, a dict or a SparseScheme, "
                       f"got {type(scheme).__name__} {scheme!r}")
    if not isinstance(rounding, str) or rounding not in ROUNDINGS:
        raise TteError(f"unknown rounding {rounding!r}; choose one of {', '.join(ROUNDINGS)}")
    return dict(classes=check_classes(classes), lr=check_number(lr, "lr"), momentum=check_number(momentum, "momentum"),
                qas=check_bool(qas, "qas"), rounding=rounding, seed=check_int(seed, "seed", 0, SEED_LIMIT - 1),
                optimize=check_bool(optimize, "optimize"))


def compile(model, scheme=None, classes: int | None = None, lr: float = 0.005, momentum: float = 0.0,
            qas: bool = True, rounding: str = "stochastic", seed: int = 0, input_shape=None,
            optimize: bool = True, arithmetic: str | None = None, calibration=None, passes=None,
            patch: bool = True, block_backward: bool = True, stream_input: bool = False) -> Program:
    """Compile a model for training.

    ``model``: an ONNX path or a :class:`Graph` from :func:`tte.load`.  ``scheme``: ``"full"``
    (default), ``"bias-only"``, ``"last-K"``, a scheme JSON file or dict (see
    :mod:`tte.autodiff.scheme`).  ``classes=N`` puts a new N-class head on the model
    (:mod:`tte.autodiff.head`); ``None`` keeps the model's own.  ``lr``, ``momentum``, ``qas``,
    ``rounding`` and ``seed`` set the update (:class:`tte.autodiff.backward.TrainOptions`).
    ``optimize=False`` skips the training-graph passes (:mod:`tte.passes.training`); ``passes`` runs these (some
    of its ``PIPELINE``, in its order) instead of all of them.  ``arithmetic``:
    ``"tflite"``, ``"tflite-micro"`` or ``"onnxruntime"`` when ``model`` is a path (see :func:`tte.load`).
    ``calibration``: a few float32 inputs (N x the input shape) on which the new head is calibrated
    (:func:`tte.autodiff.head.feature_rms`; needs ``classes``).  ``patch=False`` leaves the frozen prefix unpatched
    (:mod:`tte.passes.patch`: it runs band by band otherwise, in the training step and in inference alike);
    ``block_backward=False`` leaves the backward of trained inverted-residual blocks unfused
    (:mod:`tte.passes.block_backward`).  Either way the training numerics are the same, bit for bit.
    ``stream_input=True``: the patched stage reads the int8 input in rows from a row source the caller gives
    (``tte_train_step_rows`` in C; ``tte_train_step_s8`` reads a whole input where it lies), so the arena holds no
    input (:func:`tte.passes.patch.stream_input_rows`; :class:`tte.passes.patch.StreamError` when the frozen prefix
    cannot take it, or with ``patch=False``).
    """
    if not isinstance(model, (Graph, str, os.PathLike)):
        raise TteError(f"model must be a file path or a Graph from tte.load, got {type(model).__name__} {model!r}")
    o = check_options(scheme, classes, lr, momentum, qas, rounding, seed, optimize)
    classes, seed, optimize = o.pop("classes"), o["seed"], o.pop("optimize")
    patch, block_backward = check_bool(patch, "patch"), check_bool(block_backward, "block_backward")
    if check_bool(stream_input, "stream_input") and not (patch and optimize and passes is None):
        raise StreamError("stream_input needs the frozen prefix patched: it cannot go with patch=False, "
                          "optimize=False or a passes= list")
    if passes is not None:
        passes = () if isinstance(passes, str) else tuple(passes)
        if not passes or not all(callable(p) and p in PIPELINE for p in passes) or not optimize:
            names = ", ".join(p.__name__ for p in PIPELINE)
            raise TteError(f"passes must be some of tte.passes.training.PIPELINE ({names}), with optimize=True")
        passes = tuple(p for p in PIPELINE if p in passes)  # in the pipeline's order
    off = ({patch_frozen_prefix} if not patch else set()) | ({fuse_block_backward} if not block_backward else set())
    opts = TrainOptions(**o)
    g, source = load_stage(model, input_shape, arithmetic)                         # load
    g = _dump("load", g)
    if classes is not None:
        rms = None if calibration is None else feature_rms(g, calibration)
        g = _dump("head", replace_head(g, classes, seed=seed, feature_rms=rms))   # new head
    elif calibration is not None:
        raise TteError("calibration samples calibrate a new head: give classes=N as well")
    scheme = SparseScheme.parse(scheme)
    if warning := made_for_another_model(scheme, g):
        warnings.warn(warning, SchemeWarning, stacklevel=_caller_level())
    plan = resolve(g, scheme)                                                      # scheme
    g, perms, notes = select_channels(g, plan)                                     # channel selection
    g = _dump("channels", g)
    g.verify()
    builder = build_training_graph(g, plan, opts)                                  # autodiff
    _dump("autodiff", builder.g)
    steps = tuple(s for s in (PIPELINE if passes is None else passes) if s not in off)
    if stream_input:  # the patch pass with the input streamed in its place
        steps = tuple(stream_input_rows if s is patch_frozen_prefix else s for s in steps)
    train, log = run_passes(builder.g, steps) if optimize else (builder.g, [])     # passes
    return Program(g, builder, train, log, perms, opts, source, notes)             # plan, emit: Program
