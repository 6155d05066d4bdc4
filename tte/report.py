"""Human-readable rendering of reports: rich tables as wide as the terminal (as wide as their contents when the
output is not a terminal: a pipe or a file), and the memory report as plain text (memory.txt)."""

from __future__ import annotations

import re
import textwrap

from rich.console import Console
from rich.table import Table

from .inspect import Report
from .units import kb

TEXT_WIDTH = 100  # memory.txt: plain text, no line longer than this


def terminal_console() -> Console:
    """A console on stdout: the terminal's width on a terminal; on a pipe or a file, no width limit (tables take
    the width of their contents and are never cut)."""
    c = Console()
    if not c.is_terminal:
        c = Console(width=1000, soft_wrap=True)
    return c


def _shape(s) -> str:
    return "x".join(map(str, s))


def _kib(n: int) -> str:
    return f"{n:,} B ({n / 1024:.1f} KB)"


def print_inspect(report: Report, console: Console | None = None) -> None:
    console = console or terminal_console()
    t = Table(title=f"{report.model}", title_justify="left", show_lines=False, header_style="bold")
    for col, just in [("#", "right"), ("layer", "left"), ("op", "left"), ("input", "left"), ("output", "left"),
                      ("kernel/stride/groups", "left"), ("params", "right"), ("MACs", "right"),
                      ("out scale", "right"), ("out zp", "right")]:
        t.add_column(col, justify=just, no_wrap=col != "layer")
    for i, r in enumerate(report.layers):
        geo = ""
        if r.kernel is not None:
            geo = f"{_shape(r.kernel)} /{_shape(r.stride)}" + (f" g{r.groups}" if r.groups not in (None, 1) else "")
        t.add_row(str(i), r.name, r.op, _shape(r.input_shape), _shape(r.output_shape), geo,
                  f"{r.params:,}" if r.params else "", f"{r.macs:,}" if r.macs else "",
                  "" if r.output_scale is None else f"{r.output_scale:.4g}",
                  "" if r.output_zero_point is None else str(r.output_zero_point))
    console.print(t)
    console.print(f"params: {report.params:,} ({report.weight_params:,} int8 weights + {report.bias_params:,} int32 "
                  f"biases, {_kib(report.param_bytes)})")
    console.print(f"MACs: {report.macs:,} ({report.macs / 1e6:.2f} M)")
    console.print(f"peak int8 activation memory (inference): {_kib(report.peak_activation_bytes)} "
                  f"at {report.peak_at}")
    console.print(f"arithmetic: {report.arithmetic}")
    for note in report.notes:
        console.print(f"note: {note}", markup=False, highlight=False)


def print_plan(plan, explain: bool = False, timeline: bool = False, console: Console | None = None) -> None:
    from .passes.arena import timeline as arena_timeline

    console = console or terminal_console()
    m, prog = plan.memory, plan.program
    console.print(f"[bold]{prog.forward.name}[/bold]: scheme {prog.plan.scheme.name}, "
                  f"{len(prog.params)} trained tensors", markup=True, highlight=False)
    t = Table(show_header=True, header_style="bold", title_justify="left")
    t.add_column("memory", no_wrap=True)
    t.add_column("bytes", justify="right", no_wrap=True)
    t.add_column("KB", justify="right", no_wrap=True)
    t.add_column("what")
    for name, n, what in plan_rows(plan):
        style = "bold" if name.endswith(("peak", "total")) else None
        t.add_row(name, f"{n:,}", f"{n / 1024:.1f}", what, style=style)
    console.print(t)
    console.print(f"live at the arena peak: {_live(plan)}", markup=False, highlight=False)
    for note in prog.notes:
        console.print(f"note: {note}", markup=False, highlight=False)
    if explain:
        for line in plan.auto_log + prog.pass_log:
            console.print(line, markup=False, highlight=False)
    if timeline:
        console.print(arena_timeline(m.arena, steps=[n.name for n in m.graph.nodes]), markup=False,
                      highlight=False)


