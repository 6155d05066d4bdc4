"""`tte plan`: compile for training, run the passes, plan memory, check the budget; `--scheme auto`.

One accounting for `tte plan`, `tte compile` and the Python API: SRAM holds the planned training step (arena,
trained parameters, optimizer state, kernel scratch) plus the runtime reserve of a bare-metal image (stack, heap,
C library statics; :data:`tte.codegen.project.RUNTIME_RESERVE`), its own line in every report; a plan fits when
both fit the budget, and `--scheme auto` picks the largest scheme that fits by that same test.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from . import pipeline
from .autodiff.scheme import SparseScheme, weighted_layers
from .codegen.project import HEAP_BYTES, LIBC_BYTES, RUNTIME_RESERVE, STACK_BYTES
from .errors import TteError
from .ir import Graph
from .passes.memory import MemoryReport
from .program import Program
from .units import check_int, kb, parse_size

DEFAULT_SRAM = 256 * 1024  # the CLI's defaults, also those of tte.compile(scheme="auto")
DEFAULT_FLASH = 1024 * 1024
RESERVE_WHAT = f"kept for stack {kb(STACK_BYTES)}, heap {kb(HEAP_BYTES)} and C library {kb(LIBC_BYTES)}"


class BudgetError(TteError):
    """The training step does not fit the SRAM or flash budget."""


@dataclass
class Plan:
    program: Program
    memory: MemoryReport
    sram: int
    flash: int
    reserve: int = RUNTIME_RESERVE  # SRAM kept for stack, heap and C library

    @property
    def reserve_what(self) -> str:
        return RESERVE_WHAT if self.reserve == RUNTIME_RESERVE else "kept for stack, heap and C library"

    @property
    def sram_needed(self) -> int:
        """The training step's peak SRAM plus the runtime reserve: what the budget must hold."""
        return self.memory.peak_sram + self.reserve

    @property
    def sram_over(self) -> int:
        return self.sram_needed - self.sram

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

    def classifier_hint(self, over: int, in_flash: bool = False) -> str | None:
        """When the model's own classifier (not a new head) is what does not fit: the hint that names --classes."""
        return classifier_hint(self.program, self.memory, over, in_flash)

    def problem(self) -> str | None:
        """One line saying by how much the plan misses its budget, or None."""
        if self.sram_over > 0:
            hint = self.classifier_hint(self.sram_over)
            hint = f"{hint}, or try a smaller --scheme" if hint else "try a smaller --scheme (or --scheme auto)"
            return (f"training needs {kb(self.memory.peak_sram)} of SRAM and {kb(self.reserve)} are kept for stack, "
                    f"heap and C library: {kb(self.sram_over)} over the {kb(self.sram)} budget; largest: "
                    f"{self.largest_contributors()}; {hint}")
        if self.flash_over > 0:
            hint = self.classifier_hint(self.flash_over, in_flash=True)
            return (f"training needs {kb(self.memory.flash)} of flash, {kb(self.flash_over)} over the "
                    f"{kb(self.flash)} budget (frozen parameters {kb(sum(self.memory.frozen_flash.values()))})"
                    + (f"; {hint}" if hint else ""))
        return None

    def check(self) -> Plan:
        """This plan, or :class:`BudgetError` saying what does not fit."""
        problem = self.problem()
        if problem:
            raise BudgetError(problem)
        return self

    def to_dict(self) -> dict:
        d = self.memory.to_dict()
        d.update({"model": self.program.forward.name, "scheme": self.program.plan.scheme.name,
                  "runtime_reserve_bytes": self.reserve, "sram_needed_bytes": self.sram_needed,
                  "sram_budget_bytes": self.sram, "flash_budget_bytes": self.flash, "fits": self.fits})
        return d


def classifier_hint(program: Program, memory: MemoryReport, over: int, in_flash: bool = False) -> str | None:
    """"the model's own N-class classifier ... --classes N" when the model keeps its classifier and that
    classifier's bytes are at least what is over the budget (a new, smaller head would make the difference)."""
    g = program.forward
    if "head" in g.metadata:  # a new head already: its size is the user's choice
        return None
    node = g.nodes[[n.name for n in g.nodes].index(program.plan.classifier)]
    names = node.inputs[1:3]
    if in_flash:  # frozen or trained, the classifier's constants sit in flash (trained ones: their initial values)
        size = sum(g[n].nbytes for n in names if n in g.values)
    else:
        size = sum(memory.trained.get(n, 0) for n in names)
    classes = g[node.inputs[1]].shape[0]
    if size < over or classes < 2:
        return None
    return (f"the model's own {classes}-class classifier alone takes {kb(size)}: train a new head for your classes "
            f"with --classes N (Python: classes=N)")


