"""Human-readable rendering of reports (rich tables)."""

from __future__ import annotations

import os

from rich.console import Console
from rich.table import Table

from .inspect import Report


def _shape(s) -> str:
    return "x".join(map(str, s))


def _kib(n: int) -> str:
    return f"{n:,} B ({n / 1024:.1f} KB)"


def print_inspect(report: Report, console: Console | None = None) -> None:
    console = console or Console(width=160)
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

    console = console or Console(width=140)
    m, prog = plan.memory, plan.program
    console.print(f"[bold]{prog.forward.name}[/bold]: scheme {prog.plan.scheme.name}, "
                  f"{len(prog.params)} trained tensors")
    t = Table(show_header=True, header_style="bold", title_justify="left")
    t.add_column("memory")
    t.add_column("bytes", justify="right")
    t.add_column("KB", justify="right")
    t.add_column("what")
    peak_node = m.graph.nodes[m.peak_step].name if m.graph.nodes else ""
    rows = [
        ("SRAM: arena", m.arena.size, f"lower bound {m.arena.lower_bound:,} B ({m.arena.order}); peak at {peak_node}"),
        ("SRAM: trained parameters", m.trained_bytes, f"{len(m.trained)} tensors (trained slices only)"),
        ("SRAM: optimizer state", m.optimizer_bytes, ", ".join(m.optimizer) or "none"),
        ("SRAM: kernel scratch", m.scratch, "largest single-kernel scratch"),
        ("SRAM: peak", m.peak_sram, f"budget {plan.sram:,} B: " + ("fits" if plan.sram_over <= 0 else
                                                                    f"{plan.sram_over:,} B over")),
        ("flash: frozen parameters", sum(m.frozen_flash.values()), "weights, biases, step factors"),
        ("flash: requantization multipliers", m.quant_flash, "float32 per output channel"),
        ("flash: initial trained values", m.initial_flash, "copied to SRAM at start"),
        ("flash: code (estimate)", m.code_estimate, "per kernel kind, until the Cortex-M build measures it"),
        ("flash: total", m.flash, f"budget {plan.flash:,} B: " + ("fits" if plan.flash_over <= 0 else
                                                                   f"{plan.flash_over:,} B over")),
    ]
    for name, n, what in rows:
        style = "bold" if name.endswith(("peak", "total")) else None
        t.add_row(name, f"{n:,}", f"{n / 1024:.1f}", what, style=style)
    console.print(t)
    live = ", ".join(f"{name} {_kib(b)}" for name, b in m.live_at_peak()[:4])
    console.print(f"live at the arena peak: {live}")
    for note in prog.notes:
        console.print(f"note: {note}")
    if explain:
        for line in prog.pass_log:
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


def plan_text(plan) -> str:
    """The memory report as plain text (the emitted directory's memory.txt)."""
    console = Console(width=140, record=True, file=open(os.devnull, "w"), color_system=None)
    print_plan(plan, console=console)
    return console.export_text()
