"""`tte plan`: the memory report, budgets, --scheme auto, and the arena planner on real training graphs."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner
from conftest import ROOT, SHARED, SHARED_MODELS, shared_model

import tte
from tte.cli import main
from tte.passes.arena import check_overlaps
from tte.passes.memory import liveness, memory_report
from tte.plan import plan

EXAMPLE = ROOT / "examples" / "tiny_cnn.int8.onnx"
LARGEST = {"mbv2-w0.35": "138kb", "mcunet-5fps": "148kb", "proxyless-w0.3": "148kb"}


def run(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


@pytest.mark.parametrize("name", SHARED_MODELS)
@pytest.mark.parametrize("scheme", ["largest", "full"])
def test_plans_are_sound_and_near_the_lower_bound(name, scheme):
    scheme = SHARED / "schemes" / f"{name}.{LARGEST[name]}.json" if scheme == "largest" else scheme
    p = plan(shared_model(name), sram=256 * 1024, scheme=scheme, classes=10)
    assert check_overlaps(p.memory.arena) == []
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
    assert m.peak_sram == m.arena.size + m.trained_bytes + m.optimizer_bytes + m.scratch
    # a partially trained weight keeps its frozen part in flash
    partial = [n for n, q in prog.params.items() if q.kind == "weight" and q.channels < prog.train[n].shape[q.axis]]
    assert partial and all(n in m.frozen_flash for n in partial)


def test_reordering_and_fusion_shrink_the_arena():
    scheme = SHARED / "schemes" / "mbv2-w0.35.99kb.json"
    raw = memory_report(tte.compile(shared_model("mbv2-w0.35"), scheme=scheme, classes=10, optimize=False).train)
    opt = memory_report(tte.compile(shared_model("mbv2-w0.35"), scheme=scheme, classes=10).train)
    assert opt.arena.size < 0.5 * raw.arena.size


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


@pytest.mark.parametrize("name", SHARED_MODELS)
@pytest.mark.parametrize("budget", [256, 128])
def test_auto_scheme_fits(name, budget, figures):
    p = plan(shared_model(name), sram=budget * 1024, scheme="auto", classes=10)
    assert p.fits and p.memory.peak_sram <= budget * 1024
    figures(f"--scheme auto {name} at {budget}k: {p.program.plan.scheme.name}, peak SRAM "
            f"{p.memory.peak_sram / 1024:.1f} KB")


def test_auto_scheme_explains_an_impossible_budget():
    r = run("plan", shared_model("mbv2-w0.35"), "--sram", "64k", "--classes", "10")
    assert r.exit_code == 1
    assert "no scheme fits: even training only the classifier needs" in r.stderr
    assert "input_int8 48.0 KB" in r.stderr


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
    """tiny_cnn, classifier only (a forward pass and the head's update): the arena peak, by hand."""
    p = plan(EXAMPLE, sram=256 * 1024, scheme={"bias_update_last": 0, "weight_update": {}})
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
