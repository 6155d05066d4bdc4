"""The training loop on Cortex-M4 and M7 (QEMU mps2-an386 / mps2-an500): memory and instructions.

For each model of ../shared/models (128x128, batch 1, 10 classes): `tte compile --favor speed` (the fastest
program that fits 256 KB) with the published scheme nearest the paper's setting (and the full update, which does not
fit), built with
arm-none-eabi-gcc -O2 into RAM = 256 KB and FLASH = 1 MB, run under QEMU with -icount: flash used, RAM
used (data + bss + heap + stack region) and the stack's measured peak, instructions per training step
and per inference (SysTick, 5 instructions per tick under -icount shift=3; the last of 5 steps), and
where a step's instructions go (a second build with -DTTE_PROFILE).  Beside the paper's figures: peak
memory 141 / 135 / 173 KB, and 373 / 443 / 546 ms per image on a 216 MHz Cortex-M7 (about 81 M / 96 M /
118 M cycles).

    python benchmarks/cortex_m.py [--json] [--models mbv2-w0.35 ...] [--no-profile]

--json prints one JSON row per model and core instead of the table: {model, scheme, core, flash_bytes, ram_bytes,
stack_peak, step_instructions, inference_instructions, paper_kb, paper_mcycles, profile: {op kind: share}}.

    python benchmarks/cortex_m.py --issue15 [--json] [--models ...] [--schemes 49kb,largest,64k] [--cores m7]
        [--variants tte,no-patching,no-block-backward]

builds instead the images of issue 15's point-1 plans: each model's 49kb scheme and its largest published scheme,
compiled with --sram = the issue's target + the 9 KB runtime reserve (106 / 101 / 130 KB + 9 KB for the 49kb
schemes, 180 KB + 9 KB for the largest), so that the linker's RAM is exactly that budget, and runs them under QEMU;
beside each, the same plan with a memory transformation left out (no patching of the frozen prefix, no fused block
backward), linked with RAM = its own need (rounded up to a KB), to report the instructions per step each
transformation costs or saves.  ``64k``: the scheme `--scheme auto --sram 64k --stream-input` finds (issue 15's
point 2), linked with RAM = 64 KB, its input read row by row from the demo's generator (variant ``tte`` only: the
input cannot stream unpatched, and the others do not fit).  Rows: {model, scheme, variant, core, sram_budget,
planned_peak, reserve, ram_bytes, stack_peak, step_instructions, inference_instructions, seconds}.
"""

from __future__ import annotations

import argparse
import json
import pathlib
import re
import subprocess
import sys
import tempfile

from rich.console import Console
from rich.table import Table

from tte.device import INSTRUCTIONS_PER_TICK, run_demo
from tte.errors import TteError

ROOT = pathlib.Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"
MODELS = {"mbv2-w0.35": ("99kb", 141, 81), "proxyless-w0.3": ("98kb", 135, 96), "mcunet-5fps": ("99kb", 173, 118)}


def compile_model(model, scheme, out) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "tte", "compile", str(model), "--sram", "256k", "--flash", "1m",
                           "--scheme", str(scheme), "--classes", "10", "--lr", "0.003", "--favor", "speed", "-o",
                           str(out)],
                          capture_output=True, text=True)


def profile(directory: pathlib.Path, target: str) -> list[tuple[str, float]]:
    p = subprocess.run(["make", "-B", "-s", "-C", str(directory), f"run-{target}", "EXTRA_CFLAGS=-DTTE_PROFILE"],
                       capture_output=True, text=True, check=True)
    ticks = {m.group(1): int(m.group(2)) for m in re.finditer(r"^profile (\S+) ticks (\d+)", p.stdout, re.M)}
    total = sum(ticks.values()) or 1
    return sorted(((k, v / total) for k, v in ticks.items()), key=lambda kv: -kv[1])


# issue 15, point 1: the 49kb schemes' targets (0.75x the paper's figure, to a KB) and the largest schemes' 180 KB
TARGETS_KB = {"mbv2-w0.35": (106, "138kb"), "proxyless-w0.3": (101, "148kb"), "mcunet-5fps": (130, "148kb")}
LARGEST_KB = 180
VARIANTS = {"tte": {}, "no-patching": {"patch": False}, "no-block-backward": {"block_backward": False}}


