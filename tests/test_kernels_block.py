"""Golden tests of tte_block_backward_f32 (the fused backward of an inverted-residual block), called directly through
ctypes against the op's reference kernel (tte.ops.block: the unfused chain's reference kernels) on random operands:
every float and integer the same, bit for bit."""

from __future__ import annotations

import ctypes

import numpy as np
import pytest
from cruntime import (
    ROUNDING,
    TTE_ERROR_ARGUMENT,
    TTE_OK,
    ConvGeometry,
    SavedS8,
    SgdParams,
    SplitWeights,
    WeightsS8,
    c_int32,
    dims,
    lib,
    ptr,
    ref,
    vp,
)
from test_block_backward import COMBINATIONS, blocks_model

import tte
from tte.ir import Graph, Node
from tte.ops import OPS
from tte.ops.block import UPDATES


class BlockConv(ctypes.Structure):
    _fields_ = [("w_dims", vp), ("w", vp), ("mask", vp), ("x", vp), ("weights", vp), ("channels", c_int32),
                ("weight_factors", vp), ("weight_sgd", vp), ("bias", vp), ("bias_factors", vp), ("bias_sgd", vp)]


@pytest.fixture(scope="module")
def blocks(tmp_path_factory) -> str:
    return blocks_model(tmp_path_factory.mktemp("kblocks"))


def batched(g: Graph, node: Node, n: int) -> tuple[Graph, Node]:
    """The node over a batch of ``n``: its activations, masks and gradients (not its parameters) get n samples."""
    g = g.copy()
    node = next(m for m in g.nodes if m.name == node.name)
    params = set(g.state)
    for v in node.inputs + node.outputs:
        val = g[v]
        if not val.is_const and v not in params and v not in g.state_updates.values() and val.shape and \
                len(val.shape) == 4:
            val.shape = (n, *val.shape[1:])
    node.attrs["mid_shape"] = (n, *node.attrs["mid_shape"][1:])
    if node.attrs["in_shape"] is not None:
        node.attrs["in_shape"] = (n, *node.attrs["in_shape"][1:])
    return g, node


def operands(g: Graph, node: Node, rng: np.random.Generator) -> list[np.ndarray]:
    """Random operands of the node's dtypes and shapes (constants as they are)."""
    out = []
    for role, v in zip(node.attrs["roles"], node.inputs):
        val = g[v]
        if val.is_const:
            out.append(val.data)
        elif val.dtype == "bool":
            out.append(rng.random(val.shape) < 0.8)
        elif val.dtype == "float32":
            scale = 1e-3 if role.endswith(".aux") else 1.0
            out.append((rng.standard_normal(val.shape) * scale).astype(np.float32))
        elif val.dtype == "int8":
            out.append(rng.integers(-127, 128, val.shape, dtype=np.int8))
        elif role.endswith(".aux"):  # the step counter
            out.append(np.array(rng.integers(0, 1000), np.int32))
        else:
            out.append(rng.integers(-2000, 2000, val.shape).astype(np.int32))
    return out