def plot_timeline(plan, path) -> None:
    """The arena as rectangles (step x offset), one per buffer; needs matplotlib (the 'plot' extra)."""
    from .errors import TteError

    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise TteError("--plot needs matplotlib: pip install 'tte[plot]'") from None
    m = plan.memory
    fig, ax = plt.subplots(figsize=(12, 5))
    for b in m.arena.buffers:
        off = m.arena.offsets[b.name]
        ax.add_patch(plt.Rectangle((b.start, off / 1024), b.end - b.start + 1, b.size / 1024, alpha=0.6,
                                   edgecolor="black", linewidth=0.3))
    ax.set_xlim(0, max((b.end for b in m.arena.buffers), default=0) + 1)
    ax.set_ylim(0, m.arena.size / 1024 * 1.05)
    ax.set_xlabel("step (node of the scheduled training graph)")
    ax.set_ylabel("arena offset (KB)")
    ax.set_title(f"{plan.program.forward.name}, scheme {plan.program.plan.scheme.name}: arena "
                 f"{m.arena.size / 1024:.1f} KB (lower bound {m.arena.lower_bound / 1024:.1f} KB)")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def plan_rows(plan) -> list[tuple[str, int, str]]:
    """The memory report's rows: (what, bytes, details); SRAM counts the runtime reserve as a line of its own."""
    m = plan.memory
    peak_node = m.graph.nodes[m.peak_step].name if m.graph.nodes else ""
    return [
        ("SRAM: arena", m.arena.size, f"lower bound {m.arena.lower_bound:,} B ({m.arena.order}); peak at {peak_node}"
         + ("; no input: it is streamed in rows (--stream-input)" if m.input_streamed else "")),
        ("SRAM: trained parameters", m.trained_bytes, f"{len(m.trained)} tensors (trained slices only)"),
        ("SRAM: optimizer state", m.optimizer_bytes, ", ".join(m.optimizer) or "none"),
        ("SRAM: kernel scratch", m.scratch, "largest single-kernel scratch"),
        ("SRAM: peak", m.peak_sram, "the training step: arena, trained parameters, optimizer state, scratch"),
        ("SRAM: runtime reserve", plan.reserve, plan.reserve_what + " (tte run measures the stack)"),
        ("SRAM: total", plan.sram_needed, f"budget {plan.sram:,} B: " + ("fits" if plan.sram_over <= 0 else
                                                                          f"{plan.sram_over:,} B over")),
        ("flash: frozen parameters", sum(m.frozen_flash.values()), "weights, biases, step factors"),
        ("flash: requantization multipliers", m.quant_flash, "float32 per output channel"),
        ("flash: initial trained values", m.initial_flash, "copied to SRAM at start"),
        ("flash: code (estimate)", m.code_estimate, "per kernel kind, until the Cortex-M build measures it"),
        ("flash: total", m.flash, f"budget {plan.flash:,} B: " + ("fits" if plan.flash_over <= 0 else
                                                                   f"{plan.flash_over:,} B over")),
    ]


def _live(plan) -> str:
    return ", ".join(f"{name} {_kib(b)}" for name, b in plan.memory.live_at_peak()[:4])


def plan_text(plan, width: int = TEXT_WIDTH) -> str:
    """The memory report as plain text (the emitted directory's memory.txt): ASCII columns, no line longer than
    ``width``; the last column and long lines wrap."""
    prog = plan.program
    rows = [(name, f"{n:,}", f"{n / 1024:.1f}", what) for name, n, what in plan_rows(plan)]
    head = ("memory", "bytes", "KB", "what")
    w = [max(len(r[i]) for r in rows + [head]) for i in range(3)]
    rest = max(width - sum(w) - 6, 20)

    def line(cells, what: str) -> list[str]:
        lead = f"{cells[0]:<{w[0]}}  {cells[1]:>{w[1]}}  {cells[2]:>{w[2]}}  "
        parts = textwrap.wrap(what, rest) or [""]
        return [(lead + parts[0]).rstrip()] + [(" " * len(lead) + p).rstrip() for p in parts[1:]]

    out = textwrap.wrap(f"{prog.forward.name}: scheme {prog.plan.scheme.name}, {len(prog.params)} trained tensors",
                        width)
    out += [""] + line(head, head[3]) + ["-" * min(width, sum(w) + 6 + max(len(r[3]) for r in rows))]
    for r in rows:
        out += line(r[:3], r[3])
    out += [""] + textwrap.wrap(f"live at the arena peak: {_live(plan)}", width, subsequent_indent="  ")
    for note in prog.notes:
        out += textwrap.wrap(f"note: {note}", width, subsequent_indent="  ")
    return "\n".join(out) + "\n"


def compile_summary(plan, out_dir, files: int) -> str:
    """What `tte compile` prints: the files, then the figures of memory.txt: the training step's peak SRAM, the
    runtime reserve on a line of its own, their total against the budget, and flash."""
    m = plan.memory
    over = plan.sram_over
    return "\n".join([
        f"wrote {files} files to {out_dir}: scheme {plan.program.plan.scheme.name} (the memory report: memory.txt)",
        f"SRAM: peak {_kib(m.peak_sram)}: arena {kb(m.arena.size)}, trained parameters {kb(m.trained_bytes)}, "
        f"optimizer state {kb(m.optimizer_bytes)}, kernel scratch {kb(m.scratch)}",
        f"SRAM: runtime reserve {_kib(plan.reserve)}: {plan.reserve_what}",
        f"SRAM: total {_kib(plan.sram_needed)} of the {_kib(plan.sram)} budget"
        + (f" ({over:,} B over)" if over > 0 else ""),
        f"flash: {_kib(m.flash)} of the {_kib(plan.flash)} budget"])


MEMORY_ROW = re.compile(r"^(SRAM|flash): ([a-z ()]+?) {2,}([\d,]+) ", re.M)


def read_memory_text(text: str) -> dict[str, int]:
    """The rows of a memory.txt (:func:`plan_text`) as {"SRAM: peak": bytes, "SRAM: runtime reserve": bytes, ...}:
    what `tte run` prints beside the figures it measures."""
    return {f"{m.group(1)}: {m.group(2)}": int(m.group(3).replace(",", "")) for m in MEMORY_ROW.finditer(text)}


def progress_bar(console=None, transient: bool = False, *fields):
    """A progress bar on stderr (the CLI's long commands)."""
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    return Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), *fields,
                    TimeElapsedColumn(), TextColumn("eta"), TimeRemainingColumn(),
                    console=console or Console(stderr=True), transient=transient, redirect_stdout=False,
                    redirect_stderr=False)
