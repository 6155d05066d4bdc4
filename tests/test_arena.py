"""The arena planner on hand-computed lifetimes and offsets; the independent oracles of
``arena_oracle`` (overlap checker, step simulator) on hand-made plans and graphs."""

from __future__ import annotations

import itertools
import random
import re
from types import SimpleNamespace

import numpy as np
import pytest
from arena_oracle import Fault, extent, live_bytes, overlap_problems, simulate_step, value_bytes

from tte.ir import Graph, Value
from tte.passes.arena import ArenaPlan, Buffer, check_overlaps, lower_bound, plan_arena, timeline


def planned(buffers, alignment=1):
    plan = plan_arena(buffers, alignment)
    assert check_overlaps(plan) == []
    assert overlap_problems(plan, alignment) == []
    # the lower bound, recomputed step by step: no sound placement beats it, and the plan reaches its size
    peak = max(live_bytes(buffers, alignment).values(), default=0)
    assert plan.lower_bound == peak <= plan.size
    assert extent(plan) <= plan.size == max((plan.offsets[b.name] + -(-b.size // alignment) * alignment
                                             for b in buffers), default=0)
    return plan


def manual(buffers, offsets, size=None):
    """A plan with offsets given by hand (for the checkers)."""
    size = max((offsets[b.name] + b.size for b in buffers if b.name in offsets), default=0) if size is None else size
    return ArenaPlan(tuple(buffers), dict(offsets), size, 0, "manual")


def product_pairs(plan):
    """The pairs of buffers the planner's own checker reports as overlapping."""
    return {frozenset(m.groups()) for p in check_overlaps(plan)
            for m in [re.match(r"(\S+) \[-?\d+, -?\d+\) and (\S+) \[", p)] if m}


def oracle_pairs(plan):
    return {frozenset(m.groups()) for p in overlap_problems(plan)
            for m in [re.match(r"(\S+) \[-?\d+, -?\d+\) and (\S+) \[.* share bytes", p)] if m}


def test_chain_reuses_memory():
    # a -> b -> c -> d: each buffer lives while it is written and read by the next step
    bufs = [Buffer("a", 100, 0, 1), Buffer("b", 60, 1, 2), Buffer("c", 100, 2, 3), Buffer("d", 10, 3, 3)]
    plan = planned(bufs)
    assert lower_bound(bufs) == 160  # steps 1 (a+b) and 2 (b+c)
    assert plan.size == 160
    assert plan.offsets["b"] in (0, 100)
    # a and c never live together: they can share bytes
    assert plan.offsets["a"] == plan.offsets["c"]


def test_residual_keeps_its_input_alive():
    # x is read at step 0 and again by the residual add at step 3
    bufs = [Buffer("x", 32, 0, 3), Buffer("h1", 64, 0, 1), Buffer("h2", 64, 1, 2), Buffer("y", 32, 2, 3),
            Buffer("out", 32, 3, 3)]
    plan = planned(bufs)
    assert lower_bound(bufs) == 32 + 64 + 64
    assert plan.size == 160
    assert plan.offsets["x"] not in range(plan.offsets["h1"], plan.offsets["h1"] + 64)


def test_hand_computed_offsets_largest_first():
    bufs = [Buffer("big", 100, 0, 2), Buffer("mid", 50, 1, 3), Buffer("small", 20, 3, 4)]
    plan = planned(bufs)
    assert plan.offsets == {"big": 0, "mid": 100, "small": 0}
    assert plan.size == 150 == plan.lower_bound


def test_alignment():
    bufs = [Buffer("a", 3, 0, 1), Buffer("b", 5, 0, 1)]
    plan = planned(bufs, alignment=4)
    # largest first: b (5 -> 8 bytes) at 0, a after it at 8
    assert plan.offsets == {"b": 0, "a": 8} and plan.size == 12
    assert all(o % 4 == 0 for o in plan.offsets.values())


def test_overlap_checker_catches_conflicts():
    bufs = [Buffer("a", 10, 0, 2), Buffer("b", 10, 1, 3)]
    plan = planned(bufs)
    bad = type(plan)(plan.buffers, {"a": 0, "b": 5}, plan.size, plan.lower_bound, "manual")
    problems = check_overlaps(bad)
    assert len(problems) == 1 and "a [0, 10) and b [5, 15) overlap" in problems[0]
    assert overlap_problems(bad) == ["a [0, 10) and b [5, 15) share bytes at step(s) 1..2"]
    outside = type(plan)(plan.buffers, {"a": 0, "b": 15}, 20, plan.lower_bound, "manual")
    assert any("outside the arena" in p for p in check_overlaps(outside))
    assert overlap_problems(outside) == ["b [15, 25) is outside the arena [0, 20)"]


def test_greedy_is_near_optimal_on_random_lifetimes():
    rng = random.Random(0)
    for _ in range(50):
        bufs = []
        for i in range(rng.randint(1, 25)):
            s = rng.randint(0, 30)
            bufs.append(Buffer(f"b{i}", rng.choice([16, 64, 256, 1024, 4096]), s, s + rng.randint(0, 6)))
        plan = planned(bufs, alignment=4)
        assert plan.lower_bound <= plan.size <= 1.5 * plan.lower_bound


def test_exhaustive_small_case_is_optimal():
    bufs = [Buffer("p", 40, 0, 1), Buffer("q", 30, 1, 2), Buffer("r", 40, 2, 3), Buffer("s", 30, 0, 0)]
    sound = []
    for offs in itertools.product(range(0, 111, 10), repeat=4):
        candidate = ArenaPlan(tuple(bufs), dict(zip("pqrs", offs)), 10**9, 0, "x")
        ok = not overlap_problems(candidate)
        assert ok == (not check_overlaps(candidate)), offs  # the planner's checker agrees with the oracle
        if ok:
            sound.append(max(o + b.size for o, b in zip(offs, bufs)))
    assert plan_arena(bufs, alignment=1).size == min(sound)


def test_timeline_is_readable():
    plan = planned([Buffer("input", 48, 0, 1), Buffer("conv0", 64, 1, 2), Buffer("conv1", 32, 2, 2)])
    text = timeline(plan, width=16, steps=["quantize", "conv0", "conv1"])
    lines = text.splitlines()
    assert lines[0].startswith("arena 112 B (lower bound 112 B")
    assert "conv0" in lines[2] and "112 B" in lines[2]
    assert lines[-1].startswith("legend: A=input, B=conv0, C=conv1")


def test_duplicate_names_rejected():
    with pytest.raises(ValueError):
        plan_arena([Buffer("a", 1, 0, 0), Buffer("a", 1, 0, 0)])


# -- the independent overlap checker ---------------------------------------------------------------------
def test_buffers_touching_at_a_step_overlap_in_time():
    # a is last read at step 2, where b is written: both are alive at step 2 (lifetimes are inclusive)
    a, b = Buffer("a", 16, 0, 2), Buffer("b", 16, 2, 4)
    same = manual([a, b], {"a": 0, "b": 0})
    assert overlap_problems(same) == ["a [0, 16) and b [0, 16) share bytes at step(s) 2..2"]
    assert product_pairs(same) == {frozenset("ab")}
    partly = manual([a, b], {"a": 0, "b": 15})
    assert overlap_problems(partly) == ["a [0, 16) and b [15, 31) share bytes at step(s) 2..2"]
    assert product_pairs(partly) == {frozenset("ab")}
    # one step apart: they may share every byte
    c = Buffer("c", 16, 3, 4)
    assert overlap_problems(manual([a, c], {"a": 0, "c": 0})) == []
    assert check_overlaps(manual([a, c], {"a": 0, "c": 0})) == []
    # and the planner keeps touching buffers apart but reuses the bytes of ones a step apart
    plan = planned([a, b], alignment=4)
    assert {plan.offsets["a"], plan.offsets["b"]} == {0, 16} and plan.size == 32
    plan = planned([a, c], alignment=4)
    assert plan.offsets == {"a": 0, "c": 0} and plan.size == 16


def test_adjacent_bytes_do_not_overlap():
    a, b = Buffer("a", 10, 0, 5), Buffer("b", 6, 0, 5)
    assert overlap_problems(manual([a, b], {"a": 0, "b": 10})) == []  # [0, 10) and [10, 16)
    assert overlap_problems(manual([a, b], {"a": 6, "b": 0})) == []  # [6, 16) and [0, 6)
    assert check_overlaps(manual([a, b], {"a": 0, "b": 10})) == []
    assert overlap_problems(manual([a, b], {"a": 0, "b": 9})) == ["a [0, 10) and b [9, 15) share bytes at step(s) "
                                                                  "0..5"]
    assert overlap_problems(manual([a, b], {"a": 7, "b": 2})) == ["b [2, 8) and a [7, 17) share bytes at step(s) "
                                                                  "0..5"]
    # a buffer inside another, and one of no bytes (it occupies nothing)
    assert len(overlap_problems(manual([a, b], {"a": 0, "b": 2}))) == 1
    empty = Buffer("e", 0, 0, 5)
    assert overlap_problems(manual([a, empty], {"a": 0, "e": 3})) == []


def test_oracle_reports_bad_placements():
    a, b = Buffer("a", 8, 0, 1), Buffer("b", 8, 1, 2)
    assert overlap_problems(manual([a, b], {"a": 0, "b": 8}, size=12)) == ["b [8, 16) is outside the arena [0, 12)"]
    assert overlap_problems(manual([a, b], {"a": -4, "b": 8})) == ["a [-4, 4) is outside the arena [0, 16)"]
    assert overlap_problems(manual([a, b], {"a": 0, "b": 6}, size=14), alignment=4) == [
        "b at offset 6 is not 4-byte aligned", "a [0, 8) and b [6, 14) share bytes at step(s) 1..1"]
    assert overlap_problems(manual([a, b], {"a": 0})) == ["buffers without an offset: ['b']"]
    assert overlap_problems(manual([a], {"a": 0, "z": 0})) == ["offsets without a buffer: ['z']"]


def test_oracle_and_planner_checker_agree_on_random_placements():
    """The planner's checker against the oracle, pair by pair, on random (often unsound) placements with
    many lifetimes that touch at a step."""
    rng = random.Random(1)
    touching = 0
    for _ in range(300):
        bufs = []
        for i in range(rng.randint(2, 8)):
            s = rng.randint(0, 6)
            bufs.append(Buffer(f"b{i}", rng.choice([0, 1, 4, 8, 12]), s, s + rng.randint(0, 3)))
        offsets = {b.name: rng.randrange(0, 40, rng.choice([1, 4])) for b in bufs}
        plan = manual(bufs, offsets)
        assert oracle_pairs(plan) == product_pairs(plan), (bufs, offsets)
        touching += any(a.end == b.start for a, b in itertools.permutations(bufs, 2))
        # and the planner's own plan of the same buffers is sound by the oracle
        planned(bufs, alignment=rng.choice([1, 4]))
    assert touching > 100


# -- the step simulator on hand-made graphs ---------------------------------------------------------------
def _graph(op, x_shape, y_shape, dtype, extra=(), **attrs):
    g = Graph("hand-made")
    g.add_input(Value("x", dtype, x_shape))
    inputs = ["x"]
    for name, value in extra:
        if isinstance(value, np.ndarray):
            g.add_const(name, value)
        else:
            g.add_input(value)
        inputs.append(name)
    g.add_node(op, "op", inputs, [Value("y", dtype, y_shape)], **attrs)
    g.add_node("requantize" if dtype == "int8" else "ste", "next", ["y"] + ([] if dtype == "int8" else ["m"]),
               [Value("z", dtype, y_shape)])
    g.outputs = ["z"]
    return g


def _sim(g, offsets, size=None):
    sizes = {n: value_bytes(g[n]) for n in offsets}
    names = list(offsets)
    plan = SimpleNamespace(buffers=[SimpleNamespace(name=n, size=sizes[n]) for n in names], offsets=offsets,
                           size=size or max(offsets[n] + sizes[n] for n in names))
    return simulate_step(g, plan, {n: n for n in names})


def test_simulator_depthwise_conv_in_place_follows_the_plane_order():
    # 4 channels of 8x8 (64 B planes) to 4 channels of 4x4 (16 B planes), stride 2
    w = np.zeros((4, 1, 3, 3), np.int8)
    g = _graph("conv", (1, 4, 8, 8), (1, 4, 4, 4), "int8", [("w", w), ("b", np.zeros(4, np.int32))], groups=4)
    assert _sim(g, {"x": 0, "y": 0, "z": 300}) == []  # exactly in place
    assert _sim(g, {"x": 0, "y": 48, "z": 300}) == []  # plane c lands inside input planes 0..c
    assert _sim(g, {"x": 64, "y": 0, "z": 300}) == []  # before the input
    # one input plane ahead: output plane 0 overwrites input plane 1 before plane 1 is read
    assert _sim(g, {"x": 0, "y": 64, "z": 300}) == [Fault("clobbered while read", "x", 0, "op", "y", "op", 0)]
    assert _sim(g, {"x": 0, "y": 49, "z": 300})[0].kind == "clobbered while read"
    # the same placement is never allowed for a kernel without a documented order (a grouped conv that is
    # not depthwise runs through tte_conv_s8)
    g2 = _graph("conv", (1, 4, 8, 8), (1, 4, 4, 4), "int8", [("w", np.zeros((4, 2, 3, 3), np.int8)),
                                                               ("b", np.zeros(4, np.int32))], groups=2)
    assert _sim(g2, {"x": 0, "y": 0, "z": 300})[0].kind == "clobbered while read"
    assert _sim(g2, {"x": 0, "y": 256, "z": 400}) == []


def test_simulator_elementwise_in_place():
    m = Value("m", "bool", (1, 8))
    g = _graph("ste", (1, 8), (1, 8), "float32", [("m", m)])
    g.inputs.remove("x")  # a gradient produced in the step, not a float input from the caller
    g.nodes.insert(0, type(g.nodes[0])("gemm_grad_input", "producer", [], ["x"]))
    assert _sim(g, {"x": 0, "y": 0, "z": 0, "m": 100}) == []  # z = ste(y) in place too
    assert _sim(g, {"x": 4, "y": 0, "z": 40, "m": 100}) == []  # element i lands on element i - 1, already read
    assert _sim(g, {"x": 0, "y": 4, "z": 40, "m": 100}) == [
        Fault("clobbered while read", "x", 1, "op", "y", "op", 1)]
    # the mask is not the operand written in place: sharing its bytes is a clobber
    assert _sim(g, {"x": 0, "y": 40, "z": 80, "m": 40})[0] == Fault("clobbered while read", "m", 1, "op", "y", "op",
                                                                    1)


def test_simulator_reports_clobbers_and_unwritten_reads():
    g = _graph("requantize", (1, 16), (1, 16), "int8")
    assert _sim(g, {"x": 0, "y": 16, "z": 0}) == []  # z reuses x's bytes: x is dead by then
    assert _sim(g, {"x": 0, "y": 8, "z": 40}) == [Fault("clobbered while read", "x", 0, "op", "y", "op", 0)]
    # z written over y while y is being read
    assert _sim(g, {"x": 0, "y": 16, "z": 20}) == [Fault("clobbered while read", "y", 1, "next", "z", "next", 1)]
    # a third node reading x after z overwrote it
    g.add_node("requantize", "late", ["x"], [Value("u", "int8", (1, 16))])
    g.outputs.append("u")
    faults = _sim(g, {"x": 0, "y": 16, "z": 0, "u": 40}, size=64)
    assert faults == [Fault("clobbered", "x", 2, "late", "z", "next", 1)]
    assert str(faults[0]) == "x read by late at step 2 was overwritten by z, written by next at step 1"
    # a reshape is the same bytes: elsewhere, it was never written
    g = _graph("reshape", (1, 16), (16, 1), "int8")
    assert _sim(g, {"x": 0, "y": 0, "z": 16}) == []
    assert _sim(g, {"x": 0, "y": 32, "z": 16}) == [Fault("never written", "y", 1, "next")]
