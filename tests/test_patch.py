"""Patch-based execution of the frozen prefix (tte/passes/patch.py, tte/ops/patch.py): the first frozen layers run
band by band of rows, the halo kept in line buffers or recomputed (the result maybe over the input), and nothing else
changes.

* The paper models with their published schemes: the training step in C gives the loss bits and trained integers of
  the Python reference, patched and unpatched; inference in C and the patched inference graph give the logits of the
  forward graph; the peak SRAM drops and the choice is explained.
* Small models built here, for the band arithmetic: every stage end and band height (heights that do not divide the
  rows, one row, the whole height) gives the integers of the stage run whole, in Python and in C; strides, asymmetric
  padding, residual adds and a ReLU inside the stage, a channels-last input; a stage that covers the whole frozen
  prefix (the cached prefix's frontier is then the stage's result).
"""

from __future__ import annotations

import json

import numpy as np
import pytest
from arena_oracle import simulate_step
from conftest import SHARED, run_cli, shared_model
from tflite_builder import TFLiteBuilder

import tte
from tte.codegen import build_program
from tte.codegen.c_train import cached_prefixes
from tte.ir.executor import evaluate
from tte.passes.memory import memory_report
from tte.passes.patch import patch_stage

PAPER = ("mbv2-w0.35", "proxyless-w0.3", "mcunet-5fps")
STEPS = 3


def bits(x) -> bytes:
    return np.ascontiguousarray(x).tobytes()


def patch_node(g):
    nodes = [n for n in g.nodes if n.op == "patch"]
    assert len(nodes) <= 1
    return nodes[0] if nodes else None


def samples(program, n: int, seed: int = 5):
    rng = np.random.default_rng(seed)
    shape = program.forward[program.forward.inputs[0]].shape
    return [rng.normal(0, 1, shape).astype(np.float32) for _ in range(n)]


def infer_graph(program, x) -> np.ndarray:
    """The logits of the graph the C inference runs (patched like the training step), by the reference executor."""
    g = program.inference[0]
    env = {v.name: v.data for v in g.constants()}
    env.update({k: v for k, v in program.state.items() if k in g.values})
    env[g.inputs[0]] = x
    evaluate(g, env)
    return env[g.outputs[0]]


def assert_same_training(patched, unpatched, tmp_path, steps: int = STEPS, c_unpatched: bool = False) -> None:
    """Patched reference, unpatched reference and the patched C build (and the unpatched one) train the same bits."""
    native = build_program(patched, str(tmp_path / "patched"))
    plain = build_program(unpatched, str(tmp_path / "plain")) if c_unpatched else None
    classes = patched.forward[patched.forward.outputs[0]].shape[1]
    initial = {k: v.copy() for k, v in patched.state.items()}
    for s, x in enumerate(samples(patched, steps)):
        label = s % classes
        losses = [patched.train_step(x, label), unpatched.train_step(x, label), native.train_step(x, label)]
        if plain is not None:
            losses.append(plain.train_step(x, label))
        assert len({bits(np.float32(v)) for v in losses}) == 1, (s, losses)
    c_state = native.state()
    for k, v in patched.state.items():
        assert bits(v) == bits(unpatched.state[k]) and bits(v) == bits(c_state[k]), k
        if plain is not None:
            assert bits(v) == bits(plain.state()[k]), k
    assert any(bits(patched.state[k]) != bits(initial[k]) for k in initial), "nothing trained: the test proves nothing"
    for x in samples(patched, 2, seed=9):
        want = unpatched.infer(x)
        assert np.array_equal(patched.infer(x), want) and np.array_equal(native.infer(x), want)
        assert np.array_equal(infer_graph(patched, x), want)


# -- the paper models ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name,scheme", [(m, "49kb") for m in PAPER] + [("mbv2-w0.35", "138kb")])
def test_paper_models_train_the_same_bits_patched(name, scheme, tmp_path):
    kw = dict(scheme=str(SHARED / "schemes" / f"{name}.{scheme}.json"), classes=10, lr=0.003)
    patched = tte.compile(shared_model(name), **kw)
    unpatched = tte.compile(shared_model(name), patch=False, **kw)
    node = patch_node(patched.train)
    assert node is not None and patch_node(unpatched.train) is None
    assert patch_node(patched.inference[0]) is not None and patch_node(unpatched.inference[0]) is None
    # the stage is the frozen layers at the front, the stem first; the int8 input dies in it
    assert patched.train.nodes[0].op == "quantize" and patched.train.nodes[1] is node
    assert node.attrs["body"].nodes[0].name == "first_conv/Conv"
    assert patched.memory.peak_sram < unpatched.memory.peak_sram
    assert_same_training(patched, unpatched, tmp_path, c_unpatched=name == "mcunet-5fps")


