"""The op registry: every op of the IR with all of its facets, in one record per op.

An op is declared once, in its family's module under :mod:`tte.ops` (conv, gemm, pool, elementwise,
shape, loss, update), which states every facet of it side by side:

============== ===============================================================================
facet          what it is
============== ===============================================================================
operands       one dtype per operand (alternatives ``a|b``, ``*`` any), or None: 1+ int8 operands
out_dtype      dtype of the first output (``same`` / ``same:K``: that of operand 0 / K)
shape          ``(graph, node) -> shape`` of the first output; raises ValueError on bad operands
attrs          attributes every node of the op must carry
requantizes    the output has its own quantization and a ``qmin``/``qmax`` clamp
extra          ``(graph, node) -> [(dtype, shape), ...]`` of the outputs after the first
optional       how many trailing operands may be absent
kernel         the numpy reference: ``(graph, node, *operand arrays) -> array or tuple``
grad           the reverse-mode rule ``(builder, node, gy)``, or :data:`NOT_DIFFERENTIATED` for ops
               that only training graphs contain (backward ops, updates: never differentiated)
emit           the C emitter ``(emitter, node)`` (:mod:`tte.codegen.emitter`)
runtime        the ``runtime_c/src`` files its C calls
scratch        ``(graph, node) -> bytes`` of kernel scratch its C call needs
in_place       ``(graph, node) -> bool``: its result may overwrite its first operand when that dies
alias          its result is a view of its operand's bytes (no code, no buffer)
code_bytes     Thumb-2 code size estimate of its kernel (memory report, before a real link)
flash          ``(graph, node) -> (arrays, literals)``: the quantization data its C holds beyond the graph's
               constants: arrays in flash (shared when identical) and scalar float literals in the code
channels       ``(graph, node, components)``: how it ties channels together for the offline channel
               permutation (:mod:`tte.autodiff.channels`; helpers in :mod:`tte.ops.common`)
layer          a weighted layer (weight = operand 1, bias = operand 2) that schemes index and train
onnx           the ONNX op types the frontend lifts into it (empty: made by a pass or by autodiff)
============== ===============================================================================

Every facet is required: :func:`register` refuses an op with a facet missing or of the wrong kind, so
that no table elsewhere can silently fall back to a default.  This module imports nothing from tte
but the IR.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, fields
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .graph import Graph, Node

Shape = tuple[int, ...]


class _Marker:
    def __init__(self, name: str) -> None:
        self.name = name

    def __repr__(self) -> str:
        return self.name


NOT_DIFFERENTIATED = _Marker("NOT_DIFFERENTIATED")


@dataclass(frozen=True)
class Op:
    name: str
    operands: tuple[str, ...] | None
    out_dtype: str
    shape: Callable[[Graph, Node], Shape]
    attrs: tuple[str, ...]
    requantizes: bool
    extra: Callable[[Graph, Node], list[tuple[str, Shape]]] | None
    optional: int
    kernel: Callable[..., Any]
    grad: Callable[..., None] | _Marker
    emit: Callable[..., None]
    runtime: tuple[str, ...]
    scratch: Callable[[Graph, Node], int]
    in_place: Callable[[Graph, Node], bool]
    alias: bool
    code_bytes: int
    flash: Callable[..., tuple[list[Any], int]]
    channels: Callable[..., None]
    layer: bool
    onnx: tuple[str, ...]


OPS: dict[str, Op] = {}

_KINDS: dict[str, Callable[[Any], bool]] = {
    "name": lambda v: isinstance(v, str) and v.isidentifier(),
    "operands": lambda v: v is None or (isinstance(v, tuple) and all(isinstance(t, str) for t in v)),
    "out_dtype": lambda v: isinstance(v, str),
    "shape": callable,
    "attrs": lambda v: isinstance(v, tuple) and all(isinstance(a, str) for a in v),
    "requantizes": lambda v: isinstance(v, bool),
    "extra": lambda v: v is None or callable(v),
    "optional": lambda v: isinstance(v, int) and v >= 0,
    "kernel": callable,
    "grad": lambda v: v is NOT_DIFFERENTIATED or callable(v),
    "emit": callable,
    "runtime": lambda v: isinstance(v, tuple) and all(isinstance(f, str) and f.endswith(".c") for f in v),
    "scratch": callable,
    "in_place": callable,
    "alias": lambda v: isinstance(v, bool),
    "code_bytes": lambda v: isinstance(v, int) and v >= 0,
    "flash": callable,
    "channels": callable,
    "layer": lambda v: isinstance(v, bool),
    "onnx": lambda v: isinstance(v, tuple) and all(isinstance(t, str) for t in v),
}


class RegistryError(Exception):
    """An op declared with a facet missing or malformed (a bug in tte, found at import)."""


def register(**facets: Any) -> Op:
    """Declare an op: every facet of :class:`Op` must be given, each of the right kind."""
    names = [f.name for f in fields(Op)]
    op = facets.get("name", "?")
    missing = [n for n in names if n not in facets]
    unknown = sorted(set(facets) - set(names))
    if missing or unknown:
        raise RegistryError(f"op '{op}': missing facets {missing}" + (f", unknown {unknown}" if unknown else ""))
    bad = [n for n in names if not _KINDS[n](facets[n])]
    if bad:
        raise RegistryError(f"op '{op}': malformed facets {bad}")
    if op in OPS:
        raise RegistryError(f"op '{op}' is declared twice")
    if facets["alias"] and facets["code_bytes"]:
        raise RegistryError(f"op '{op}': an alias has no code")
    OPS[op] = Op(**facets)
    return OPS[op]


def output_shape(g: Graph, node: Node) -> Shape:
    """The first output's shape of ``node`` by its op's rule (raises ValueError when operands disagree)."""
    return OPS[node.op].shape(g, node)


def output_types(g: Graph, node: Node) -> list[tuple[str, Shape]]:
    """(dtype, shape) of every output of ``node``."""
    d = OPS[node.op]
    dtype = d.out_dtype
    if dtype.startswith("same"):  # "same" or "same:K": the dtype of operand K (default 0)
        dtype = g[node.inputs[int(dtype.partition(":")[2] or 0)]].dtype
    return [(dtype, tuple(d.shape(g, node)))] + [(t, tuple(s)) for t, s in (d.extra(g, node) if d.extra else [])]
