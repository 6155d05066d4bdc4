"""Per-layer summary of a graph: shapes, kernel geometry, parameters, MACs and inference memory."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

from .ir import Graph, Node
from .ir.facts import arithmetic, load_notes


@dataclass
class LayerRow:
    name: str
    op: str
    input_shape: list[int]
    output_shape: list[int]
    kernel: list[int] | None
    stride: list[int] | None
    groups: int | None
    params: int
    macs: int
    output_scale: float | None
    output_zero_point: int | None


@dataclass
class Report:
    model: str
    layers: list[LayerRow]
    params: int  # parameter elements: int8 weights + int32 biases (+ constant bias operands of adds)
    weight_params: int
    bias_params: int
    param_bytes: int
    macs: int
    peak_activation_bytes: int  # int8 activations live at once during inference (no in-place reuse)
    peak_at: str  # the layer at which that peak occurs
    arithmetic: str = "onnxruntime"  # how int8 ops requantize (tte.ir.facts.arithmetic)
    notes: list[str] = field(default_factory=list)  # what the frontend rewrote at load

    def to_dict(self) -> dict:
        d = asdict(self)
        d["totals"] = {k: d.pop(k) for k in ("params", "weight_params", "bias_params", "param_bytes", "macs",
                                             "peak_activation_bytes", "peak_at")}
        return d


def layer_macs(g: Graph, node: Node) -> int:
    """Multiply-accumulates of a conv or gemm: output elements x (input channels per group x kernel area)."""
    if node.op == "conv":
        w = g[node.inputs[1]].shape
        return g[node.output].size * w[1] * w[2] * w[3]
    if node.op == "gemm":
        return g[node.output].size * g[node.inputs[1]].shape[1]
    return 0


def _row(g: Graph, node: Node) -> LayerRow:
    out = g[node.output]
    kernel = stride = groups = None
    if node.op == "conv":
        kernel, stride, groups = list(g[node.inputs[1]].shape[2:]), list(node.attrs["strides"]), node.attrs["groups"]
    elif node.op in ("avgpool", "maxpool"):
        kernel, stride = list(node.attrs["kernel"]), list(node.attrs["strides"])
    params = sum(g[i].size for i in node.inputs[1:]
                 if (node.op in ("conv", "gemm") and f"synthetic:{i}" not in g.metadata)
                 or (node.op == "add" and g[i].is_const))
    q = out.quant
    return LayerRow(
        name=node.name,
        op=node.op,
        input_shape=list(g[node.inputs[0]].shape),
        output_shape=list(out.shape),
        kernel=kernel,
        stride=stride,
        groups=groups,
        params=params,
        macs=layer_macs(g, node),
        output_scale=None if q is None else float(q.scale),
        output_zero_point=None if q is None else int(q.zero_point),
    )


def peak_activation_memory(g: Graph) -> tuple[int, str]:
    """Largest sum of int8 activation bytes live at one node (inputs read + output written).

    A value lives from the node producing it to its last reader; reshapes alias their operand.
    Graph outputs live to the end.  Float tensors (the graph's input and output) are not counted.
    """
    root = {}
    for node in g.nodes:
        if node.op == "reshape":
            root[node.output] = root.get(node.inputs[0], node.inputs[0])
    last_use: dict[str, int] = {}
    first_def: dict[str, int] = {}
    for i, node in enumerate(g.nodes):
        for name in node.outputs:
            first_def.setdefault(root.get(name, name), i)
        for name in node.inputs:
            last_use[root.get(name, name)] = i
    for name in g.outputs:
        last_use[root.get(name, name)] = len(g.nodes)
    peak, where = 0, ""
    for i, node in enumerate(g.nodes):
        live = sum(
            g[v].nbytes
            for v, start in first_def.items()
            if start <= i <= last_use.get(v, start) and g[v].dtype == "int8" and not g[v].is_const
        )
        if live > peak:
            peak, where = live, node.name
    return peak, where


def inspect(g: Graph) -> Report:
    rows = [_row(g, n) for n in g.nodes]
    weights = biases = nbytes = 0
    for node in g.nodes:
        if node.op in ("conv", "gemm"):
            weights += g[node.inputs[1]].size
            nbytes += g[node.inputs[1]].nbytes
            if f"synthetic:{node.inputs[2]}" not in g.metadata:  # a bias the model really has
                biases += g[node.inputs[2]].size
                nbytes += g[node.inputs[2]].nbytes
        elif node.op == "add" and g[node.inputs[1]].is_const:  # a MatMul's bias added as a constant
            biases += g[node.inputs[1]].size
            nbytes += g[node.inputs[1]].nbytes
    peak, where = peak_activation_memory(g)
    return Report(
        model=g.name,
        layers=rows,
        params=weights + biases,
        weight_params=weights,
        bias_params=biases,
        param_bytes=nbytes,
        macs=sum(r.macs for r in rows),
        peak_activation_bytes=peak,
        peak_at=where,
        arithmetic=arithmetic(g),
        notes=load_notes(g),
    )
