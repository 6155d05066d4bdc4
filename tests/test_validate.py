"""tte.frontend.validate: what onnxruntime refuses to load or run, tte refuses too, with one clear line.

Every case mutates a model that both load, checks that onnxruntime (the oracle) refuses the mutant --
``InferenceSession`` plus one run, as the fuzz test does -- and that ``tte.load`` raises the expected
:class:`TteError` naming the node or tensor and what is wrong.  The few cases where tte is deliberately
stricter than onnxruntime say so.
"""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from conftest import ROOT
from onnx import TensorProto, helper, numpy_helper

import tte
from tte.errors import ModelFileError, TteError, UnsupportedModelError
from tte.frontend import validate

EXAMPLE = ROOT / "examples" / "tiny_cnn.int8.onnx"


def ort_verdict(model: onnx.ModelProto, optimize: bool = True) -> str | None:
    """onnxruntime's message when it refuses the model (session or one run on a fixed input), else None.

    ``optimize=False``: without graph optimizations, which fuse DequantizeLinear -> Conv -> QuantizeLinear into
    QLinearConv and so skip DequantizeLinear's own checks."""
    import onnxruntime as ort

    ort.set_default_logger_severity(4)
    opts = ort.SessionOptions()
    if not optimize:
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    try:
        s = ort.InferenceSession(model.SerializeToString(), opts, providers=["CPUExecutionProvider"])
        feeds = {i.name: np.random.default_rng(0).uniform(-1, 1, [d if isinstance(d, int) else 1 for d in i.shape])
                 .astype(np.float32) for i in s.get_inputs()}
        s.run(None, feeds)
    except Exception as e:  # noqa: BLE001 - onnxruntime raises several classes
        return " ".join(str(e).split())
    return None


def node(m: onnx.ModelProto, op: str, i: int = 0) -> onnx.NodeProto:
    return [n for n in m.graph.node if n.op_type == op][i]


def init(m: onnx.ModelProto, name: str) -> onnx.TensorProto:
    return next(t for t in m.graph.initializer if t.name == name)


def set_attr(n: onnx.NodeProto, name: str, value) -> None:
    for a in list(n.attribute):
        if a.name == name:
            n.attribute.remove(a)
    if value is not None:
        n.attribute.append(helper.make_attribute(name, value))


def set_init(m: onnx.ModelProto, name: str, value: np.ndarray) -> None:
    init(m, name).CopyFrom(numpy_helper.from_array(np.asarray(value), name))


def weight_dq(m: onnx.ModelProto, op: str = "Conv") -> onnx.NodeProto:
    """The DequantizeLinear of the first ``op``'s weight."""
    w = node(m, op).input[1]
    return next(n for n in m.graph.node if n.output and n.output[0] == w)


def refused(tmp_path, m: onnx.ModelProto, cls: type[TteError], *needles: str, ort: str | None = "",
            optimize: bool = True) -> str:
    """onnxruntime refuses ``m`` (its message contains ``ort``; None: onnxruntime accepts it and tte is
    deliberately stricter); tte refuses it with one line of class ``cls`` containing every needle."""
    verdict = ort_verdict(m, optimize)
    if ort is None:
        assert verdict is None, verdict
    else:
        assert verdict is not None and ort in verdict, verdict
    path = tmp_path / "mutant.onnx"
    onnx.save(m, str(path))
    with pytest.raises(TteError) as e:
        tte.load(path)
    msg = str(e.value)
    assert type(e.value) is cls, (type(e.value), msg)
    assert "\n" not in msg and msg.startswith(str(path)), msg
    for needle in needles:
        assert needle in msg, (needle, msg)
    return msg


@pytest.fixture
def qdq(zoo):
    """A fresh copy of a QDQ model with Conv, MaxPool 3x3 s2 pad 1, Flatten and two Gemms."""
    return onnx.load(str(zoo["gemm_maxpool"]))


@pytest.fixture
def qop(zoo):
    """A fresh copy of a QOperator model: QLinearConv, QLinearAdd, MaxPool, QLinearConcat, QGemm, ..."""
    return onnx.load(str(zoo["qop_resnet"]))


