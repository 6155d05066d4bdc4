"""Direct tests of the layout kernels (tte/ops/layout.py) against their numpy reference."""

from __future__ import annotations

import ctypes

import numpy as np
import pytest
from cruntime import TTE_ERROR_ARGUMENT, TTE_OK, dims, lib, ptr, ref

PERMS = [(0, 3, 1, 2), (0, 2, 3, 1), (0, 1, 2, 3), (3, 2, 1, 0), (1, 0, 3, 2)]


def perm_arg(perm):
    return (ctypes.c_int32 * 4)(*perm)


@pytest.mark.parametrize("perm", PERMS, ids=["nhwc-to-nchw", "nchw-to-nhwc", "identity", "reverse", "pairs"])
@pytest.mark.parametrize("shape", [(1, 5, 7, 3), (2, 3, 1, 4), (1, 1, 9, 1)], ids=["5x7x3", "batch2", "one-d"])
def test_transpose_s8(perm, shape):
    x = np.random.default_rng(sum(shape) * 7 + sum(perm)).integers(-128, 128, shape, dtype=np.int8)
    want = np.ascontiguousarray(np.transpose(x, perm))
    out = np.full(x.size, 99, np.int8)
    assert lib().tte_transpose_s8(ref(dims(shape)), perm_arg(perm), ptr(x), ptr(out)) == TTE_OK
    np.testing.assert_array_equal(out.reshape(want.shape), want)


@pytest.mark.parametrize("perm", [(0, 0, 1, 2), (0, 1, 2, 4), (-1, 0, 1, 2)])
def test_transpose_s8_rejects_a_bad_permutation(perm):
    x = np.zeros(24, np.int8)
    out = np.full(24, 5, np.int8)
    assert lib().tte_transpose_s8(ref(dims((1, 2, 3, 4))), perm_arg(perm), ptr(x), ptr(out)) == TTE_ERROR_ARGUMENT
    assert (out == 5).all()
