"""The IR: quantization parameters, values, nodes and a graph in SSA / topological order.

A :class:`Graph` is a flat list of :class:`Node` s in execution order.  Every :class:`Value` is
assigned exactly once, either as a graph input, as a constant (``data`` is set: weights, biases) or as
the output of exactly one node.  Values carry their dtype, a static shape and, for quantized tensors,
their :class:`QuantParams` (real = scale * (q - zero_point)).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np

DTYPES = ("int8", "int32", "float32", "bool")


@dataclass(frozen=True, eq=False)
class QuantParams:
    """Affine quantization: real = scale * (q - zero_point).

    ``axis`` is None for per-tensor parameters (scale and zero_point are 0-d) and the channel axis for
    per-channel ones (scale and zero_point are 1-d, one entry per channel along ``axis``).
    """

    scale: np.ndarray
    zero_point: np.ndarray
    axis: int | None = None

    def __post_init__(self) -> None:
        scale = np.asarray(self.scale, dtype=np.float32)
        zero_point = np.asarray(self.zero_point, dtype=np.int32)
        if scale.shape != zero_point.shape:
            raise ValueError(f"scale shape {scale.shape} != zero point shape {zero_point.shape}")
        if self.axis is None and scale.ndim != 0:
            if scale.size != 1:
                raise ValueError("per-tensor quantization needs a single scale")
            scale, zero_point = scale.reshape(()), zero_point.reshape(())
        scale.setflags(write=False)
        zero_point.setflags(write=False)
        object.__setattr__(self, "scale", scale)
        object.__setattr__(self, "zero_point", zero_point)

    @classmethod
    def per_tensor(cls, scale: float, zero_point: int = 0) -> QuantParams:
        return cls(np.float32(scale), np.int32(zero_point))

    @property
    def per_channel(self) -> bool:
        return self.axis is not None

    def __eq__(self, other: object) -> bool:
        return (
            isinstance(other, QuantParams)
            and self.axis == other.axis
            and np.array_equal(self.scale, other.scale)
            and np.array_equal(self.zero_point, other.zero_point)
        )

    def __hash__(self) -> int:
        return hash((self.axis, self.scale.tobytes(), self.zero_point.tobytes()))

    def __repr__(self) -> str:
        if self.axis is None:
            return f"q(s={float(self.scale):.6g}, z={int(self.zero_point)})"
        return (
            f"q(axis={self.axis}, s=[{self.scale.min():.3g}..{self.scale.max():.3g}] x{self.scale.size}, "
            f"z={'0' if not self.zero_point.any() else 'mixed'})"
        )


@dataclass(eq=False)
class Value:
    """A tensor in the graph: a graph input, a constant (``data`` set) or a node output."""

    name: str
    dtype: str
    shape: tuple[int, ...]
    quant: QuantParams | None = None
    data: np.ndarray | None = None

    def __post_init__(self) -> None:
        self.shape = tuple(int(d) for d in self.shape)

    @property
    def is_const(self) -> bool:
        return self.data is not None

    @property
    def size(self) -> int:
        return int(np.prod(self.shape, dtype=np.int64))

    @property
    def nbytes(self) -> int:
        return self.size * np.dtype(self.dtype).itemsize

    def type_str(self) -> str:
        return f"{self.dtype}[{','.join(map(str, self.shape))}]"


@dataclass(eq=False)
class Node:
    """One operation: ``outputs = op(inputs; attrs)``.  Inputs and outputs are value names."""

    op: str
    name: str
    inputs: list[str]
    outputs: list[str]
    attrs: dict[str, Any] = field(default_factory=dict)

    @property
    def output(self) -> str:
        return self.outputs[0]


class Graph:
    """A graph in SSA form: values by name, nodes in execution order, named inputs and outputs."""

    def __init__(self, name: str = "graph") -> None:
        self.name = name
        self.values: dict[str, Value] = {}
        self.nodes: list[Node] = []
        self.inputs: list[str] = []
        self.outputs: list[str] = []
        self.metadata: dict[str, str] = {}
        # Training graphs: inputs that persist across steps (trained parameters, optimizer state), and
        # for each the value holding its next state, written back after a step.
        self.state: list[str] = []
        self.state_updates: dict[str, str] = {}

    # -- construction -------------------------------------------------------------------------
    def add_value(self, value: Value) -> Value:
        if value.name in self.values:
            raise ValueError(f"value '{value.name}' is already defined")
        self.values[value.name] = value
        return value

    def add_input(self, value: Value) -> Value:
        self.add_value(value)
        self.inputs.append(value.name)
        return value

    def add_state(self, value: Value) -> Value:
        """A persistent input (trained parameter or optimizer state) of a training graph."""
        self.add_input(value)
        self.state.append(value.name)
        return value

    def add_const(self, name: str, data: np.ndarray, quant: QuantParams | None = None) -> Value:
        data = np.ascontiguousarray(data)
        return self.add_value(Value(self.unique_name(name), str(data.dtype), data.shape, quant, data))

    def add_node(self, op: str, name: str, inputs: list[str], outputs: list[Value], **attrs: Any) -> Node:
        for v in outputs:
            self.add_value(v)
        node = Node(op, name, list(inputs), [v.name for v in outputs], dict(attrs))
        self.nodes.append(node)
        return node

    def unique_name(self, base: str) -> str:
        if base not in self.values:
            return base
        i = 1
        while f"{base}.{i}" in self.values:
            i += 1
        return f"{base}.{i}"

    def copy(self) -> Graph:
        """A copy whose nodes and values can be changed freely (constant arrays are shared, read-only)."""
        from dataclasses import replace

        g = Graph(self.name)
        g.values = {k: replace(v) for k, v in self.values.items()}
        g.nodes = [Node(n.op, n.name, list(n.inputs), list(n.outputs), dict(n.attrs)) for n in self.nodes]
        g.inputs, g.outputs = list(self.inputs), list(self.outputs)
        g.metadata = dict(self.metadata)
        g.state, g.state_updates = list(self.state), dict(self.state_updates)
        return g

    # -- queries ------------------------------------------------------------------------------
    def __getitem__(self, name: str) -> Value:
        return self.values[name]

    def producer(self, name: str) -> Node | None:
        for node in self.nodes:
            if name in node.outputs:
                return node
        return None

    def consumers(self, name: str) -> list[Node]:
        return [n for n in self.nodes if name in n.inputs]

    def use_counts(self) -> dict[str, int]:
        counts = {name: 0 for name in self.values}
        for node in self.nodes:
            for name in node.inputs:
                counts[name] = counts.get(name, 0) + 1
        for name in self.outputs:
            counts[name] = counts.get(name, 0) + 1
        return counts

    def constants(self) -> Iterator[Value]:
        return (v for v in self.values.values() if v.is_const)

    def remove_unused_values(self) -> None:
        """Drop values that are neither graph inputs/outputs nor referenced by a node."""
        used = set(self.inputs) | set(self.outputs)
        for node in self.nodes:
            used.update(node.inputs)
            used.update(node.outputs)
        self.values = {k: v for k, v in self.values.items() if k in used}

    # -- conveniences -------------------------------------------------------------------------
    def verify(self) -> None:
        from .verify import verify

        verify(self)

    def dump(self) -> str:
        from .printer import dump

        return dump(self)

    def infer(self, x: np.ndarray) -> np.ndarray:
        """Run the reference executor on a float32 input; return the float32 output."""
        from .executor import infer

        return infer(self, x)

    def run(self, feeds: dict[str, np.ndarray], keep: bool = False) -> dict[str, np.ndarray]:
        """Run the reference executor on ``feeds``; return outputs (all values if ``keep``)."""
        from .executor import run

        return run(self, feeds, keep=keep)

    def __repr__(self) -> str:
        return f"<Graph {self.name}: {len(self.nodes)} nodes, inputs {self.inputs}, outputs {self.outputs}>"