# -- window attributes ----------------------------------------------------------------------------------
def test_conv_kernel_shape_that_does_not_match_the_weight(tmp_path, qdq):
    set_attr(node(qdq, "Conv"), "kernel_shape", [2, 2])
    refused(tmp_path, qdq, ModelFileError, "Conv node 'conv0'", "kernel_shape [2, 2] does not match the weight",
            "[8, 3, 3, 3]", ort="kernel_shape is not compatible with W shape")


def test_qlinearconv_kernel_shape_that_does_not_match_the_weight(tmp_path, qop):
    set_attr(node(qop, "QLinearConv"), "kernel_shape", [1, 1])
    refused(tmp_path, qop, ModelFileError, "QLinearConv node", "kernel_shape [1, 1] does not match the weight",
            ort="kernel_shape is not compatible with W shape")


@pytest.mark.parametrize("attr, value, needle, ort", [
    ("dilations", [1], "dilations [1]", "Attribute dilations has incorrect size"),
    ("strides", [2, 2, 2], "strides [2, 2, 2]", "Attribute strides has incorrect size"),
    ("pads", [1, 1], "pads [1, 1]", "Attribute pads has incorrect size"),
])
def test_window_attributes_of_the_wrong_length(tmp_path, qdq, attr, value, needle, ort):
    set_attr(node(qdq, "Conv"), attr, value)
    refused(tmp_path, qdq, ModelFileError, "Conv node 'conv0'", "disagree in length", needle, ort=ort)


@pytest.mark.parametrize("attr, value, needle, ort", [
    ("strides", [-1, 1], "strides [-1, 1] must be positive", "strides must only contain positive values"),
    ("dilations", [0, 1], "dilations [0, 1] must be positive", "dilations must only contain positive values"),
    ("pads", [-1, 0, 0, 0], "pads [-1, 0, 0, 0] must be non-negative", "pads must not contain negative values"),
    ("kernel_shape", [0, 3], "kernel_shape [0, 3] must be positive", "kernel_shape must only contain positive"),
])
def test_window_attributes_that_are_negative_or_zero(tmp_path, qdq, attr, value, needle, ort):
    op = "MaxPool" if attr == "kernel_shape" else "Conv"
    set_attr(node(qdq, op), attr, value)
    refused(tmp_path, qdq, ModelFileError, needle, ort=ort)


def test_auto_pad_together_with_explicit_pads(tmp_path, qdq):
    set_attr(node(qdq, "Conv"), "auto_pad", "SAME_UPPER")
    refused(tmp_path, qdq, ModelFileError, "Conv node 'conv0'", "both auto_pad=SAME_UPPER and explicit pads",
            ort="Conv/ConvTranspose node has both 'auto_pad' and 'pads'")


def test_unknown_auto_pad(tmp_path, zoo):
    m = onnx.load(str(zoo["dw_s2_5x5"]))
    set_attr(node(m, "AveragePool"), "auto_pad", "BOGUS")
    refused(tmp_path, m, ModelFileError, "auto_pad 'BOGUS' is not one of", ort="Unknown AutoPadType String")


def test_group_that_does_not_divide_the_channels(tmp_path, qdq):
    set_attr(node(qdq, "Conv"), "group", 3)
    refused(tmp_path, qdq, ModelFileError, "Conv node 'conv0'", "group=3 does not divide the 8 output channels",
            ort="Input channels C is not equal to kernel channels * group")


# -- pools whose padding reaches a whole window: the C / Python disagreements this check removes --------
def test_maxpool_whose_pads_reach_the_kernel(tmp_path, qdq):
    """A window entirely in the padding: Python computed 0 there, C -128; onnxruntime refuses it."""
    set_attr(node(qdq, "MaxPool"), "pads", [3, 3, 3, 3])
    refused(tmp_path, qdq, ModelFileError, "MaxPool node 'maxpool0'", "pads [3, 3, 3, 3] are not all smaller than "
            "the kernel [3, 3]", ort="Pad should be smaller than kernel")


@pytest.mark.parametrize("count_include_pad", [0, 1])
def test_averagepool_whose_pads_reach_the_kernel(tmp_path, zoo, count_include_pad):
    """count_include_pad=0 divided by an element count of 0 (NaN in Python); onnxruntime refuses it."""
    m = onnx.load(str(zoo["dw_s2_5x5"]))
    pool = node(m, "AveragePool")
    set_attr(pool, "pads", [0, 0, 2, 0])
    set_attr(pool, "count_include_pad", count_include_pad)
    refused(tmp_path, m, ModelFileError, "AveragePool node", "pads [0, 0, 2, 0] are not all smaller than the kernel "
            "[2, 2]", ort="Pad should be smaller than kernel")


