"""Build and run an emitted project's demo on the host or, under QEMU, on Cortex-M4 / M7: on its built-in
pseudo-random inputs, or on a sample file written by `tte data pack` (read by semihosting under QEMU)."""

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
class EpochResult:
    """One epoch of the demo on a sample file, as it printed it."""

    epoch: int
    loss: float  # mean training loss (printed with 6 decimals)
    loss_bits: str  # float32 bits of the mean, hex
    steps: int
    correct: int
    tested: int
    ticks_per_step: int | None = None  # Cortex-M: SysTick ticks per training step (the epoch's mean)

    @property
    def accuracy(self) -> float:
        return self.correct / self.tested if self.tested else 0.0


EPOCH = re.compile(r"^epoch (\d+) train loss (\S+) \(([0-9a-f]{8})\) over (\d+) steps, test accuracy (\d+)/(\d+) "
                   r"\(\S+%\)(?: ticks/step (\d+))?", re.M)


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
    epochs: list[EpochResult] = field(default_factory=list)
    sections: dict[str, int] = field(default_factory=dict)  # Cortex-M: the image's RAM sections (.data, .bss, ...)
    planned: dict[str, int] = field(default_factory=dict)  # memory.txt's rows ("SRAM: peak", "SRAM: runtime reserve")

    def summary(self) -> str:
        if self.epochs:
            e = self.epochs[-1]
            n = len(self.epochs)
            parts = [f"{self.target}: exit code {self.exit_code}, {n} epoch{'s' * (n != 1)} of {e.steps} steps, "
                     f"test accuracy {e.correct}/{e.tested} ({100 * e.accuracy:.1f}%)"]
        else:
            parts = [f"{self.target}: exit code {self.exit_code}, {len(self.losses)} steps"]
        if self.flash_bytes is not None:
            parts.append(f"flash {self.flash_bytes:,} B, RAM {self.ram_bytes:,} B (data + bss + heap + stack)")
        memory = self.memory_line()
        if self.stack_peak is not None and memory is None:
            parts.append(f"stack peak {self.stack_peak:,} B")
        if self.step_instructions:
            parts.append(f"{self.step_instructions[-1] / 1e6:,.1f} M instructions per step")
        if self.inference_instructions:
            parts.append(f"{self.inference_instructions / 1e6:,.1f} M per inference")
        return "; ".join(parts) + ("\n" + memory if memory else "")

    def memory_line(self) -> str | None:
        """The plan's SRAM figures (memory.txt) beside what the Cortex-M image measures: the training step's
        peak beside the image's static data (.data + .bss), the runtime reserve beside the stack's measured peak."""
        peak, reserve = self.planned.get("SRAM: peak"), self.planned.get("SRAM: runtime reserve")
        if peak is None or reserve is None or not self.sections:
            return None
        static = self.sections.get(".data", 0) + self.sections.get(".bss", 0)
        stack, heap = self.sections.get(".stack", 0), self.sections.get(".heap", 0)
        measured = f"stack peak {self.stack_peak:,} B of its {stack:,} B" if self.stack_peak is not None else \
            f"stack {stack:,} B (peak not reported)"
        return (f"SRAM: planned peak {peak:,} B, runtime reserve {reserve:,} B (memory.txt); measured: .data + .bss "
                f"{static:,} B (the peak + {static - peak:,} B of C library and runtime statics), {measured}, "
                f"heap {heap:,} B")


def _size(elf: str) -> tuple[int, int, dict[str, int]]:
    """Flash used, RAM used (data + bss + heap + stack) and the section sizes of an ELF image."""
    out = subprocess.run(["arm-none-eabi-size", "-A", elf], capture_output=True, text=True, check=True).stdout
    sections = {m.group(1): int(m.group(2)) for m in re.finditer(r"^(\.\S+)\s+(\d+)\s+\d+", out, re.M)}
    flash = sum(sections.get(s, 0) for s in (".text", ".ARM.exidx", ".data"))
    ram = sum(sections.get(s, 0) for s in (".data", ".bss", ".heap", ".stack"))
    return flash, ram, sections


def _planned(directory: str) -> dict[str, int]:
    """The rows of the directory's memory.txt (what `tte compile` planned), or {} without one."""
    from .report import read_memory_text

    try:
        with open(os.path.join(directory, "memory.txt"), encoding="utf-8") as f:
            return read_memory_text(f.read())
    except (OSError, UnicodeDecodeError):
        return {}


