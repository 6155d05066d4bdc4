"""A streamed input (``stream_input=True``, `tte plan/compile --stream-input`): the patched stage reads the int8 input
in rows from a row source the caller gives, and the arena holds no input.

* The paper's three models fit 64 KB with weights trained (`--scheme auto`), and train the bits of the unpatched
  program, in the reference and in C.
* The band arithmetic: every stage end and band height of a channel-planar (ONNX) and a channels-last (TFLite) model
  gives the integers of the stage run whole; the arena oracle finds every value where the plan put it.
* The row source's contract in C: each row once, top down, channel c at ``dst + c * channel_stride``; a failing
  source fails the call and changes nothing; the demo reads samples row by row from a file or its generator.
* What cannot stream says so, on one line.
"""

from __future__ import annotations

import ctypes
import json
import subprocess

import numpy as np
import pytest
from arena_oracle import simulate_step
from conftest import ROOT, SHARED_MODELS, run_cli, shared_model
from test_patch import assert_same_training, bits, patch_node, samples, small_model
from test_plan import assert_auto_is_maximal

import tte
from tte.codegen import build_program
from tte.codegen.project import DEMO_STEPS, demo_inputs
from tte.errors import TteError
from tte.passes.memory import memory_report
from tte.passes.patch import StreamError, patch_stage
from tte.plan import BudgetError, plan
from tte.reference import semantics as sem

EXAMPLE = ROOT / "examples" / "tiny_cnn.int8.onnx"
ROW_SOURCE = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_void_p, ctypes.c_int32, ctypes.POINTER(ctypes.c_int8),
                              ctypes.c_int32)


@pytest.fixture(scope="module")
def at_64k():
    """--scheme auto at 64 KB with the input streamed, per paper model (planned once for the module)."""
    return {name: plan(shared_model(name), sram=64 * 1024, scheme="auto", classes=10, stream_input=True)
            for name in SHARED_MODELS}


@pytest.mark.parametrize("name", SHARED_MODELS)
def test_paper_models_fit_64k_with_weights(name, at_64k, figures):
    """Issue 15: at 64 KB (55 KB for the step, 9 KB kept) auto trains weights of every paper model, the input
    streamed; without streaming nothing fits, and the error names --stream-input."""
    p = at_64k[name]
    assert p.fits and p.memory.input_streamed and p.to_dict()["input_streamed"] is True
    weights = [q for q, param in p.program.params.items() if param.kind == "weight"]
    assert len(weights) > 1, weights  # the classifier's and at least one more
    node = patch_node(p.program.train)
    assert node.attrs["plan"].streamed and node.attrs["plan"].carry
    x = p.program.train.nodes[0].output
    assert x not in p.memory.root  # no input in the arena
    figures(f"--scheme auto --stream-input {name} at 64k: {p.program.plan.scheme.name}, peak SRAM "
            f"{p.memory.peak_sram / 1024:.1f} KB")
    assert_auto_is_maximal(shared_model(name), 64 * 1024, p, classes=10, stream_input=True)
    with pytest.raises(BudgetError, match="--stream-input"):
        plan(shared_model(name), sram=64 * 1024, scheme="auto", classes=10)


@pytest.mark.parametrize("name", SHARED_MODELS)
def test_paper_models_train_the_same_bits_streamed(name, at_64k, tmp_path):
    """The 64 KB programs: streamed reference, unpatched reference and the streamed C build train the same bits;
    the arena oracle finds every value of the step where the plan put it."""
    scheme = at_64k[name].program.plan.scheme
    streamed = tte.compile(shared_model(name), scheme=scheme, classes=10, lr=0.003, stream_input=True)
    unpatched = tte.compile(shared_model(name), scheme=scheme, classes=10, lr=0.003, patch=False)
    m = streamed.memory
    assert simulate_step(m.graph, m.arena, m.root) == []
    assert patch_node(streamed.inference[0]).attrs["plan"].streamed  # inference streams too
    assert_same_training(streamed, unpatched, tmp_path, steps=2)