def test_qlinearaveragepool_whose_pads_reach_the_kernel(tmp_path, zoo):
    m = onnx.load(str(zoo["qop_dw_avgpool"]))
    set_attr(node(m, "QLinearAveragePool"), "pads", [0, 0, 2, 2])
    refused(tmp_path, m, ModelFileError, "QLinearAveragePool node", "not all smaller than the kernel",
            ort="Pad should be smaller than kernel")


def test_window_larger_than_the_padded_input(tmp_path):
    m = onnx.load(str(EXAMPLE))
    pool = node(m, "GlobalAveragePool")
    pool.op_type = "AveragePool"
    set_attr(pool, "kernel_shape", [16, 16])
    refused(tmp_path, m, ModelFileError, "AveragePool node", "16x16 window does not fit the padded 8x8 input", ort="")


# -- Gemm and QLinearConcat -------------------------------------------------------------------------------
@pytest.mark.parametrize("op", ["Gemm", "QGemm"])
def test_trans_b_other_than_0_or_1(tmp_path, qdq, qop, op):
    """onnxruntime reads any non-zero transB as 1; ONNX means 0 or 1: tte refuses the others."""
    m = qdq if op == "Gemm" else qop
    set_attr(node(m, op), "transB", 2)
    refused(tmp_path, m, ModelFileError, f"{op} node", "transB=2; it must be 0 or 1", ort=None)


def test_qlinearconcat_without_axis(tmp_path, qop):
    set_attr(node(qop, "QLinearConcat"), "axis", None)
    refused(tmp_path, qop, ModelFileError, "QLinearConcat node 'concat0_quant'", "no 'axis' attribute",
            ort="Required attribute 'axis' is missing")


def test_qlinearconcat_axis_out_of_range(tmp_path, qop):
    set_attr(node(qop, "QLinearConcat"), "axis", 5)
    refused(tmp_path, qop, ModelFileError, "QLinearConcat node", "axis 5 is out of range for inputs of rank 4",
            ort="axis must be in [-rank, rank)")


# -- quantization parameters ------------------------------------------------------------------------------
def test_zero_point_of_another_type_than_the_data(tmp_path, qdq):
    zp = weight_dq(qdq).input[2]
    set_init(qdq, zp, numpy_helper.to_array(init(qdq, zp)).astype(np.uint8))
    refused(tmp_path, qdq, ModelFileError, "DequantizeLinear node", "x_zero_point has inconsistent type tensor(uint8)",
            ort="bound to different types")


def test_scale_and_zero_point_of_different_lengths(tmp_path, qdq):
    zp = weight_dq(qdq).input[2]
    set_init(qdq, zp, np.zeros(3, np.int8))
    refused(tmp_path, qdq, ModelFileError, "scale 'conv_param0_w_scale' has shape [8] but zero point "
            "'conv_param0_w_zero_point' has shape [3]", ort="")


def test_vector_zero_point_on_an_activation(tmp_path, qdq):
    zp = node(qdq, "QuantizeLinear").input[2]
    set_init(qdq, zp, np.zeros(3, np.int8))
    refused(tmp_path, qdq, ModelFileError, "QuantizeLinear node 'input_QuantizeLinear'", "has shape [] but zero "
            "point 'input_zero_point' has shape [3]", ort="x_zero_point must be null or a scalar")


def test_per_channel_activation(tmp_path, qdq):
    """Scale and zero point both of 3 entries: valid ONNX (onnxruntime quantizes the input per channel), but tte
    quantizes activations per tensor."""
    q = node(qdq, "QuantizeLinear")
    set_init(qdq, q.input[1], np.full(3, 0.01, np.float32))
    set_init(qdq, q.input[2], np.zeros(3, np.int8))
    refused(tmp_path, qdq, UnsupportedModelError, "activation 'input_QuantizeLinear_Output' has 3 scales", ort=None)


