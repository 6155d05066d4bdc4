"""The MobileNetV3-style test model of ``mnv3.py``: it builds deterministically in QDQ and QOperator form,
onnxruntime runs both, the quantized logits track the float model, and the graphs hold the node patterns the
frontend's HardSwish / Sigmoid / Mul support is written against (onnxruntime 1.32)."""

from __future__ import annotations

import collections
import hashlib
import pathlib
import subprocess
import sys

import mnv3
import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from onnx import numpy_helper

from tte.zoo import NUM_CLASSES

HERE = pathlib.Path(__file__).resolve().parent


@pytest.fixture(scope="session")
def mnv3_models(tmp_path_factory) -> dict[str, pathlib.Path]:
    """Both quantized forms (and the float export next to them), built once per session."""
    out = tmp_path_factory.mktemp("mnv3")
    return {fmt: mnv3.build(out, fmt) for fmt in mnv3.FORMATS}


@pytest.fixture(scope="session")
def reference() -> tuple[np.ndarray, np.ndarray]:
    """(test images [N, 1, 3, 32, 32], the float PyTorch model's logits [N, 10])."""
    xs = np.stack(mnv3.inputs(8))
    model = mnv3.torch_model()
    with torch.no_grad():
        logits = np.concatenate([model(torch.from_numpy(x)).numpy() for x in xs])
    return xs, logits


def _run(path: pathlib.Path, xs: np.ndarray) -> np.ndarray:
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return np.concatenate([sess.run(None, {"input": x})[0] for x in xs])


def _sha(path: pathlib.Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _graph(path: pathlib.Path):
    model = onnx.load(str(path))
    producers = {o: n for n in model.graph.node for o in n.output}
    consumers = collections.defaultdict(list)
    for n in model.graph.node:
        for i in n.input:
            consumers[i].append(n)
    inits = {i.name: numpy_helper.to_array(i) for i in model.graph.initializer}
    return model, producers, consumers, inits


def _ops(model: onnx.ModelProto) -> collections.Counter:
    return collections.Counter((f"{n.domain}:" if n.domain else "") + n.op_type for n in model.graph.node)


# -- build ---------------------------------------------------------------------------------------------------


def test_builds_are_deterministic(mnv3_models, tmp_path):
    for fmt, path in mnv3_models.items():
        again = mnv3.build(tmp_path, fmt)
        assert again.read_bytes() == path.read_bytes(), fmt
    assert (tmp_path / "mnv3.float.onnx").read_bytes() == (path.parent / "mnv3.float.onnx").read_bytes()


def test_builds_are_deterministic_across_processes(mnv3_models, tmp_path):
    code = (f"import sys; sys.path.insert(0, {str(HERE)!r}); import mnv3\n"
            f"for f in mnv3.FORMATS: mnv3.build({str(tmp_path)!r}, f)")
    subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, timeout=120)
    for fmt, path in mnv3_models.items():
        assert _sha(tmp_path / path.name) == _sha(path), fmt


def test_float_export(mnv3_models, reference):
    path = next(iter(mnv3_models.values())).parent / "mnv3.float.onnx"
    model = onnx.load(str(path))
    assert [(o.domain, o.version) for o in model.opset_import] == [("", mnv3.OPSET)]
    assert [i.name for i in model.graph.input] == ["input"] and [o.name for o in model.graph.output] == ["logits"]
    dims = [d.dim_value for d in model.graph.input[0].type.tensor_type.shape.dim]
    assert tuple(dims) == mnv3.INPUT_SHAPE
    assert _ops(model) == {"Conv": 14, "HardSwish": 4, "Relu": 5, "GlobalAveragePool": 3, "Sigmoid": 2, "Mul": 2,
                           "Add": 2, "Flatten": 1, "Gemm": 1}
    xs, logits = reference
    np.testing.assert_allclose(_run(path, xs), logits, atol=1e-4)


# -- onnxruntime runs them, and they track the float model ----------------------------------------------------


@pytest.mark.parametrize("fmt", mnv3.FORMATS)
def test_quantized_model_tracks_float(mnv3_models, reference, fmt):
    xs, ref = reference
    assert len(set(ref.argmax(1))) >= 4  # the float model does not put everything in one class
    q = _run(mnv3_models[fmt], xs)
    assert q.shape == (len(xs), NUM_CLASSES) and np.isfinite(q).all()
    assert (q.argmax(1) == ref.argmax(1)).sum() >= len(xs) - 1
    cos = (q * ref).sum(1) / np.linalg.norm(q, axis=1) / np.linalg.norm(ref, axis=1)
    assert cos.min() > 0.95


