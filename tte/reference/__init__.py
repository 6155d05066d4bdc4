"""The numpy reference executor: tte's ground truth for integer forward semantics."""

from .executor import infer, run, run_node

__all__ = ["infer", "run", "run_node"]
