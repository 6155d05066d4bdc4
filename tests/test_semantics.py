"""The integer semantics (tte.reference.semantics) on hand-computed cases."""

from __future__ import annotations

from fractions import Fraction

import numpy as np
import pytest
from conftest import shared_model

import tte
from tte.reference import semantics as sem


def test_round_half_to_even_and_clamp():
    v = np.array([0.5, 1.5, 2.5, -0.5, -1.5, 126.5, 127.5, -128.5, 1e9, -1e9], np.float32)
    assert sem.round_clamp(v, 0).tolist() == [0, 2, 2, 0, -2, 126, 127, -128, 127, -128]
    assert sem.round_clamp(np.float32(0.5), -128, qmin=-128, qmax=0) == -128


def test_requantize_saturates_the_accumulator_to_int32():
    acc = np.array([2**31 + 5, -(2**31) - 7, 100], np.int64)
    q = sem.requantize(acc, np.float32(1e-9), 0)
    # (2^31 - 1) * 1e-9 = 2.147..., -(2^31) * 1e-9 = -2.147...
    assert q.tolist() == [2, -2, 0]


def test_multiplier_computed_in_double_then_float32():
    s_x, s_w, s_y = np.float32(0.1), np.float32(0.3), np.float32(0.7)
    m = sem.multiplier(sem.f64(s_x) * sem.f64(s_w), s_y)
    assert m.dtype == np.float32
    assert m == np.float32(float(s_x) * float(s_w) / float(s_y))


def test_clamp_bounds_fold_relu_and_relu6():
    assert sem.clamp_bounds(0.0, None, 6 / 255, -128) == (-128, 127)
    assert sem.clamp_bounds(0.0, None, 0.05, 3) == (3, 127)
    assert sem.clamp_bounds(0.0, 6.0, 0.1, -10) == (-10, 50)


def test_quantize_divides_in_float32():
    # float32(1 / 127.5) is slightly above 1/127.5, so -1.0 / s = -127.49999 (not a tie): -127, as onnxruntime.
    x = np.array([0.0, 1 / 127.5, -1.0, 1.0, 0.5 / 127.5], np.float32)
    assert sem.quantize(x, 1 / 127.5, 0).tolist() == [0, 1, -127, 127, 0]
    assert sem.quantize(np.float32(2.5), 1.0, 0) == 2 and sem.quantize(np.float32(3.5), 1.0, 0) == 4


def test_int32_limit_biases_give_constant_channels():
    """mcunet-5fps has dead channels with biases at the int32 limits (shared/models/README.md): they must
    output a constant for any input and never wrap."""
    g = tte.load(shared_model("mcunet-5fps"))
    extreme = [(n, np.flatnonzero(np.abs(g[n.inputs[2]].data.astype(np.int64)) >= 2**31 - 1))
               for n in g.nodes if n.op == "conv"]
    extreme = [(n, ch) for n, ch in extreme if ch.size]
    assert sum(ch.size for _, ch in extreme) == 52
    rng = np.random.default_rng(0)
    runs = [g.run({"input": rng.uniform(-1, 1, (1, 3, 128, 128)).astype(np.float32)}, keep=True) for _ in range(3)]
    for node, channels in extreme:
        outs = np.stack([r[node.output][0, channels] for r in runs])
        assert (outs == outs.reshape(outs.shape[0], outs.shape[1], -1)[..., :1, None]).all(), node.name
        assert (outs == outs[:1]).all()


def _round_half_even(v: Fraction) -> int:
    """Python's round() on an exact rational: half to even, no float involved."""
    return round(v)


@pytest.mark.parametrize("zero_point,qmin,qmax", [(0, -128, 127), (-128, -128, 127), (127, -128, 127),
                                                  (7, 7, 127), (-5, -10, 50), (3, -128, 3)])
def test_straight_through_mask_rule_on_integers(zero_point, qmin, qmax):
    """The mask passes exactly where round_half_even(v) + z lies in [qmin, qmax], bounds included:
    checked on every quarter step around both bounds, ties included, against exact integer arithmetic."""
    quarters = range(4 * (qmin - zero_point - 3), 4 * (qmax - zero_point + 3) + 1)
    v = np.array([q / 4 for q in quarters], np.float32)  # quarters are exact in float32
    q, mask = sem.round_clamp_mask(v, zero_point, qmin, qmax)
    r = [_round_half_even(Fraction(k, 4)) + zero_point for k in quarters]
    assert mask.tolist() == [qmin <= x <= qmax for x in r]
    assert q.tolist() == [min(max(x, qmin), qmax) for x in r]
    # the bounds themselves pass; one step beyond does not, also when a tie rounds onto or off the bound
    at = {x: m for x, m in zip(r, mask.tolist())}
    assert at[qmin] and at[qmax]
    assert not at.get(qmin - 1, False) and not at.get(qmax + 1, False)
    up = np.float32(qmax - zero_point + 0.5)  # a tie just above the upper bound: in iff qmax - z is even
    assert bool(sem.round_clamp_mask(up, zero_point, qmin, qmax)[1]) == ((qmax - zero_point) % 2 == 0)
    down = np.float32(qmin - zero_point - 0.5)  # a tie just below the lower bound: in iff qmin - z is even
    assert bool(sem.round_clamp_mask(down, zero_point, qmin, qmax)[1]) == ((qmin - zero_point) % 2 == 0)


def test_mask_of_far_out_values():
    """Values far beyond the int8 range (and the +-256 pre-clamp) are outside; the mask never wraps."""
    v = np.array([1e30, -1e30, 256.0, -256.0, 1e6, -1e6], np.float32)
    q, mask = sem.round_clamp_mask(v, 0)
    assert q.tolist() == [127, -128, 127, -128, 127, -128] and not mask.any()
