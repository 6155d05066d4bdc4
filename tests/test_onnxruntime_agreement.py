"""The reference executor agrees with onnxruntime, layer by layer and end to end."""

from __future__ import annotations

import numpy as np
import ortref
import pytest
from conftest import ALL_MODELS, SHARED_MODELS, shared_model
from inputs import inputs

import tte


@pytest.mark.parametrize("model_path", ALL_MODELS, indirect=True)
def test_per_layer_agreement(model_path, figures):
    """Each layer gets onnxruntime's int8 operands: >= 99.9% identical, never more than one step off,
    and every mismatch on a rounding tie (within 1e-3 of .5 before rounding)."""
    g = tte.load(model_path)
    ort_run = ortref.Intermediates(str(model_path))
    stats = ortref.LayerStats()
    for x in inputs(g[g.inputs[0]].shape, 20, seed=11):
        ort_vals = ort_run(x)
        compared = set(ort_vals) & {n.output for n in g.nodes}
        assert len(compared) >= len([n for n in g.nodes if n.op not in ("reshape", "dequantize")]) - 1
        ortref.compare_layers(g, ort_vals, x, stats)
    figures(f"per-layer {model_path.name}: {stats.exact_fraction:.5%} of {stats.total:,} int8 entries identical, "
            f"max diff {stats.max_diff}, mismatches off a tie {stats.off_tie}, "
            f"farthest mismatch from a tie {stats.worst_tie_distance:.2g}")
    assert stats.exact_fraction >= 0.999
    assert stats.max_diff <= 1
    assert stats.off_tie == 0


@pytest.mark.parametrize("name", SHARED_MODELS)
def test_end_to_end_top1_shared(name, figures):
    """Deep models: the same top-1 class as onnxruntime on >= 95% of 60 inputs; where it differs,
    onnxruntime's own best scores are tied within an int8 step."""
    path = shared_model(name)
    g = tte.load(path)
    sess = ortref.session(str(path))
    same = tie = exact = near = 0
    n = 60
    step = float(g[g.nodes[-1].inputs[0]].quant.scale)
    for x in inputs(g["input"].shape, n, seed=7):
        ours = g.infer(x)
        theirs = sess.run(None, {"input": x})[0]
        same += int(ours.argmax() == theirs.argmax())
        tie += int(theirs[0, ours.argmax()] == theirs.max())
        exact += int(np.array_equal(ours, theirs))
        near += int(theirs.max() - theirs[0, ours.argmax()] <= step * 1.01)
    figures(f"end-to-end {name}: top-1 same on {same}/{n} (our top-1 is among onnxruntime's best on {tie}/{n}), "
            f"all logits identical on {exact}/{n}")
    assert same >= 0.95 * n
    assert near == n  # our top-1 is never more than one int8 step below onnxruntime's best


@pytest.mark.parametrize("name", [m.split(":")[1] for m in ALL_MODELS if m.startswith("zoo:")])
def test_end_to_end_generated(name, zoo, figures):
    g = tte.load(zoo[name])
    sess = ortref.session(str(zoo[name]))
    diffs, same = [], 0
    n = 20
    for x in inputs(g[g.inputs[0]].shape, n, seed=3):
        ours, theirs = g.infer(x), sess.run(None, {"input": x})[0]
        q = float(g[g.nodes[-1].inputs[0]].quant.scale)
        diffs.append(np.abs(ours - theirs).max() / q)
        same += int(ours.argmax() == theirs.argmax())
    figures(f"end-to-end {name}: top-1 same on {same}/{n}, max logit diff {max(diffs):.0f} int8 steps")
    assert same >= 0.95 * n
    assert max(diffs) <= 2.01