# -- the band arithmetic ------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def small(tmp_path_factory):
    path = tmp_path_factory.mktemp("stream") / "small.tflite"
    small_model(path, height=17, width=11)
    return path


@pytest.mark.parametrize("model", ["small", "example"])
def test_every_stage_end_and_band_height_streamed(model, small, request):
    """Reference: every stage end and band height (one row, heights that leave a short last band, the whole height)
    with the input streamed trains the integers of the unpatched graph, on a channels-last TFLite model (its
    transpose left out of the stage: the rows arrive channel-planar) and a channel-planar ONNX one; no input
    in the arena, and the oracle agrees."""
    path, scheme, classes = (small, "last-2", 4) if model == "small" else (EXAMPLE, "last-3", 4)
    program = tte.compile(path, scheme=scheme, classes=classes, patch=False)
    g = program.train
    x = samples(program, 1)[0]
    want = program._run(g, x, 1)
    tried = 0
    for node in g.nodes:
        if patch_stage(g, node.name, 1, carry=True, stream=True) is None:
            continue
        rows = g[node.output].shape[2]
        for h in sorted({1, 2, 3, rows - 1, rows} - {0}):
            patched = patch_stage(g, node.name, h, carry=True, stream=True)
            assert patched is not None and patch_node(patched).attrs["plan"].streamed
            patched.verify()
            got = program._run(patched, x, 1)
            for name in g.outputs + list(g.state_updates.values()):
                assert bits(got[name]) == bits(want[name]), (node.name, h, name)
            m = memory_report(patched)
            assert g.nodes[0].output not in m.root
            assert simulate_step(m.graph, m.arena, m.root) == [], (node.name, h)
            tried += 1
    assert tried >= 6, tried


@pytest.mark.parametrize("model", ["small", "example"])
def test_streamed_c_trains_the_same_bits(model, small, tmp_path):
    """C: the pass's own streamed plan, channels last and channel-planar, trains the bits of the unpatched program."""
    path, scheme = (small, "last-2") if model == "small" else (EXAMPLE, "last-3")
    streamed = tte.compile(path, scheme=scheme, classes=4, lr=0.05, stream_input=True)
    unpatched = tte.compile(path, scheme=scheme, classes=4, lr=0.05, patch=False)
    assert patch_node(streamed.train).attrs["plan"].streamed
    assert_same_training(streamed, unpatched, tmp_path, steps=3)


# -- the row source in C ------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def example_c(tmp_path_factory):
    program = tte.compile(EXAMPLE, scheme="last-3", classes=4, lr=0.05, stream_input=True)
    native = build_program(program, str(tmp_path_factory.mktemp("rows")))
    lib = native.lib
    lib.tte_train_step_rows.argtypes = [ROW_SOURCE, ctypes.c_void_p, ctypes.c_int32, ctypes.c_void_p]
    lib.tte_infer_rows.argtypes = [ROW_SOURCE, ctypes.c_void_p, ctypes.c_void_p]
    lib.tte_predict_rows.argtypes = [ROW_SOURCE, ctypes.c_void_p]
    lib.tte_predict_rows.restype = ctypes.c_int32
    return program, native


def rows_of(q: np.ndarray, asked: list[int], fail_at: int | None = None):
    """A row source over ``q`` (1, C, H, W) that logs each row asked and fails at row ``fail_at``."""
    _, c, _, w = q.shape

    def source(context, row, dst, channel_stride):
        asked.append(row)
        if row == fail_at:
            return 7
        for ch in range(c):
            ctypes.memmove(ctypes.addressof(dst.contents) + ch * channel_stride, q[0, ch, row].ctypes.data, w)
        return 0

    return ROW_SOURCE(source)


