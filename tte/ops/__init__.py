"""Every op of tte, one module per family; importing this package registers them all
(:mod:`tte.ir.registry`).  To add an op, see "Add an op" in DESIGN.md."""

from ..ir.registry import NOT_DIFFERENTIATED, OPS, Op, register
from . import activation, affine, block, conv, elementwise, gemm, layout, loss, mul, patch, pool, shape, update  # noqa: F401

__all__ = ["NOT_DIFFERENTIATED", "OPS", "Op", "register"]
