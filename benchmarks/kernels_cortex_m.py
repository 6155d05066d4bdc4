"""Instructions per multiply-accumulate of the int8 forward and float backward kernels on Cortex-M4 and M7 (QEMU).

Builds tests/kernels_dsp_main.c (the kernels on seeded pseudo-random data, the DSP paths compiled in) with
arm-none-eabi-gcc -O2 for mps2-an386 / mps2-an500 and prints, for its `bench-*` cases, the instructions each
kernel call took (SysTick ticks x 5 under -icount shift=3) divided by its multiply-accumulates.  The forward figures
include the output stage (bias, requantization, clamp, the straight-through mask) and the border windows; `gi-` is
an input gradient (tte_conv_grad_input_f32), `wu-` a weight gradient with its SGD update (stochastic rounding).

    python benchmarks/kernels_cortex_m.py [--json] [--all]
"""

from __future__ import annotations

import argparse
import json
import pathlib
import re
import subprocess
import tempfile

from tte.codegen.native import CFLAGS
from tte.codegen.project import HEAP_BYTES, LINKER_SCRIPT, STACK_BYTES
from tte.device import INSTRUCTIONS_PER_TICK

ROOT = pathlib.Path(__file__).resolve().parents[1]
RUNTIME = ROOT / "runtime_c"
MAIN = ROOT / "tests" / "kernels_dsp_main.c"
CORES = {"M4": (["-mcpu=cortex-m4", "-mfpu=fpv4-sp-d16", "-mfloat-abi=hard", "-mthumb"], "mps2-an386", "cortex-m4"),
         "M7": (["-mcpu=cortex-m7", "-mfpu=fpv5-d16", "-mfloat-abi=hard", "-mthumb"], "mps2-an500", "cortex-m7")}
CASE = re.compile(r"^case (\S+) status (-?\d+) hash \S+ macs (\d+) ticks (\d+)", re.M)


def run(core: str, tmp: pathlib.Path) -> dict[str, tuple[int, int]]:
    flags, machine, cpu = CORES[core]
    ld = tmp / "kernels.ld"
    ld.write_text(LINKER_SCRIPT.format(heap=HEAP_BYTES, stack=STACK_BYTES, sram=256 * 1024, flash=1024 * 1024))
    elf = tmp / f"kernels_{core}.elf"
    sources = [str(MAIN), *sorted(str(p) for p in (RUNTIME / "src").glob("*.c")),
               str(RUNTIME / "board" / "tte_startup_cortex_m.c")]
    subprocess.run(["arm-none-eabi-gcc", *CFLAGS, *flags, "-DTTE_BARE_METAL", f"-I{RUNTIME / 'include'}", *sources,
                    "-T", str(ld), "-nostartfiles", "--specs=nano.specs", "--specs=rdimon.specs", "-u", "_printf_float",
                    "-Wl,--gc-sections", "-o", str(elf), "-lm"], check=True, capture_output=True, text=True)
    p = subprocess.run(["timeout", "120", "qemu-system-arm", "-machine", machine, "-cpu", cpu, "-nographic", "-monitor",
                        "none", "-serial", "none", "-semihosting-config", "enable=on,target=native", "-icount",
                        "shift=3", "-kernel", str(elf)], capture_output=True, text=True, check=True)
    return {name: (int(macs), int(ticks) * INSTRUCTIONS_PER_TICK)
            for name, _status, macs, ticks in CASE.findall(p.stdout)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--json", action="store_true", help="print one JSON row per case and core")
    ap.add_argument("--all", action="store_true", help="every case, not only the bench-* ones")
    args = ap.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for core in CORES:
            for name, (macs, instructions) in run(core, pathlib.Path(tmp)).items():
                if args.all or name.startswith("bench-"):
                    rows.append({"kernel": name.removeprefix("bench-"), "core": core, "macs": macs,
                                 "instructions": instructions, "instructions_per_mac": round(instructions / macs, 2)})
    if args.json:
        for row in rows:
            print(json.dumps(row))
        return
    print(f"{'kernel':<28} {'core':<4} {'MACs':>9} {'instructions':>13} {'instr / MAC':>11}")
    for r in rows:
        print(f"{r['kernel']:<28} {r['core']:<4} {r['macs']:>9,} {r['instructions']:>13,} "
              f"{r['instructions_per_mac']:>11.2f}")


if __name__ == "__main__":
    main()
