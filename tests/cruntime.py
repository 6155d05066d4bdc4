"""runtime_c as a shared library, called through ctypes: the harness of the per-kernel C tests.

The kernels are compiled once per test session (all of ``runtime_c/src`` into one ``.so`` with the same
flags as the emitted programs).  With ``TTE_GCOV_DIR`` set, the library is built with ``--coverage`` into
that directory instead, so that ``tools/coverage.py`` can read the line coverage the tests reached.

Typical use::

    from cruntime import lib, Dims, ConvGeometry, ptr
    status = lib().tte_requantize_s8(n, ptr(x), zx, c_float(m), zy, -128, 127, ptr(y), None)

Arrays are passed with :func:`ptr` (a ``c_void_p`` to a C-contiguous numpy array); structs are the
``ctypes.Structure`` mirrors of ``runtime_c/include/tte_runtime.h`` below.  :func:`unpack_mask` turns a
bit-packed saturation mask into booleans (bit ``i & 7`` of byte ``i >> 3``).
"""

from __future__ import annotations

import ctypes
import functools
import os
import pathlib
import subprocess
import tempfile

import numpy as np

from tte.codegen.native import CFLAGS

ROOT = pathlib.Path(__file__).resolve().parents[1]
RUNTIME = ROOT / "runtime_c"

TTE_OK, TTE_ERROR_ARGUMENT, TTE_ERROR_SIZE, TTE_ERROR_SOURCE = 0, -1, -2, -3
ROUNDING = {"nearest": 0, "trunc": 1, "stochastic": 2, "accumulate": 3}

c_int32, c_uint32, c_float = ctypes.c_int32, ctypes.c_uint32, ctypes.c_float
vp = ctypes.c_void_p


class Dims(ctypes.Structure):
    _fields_ = [("n", c_int32), ("c", c_int32), ("h", c_int32), ("w", c_int32)]


class SplitWeights(ctypes.Structure):
    _fields_ = [("trained", vp), ("frozen", vp), ("channels", c_int32)]


class QuantParams(ctypes.Structure):
    """tte_quant_params; ``multiplier`` and ``shift`` (TFLite arithmetic) default to NULL."""
    _fields_ = [("input_zero_point", c_int32), ("output_zero_point", c_int32), ("qmin", c_int32), ("qmax", c_int32),
                ("multiplier", vp), ("shift", vp)]


class ConvGeometry(ctypes.Structure):
    _fields_ = [("stride_h", c_int32), ("stride_w", c_int32), ("pad_top", c_int32), ("pad_left", c_int32),
                ("pad_bottom", c_int32), ("pad_right", c_int32), ("groups", c_int32)]


class PoolGeometry(ctypes.Structure):
    _fields_ = [("kernel_h", c_int32), ("kernel_w", c_int32), ("stride_h", c_int32), ("stride_w", c_int32),
                ("pad_top", c_int32), ("pad_left", c_int32), ("pad_bottom", c_int32), ("pad_right", c_int32)]


class WeightsS8(ctypes.Structure):
    _fields_ = [("data", SplitWeights), ("zero_points", vp), ("scales", vp)]


class SgdParams(ctypes.Structure):
    _fields_ = [("lr", c_float), ("rounding", c_int32), ("seed", c_uint32), ("stream", c_uint32),
                ("step", c_uint32), ("qmin", c_int32), ("qmax", c_int32), ("residual", vp)]


class SavedS8(ctypes.Structure):
    _fields_ = [("data", vp), ("zero_point", c_int32), ("scale", c_float)]


def dims(shape) -> Dims:
    """tte_dims of an NCHW shape (shorter shapes are padded with trailing ones)."""
    s = list(shape) + [1] * (4 - len(shape))
    return Dims(*s)


def ptr(a: np.ndarray | None):
    """A pointer to a numpy array's data (None stays NULL).  The array must outlive the call."""
    if a is None:
        return None
    assert a.flags["C_CONTIGUOUS"], "pass C-contiguous arrays to C"
    return vp(a.ctypes.data)


def ref(s: ctypes.Structure):
    return ctypes.byref(s)


def mask_bytes(n: int, fill: int = 0) -> np.ndarray:
    """A bit-packed mask buffer for ``n`` elements, pre-filled with ``fill`` (to show bits are written)."""
    return np.full((n + 7) // 8, fill, np.uint8)


def unpack_mask(m: np.ndarray, n: int) -> np.ndarray:
    return np.unpackbits(m, bitorder="little")[:n].astype(bool)


def _build(out_dir: pathlib.Path, extra: list[str]) -> pathlib.Path:
    sources = sorted(str(p) for p in (RUNTIME / "src").glob("*.c"))
    so = out_dir / "libtte_runtime.so"
    cmd = ["gcc", *CFLAGS, "-fPIC", "-shared", *extra, f"-I{RUNTIME / 'include'}", *sources, "-o", str(so), "-lm"]
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=out_dir)
    if proc.returncode != 0:
        raise RuntimeError(f"building runtime_c failed:\n{proc.stderr}")
    return so


@functools.cache
def lib() -> ctypes.CDLL:
    """The runtime, built once per process (with gcov instrumentation when TTE_GCOV_DIR is set)."""
    gcov = os.environ.get("TTE_GCOV_DIR")
    if gcov:
        out = pathlib.Path(gcov)
        out.mkdir(parents=True, exist_ok=True)
        extra = ["--coverage", "-O0"]
    else:
        out = pathlib.Path(tempfile.mkdtemp(prefix="tte_runtime_"))
        extra = []
    so = ctypes.CDLL(str(_build(out, extra)))
    for name in ("tte_conv_dw_s8_get_buffer_size", "tte_conv_pw_dw_s8_get_buffer_size",
                 "tte_conv_grad_input_f32_get_buffer_size", "tte_conv_weight_update_get_buffer_size"):
        getattr(so, name).restype = c_int32
    return so
