"""tte's IR for int8-quantized CNNs."""

from . import train_ops  # noqa: F401  (registers the training ops)
from .graph import DTYPES, Graph, Node, QuantParams, Value
from .ops import OPS, output_shape, output_types
from .verify import verify

__all__ = ["DTYPES", "Graph", "Node", "QuantParams", "Value", "OPS", "output_shape", "output_types", "verify"]