def test_per_axis_scale_of_the_wrong_length(tmp_path, qdq):
    dq = weight_dq(qdq)
    set_attr(dq, "axis", 1)  # the weight has 3 input channels, the scale 8 entries
    # onnxruntime's QDQ fusion reads the scale per output channel whatever the axis; DequantizeLinear refuses it
    refused(tmp_path, qdq, ModelFileError, "scale 'conv_param0_w_scale' has 8 entries but axis 1",
            ort="scale must be 1D tensor with size 3", optimize=False)


def test_contrib_scale_that_is_not_a_scalar(tmp_path, qop):
    add = node(qop, "QLinearAdd")
    init(qop, add.input[1]).dims[:] = [1]  # one value, rank 1
    refused(tmp_path, qop, ModelFileError, "QLinearAdd node", "takes a scalar there",
            ort="Scale and Zero-point must be a scalar")


def test_contrib_attribute_that_the_schema_does_not_define(tmp_path, qop):
    set_attr(node(qop, "QLinearAdd"), "axis", 1)
    refused(tmp_path, qop, ModelFileError, "QLinearAdd node", "attribute 'axis' that QLinearAdd does not define",
            ort="Unrecognized attribute: axis")


def test_input_of_a_type_the_schema_does_not_take(tmp_path):
    """An int8 shape for Reshape: ONNX's inference lets it through, onnxruntime's type check does not."""
    m = onnx.load(str(EXAMPLE))
    flatten = node(m, "Flatten")
    shape = "bad_shape"
    m.graph.initializer.append(numpy_helper.from_array(np.array([1, -1], np.int8), shape))
    flatten.op_type = "Reshape"
    set_attr(flatten, "axis", None)
    flatten.input.append(shape)
    refused(tmp_path, m, ModelFileError, "Reshape node", "bad_shape", "int8",
            ort="Type 'tensor(int8)' of input parameter (bad_shape) of operator (Reshape)")


# -- tensors, types and the graph -------------------------------------------------------------------------
def test_initializer_dims_that_disagree_with_its_data(tmp_path, qdq):
    """Fewer elements than raw_data holds (onnx.checker only catches too few bytes)."""
    init(qdq, weight_dq(qdq).input[0]).dims[0] = 7
    refused(tmp_path, qdq, ModelFileError, "initializer 'conv_param0_w_quantized' has 216 bytes of data, but its "
            "shape [7, 3, 3, 3] of int8 needs 189", ort="ValidateEmbeddedTensorProtoDataSizeAndShape")


@pytest.mark.parametrize("where", ["input", "output"])
@pytest.mark.parametrize("elem_type", [0, 999])
def test_undefined_or_unknown_element_type(tmp_path, qdq, where, elem_type):
    values = qdq.graph.input if where == "input" else qdq.graph.output
    values[0].type.tensor_type.elem_type = elem_type
    kind = "undefined" if elem_type == 0 else "unknown"
    refused(tmp_path, qdq, ModelFileError, f"graph {where} '{values[0].name}' has an {kind} element type "
            f"({elem_type})", ort=f"Invalid tensor data type {elem_type}")


def test_graph_output_of_another_type_than_its_producer_makes(tmp_path, qop):
    qop.graph.output[0].type.tensor_type.elem_type = TensorProto.INT64
    refused(tmp_path, qop, ModelFileError, "DequantizeLinear node", "makes float, but the graph output 'logits' is "
            "declared int64", ort="does not match expected type")


def test_initializer_of_an_unsupported_type(tmp_path):
    """A Constant's value the lifter cannot read: float8 data (onnxruntime has no Conv for it either)."""
    m = onnx.load(str(EXAMPLE))
    scale = node(m, "QuantizeLinear").input[1]
    value = numpy_helper.to_array(init(m, scale))
    m.graph.initializer.remove(init(m, scale))
    const = helper.make_node("Constant", [], [scale], value=helper.make_tensor(
        "v", TensorProto.FLOAT8E4M3FN, [], [float(value)]))
    m.graph.node.insert(0, const)
    refused(tmp_path, m, UnsupportedModelError, "Constant node", "is float8e4m3fn; tte reads tensors of", ort="")


def test_graph_without_output(tmp_path, qdq):
    del qdq.graph.output[:]
    refused(tmp_path, qdq, ModelFileError, "the graph has no output", ort="At least one output should be requested")


