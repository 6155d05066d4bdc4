"""Run a graph with the reference kernels (each op's ``kernel`` facet)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from ..errors import TteError
from .registry import OPS

if TYPE_CHECKING:
    from .graph import Graph, Node


def run_node(g: Graph, node: Node, args: list[np.ndarray]):
    """Evaluate one node on the given operand arrays (a tuple for multi-output nodes)."""
    return OPS[node.op].kernel(g, node, *args)


def evaluate(g: Graph, env: dict[str, np.ndarray]) -> None:
    """Run every node of ``g`` in order, reading operands from and writing results into ``env``."""
    for node in g.nodes:
        result = run_node(g, node, [env[i] for i in node.inputs])
        if len(node.outputs) == 1:
            env[node.outputs[0]] = result
        else:
            env.update(zip(node.outputs, result))


def run(g: Graph, feeds: dict[str, np.ndarray], keep: bool = False) -> dict[str, np.ndarray]:
    """Run ``g`` on ``feeds`` (graph input name -> array).

    Returns the graph outputs, or with ``keep=True`` every value (inputs, constants excluded,
    intermediates and outputs), so that tests can reach each intermediate int8 tensor.
    """
    env: dict[str, np.ndarray] = {}
    for name in g.inputs:
        if name not in feeds:
            raise TteError(f"missing input '{name}' (graph inputs: {', '.join(g.inputs)})")
        v = g[name]
        arr = np.asarray(feeds[name])
        if arr.shape != v.shape:
            raise TteError(f"input '{name}' has shape {arr.shape}, the graph expects {v.shape}")
        env[name] = arr.astype(v.dtype, copy=False)
    for v in g.constants():
        env[v.name] = v.data
    evaluate(g, env)
    if keep:
        return {k: a for k, a in env.items() if not g[k].is_const}
    return {name: env[name] for name in g.outputs}


def batched(x, shape: tuple[int, ...], what: str = "input") -> np.ndarray:
    """``x`` as a float32 array of the model's input ``shape``: given whole (batch of 1 included, e.g. (1, 3, H, W))
    or as one sample without the batch axis ((3, H, W)), to which the batch axis is added."""
    try:
        x = np.asarray(x, dtype=np.float32)
    except (TypeError, ValueError):
        raise TteError(f"{what} must be an array of numbers of shape {tuple(shape)}, got {type(x).__name__}") from None
    if len(shape) > 1 and shape[0] == 1 and x.shape == tuple(shape[1:]):
        x = x[None]
    if x.shape != tuple(shape):
        single = f" or {tuple(shape[1:])} (one sample)" if len(shape) > 1 and shape[0] == 1 else ""
        raise TteError(f"{what} has shape {x.shape}, the model expects {tuple(shape)}{single}")
    return x


def infer(g: Graph, x: np.ndarray) -> np.ndarray:
    """Run a single-input, single-output graph on a float32 input and return its float32 output.

    ``x`` has the model's input shape (batch of 1 included) or is one sample without the batch axis, as
    :meth:`tte.Program.infer` takes it; the output keeps the batch axis either way (e.g. [1, classes])."""
    if len(g.inputs) != 1 or len(g.outputs) != 1:
        raise TteError(f"infer() needs one input and one output; use run() for {g.inputs} -> {g.outputs}")
    return run(g, {g.inputs[0]: batched(x, g[g.inputs[0]].shape)})[g.outputs[0]]
