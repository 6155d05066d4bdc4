"""tte's IR for int8-quantized CNNs."""

from .graph import DTYPES, Graph, Node, QuantParams, Value
from .ops import OPS, output_shape
from .verify import verify

__all__ = ["DTYPES", "Graph", "Node", "QuantParams", "Value", "OPS", "output_shape", "verify"]
