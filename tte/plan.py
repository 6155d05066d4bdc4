"""`tte plan`: compile for training, run the passes, plan memory, check the budget; `--scheme auto`.

One accounting for `tte plan`, `tte compile` and the Python API: SRAM holds the planned training step (arena,
trained parameters, optimizer state, kernel scratch) plus the runtime reserve of a bare-metal image (stack, heap,
C library statics; :data:`tte.codegen.project.RUNTIME_RESERVE`), its own line in every report; a plan fits when
both fit the budget, and every step of `--scheme auto` (:func:`auto_scheme`) decides by that same test.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field, replace

from . import pipeline
from .autodiff.scheme import SparseScheme, channel_count, weighted_layers
from .codegen.project import HEAP_BYTES, LIBC_BYTES, RUNTIME_RESERVE, STACK_BYTES
from .errors import TteError
from .ir import Graph
from .ir.facts import is_depthwise
from .ops.conv import speed_scratch
from .passes.memory import MemoryReport
from .passes.patch import StreamError
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
    auto_log: list[str] = field(default_factory=list)  # --scheme auto: what each step tried (--explain prints it)
    auto_plans: int = 0  # --scheme auto: the schemes it compiled and planned
    favor: str = "memory"  # what the plan favors: the lowest peak, or the fewest instructions that fit (FAVORS)

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

    def stream_hint(self) -> str | None:
        """When the int8 input, held whole in the arena, is alive at the arena's peak: the hint that names
        --stream-input (the input read in rows instead)."""
        g, m = self.memory.graph, self.memory
        if not g.nodes or g.nodes[0].op != "quantize" or g.nodes[0].output not in m.root or \
                not any(n.op == "patch" for n in g.nodes):  # no frozen stage to read rows: nothing can stream
            return None
        held = dict(m.live_at_peak()).get(m.root[g.nodes[0].output])
        if held is None:
            return None
        return (f"--stream-input (stream_input=True) reads the input in rows from a source the firmware gives "
                f"instead of holding its {kb(held)} in the arena")

    def problem(self) -> str | None:
        """One line saying by how much the plan misses its budget, or None."""
        if self.sram_over > 0:
            hint = self.classifier_hint(self.sram_over)
            hint = f"{hint}, or try a smaller --scheme" if hint else "try a smaller --scheme (or --scheme auto)"
            if stream := self.stream_hint():
                hint += f"; {stream}"
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
                  "scheme_json": scheme_json(self.program), "runtime_reserve_bytes": self.reserve,
                  "runtime_reserve": ({"stack_bytes": STACK_BYTES, "heap_bytes": HEAP_BYTES, "libc_bytes": LIBC_BYTES}
                                      if self.reserve == RUNTIME_RESERVE else {}),
                  "sram_needed_bytes": self.sram_needed, "sram_budget_bytes": self.sram,
                  "flash_budget_bytes": self.flash, "fits": self.fits, "favor": self.favor,
                  "block_backward": any(n.op == "block_backward" for n in self.memory.graph.nodes)})
        if self.auto_plans:
            d["auto_plans"] = self.auto_plans
        return d


def scheme_json(program: Program) -> dict:
    """The program's scheme in the published format (``bias_update_last``, ``weight_update``: layer index ->
    input-channel ratio), as a scheme file for ``--scheme FILE`` holds it: `--scheme auto`'s choice, saved, compiles
    to the same program."""
    scheme, n = program.plan.scheme, len(program.plan.layers)
    weights = {i: 1.0 for i in range(n)} if scheme.all_weights else {}
    weights.update({(i + n if i < 0 else i): r for i, r in scheme.weights.items()})
    return {"model": program.forward.name, "label": scheme.name,
            "bias_update_last": n if scheme.bias_last is None else scheme.bias_last,
            "weight_update": {str(i): r for i, r in sorted(weights.items())}}


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


FAVORS = ("memory", "speed")
# (patch, block_backward), fewest instructions first: the patched prefix recomputes expansions and copies rows band
# by band; the fused block backward runs its stages a few channels at a time (same numerics either way)
SPEED_VARIANTS = ((False, False), (False, True), (True, False), (True, True))


def check_favor(favor) -> str:
    if not isinstance(favor, str) or favor not in FAVORS:
        raise TteError(f"favor must be one of {', '.join(FAVORS)}, got {favor!r}")
    return favor


def plan(model: str | os.PathLike | Graph, sram: int | str = DEFAULT_SRAM, flash: int | str = DEFAULT_FLASH,
         scheme=None, classes: int | None = None, reserve: int = RUNTIME_RESERVE, favor: str = "memory",
         **options) -> Plan:
    """Compile ``model`` for training with ``scheme`` (or ``"auto"``) and plan its memory against ``sram`` and
    ``flash`` (bytes or sizes like '256k'), ``reserve`` bytes of SRAM being kept for stack, heap and C library.

    ``favor="memory"`` (default): every memory transformation on, the lowest peak.  ``favor="speed"``: the plan with
    the fewest instructions that fits: the frozen prefix unpatched and the block backward unfused where the budget
    allows (:data:`SPEED_VARIANTS`; the scheme is the one ``favor="memory"`` gives, auto's included)."""
    sram, flash = budgets(sram, flash)
    reserve = check_int(reserve, "reserve", 0)
    favor = check_favor(favor)
    if isinstance(scheme, str) and scheme == "auto":
        p = auto_scheme(model, sram, flash, classes=classes, reserve=reserve, **options)
    else:
        p = make_plan(pipeline.compile(model, scheme=scheme, classes=classes, **options), sram, flash, reserve)
    if favor == "speed":
        p = fastest_fit(model, p, classes, options)
        p.favor = favor
    return p


SPEED_SCRATCH_CAP = 32 * 1024  # --favor speed: kernel scratch up to this much, where the budget has room


def with_speed_scratch(p: Plan) -> Plan:
    """``p`` with its kernel scratch raised toward what its convs run fastest with on Cortex-M
    (:func:`tte.ops.conv.speed_scratch`: the fused 1x1 + depthwise convs stage their input there), as far as the SRAM
    budget allows and at most :data:`SPEED_SCRATCH_CAP`; ``p`` itself when that adds nothing.  The program's memory
    report becomes the plan's (the emitted C takes its scratch).  Same numerics: only the kernels' paths change."""
    m = p.memory
    want = max((speed_scratch(g, n) for g in (p.program.train, p.program.inference[0]) for n in g.nodes), default=0)
    scratch = min(want, SPEED_SCRATCH_CAP, m.scratch + p.sram - p.sram_needed) // 4 * 4
    if scratch <= m.scratch:
        return p
    memory = replace(m, scratch=scratch)
    p.program.memory = memory
    log = [*p.auto_log, f"favor speed: kernel scratch {kb(m.scratch)} -> {kb(scratch)} (convs stage their inputs "
                        f"there): {kb(p.sram_needed - m.scratch + scratch)} of {kb(p.sram)} SRAM"]
    return replace(p, memory=memory, auto_log=log)


def fastest_fit(model, p: Plan, classes: int | None, options: dict) -> Plan:
    """The first of :data:`SPEED_VARIANTS` (within the transformations ``options`` leaves on) that fits ``p``'s
    budgets, with ``p``'s scheme; ``p`` itself when none fits sooner."""
    on = {"patch": options.get("patch", True), "block_backward": options.get("block_backward", True)}
    log = list(p.auto_log)
    for patch, fused in SPEED_VARIANTS:
        if (patch and not on["patch"]) or (fused and not on["block_backward"]) or \
                (options.get("stream_input") and not patch):  # a streamed input is read by the patched stage
            continue
        what = f"frozen prefix {'patched' if patch else 'unpatched'}, block backward {'fused' if fused else 'unfused'}"
        if (patch, fused) == (on["patch"], on["block_backward"]):
            candidate = p
        else:
            program = pipeline.compile(model, scheme=p.program.plan.scheme, classes=classes,
                                       **{**options, "patch": patch, "block_backward": fused})
            candidate = make_plan(program, p.sram, p.flash, p.reserve)
        log.append(f"favor speed: {what}: {kb(candidate.sram_needed)} of {kb(candidate.sram)} SRAM, "
                   f"{'fits' if candidate.fits else 'does not fit'}")
        if candidate.fits or candidate is p:
            candidate.auto_log, candidate.auto_plans = log, p.auto_plans
            return with_speed_scratch(candidate) if candidate.fits else candidate
    return p


def compile(model, scheme=None, classes: int | None = None, *, sram: int | str | None = None,
            flash: int | str | None = None, favor: str = "memory", **options) -> Program:
    """Compile a model for training (:func:`tte.pipeline.compile`: ``scheme``, ``classes``, ``lr``, ``momentum``,
    ``qas``, ``rounding``, ``seed``, ``input_shape``, ``optimize``, ``arithmetic``), within budgets.

    ``scheme="auto"`` picks a scheme that fits ``sram`` / ``flash`` (default 256 KB and 1 MB, as `tte compile`) by
    :func:`auto_scheme`, the same choice as the command line.  With another scheme, a given ``sram`` or ``flash``
    is checked: a program that does not fit raises :class:`BudgetError` saying by how much.  ``favor="speed"``:
    the fastest program that fits (see :func:`plan`; its budgets default to 256 KB and 1 MB).
    """
    if check_favor(favor) == "speed" or (isinstance(scheme, str) and scheme == "auto"):
        p = plan(model, *budgets(sram, flash), scheme=scheme, classes=classes, favor=favor, **options)
        return p.check().program
    program = pipeline.compile(model, scheme=scheme, classes=classes, **options)
    if sram is not None or flash is not None:
        s, f = budgets(sram, flash)
        make_plan(program, s if sram is not None else 2**62, f if flash is not None else 2**62).check()
    return program


@dataclass
class Refused:
    """A scheme --scheme auto tried that the pipeline refused (with stream_input, one that trains the layers the
    streamed input feeds): it never fits."""

    why: str
    fits: bool = False


AUTO_WEIGHT_LAYERS = 8  # the published schemes train the weights of at most 8 layers (besides the classifier)
RATIOS = (0.125, 0.25, 0.5, 1.0)  # the published schemes' channel ratios
AUTO_RULE = ("the full update if it fits; else, from the last layer back, the weights of the last "
             f"{AUTO_WEIGHT_LAYERS} 1x1 convs that feed a depthwise conv (any non-depthwise layer in a model without "
             "them) at 1/8 of their channels where that fits, with every bias down to them, each then raised, last "
             "first, to the largest of 1/4, 1/2, 1 that fits; then the biases of as many earlier layers as fit; and "
             "once every bias trains, the other weights, last first, at the largest ratio that fits")


def _ratio(r: float) -> str:
    return "1" if r == 1 else f"1/{round(1 / r)}"


def auto_layers(g: Graph) -> tuple[list[int], list[int]]:
    """The layer indices --scheme auto gives weights to, last first: (the first choices: the last
    :data:`AUTO_WEIGHT_LAYERS` 1x1 convs that feed a depthwise conv, i.e. the first conv of each inverted-residual
    block, or of any non-depthwise layer where there is none; the others, any layer but those)."""
    layers, _ = weighted_layers(g)

    def depthwise(node) -> bool:
        return node.op == "conv" and is_depthwise(g, node)

    def expands(i: int) -> bool:
        node = layers[i]
        return (node.op == "conv" and node.attrs["groups"] == 1 and g[node.inputs[1]].shape[2:] == (1, 1)
                and i + 1 < len(layers) and depthwise(layers[i + 1]))

    back = range(len(layers) - 1, -1, -1)
    first = [i for i in back if expands(i)] or [i for i in back if not depthwise(layers[i])]
    first = first[:AUTO_WEIGHT_LAYERS]
    return first, [i for i in back if i not in first]


def auto_scheme(model, sram: int, flash: int = DEFAULT_FLASH, classes: int | None = None,
                reserve: int = RUNTIME_RESERVE, **options) -> Plan:
    """--scheme auto: :data:`AUTO_RULE`.  Every step is decided by the planner's own figure (peak SRAM plus the
    runtime reserve, and flash), the one `tte plan` prints; no data is needed, and the same model and budgets give
    the same scheme.

    Why this family: the published schemes (``../shared/schemes``) train the biases of many layers and the weights
    of a few late ones (at most 8), mostly the first, expanding 1x1 conv of the last inverted-residual blocks, at
    partial channel ratios when memory is tight; the paper's contribution analysis finds late layers' weights and
    the first 1x1 conv of a block the most valuable, and such a conv's saved input (the block's narrow input) is
    the cheapest to keep.  Each candidate is a full compile and plan, cached by the channels it trains: at most
    ``2 + 4 * 8 + log2(layers)`` of them (15 to 40 for the paper's models), plus up to 3 per other layer once
    every bias trains.  ``Plan.auto_log`` lists each step (`tte plan --explain` prints it)."""
    g, _ = pipeline.load_stage(model, options.pop("input_shape", None), options.pop("arithmetic", None))
    layers, _ = weighted_layers(g)
    n = len(layers)
    first, others = auto_layers(g)
    cache: dict[tuple, Plan] = {}
    log: list[str] = [f"auto: {AUTO_RULE}"]

    def grouped(i: int) -> bool:
        node = layers[i]
        return node.op == "conv" and node.attrs["groups"] > 1 and not is_depthwise(g, node)

    def name(b: int, weights: dict[int, float]) -> str:
        if not weights:
            return f"auto: biases of the last {b} layers"
        return (f"auto: biases of the last {b} layers, weights of layers "
                + " ".join(f"{i}:{_ratio(r)}" for i, r in sorted(weights.items())))

    def attempt(b: int, weights: dict[int, float], what: str | None = None, scheme: SparseScheme | None = None) -> Plan:
        key = ("full",) if scheme else (b, tuple(sorted((i, max(1, round(r * channel_count(g, layers[i]))))
                                                       for i, r in weights.items())))
        if key not in cache:
            scheme = scheme or SparseScheme(name(b, weights), b, dict(weights))
            try:
                cache[key] = make_plan(pipeline.compile(g, scheme=scheme, classes=classes, **options), sram, flash,
                                       reserve)
            except StreamError as e:  # with stream_input: a scheme that trains the first layers never fits
                if key == (0, ()):  # not even the classifier alone: nothing can stream
                    raise
                cache[key] = Refused(str(e))
        p = cache[key]
        if what:
            log.append(f"auto: {what}: " + (f"does not fit: {p.why}" if isinstance(p, Refused) else
                                             f"{'fits' if p.fits else 'does not fit'} ({kb(p.memory.peak_sram)} + "
                                             f"{kb(reserve)} reserve)"))
        return p

    def done(p: Plan) -> Plan:
        p.auto_log, p.auto_plans = log, len(cache)
        log.append(f"auto: chose {p.program.plan.scheme.name.removeprefix('auto: ')} ({len(cache)} plans)")
        return p

    # the full update, unless its parameters alone (all of them in SRAM) exceed the budget
    if sum(g[x].nbytes for node in layers for x in node.inputs[1:3] if x in g.values) < sram - reserve:
        full = attempt(n, {}, "the full update", SparseScheme.full())
        if full.fits:
            return done(full)
    smallest = attempt(0, {}, "the classifier alone")
    if not smallest.fits:
        hint = smallest.classifier_hint(smallest.sram_over) if smallest.sram_over > 0 else \
            smallest.classifier_hint(smallest.flash_over, in_flash=True)
        if smallest.sram_over > 0 and (stream := smallest.stream_hint()):
            hint = f"{hint}; {stream}" if hint else stream
        raise BudgetError(f"no scheme fits: even training only the classifier needs "
                          f"{kb(smallest.memory.peak_sram)} of SRAM (and {kb(reserve)} kept for stack, heap and C "
                          f"library) and {kb(smallest.memory.flash)} of flash (budgets {kb(sram)} / {kb(flash)}); "
                          f"largest: {smallest.largest_contributors()}" + (f"; {hint}" if hint else ""))
    b, weights = 0, {}

    reached = [RATIOS[0]]  # the ratio the last widened layer reached: the next one's first probe

    def widen(i: int, ratios) -> None:
        """Layer i's weights at the largest of ``ratios`` (ascending) that fits, or left as they are: by bisection
        (memory grows with the ratio), whose first probe is the ratio the previous layer reached (at a tight
        budget, the smallest: one plan says no; at a generous one, the largest: one plan says yes)."""
        nonlocal b, weights
        depth = max(b, n - i)
        lo, hi = -1, len(ratios) - 1  # ratios[lo] fits (lo = -1: none known to), ratios[hi + 1] does not
        k = max((j for j, r in enumerate(ratios) if r <= reached[0]), default=0)
        while lo < hi:
            what = f"layer {i} ({layers[i].name}) weights at {_ratio(ratios[k])}"
            lo, hi = (k, hi) if attempt(depth, {**weights, i: ratios[k]}, what).fits else (lo, k - 1)
            k = (lo + hi + 1) // 2
        if lo >= 0:
            b, weights = depth, {**weights, i: ratios[lo]}
        reached[0] = ratios[lo] if lo >= 0 else 0.0

    for i in first:  # 1/8 of the first choices' channels (a grouped conv trains whole or not at all)
        widen(i, (1.0,) if grouped(i) else RATIOS[:1])
    reached[0] = RATIOS[0]
    for i in sorted(weights, reverse=True):  # raised, last first
        if not grouped(i):
            widen(i, RATIOS[RATIOS.index(weights[i]) + 1:])
    lo, hi = b, n  # more biases: memory grows with their depth
    while lo < hi:
        mid = (lo + hi + 1) // 2
        lo, hi = (mid, hi) if attempt(mid, weights, f"biases of the last {mid} layers").fits else (lo, mid - 1)
    b = lo
    if b == n:  # every bias trains: the other weights
        for i in others:
            widen(i, (1.0,) if grouped(i) else RATIOS)
    return done(attempt(b, weights))
