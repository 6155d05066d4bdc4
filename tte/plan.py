"""`tte plan`: compile for training, run the passes, plan memory, check the budget; `--scheme auto`."""

from __future__ import annotations

import os
from dataclasses import dataclass

from .autodiff.scheme import SparseScheme, weighted_layers
from .errors import TteError
from .ir import Graph
from .passes.memory import MemoryReport
from .pipeline import compile
from .program import Program
from .units import kb


class BudgetError(TteError):
    """The training step does not fit the SRAM or flash budget."""


@dataclass
class Plan:
    program: Program
    memory: MemoryReport
    sram: int
    flash: int

    @property
    def sram_over(self) -> int:
        return self.memory.peak_sram - self.sram

    @property
    def flash_over(self) -> int:
        return self.memory.flash - self.flash

    @property
    def fits(self) -> bool:
        return self.sram_over <= 0 and self.flash_over <= 0

    def largest_contributors(self, n: int = 3) -> str:
        m = self.memory
        parts = [(m.arena.size, f"arena {kb(m.arena.size)} (at '{m.graph.nodes[m.peak_step].name}': "
                  + ", ".join(f"{name} {kb(b)}" for name, b in m.live_at_peak()[:2]) + ")"),
                 (m.trained_bytes, f"trained parameters {kb(m.trained_bytes)}"),
                 (m.optimizer_bytes, f"optimizer state {kb(m.optimizer_bytes)}")]
        return "; ".join(text for size, text in sorted(parts, key=lambda p: -p[0])[:n] if size)

    def problem(self) -> str | None:
        """One line saying by how much the plan misses its budget, or None."""
        if self.sram_over > 0:
            return (f"training needs {kb(self.memory.peak_sram)} of SRAM, {kb(self.sram_over)} over the "
                    f"{kb(self.sram)} budget; largest: {self.largest_contributors()}; try a smaller --scheme "
                    f"(or --scheme auto)")
        if self.flash_over > 0:
            return (f"training needs {kb(self.memory.flash)} of flash, {kb(self.flash_over)} over the "
                    f"{kb(self.flash)} budget (frozen parameters {kb(sum(self.memory.frozen_flash.values()))})")
        return None

    def to_dict(self) -> dict:
        d = self.memory.to_dict()
        d.update({"model": self.program.forward.name, "scheme": self.program.plan.scheme.name,
                  "sram_budget_bytes": self.sram, "flash_budget_bytes": self.flash, "fits": self.fits})
        return d


def make_plan(program: Program, sram: int, flash: int) -> Plan:
    return Plan(program, program.memory, sram, flash)


def plan(model: str | os.PathLike | Graph, sram: int, flash: int = 1024 * 1024, scheme=None,
         classes: int | None = None, **options) -> Plan:
    """Compile ``model`` for training with ``scheme`` (or ``"auto"``) and plan its memory."""
    if scheme == "auto":
        return auto_scheme(model, sram, flash, classes=classes, **options)
    return make_plan(compile(model, scheme=scheme, classes=classes, **options), sram, flash)


def auto_scheme(model, sram: int, flash: int = 1024 * 1024, classes: int | None = None, **options) -> Plan:
    """The largest scheme of the family "biases of the last b layers, weights of the last w <= b layers"
    (the classifier always trains) that fits, by the planner's own figure.

    b is maximized first, then w, each by bisection (memory grows with both).  No data is needed.
    """
    from .frontend import load

    g = model if isinstance(model, Graph) else load(model)
    n = len(weighted_layers(g)[0])
    cache: dict[tuple[int, int], Plan] = {}

    def attempt(b: int, w: int) -> Plan:
        if (b, w) not in cache:
            scheme = SparseScheme(f"auto: biases of the last {b} layers, weights of the last {w}", b,
                                  {-i: 1.0 for i in range(1, w + 1)})
            cache[(b, w)] = make_plan(compile(g, scheme=scheme, classes=classes, **options), sram, flash)
        return cache[(b, w)]

    def largest(fits, hi: int) -> int:
        lo = 0  # fits(lo) holds
        while lo < hi:
            mid = (lo + hi + 1) // 2
            if fits(mid):
                lo = mid
            else:
                hi = mid - 1
        return lo

    smallest = attempt(0, 0)
    if not smallest.fits:
        raise BudgetError(f"no scheme fits: even training only the classifier needs "
                          f"{kb(smallest.memory.peak_sram)} of SRAM and {kb(smallest.memory.flash)} of flash "
                          f"(budgets {kb(sram)} / {kb(flash)}); largest: {smallest.largest_contributors()}")
    b = largest(lambda k: attempt(k, 0).fits, n)
    w = largest(lambda k: attempt(b, k).fits, b)
    return attempt(b, w)
