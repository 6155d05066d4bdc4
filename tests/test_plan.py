"""`tte plan`: the memory report, budgets, --scheme auto, and the arena planner on real training graphs."""

from __future__ import annotations

import json
import re
import time
from types import SimpleNamespace

import pytest
from arena_oracle import Fault, lifetime_problems, live_bytes, overlap_problems, simulate_step
from click.testing import CliRunner
from conftest import ROOT, SHARED, SHARED_MODELS, ZOO_MODELS, shared_model

import tte
from tte.autodiff.scheme import SparseScheme, weighted_layers
from tte.cli import main
from tte.codegen.c_train import emit_program
from tte.codegen.project import RUNTIME_RESERVE
from tte.frontend import load
from tte.passes.arena import Buffer, check_overlaps, plan_arena
from tte.passes.memory import graph_scratch, liveness, memory_report
from tte.passes.training import PIPELINE
from tte.plan import AUTO_RULE, RATIOS, SPEED_SCRATCH_CAP, auto_layers, plan

EXAMPLE = ROOT / "examples" / "tiny_cnn.int8.onnx"
LARGEST = {"mbv2-w0.35": "138kb", "mcunet-5fps": "148kb", "proxyless-w0.3": "148kb"}
PAPER_PLANS = [(name, scheme) for name in SHARED_MODELS for scheme in
               ["full", "bias-only"] + sorted(p.name for p in (SHARED / "schemes").glob(f"{name}.*.json"))]


