"""The training loop on Cortex-M4 and M7 (QEMU mps2-an386 / mps2-an500): memory and instructions.

For each model of ../shared/models (128x128, batch 1, 10 classes): `tte compile` with the published
scheme nearest the paper's setting (and the full update, which does not fit), built with
arm-none-eabi-gcc -O2 into RAM = 256 KB and FLASH = 1 MB, run under QEMU with -icount: flash used, RAM
used (data + bss + heap + stack region) and the stack's measured peak, instructions per training step
and per inference (SysTick, 5 instructions per tick under -icount shift=3; the last of 5 steps), and
where a step's instructions go (a second build with -DTTE_PROFILE).  Beside the paper's figures: peak
memory 141 / 135 / 173 KB, and 373 / 443 / 546 ms per image on a 216 MHz Cortex-M7 (about 81 M / 96 M /
118 M cycles).

    python benchmarks/cortex_m.py [--json] [--models mbv2-w0.35 ...] [--no-profile]

--json prints one JSON row per model and core instead of the table: {model, scheme, core, flash_bytes, ram_bytes,
stack_peak, step_instructions, inference_instructions, paper_kb, paper_mcycles, profile: {op kind: share}}.
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

ROOT = pathlib.Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"
MODELS = {"mbv2-w0.35": ("99kb", 141, 81), "proxyless-w0.3": ("98kb", 135, 96), "mcunet-5fps": ("99kb", 173, 118)}


def compile_model(model, scheme, out) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "tte", "compile", str(model), "--sram", "256k", "--flash", "1m",
                           "--scheme", str(scheme), "--classes", "10", "--lr", "0.003", "-o", str(out)],
                          capture_output=True, text=True)


def profile(directory: pathlib.Path, target: str) -> list[tuple[str, float]]:
    p = subprocess.run(["make", "-B", "-s", "-C", str(directory), f"run-{target}", "EXTRA_CFLAGS=-DTTE_PROFILE"],
                       capture_output=True, text=True, check=True)
    ticks = {m.group(1): int(m.group(2)) for m in re.finditer(r"^profile (\S+) ticks (\d+)", p.stdout, re.M)}
    total = sum(ticks.values()) or 1
    return sorted(((k, v / total) for k, v in ticks.items()), key=lambda kv: -kv[1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--json", action="store_true", help="one JSON row per model and core instead of the table")
    ap.add_argument("--models", nargs="+", choices=sorted(MODELS), default=list(MODELS))
    ap.add_argument("--no-profile", action="store_true", help="skip the -DTTE_PROFILE build (where a step goes)")
    args = ap.parse_args()
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
