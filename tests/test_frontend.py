"""Frontend details that the agreement tests do not show directly."""

from __future__ import annotations

import examples_loader
import numpy as np
import onnx
import ortref
import pytest
from conftest import ROOT, shared_model
from inputs import inputs
from onnx import numpy_helper
from test_cli import assert_clean_error, run

import tte
from tte.errors import UnsupportedModelError
from tte.zoo import INPUT_NAME, GraphBuilder, quantize

EXAMPLE = ROOT / "examples" / "tiny_cnn.int8.onnx"


def test_parameters_keep_their_onnx_initializer_names():
    g = tte.load(shared_model("mbv2-w0.35"))
    first = g.nodes[1]
    assert first.op == "conv" and first.inputs[1:] == ["first_conv.weight_int8", "first_conv.bias_int32"]
    assert g["classifier.weight_int8"].shape == (1000, 112, 1, 1)
    assert g["classifier.weight_int8"].quant.axis == 0


def test_explicit_activations_fold_into_the_producer(zoo, tmp_path):
    """QDQ with explicit Relu/Clip: the activation becomes the clamp of the conv before it.  With the
    zero points onnxruntime chose (-128), ReLU clamps nothing; move them to 0 so that it must."""
    model = onnx.load(str(zoo["qdq_explicit"]))
    for init in model.graph.initializer:
        if init.name.endswith("out_zero_point") and ("conv0" in init.name or "relu0" in init.name):
            init.CopyFrom(numpy_helper.from_array(np.array(0, np.int8), init.name))
    path = tmp_path / "relu_zp0.onnx"
    onnx.save(model, str(path))
    g = tte.load(path)
    assert not [n for n in g.nodes if n.op == "requantize"]
    conv0 = next(n for n in g.nodes if n.name == "conv0")
    assert conv0.output == "relu0_out_QuantizeLinear_Output"
    assert (conv0.attrs["qmin"], conv0.attrs["qmax"]) == (0, 127)
    stats = ortref.LayerStats()
    ort_run = ortref.Intermediates(str(path))
    for x in inputs(g["input"].shape, 10):
        ortref.compare_layers(g, ort_run(x), x, stats)
        assert (g.run({"input": x}, keep=True)[conv0.output] >= 0).all()
    total, exact, _ = stats.per_node["conv0"]
    assert stats.max_diff <= 1 and stats.off_tie == 0 and exact >= 0.999 * total


def test_folded_relu6_in_shared_models_needs_no_clamp():
    g = tte.load(shared_model("mbv2-w0.35"))
    assert all((n.attrs.get("qmin", -128), n.attrs.get("qmax", 127)) == (-128, 127) for n in g.nodes)


def test_python_api_fixes_input_shape(tmp_path):
    model = onnx.load(str(EXAMPLE))
    dims = model.graph.input[0].type.tensor_type.shape.dim
    dims[0].dim_param = "N"
    path = tmp_path / "dyn.onnx"
    onnx.save(model, str(path))
    assert tte.load(path)["input"].shape == (1, 3, 32, 32)  # a dynamic batch becomes 1 (with a note)
    dims[2].dim_param = "H"
    onnx.save(model, str(path))
    with pytest.raises(tte.TteError, match="dynamic dimension 'H'"):
        tte.load(path)
    assert tte.load(path, input_shape=(1, 3, 32, 32))["input"].shape == (1, 3, 32, 32)
    assert tte.load(path, input_shape={"input": [1, 3, 32, 32]})["input"].shape == (1, 3, 32, 32)


def test_dilated_conv_is_named(tmp_path):
    g = GraphBuilder("dil", seed=0, input_shape=(1, 3, 16, 16))
    x = g.conv(INPUT_NAME, 3, 4, 3)
    next(a for a in g.nodes[-1].attribute if a.name == "dilations").ints[:] = [2, 2]
    x = g.flatten(g.global_avg_pool(x))
    fpath = tmp_path / "dil.float.onnx"
    onnx.save(g.finish(g.gemm(x, 4, 10), (1, 10)), str(fpath))
    path = quantize(fpath, tmp_path / "dil.int8.onnx")
    with pytest.raises(UnsupportedModelError, match=r"Conv node 'conv0': dilations \[2, 2\] are not supported"):
        tte.load(path)
    assert_clean_error(run("inspect", path), "dilations")


def test_example_model_is_regenerated_identically(tmp_path):
    """examples/make_tiny_cnn.py is deterministic and the repo carries what it writes."""
    a = examples_loader.main(tmp_path / "a")
    b = examples_loader.main(tmp_path / "b")
    assert a.read_bytes() == b.read_bytes()
    carried, fresh = onnx.load(str(EXAMPLE)), onnx.load(str(a))
    assert [(n.op_type, list(n.input), list(n.output)) for n in carried.graph.node] == \
        [(n.op_type, list(n.input), list(n.output)) for n in fresh.graph.node]
    assert {i.name: i.raw_data for i in carried.graph.initializer} == \
        {i.name: i.raw_data for i in fresh.graph.initializer}
