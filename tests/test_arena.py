"""The arena planner on hand-computed lifetimes and offsets."""

from __future__ import annotations

import itertools
import random

import pytest

from tte.passes.arena import ArenaPlan, Buffer, check_overlaps, lower_bound, plan_arena, timeline


def planned(buffers, alignment=1):
    plan = plan_arena(buffers, alignment)
    assert check_overlaps(plan) == []
    return plan


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
    outside = type(plan)(plan.buffers, {"a": 0, "b": 15}, 20, plan.lower_bound, "manual")
    assert any("outside the arena" in p for p in check_overlaps(outside))


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
    best = min(max(o + b.size for o, b in zip(offs, bufs))
               for offs in itertools.product(range(0, 111, 10), repeat=4)
               if not check_overlaps(ArenaPlan(tuple(bufs), dict(zip("pqrs", offs)), 10**9, 0, "x")))
    assert plan_arena(bufs, alignment=1).size == best


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
