"""Readable text dumps of a graph (``Graph.dump()``)."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .graph import Graph, Node, Value

_SKIP_ATTRS = {"qmin", "qmax"}


def _fmt_attr(v) -> str:
    if isinstance(v, (tuple, list)):
        return "x".join(map(str, v)) if v else "()"
    return str(v)


def _fmt_operand(g: Graph, name: str) -> str:
    v = g.values.get(name)
    return f"@{name}" if v is not None and v.is_const else f"%{name}"


def _fmt_value(v: Value) -> str:
    q = f" {v.quant!r}" if v.quant is not None else ""
    return f"{v.type_str()}{q}"


def format_node(g: Graph, node: Node) -> str:
    outs = ", ".join(f"%{o}: {_fmt_value(g[o])}" for o in node.outputs)
    args = ", ".join(_fmt_operand(g, i) for i in node.inputs)
    attrs = [f"{k}={_fmt_attr(v)}" for k, v in node.attrs.items() if k not in _SKIP_ATTRS]
    if "qmin" in node.attrs and (node.attrs["qmin"], node.attrs["qmax"]) != (-128, 127):
        attrs.append(f"clamp=[{node.attrs['qmin']},{node.attrs['qmax']}]")
    tail = f" {{{', '.join(attrs)}}}" if attrs else ""
    return f"{outs} = {node.op}({args}){tail}  # {node.name}"


def dump(g: Graph) -> str:
    lines = [f"graph {g.name}("]
    lines += [f"    %{i}: {_fmt_value(g[i])}," for i in g.inputs]
    lines.append(") {")
    consts = list(g.constants())
    for v in consts:
        lines.append(f"  const @{v.name}: {_fmt_value(v)}")
    for node in g.nodes:
        lines.append("  " + format_node(g, node))
    lines.append(f"  return {', '.join('%' + o for o in g.outputs)}")
    lines.append("}")
    return "\n".join(lines)


def dump_around(g: Graph, node: Node, context: int = 2) -> str:
    """The nodes around ``node``, with the offending one marked (for verifier messages)."""
    idx = next((i for i, n in enumerate(g.nodes) if n is node), 0)
    lo, hi = max(0, idx - context), min(len(g.nodes), idx + context + 1)
    lines = []
    for i in range(lo, hi):
        mark = ">>" if i == idx else "  "
        lines.append(f"  {mark} {format_node(g, g.nodes[i])}")
    return "\n".join(lines)
