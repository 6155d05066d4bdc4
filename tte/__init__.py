"""tte, the tiny training engine: int8 ONNX CNN -> on-device training loop for Cortex-M."""

from .autodiff.backward import TrainOptions
from .autodiff.scheme import SparseScheme
from .errors import TteError
from .frontend import load
from .ir import Graph
from .program import Program, compile

__version__ = "0.1.0"
__all__ = ["Graph", "Program", "SparseScheme", "TrainOptions", "TteError", "__version__", "compile", "load"]