def make_plan(program: Program, sram: int, flash: int, reserve: int = RUNTIME_RESERVE) -> Plan:
    return Plan(program, program.memory, sram, flash, reserve)


def budgets(sram, flash) -> tuple[int, int]:
    """The SRAM and flash budgets of the Python API: sizes like '256k' or bytes; None: the CLI's defaults."""
    return (DEFAULT_SRAM if sram is None else parse_size(sram, "sram"),
            DEFAULT_FLASH if flash is None else parse_size(flash, "flash"))


def plan(model: str | os.PathLike | Graph, sram: int | str = DEFAULT_SRAM, flash: int | str = DEFAULT_FLASH,
         scheme=None, classes: int | None = None, reserve: int = RUNTIME_RESERVE, **options) -> Plan:
    """Compile ``model`` for training with ``scheme`` (or ``"auto"``) and plan its memory against ``sram`` and
    ``flash`` (bytes or sizes like '256k'), ``reserve`` bytes of SRAM being kept for stack, heap and C library."""
    sram, flash = budgets(sram, flash)
    reserve = check_int(reserve, "reserve", 0)
    if isinstance(scheme, str) and scheme == "auto":
        return auto_scheme(model, sram, flash, classes=classes, reserve=reserve, **options)
    return make_plan(pipeline.compile(model, scheme=scheme, classes=classes, **options), sram, flash, reserve)


def compile(model, scheme=None, classes: int | None = None, *, sram: int | str | None = None,
            flash: int | str | None = None, **options) -> Program:
    """Compile a model for training (:func:`tte.pipeline.compile`: ``scheme``, ``classes``, ``lr``, ``momentum``,
    ``qas``, ``rounding``, ``seed``, ``input_shape``, ``optimize``, ``arithmetic``), within budgets.

    ``scheme="auto"`` picks the largest scheme that fits ``sram`` / ``flash`` (default 256 KB and 1 MB, as
    `tte compile`), the same choice as the command line.  With another scheme, a given ``sram`` or ``flash``
    is checked: a program that does not fit raises :class:`BudgetError` saying by how much.
    """
    if isinstance(scheme, str) and scheme == "auto":
        return plan(model, *budgets(sram, flash), scheme="auto", classes=classes, **options).program
    program = pipeline.compile(model, scheme=scheme, classes=classes, **options)
    if sram is not None or flash is not None:
        s, f = budgets(sram, flash)
        make_plan(program, s if sram is not None else 2**62, f if flash is not None else 2**62).check()
    return program


def auto_scheme(model, sram: int, flash: int = DEFAULT_FLASH, classes: int | None = None,
                reserve: int = RUNTIME_RESERVE, **options) -> Plan:
    """The largest scheme of the family "biases of the last b layers, weights of the last w <= b layers"
    (the classifier always trains) that fits, by the planner's own figure and the runtime reserve.

    b is maximized first, then w, each by bisection (memory grows with both).  No data is needed.
    """
    g, _ = pipeline.load_stage(model, options.pop("input_shape", None), options.pop("arithmetic", None))
    n = len(weighted_layers(g)[0])
    cache: dict[tuple[int, int], Plan] = {}

    def attempt(b: int, w: int) -> Plan:
        if (b, w) not in cache:
            scheme = SparseScheme(f"auto: biases of the last {b} layers, weights of the last {w}", b,
                                  {-i: 1.0 for i in range(1, w + 1)})
            cache[(b, w)] = make_plan(pipeline.compile(g, scheme=scheme, classes=classes, **options), sram, flash,
                                      reserve)
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
        hint = smallest.classifier_hint(smallest.sram_over) if smallest.sram_over > 0 else \
            smallest.classifier_hint(smallest.flash_over, in_flash=True)
        raise BudgetError(f"no scheme fits: even training only the classifier needs "
                          f"{kb(smallest.memory.peak_sram)} of SRAM (and {kb(reserve)} kept for stack, heap and C "
                          f"library) and {kb(smallest.memory.flash)} of flash (budgets {kb(sram)} / {kb(flash)}); "
                          f"largest: {smallest.largest_contributors()}" + (f"; {hint}" if hint else ""))
    b = largest(lambda k: attempt(k, 0).fits, n)
    w = largest(lambda k: attempt(b, k).fits, b)
    return attempt(b, w)
