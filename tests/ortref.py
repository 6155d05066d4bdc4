"""onnxruntime as the reference peer: intermediate int8 tensors and per-layer comparison."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import onnx
import onnxruntime as ort
import refkernels as kernels

from tte.ir import Graph
from tte.ir.executor import run_node
from tte.ops import activation
from tte.reference import activations as acts
from tte.reference import semantics as sem


def session(model: onnx.ModelProto | str, optimize: bool = True) -> ort.InferenceSession:
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    opts.log_severity_level = 3
    if not optimize:
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    data = model.SerializeToString() if isinstance(model, onnx.ModelProto) else model
    return ort.InferenceSession(data, opts, providers=["CPUExecutionProvider"])


class Intermediates:
    """Runs a model in onnxruntime with every int8 tensor exposed as an extra graph output."""

    def __init__(self, path: str):
        model = onnx.load(path)
        inferred = onnx.shape_inference.infer_shapes(model)
        int8 = {vi.name for vi in inferred.graph.value_info if vi.type.tensor_type.elem_type == onnx.TensorProto.INT8}
        produced = [o for n in model.graph.node for o in n.output]
        # QOperator graphs: contrib ops are unknown to onnx shape inference; every QLinear*/QGemm output is int8.
        for n in model.graph.node:
            if n.op_type.startswith("QLinear") or n.op_type in ("QGemm", "QuantizeLinear"):
                int8.update(n.output)
            if n.op_type in ("MaxPool", "Flatten", "Reshape") and n.input[0] in int8:
                int8.update(n.output)
        existing = {o.name for o in model.graph.output}
        self.names = [o for o in produced if o in int8 and o not in existing]
        for name in self.names:
            model.graph.output.append(onnx.helper.make_tensor_value_info(name, onnx.TensorProto.INT8, None))
        self.sess = session(model)
        self.input_name = self.sess.get_inputs()[0].name

    def __call__(self, x: np.ndarray) -> dict[str, np.ndarray]:
        outs = self.sess.run(None, {self.input_name: x})
        return dict(zip([o.name for o in self.sess.get_outputs()], outs))


def preround(g: Graph, node, args) -> np.ndarray | None:
    """The float32 value our requantization rounds, where the op has one (for locating ties)."""
    if node.op == "conv":
        acc = kernels.conv_accumulator(g, node, *args)
        return sem.preround(acc, kernels.conv_multiplier(g, node).reshape(1, -1, 1, 1))
    if node.op == "gemm":
        acc = kernels.gemm_accumulator(g, node, *args)
        return sem.preround(acc, kernels.conv_multiplier(g, node).reshape(1, -1))
    if node.op == "add":
        return kernels.add_preround(g, node, *args)
    if node.op == "global_avgpool":
        x = args[0]
        qx, qy = g[node.inputs[0]].quant, g[node.output].quant
        acc = x.astype(np.int64).sum(axis=(2, 3), keepdims=True) - int(qx.zero_point) * x.shape[2] * x.shape[3]
        return sem.preround(acc, sem.multiplier(qx.scale, sem.f64(qy.scale) * (x.shape[2] * x.shape[3])))
    if node.op == "avgpool":
        acc, count = kernels.avgpool_accumulator(g, node, args[0])
        qx, qy = g[node.inputs[0]].quant, g[node.output].quant
        return sem.preround(acc, sem.multiplier(qx.scale, sem.f64(qy.scale) * count))
    if node.op == "quantize":
        return np.asarray(args[0], np.float32) / np.float32(g[node.output].quant.scale)
    if node.op in ("hardswish", "sigmoid"):  # the table's value before rounding, looked up
        qx, qy = g[node.inputs[0]].quant, g[node.output].quant
        r = sem.dequantize(acts.ALL_S8, np.float32(qx.scale), int(qx.zero_point))
        v = (acts.FORWARD[node.op](r) / np.float32(qy.scale)).astype(np.float32)
        return v[args[0].astype(np.int32) + 128]
    if node.op == "lut_global_avgpool":
        return activation.lut_global_avgpool_preround(g, node, args[0])
    if node.op == "mul":
        (qa, qb), qy = (g[i].quant for i in node.inputs), g[node.output].quant
        acc = (args[0].astype(np.int32) - int(qa.zero_point)) * (args[1].astype(np.int32) - int(qb.zero_point))
        return acc.astype(np.float32) * acts.mul_multiplier(qa.scale, qb.scale, qy.scale)
    return None


@dataclass
class LayerStats:
    total: int = 0
    exact: int = 0
    max_diff: int = 0
    off_tie: int = 0  # mismatches farther than `tie_tol` from a .5 rounding boundary
    worst_tie_distance: float = 0.0
    per_node: dict = field(default_factory=dict)

    @property
    def exact_fraction(self) -> float:
        return self.exact / max(self.total, 1)


def compare_layers(g: Graph, ort_vals: dict[str, np.ndarray], x: np.ndarray, stats: LayerStats,
                   tie_tol: float = 1e-3) -> None:
    """Run each node of ``g`` on onnxruntime's int8 operands (ours where ORT has none) and compare."""
    env: dict[str, np.ndarray] = {g.inputs[0]: x}
    for v in g.constants():
        env[v.name] = v.data
    for node in g.nodes:
        args = [ort_vals[i] if i in ort_vals else env[i] for i in node.inputs]
        ours = run_node(g, node, args)
        env[node.output] = ours
        theirs = ort_vals.get(node.output)
        if theirs is None or g[node.output].dtype != "int8":
            continue
        theirs = theirs.reshape(ours.shape)
        diff = np.abs(ours.astype(np.int32) - theirs.astype(np.int32))
        s = stats.per_node.setdefault(node.name, [0, 0, 0])
        s[0] += diff.size
        s[1] += int((diff == 0).sum())
        s[2] = max(s[2], int(diff.max()))
        stats.total += diff.size
        stats.exact += int((diff == 0).sum())
        stats.max_diff = max(stats.max_diff, int(diff.max()))
        if diff.any():
            v = preround(g, node, args)
            if v is None:
                stats.off_tie += int((diff > 0).sum())
                continue
            v = np.broadcast_to(v, ours.shape)[diff > 0].astype(np.float64)
            dist = np.abs(np.abs(v - np.floor(v)) - 0.5)
            stats.worst_tie_distance = max(stats.worst_tie_distance, float(dist.max()))
            stats.off_tie += int((dist > tie_tol).sum())
