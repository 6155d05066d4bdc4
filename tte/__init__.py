"""tte, the tiny training engine: int8 ONNX CNN -> on-device training loop for Cortex-M."""

from .errors import TteError
from .frontend import load
from .ir import Graph

__version__ = "0.1.0"
__all__ = ["Graph", "TteError", "load", "__version__"]
