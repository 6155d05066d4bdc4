"""Human-readable rendering of reports (rich tables)."""

from __future__ import annotations

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
