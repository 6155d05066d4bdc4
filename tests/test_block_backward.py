"""The fused backward of trained inverted-residual blocks (tte.passes.block_backward, tte.ops.block): the same
training, bit for bit, as the unfused chain, in the reference and in C; the expanded float gradients gone from the
arena; and where a block does not fuse, the log says why."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import SHARED, run_cli, shared_model
from inputs import inputs

import tte
from tte.codegen import build_program
from tte.ir import QuantParams
from tte.ops import OPS
from tte.ops.block import MAX_GROUP, channel_scratch
from tte.passes.block_backward import fuse_block_backward
from tte.passes.training import PIPELINE
from tte.zoo import INPUT_NAME, NUM_CLASSES, GraphBuilder, quantize

UNFUSED = tuple(p for p in PIPELINE if p is not fuse_block_backward)  # (group_block_channels then has nothing to do)
SCHEMES = {"mbv2-w0.35": ("49kb", "99kb", "138kb", "full"), "mcunet-5fps": ("49kb", "99kb", "148kb", "full"),
           "proxyless-w0.3": ("49kb", "98kb", "148kb", "full")}
PAPER = [(m, s) for m, schemes in SCHEMES.items() for s in schemes]


def bits(x) -> bytes:
    return np.ascontiguousarray(x).tobytes()


def fused_blocks(program: tte.Program) -> list:
    return [n for n in program.train.nodes if n.op == "block_backward"]


def pair(model, scheme, **options) -> tuple[tte.Program, tte.Program]:
    """The program compiled with the pass and without it."""
    return (tte.compile(model, scheme=scheme, **options), tte.compile(model, scheme=scheme, passes=UNFUSED, **options))


def assert_same_training(fused: tte.Program, unfused: tte.Program, steps: int, tmp_path=None,
                         both_in_c: bool = False) -> None:
    """``steps`` training steps of both in the reference and, with ``tmp_path``, of a C build of the fused program
    (``both_in_c``: of each): the same loss bits and the same state after every step; and the steps do train
    something.  (The C of the unfused chain is the reference's bit for bit too: tests/test_c_training.py.)"""
    shape = fused.forward[fused.forward.inputs[0]].shape
    classes = fused.forward["logits"].shape[1]
    natives = () if tmp_path is None else (build_program(fused, str(tmp_path / "fused")),) + \
        ((build_program(unfused, str(tmp_path / "unfused")),) if both_in_c else ())
    initial = {k: v.copy() for k, v in fused.state.items()}
    for s, x in enumerate(inputs(shape, steps, seed=5)):
        losses = [p.train_step(x, s % classes) for p in (fused, unfused, *natives)]
        assert len({bits(np.float32(v)) for v in losses}) == 1, (s, losses)
        for k, v in fused.state.items():
            assert bits(v) == bits(unfused.state[k]), (s, k)
        for native in natives:
            state = native.state()
            assert all(bits(state[k]) == bits(v) for k, v in fused.state.items()), s
    assert any(bits(v) != bits(initial[k]) for k, v in fused.state.items()), "nothing trained: the test proves nothing"


# -- the paper's models with their published schemes --------------------------------------------------------------


@pytest.mark.parametrize("name,label", PAPER)
def test_paper_models_train_the_same_in_the_reference(name, label):
    scheme = label if label == "full" else SHARED / "schemes" / f"{name}.{label}.json"
    fused, unfused = pair(shared_model(name), scheme, classes=10)
    assert fused_blocks(fused) and not fused_blocks(unfused)
    assert_same_training(fused, unfused, steps=2 if label == "full" else 3)


@pytest.mark.parametrize("name,label", [(m, s) for m, s in PAPER if s != "full"] + [("mbv2-w0.35", "full")])
def test_paper_models_train_the_same_in_c(name, label, tmp_path):
    """The fused C against both references; with the largest published scheme and the full update also against the
    unfused C."""
    scheme = label if label == "full" else SHARED / "schemes" / f"{name}.{label}.json"
    fused, unfused = pair(shared_model(name), scheme, classes=10)
    assert_same_training(fused, unfused, steps=3, tmp_path=tmp_path, both_in_c=label in ("138kb", "148kb", "full"))


def backward_peak(program: tte.Program) -> int:
    """The most arena bytes alive at one step of the backward (from the loss on)."""
    report = program.memory
    loss = next(i for i, n in enumerate(report.graph.nodes) if n.op == "xent")
    return max(sum(b.size for b in report.arena.buffers if b.start <= t <= b.end)
               for t in range(loss, len(report.graph.nodes)))


@pytest.mark.parametrize("name,label", [("mbv2-w0.35", "49kb"), ("mbv2-w0.35", "138kb"), ("proxyless-w0.3", "148kb"),
                                        ("mcunet-5fps", "148kb")])
def test_the_expanded_gradients_leave_the_arena(name, label):
    """The backward's peak drops (it was at a block's expanded float gradients), the arena with it where the backward
    set it, and the peak SRAM figure never grows (the trained slices are counted as before)."""
    fused, unfused = pair(shared_model(name), SHARED / "schemes" / f"{name}.{label}.json", classes=10)
    assert backward_peak(fused) < backward_peak(unfused)
    a, b = fused.memory, unfused.memory
    assert a.arena.size <= b.arena.size and a.peak_sram <= b.peak_sram
    assert a.trained == b.trained and a.optimizer == b.optimizer
    if (name, label) == ("mbv2-w0.35", "138kb"):  # its arena was set by block 6's 16x16x96 float gradients
        assert a.arena.size < b.arena.size
    # each goes as many channels at a time as fit in the scratch the other kernels need: the scratch grows only where
    # one channel's planes need more
    blocks = fused_blocks(fused)
    g = fused.train
    room = max(OPS[n.op].scratch(g, n) for n in g.nodes if n.op != "block_backward")
    assert all(n.attrs["group"] == min(MAX_GROUP, max(1, room // channel_scratch(g, n))) for n in blocks)
    one = max(channel_scratch(g, n) for n in blocks)
    assert room <= b.scratch and a.scratch == max(room, one) <= max(b.scratch, one)


def test_explain_reports_what_fused_and_why_not():
    scheme = SHARED / "schemes" / "mbv2-w0.35.49kb.json"
    result = run_cli("plan", shared_model("mbv2-w0.35"), "--scheme", scheme, "--classes", 10, "--explain")
    assert result.exit_code == 0, result.output
    assert "fuse_block_backward: 'blocks.16.pointwise1/Conv' -> 'blocks.16.depthwise/Conv' -> " \
           "'blocks.16.pointwise2/Conv' -> block_backward" in result.output
    momentum = tte.compile(shared_model("mbv2-w0.35"), scheme=scheme, classes=10, momentum=0.9)
    assert not fused_blocks(momentum)
    assert any("fuse_block_backward: 'blocks.16.pointwise1/Conv' -> 'blocks.16.depthwise/Conv' -> "
               "'blocks.16.pointwise2/Conv' not fused: the gradient of 'blocks.16.depthwise/Conv''s output is also "
               "read by" in line and "momentum" in line for line in momentum.pass_log), momentum.pass_log


# -- small models: every kind of block and every combination of what trains ----------------------------------------


def blocks_model(path) -> str:
    """stem; block A (8 -> 24 -> 8, 3x3, stride 1, residual); block B (8 -> 32 -> 12, 5x5, stride 2, no residual);
    block C (12 -> 36 -> 12, 3x3, residual); GAP; Gemm.  Layer indices: stem 0, A 1-3, B 4-6, C 7-9."""
    g = GraphBuilder("blocks", seed=1515, input_shape=(1, 3, 12, 12))
    x = g.relu6(g.conv(INPUT_NAME, 3, 8, 3))
    y = g.relu6(g.depthwise(g.relu6(g.conv(x, 8, 24, 1)), 24, 3))
    x = g.add(x, g.conv(y, 24, 8, 1))
    y = g.relu6(g.depthwise(g.relu6(g.conv(x, 8, 32, 1)), 32, 5, stride=2))
    x = g.conv(y, 32, 12, 1)
    y = g.relu6(g.depthwise(g.relu6(g.conv(x, 12, 36, 1)), 36, 3))
    x = g.add(x, g.conv(y, 36, 12, 1))
    model = g.finish(g.gemm(g.flatten(g.global_avg_pool(x)), 12, NUM_CLASSES), (1, NUM_CLASSES))
    import onnx

    onnx.save(model, str(path / "blocks.float.onnx"))
    return str(quantize(path / "blocks.float.onnx", path / "blocks.int8.onnx"))


@pytest.fixture(scope="module")
def blocks(tmp_path_factory) -> str:
    return blocks_model(tmp_path_factory.mktemp("blocks"))


# name -> (scheme, what each fused block must update, in the order of the graph (C, B, A), and whether its input
# gradient is produced)
COMBINATIONS = {
    "full": ("full", [({"pw2_weight", "dw_weight", "dw_bias", "pw1_weight", "pw1_bias"}, True)] * 3),
    "first block partial": (dict(bias_update_last=9, weight_update={1: 0.5, 2: 0.25, 3: 0.5}),
                            [({"dw_bias", "pw1_bias"}, True), ({"dw_bias", "pw1_bias"}, True),
                             ({"pw2_weight", "dw_weight", "dw_bias", "pw1_weight", "pw1_bias"}, False)]),
    "stride 2 first, pw1 bias only": (dict(bias_update_last=6, weight_update={5: 1, 6: 1, 8: 0.5}),
                                      [({"dw_weight", "dw_bias", "pw1_bias"}, True),
                                       ({"pw2_weight", "dw_weight", "dw_bias", "pw1_bias"}, False)]),
    "no pw1 stage": (dict(bias_update_last=5, weight_update={5: 0.5}),
                     [({"dw_bias", "pw1_bias"}, True), ({"dw_weight", "dw_bias"}, False)]),
    "dw bias alone": (dict(bias_update_last=2, weight_update={}), [({"dw_bias"}, False)]),
    "frozen block passes the gradient": (dict(bias_update_last=4, weight_update={7: 0.5, 6: 1}),
                                         [({"dw_bias", "pw1_bias", "pw1_weight"}, True)]),
}


@pytest.mark.parametrize("case", sorted(COMBINATIONS))
def test_each_combination_of_trained_layers(case, blocks, tmp_path):
    scheme, expected = COMBINATIONS[case]
    fused, unfused = pair(blocks, scheme, classes=10, lr=0.05)
    got = [({u["param"] for u in n.attrs["updates"]}, "dx" in n.attrs["results"]) for n in fused_blocks(fused)]
    assert got == expected
    assert_same_training(fused, unfused, steps=4, tmp_path=tmp_path)


@pytest.mark.parametrize("options", [dict(rounding="nearest"), dict(rounding="trunc"), dict(rounding="accumulate"),
                                     dict(rounding="stochastic", seed=7), dict(qas=False)])
def test_rounding_modes_and_qas(options, blocks, tmp_path):
    """In the reference; in C too where the emitted update differs (a residual, another seed: the kernel's rounding
    is tested against the reference in every mode in tests/test_kernels_block.py)."""
    scheme = COMBINATIONS["first block partial"][0]
    fused, unfused = pair(blocks, scheme, classes=10, lr=0.05, **options)
    assert len(fused_blocks(fused)) == 3
    in_c = options.get("rounding") in ("accumulate", "stochastic")
    assert_same_training(fused, unfused, steps=4, tmp_path=tmp_path if in_c else None)


def test_momentum_leaves_blocks_alone_but_a_frozen_block_still_fuses(blocks, tmp_path):
    """With momentum no update is fused, so a block whose layers train keeps its chain (the log says why); a block
    that only passes the gradient on (nothing of it trains) still fuses."""
    fused, unfused = pair(blocks, "full", classes=10, lr=0.05, momentum=0.5)
    assert not fused_blocks(fused)
    assert sum(line.startswith("fuse_block_backward") and "not fused" in line and "momentum" in line
               for line in fused.pass_log) == 3
    fused, unfused = pair(blocks, dict(bias_update_last=0, weight_update={0: 1}), classes=10, lr=0.05, momentum=0.5)
    assert [n.attrs["updates"] for n in fused_blocks(fused)] == [()] * 3
    assert_same_training(fused, unfused, steps=3, tmp_path=tmp_path)


def with_weight_zero_points(path: str) -> tte.Graph:
    """The model with non-zero per-channel zero points on every block weight (the same integers)."""
    g = tte.load(path)
    rng = np.random.default_rng(3)
    for node in g.nodes:
        if node.op == "conv" and node.inputs[0] != g.nodes[0].output:
            w = g[node.inputs[1]]
            q = w.quant
            zero = rng.integers(-3, 4, w.shape[0]).astype(np.int32)
            w.quant = QuantParams(np.broadcast_to(q.scale, (w.shape[0],)).copy(), zero, axis=0)
    g.verify()
    return g


def test_per_channel_weight_zero_points(blocks, tmp_path):
    g = with_weight_zero_points(blocks)
    scheme = COMBINATIONS["first block partial"][0]
    fused = tte.compile(g, scheme=scheme, classes=10, lr=0.05, rounding="nearest")
    unfused = tte.compile(g, scheme=scheme, classes=10, lr=0.05, rounding="nearest", passes=UNFUSED)
    assert len(fused_blocks(fused)) == 3
    assert_same_training(fused, unfused, steps=4, tmp_path=tmp_path)


def test_a_tflite_chain_of_separable_convs(tmp_path):
    """DS-CNN (TFLite arithmetic): 1x1 -> dw -> 1x1 -> dw -> 1x1 ...; a middle 1x1 is one block's pw1 and the next
    one's pw2, so blocks fuse every other one (the log says which did not, and why)."""
    kws = SHARED / "models" / "external" / "kws_ref_model.tflite"
    if not kws.exists():
        pytest.skip(f"{kws} not found (set TTE_SHARED to the shared/ folder)")
    fused, unfused = pair(kws, "full", classes=10, lr=0.05)
    assert fused_blocks(fused)
    assert any(line.startswith("fuse_block_backward") and "is in the block fused before it" in line
               for line in fused.pass_log)
    assert_same_training(fused, unfused, steps=3, tmp_path=tmp_path)


def test_a_learning_rate_schedule(blocks):
    """set_learning_rate reaches the fused updates (one rate for all of them) as it reaches the unfused ones."""
    fused, unfused = pair(blocks, "full", classes=10, lr=0.05, rounding="nearest")
    shape = fused.forward[fused.forward.inputs[0]].shape
    for s, x in enumerate(inputs(shape, 4, seed=2)):
        for p in (fused, unfused):
            p.set_learning_rate(0.02 * (s + 1))
        assert bits(np.float32(fused.train_step(x, s))) == bits(np.float32(unfused.train_step(x, s)))
    assert all(bits(v) == bits(unfused.state[k]) for k, v in fused.state.items())
    assert {n.attrs["lr"] for n in fused_blocks(fused)} == {np.float32(0.08)}
