"""TFLite's integer arithmetics (tte/reference/fixedpoint.py, the ``"tflite"`` and ``"tflite-micro"`` arithmetics
of a graph) against TFLite itself: ``"tflite"`` against TFLite's reference kernels (litert), ``"tflite-micro"``
against TFLite Micro (the tflite-micro package), which differ in FULLY_CONNECTED and LOGISTIC.

* the primitives against values worked by hand from TFLite's and gemmlowp's source (QuantizeMultiplier,
  SaturatingRoundingDoublingHighMul, RoundingDivideByPOT, MultiplyByQuantizedMultiplier, the average's
  rounding, ADD's multipliers);
* every op's reference kernel (tte/ops, on a graph whose arithmetic is ``"tflite"``) against TFLite's reference
  kernels (``ai_edge_litert``, BUILTIN_REF) on one-op models written here with the ``tflite`` package's
  flatbuffer builders, with data that separates the plausible variants (single vs double rounding, float vs
  double multipliers, MBQM vs one rounding in double); TFLite Micro on the same models: equal for every op but
  FULLY_CONNECTED and LOGISTIC, whose ``"tflite-micro"`` kernels are checked against it;
* every CONV_2D, DEPTHWISE_CONV_2D, FULLY_CONNECTED, ADD and AVERAGE_POOL_2D layer of the MLPerf Tiny models
  (../shared/models/external), each fed TFLite's own input tensor;
* the whole MLPerf models through ``tte.load`` and the generated C.

The C runtime is compared with these same reference kernels in tests/test_kernels_tflite.py.
"""

from __future__ import annotations

import dataclasses
import importlib

import flatbuffers
import numpy as np
import pytest
import refkernels as K
import tflite
from conftest import SHARED

from tte.ir import Graph, Node, QuantParams, Value
from tte.ir.facts import set_arithmetic
from tte.reference import fixedpoint as fp

litert = pytest.importorskip("ai_edge_litert.interpreter", reason="ai-edge-litert is not installed")
I32_MIN, I32_MAX = fp.INT32_MIN, fp.INT32_MAX
MLPERF = SHARED / "models" / "external"
MLPERF_MODELS = ["kws_ref_model", "pretrainedResnet_quant", "vww_96_int8"]
OPS = {name: code for code, name in tflite.utils.BUILTIN_OPCODE2NAME.items()}
F32 = np.float32


# ---- primitives, by hand -----------------------------------------------------------------------------------
@pytest.mark.parametrize("real, m, n", [
    (0.5, 1 << 30, 0), (1.0, 1 << 30, 1), (0.75, 3 << 29, 0), (2.0**-31, 1 << 30, -30), (2.0**-32, 1 << 30, -31),
    (2.0**-33, 0, 0), (0.0, 0, 0), (0.1, 1717986918, -3),
    ((2**30 + 0.5) / 2**31, 2**30 + 1, 0),  # q * 2^31 ends in .5: TfLiteRound goes away from zero
    (1 - 2.0**-40, 1 << 30, 1),  # q * 2^31 rounds up to 2^31: halved, exponent + 1
    (2.0**29 * 1.5, 3 << 29, 30),
])
def test_quantize_multiplier(real, m, n):
    assert tuple(int(v) for v in fp.quantize_multiplier(real)) == (m, n)
    if m:
        assert abs(fp.multiplier_value(m, n) / real - 1) < 2**-30


@pytest.mark.parametrize("real", [-0.5, float("inf"), float("nan"), 2.0**31])
def test_quantize_multiplier_refuses(real):
    with pytest.raises(ValueError):
        fp.quantize_multiplier(real)


@pytest.mark.parametrize("a, b, want", [
    (1 << 30, 1 << 30, 1 << 29), (I32_MIN, I32_MIN, I32_MAX), (I32_MAX, I32_MAX, I32_MAX - 1),
    (1, 1 << 30, 1), (-1, 1 << 30, 0), (3, 1 << 30, 2), (-3, 1 << 30, -1),  # ties go up (the nudge, truncated)
    (5, 1 << 30, 3), (-5, 1 << 30, -2), (7, 3 << 29, 5), (I32_MIN, 1 << 30, -(1 << 30)), (0, I32_MAX, 0),
])
def test_saturating_rounding_doubling_high_mul(a, b, want):
    assert int(fp.srdhm(a, b)) == want


@pytest.mark.parametrize("x, e, want", [
    (5, 1, 3), (-5, 1, -3), (3, 1, 2), (-3, 1, -2), (4, 1, 2), (7, 2, 2), (6, 2, 2), (-6, 2, -2), (5, 2, 1),
    (-5, 2, -1), (-7, 2, -2), (9, 0, 9), (I32_MIN, 31, -1), (I32_MAX, 31, 1), (1 << 30, 31, 1), ((1 << 30) - 1, 31, 0),
])
def test_rounding_divide_by_pot(x, e, want):  # ties away from zero
    assert int(fp.rdbpot(x, e)) == want


@pytest.mark.parametrize("x, m, n, want", [
    (5, 1 << 30, -1, 2),  # 1.25: 2.5 -> 3 then 1.5 -> 2 (TFLITE_SINGLE_ROUNDING would give 1)
    (-5, 1 << 30, -1, -1),  # -1.25: -2.5 -> -2 then -1 -> -1
    (3, 1 << 30, 1, 3), (-100, 1 << 30, 1, -100),  # (2^30, 1) is exactly 1
    (1 << 30, 1 << 30, 1, -(1 << 30)),  # the left shift wraps in int32 (2^31 -> INT32_MIN), as in TFLite
    (1000, 3 << 29, -4, 47),  # 1000 * 0.75 / 16 = 46.875
    (I32_MAX, 1 << 30, -31, 1),  # (2^31 - 1) / 2 -> 2^30 (rounded up), then 2^30 / 2^31: a tie, away
    (123, 0, 0, 0),
])
def test_multiply_by_quantized_multiplier(x, m, n, want):
    assert int(fp.mbqm(x, m, n)) == want


def test_multiply_by_quantized_multiplier_smaller_than_one_is_mbqm():
    rng = np.random.default_rng(0)
    x = rng.integers(I32_MIN >> 1, I32_MAX >> 1, 2000)
    m, n = rng.integers(1 << 30, 1 << 31, 2000), -rng.integers(0, 32, 2000)
    np.testing.assert_array_equal(fp.mbqm_smaller_than_one(x, m, n), fp.mbqm(x, m, n))


@pytest.mark.parametrize("total, count, want", [
    (3, 2, 2), (-3, 2, -2), (1, 2, 1), (-1, 2, -1), (5, 4, 1), (6, 4, 2), (-6, 4, -2), (7, 3, 2), (-7, 3, -2),
    (0, 9, 0), (-640, 5, -128),
])
def test_average_rounds_half_away_from_zero(total, count, want):
    assert int(fp.average(total, count)) == want


def test_add_multipliers_by_hand():
    """Equal scales 0.5: inputs get 1/2 (2^30, 0), the output 2^-19 (2^30, -18); 3 + 4 is 7."""
    params = fp.add_multipliers(0.5, 0.5, 0.5)
    assert params.tolist() == [1 << 30, 0, 1 << 30, 0, 1 << 30, -18]
    assert int(fp.add(3, 0, 4, 0, params, 0)) == 7
    with pytest.raises(ValueError):
        fp.add_multipliers(1.0, 1.0, 1e-7)