def test_row_source_contract(example_c):
    """Each row once, from the top down; the rows a source gives train the bits of the same input given whole
    (tte_train_step_s8) and of the reference; inference and the top-1 class from rows equal theirs."""
    program, native = example_c
    lib = native.lib
    shape = program.forward[program.forward.inputs[0]].shape
    q = np.random.default_rng(3).integers(-128, 128, shape).astype(np.int8)
    before = native.state()
    asked: list[int] = []
    loss = np.zeros(1, np.float32)
    assert lib.tte_train_step_rows(rows_of(q, asked), None, 2, loss.ctypes.data) == 0
    assert asked == list(range(shape[2]))
    after = native.state()
    # the same step from the whole input, in a fresh build of the same state
    qin = program.forward[program.forward.nodes[0].output].quant
    x = sem.dequantize(q, qin.scale, qin.zero_point).astype(np.float32)
    assert np.array_equal(sem.quantize(x, float(qin.scale), int(qin.zero_point)), q)
    want = program.train_step(x, 2)
    assert bits(np.float32(want)) == bits(loss[0])
    for k, v in program.state.items():
        assert bits(v) == bits(after[k]), k
    assert any(bits(before[k]) != bits(after[k]) for k in before)
    logits = np.zeros(program.forward[program.forward.outputs[0]].shape, np.float32)
    asked.clear()
    assert lib.tte_infer_rows(rows_of(q, asked), None, logits.ctypes.data) == 0
    assert asked == list(range(shape[2])) and np.array_equal(logits, program.infer(x))
    assert lib.tte_predict_rows(rows_of(q, []), None) == int(np.argmax(program.infer(x)))
    assert np.array_equal(native.infer_s8(q), logits)


def test_a_failing_row_source_fails_the_call_and_changes_nothing(example_c):
    """A source that fails (non-zero) fails the step before any update: -1, the same state and step count; the
    next step runs; a NULL source is refused."""
    program, native = example_c
    lib = native.lib
    shape = program.forward[program.forward.inputs[0]].shape
    q = np.random.default_rng(4).integers(-128, 128, shape).astype(np.int8)
    before, steps = native.state(), lib.tte_steps()
    asked: list[int] = []
    loss = np.zeros(1, np.float32)
    assert lib.tte_train_step_rows(rows_of(q, asked, fail_at=5), None, 1, loss.ctypes.data) == -1
    assert asked == list(range(6))  # asked no further
    assert lib.tte_steps() == steps and all(bits(v) == bits(native.state()[k]) for k, v in before.items())
    assert lib.tte_predict_rows(rows_of(q, [], fail_at=0), None) == -1
    assert lib.tte_train_step_rows(ROW_SOURCE(), None, 1, loss.ctypes.data) == -1
    assert lib.tte_train_step_rows(rows_of(q, []), None, 1, loss.ctypes.data) == 0
    assert lib.tte_steps() == steps + 1


# -- the command line, the demo -----------------------------------------------------------------------------------


def test_plan_json_and_errors(tmp_path):
    """`tte plan --stream-input --json` says the input is streamed; a scheme that trains the stem, a plan with
    nothing to stream, get one line each, exit 1."""
    r = run_cli("plan", EXAMPLE, "--scheme", "last-3", "--classes", "4", "--stream-input", "--json")
    assert r.exit_code == 0, r.output
    d = json.loads(r.stdout)
    assert d["input_streamed"] is True and d["patch"]["input"] == "streamed" and d["patch"]["halo"] == "kept"
    r = run_cli("plan", EXAMPLE, "--scheme", "full", "--classes", "4", "--stream-input")
    assert r.exit_code == 1 and "Traceback" not in r.output
    assert r.stderr.startswith("error: cannot stream the input") and len(r.stderr.strip().splitlines()) == 1
    assert "'conv0' saves a mask for backward" in r.stderr and "not the full update" in r.stderr, r.stderr
    r = run_cli("plan", EXAMPLE, "--scheme", "last-3", "--classes", "4")
    assert r.exit_code == 0 and json.loads(run_cli("plan", EXAMPLE, "--scheme", "last-3", "--classes", "4",
                                                   "--json").stdout)["input_streamed"] is False
    r = run_cli("plan", EXAMPLE, "--scheme", "full", "--classes", "4", "--sram", "30k")  # no stage: no hint
    assert r.exit_code == 1 and "KB budget" in r.stderr and "--stream-input" not in r.stderr
    with pytest.raises(StreamError, match="patch=False"):
        tte.compile(EXAMPLE, scheme="last-3", classes=4, stream_input=True, patch=False)
    with pytest.raises(TteError, match="stream_input"):
        tte.compile(EXAMPLE, scheme="last-3", classes=4, stream_input="yes")