def test_opset_newer_than_onnx_knows(tmp_path, qdq):
    qdq.opset_import[0].version = onnx.defs.onnx_opset_version() + 2
    refused(tmp_path, qdq, ModelFileError, f"imports opset {qdq.opset_import[0].version} of ai.onnx", ort="opset")


def test_conv_bias_of_the_wrong_shape(tmp_path, qdq):
    b = node(qdq, "Conv").input[2]
    dq = next(n for n in qdq.graph.node if n.output and n.output[0] == b)
    init(qdq, dq.input[0]).dims[:] = [1, 8]
    for name in dq.input[1:]:
        init(qdq, name).dims[:] = [8]
    set_attr(dq, "axis", 1)
    refused(tmp_path, qdq, ModelFileError, "Conv node 'conv0': bias 'conv_param0_b' has shape [1, 8]; a convolution "
            "with 8 output channels takes [8]", ort="bias")


def test_names_that_are_not_text(tmp_path, qdq):
    """Protobuf hands invalid UTF-8 over as bytes; onnxruntime does not mind, tte prints names: it refuses."""
    data = qdq.SerializeToString().replace(b"maxpool0", b"m\xffxpool0")  # same length: the protobuf stays valid
    m = onnx.load_from_string(data)
    assert ort_verdict(m) is None
    path = tmp_path / "mutant.onnx"
    path.write_bytes(data)
    with pytest.raises(ModelFileError, match=r"name b'm\\xffxpool0.*' is not valid UTF-8 text"):
        tte.load(path)


# -- sizes ------------------------------------------------------------------------------------------------
def test_pads_so_large_the_activation_would_take_terabytes(tmp_path, qdq):
    set_attr(node(qdq, "Conv"), "pads", [60000] * 4)
    msg = refused(tmp_path, qdq, UnsupportedModelError, "shape [1, 8, 120030, 120030]", "115,257,607,200 elements",
                  "at most 536,870,912 elements", ort="Failed to allocate memory")
    assert "conv0" in msg or "relu0" in msg


def test_window_attribute_over_the_bound(tmp_path, qdq):
    set_attr(node(qdq, "Conv"), "pads", [100000] * 4)
    refused(tmp_path, qdq, UnsupportedModelError, "pads [100000, 100000, 100000, 100000] is over tte's bound of 65535",
            ort="Failed to allocate memory")


def test_input_shape_beyond_the_bound(tmp_path):
    """--input-shape is applied after validate.check: the lifted graph's bound catches it."""
    m = onnx.load(str(EXAMPLE))
    del m.graph.value_info[:]
    m.graph.input[0].type.tensor_type.shape.dim[2].dim_param = "H"
    m.graph.input[0].type.tensor_type.shape.dim[3].dim_param = "W"
    path = tmp_path / "dynamic.onnx"
    onnx.save(m, str(path))
    with pytest.raises(UnsupportedModelError, match="elements; tte takes tensors of at most 536,870,912"):
        tte.load(path, input_shape=(1, 3, 32768, 32768))


def test_initializer_over_the_bound():
    """Checked before the data is read: a 4 GiB declared initializer (its data is never allocated)."""
    m = onnx.load(str(EXAMPLE))
    t = m.graph.initializer[0]
    t.data_type, t.raw_data = TensorProto.INT8, b""
    t.dims[:] = [2**32]
    with pytest.raises(UnsupportedModelError, match=r"holds 4,294,967,296 bytes; tte takes tensors of at most "
                                                    r"2,147,483,648 bytes"):
        validate.check(m, "big.onnx")


# -- what stays accepted ------------------------------------------------------------------------------------
def test_every_generated_model_passes(zoo):
    for path in zoo.values():
        validate.check(onnx.load(str(path)), str(path))


# pads < kernel, the edge that stays: 2x2 windows, stride 2, pads 1 -- each corner window holds one real element
SINGLE_TAP = {"kernel": (2, 2), "strides": (2, 2), "pads": (1, 1, 1, 1)}