@pytest.mark.parametrize("count", [1, 2, 3, 7, 49, 100, 1000])
@pytest.mark.parametrize("value", [-128, -3, 0, 5, 127])
def test_mean_of_a_constant_plane_is_the_constant(count, value):
    m, n = fp.mean_multiplier(0.05, 0.05, count)
    assert int(fp.mean(value * count, 7, count, m, n, 7)) == value


def test_quantize_rounds_half_away_from_zero():
    x = np.float32([0.5, -0.5, 1.5, -1.5, 2.5, 0.49999997, -0.49999997, np.nan, np.inf, -np.inf, 1e30])
    assert fp.quantize(x, 1.0, 0).tolist() == [1, -1, 2, -2, 3, 0, 0, -128, 127, -128, 127]
    assert fp.quantize(np.float32([np.nan]), 1.0, -100).tolist() == [-128]


def test_tables_by_hand():
    lg = fp.logistic_table(0.05, 3)
    assert lg[3 + 128] == 0 and lg[0] == -128 and lg[255] == 127  # sigmoid(0) = 1/2 is 0 on (1/256, -128)
    real = 1 / (1 + np.exp(-0.05 * (np.arange(-128, 128) - 3)))
    assert np.abs(lg - np.round(real * 256 - 128).clip(-128, 127)).max() <= 1
    hs = fp.hardswish_table(0.05, 3, 0.03, -20)
    assert hs[3 + 128] == -20 and (hs[:128 + 3 - 60] == -20).all()  # zero below x = -3
    r = 0.05 * (np.arange(-128, 128) - 3)
    assert np.abs(hs - (r * np.clip(r + 3, 0, 6) / 6 / 0.03 - 20)).max() <= 1


# ---- one-op TFLite models ------------------------------------------------------------------------------------
def _module(name: str):
    return importlib.import_module(f"tflite.{name}")


def _vector(b, start, items, kind: str):
    start(b, len(items))
    for v in reversed(items):
        getattr(b, "Prepend" + kind)(v)
    return b.EndVector()


def one_op_model(op: str, tensors: list[dict], inputs: list[int], options: tuple[str, dict] | None = None) -> bytes:
    """A model of one op: ``tensors`` (dicts: shape, dtype, scale, zero_point [, qdim] [, data]) are its operands
    then its output (the last); ``inputs`` the graph inputs among them."""
    T, Q, B = _module("Tensor"), _module("QuantizationParameters"), _module("Buffer")
    b = flatbuffers.Builder(1024)
    buffers = []
    for t in [{}] + tensors:
        data = None
        if t.get("data") is not None:
            raw = np.ascontiguousarray(t["data"]).tobytes()
            b.StartVector(1, len(raw), 16)
            for byte in reversed(raw):
                b.PrependUint8(byte)
            data = b.EndVector()
        B.BufferStart(b)
        if data is not None:
            B.BufferAddData(b, data)
        buffers.append(B.BufferEnd(b))
    offsets = []
    for i, t in enumerate(tensors):
        shape = _vector(b, T.TensorStartShapeVector, list(t["shape"]), "Int32")
        quant = None
        if "scale" in t:
            sv = _vector(b, Q.QuantizationParametersStartScaleVector,
                         [float(s) for s in np.atleast_1d(np.float32(t["scale"]))], "Float32")
            zv = _vector(b, Q.QuantizationParametersStartZeroPointVector,
                         [int(z) for z in np.atleast_1d(t["zero_point"])], "Int64")
            Q.QuantizationParametersStart(b)
            Q.QuantizationParametersAddScale(b, sv)
            Q.QuantizationParametersAddZeroPoint(b, zv)
            Q.QuantizationParametersAddQuantizedDimension(b, t.get("qdim", 0))
            quant = Q.QuantizationParametersEnd(b)
        T.TensorStart(b)
        T.TensorAddShape(b, shape)
        T.TensorAddType(b, {"int8": 9, "int32": 2, "float32": 0}[t["dtype"]])
        T.TensorAddBuffer(b, i + 1 if t.get("data") is not None else 0)
        if quant is not None:
            T.TensorAddQuantization(b, quant)
        offsets.append(T.TensorEnd(b))
    OC, Op, SG, M = _module("OperatorCode"), _module("Operator"), _module("SubGraph"), _module("Model")
    OC.OperatorCodeStart(b)
    OC.OperatorCodeAddDeprecatedBuiltinCode(b, min(OPS[op], 127))
    OC.OperatorCodeAddBuiltinCode(b, OPS[op])
    OC.OperatorCodeAddVersion(b, 1)
    code = OC.OperatorCodeEnd(b)
    table = None
    if options is not None:
        kind, fields = options
        mod = _module(kind)
        getattr(mod, kind + "Start")(b)
        for k, v in fields.items():
            getattr(mod, f"{kind}Add{k}")(b, v)
        table = getattr(mod, kind + "End")(b)
    out = len(tensors) - 1
    ins = _vector(b, Op.OperatorStartInputsVector, list(range(out)), "Int32")
    outs = _vector(b, Op.OperatorStartOutputsVector, [out], "Int32")
    Op.OperatorStart(b)
    Op.OperatorAddOpcodeIndex(b, 0)
    Op.OperatorAddInputs(b, ins)
    Op.OperatorAddOutputs(b, outs)
    if table is not None:
        Op.OperatorAddBuiltinOptionsType(b, getattr(_module("BuiltinOptions").BuiltinOptions, options[0]))
        Op.OperatorAddBuiltinOptions(b, table)
    operator = Op.OperatorEnd(b)
    tv = _vector(b, SG.SubGraphStartTensorsVector, offsets, "UOffsetTRelative")
    iv = _vector(b, SG.SubGraphStartInputsVector, inputs, "Int32")
    ov = _vector(b, SG.SubGraphStartOutputsVector, [out], "Int32")
    opv = _vector(b, SG.SubGraphStartOperatorsVector, [operator], "UOffsetTRelative")
    SG.SubGraphStart(b)
    for add, v in ((SG.SubGraphAddTensors, tv), (SG.SubGraphAddInputs, iv), (SG.SubGraphAddOutputs, ov),
                   (SG.SubGraphAddOperators, opv)):
        add(b, v)
    subgraph = SG.SubGraphEnd(b)
    cv = _vector(b, M.ModelStartOperatorCodesVector, [code], "UOffsetTRelative")
    sv = _vector(b, M.ModelStartSubgraphsVector, [subgraph], "UOffsetTRelative")
    bv = _vector(b, M.ModelStartBuffersVector, buffers, "UOffsetTRelative")
    M.ModelStart(b)
    for add, v in ((M.ModelAddVersion, 3), (M.ModelAddOperatorCodes, cv), (M.ModelAddSubgraphs, sv),
                   (M.ModelAddBuffers, bv)):
        add(b, v)
    b.Finish(M.ModelEnd(b), b"TFL3")
    return bytes(b.Output())