def variant_options(variant: str) -> dict:
    return dict(VARIANTS[variant])


def issue15_image(name: str, label: str, variant: str, out: pathlib.Path) -> tuple[int, object]:
    """Compile ``name`` with its ``label`` scheme into ``out``: ``tte`` with --sram = the issue's target + the
    runtime reserve (a plan that misses it fails here, as `tte compile` would), another variant with --sram = its own
    need rounded up to a KB.  Returns the SRAM budget (the linker's RAM) and the plan."""
    from tte.codegen.project import RUNTIME_RESERVE, write_project
    from tte.plan import plan

    model = SHARED / "models" / f"{name}.int8.onnx"
    if label == "64k":  # issue 15's point 2: auto at 64 KB, the input streamed
        p = plan(model, sram=64 * 1024, scheme="auto", classes=10, lr=0.003, stream_input=True).check()
        write_project(p.program, p, out)
        return 64 * 1024, p
    scheme = SHARED / "schemes" / f"{name}.{label}.json"
    goal_kb = TARGETS_KB[name][0] if label == "49kb" else LARGEST_KB
    options = dict(scheme=scheme, classes=10, lr=0.003, **variant_options(variant))
    if variant == "tte":
        sram = goal_kb * 1024 + RUNTIME_RESERVE
    else:
        sram = -(-plan(model, sram=2**30, **options).sram_needed // 1024) * 1024
    p = plan(model, sram=sram, **options).check()
    write_project(p.program, p, out)
    return sram, p


def issue15(args) -> None:
    import time

    table = Table(title="Issue 15's point-1 plans on Cortex-M under QEMU: RAM = --sram (the target + 9 KB reserve "
                        "for tte; a variant without a transformation: its own need), FLASH = 1 MB")
    for col in ("model", "scheme", "variant", "core", "RAM = --sram", "planned peak + reserve", "RAM used (stack peak)",
                "M instr / step", "vs tte", "M instr / inference", "build + run"):
        table.add_column(col, justify="left" if col in ("model", "scheme", "variant", "core") else "right")
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.models:
            for which in args.schemes.split(","):
                label = TARGETS_KB[name][1] if which == "largest" else which
                base: dict[str, int] = {}
                for variant in args.variants.split(",") if label != "64k" else ["tte"]:
                    out = pathlib.Path(tmp) / f"{name}-{label}-{variant}"
                    try:
                        sram, p = issue15_image(name, label, variant, out)
                    except TteError as e:  # a plan over its budget: the row says so
                        if args.json:
                            print(json.dumps({"model": name, "scheme": label, "variant": variant, "error": str(e)}),
                                  flush=True)
                        table.add_row(name, label, variant, "-", "-", str(e)[:90], "", "", "", "", "")
                        continue
                    for core in args.cores.split(","):
                        target = f"cortex-{core}"
                        t = time.perf_counter()
                        r = run_demo(out, target)
                        seconds = time.perf_counter() - t
                        step = r.step_instructions[-1] if r.step_instructions and r.exit_code == 0 else None
                        if variant == "tte" and step:
                            base[core] = step
                        row = {"model": name, "scheme": label, "variant": variant, "core": core.upper(),
                               "sram_budget": sram, "planned_peak": p.memory.peak_sram, "reserve": p.reserve,
                               "ram_bytes": r.ram_bytes, "stack_peak": r.stack_peak, "exit_code": r.exit_code,
                               "step_instructions": step, "inference_instructions": r.inference_instructions,
                               "seconds": round(seconds, 1)}
                        if args.json:
                            print(json.dumps(row), flush=True)
                            continue
                        ratio = f"{step / base[core]:.3f}" if step and base.get(core) else ""
                        table.add_row(name, label, variant, core.upper(), f"{sram / 1024:,.0f} KB",
                                      f"{p.memory.peak_sram / 1024:,.1f} + {p.reserve / 1024:,.0f} KB",
                                      f"{r.ram_bytes / 1024:,.1f} KB ({r.stack_peak} B)",
                                      f"{step / 1e6:,.1f}" if step else f"exit {r.exit_code}", ratio,
                                      f"{(r.inference_instructions or 0) / 1e6:,.1f}", f"{seconds:.0f} s")
                        print(f"{name} {label} {variant} {core}: {seconds:.0f} s", file=sys.stderr)
    if not args.json:
        Console(width=220).print(table)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--json", action="store_true", help="one JSON row per model and core instead of the table")
    ap.add_argument("--models", nargs="+", choices=sorted(MODELS), default=list(MODELS))
    ap.add_argument("--no-profile", action="store_true", help="skip the -DTTE_PROFILE build (where a step goes)")
    ap.add_argument("--issue15", action="store_true",
                    help="build and run issue 15's point-1 plans with RAM = their budget (see above)")
    ap.add_argument("--schemes", default="49kb,largest,64k",
                    help="--issue15: of 49kb, largest, 64k (auto at 64 KB, the input streamed)")
    ap.add_argument("--cores", default="m7", help="--issue15: m4, m7 or both (m4,m7)")
    ap.add_argument("--variants", default=",".join(VARIANTS), help=f"--issue15: of {', '.join(VARIANTS)}")
    args = ap.parse_args()
    if args.issue15:
        bad = [v for v in args.variants.split(",") if v not in VARIANTS] + \
            [s for s in args.schemes.split(",") if s not in ("49kb", "largest", "64k")] + \
            [c for c in args.cores.split(",") if c not in ("m4", "m7")]
        if bad:
            raise SystemExit(f"benchmarks/cortex_m.py: unknown {', '.join(bad)}")
        issue15(args)
        return
    table = Table(title="Training on Cortex-M under QEMU: RAM = 256 KB, FLASH = 1 MB, 128x128, batch 1, 10 classes")
    for col in ("model", "scheme", "core", "flash", "RAM (stack peak)", "M instr / step", "M instr / inference",
                "paper: memory, M cycles / step", "where a step goes (top 3)"):
        table.add_column(col, justify="left" if col in ("model", "scheme", "core", "where a step goes (top 3)")
                         else "right")
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.models:
            label, paper_kb, paper_mcycles = MODELS[name]
            model = SHARED / "models" / f"{name}.int8.onnx"
            if not args.json:
                full = compile_model(model, "full", pathlib.Path(tmp) / f"{name}-full")
                if full.returncode != 0:
                    needs = re.search(r"needs ([\d.,]+ KB) of SRAM", full.stderr)
                    table.add_row(name, "full", "-", "-", f"does not fit: needs {needs.group(1) if needs else '?'}",
                                  "", "", "", "")
            out = pathlib.Path(tmp) / name
            c = compile_model(model, SHARED / "schemes" / f"{name}.{label}.json", out)
            if c.returncode != 0:
                table.add_row(name, label, "-", "-", c.stderr.strip()[-80:], "", "", "", "")
                continue
            for target in ("cortex-m4", "cortex-m7"):
                r = run_demo(out, target)
                shares = [] if args.no_profile else profile(out, target)
                if args.json:
                    print(json.dumps({"model": name, "scheme": label, "core": target[-2:].upper(),
                                      "flash_bytes": r.flash_bytes, "ram_bytes": r.ram_bytes,
                                      "stack_peak": r.stack_peak, "step_instructions": r.step_instructions[-1],
                                      "inference_instructions": r.inference_instructions, "paper_kb": paper_kb,
                                      "paper_mcycles": paper_mcycles,
                                      "profile": {k: round(v, 4) for k, v in shares}}), flush=True)
                    continue
                top = ", ".join(f"{k} {share:.0%}" for k, share in shares[:3])
                table.add_row(name, label, target[-2:].upper(), f"{r.flash_bytes / 1024:,.1f} KB",
                              f"{r.ram_bytes / 1024:,.1f} KB ({r.stack_peak} B)",
                              f"{r.step_instructions[-1] / 1e6:,.0f}", f"{r.inference_instructions / 1e6:,.0f}",
                              f"{paper_kb} KB, {paper_mcycles}", top)
            print(f"{name}: done ({INSTRUCTIONS_PER_TICK} instructions per SysTick tick)", file=sys.stderr)
    if not args.json:
        Console(width=200).print(table)


if __name__ == "__main__":
    main()
