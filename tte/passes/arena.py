"""Static arena planning: lifetimes in, offsets in one arena out.

A pure function of a list of :class:`Buffer` (size in bytes, first and last step alive, inclusive).
Offsets are assigned greedily, first gap that fits, in several orders (largest first, longest-lived
first, earliest first, largest area first); the smallest arena wins.  The lower bound is the largest
sum of sizes alive at one step: no placement can beat it.  :func:`check_overlaps` verifies a plan and
:func:`timeline` prints one for a person (TFLite Micro's planner is the model for all of this).
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class Buffer:
    name: str
    size: int  # bytes
    start: int  # first step at which it is alive (written)
    end: int  # last step at which it is alive (read), inclusive

    def overlaps_in_time(self, other: Buffer) -> bool:
        return self.start <= other.end and other.start <= self.end


@dataclass(frozen=True)
class ArenaPlan:
    buffers: tuple[Buffer, ...]
    offsets: dict[str, int]
    size: int
    lower_bound: int
    order: str  # which greedy order produced it

    def offset(self, name: str) -> int:
        return self.offsets[name]


def align(n: int, alignment: int) -> int:
    return -(-n // alignment) * alignment


def lower_bound(buffers: Sequence[Buffer], alignment: int = 1) -> int:
    """Largest total size of the buffers alive at one step."""
    if not buffers:
        return 0
    events = sorted({b.start for b in buffers})
    return max(sum(align(b.size, alignment) for b in buffers if b.start <= t <= b.end) for t in events)


ORDERS: dict[str, Callable[[Buffer], tuple]] = {
    "largest first": lambda b: (-b.size, b.start, b.name),
    "longest lived first": lambda b: (-(b.end - b.start), -b.size, b.name),
    "earliest first": lambda b: (b.start, -b.size, b.name),
    "largest area first": lambda b: (-b.size * (b.end - b.start + 1), b.name),
}


def _first_fit(buffers: Sequence[Buffer], alignment: int, fixed: dict[str, int] | None = None) -> dict[str, int]:
    """Place ``buffers`` in order at the lowest offset that fits; ``fixed`` offsets are kept as given."""
    placed: list[tuple[int, int, Buffer]] = []  # (offset, size, buffer)
    offsets: dict[str, int] = {}
    by_name = {b.name: b for b in buffers}
    for name, offset in (fixed or {}).items():
        offsets[name] = offset
        placed.append((offset, align(by_name[name].size, alignment), by_name[name]))
    for b in buffers:
        if b.name in offsets:
            continue
        size = align(b.size, alignment)
        busy = sorted((o, s) for o, s, other in placed if other.overlaps_in_time(b))
        offset = 0
        for o, s in busy:
            if offset + size <= o:
                break
            offset = max(offset, align(o + s, alignment))
        offsets[b.name] = offset
        placed.append((offset, size, b))
    return offsets


def _height(buffers: Sequence[Buffer], offsets: dict[str, int], alignment: int) -> int:
    return max((offsets[b.name] + align(b.size, alignment) for b in buffers if b.name in offsets), default=0)


def plan_arena(buffers: Sequence[Buffer], alignment: int = 4, search: int = 7) -> ArenaPlan:
    """Offsets for every buffer in one arena: the best of several greedy orders and, when none reaches
    the lower bound, of every insertion order of the ``search`` largest buffers (placed first-fit
    before the rest; the most promising few of those are completed largest first)."""
    names = [b.name for b in buffers]
    if len(set(names)) != len(names):
        raise ValueError("buffer names must be unique")
    bound = lower_bound(buffers, alignment)
    best: ArenaPlan | None = None

    def consider(offsets: dict[str, int], label: str) -> None:
        nonlocal best
        size = _height(buffers, offsets, alignment)
        if best is None or size < best.size:
            best = ArenaPlan(tuple(buffers), offsets, size, bound, label)

    for label, key in ORDERS.items():
        consider(_first_fit(sorted(buffers, key=key), alignment), label)
        if best.size == bound:
            return best
    # search the insertion orders of two small sets of buffers: those alive at and near the step where the
    # lower bound is reached, and the largest ones
    t = max(sorted({b.start for b in buffers}),
            key=lambda u: sum(align(b.size, alignment) for b in buffers if b.start <= u <= b.end))
    near = [b for b in buffers if b.start <= t + 2 and b.end >= t - 2]
    rest = sorted(buffers, key=ORDERS["largest first"])
    for label, pool in (("near the peak", near), ("largest", buffers)):
        big = sorted(pool, key=ORDERS["largest first"])[:search]
        partial = {}
        for perm in itertools.permutations(big):
            offsets = _first_fit(perm, alignment)
            partial.setdefault(tuple(sorted(offsets.items())), (_height(big, offsets, alignment), offsets))
        for _, offsets in sorted(partial.values(), key=lambda p: p[0])[:16]:
            consider(_first_fit(rest, alignment, fixed=offsets), f"search over the {len(big)} {label}")
            if best.size == bound:
                return best
    assert best is not None
    return best


def check_overlaps(plan: ArenaPlan) -> list[str]:
    """Pairs of buffers alive at the same time whose byte ranges intersect (empty when the plan is sound);
    also buffers that run past the arena's end."""
    problems = []
    bs = sorted(plan.buffers, key=lambda b: plan.offsets[b.name])
    for i, a in enumerate(bs):
        oa = plan.offsets[a.name]
        if oa < 0 or oa + a.size > plan.size:
            problems.append(f"{a.name} [{oa}, {oa + a.size}) is outside the arena of {plan.size} bytes")
        for b in bs[i + 1:]:
            ob = plan.offsets[b.name]
            if ob >= oa + a.size:
                break
            if a.overlaps_in_time(b) and a.size and b.size:
                problems.append(f"{a.name} [{oa}, {oa + a.size}) and {b.name} [{ob}, {ob + b.size}) overlap "
                                f"while both alive (steps {max(a.start, b.start)}..{min(a.end, b.end)})")
    return problems


def timeline(plan: ArenaPlan, width: int = 64, steps: Sequence[str] | None = None) -> str:
    """ASCII picture: one row per step, the arena drawn left to right, one letter per live buffer."""
    if not plan.buffers:
        return "(empty arena)"
    scale = max(plan.size / width, 1)
    letters = {b.name: chr(ord("A") + i % 26) if i < 26 else chr(ord("a") + i % 26)
               for i, b in enumerate(sorted(plan.buffers, key=lambda b: (b.start, b.name)))}
    last = max(b.end for b in plan.buffers)
    lines = [f"arena {plan.size:,} B (lower bound {plan.lower_bound:,} B, {plan.order}); one column = "
             f"{scale:,.0f} B"]
    for t in range(last + 1):
        row = ["."] * width
        live = [b for b in plan.buffers if b.start <= t <= b.end and b.size]
        for b in live:
            lo = int(plan.offsets[b.name] / scale)
            hi = max(lo + 1, int((plan.offsets[b.name] + b.size) / scale))
            for c in range(lo, min(hi, width)):
                row[c] = letters[b.name]
        used = sum(b.size for b in live)
        label = steps[t] if steps is not None and t < len(steps) else f"step {t}"
        lines.append(f"{t:4d} |{''.join(row)}| {used:>9,} B  {label}")
    lines.append("legend: " + ", ".join(f"{letters[b.name]}={b.name}" for b in
                                        sorted(plan.buffers, key=lambda b: (b.start, b.name))))
    return "\n".join(lines)
