"""The Arm DSP paths of the forward int8 kernels (SXTB16 + SMLAD, compiled where __ARM_FEATURE_DSP is defined:
Cortex-M4 / M7) give exactly the integers of the portable C99 paths.

tests/kernels_dsp_main.c runs tte_conv_s8 (pointwise with every tail: C % 4, odd output channels, odd H * W,
split weights; the stem; grouped), tte_conv_dw_s8 (3x3 / 5x5 / 7x7 / 9x9, strides 1 and 2, asymmetric pads,
weight zero points outside int8), tte_conv_pw_dw_s8 and tte_gemm_s8 on seeded pseudo-random data and prints a
hash of each case's outputs and masks; and the float backward, tte_conv_grad_input_f32 (pointwise tiles and edges,
depthwise 3x3 / 5x5 / 7x7 at strides 1 and 2 through the Arm ring of zero-padded rows, in place and not, a regular
conv), tte_conv_weight_update_s8 (pointwise with and without the scratch for converted inputs, depthwise; all four
roundings, the residual of accumulate) and tte_bias_update_s32, whose Arm builds unroll their tiles into registers
and multiply-add with VMLA.F32: a hash of their float outputs / updated weights.
The host build (the portable loops, themselves checked against the numpy reference by tests/test_kernels_forward.py
and tests/test_kernels_train.py) and the Cortex-M4 / M7 builds under QEMU (the DSP loops) must print the same
hashes; the portable paths also hash exactly as the kernels before the DSP work did (FIXED)."""

from __future__ import annotations

import pathlib
import re
import shutil
import subprocess

import numpy as np
import pytest

from tte.codegen.native import CFLAGS
from tte.codegen.project import HEAP_BYTES, LINKER_SCRIPT, STACK_BYTES

ROOT = pathlib.Path(__file__).resolve().parents[1]
RUNTIME = ROOT / "runtime_c"
MAIN = pathlib.Path(__file__).with_name("kernels_dsp_main.c")
CASE = re.compile(r"^case (\S+) status (-?\d+) hash ([0-9a-f]{8})", re.M)
ARM = shutil.which("arm-none-eabi-gcc") is not None and shutil.which("qemu-system-arm") is not None
CORES = {
    "cortex-m4": (["-mcpu=cortex-m4", "-mfpu=fpv4-sp-d16", "-mfloat-abi=hard", "-mthumb"], "mps2-an386"),
    "cortex-m7": (["-mcpu=cortex-m7", "-mfpu=fpv5-d16", "-mfloat-abi=hard", "-mthumb"], "mps2-an500"),
}
# the hashes the kernels printed before the DSP paths and the interior fast paths existed (same seeds)
FIXED = {"pw-16x8-8x8": "aea3b5a1", "pw-17x3-3x3-split5": "d4ec696d", "stem-3x8-3x3s2": "adbca99f",
         "dw-3x3s1p1": "a2481ac8", "dw-9x9s1p4": "b1d6cdf1", "pwdw-16x24-9x9-5x5s1": "eb40e159",
         "gemm-2x33x5": "e48d87f5"}


def sources() -> list[str]:
    return [str(MAIN), *sorted(str(p) for p in (RUNTIME / "src").glob("*.c"))]


def run_host(tmp: pathlib.Path) -> str:
    exe = tmp / "kernels_host"
    subprocess.run(["gcc", *CFLAGS, f"-I{RUNTIME / 'include'}", *sources(), "-o", str(exe), "-lm"], check=True)
    return subprocess.run([str(exe)], capture_output=True, text=True, check=True, timeout=60).stdout


def build_arm(tmp: pathlib.Path, core: str) -> pathlib.Path:
    flags, _ = CORES[core]
    ld = tmp / "kernels.ld"
    ld.write_text(LINKER_SCRIPT.format(heap=HEAP_BYTES, stack=STACK_BYTES, sram=256 * 1024, flash=1024 * 1024))
    elf = tmp / f"kernels_{core}.elf"
    subprocess.run(["arm-none-eabi-gcc", *CFLAGS, *flags, "-DTTE_BARE_METAL", f"-I{RUNTIME / 'include'}", *sources(),
                    str(RUNTIME / "board" / "tte_startup_cortex_m.c"), "-T", str(ld), "-nostartfiles",
                    "--specs=nano.specs", "--specs=rdimon.specs", "-u", "_printf_float", "-Wl,--gc-sections", "-o",
                    str(elf), "-lm"], check=True, capture_output=True, text=True)
    return elf


def run_arm(elf: pathlib.Path, core: str) -> subprocess.CompletedProcess:
    _, machine = CORES[core]
    return subprocess.run(["timeout", "120", "qemu-system-arm", "-machine", machine, "-cpu", core, "-nographic",
                           "-monitor", "none", "-serial", "none", "-semihosting-config", "enable=on,target=native",
                           "-icount", "shift=3", "-kernel", str(elf)], capture_output=True, text=True)


# convs with more than TTE_DW_FAST_TAPS (64) taps per output channel keep the tap-checked loop of tte_conv_s8
BIG_CONV_CASES = {  # x shape, w shape, strides, pads, groups, zero points, split, clamp
    "3x3-c8": ((1, 8, 6, 5), (3, 8, 3, 3), (1, 1), (1, 1, 1, 1), 1, True, None, "none"),
    "5x5-c3-s2-split": ((1, 3, 9, 8), (2, 3, 5, 5), (2, 2), (2, 1, 1, 2), 1, False, 1, "relu"),
}


@pytest.mark.parametrize("case", BIG_CONV_CASES)
def test_conv_s8_beyond_the_gathered_taps(case):
    from test_kernels_forward import conv_data, rng_for, run_conv

    xs, ws, strides, pads, groups, zp, channels, clamp = BIG_CONV_CASES[case]
    assert ws[1] * ws[2] * ws[3] > 64
    x, w, wz, b, zx, zy = conv_data(rng_for("conv-big", case), xs, ws, zp, 5000)
    want, _ = run_conv(x, zx, w, wz, b, strides, pads, groups, zy=zy, clamp=clamp, channels=channels)
    assert len(np.unique(want)) > 10


def test_portable_paths_hash_as_before(tmp_path):
    out = run_host(tmp_path)
    assert out.startswith("dsp 0\n")
    cases = {name: (int(status), h) for name, status, h in CASE.findall(out)}
    assert len(cases) >= 25 and all(status == 0 for status, _ in cases.values())
    for name, h in FIXED.items():
        assert cases[name][1] == h, name


@pytest.mark.skipif(not ARM, reason="the Arm toolchain and QEMU are not installed (.ci/run installs them)")
@pytest.mark.parametrize("core", sorted(CORES))
def test_dsp_paths_equal_portable_paths(core, tmp_path):
    host = CASE.findall(run_host(tmp_path))
    p = run_arm(build_arm(tmp_path, core), core)
    assert p.returncode == 0, (p.stdout[-2000:], p.stderr[-2000:])
    assert p.stdout.startswith("dsp 1\n")  # __ARM_FEATURE_DSP: the SMLAD loops were compiled in
    assert CASE.findall(p.stdout) == host
