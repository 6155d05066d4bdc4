"""`tte inspect` totals against counts derived independently from the ONNX protobuf."""

from __future__ import annotations

import numpy as np
import onnx
import ortref
import pytest
from conftest import ALL_MODELS, shared_model
from onnx import numpy_helper, shape_inference
from test_ir import small_graph

import tte
from tte.inspect import inspect, peak_activation_memory

WEIGHTED = {"Conv": (1, 2), "Gemm": (1, 2), "MatMul": (1, None), "QLinearConv": (3, 8), "QGemm": (3, 6),
            "QLinearMatMul": (3, None)}


def onnx_counts(path) -> tuple[int, int]:
    """(parameters, MACs) read straight from the ONNX file: initializers behind each weighted op, output
    shapes from onnx shape inference (QGemm, unknown to it, is counted from its weight)."""
    model = shape_inference.infer_shapes(onnx.load(str(path)))
    inits = {i.name: numpy_helper.to_array(i) for i in model.graph.initializer}
    dq_src = {n.output[0]: n.input[0] for n in model.graph.node if n.op_type == "DequantizeLinear"}
    shapes = {vi.name: [d.dim_value for d in vi.type.tensor_type.shape.dim]
              for vi in list(model.graph.value_info) + list(model.graph.output)}
    # onnx shape inference stops at com.microsoft ops: take the remaining shapes from an onnxruntime run
    x = np.zeros([d.dim_value for d in model.graph.input[0].type.tensor_type.shape.dim], np.float32)
    for name, value in ortref.Intermediates(str(path))(x).items():
        shapes.setdefault(name, list(value.shape))

    def init(name):
        return inits[dq_src.get(name, name)]

    bias_adds = {n.input[0]: n for n in model.graph.node if n.op_type == "Add"}
    params = macs = 0
    for node in model.graph.node:
        if node.op_type not in WEIGHTED:
            continue
        wi, bi = WEIGHTED[node.op_type]
        w = init(node.input[wi])
        params += w.size
        if bi is not None and len(node.input) > bi and node.input[bi]:
            params += init(node.input[bi]).size
        if node.op_type in ("Conv", "QLinearConv"):
            out = shapes[node.output[0]]
            macs += int(np.prod(out)) * int(np.prod(w.shape[1:]))
        elif node.op_type == "QGemm":
            macs += int(np.prod(shapes[node.output[0]])) * (w.size // shapes[node.output[0]][-1])
        else:  # Gemm / MatMul: output elements x K
            k = w.shape[1] if any(a.name == "transB" and a.i for a in node.attribute) else w.shape[0]
            macs += int(np.prod(shapes[node.output[0]])) * k
            if node.op_type in ("MatMul", "QLinearMatMul"):
                # the bias arrives as a separate Add (QDQ: through Q/DQ); count it like a Gemm bias
                nodes = model.graph.node
                q = next((n for n in nodes if n.op_type == "QuantizeLinear" and n.input[0] == node.output[0]), None)
                add = bias_adds.get(node.output[0])
                if add is None and q is not None:
                    dq = next(n for n in nodes if n.op_type == "DequantizeLinear" and n.input[0] == q.output[0])
                    add = bias_adds.get(dq.output[0])
                if add is not None:
                    params += init(add.input[1]).size
    return params, macs


@pytest.mark.parametrize("model_path", ALL_MODELS, indirect=True)
def test_totals_match_independent_count(model_path):
    report = inspect(tte.load(model_path))
    params, macs = onnx_counts(model_path)
    assert (report.params, report.macs) == (params, macs)


@pytest.mark.parametrize("name,params,weights,biases,macs", [
    ("mbv2-w0.35", 357_448, 350_688, 6_760, 16.76e6),
    ("mcunet-5fps", 630_224, 623_216, 7_008, 22.61e6),
    ("proxyless-w0.3", 423_232, 416_816, 6_416, 18.72e6),
])
def test_shared_models_match_their_readme(name, params, weights, biases, macs):
    report = inspect(tte.load(shared_model(name)))
    assert (report.params, report.weight_params, report.bias_params) == (params, weights, biases)
    assert round(report.macs / 1e6, 2) == macs / 1e6
    assert sum(1 for r in report.layers if r.op == "conv") == {"mbv2-w0.35": 52, "mcunet-5fps": 43,
                                                              "proxyless-w0.3": 61}[name]


def test_peak_activation_memory_hand_computed():
    # quantize: xq 144 B | conv: xq + y = 432 | pw: y + z = 576 | add: y + z + s = 864 | dequantize: s = 288
    assert peak_activation_memory(small_graph()) == (864, "add")


def test_reshape_aliases_its_operand():
    g = tte.load(shared_model("mbv2-w0.35"))
    peak, where = peak_activation_memory(g)
    # blocks.1.depthwise reads 48x64x64 and writes 48x32x32 int8 values
    assert (peak, where) == (48 * 64 * 64 + 48 * 32 * 32, "blocks.1.depthwise/Conv")