def run_litert(model: bytes, *xs) -> np.ndarray:
    it = litert.Interpreter(model_content=model, experimental_op_resolver_type=litert.OpResolverType.BUILTIN_REF)
    it.allocate_tensors()
    for d, x in zip(it.get_input_details(), xs):
        it.set_tensor(d["index"], x)
    it.invoke()
    return it.get_tensor(it.get_output_details()[0]["index"])


def run_micro(model: bytes, *xs) -> np.ndarray:
    runtime = pytest.importorskip("tflite_micro.python.tflite_micro.runtime")
    it = runtime.Interpreter.from_bytes(model, arena_size=1 << 22)
    for i, x in enumerate(xs):
        it.set_input(x, i)
    it.invoke()
    return it.get_output(0)


def t8(shape, scale, zero_point, data=None, **kw) -> dict:
    return dict(shape=list(shape), dtype="int8", scale=scale, zero_point=zero_point, data=data, **kw)


def tte_node(op: str, operands, out: QuantParams, arithmetic: str = "tflite", **attrs) -> tuple[Graph, Node]:
    """A one-node tte graph with TFLite's arithmetic (or ``arithmetic``): operands are (array, QuantParams or
    None)."""
    g = Graph(op)
    for i, (a, q) in enumerate(operands):
        g.add_input(Value(f"x{i}", str(a.dtype), a.shape, q))
    g.add_value(Value("y", "int8", (), out))
    set_arithmetic(g, arithmetic)
    return g, Node(op, op, [f"x{i}" for i in range(len(operands))], ["y"], {"qmin": -128, "qmax": 127, **attrs})


def pt(scale, zp=0) -> QuantParams:
    return QuantParams.per_tensor(float(np.float32(scale)), int(zp))


def nchw(a):
    return np.ascontiguousarray(a.transpose(0, 3, 1, 2))


