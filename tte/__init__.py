"""tte, the tiny training engine: int8 CNN (ONNX or TFLite) -> on-device training loop for Cortex-M."""

from . import ops  # noqa: F401  (registers every op)
from .autodiff.backward import TrainOptions
from .autodiff.scheme import SparseScheme
from .errors import TteError
from .frontend import load
from .ir import Graph
from .plan import compile  # tte.pipeline.compile with budgets: scheme="auto", sram=, flash=
from .program import Program
from .search import search  # contribution trials + evolutionary search of a sparse-update scheme: `tte search`
from .trainer import train  # compile, train in C on samples, test: `tte train`
from .version import __version__

__all__ = ["Graph", "Program", "SparseScheme", "TrainOptions", "TteError", "__version__", "compile", "load", "search",
           "train"]