def _data_args(directory: str, data, epochs: int | None) -> tuple[list[str], int]:
    """make's DATA= / EPOCHS= for a sample file, checked against the directory's model first; and the number of
    samples the demo will go through."""
    from .codegen.project import read_record
    from .data import check_format, model_input, read_header

    path = os.path.abspath(os.fspath(data))
    if any(c.isspace() for c in path):
        raise TteError(f"the sample file's path '{path}' has a space in it: the demo's command line (and QEMU's "
                       "semihosting one) splits at spaces; move or link the file")
    if len(path) > 200:
        raise TteError(f"the sample file's path is {len(path)} characters long; the demo's command line under QEMU "
                       "(semihosting) takes at most 255 bytes: move the file to a shorter path")
    epochs = 1 if epochs is None else epochs
    if int(epochs) != epochs or not 1 <= epochs <= 1_000_000:
        raise TteError(f"--epochs must be a whole number from 1 to 1000000, got {epochs}")
    head = read_header(path)
    record, _ = read_record(directory)
    model = model_input(directory)
    g = model.graph
    classes = record["options"].get("classes") or g[g.outputs[0]].shape[-1]
    check_format(head.format, head.classes, model.format, classes, f"the samples in '{data}'")
    return [f"DATA={path}", f"EPOCHS={int(epochs)}"], int(epochs) * head.count


def run_demo(directory: str | os.PathLike, target: str = "host", timeout: int | None = None, data=None,
             epochs: int | None = None) -> RunResult:
    """Build the demo of a `tte compile` output directory for ``target`` and run it: on its built-in inputs, or
    for ``epochs`` epochs on the sample file ``data`` (`tte data pack`), checked against the directory's model.
    ``timeout`` (seconds) defaults to 900, plus 5 s per sample and epoch with ``data``."""
    if data is None and epochs is not None:
        raise TteError("--epochs needs --data (a sample file written by `tte data pack`)")
    missing = [t for t in TOOLS[target] if shutil.which(t) is None]
    if missing:
        raise TteError(f"{target} needs {', '.join(missing)}: on Debian, apt-get install --no-install-recommends "
                       f"gcc-arm-none-eabi libnewlib-arm-none-eabi qemu-system-arm")
    directory = os.fspath(directory)
    if not os.path.exists(os.path.join(directory, "Makefile")):
        raise TteError(f"{directory}: no Makefile; pass a directory written by `tte compile`")
    args, samples = _data_args(directory, data, epochs) if data is not None else ([], 0)
    timeout = timeout if timeout is not None else 900 + 5 * samples
    args.append(f"TIMEOUT={timeout}")
    build = "all" if target == "host" else target
    p = subprocess.run(["make", "-s", "-C", directory, build], capture_output=True, text=True)
    if p.returncode != 0:
        last = p.stderr.strip().splitlines()[-1] if p.stderr.strip() else p.stdout.strip()
        raise TteError(f"building {target} failed: {last}")
    run = "run" if target == "host" else f"run-{target}"
    try:
        p = subprocess.run(["make", "-s", "-C", directory, run, *args], capture_output=True, text=True,
                           timeout=timeout + 60)
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
    for m in EPOCH.finditer(out):
        e = EpochResult(int(m.group(1)), float(m.group(2)), m.group(3), int(m.group(4)), int(m.group(5)),
                        int(m.group(6)), int(m.group(7)) if m.group(7) else None)
        r.epochs.append(e)
        if target != "host" and e.ticks_per_step is not None:
            r.step_instructions.append(e.ticks_per_step * INSTRUCTIONS_PER_TICK)
    m = re.search(r"^inference ticks (\d+)", out, re.M)
    if m and target != "host":
        r.inference_instructions = int(m.group(1)) * INSTRUCTIONS_PER_TICK
    m = re.search(r"^stack peak (\d+)", out, re.M)
    if m:
        r.stack_peak = int(m.group(1))
    if target != "host":
        r.flash_bytes, r.ram_bytes, r.sections = _size(os.path.join(directory, f"tte_demo_{target}.elf"))
        r.planned = _planned(directory)
    return r
