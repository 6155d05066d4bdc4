"""tte's IR for int8-quantized CNNs: values, nodes and graphs, the op registry (every op's facets; the
ops themselves are declared in :mod:`tte.ops`), the verifier, the printer and the reference executor."""

from .graph import DTYPES, Graph, Node, QuantParams, Value
from .registry import OPS, output_shape, output_types
from .verify import verify

__all__ = ["DTYPES", "Graph", "Node", "QuantParams", "Value", "OPS", "output_shape", "output_types", "verify"]