@pytest.mark.parametrize("name", PAPER)
def test_the_peak_drops_and_the_choice_is_reported(name):
    kw = dict(scheme=str(SHARED / "schemes" / f"{name}.49kb.json"), classes=10)
    patched = tte.compile(shared_model(name), **kw)
    unpatched = tte.compile(shared_model(name), patch=False, **kw)
    before, after = unpatched.memory, patched.memory
    # unpatched, the arena peaks at the stem: the int8 input and the stem's result alive at once
    assert before.graph.nodes[before.peak_step].name == "first_conv/Conv"
    assert after.peak_sram <= before.peak_sram - 30 * 1024, (after.peak_sram, before.peak_sram)
    assert after.trained_bytes == before.trained_bytes and after.optimizer_bytes == before.optimizer_bytes
    assert after.peak_sram == after.arena.size + after.trained_bytes + after.optimizer_bytes + after.scratch
    report = after.to_dict()["patch"]
    node = patch_node(patched.train)
    plan = node.attrs["plan"]
    assert report["start"] == "first_conv/Conv" and report["end"] == node.attrs["body"].nodes[-1].name
    # with the halo kept, bands of the first op's rows and, after them, as many as the last rows need to drain
    body = node.attrs["body"]
    assert report["halo"] == ("kept" if plan.carry else "recomputed")
    rows = body[body.nodes[0].output if plan.carry else node.output].shape[2]
    assert report["band_rows"] == plan.band_rows and (report["bands"] >= -(-rows // plan.band_rows) if plan.carry
                                                      else report["bands"] == -(-rows // plan.band_rows))
    assert report["extra_macs"] == plan.macs - plan.whole_macs > 0  # pw_dw's 1x1 expands kept rows again
    assert report["extra_macs_percent"] == round(100 * report["extra_macs"] / report["stage_macs"], 2)
    assert before.to_dict()["patch"] is None
    # the workspace is an arena buffer alive at the patch node only
    work = next(b for b in after.arena.buffers if b.name == node.outputs[1])
    assert work.start == work.end == 1 and work.size == plan.work_bytes
    # the log says what ends the stage and what was chosen, with the extra compute
    log = "\n".join(patched.pass_log)
    assert "patch_frozen_prefix: the frozen run from 'input_int8' has" in log and "saves a mask for backward" in log
    assert f"{plan.bands} bands of {plan.band_rows} row" in log and f"extra {report['extra_macs']:,} MACs" in log
    assert "patch_frozen_prefix" not in "\n".join(unpatched.pass_log)


def test_plan_json_and_explain_report_the_patch():
    model, scheme = shared_model("mbv2-w0.35"), SHARED / "schemes" / "mbv2-w0.35.49kb.json"
    out = run_cli("plan", model, "--scheme", scheme, "--classes", "10", "--sram", "1m", "--json")
    assert out.exit_code == 0, out.output
    data = json.loads(out.output)
    report = data.get("memory", data)
    assert report["patch"]["start"] == "first_conv/Conv" and report["patch"]["extra_macs"] > 0
    program = tte.compile(model, scheme=str(scheme), classes=10)
    assert report["peak_sram_bytes"] == program.memory.peak_sram
    out = run_cli("plan", model, "--scheme", scheme, "--classes", "10", "--sram", "1m", "--explain")
    assert out.exit_code == 0, out.output
    assert "patch_frozen_prefix: 'first_conv/Conv' .. " in out.output and "extra" in out.output


# -- small models: the band arithmetic ----------------------------------------------------------------------------


def small_model(path, height: int = 15, width: int = 11) -> None:
    """A channels-last int8 model whose front has what the pass takes: a SAME-padded stem of stride 2 (TFLite pads
    it asymmetrically), a depthwise conv, a ReLU, a 1x1 conv, an expansion and a 5x5 depthwise conv (fused into
    pw_dw) with a residual add, a strided VALID conv; then a depthwise conv, a pool and the classifier."""
    b = TFLiteBuilder(seed=3)
    x = b.input((1, height, width, 3))
    x = b.conv2d(x, 8, 3, stride=2, padding="SAME", activation="RELU6")
    x = b.depthwise_conv2d(x, 3, padding="SAME")
    x = b.relu(x, same_quant=False)  # a requantize
    x = b.conv2d(x, 6, 1)
    y = b.conv2d(x, 12, 1, activation="RELU6")
    y = b.depthwise_conv2d(y, 5, padding="SAME", activation="RELU6")
    y = b.conv2d(y, 6, 1)
    x = b.add(x, y)
    x = b.conv2d(x, 8, 3, stride=2, padding="VALID", activation="RELU")
    x = b.depthwise_conv2d(x, 3, padding="SAME", activation="RELU")
    x = b.mean(x, axes=(1, 2), keep_dims=False)
    b.softmax(b.fully_connected(x, 4))
    b.save(path)


@pytest.fixture(scope="module")
def small(tmp_path_factory):
    path = tmp_path_factory.mktemp("patch") / "small.tflite"
    small_model(path)
    return path


def stage_ends(g) -> list[str]:
    """Every op the frozen run may end at (those patch_stage takes)."""
    return [n.name for n in g.nodes if patch_stage(g, n.name, 1) is not None]


@pytest.mark.parametrize("carry", [False, True], ids=["halo-recomputed", "halo-kept"])
def test_small_model_every_stage_end_and_band_height(small, carry):
    """Reference: every stage end and band height (1, heights that leave a short last band, the whole height), the
    halo recomputed or kept between bands, trains the integers of the unpatched graph."""
    program = tte.compile(small, scheme="last-2", classes=4, patch=False)
    g = program.train
    ends = stage_ends(g)
    ops = {n.op for n in g.nodes[:12]}
    assert {"transpose", "conv", "pw_dw", "add", "requantize"} <= ops, ops
    assert len(ends) >= 5, ends
    x = samples(program, 1)[0]
    want = program._run(g, x, 1)
    tried = 0
    for end in ends:
        rows = g[next(n for n in g.nodes if n.name == end).output].shape[2]
        for h in sorted({1, 2, 3, rows - 1, rows} - {0}):
            patched = patch_stage(g, end, h, carry=carry)
            if patched is None:  # a band that reads only padding
                continue
            assert patch_node(patched).attrs["plan"].carry == carry
            patched.verify()
            got = program._run(patched, x, 1)
            for name in g.outputs + list(g.state_updates.values()):
                assert bits(got[name]) == bits(want[name]), (end, h, name)
            node = patch_node(patched)
            assert bits(got[node.output]) == bits(want[node.output]), (end, h)
            tried += 1
    assert tried >= 15


def test_the_result_over_the_input_is_checked(small):
    """A stage whose bands store every row of its result over input rows no later band reads writes the result in
    the input's bytes (one arena buffer, not two): the reference stores it there too, so the every-stage test above
    checks the claim on every plan that makes it.  A plan whose result would overwrite rows a later band reads does not
    make it, and forced to, computes other integers (the check is what keeps it exact)."""
    from dataclasses import replace

    program = tte.compile(small, scheme="last-2", classes=4, patch=False)
    g = program.train
    x = samples(program, 1)[0]
    want = program._run(g, x, 1)
    over, refused = [], []
    for end in stage_ends(g):
        for h in (1, 2, 4):
            for carry in (False, True):
                patched = patch_stage(g, end, h, carry=carry)
                if patched is None:
                    continue
                node = patch_node(patched)
                body, plan = node.attrs["body"], node.attrs["plan"]
                if body[node.output].nbytes <= body[body.inputs[0]].nbytes:
                    (over if plan.over_input else refused).append((patched, node))
    assert over and refused, (len(over), len(refused))
    for patched, node in over:  # the result's buffer is the input's; the arena oracle finds no clobber
        m = memory_report(patched)
        assert m.root[node.output] == m.root[node.inputs[0]]
        assert simulate_step(m.graph, m.arena, m.root) == []
    wrong = flagged = 0
    for patched, node in refused:
        node.attrs["plan"] = replace(node.attrs["plan"], over_input=True)
        got = program._run(patched, x, 1)
        wrong += bits(got[node.output]) != bits(want[node.output])
        m = memory_report(patched)
        flagged += any(f.kind == "clobbered while read" and f.reader == node.name
                       for f in simulate_step(m.graph, m.arena, m.root))
    assert wrong > 0 and flagged == len(refused)


@pytest.mark.parametrize("end,band_rows,carry", [("add", 3, False), ("add", 1, False), ("conv_2d_3", 5, False),
                                                 ("depthwise_conv_2d_1", 8, False), ("add", 1, True),
                                                 ("add", 2, True), ("depthwise_conv_2d_1", 3, True)])
def test_small_model_in_c(small, end, band_rows, carry, tmp_path):
    """C: a stage forced to end at ``end`` with bands of ``band_rows`` (the halo recomputed or kept) trains the bits
    of the reference and of the unpatched program (TFLite arithmetic: the add's and the convs' Q31 multipliers inside
    the stage)."""
    unpatched = tte.compile(small, scheme="last-2", classes=4, lr=0.05, patch=False)
    patched = tte.compile(small, scheme="last-2", classes=4, lr=0.05, patch=False)
    name = next(n.name for n in unpatched.train.nodes if n.name.startswith(end))
    patched.train = patch_stage(patched.train, name, band_rows, carry=carry)
    assert patched.train is not None and patch_node(patched.train).attrs["plan"].band_rows == band_rows
    assert patch_node(patched.train).attrs["plan"].carry == carry
    assert patch_node(patched.inference[0]) is not None  # inference mirrors the training step's stage
    assert_same_training(patched, unpatched, tmp_path, steps=4)


def test_the_pass_runs_on_a_larger_small_model(tmp_path):
    """Left to itself the pass patches the small model at 64x48 (the int8 input and the stem's result are its largest
    tensors), and the generated C reads: the band loop, a named pointer per band buffer, the table of rows."""
    path = tmp_path / "larger.tflite"
    small_model(path, 64, 48)
    patched = tte.compile(path, scheme="last-2", classes=4, lr=0.05)
    unpatched = tte.compile(path, scheme="last-2", classes=4, lr=0.05, patch=False)
    node = patch_node(patched.train)
    assert node is not None and patched.memory.peak_sram < unpatched.memory.peak_sram
    assert_same_training(patched, unpatched, tmp_path)
    c = (tmp_path / "patched" / "tte_model.c").read_text()
    plan = node.attrs["plan"]
    assert f"for (int32_t band = 0; band < {plan.bands}; band++) {{" in c
    assert "int8_t *const band_" in c and "tte_patch_rows_s8(" in c and "_rows[" in c
    assert max(len(line) for line in c.splitlines()) <= 120


def test_a_stage_covering_the_whole_frozen_prefix(small, tmp_path):
    """When the stage ends right before the first trained op, the frozen prefix is the quantize and the patch node:
    the cached prefix's frontier is the stage's result, and training from cached frontiers gives the same bits."""
    program = tte.compile(small, scheme="last-2", classes=4, lr=0.05, patch=False)
    g = program.train
    end = stage_ends(g)[-1]
    patched = patch_stage(g, end, 2)
    node = patch_node(patched)
    program.train = patched
    train_prefix, _ = cached_prefixes(program)
    assert train_prefix.cut == 2 and train_prefix.frontier == (node.output,)
    first_trained = patched.nodes[2]
    assert set(first_trained.inputs) & set(patched.state) or first_trained.attrs.get("save_mask")
    whole, cached = build_program(program, str(tmp_path / "whole")), build_program(program, str(tmp_path / "cached"))
    rng = np.random.default_rng(3)
    inputs = rng.integers(-128, 128, (4, *whole.in_shape), dtype=np.int8)
    frontiers = [cached.prefix(q) for q in inputs]
    for i, (q, f) in enumerate(zip(inputs, frontiers)):
        assert bits(np.float32(whole.train_step_s8(q, i % 4))) == bits(np.float32(cached.train_step_cached(f, i % 4)))
    a, b = whole.state(), cached.state()
    assert all(bits(a[k]) == bits(b[k]) for k in a)


def test_the_off_switch_and_what_ends_the_run(small):
    program = tte.compile(small, scheme="last-2", classes=4)
    log = "\n".join(program.pass_log)
    assert "patch_frozen_prefix: the frozen run from" in log and "ends where" in log
    with pytest.raises(tte.TteError, match="patch"):
        tte.compile(small, scheme="last-2", classes=4, patch="no")
    off = tte.compile(small, scheme="last-2", classes=4, patch=False)
    assert patch_node(off.train) is None and memory_report(off.train).to_dict()["patch"] is None