def same_pads(size, kernel, stride):
    """TFLite's SAME padding (top, left, bottom, right): the extra row or column at the bottom / right."""
    pads = []
    for n, k, s in zip(size, kernel, stride):
        out = -(-n // s)
        total = max((out - 1) * s + k - n, 0)
        pads.append((total // 2, total - total // 2))
    return (pads[0][0], pads[1][0], pads[0][1], pads[1][1])


# ---- one-op models: TFLite against the tte op kernels ---------------------------------------------------------
def designed_accumulators(rng, scale_fn, differ, count=4000, limit=60000, least=8) -> tuple[list, np.ndarray]:
    """Scales (from ``scale_fn(rng)``) and accumulators in [-limit, limit) on which the arithmetic variants
    ``differ(acc, scales)`` disagree with in-range results: the data that tells them apart."""
    acc = np.arange(-limit, limit)
    for _ in range(count):
        scales = scale_fn(rng)
        d = acc[differ(acc, scales)]
        if d.size >= least:
            return scales, d[:64]
    raise AssertionError("no separating data found")


def fc_model(sx, sw, sy, bias):
    """x [1, 1] times w = ones [M, 1] plus bias: output channel o is bias[o] requantized (x = z_x = 0)."""
    m = bias.size
    sw = np.broadcast_to(np.float32(sw), (m,)) if np.ndim(sw) else np.float32(sw)
    return one_op_model("FULLY_CONNECTED", [
        t8((1, 1), sx, 0), t8((m, 1), sw, np.zeros(np.size(sw), np.int64), np.ones((m, 1), np.int8)),
        dict(shape=[m], dtype="int32", scale=np.float32(sx) * np.float32(sw),
             zero_point=np.zeros(np.size(sw), np.int64),
             data=bias.astype(np.int32)), t8((1, m), sy, 0)], [0], ("FullyConnectedOptions", {}))


@pytest.mark.parametrize("per_channel", [False, True], ids=["per-tensor", "per-channel"])
def test_fully_connected_rounds_once_in_double(per_channel):
    """TFLite's reference FULLY_CONNECTED computes round(acc * s_x * s_w / s_y) in double precision, not MBQM:
    on accumulators where the two disagree, TFLite and tte's gemm kernel give the former."""
    rng = np.random.default_rng(3)

    def scales(r):
        return F32(r.uniform(0.001, 0.1)), F32(r.uniform(0.0005, 0.02)), F32(r.uniform(0.2, 2))

    def differ(acc, s):
        sx, sw, sy = s
        real = fp.fc_scales(sx, [sw], sy)
        once = fp.round_away(acc * real[0])
        return (once != fp.mbqm(acc, *fp.quantize_multiplier(real))) & (np.abs(once) < 120)

    (sx, sw, sy), acc = designed_accumulators(rng, scales, differ)
    sws = np.full(acc.size, sw, F32) if per_channel else sw
    got = run_litert(fc_model(sx, sws, sy, acc), np.zeros((1, 1), np.int8))[0]
    wq = QuantParams(np.full(acc.size, sw, F32), np.zeros(acc.size, np.int32), axis=0) if per_channel else pt(sw)
    x, w = np.zeros((1, 1), np.int8), np.ones((acc.size, 1), np.int8)
    g, node = tte_node("gemm", [(x, pt(sx)), (w, wq), (acc.astype(np.int32), None)], pt(sy))
    np.testing.assert_array_equal(K.gemm(g, node, x, w, acc.astype(np.int32))[0], got)
    mbqm = np.clip(fp.mbqm(acc, *fp.quantize_multiplier(fp.fc_scales(sx, [sw], sy))), -128, 127)
    assert not np.array_equal(got, mbqm)


@pytest.mark.parametrize("per_channel", [False, True], ids=["per-tensor", "per-channel"])
def test_fully_connected_tflite_micro_uses_mbqm(per_channel):
    """TFLite Micro (and so CMSIS-NN) requantizes FULLY_CONNECTED with MBQM, like a conv: where MBQM and one
    rounding in double differ, TFLite Micro and tte's gemm kernel in the ``"tflite-micro"`` arithmetic give
    MBQM(acc, QuantizeMultiplier(double(s_x) * double(s_w) / double(s_y))), per tensor as per channel (the
    tflite-micro package computes the per-tensor multiplier from the double product too: the last data set
    separates it from the float32 product s_x * s_w)."""
    rng = np.random.default_rng(4)

    def scales(r):
        return F32(r.uniform(0.001, 0.1)), F32(r.uniform(0.0005, 0.02)), F32(r.uniform(0.2, 2))

    def differ(acc, s):
        real = fp.fc_scales(*s[:1], [s[1]], s[2])
        once = fp.round_away(acc * real[0])
        return (once != fp.mbqm(acc, *fp.quantize_multiplier(real))) & (np.abs(once) < 120)

    def differ_product(acc, s):
        ours = fp.mbqm(acc, *fp.conv_multipliers(s[0], [s[1]], s[2]))
        other = fp.mbqm(acc, *fp.quantize_multiplier(np.float64(F32(s[0] * s[1])) / np.float64(s[2])))
        return (ours != other) & (np.abs(ours) < 120)

    for test, limit in ((differ, 60000), (differ_product, 3000000)):
        (sx, sw, sy), acc = designed_accumulators(rng, scales, test, count=20000, limit=limit, least=2)
        sws = np.full(acc.size, sw, F32) if per_channel else sw
        got = run_micro(fc_model(sx, sws, sy, acc), np.zeros((1, 1), np.int8))[0]
        want = np.clip(fp.mbqm(acc, *fp.conv_multipliers(sx, [sw], sy)), -128, 127)
        np.testing.assert_array_equal(got, want)
        wq = QuantParams(np.full(acc.size, sw, F32), np.zeros(acc.size, np.int32), axis=0) if per_channel else pt(sw)
        x, w = np.zeros((1, 1), np.int8), np.ones((acc.size, 1), np.int8)
        g, node = tte_node("gemm", [(x, pt(sx)), (w, wq), (acc.astype(np.int32), None)], pt(sy),
                           arithmetic="tflite-micro")
        np.testing.assert_array_equal(K.gemm(g, node, x, w, acc.astype(np.int32))[0], got)
        if test is differ:  # where TFLite's reference FULLY_CONNECTED rounds otherwise
            assert not np.array_equal(run_litert(fc_model(sx, sws, sy, acc), np.zeros((1, 1), np.int8))[0], got)


@pytest.mark.parametrize("op", ["CONV_2D", "DEPTHWISE_CONV_2D"])
@pytest.mark.parametrize("rounding", ["double-vs-single", "double-vs-float-product"])
def test_conv_multipliers_and_rounding(op, rounding):
    """Per-tensor weight scale, accumulators where double rounding and TFLITE_SINGLE_ROUNDING disagree, or where
    a multiplier from the float32 product s_x * s_w would: TFLite and tte's conv kernel give MBQM with the
    multiplier of double(s_x) * double(s_w) / double(s_y), rounded twice."""
    rng = np.random.default_rng(5)

    def scales(r):
        return F32(r.uniform(0.001, 0.1)), F32(r.uniform(0.0005, 0.02)), F32(r.uniform(0.2, 2))

    def differ(acc, s):
        m, n = fp.conv_multipliers(s[0], [s[1]], s[2])
        ours = fp.mbqm(acc, m, n)
        if rounding == "double-vs-single":
            other = (acc * m.astype(np.int64) + (1 << (30 - n.astype(np.int64)))) >> (31 - n.astype(np.int64))
        else:
            other = fp.mbqm(acc, *fp.quantize_multiplier(np.float64(F32(s[0] * s[1])) / np.float64(s[2])))
        return (ours != other) & (np.abs(ours) < 120)

    (sx, sw, sy), acc = designed_accumulators(rng, scales, differ, least=2 if "float" in rounding else 8)
    c = acc.size
    shape = (c, 1, 1, 1) if op == "CONV_2D" else (1, 1, 1, c)
    opts = ("Conv2DOptions", {"Padding": 1, "StrideW": 1, "StrideH": 1}) if op == "CONV_2D" else \
        ("DepthwiseConv2DOptions", {"Padding": 1, "StrideW": 1, "StrideH": 1, "DepthMultiplier": c})
    model = one_op_model(op, [t8((1, 1, 1, 1), sx, 0), t8(shape, sw, 0, np.ones(shape, np.int8)),
                              dict(shape=[c], dtype="int32", scale=F32(sx * sw), zero_point=0,
                                   data=acc.astype(np.int32)),
                              t8((1, 1, 1, c), sy, 0)], [0], opts)
    got = run_litert(model, np.zeros((1, 1, 1, 1), np.int8)).reshape(-1)
    x, w = np.zeros((1, 1, 1, 1), np.int8), np.ones((c, 1, 1, 1), np.int8)
    g, node = tte_node("conv", [(x, pt(sx)), (w, pt(sw)), (acc.astype(np.int32), None)], pt(sy), strides=(1, 1),
                       pads=(0, 0, 0, 0), groups=1)
    np.testing.assert_array_equal(K.conv(g, node, x, w, acc.astype(np.int32)).reshape(-1), got)


def elementwise_case(rng, op: str):
    s = rng.uniform(0.005, 0.2, 3).astype(F32)
    z = rng.integers(-128, 128, 3)
    if op == "MUL":
        s[2] = F32(rng.uniform(0.01, 2))
    a, b = (rng.integers(-128, 128, (1, 4096), dtype=np.int8) for _ in range(2))
    return s, z, a, b


@pytest.mark.parametrize("seed", range(3))
@pytest.mark.parametrize("op", ["ADD", "MUL"])
def test_add_and_mul(op, seed):
    rng = np.random.default_rng([seed, len(op)])
    s, z, a, b = elementwise_case(rng, op)
    model = one_op_model(op, [t8(a.shape, s[0], z[0]), t8(b.shape, s[1], z[1]), t8(a.shape, s[2], z[2])], [0, 1],
                         (f"{op.title()}Options", {}))
    got = run_litert(model, a, b)
    np.testing.assert_array_equal(run_micro(model, a, b), got)  # TFLite Micro: the same ("tflite-micro" too)
    g, node = tte_node(op.lower(), [(a, pt(s[0], z[0])), (b, pt(s[1], z[1]))], pt(s[2], z[2]))
    np.testing.assert_array_equal(K.KERNELS[op.lower()](g, node, a, b), got)


@pytest.mark.parametrize("scale, zp", [(0.25, 0), (0.1, -3), (0.0235, 17), (2**-7, -128)])
def test_quantize_float(scale, zp):
    """Ties of x / scale and their float32 neighbours.  (Beyond +-2^31 TFLite's float-to-int conversion is
    undefined: x86 gives INT32_MIN, which tte does not copy; it saturates.)"""
    rng = np.random.default_rng(zp + 200)
    x = np.r_[rng.normal(0, 20, 1000), (np.arange(-140, 140) + 0.5) * scale].astype(F32)
    x = np.r_[x, np.nextafter(x, F32(np.inf)), np.nextafter(x, F32(-np.inf)), [1e3, -1e3, 0.0, -0.0]].astype(F32)[None]
    model = one_op_model("QUANTIZE", [dict(shape=list(x.shape), dtype="float32"), t8(x.shape, scale, zp)], [0])
    g, node = tte_node("quantize", [(x, None)], pt(scale, zp))
    np.testing.assert_array_equal(K.KERNELS["quantize"](g, node, x), run_litert(model, x))
    np.testing.assert_array_equal(run_micro(model, x), run_litert(model, x))  # TFLite Micro: the same


@pytest.mark.parametrize("seed", range(4))
def test_requantize(seed):
    rng = np.random.default_rng(seed + 300)
    (sx, sy), (zx, zy) = rng.uniform(0.005, 0.3, 2).astype(F32), rng.integers(-128, 128, 2)
    if seed == 0:
        sy, zy = sx, zx
    x = np.arange(-128, 128, dtype=np.int8)[None]
    model = one_op_model("QUANTIZE", [t8(x.shape, sx, zx), t8(x.shape, sy, zy)], [0])
    g, node = tte_node("requantize", [(x, pt(sx, zx))], pt(sy, zy))
    np.testing.assert_array_equal(K.requantize(g, node, x), run_litert(model, x))
    np.testing.assert_array_equal(run_micro(model, x), run_litert(model, x))  # TFLite Micro: the same


@pytest.mark.parametrize("kernel, stride, padding", [(3, 2, "SAME"), (2, 1, "SAME"), (5, 5, "VALID"),
                                                     (3, 1, "VALID")])
@pytest.mark.parametrize("op", ["AVERAGE_POOL_2D", "MAX_POOL_2D"])
def test_pools(op, kernel, stride, padding):
    rng = np.random.default_rng(kernel * 10 + stride)
    s, z = F32(rng.uniform(0.01, 0.1)), int(rng.integers(-128, 128))
    x = rng.integers(-128, 128, (1, 11, 13, 4), dtype=np.int8)
    pads = same_pads((11, 13), (kernel, kernel), (stride, stride)) if padding == "SAME" else (0, 0, 0, 0)
    out = ((11 + pads[0] + pads[2] - kernel) // stride + 1, (13 + pads[1] + pads[3] - kernel) // stride + 1)
    model = one_op_model(op, [t8(x.shape, s, z), t8((1, *out, 4), s, z)], [0], ("Pool2DOptions", {
        "Padding": 0 if padding == "SAME" else 1, "StrideW": stride, "StrideH": stride, "FilterWidth": kernel,
        "FilterHeight": kernel}))
    kind = "avgpool" if op == "AVERAGE_POOL_2D" else "maxpool"
    extra = {"count_include_pad": 0} if kind == "avgpool" else {}
    g, node = tte_node(kind, [(nchw(x), pt(s, z))], pt(s, z), kernel=(kernel, kernel), strides=(stride, stride),
                       pads=pads, **extra)
    np.testing.assert_array_equal(K.KERNELS[kind](g, node, nchw(x)), nchw(run_litert(model, x)))
    np.testing.assert_array_equal(run_micro(model, x), run_litert(model, x))  # TFLite Micro: the same


@pytest.mark.parametrize("h, w", [(7, 7), (5, 3), (10, 10), (1, 1), (6, 4)])
def test_mean(h, w):
    rng = np.random.default_rng(h * w)
    (sx, sy), (zx, zy) = rng.uniform(0.01, 0.1, 2).astype(F32), rng.integers(-128, 128, 2)
    x = rng.integers(-128, 128, (1, h, w, 32), dtype=np.int8)
    axis = dict(shape=[2], dtype="int32", data=np.array([1, 2], np.int32))
    model = one_op_model("MEAN", [t8(x.shape, sx, zx), axis, t8((1, 1, 1, 32), sy, zy)], [0],
                         ("ReducerOptions", {"KeepDims": True}))
    g, node = tte_node("global_avgpool", [(nchw(x), pt(sx, zx))], pt(sy, zy))
    np.testing.assert_array_equal(K.global_avgpool(g, node, nchw(x)), nchw(run_litert(model, x)))
    np.testing.assert_array_equal(run_micro(model, x), run_litert(model, x))  # TFLite Micro: the same


def test_concatenation():
    rng = np.random.default_rng(7)
    a, b = rng.integers(-128, 128, (1, 3, 4, 5), dtype=np.int8), rng.integers(-128, 128, (1, 3, 4, 2), dtype=np.int8)
    model = one_op_model("CONCATENATION", [t8(a.shape, 0.05, 3), t8(b.shape, 0.05, 3), t8((1, 3, 4, 7), 0.05, 3)],
                         [0, 1], ("ConcatenationOptions", {"Axis": 3}))
    g, node = tte_node("concat", [(nchw(a), pt(0.05, 3)), (nchw(b), pt(0.05, 3))], pt(0.05, 3), axis=1)
    np.testing.assert_array_equal(K.concat(g, node, nchw(a), nchw(b)), nchw(run_litert(model, a, b)))
    np.testing.assert_array_equal(run_micro(model, a, b), run_litert(model, a, b))  # TFLite Micro: the same


LOGISTIC = [(0.05, 3), (0.1, -128), (0.02, 100), (0.3, 0), (0.0078125, -5), (0.5, 10)]


@pytest.mark.parametrize("arithmetic", ["tflite", "tflite-micro"])
@pytest.mark.parametrize("sx, zx", LOGISTIC)
def test_logistic_table(sx, zx, arithmetic):
    """tte's sigmoid on every int8 input: TFLite's reference LOGISTIC (a float32 sigmoid table) in ``"tflite"``,
    TFLite Micro's integer Logistic (gemmlowp) in ``"tflite-micro"``; the two differ in rare entries, by one step."""
    x = np.arange(-128, 128, dtype=np.int8)[None]
    model = one_op_model("LOGISTIC", [t8(x.shape, sx, zx), t8(x.shape, 1 / 256, -128)], [0])
    g, node = tte_node("sigmoid", [(x, pt(sx, zx))], pt(1 / 256, -128), arithmetic=arithmetic)
    ours = K.KERNELS["sigmoid"](g, node, x)
    np.testing.assert_array_equal(ours, run_litert(model, x) if arithmetic == "tflite" else run_micro(model, x))
    d = np.abs(fp.logistic_lut(sx, zx, 1 / 256, -128).clip(-128, 127) - fp.logistic_table(sx, zx))
    assert d.max() <= 1 and (d > 0).sum() <= 4


def test_logistic_lut_over_many_parameters():
    """TFLite's reference LOGISTIC (LUTPopulate of the float32 sigmoid, std::exp) over 1000 random input scales
    (1e-4 to 5) and zero points, and output zero points (TFLite takes any with the scale 1/256): every entry of
    every table equals fp.logistic_lut."""
    rng = np.random.default_rng(12)
    x = np.arange(-128, 128, dtype=np.int8)[None]
    for i in range(1000):
        sx, zx = F32(np.exp(rng.uniform(np.log(1e-4), np.log(5)))), int(rng.integers(-128, 128))
        zy = -128 if i % 4 else int(rng.integers(-128, 128))
        model = one_op_model("LOGISTIC", [t8(x.shape, sx, zx), t8(x.shape, 1 / 256, zy)], [0])
        np.testing.assert_array_equal(fp.logistic_lut(sx, zx, 1 / 256, zy).clip(-128, 127), run_litert(model, x)[0],
                                      err_msg=f"s_x={sx!r} z_x={zx} z_y={zy}")


def differing_logistic_parameters(count: int, seed: int = 7) -> list[tuple[np.float32, int]]:
    """(s_x, z_x) whose LOGISTIC tables differ between TFLite's reference kernel and TFLite Micro (about one in a
    thousand do)."""
    rng, found = np.random.default_rng(seed), []
    while len(found) < count:
        sx, zx = F32(np.exp(rng.uniform(np.log(1e-3), np.log(1)))), int(rng.integers(-128, 128))
        if not np.array_equal(fp.logistic_lut(sx, zx, 1 / 256, -128).clip(-128, 127), fp.logistic_table(sx, zx)):
            found.append((sx, zx))
    return found


def test_logistic_where_tflite_and_micro_differ():
    """On tables where litert and TFLite Micro disagree, tte's sigmoid gives litert's in ``"tflite"`` and TFLite
    Micro's in ``"tflite-micro"``."""
    x = np.arange(-128, 128, dtype=np.int8)[None]
    for sx, zx in differing_logistic_parameters(8):
        model = one_op_model("LOGISTIC", [t8(x.shape, sx, zx), t8(x.shape, 1 / 256, -128)], [0])
        litert_y, micro_y = run_litert(model, x), run_micro(model, x)
        assert not np.array_equal(litert_y, micro_y)
        for arithmetic, want in (("tflite", litert_y), ("tflite-micro", micro_y)):
            g, node = tte_node("sigmoid", [(x, pt(sx, zx))], pt(1 / 256, -128), arithmetic=arithmetic)
            np.testing.assert_array_equal(K.KERNELS["sigmoid"](g, node, x), want)


@pytest.mark.parametrize("sx, zx, sy, zy", [(0.05, 3, 0.03, -20), (0.1, -128, 0.05, -100), (0.02, 100, 0.01, 0),
                                            (0.2, 0, 0.1, -10), (0.01, -20, 0.5, 5), (0.08, 7, 0.08, 7)])
def test_hard_swish_table(sx, zx, sy, zy):
    x = np.arange(-128, 128, dtype=np.int8)[None]
    model = one_op_model("HARD_SWISH", [t8(x.shape, sx, zx), t8(x.shape, sy, zy)], [0])
    g, node = tte_node("hardswish", [(x, pt(sx, zx))], pt(sy, zy))
    ours = K.KERNELS["hardswish"](g, node, x)
    np.testing.assert_array_equal(ours, run_litert(model, x))
    np.testing.assert_array_equal(ours, run_micro(model, x))


# ---- the MLPerf Tiny models, layer by layer -------------------------------------------------------------------
def _activation_range(code: int, scale, zero_point) -> tuple[int, int]:
    """CalculateActivationRangeQuantized: RELU / RELU6 bounds quantized with a float division, rounded away."""
    def q(v):
        return int(zero_point) + int(fp.round_away(F32(v) / F32(scale)))
    return {0: (-128, 127), 1: (max(-128, q(0)), 127), 3: (max(-128, q(0)), min(127, q(6)))}[code]


def _layer_checks(path):
    """(op name, (TFLite output, tte output)) for every conv, depthwise conv, fully connected, add and average
    pool of the model at ``path`` on one random input, each tte op fed TFLite's own input tensors."""
    model = tflite.Model.GetRootAsModel(path.read_bytes(), 0)
    sg = model.Subgraphs(0)
    it = litert.Interpreter(model_path=str(path), experimental_op_resolver_type=litert.OpResolverType.BUILTIN_REF,
                            experimental_preserve_all_tensors=True)
    it.allocate_tensors()
    d = it.get_input_details()[0]
    it.set_tensor(d["index"], np.random.default_rng(0).integers(-128, 128, d["shape"], dtype=np.int8))
    it.invoke()

    def quant(k):
        q = sg.Tensors(k).Quantization()
        s, z = q.ScaleAsNumpy(), q.ZeroPointAsNumpy()
        return pt(s[0], z[0]) if s.size == 1 else QuantParams(s.astype(F32), z.astype(np.int32), axis=0)

    for i in range(sg.OperatorsLength()):
        op = sg.Operators(i)
        code = model.OperatorCodes(op.OpcodeIndex())
        name = tflite.utils.BUILTIN_OPCODE2NAME[max(code.BuiltinCode(), code.DeprecatedBuiltinCode())]
        ins, out = [op.Inputs(j) for j in range(op.InputsLength())], op.Outputs(0)
        tensor = [it.get_tensor(k) for k in ins]
        want, qy = it.get_tensor(out), quant(out)
        if name in ("CONV_2D", "DEPTHWISE_CONV_2D"):
            o = (tflite.Conv2DOptions if name == "CONV_2D" else tflite.DepthwiseConv2DOptions)()
            o.Init(op.BuiltinOptions().Bytes, op.BuiltinOptions().Pos)
            x = nchw(tensor[0])
            w = tensor[1].transpose(0, 3, 1, 2) if name == "CONV_2D" else tensor[1].transpose(3, 0, 1, 2)
            stride = (o.StrideH(), o.StrideW())
            pads = same_pads(x.shape[2:], w.shape[2:], stride) if o.Padding() == 0 else (0, 0, 0, 0)
            lo, hi = _activation_range(o.FusedActivationFunction(), qy.scale, qy.zero_point)
            g, node = tte_node("conv", [(x, quant(ins[0])), (np.ascontiguousarray(w), quant(ins[1])),
                                        (tensor[2], None)], qy, strides=stride, pads=pads,
                               groups=1 if name == "CONV_2D" else x.shape[1], qmin=lo, qmax=hi)
            yield name, (nchw(want), K.conv(g, node, x, np.ascontiguousarray(w), tensor[2]))
        elif name == "FULLY_CONNECTED":
            o = tflite.FullyConnectedOptions()
            o.Init(op.BuiltinOptions().Bytes, op.BuiltinOptions().Pos)
            lo, hi = _activation_range(o.FusedActivationFunction(), qy.scale, qy.zero_point)
            x = tensor[0].reshape(-1, tensor[1].shape[1])
            g, node = tte_node("gemm", [(x, quant(ins[0])), (tensor[1], quant(ins[1])), (tensor[2], None)], qy,
                               qmin=lo, qmax=hi)
            yield name, (want.reshape(x.shape[0], -1), K.gemm(g, node, x, tensor[1], tensor[2]))
        elif name == "ADD":
            o = tflite.AddOptions()
            o.Init(op.BuiltinOptions().Bytes, op.BuiltinOptions().Pos)
            lo, hi = _activation_range(o.FusedActivationFunction(), qy.scale, qy.zero_point)
            g, node = tte_node("add", [(nchw(tensor[0]), quant(ins[0])), (nchw(tensor[1]), quant(ins[1]))], qy,
                               qmin=lo, qmax=hi)
            yield name, (nchw(want), K.add(g, node, nchw(tensor[0]), nchw(tensor[1])))
        elif name == "AVERAGE_POOL_2D":
            o = tflite.Pool2DOptions()
            o.Init(op.BuiltinOptions().Bytes, op.BuiltinOptions().Pos)
            x, kernel, stride = nchw(tensor[0]), (o.FilterHeight(), o.FilterWidth()), (o.StrideH(), o.StrideW())
            pads = same_pads(x.shape[2:], kernel, stride) if o.Padding() == 0 else (0, 0, 0, 0)
            lo, hi = _activation_range(o.FusedActivationFunction(), qy.scale, qy.zero_point)
            g, node = tte_node("avgpool", [(x, quant(ins[0]))], qy, kernel=kernel, strides=stride, pads=pads,
                               count_include_pad=0, qmin=lo, qmax=hi)
            yield name, (nchw(want), K.avgpool(g, node, x))


@pytest.mark.parametrize("name", MLPERF_MODELS)
def test_mlperf_layers(name):
    path = MLPERF / f"{name}.tflite"
    if not path.exists():
        pytest.skip(f"{path} not found (set TTE_SHARED to the shared/ folder)")
    seen = set()
    for op, (want, got) in _layer_checks(path):
        assert want.shape == got.shape, op
        np.testing.assert_array_equal(got, want, err_msg=op)
        seen.add(op)
    assert {"CONV_2D", "FULLY_CONNECTED", "AVERAGE_POOL_2D"} <= seen


@pytest.mark.parametrize("name", MLPERF_MODELS)
def test_mlperf_models_whole(name, tmp_path):
    """tte.load (TFLite arithmetic), the numpy executor and the generated C: the logits equal TFLite's on
    random inputs."""
    path = MLPERF / f"{name}.tflite"
    if not path.exists():
        pytest.skip(f"{path} not found (set TTE_SHARED to the shared/ folder)")
    import tte
    from tte.codegen import build_native
    from tte.ir.facts import arithmetic
    from tte.passes.forward import fuse_pointwise_depthwise

    g = tte.load(path)
    assert arithmetic(g) == "tflite"
    fused, _ = fuse_pointwise_depthwise(g)
    native = build_native(fused, str(tmp_path))
    it = litert.Interpreter(model_path=str(path), experimental_op_resolver_type=litert.OpResolverType.BUILTIN_REF,
                            experimental_preserve_all_tensors=True)
    it.allocate_tensors()
    d = it.get_input_details()[0]
    logits = [t["index"] for t in it.get_tensor_details() if t["index"] == _softmax_input(path)][0]
    rng = np.random.default_rng(1)
    for _ in range(3):
        x = rng.integers(-128, 128, d["shape"], dtype=np.int8)
        it.set_tensor(d["index"], x)
        it.invoke()
        want = it.get_tensor(logits).reshape(-1)
        assert g[g.nodes[0].output].shape == x.shape  # the int8 API takes the model's own input layout
        np.testing.assert_array_equal(native.infer_s8(x.reshape(-1)), want)


def _softmax_input(path) -> int:
    model = tflite.Model.GetRootAsModel(path.read_bytes(), 0)
    sg = model.Subgraphs(0)
    for i in range(sg.OperatorsLength()):
        op = sg.Operators(i)
        code = model.OperatorCodes(op.OpcodeIndex())
        if tflite.utils.BUILTIN_OPCODE2NAME[max(code.BuiltinCode(), code.DeprecatedBuiltinCode())] == "SOFTMAX":
            return op.Inputs(0)
    raise AssertionError("no SOFTMAX")


@pytest.mark.parametrize("name", ["kws_ref_model", "pretrainedResnet_quant"])
def test_mlperf_generated_c_under_sanitizers(name, tmp_path):
    """The generated C of a TFLite model (fused, TFLite arithmetic) built with AddressSanitizer and
    UndefinedBehaviorSanitizer: it runs clean and its logits are TFLite's."""
    import subprocess

    import tte
    from tte.codegen import emit_inference
    from tte.codegen.native import SANITIZE, compile_c
    from tte.passes.forward import fuse_pointwise_depthwise

    path = MLPERF / f"{name}.tflite"
    if not path.exists():
        pytest.skip(f"{path} not found (set TTE_SHARED to the shared/ folder)")
    g, _ = fuse_pointwise_depthwise(tte.load(path))
    emit_inference(g, tmp_path)
    (tmp_path / "main.c").write_text(r"""
#include <stdio.h>
#include "tte_model.h"
int main(void) {
    static int8_t input[TTE_INPUT_SIZE];
    int8_t logits[TTE_OUTPUT_SIZE];
    for (int i = 0; i < TTE_INPUT_SIZE; i++) input[i] = (int8_t)((i * 37) % 256 - 128);
    if (tte_infer(input, logits) != 0) return 1;
    for (int i = 0; i < TTE_OUTPUT_SIZE; i++) printf("%d ", logits[i]);
    return 0;
}
""")
    p = subprocess.run([str(compile_c(tmp_path, tmp_path / "demo", SANITIZE))], capture_output=True, text=True)
    assert p.returncode == 0, p.stderr
    it = litert.Interpreter(model_path=str(path), experimental_op_resolver_type=litert.OpResolverType.BUILTIN_REF,
                            experimental_preserve_all_tensors=True)
    it.allocate_tensors()
    d = it.get_input_details()[0]
    it.set_tensor(d["index"], ((np.arange(np.prod(d["shape"])) * 37) % 256 - 128).astype(np.int8).reshape(d["shape"]))
    it.invoke()
    assert p.stdout.split() == [str(int(v)) for v in it.get_tensor(_softmax_input(path)).reshape(-1)]


@pytest.mark.parametrize("arithmetic", ["tflite", "tflite-micro"])
def test_training_step_in_c_equals_the_reference(tmp_path, arithmetic):
    """A training program with TFLite's arithmetics (masks from the integers before the clamp): the generated
    C trains exactly as the reference, step after step."""
    from conftest import ROOT
    from test_c_training import train_both

    import tte

    program = tte.compile(ROOT / "examples" / "tiny_cnn.int8.onnx", arithmetic=arithmetic, scheme="full", classes=4,
                          lr=0.05)
    assert any(n.op == "gemm" for n in program.forward.nodes)
    train_both(program, tmp_path, steps=6)


@pytest.mark.parametrize("per_channel", [False, True], ids=["per-tensor-fc", "per-channel-fc"])
def test_training_step_in_c_tflite_micro_logistic_and_fc(tmp_path, per_channel):
    """A TFLite model with a LOGISTIC between a conv and the fully connected classifier, trained whole in the
    ``"tflite-micro"`` arithmetic (TFLite Micro's logistic table, MBQM fully connected, their masks and
    gradients): the generated C trains exactly as the reference."""
    from test_c_training import train_both
    from tflite_builder import TFLiteBuilder

    import tte

    b = TFLiteBuilder(seed=21)
    y = b.logistic(b.conv2d(b.input((1, 8, 8, 3), signature=(-1, 8, 8, 3)), 6, 3, stride=2))
    b.softmax(b.fully_connected(b.reshape(y, (1, -1)), 4, per_channel=per_channel))
    path = b.save(tmp_path / "logistic.tflite")
    program = tte.compile(path, arithmetic="tflite-micro", scheme="full", lr=0.05)
    assert {"sigmoid", "gemm"} <= {n.op for n in program.forward.nodes}
    train_both(program, tmp_path, steps=6)


@pytest.mark.parametrize("arithmetic", ["tflite", "tflite-micro"])
def test_onnx_model_with_tflite_arithmetic(tmp_path, arithmetic):
    """``tte.load(onnx, arithmetic=...)`` with TFLite's arithmetics: the generated C equals the reference
    executor, and the arithmetic changes some logits against onnxruntime's (float32 multipliers, ties to even)."""
    from conftest import ROOT
    from inputs import inputs

    import tte
    from tte.codegen import build_native
    from tte.passes.forward import fuse_pointwise_depthwise

    path = ROOT / "examples" / "tiny_cnn.int8.onnx"
    g, ort = tte.load(path, arithmetic=arithmetic), tte.load(path)
    fused, _ = fuse_pointwise_depthwise(g)
    native = build_native(fused, str(tmp_path))
    differ = 0
    for x in inputs(g[g.inputs[0]].shape, 12, seed=3):
        want = g.infer(x)
        np.testing.assert_array_equal(native.infer(x), want)
        np.testing.assert_array_equal(fused.infer(x), want)
        differ += not np.array_equal(ort.infer(x), want)
    assert differ > 0


def test_tables_over_many_parameters():
    """LOGISTIC and HARD_SWISH tables over 150 random input / output parameters each, against TFLite Micro
    (both; LOGISTIC: its integer algorithm) and TFLite (HARD_SWISH; LOGISTIC: test_logistic_lut_over_many_parameters):
    every entry of every table."""
    rng = np.random.default_rng(11)
    x = np.arange(-128, 128, dtype=np.int8)[None]
    for _ in range(150):
        sx, zx = F32(np.exp(rng.uniform(np.log(0.002), np.log(0.5)))), int(rng.integers(-128, 128))
        model = one_op_model("LOGISTIC", [t8(x.shape, sx, zx), t8(x.shape, 1 / 256, -128)], [0])
        np.testing.assert_array_equal(np.clip(fp.logistic_table(sx, zx), -128, 127), run_micro(model, x)[0])
        sy, zy = F32(sx * np.exp(rng.uniform(np.log(0.3), np.log(3)))), int(rng.integers(-128, 128))
        model = one_op_model("HARD_SWISH", [t8(x.shape, sx, zx), t8(x.shape, sy, zy)], [0])
        want = np.clip(fp.hardswish_table(sx, zx, sy, zy), -128, 127)
        np.testing.assert_array_equal(want, run_micro(model, x)[0])
        np.testing.assert_array_equal(want, run_litert(model, x)[0])


# ---- one-op models through tte.load, the reference executor and the generated C -------------------------------
def _one_op_both_ways(model: bytes, x: np.ndarray, arithmetic: str, tmp_path) -> np.ndarray:
    """The output of the one-op .tflite ``model`` on int8 ``x`` as tte computes it with ``arithmetic``: the
    reference executor's, checked equal to the generated C's."""
    from tflite_builder import tte_tensors

    import tte
    from tte.codegen import build_native
    from tte.ir.facts import arithmetic as arithmetic_of

    tmp_path.mkdir(parents=True, exist_ok=True)
    path = tmp_path / f"model-{arithmetic}.tflite"
    path.write_bytes(model)
    g = tte.load(path, arithmetic=arithmetic)
    assert arithmetic_of(g) == arithmetic
    out = g.outputs[0] if g[g.outputs[0]].dtype == "int8" else g.nodes[-1].inputs[0]
    ref = tte_tensors(g, x)[out]
    native = build_native(g, str(tmp_path / f"c-{arithmetic}"))
    np.testing.assert_array_equal(native.infer_s8(x.reshape(-1)).reshape(ref.shape), ref)
    return ref


def test_one_op_logistic_models(tmp_path):
    """One-op LOGISTIC .tflite models whose tables differ between TFLite and TFLite Micro, through tte.load, the
    reference executor and the generated C: ``"tflite"`` gives litert's output, ``"tflite-micro"`` TFLite Micro's."""
    x = np.arange(-128, 128, dtype=np.int8).reshape(1, 16, 16)
    for k, (sx, zx) in enumerate(differing_logistic_parameters(3, seed=3)):
        model = one_op_model("LOGISTIC", [t8(x.shape, sx, zx), t8(x.shape, 1 / 256, -128)], [0])
        litert_y, micro_y = run_litert(model, x), run_micro(model, x)
        assert not np.array_equal(litert_y, micro_y)
        np.testing.assert_array_equal(_one_op_both_ways(model, x, "tflite", tmp_path / f"{k}"), litert_y)
        np.testing.assert_array_equal(_one_op_both_ways(model, x, "tflite-micro", tmp_path / f"{k}"), micro_y)


@pytest.mark.parametrize("per_channel", [False, True], ids=["per-tensor", "per-channel"])
def test_one_op_fully_connected_models(tmp_path, per_channel):
    """One-op FULLY_CONNECTED .tflite models on accumulators where one rounding in double and MBQM disagree,
    through tte.load, the reference executor and the generated C (tte_gemm_tflite_s8, tte_gemm_s8 with Q31
    multipliers): ``"tflite"`` gives litert's output, ``"tflite-micro"`` TFLite Micro's."""
    rng = np.random.default_rng(8)

    def scales(r):
        return F32(r.uniform(0.001, 0.1)), F32(r.uniform(0.0005, 0.02)), F32(r.uniform(0.2, 2))

    def differ(acc, s):
        real = fp.fc_scales(*s[:1], [s[1]], s[2])
        once = fp.round_away(acc * real[0])
        return (once != fp.mbqm(acc, *fp.quantize_multiplier(real))) & (np.abs(once) < 120)

    (sx, sw, sy), acc = designed_accumulators(rng, scales, differ)
    model = fc_model(sx, np.full(acc.size, sw, F32) if per_channel else sw, sy, acc)
    x = np.zeros((1, 1), np.int8)
    litert_y, micro_y = run_litert(model, x), run_micro(model, x)
    assert not np.array_equal(litert_y, micro_y)
    np.testing.assert_array_equal(_one_op_both_ways(model, x, "tflite", tmp_path), litert_y)
    np.testing.assert_array_equal(_one_op_both_ways(model, x, "tflite-micro", tmp_path), micro_y)


# ---- pools and concatenations whose input and output parameters differ -----------------------------------------
def test_requantizing_pools_and_concat_are_noted(tmp_path):
    """TFLite Micro refuses pools and TFLite both refuse concatenations whose operands are quantized otherwise than
    their output (TFLite's reference pools ignore the output's parameters instead); tte requantizes, and its load
    notes say so.  Equal parameters: no note."""
    from tflite_builder import TFLiteBuilder

    import tte
    from tte.ir.facts import load_notes

    for requantize in (False, True):
        b = TFLiteBuilder(seed=2)
        c = b.conv2d(b.input((1, 8, 8, 4)), 4, 3)
        scale = c.scale * (2 if requantize else 1)
        pool_out = b.tensor("pool/out", (1, 4, 4, 4), scale=scale, zero_point=c.zero_point)
        b.op("AVERAGE_POOL_2D", [c.index], [pool_out], padding="VALID", stride_h=2, stride_w=2, filter_h=2,
             filter_w=2)
        b.concat([dataclasses.replace(c, index=pool_out, shape=(1, 4, 4, 4), scale=scale), b.max_pool(c)])
        notes = load_notes(tte.load(b.save(tmp_path / f"m{requantize}.tflite")))
        pooled = [n for n in notes if "AVERAGE_POOL_2D" in n and "requantizes" in n]
        concat = [n for n in notes if "CONCATENATION" in n and "requantizes" in n]
        assert (len(pooled), len(concat)) == ((1, 1) if requantize else (0, 0)), notes
        if requantize:
            assert "TFLite Micro refuses" in pooled[0] and "refuse" in concat[0]


@pytest.mark.parametrize("op", ["AVERAGE_POOL_2D", "MAX_POOL_2D"])
def test_pools_with_other_output_parameters(op):
    """What the note above says: TFLite Micro refuses a pool whose output parameters differ from its input's, and
    TFLite's reference kernels write the input-parameter average / maximum whatever the output's parameters."""
    x = np.random.default_rng(0).integers(-128, 128, (1, 4, 4, 2), dtype=np.int8)
    options = ("Pool2DOptions", {"Padding": 1, "StrideW": 2, "StrideH": 2, "FilterWidth": 2, "FilterHeight": 2})
    same = one_op_model(op, [t8(x.shape, 0.05, 3), t8((1, 2, 2, 2), 0.05, 3)], [0], options)
    for sy, zy in ((0.1, 3), (0.05, -20)):
        other = one_op_model(op, [t8(x.shape, 0.05, 3), t8((1, 2, 2, 2), sy, zy)], [0], options)
        np.testing.assert_array_equal(run_litert(other, x), run_litert(same, x))
        with pytest.raises(Exception, match="TFLM failed"):
            run_micro(other, x)
