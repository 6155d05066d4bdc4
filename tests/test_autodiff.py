"""Compile-time autodiff: whole-model gradients against PyTorch, sparse pruning, channel selection."""

from __future__ import annotations

import numpy as np
import pytest
import torchref
from conftest import SHARED, SHARED_MODELS, ZOO_MODELS, shared_model
from inputs import inputs

import tte

# one published scheme per shared model (the paper's setting is near 100 KB)
PUBLISHED = {"mbv2-w0.35": "99kb", "mcunet-5fps": "99kb", "proxyless-w0.3": "98kb"}


def compare_with_torch(program: tte.Program, x: np.ndarray, label: int) -> dict[str, float]:
    """Relative error (L2 of the difference over L2 of the reference) of every trained tensor."""
    trained = {name: (slice(0, p.channels) if p.kind == "weight" else None) for name, p in program.params.items()}
    loss, ref = torchref.reference_grads(program.forward, x, label, trained)
    ours = program.grads(x, label)
    errors = {}
    for name, p in program.params.items():
        # tte reports gradients in the model's layout; the reference ran on the permuted graph
        a = program.perms[name].apply(ours[name]) if name in program.perms else ours[name]
        idx = [slice(None)] * a.ndim
        idx[p.axis] = slice(0, p.channels)
        r = ref[name]
        errors[name] = float(np.linalg.norm(a[tuple(idx)] - r) / max(np.linalg.norm(r), 1e-30))
    return errors


def whole_model_cases():
    for name in SHARED_MODELS:
        yield pytest.param(f"shared:{name}", "full", None, id=f"{name}-full")
        yield pytest.param(f"shared:{name}", f"{name}.{PUBLISHED[name]}", 10, id=f"{name}-{PUBLISHED[name]}")
    for name in ZOO_MODELS:
        yield pytest.param(f"zoo:{name}", "full", None, id=f"{name}-full")


@pytest.mark.parametrize("model_path,scheme,classes", list(whole_model_cases()), indirect=["model_path"])
def test_gradients_match_pytorch(model_path, scheme, classes, figures):
    if scheme != "full":
        scheme = SHARED / "schemes" / f"{scheme}.json"
    program = tte.compile(model_path, scheme=scheme, classes=classes)
    shape = program.forward[program.forward.inputs[0]].shape
    worst = 0.0
    for i, x in enumerate(inputs(shape, 2, seed=21)):
        errors = compare_with_torch(program, x, label=(3 * i + 1) % program.forward["logits"].shape[1])
        worst = max(worst, max(errors.values()))
    figures(f"gradients vs PyTorch {model_path.name} [{scheme if isinstance(scheme, str) else scheme.name}]: "
            f"{len(program.params)} trained tensors, worst relative error {worst:.1e}")
    assert worst < 1e-4


@pytest.mark.parametrize("name", SHARED_MODELS)
def test_sparse_scheme_prunes_the_backward_graph(name):
    program = tte.compile(shared_model(name), scheme=SHARED / "schemes" / f"{name}.{PUBLISHED[name]}.json",
                          classes=10)
    fwd = [n.name for n in program.autodiff.nodes if n.name in {m.name for m in program.forward.nodes}]
    position = {n: i for i, n in enumerate(fwd)}
    trained_layers = {p.node for p in program.params.values()}
    earliest = min(position[n] for n in trained_layers)
    backward = [n for n in program.autodiff.nodes if n.name in program.backward_origin]
    below = [n.name for n in backward if position[program.backward_origin[n.name]] < earliest]
    assert backward and not below
    # the frozen prefix has no backward op at all; the full model has many more
    full = tte.compile(shared_model(name), scheme="full", classes=10)
    assert len(backward) < len([n for n in full.autodiff.nodes if n.name in full.backward_origin]) / 2
    # only inputs of weight-trained layers are saved for backward
    weight_trained = {p.node for p in program.params.values() if p.kind == "weight"}
    inputs_of = {n.inputs[0] for n in program.forward.nodes if n.name in weight_trained}
    assert program.saved == inputs_of


def test_bias_only_saves_no_activation():
    program = tte.compile(shared_model("mbv2-w0.35"), scheme={"bias_update_last": 6, "weight_update": {}},
                          classes=10)
    # the classifier's weight always trains: its (pooled, 112 bytes) input is the only saved activation
    head = next(n for n in program.forward.nodes if n.name == program.plan.classifier)
    assert program.saved == {head.inputs[0]}
    assert all(p.kind == "bias" or p.node == program.plan.classifier for p in program.params.values())


def test_channel_selection_is_free_and_picks_largest_weights():
    path = shared_model("mbv2-w0.35")
    original = tte.load(path)
    # keep the model's head so that the permuted graph must give exactly the same logits
    program = tte.compile(original, scheme=SHARED / "schemes" / "mbv2-w0.35.49kb.json")
    assert program.perms, "the 49kb scheme trains 1/8 of some layers' channels: a permutation is expected"
    for x in inputs((1, 3, 128, 128), 3, seed=8):
        assert np.array_equal(original.infer(x), program.infer(x))
    # blocks.14/15/16.pointwise1 each train 7 of the 56 channels of one residual stream, so they share
    # one channel order: the 7 channels with the largest summed (normalized) column norms of the three
    group = ["blocks.14.pointwise1.weight_int8", "blocks.15.pointwise1.weight_int8", "blocks.16.pointwise1.weight_int8"]
    chans = program.trained_channels(group[0])
    assert len(chans) == 7
    assert all(np.array_equal(program.trained_channels(n), chans) for n in group)
    untrained = np.setdiff1d(np.arange(56), chans)
    score = sum(_col_norms(original, n) for n in group)
    assert score[chans].min() >= score[untrained].max()
    grads = program.grads(x, 3)[group[2]]
    assert not grads[:, untrained].any() and grads[:, chans].any()


def _col_norms(g, name):
    w = g[name]
    real = w.data.astype(np.float64) * w.quant.scale.reshape(-1, 1, 1, 1)
    n = np.sqrt((real ** 2).sum(axis=(0, 2, 3)))
    return n / n.max()


def test_training_graph_dump_is_readable():
    program = tte.compile(shared_model("mbv2-w0.35"), scheme="last-2", classes=10)
    text = program.dump()
    assert "= xent(%logits, %label)" in text
    assert "conv_weight_update(" in text and "bias_update(" in text and "return %loss, %logits" in text
    program.train.verify()
    assert "conv_grad_weight(" in program.autodiff.dump()