def run_c(g: Graph, node: Node, args: list[np.ndarray], params: dict[str, np.ndarray] | None = None):
    """The C kernel on the node's operands: its results in the order of the node's outputs."""
    a = node.attrs
    v = dict(zip(a["roles"], args))
    names = dict(zip(a["roles"], node.inputs))
    updates = {u["param"]: u for u in a["updates"]}
    keep = []  # every array and struct a pointer points at, alive until the call returns

    def hold(x):
        keep.append(x)
        return x

    def addr(struct):  # a struct's address, for a pointer field
        return ctypes.addressof(hold(struct))

    def c_array(x):
        return ptr(hold(np.ascontiguousarray(x)))

    trained: dict[str, np.ndarray] = {}
    residuals: dict[str, np.ndarray] = {}

    def sgd(name: str):
        u = updates[name]
        aux = v.get(f"{name}.aux")
        residual = None
        if a["rounding"] == "accumulate":
            residual = residuals[name] = np.array(aux, np.float32, copy=True)
        step = int(aux) if a["rounding"] == "stochastic" else 0
        return addr(SgdParams(np.float32(a["lr"]), ROUNDING[a["rounding"]], a["seed"], u["stream"], step,
                              u["qmin"], u["qmax"], ptr(residual)))

    def layer(weight_role: str, mask: str | None, saved: str, weight_update: str, bias_update: str | None):
        w = v[weight_role]
        q = g[names[weight_role]].quant
        depthwise = weight_update == "dw_weight"
        u = updates.get(weight_update)
        k = u["channels"] if u else w.shape[0 if depthwise else 1]
        axis = 0 if depthwise else 1
        part = np.ascontiguousarray(np.take(w, range(k), axis=axis))
        rest = np.ascontiguousarray(np.take(w, range(k, w.shape[axis]), axis=axis))
        scales = np.broadcast_to(np.float32(q.scale), (w.shape[0],)).astype(np.float32)
        zero = np.broadcast_to(np.int32(q.zero_point), (w.shape[0],)).astype(np.int32)
        ws = hold(WeightsS8(SplitWeights(ptr(hold(part)), ptr(hold(rest)) if rest.size else None, k),
                            ptr(hold(zero)) if zero.any() else None, ptr(hold(scales))))
        packed = c_array(np.packbits(v[mask], bitorder="little")) if mask else None
        fields = [addr(dims(w.shape)), ctypes.addressof(ws), packed]
        if u:
            xq = g[names[saved]].quant
            trained[weight_update] = part
            fields += [addr(SavedS8(c_array(v[saved]), int(xq.zero_point), float(xq.scale))), ptr(part), k,
                       c_array(v[f"{weight_update}.factor"]), sgd(weight_update)]
        else:
            fields += [None, None, 0, None, None]
        if bias_update in updates:
            bias = trained[bias_update] = np.array(v[UPDATES[bias_update]], copy=True)
            fields += [ptr(bias), c_array(v[f"{bias_update}.factor"]), sgd(bias_update)]
        else:
            fields += [None, None, None]
        return ref(hold(BlockConv(*fields)))

    gy = v["gy"]
    pw2 = layer("w2", None, "x2", "pw2_weight", None)
    dw = layer("w_dw", "dw_mask", "x_dw", "dw_weight", "dw_bias")
    pw1 = layer("w1", "pw1_mask", "x1", "pw1_weight", "pw1_bias") if "pw1_mask" in v else None
    geo = ConvGeometry(*a["strides"], *a["pads"], g[names["w_dw"]].shape[0])
    dx = np.full(a["in_shape"], np.nan, np.float32) if "dx" in a["results"] else None
    scratch = np.full(OPS["block_backward"].scratch(g, node) // 4, np.nan, np.float32)
    status = lib().tte_block_backward_f32(ref(dims(gy.shape)), c_array(gy), pw2, ref(geo), dw,
                                          ref(dims(a["mid_shape"])), pw1, ref(dims(a["in_shape"])) if dx is not None
                                          else None, ptr(dx), a["group"], ptr(scratch))
    assert status == TTE_OK
    f = lib().tte_block_backward_f32_get_buffer_size
    f.restype = c_int32
    assert f(ref(dims(gy.shape)), ref(dims(a["mid_shape"])), int(pw1 is not None), a["group"]) == scratch.nbytes
    out = []
    for role in a["results"]:
        update, _, what = role.partition(".")
        if role == "dx":
            out.append(dx)
        elif what == "residual":
            out.append(residuals[update])
        else:
            out.append(trained[update])
    return out


def reference(g: Graph, node: Node, args: list[np.ndarray]) -> list[np.ndarray]:
    """The reference's results, the trained slice of each weight (as the C holds it)."""
    result = OPS["block_backward"].kernel(g, node, *args)
    result = list(result) if isinstance(result, tuple) else [result]
    updates = {u["param"]: u for u in node.attrs["updates"]}
    for i, role in enumerate(node.attrs["results"]):
        update, _, what = role.partition(".")
        if what == "next" and update.endswith("weight"):
            result[i] = np.take(result[i], range(updates[update]["channels"]), axis=updates[update]["axis"])
    return result


CASES = [(case, rounding) for case in sorted(COMBINATIONS) for rounding in ("stochastic", "nearest")] + \
    [("first block partial", r) for r in ("trunc", "accumulate")]


@pytest.mark.parametrize("case,rounding", CASES)
@pytest.mark.parametrize("batch,group", [(1, 1), (1, 3), (1, 8), (2, 5)])
def test_block_backward_f32(case, rounding, batch, group, blocks):
    """Every combination of what trains, rounding modes, batches of one and two, groups of channels that divide the
    expanded channels or not (24, 32, 36 of them)."""
    program = tte.compile(blocks, scheme=COMBINATIONS[case][0], classes=10, lr=0.5, rounding=rounding)
    nodes = [n for n in program.train.nodes if n.op == "block_backward"]
    assert nodes
    rng = np.random.default_rng(len(case) * 31 + batch)
    for node in nodes:
        g, node = batched(program.train, node, batch)
        node.attrs["group"] = group
        args = operands(g, node, rng)
        want, got = reference(g, node, args), run_c(g, node, args)
        assert len(want) == len(got) == len(node.outputs)
        for role, w, c in zip(node.attrs["results"], want, got):
            assert w.dtype == c.dtype and w.shape == c.shape, role
            assert np.ascontiguousarray(w).tobytes() == np.ascontiguousarray(c).tobytes(), (node.name, role)
        if rounding == "nearest":  # large steps: some parameter moves (else the comparison proves little)
            before = dict(zip(node.attrs["roles"], args))
            assert any(not np.array_equal(w, before[UPDATES[r.partition(".")[0]]]) for r, w in
                       zip(node.attrs["results"], want) if r.endswith("bias.next")), node.name


def test_block_backward_f32_rejects_bad_dims(blocks):
    program = tte.compile(blocks, scheme="full", classes=10)
    node = next(n for n in program.train.nodes if n.op == "block_backward")
    g = program.train
    args = operands(g, node, np.random.default_rng(0))
    # without dw's mask: refused; with it: done; with expanded dims of the wrong channel count: refused
    a = node.attrs
    v = dict(zip(a["roles"], args))
    w2, wdw = v["w2"], v["w_dw"]
    s2 = np.ones(w2.shape[0], np.float32)
    sdw = np.ones(wdw.shape[0], np.float32)
    d_w2, d_wdw = dims(w2.shape), dims(wdw.shape)
    ws2 = WeightsS8(SplitWeights(ptr(w2), None, w2.shape[1]), None, ptr(s2))
    wsdw = WeightsS8(SplitWeights(ptr(wdw), None, wdw.shape[0]), None, ptr(sdw))
    pw2 = BlockConv(ctypes.addressof(d_w2), ctypes.addressof(ws2), None, None, None, 0, None, None, None, None, None)
    dw = BlockConv(ctypes.addressof(d_wdw), ctypes.addressof(wsdw), None, None, None, 0, None, None, None, None, None)
    gy = v["gy"]
    geo = ConvGeometry(*a["strides"], *a["pads"], wdw.shape[0])
    scratch = np.zeros(4096, np.float32)
    status = lib().tte_block_backward_f32(ref(dims(gy.shape)), ptr(gy), ref(pw2), ref(geo), ref(dw),
                                          ref(dims(a["mid_shape"])), None, None, None, 1, ptr(scratch))
    assert status == TTE_ERROR_ARGUMENT
    mask = np.packbits(v["dw_mask"], bitorder="little")
    dw.mask = ptr(mask).value
    status = lib().tte_block_backward_f32(ref(dims(gy.shape)), ptr(gy), ref(pw2), ref(geo), ref(dw),
                                          ref(dims(a["mid_shape"])), None, None, None, 1, ptr(scratch))
    assert status == TTE_OK
    wrong = dims((1, wdw.shape[0] + 1, *a["mid_shape"][2:]))
    status = lib().tte_block_backward_f32(ref(dims(gy.shape)), ptr(gy), ref(pw2), ref(geo), ref(dw), ref(wrong),
                                          None, None, None, 1, ptr(scratch))
    assert status == TTE_ERROR_ARGUMENT
    for group in (0, 9):  # outside 1 .. TTE_BLOCK_MAX_GROUP
        status = lib().tte_block_backward_f32(ref(dims(gy.shape)), ptr(gy), ref(pw2), ref(geo), ref(dw),
                                              ref(dims(a["mid_shape"])), None, None, None, group, ptr(scratch))
        assert status == TTE_ERROR_ARGUMENT
    big = dims((wdw.shape[0], 1, 9, 9))  # a depthwise kernel larger than TTE_BLOCK_MAX_TAPS
    dw.w_dims = ctypes.addressof(big)
    status = lib().tte_block_backward_f32(ref(dims(gy.shape)), ptr(gy), ref(pw2), ref(geo), ref(dw),
                                          ref(dims(a["mid_shape"])), None, None, None, 1, ptr(scratch))
    assert status == TTE_ERROR_ARGUMENT