def run(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


def assert_sound(g, arena):
    """The arena plan of the scheduled training graph ``g``, by the independent oracles: no two buffers
    alive at one step share a byte, offsets are 4-byte aligned (float arrays), the lower bound is the live
    bytes' peak, every buffer is alive whenever the step touches it, and a simulated step finds every value
    it reads intact."""
    assert overlap_problems(arena, alignment=4) == []
    assert arena.lower_bound == max(live_bytes(arena.buffers, 4).values(), default=0) <= arena.size
    _, root = liveness(g)
    assert lifetime_problems(g, arena, root) == []
    faults = simulate_step(g, arena, root)
    assert faults == [], "\n".join(map(str, faults[:5]))


@pytest.mark.parametrize("name", SHARED_MODELS)
@pytest.mark.parametrize("scheme", ["largest", "full"])
def test_plans_are_sound_and_near_the_lower_bound(name, scheme):
    scheme = SHARED / "schemes" / f"{name}.{LARGEST[name]}.json" if scheme == "largest" else scheme
    p = plan(shared_model(name), sram=256 * 1024, scheme=scheme, classes=10)
    assert check_overlaps(p.memory.arena) == []
    assert_sound(p.program.train, p.memory.arena)
    assert p.memory.arena.size <= 1.05 * p.memory.arena.lower_bound
    # every buffer of the graph is in the arena, with the lifetime liveness gives it
    buffers, roots = liveness(p.program.train)
    assert {b.name for b in buffers} == set(p.memory.arena.offsets)
    assert set(roots) >= {n.outputs[0] for n in p.program.train.nodes if n.op == "conv"}


def test_report_accounts_for_every_trained_byte():
    p = plan(shared_model("mbv2-w0.35"), sram=256 * 1024, scheme=SHARED / "schemes" / "mbv2-w0.35.49kb.json",
             classes=10)
    m = p.memory
    prog = p.program
    expected = 0
    for name, param in prog.params.items():
        v = prog.train[name]
        expected += v.nbytes // v.shape[param.axis] * param.channels
    assert m.trained_bytes == expected
    # peak SRAM, recomputed part by part without the report: the arena's reach by the plan's offsets
    # (sound by the oracles), the trained slices, the other state (optimizer), the kernels' scratch
    assert_sound(prog.train, m.arena)
    arena = max(m.arena.offsets[b.name] + -(-b.size // 4) * 4 for b in m.arena.buffers)
    optimizer = sum(prog.train[n].nbytes for n in prog.train.state if n not in prog.params)
    assert optimizer == 4  # the step counter
    assert m.peak_sram == arena + expected + optimizer + kernel_scratch(prog.train)
    # a partially trained weight keeps its frozen part in flash
    partial = [n for n, q in prog.params.items() if q.kind == "weight" and q.channels < prog.train[n].shape[q.axis]]
    assert partial and all(n in m.frozen_flash for n in partial)


def test_reordering_and_fusion_shrink_the_arena():
    scheme = SHARED / "schemes" / "mbv2-w0.35.99kb.json"
    raw = memory_report(tte.compile(shared_model("mbv2-w0.35"), scheme=scheme, classes=10, optimize=False).train)
    opt = memory_report(tte.compile(shared_model("mbv2-w0.35"), scheme=scheme, classes=10).train)
    assert opt.arena.size < 0.5 * raw.arena.size
    assert_sound(raw.graph, raw.arena)
    assert_sound(opt.graph, opt.arena)


def test_plan_cli_reports_and_json_keys():
    r = run("plan", EXAMPLE, "--sram", "256k", "--scheme", "full")
    assert r.exit_code == 0, r.output
    assert "SRAM: peak" in r.stdout and "flash: total" in r.stdout
    r = run("plan", EXAMPLE, "--sram", "256k", "--scheme", "full", "--json", "--explain")
    d = json.loads(r.stdout)
    for key in ("peak_sram_bytes", "arena_bytes", "arena_lower_bound_bytes", "flash_bytes", "passes", "fits"):
        assert key in d
    assert d["fits"] and d["arena_bytes"] >= d["arena_lower_bound_bytes"]


def test_plan_that_does_not_fit_says_by_how_much():
    r = run("plan", shared_model("mbv2-w0.35"), "--sram", "128k", "--scheme", "full", "--classes", "10")
    assert r.exit_code == 1 and "Traceback" not in r.output
    err = r.stderr.strip()
    assert len(err.splitlines()) == 1
    assert "over the 128.0 KB budget" in err and "largest: arena" in err and "trained parameters" in err


def test_flash_budget():
    r = run("plan", shared_model("mcunet-5fps"), "--sram", "1m", "--flash", "256k", "--scheme", "bias-only")
    assert r.exit_code == 1 and "of flash" in r.stderr and "over the 256.0 KB budget" in r.stderr


def step_ups(model, p, **options) -> dict[str, SparseScheme]:
    """The schemes one step beyond --scheme auto's choice (plan ``p``), each of which it tried and must have found
    not to fit: one more bias layer; each first-choice layer (the last 8 1x1 convs that feed a depthwise conv) not
    trained at 1/8 of its channels, or raised to the next ratio; once every bias trains, the same for every other
    layer."""
    scheme = p.program.plan.scheme
    layers, _ = weighted_layers(load(model))
    n = len(layers)
    b, weights = scheme.bias_last, dict(scheme.weights)
    first, others = auto_layers(load(model))
    ups = {}
    if b < n:
        ups[f"biases of the last {b + 1} layers"] = SparseScheme("up", b + 1, weights)
    for i in first + (others if b == n else []):
        r = weights.get(i, 0)
        if r < 1:
            nxt = RATIOS[0] if r == 0 else RATIOS[RATIOS.index(r) + 1]
            ups[f"layer {i} at {nxt}"] = SparseScheme("up", max(b, n - i), {**weights, i: nxt})
    return ups


def assert_auto_is_maximal(model, budget: int, p=None, **options) -> SparseScheme:
    """--scheme auto at ``budget`` bytes (its plan ``p``, or made here), checked against plans made directly: the
    scheme is of auto's family (weights only on its first choices unless every bias trains, published ratios, every
    weight-trained layer's bias trained); it fits by the figures `tte plan` prints, and planned again from its
    published form (scheme_json) it is the same program; and no single step up (one more bias, one weight layer more
    or at the next ratio) fits."""
    p = p or plan(model, sram=budget, scheme="auto", **options)
    scheme = p.program.plan.scheme
    assert p.fits and p.sram_needed == p.memory.peak_sram + RUNTIME_RESERVE <= budget
    assert 0 < p.auto_plans <= 45, p.auto_plans  # each a full compile and plan: auto stays fast
    again = plan(model, sram=budget, scheme=p.to_dict()["scheme_json"], **options)
    assert again.fits and again.memory.peak_sram == p.memory.peak_sram
    assert again.program.fingerprint == p.program.fingerprint
    assert_sound(again.program.train, again.memory.arena)
    if scheme.all_weights:
        return scheme
    g = load(model)
    n = len(weighted_layers(g)[0])
    first, _ = auto_layers(g)
    assert set(scheme.weights.values()) <= set(RATIOS)
    assert all(i >= n - scheme.bias_last for i in scheme.weights)
    if scheme.bias_last < n:
        assert set(scheme.weights) <= set(first)
    for what, up in step_ups(model, p, **options).items():
        bigger = plan(model, sram=budget, scheme=up, **options)
        assert not bigger.fits, f"{what} fits too ({bigger.sram_needed:,} B of {budget:,} B)"
    return scheme


@pytest.mark.parametrize("name", SHARED_MODELS)
@pytest.mark.parametrize("budget", [256, 128])
def test_auto_scheme_fits(name, budget, figures):
    t = time.perf_counter()
    p = plan(shared_model(name), sram=budget * 1024, scheme="auto", classes=10)
    seconds = time.perf_counter() - t
    figures(f"--scheme auto {name} at {budget}k: {p.program.plan.scheme.name}, peak SRAM "
            f"{p.memory.peak_sram / 1024:.1f} KB ({p.auto_plans} plans, {seconds:.1f} s)")
    scheme = assert_auto_is_maximal(shared_model(name), budget * 1024, p, classes=10)
    assert scheme.bias_last > 0
    if budget == 256:  # the published schemes' choice at their largest budgets: the last 8 blocks' first 1x1 convs
        first, _ = auto_layers(load(shared_model(name)))
        assert sorted(scheme.weights) == sorted(first) and min(scheme.weights.values()) >= 0.125


@pytest.mark.parametrize("name", SHARED_MODELS)
def test_auto_scheme_at_96k_is_maximal(name, figures):
    p = plan(shared_model(name), sram=96 * 1024, scheme="auto", classes=10)
    figures(f"--scheme auto {name} at 96k: {p.program.plan.scheme.name}, peak SRAM {p.memory.peak_sram / 1024:.1f} KB")
    assert_auto_is_maximal(shared_model(name), 96 * 1024, p, classes=10)


@pytest.mark.parametrize("name", SHARED_MODELS)
def test_auto_scheme_trains_weights_at_96k(name):
    """Issue 15: at 96 KB (87 KB for the step, 9 KB kept), auto trains weights, not only biases."""
    p = plan(shared_model(name), sram=96 * 1024, scheme="auto", classes=10)
    trained = [q for q, param in p.program.params.items() if param.kind == "weight"]
    assert len(trained) > 1, trained  # the classifier's weight and at least one more


# at 64 KB the paper's models fit with the input streamed: tests/test_stream.py


@pytest.mark.parametrize(("budget", "kind"), [(256, "full"), (80, "every bias, other weights too"),
                                              (44, "some biases, first-choice weights"), (20, "some biases only")])
def test_auto_scheme_is_maximal_on_the_example(budget, kind):
    """tiny_cnn (10 layers besides the classifier; the full update needs about 101 KB plus the 9 KB reserve; its
    first choices are the 1x1 convs 7, 4 and 1, which feed depthwise convs): the full update where it fits, then
    schemes that stop short in the first choices' ratios, in the biases, or in both."""
    scheme = assert_auto_is_maximal(EXAMPLE, budget * 1024)
    first, _ = auto_layers(load(EXAMPLE))
    if kind == "full":
        assert scheme.all_weights, scheme
        return
    b, weights = scheme.bias_last, set(scheme.weights)
    assert {"every bias, other weights too": b == 10 and weights > set(first),
            "some biases, first-choice weights": 0 < b < 10 and weights and weights <= set(first),
            "some biases only": 0 < b < 10 and not weights}[kind], scheme


def test_auto_scheme_explains_its_steps():
    """--explain lists what each step of --scheme auto tried; --json gives the choice as a scheme file, which
    `tte plan --scheme FILE` plans to the same figures."""
    r = run("plan", EXAMPLE, "--sram", "44k", "--explain")
    assert r.exit_code == 0, r.output
    steps = [line for line in r.stdout.splitlines() if line.startswith("auto: ")]
    assert steps[0] == f"auto: {AUTO_RULE}"
    assert steps[1].startswith("auto: the full update: does not fit") and "auto: the classifier alone: fits" in steps[2]
    assert any(re.match(r"auto: layer 7 \(\S+\) weights at 1/8: fits", line) for line in steps), steps
    assert any("does not fit" in line for line in steps) and steps[-1].endswith("plans)")


def test_auto_choice_replans_to_the_figure_plan_prints(tmp_path):
    r = run("plan", EXAMPLE, "--sram", "44k", "--classes", "4", "--json")
    assert r.exit_code == 0, r.output
    d = json.loads(r.stdout)
    assert d["fits"] and d["sram_needed_bytes"] <= 44 * 1024 and d["auto_plans"] > 1
    path = tmp_path / "auto.json"
    path.write_text(json.dumps(d["scheme_json"]))
    again = json.loads(run("plan", EXAMPLE, "--sram", "44k", "--classes", "4", "--json", "--scheme", path).stdout)
    for key in ("peak_sram_bytes", "sram_needed_bytes", "flash_bytes", "arena_bytes", "trained"):
        assert again[key] == d[key], key


def test_auto_scheme_explains_an_impossible_budget():
    r = run("plan", shared_model("mbv2-w0.35"), "--sram", "24k", "--classes", "10")
    assert r.exit_code == 1 and "Traceback" not in r.output
    err = r.stderr.strip()
    assert len(err.splitlines()) == 1
    assert "no scheme fits: even training only the classifier needs" in err and "largest: arena" in err


def test_bad_sizes_and_schemes():
    r = run("plan", EXAMPLE, "--sram", "lots")
    assert r.exit_code == 1 and "--sram 'lots' is not a size" in r.stderr
    r = run("plan", EXAMPLE, "--scheme", "nope.json")
    assert r.exit_code == 1 and "cannot read scheme file" in r.stderr


def test_timeline_and_plot(tmp_path):
    r = run("plan", EXAMPLE, "--scheme", "last-2", "--timeline")
    assert r.exit_code == 0 and "legend: A=" in r.stdout
    pytest.importorskip("matplotlib")
    out = tmp_path / "arena.png"
    r = run("plan", EXAMPLE, "--scheme", "last-2", "--plot", out)
    assert r.exit_code == 0 and out.read_bytes()[:4] == b"\x89PNG"


def test_memory_accounting_matches_a_hand_count():
    """tiny_cnn, classifier only (a forward pass and the head's update): the arena peak, by hand, with the frozen
    prefix run whole (patch=False) and band by band (tte.passes.patch)."""
    scheme = {"bias_update_last": 0, "weight_update": {}}
    m = plan(EXAMPLE, sram=256 * 1024, scheme=scheme).memory
    # patched: the peak is the patch node (conv0 .. conv6, its line buffers kept between bands), where the int8
    # input 3x32x32 = 3072 B, the stage's result 24x8x8 = 1536 B, the workspace of its band buffers and the int32
    # label are alive
    node = m.graph.nodes[m.peak_step]
    assert node.op == "patch" and m.to_dict()["patch"]["end"] == "conv6" and node.attrs["plan"].carry
    assert m.arena.lower_bound == m.arena.size == 3072 + 1536 + node.attrs["plan"].work_bytes + 4
    assert m.peak_sram == m.arena.size + 10 * 24 + 10 * 4 + 4 + m.scratch
    assert_sound(m.graph, m.arena)
    p = plan(EXAMPLE, sram=256 * 1024, scheme=scheme, patch=False)
    m = p.memory
    # at conv3 (block 1's projection): its input, the fused pw+dw output 48x16x16 = 12288 B; its output
    # 16x16x16 = 4096 B; the block's input 16x16x16 = 4096 B, kept for the residual add; the int32 label
    assert m.graph.nodes[m.peak_step].name == "conv3"
    assert m.arena.lower_bound == m.arena.size == 12288 + 4096 + 4096 + 4
    head_w, head_b = 10 * 24, 10 * 4
    assert m.trained_bytes == head_w + head_b
    assert m.optimizer == {"train.step": 4}
    assert m.scratch == 16 * 16  # one 16x16 plane of the fused expansion
    assert m.peak_sram == m.arena.size + head_w + head_b + 4 + 16 * 16
    assert_sound(m.graph, m.arena)


# -- the oracles on every kind of plan ---------------------------------------------------------------------
def kernel_scratch(g) -> int:
    """Scratch bytes of the kernels a training graph calls, from their documented needs (the runtime's
    *_get_buffer_size): one output plane of a depthwise conv, one input plane of a fused pointwise +
    depthwise conv, one float input plane of any conv input gradient, one output channel's slice of floats of
    a fused conv weight update, a group of channels' float planes of a fused block backward; none for the others
    (a patched prefix keeps its scratch in its workspace, an arena buffer)."""
    need = [0]
    for n in g.nodes:
        if n.op == "conv" and n.attrs["groups"] > 1 and g[n.inputs[1]].shape[:2] == (n.attrs["groups"], 1):
            need.append(g[n.outputs[0]].shape[2] * g[n.outputs[0]].shape[3])
        elif n.op == "pw_dw":
            need.append(g[n.inputs[0]].shape[2] * g[n.inputs[0]].shape[3])
        elif n.op == "conv_grad_input":
            need.append(4 * n.attrs["in_shape"][2] * n.attrs["in_shape"][3])
        elif n.op == "conv_weight_update":
            kh, kw = g[n.inputs[2]].shape[2:]
            need.append(4 * (1 if n.attrs["depthwise"] else n.attrs["channels"]) * kh * kw)
        elif n.op == "block_backward":  # per channel of a group: a float plane of the depthwise output's gradient,
            roles = dict(zip(n.attrs["roles"], n.inputs))  # and with a pw1 stage one of the depthwise input's
            gy, mid = g[roles["gy"]].shape, n.attrs["mid_shape"]
            planes = gy[2] * gy[3] + (mid[2] * mid[3] if "pw1_mask" in roles else 0)
            need.append(n.attrs["group"] * 4 * gy[0] * planes)
    return max(need)


def c_static_sram(files) -> int:
    """SRAM the generated C allocates statically: the arena, the scratch, every non-const array."""
    h, c = (f.read_text() for f in files[:2])
    arena = int(re.search(r"#define TTE_ARENA_BYTES (\d+)", h)[1])
    scratch = int(re.search(r"#define TTE_SCRATCH_BYTES (\d+)", h)[1])
    itemsize = {"int8_t": 1, "uint8_t": 1, "int32_t": 4, "float": 4}
    arrays = sum(itemsize[t] * int(k)
                 for t, k in re.findall(r"^static (int8_t|uint8_t|int32_t|float) s\d+_\w+\[(\d+)\]", c, re.M))
    return -(-arena // 4) * 4 + -(-scratch // 4) * 4 + arrays


def test_peak_sram_is_what_the_c_allocates(tmp_path):
    """The report's peak SRAM against the generated C's static arrays (arena, scratch, trained slices,
    optimizer state), for a published scheme with partially trained weights."""
    program = tte.compile(shared_model("mbv2-w0.35"), scheme=SHARED / "schemes" / "mbv2-w0.35.49kb.json",
                          classes=10)
    m = memory_report(program.train)
    assert m.scratch == kernel_scratch(program.train)
    assert m.peak_sram == c_static_sram(emit_program(program, tmp_path))


def test_report_scratch_is_the_kernels_needs(zoo, tmp_path):
    """The report's scratch is what the kernels need and what the generated C reserves, on every generated
    model (non-depthwise conv input gradients and gemm weight updates included)."""
    wrong = []
    for name in ZOO_MODELS:
        for scheme in ("full", "bias-only", "last-2"):
            program = tte.compile(zoo[name], scheme=scheme)
            g = program.train
            header = emit_program(program, tmp_path / f"{name}-{scheme}")[0].read_text()
            c_scratch = int(re.search(r"#define TTE_SCRATCH_BYTES (\d+)", header)[1])
            if not memory_report(g).scratch == kernel_scratch(g) == c_scratch:
                wrong.append(f"{name} {scheme}: report {memory_report(g).scratch} B, kernels {kernel_scratch(g)} B, "
                             f"C {c_scratch} B")
    assert not wrong, "; ".join(wrong)


@pytest.mark.parametrize(("name", "scheme"), PAPER_PLANS)
def test_paper_plans_pass_the_oracles(name, scheme):
    """Every published scheme of the paper's models, full update and bias-only."""
    if scheme.endswith(".json"):
        scheme = SHARED / "schemes" / scheme
    g = tte.compile(shared_model(name), scheme=scheme, classes=10).train
    assert_sound(g, memory_report(g).arena)


@pytest.mark.parametrize("scheme", ["full", "bias-only", "last-2", {"bias_update_last": 0, "weight_update": {}}])
@pytest.mark.parametrize("name", ZOO_MODELS)
def test_generated_plans_pass_the_oracles(name, scheme, zoo):
    g = tte.compile(zoo[name], scheme=scheme).train
    assert_sound(g, memory_report(g).arena)


@pytest.mark.parametrize("options", [{}, dict(momentum=0.9), dict(rounding="accumulate", momentum=0.5),
                                     dict(optimize=False), dict(qas=False)])
@pytest.mark.parametrize("scheme", ["full", "bias-only", "last-2", "last-4"])
def test_example_plans_pass_the_oracles(scheme, options):
    g = tte.compile(EXAMPLE, scheme=scheme, classes=4, **options).train
    assert_sound(g, memory_report(g).arena)


def _example():
    """tiny_cnn's full update, without the fused block backward (which takes in the depthwise input gradients that
    run in place, and which the simulator tests below need on their own)."""
    steps = tuple(s for s in PIPELINE if s.__name__ != "fuse_block_backward")
    g = tte.compile(EXAMPLE, scheme="full", passes=steps).train
    m = memory_report(g)
    _, root = liveness(g)
    return g, m.arena, root


def _readers(g, value):
    return [i for i, n in enumerate(g.nodes) if value in n.inputs]


def test_simulator_catches_in_place_reuse_of_an_operand_read_later():
    """Let an in-place op (ste, grad_add, depthwise conv or its input gradient) write over its first
    operand although a later node reads it: the simulated step must find that read clobbered."""
    g, arena, root = _example()
    assert simulate_step(g, arena, root) == []
    sizes = {b.name: b.size for b in arena.buffers}

    def in_place_kind(n):
        w = g[n.inputs[1]].shape if len(n.inputs) > 1 else ()
        return n.op in ("ste", "grad_add") or (n.op in ("conv", "conv_grad_input") and n.attrs["groups"] > 1
                                               and w[1] == 1 and w[0] == n.attrs["groups"])

    candidates = [(i, n) for i, n in enumerate(g.nodes)
                  if in_place_kind(n) and n.inputs[0] in root and max(_readers(g, n.inputs[0])) > i
                  and root[n.outputs[0]] != root[n.inputs[0]] and sizes[root[n.inputs[0]]] >= sizes[root[n.outputs[0]]]]
    assert {n.op for _, n in candidates} == {"ste", "conv", "conv_grad_input"} and len(candidates) >= 6
    for i, node in candidates:
        x, y = node.inputs[0], node.outputs[0]
        bad = dict(root, **{v: root[x] for v, r in root.items() if r == root[y]})
        later = min(t for t in _readers(g, x) if t > i)
        faults = simulate_step(g, arena, bad)
        assert Fault("clobbered", x, later, g.nodes[later].name, y, node.name, i) in faults, (node.name, faults[:3])


def test_simulator_catches_a_buffer_moved_onto_a_live_one():
    """Move each buffer in turn onto the bytes of another one alive at a common step: some read must fail."""
    g, arena, root = _example()
    steps = {b.name: set(range(b.start, b.end + 1)) for b in arena.buffers}
    moved = 0
    for a in arena.buffers:
        other = next((b for b in arena.buffers if b.name != a.name and b.size >= a.size > 0
                      and steps[a.name] & steps[b.name]), None)
        if other is None:
            continue
        offsets = dict(arena.offsets, **{a.name: arena.offsets[other.name]})
        bad = SimpleNamespace(buffers=arena.buffers, offsets=offsets, size=arena.size)
        assert overlap_problems(bad), a.name
        assert simulate_step(g, bad, root), f"{a.name} moved onto {other.name} went unnoticed"
        moved += 1
    assert moved > 20


def test_a_lifetime_one_step_short_is_caught():
    """Shorten each buffer's lifetime by one step at either end and plan again: the lifetime check always
    notices; where the planner then reuses the bytes of the gap, the simulated step finds the clobber."""
    g = tte.compile(EXAMPLE, scheme="last-2").train
    buffers, root = liveness(g)
    clobbered = 0
    for k, b in enumerate(buffers):
        if b.end == b.start:
            continue
        for short in (Buffer(b.name, b.size, b.start, b.end - 1), Buffer(b.name, b.size, b.start + 1, b.end)):
            arena = plan_arena(buffers[:k] + [short] + buffers[k + 1:], alignment=4)
            assert overlap_problems(arena, alignment=4) == []  # a sound placement of wrong lifetimes
            assert lifetime_problems(g, arena, root), short
            clobbered += bool(simulate_step(g, arena, root))
    assert clobbered >= 5


def test_favor_speed_takes_the_fastest_variant_that_fits():
    """--favor speed: at 256 KB mbv2 99kb fits with the frozen prefix unpatched and the block backward unfused (the
    fewest instructions); at 160 KB only with both transformations, the plan --favor memory gives; the log says what
    each variant needed.  The scheme is the same, and the Python API and the command line agree."""
    model, scheme = shared_model("mbv2-w0.35"), str(SHARED / "schemes" / "mbv2-w0.35.99kb.json")
    memory = plan(model, scheme=scheme, classes=10)
    fast = plan(model, scheme=scheme, classes=10, favor="speed")
    assert memory.favor == "memory" and memory.memory.patch is not None
    assert fast.favor == "speed" and fast.fits and fast.memory.patch is None
    assert not any(n.op == "block_backward" for n in fast.memory.graph.nodes)
    assert fast.memory.peak_sram > memory.memory.peak_sram
    assert fast.to_dict()["scheme_json"] == memory.to_dict()["scheme_json"]
    # then the kernel scratch grows where the budget has room (the convs stage their inputs there: same numerics)
    planned = graph_scratch(fast.program.train)  # the kernels' least scratch: 4 KB
    before = fast.sram_needed - fast.memory.scratch + planned
    assert planned == 4096 and fast.memory.scratch == SPEED_SCRATCH_CAP
    assert fast.program.memory is fast.memory  # what the emitted C takes
    assert fast.auto_log == [f"favor speed: frozen prefix unpatched, block backward unfused: "
                             f"{before / 1024:.1f} KB of 256.0 KB SRAM, fits",
                             f"favor speed: kernel scratch 4.0 KB -> 32.0 KB (convs stage their inputs there): "
                             f"{fast.sram_needed / 1024:.1f} KB of 256.0 KB SRAM"]
    tight = plan(model, sram="160k", scheme=scheme, classes=10, favor="speed")
    small = plan(model, sram="160k", scheme=scheme, classes=10).memory
    assert tight.fits and tight.memory.scratch >= small.scratch
    assert tight.memory.peak_sram - tight.memory.scratch == small.peak_sram - small.scratch
    assert len(tight.auto_log) in (4, 5) and tight.auto_log[3].endswith("fits")
    assert all(line.endswith("does not fit") for line in tight.auto_log[:3])
    # a variant the options turn off is never tried
    assert plan(model, sram="160k", scheme=scheme, classes=10, favor="speed", patch=False).memory.patch is None
    out = run("plan", model, "--scheme", scheme, "--classes", "10", "--favor", "speed", "--json")
    assert out.exit_code == 0, out.output
    d = json.loads(out.output)
    assert d["favor"] == "speed" and d["patch"] is None and d["block_backward"] is False
    assert d["peak_sram_bytes"] == fast.memory.peak_sram
    assert tte.compile(model, scheme=scheme, classes=10, favor="speed").memory.peak_sram == fast.memory.peak_sram
    with pytest.raises(tte.TteError, match="favor must be one of memory, speed"):
        plan(model, scheme=scheme, classes=10, favor="fast")