def demo_losses(out) -> list[str]:
    p = subprocess.run(["make", "-s", "-C", str(out), "run"], capture_output=True, text=True)
    assert p.returncode == 0, p.stderr[-2000:]
    return [line.split()[4] for line in p.stdout.splitlines() if line.startswith("step")]


def reference_demo_losses(program) -> list[str]:
    """The losses the reference gives on the demo's inputs (demo_inputs: the values of the model's input layout)."""
    q = program.forward[program.forward.nodes[0].output].quant
    shape = program.forward[program.forward.inputs[0]].shape
    classes = program.forward[program.forward.outputs[0]].shape[1]
    out = []
    for s, xq in enumerate(demo_inputs(DEMO_STEPS, int(np.prod(shape)))):
        x = sem.dequantize(xq, q.scale, q.zero_point).reshape(shape).astype(np.float32)
        out.append(f"({np.float32(program.train_step(x, s % classes)).view(np.uint32):08x})")
    return out


def test_demo_reads_channels_last_rows(small, tmp_path):
    """A channels-last model's demo: its generator's rows (every channel of a pixel consecutive in demo_inputs) train
    the losses of the reference."""
    out = tmp_path / "rows"
    assert run_cli("compile", small, "--scheme", "last-2", "--classes", "4", "--stream-input", "-o", out).exit_code == 0
    assert "TTE_INPUT_CHANNELS_LAST" in (out / "tte_model.h").read_text()
    assert demo_losses(out) == reference_demo_losses(tte.compile(small, scheme="last-2", classes=4,
                                                                 stream_input=True))


def test_compile_and_demo_read_rows(tmp_path):
    """`tte compile --stream-input`: the header declares the row-source API and no input buffer; the demo trains on
    its generator's rows the losses of the reference on demo_inputs, and on a sample file, row by row, the epoch
    of the same model built with the input in the arena, bit for bit."""
    out = tmp_path / "rows"
    r = run_cli("compile", EXAMPLE, "--scheme", "last-3", "--classes", "4", "--stream-input", "-o", out)
    assert r.exit_code == 0, r.output
    header = (out / "tte_model.h").read_text()
    assert "tte_train_step_rows" in header and "TTE_INPUT_STREAMED" in header and "tte_input_buffer" not in header
    assert demo_losses(out) == reference_demo_losses(tte.compile(EXAMPLE, scheme="last-3", classes=4,
                                                                 stream_input=True))
    # a sample file, read row by row, against the arena build reading it whole
    rng = np.random.default_rng(0)
    npz = tmp_path / "d.npz"
    np.savez(npz, x=rng.integers(0, 255, (12, 32, 32, 3)).astype(np.uint8), y=rng.integers(0, 4, 12))
    data = tmp_path / "d.bin"
    assert run_cli("data", "pack", npz, "--model", EXAMPLE, "-o", data, "--split", 8).exit_code == 0
    whole = tmp_path / "whole"
    assert run_cli("compile", EXAMPLE, "--scheme", "last-3", "--classes", "4", "-o", whole).exit_code == 0
    lines = []
    for d in (out, whole):
        p = subprocess.run(["make", "-s", "-C", str(d), "run", f"DATA={data}", "EPOCHS=2"], capture_output=True,
                           text=True)
        assert p.returncode == 0, p.stdout[-2000:] + p.stderr[-2000:]
        lines.append([line for line in p.stdout.splitlines() if line.startswith("epoch")])
    assert len(lines[0]) == 2 and lines[0] == lines[1]


