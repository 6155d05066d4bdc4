"""Build and run an emitted project's demo on the host or, under QEMU, on Cortex-M4 / M7."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from dataclasses import dataclass, field

from .errors import TteError

# QEMU with -icount shift=3 runs SysTick (clocked from the CPU) once per 5 guest instructions
INSTRUCTIONS_PER_TICK = 5
TOOLS = {"host": ["gcc", "make"], "cortex-m4": ["arm-none-eabi-gcc", "qemu-system-arm", "make"],
         "cortex-m7": ["arm-none-eabi-gcc", "qemu-system-arm", "make"]}


@dataclass
class RunResult:
    target: str
    exit_code: int
    output: str
    losses: list[float] = field(default_factory=list)
    loss_bits: list[str] = field(default_factory=list)
    step_instructions: list[int] = field(default_factory=list)
    inference_instructions: int | None = None
    stack_peak: int | None = None
    flash_bytes: int | None = None
    ram_bytes: int | None = None

    def summary(self) -> str:
        parts = [f"{self.target}: exit code {self.exit_code}, {len(self.losses)} steps"]
        if self.flash_bytes is not None:
            parts.append(f"flash {self.flash_bytes:,} B, RAM {self.ram_bytes:,} B (data + bss + heap + stack)")
        if self.stack_peak is not None:
            parts.append(f"stack peak {self.stack_peak:,} B")
        if self.step_instructions:
            parts.append(f"{self.step_instructions[-1] / 1e6:,.1f} M instructions per step")
        if self.inference_instructions:
            parts.append(f"{self.inference_instructions / 1e6:,.1f} M per inference")
        return "; ".join(parts)


def _size(elf: str) -> tuple[int, int]:
    out = subprocess.run(["arm-none-eabi-size", "-A", elf], capture_output=True, text=True, check=True).stdout
    sections = {m.group(1): int(m.group(2)) for m in re.finditer(r"^(\.\S+)\s+(\d+)\s+\d+", out, re.M)}
    flash = sum(sections.get(s, 0) for s in (".text", ".ARM.exidx", ".data"))
    ram = sum(sections.get(s, 0) for s in (".data", ".bss", ".heap", ".stack"))
    return flash, ram


def run_demo(directory: str | os.PathLike, target: str = "host", timeout: int = 900) -> RunResult:
    missing = [t for t in TOOLS[target] if shutil.which(t) is None]
    if missing:
        raise TteError(f"{target} needs {', '.join(missing)}: on Debian, apt-get install --no-install-recommends "
                       f"gcc-arm-none-eabi libnewlib-arm-none-eabi qemu-system-arm")
    directory = os.fspath(directory)
    if not os.path.exists(os.path.join(directory, "Makefile")):
        raise TteError(f"{directory}: no Makefile; pass a directory written by `tte compile`")
    build = "all" if target == "host" else target
    p = subprocess.run(["make", "-s", "-C", directory, build], capture_output=True, text=True)
    if p.returncode != 0:
        last = p.stderr.strip().splitlines()[-1] if p.stderr.strip() else p.stdout.strip()
        raise TteError(f"building {target} failed: {last}")
    run = "run" if target == "host" else f"run-{target}"
    try:
        p = subprocess.run(["make", "-s", "-C", directory, run], capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        raise TteError(f"the {target} run did not finish in {timeout} s") from None
    out = p.stdout
    code = p.returncode
    if code != 0:  # make reports the program's failure as its own exit code 2: read the demo's
        m = re.search(r"Error (\d+)", p.stderr)
        code = int(m.group(1)) if m else code
    r = RunResult(target, code, out)
    for m in re.finditer(r"^step \d+ loss (\S+) \(([0-9a-f]{8})\)(?: ticks (\d+))?", out, re.M):
        r.losses.append(float(m.group(1)))
        r.loss_bits.append(m.group(2))
        if target != "host" and m.group(3):
            r.step_instructions.append(int(m.group(3)) * INSTRUCTIONS_PER_TICK)
    m = re.search(r"^inference ticks (\d+)", out, re.M)
    if m and target != "host":
        r.inference_instructions = int(m.group(1)) * INSTRUCTIONS_PER_TICK
    m = re.search(r"^stack peak (\d+)", out, re.M)
    if m:
        r.stack_peak = int(m.group(1))
    if target != "host":
        r.flash_bytes, r.ram_bytes = _size(os.path.join(directory, f"tte_demo_{target}.elf"))
    return r