# -- what the quantizer wrote ----------------------------------------------------------------------------------


def test_qdq_patterns(mnv3_models):
    """QDQ: every HardSwish, Sigmoid, Mul and Add reads DequantizeLinear outputs and feeds one QuantizeLinear;
    Relu is folded into the Conv output range; activations per-tensor int8, weights per-channel int8 (axis 0),
    biases int32 through a per-channel DequantizeLinear."""
    model, producers, consumers, inits = _graph(mnv3_models["qdq"])
    ops = _ops(model)
    assert ops == {"QuantizeLinear": 30, "DequantizeLinear": 60, "Conv": 14, "HardSwish": 4, "Sigmoid": 2,
                   "Mul": 2, "Add": 2, "GlobalAveragePool": 3, "Flatten": 1, "Gemm": 1}
    for n in model.graph.node:
        if n.op_type in ("HardSwish", "Sigmoid", "Mul", "Add"):
            assert all(producers[i].op_type == "DequantizeLinear" for i in n.input), n.name
            assert [c.op_type for c in consumers[n.output[0]]] == ["QuantizeLinear"], n.name
        if n.op_type in ("QuantizeLinear", "DequantizeLinear") and n.input[0] in inits:  # weights and biases
            data, scale, zp = (inits[i] for i in n.input)
            assert data.dtype in (np.int8, np.int32) and scale.shape == zp.shape == (data.shape[0],)
            assert zp.dtype == data.dtype and not zp.any()
        elif n.op_type in ("QuantizeLinear", "DequantizeLinear"):  # activations
            assert inits[n.input[1]].shape == () and inits[n.input[2]].shape == ()
            assert inits[n.input[2]].dtype == np.int8
    for mul in (n for n in model.graph.node if n.op_type == "Mul"):  # x * gate, the gate 1xCx1x1 second
        assert producers[producers[mul.input[1]].input[0]].input[0] in {
            n.output[0] for n in model.graph.node if n.op_type == "Sigmoid"}


def test_qoperator_patterns(mnv3_models):
    """QOperator: com.microsoft QLinearSigmoid / QLinearMul / QLinearAdd / QLinearGlobalAveragePool / QGemm;
    HardSwish stays float after a DequantizeLinear, and a GlobalAveragePool (and Flatten) reading a float
    HardSwish stays float too, until a QuantizeLinear."""
    model, producers, consumers, inits = _graph(mnv3_models["qoperator"])
    assert _ops(model) == {"QuantizeLinear": 6, "DequantizeLinear": 5, "QLinearConv": 14, "HardSwish": 4,
                           "GlobalAveragePool": 2, "Flatten": 1, "com.microsoft:QLinearGlobalAveragePool": 1,
                           "com.microsoft:QLinearSigmoid": 2, "com.microsoft:QLinearMul": 2,
                           "com.microsoft:QLinearAdd": 2, "com.microsoft:QGemm": 1}
    # ONNX shape inference knows no com.microsoft ops: take shapes from the float model ("<name>_quantized")
    float_model = onnx.shape_inference.infer_shapes(onnx.load(str(mnv3_models["qoperator"].parent / "mnv3.float.onnx")))
    shapes = {f"{v.name}_quantized": tuple(d.dim_value for d in v.type.tensor_type.shape.dim)
              for v in float_model.graph.value_info}
    for n in model.graph.node:
        if n.op_type == "HardSwish":
            assert producers[n.input[0]].op_type == "DequantizeLinear"
        if n.op_type == "GlobalAveragePool":
            assert producers[n.input[0]].op_type == "HardSwish"
        if n.op_type == "QLinearSigmoid":
            assert len(n.input) == 5 and not n.attribute
            assert [inits[i].shape for i in n.input[1:]] == [()] * 4
        if n.op_type == "QLinearMul":
            assert len(n.input) == 8 and not n.attribute
            assert producers[n.input[3]].op_type == "QLinearSigmoid"
            (_, c, h, w), gate = shapes[n.input[0]], shapes[n.input[3]]
            assert gate == (1, c, 1, 1) and h > 1 and w > 1
            assert [inits[n.input[i]].shape for i in (1, 2, 4, 5, 6, 7)] == [()] * 6
            assert all(inits[n.input[i]].dtype == np.int8 for i in (2, 5, 7))
        if n.op_type == "QLinearGlobalAveragePool":
            assert [(a.name, a.i) for a in n.attribute] == [("channels_last", 0)]