# -- what the review found ----------------------------------------------------------------------------------------


def test_auto_scheme_with_a_streamed_input_never_trains_the_stem():
    """--scheme auto with the input streamed at a budget where the full update (or every bias) would fit: the schemes
    that train the layers the input feeds count as not fitting, and auto picks the best of the rest."""
    p = plan(EXAMPLE, sram=512 * 1024, scheme="auto", classes=4, stream_input=True)
    assert p.fits and p.memory.input_streamed
    assert "does not fit: cannot stream the input" in "\n".join(p.auto_log)
    n = len(p.program.forward.nodes)
    assert p.program.plan.scheme.bias_last < n and not p.program.plan.scheme.all_weights


def test_a_cube_shaped_channels_last_input(tmp_path):
    """A channels-last input whose H, W and C are equal: the fetch still transposes (the plan says so, not the
    shapes), bit for bit in the reference and in C."""
    from tflite_builder import TFLiteBuilder

    b = TFLiteBuilder(seed=1)
    x = b.input((1, 6, 6, 6))
    x = b.conv2d(x, 4, 3, stride=1, padding="SAME", activation="RELU6")
    x = b.depthwise_conv2d(x, 3, padding="SAME", activation="RELU6")
    for _ in range(3):
        x = b.conv2d(x, 4, 1, activation="RELU")
    x = b.mean(x, axes=(1, 2), keep_dims=False)
    b.softmax(b.fully_connected(x, 4))
    b.save(tmp_path / "cube.tflite")
    streamed = tte.compile(tmp_path / "cube.tflite", scheme="last-2", classes=4, lr=0.05, stream_input=True)
    unpatched = tte.compile(tmp_path / "cube.tflite", scheme="last-2", classes=4, lr=0.05, patch=False)
    assert patch_node(streamed.train).attrs["plan"].channels_last
    assert_same_training(streamed, unpatched, tmp_path, steps=2)
    assert "TTE_INPUT_CHANNELS_LAST" in (tmp_path / "patched" / "tte_model.h").read_text()


def test_an_input_also_read_after_the_stage_cannot_stream(tmp_path):
    """The quantized input read through a view by the stage and directly by a later op (a residual add) has to be
    held: streaming it is refused on one line, naming the other reader."""
    import onnx

    from tte.zoo import INPUT_NAME, NUM_CLASSES, GraphBuilder, quantize

    g = GraphBuilder("alias", seed=1, input_shape=(1, 3, 12, 12))
    v = g.reshape(INPUT_NAME, [1, 3, 12, 12])
    y = g.relu(g.conv(g.relu(g.conv(v, 3, 3, 3)), 3, 3, 3))
    y = g.add(y, INPUT_NAME)
    for _ in range(3):
        y = g.relu(g.conv(y, 3, 3, 1, 1, 0))
    onnx.save(g.finish(g.gemm(g.flatten(g.global_avg_pool(y)), 3, NUM_CLASSES), (1, NUM_CLASSES)),
              str(tmp_path / "f.onnx"))
    path = quantize(tmp_path / "f.onnx", tmp_path / "q.onnx")
    assert tte.compile(str(path), scheme="last-2", classes=4).memory.input_streamed is False
    with pytest.raises(StreamError, match="is also read by 'add"):
        tte.compile(str(path), scheme="last-2", classes=4, stream_input=True)


def test_a_one_op_stage_streams(tmp_path):
    """When only the stem is frozen, the stage is the stem alone, and it streams."""
    scheme = {"bias_update_last": 9, "weight_update": {}}
    streamed = tte.compile(EXAMPLE, scheme=scheme, classes=4, lr=0.05, stream_input=True)
    node = patch_node(streamed.train)
    assert node is not None and len(node.attrs["body"].nodes) == 1 and node.attrs["plan"].streamed
    unpatched = tte.compile(EXAMPLE, scheme=scheme, classes=4, lr=0.05, patch=False)
    assert_same_training(streamed, unpatched, tmp_path, steps=2)