def _pool(op: str, x: np.ndarray, sx: float, zx: int, sy: float, zy: int, **attrs):
    from tte.ir import Graph, Node, QuantParams, Value

    g = Graph(op)
    g.add_input(Value("x0", "int8", x.shape, QuantParams.per_tensor(sx, zx)))
    g.add_value(Value("y", "int8", (), QuantParams.per_tensor(sy, zy)))
    return g, Node(op, op, ["x0"], ["y"], {"qmin": -128, "qmax": 127, **SINGLE_TAP, **attrs})


@pytest.mark.parametrize("op, count_include_pad", [("maxpool", None), ("avgpool", 0), ("avgpool", 1)])
def test_single_tap_windows_agree_in_c_and_python(op, count_include_pad):
    """The C kernels and the Python reference give the same int8 on windows with a single real tap."""
    import cruntime as cr
    import refkernels as K

    from tte.reference import semantics as sem

    rng = np.random.default_rng(7)
    x = rng.integers(-128, 128, (2, 3, 6, 6)).astype(np.int8)
    x[0, 0] = -128  # the lowest value everywhere: padding must not win a max, nor count in a mean
    sx, zx, sy, zy = 0.05, -3, 0.04, 5
    extra = {} if count_include_pad is None else {"count_include_pad": count_include_pad}
    g, n = _pool(op, x, sx, zx, sy, zy, **extra)
    want = (K.maxpool if op == "maxpool" else K.avgpool)(g, n, x)
    assert want.shape == (2, 3, 4, 4)
    geo, q = cr.PoolGeometry(2, 2, *SINGLE_TAP["strides"], *SINGLE_TAP["pads"]), cr.QuantParams(zx, zy, -128, 127)
    out = np.full(want.shape, 99, np.int8)
    if op == "maxpool":
        m = cr.c_float(sem.multiplier(np.float32(sx), np.float32(sy)))
        status = cr.lib().tte_maxpool_s8(cr.ref(geo), cr.ref(q), m, cr.ref(cr.dims(x.shape)), cr.ptr(x),
                                         cr.ref(cr.dims(want.shape)), cr.ptr(out), None)
        # a corner holds x[0, 0] alone: the max is that element, rescaled
        corner = np.rint((x[..., 0, 0].astype(np.float64) - zx) * sx / sy) + zy
        np.testing.assert_array_equal(want[..., 0, 0], np.clip(corner, -128, 127))
    else:
        counts = np.arange(5, dtype=np.float64)
        counts[0] = 1
        table = sem.multiplier(np.float32(sx), sem.f64(np.float32(sy)) * counts)
        status = cr.lib().tte_avgpool_s8(cr.ref(geo), cr.ref(q), count_include_pad, cr.ref(cr.dims(x.shape)),
                                         cr.ptr(x), cr.ptr(table), cr.ref(cr.dims(want.shape)), cr.ptr(out), None)
    assert status == cr.TTE_OK
    np.testing.assert_array_equal(out, want)


def test_single_tap_pools_in_a_model_agree_with_onnxruntime_and_c(tmp_path):
    """A quantized model with such pools loads in onnxruntime and tte, and C inference equals the reference."""
    from tte.codegen import build_native
    from tte.zoo import GraphBuilder, quantize

    b = GraphBuilder("single_tap", seed=3, input_shape=(1, 3, 8, 8))
    x = b.relu(b.conv("input", 3, 4, 3))
    x = b.max_pool(x, 2, 2, pad=1)  # 5x5
    x = b._node("AveragePool", [x], kernel_shape=[2, 2], strides=[2, 2], pads=[1, 1, 1, 1], count_include_pad=0)
    x = b.gemm(b.flatten(x), 4 * 3 * 3, 10)
    fpath = tmp_path / "single_tap.float.onnx"
    onnx.save(b.finish(x, (1, 10)), str(fpath))
    path = quantize(fpath, tmp_path / "single_tap.int8.onnx")
    model = onnx.load(str(path))
    assert {"MaxPool", "AveragePool"} <= {n.op_type for n in model.graph.node}
    assert ort_verdict(model) is None
    g = tte.load(path)
    native = build_native(g, str(tmp_path / "c"))
    rng = np.random.default_rng(11)
    for _ in range(3):
        xin = rng.uniform(-1, 1, (1, 3, 8, 8)).astype(np.float32)
        np.testing.assert_array_equal(native.infer(xin), g.infer(xin))
