"""Training-graph passes: each leaves training numerics unchanged and says what it did or why not."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import ROOT, SHARED, ZOO_MODELS, shared_model

import tte
from tte.autodiff.scheme import SparseScheme, weighted_layers
from tte.ir import Node, Value
from tte.ir.executor import evaluate
from tte.ir.facts import is_depthwise
from tte.passes import training as passes
from tte.zoo import gratings

EXAMPLE = ROOT / "examples" / "tiny_cnn.int8.onnx"


def states(program: tte.Program, g, images, labels, steps=5):
    """Train a copy of the program's state with graph ``g``; yield (loss, state) after each step."""
    state = {k: v.copy() for k, v in program.state.items()}
    consts = {v.name: v.data for v in g.constants()}
    for s in range(steps):
        env = dict(consts, **state)
        env[g.inputs[0]] = images[s % len(images)][None]
        env["label"] = np.array([labels[s % len(labels)]], np.int32)
        evaluate(g, env)
        state = {k: env[v] for k, v in g.state_updates.items()} | {k: state[k] for k in state
                                                                     if k not in g.state_updates}
        yield float(env["loss"]), state


def run_steps(program: tte.Program, g, images, labels, steps=5) -> dict[str, np.ndarray]:
    """The state after ``steps`` steps of :func:`states`."""
    return list(states(program, g, images, labels, steps))[-1][1]


def programs():
    yield "tiny-full-accumulate", lambda: tte.compile(EXAMPLE, scheme="full", classes=4, lr=0.05,
                                                      rounding="accumulate", optimize=False)
    yield "tiny-momentum", lambda: tte.compile(EXAMPLE, scheme="last-3", lr=0.05, momentum=0.9, optimize=False)
    yield "mbv2-99kb", lambda: tte.compile(shared_model("mbv2-w0.35"), scheme=SHARED / "schemes" /
                                            "mbv2-w0.35.99kb.json", classes=10, lr=0.01, optimize=False)


@pytest.mark.parametrize("step", [*passes.PIPELINE, passes.optimize], ids=lambda f: f.__name__)
@pytest.mark.parametrize("make", [m for _, m in programs()], ids=[n for n, _ in programs()])
def test_pass_keeps_training_numerics(make, step):
    program = make()
    shape = program.forward[program.forward.inputs[0]].shape
    images, labels = gratings(5, shape[1:], classes=program.forward["logits"].shape[1])
    before = run_steps(program, program.autodiff, images, labels)
    g, log = step(program.autodiff)
    g.verify()
    assert log
    after = run_steps(program, g, images, labels)
    assert before.keys() == after.keys()
    for k in before:
        assert np.array_equal(before[k], after[k]), k


SPARSE = ["full", "last-1", "last-2", "bias-only", "partial"]


def partial_scheme(g) -> SparseScheme:
    """Biases of the last 2 layers, half and a quarter of the input channels of the last two layers
    whose weights can train partially (not grouped convs)."""
    layers, _ = weighted_layers(g)
    ok = [i for i in range(-1, -len(layers) - 1, -1)
          if layers[i].op != "conv" or layers[i].attrs["groups"] == 1 or is_depthwise(g, layers[i])]
    return SparseScheme("partial", 2, dict(zip(ok, (0.5, 0.25))))


@pytest.mark.parametrize("scheme", SPARSE)
@pytest.mark.parametrize("name", ZOO_MODELS)
def test_optimized_graph_trains_like_the_unoptimized_one(name, scheme, zoo):
    """``train_step`` runs the optimized graph, ``grads`` the unoptimized one: on every generated model and
    sparse scheme, the two give the same loss and the same state after every step."""
    g = tte.load(zoo[name])
    program = tte.compile(g, scheme=partial_scheme(g) if scheme == "partial" else scheme, lr=0.05,
                          rounding="stochastic")
    if scheme == "partial":
        assert any(p.channels < program.train[n].shape[p.axis] for n, p in program.params.items())
    shape = program.forward[program.forward.inputs[0]].shape
    images, labels = gratings(4, shape[1:], classes=program.forward["logits"].shape[1])
    steps = zip(states(program, program.autodiff, images, labels, 4), states(program, program.train, images, labels, 4))
    for s, ((loss_a, a), (loss_b, b)) in enumerate(steps):
        assert loss_a == loss_b, s
        assert a.keys() == b.keys()
        for k in a:
            assert np.array_equal(a[k], b[k]), (s, k)
    assert any(not np.array_equal(b[k], program.state[k]) for k in b), "nothing trained"


def test_passes_fire_on_a_real_model_and_explain():
    program = tte.compile(shared_model("mbv2-w0.35"), scheme=SHARED / "schemes" / "mbv2-w0.35.99kb.json",
                          classes=10)
    log = "\n".join(program.pass_log)
    assert "prune_masks: dropped the mask of global_avgpool" in log
    assert "prune_masks: kept the mask of conv" in log
    assert "-> conv_weight_update" in log and "-> bias_update" in log
    assert "reorder_updates: moved" in log
    ops = [n.op for n in program.train.nodes]
    assert "sgd" not in ops and "conv_grad_weight" not in ops and "bias_grad" not in ops
    # every update comes right after its last dependency (only other updates may sit in between)
    nodes = program.train.nodes
    for i, n in enumerate(nodes):
        if n.op in passes.UPDATES:
            param = n.inputs[2] if "weight_update" in n.op else n.inputs[1]
            last_dep = max(j for j in range(i) if set(nodes[j].outputs) & set(n.inputs) or param in nodes[j].inputs)
            assert all(m.op in passes.UPDATES for m in nodes[last_dep + 1:i]), n.name


def test_fusion_explains_momentum():
    program = tte.compile(EXAMPLE, scheme="last-1", momentum=0.9)
    assert any("momentum keeps a velocity buffer" in line for line in program.pass_log)


def test_eliminate_dead_removes_unread_nodes():
    program = tte.compile(EXAMPLE, scheme="last-1", optimize=False)
    g = program.autodiff.copy()
    g.add_value(Value("dead", "float32", (1, 10)))
    g.nodes.insert(len(g.nodes) - 1, Node("freshape", "dead", ["logits"], ["dead"], {"shape": (1, 10)}))
    g.verify()
    out, log = passes.eliminate_dead(g)
    assert "dead" not in out.values and any("removed freshape 'dead'" in line for line in log)
    _, log = passes.eliminate_dead(program.autodiff)
    assert log == ["eliminate_dead: nothing to remove (every result is read, returned or is a state update)"]


def test_dump_after_a_named_pass(monkeypatch, capsys):
    monkeypatch.setenv("TTE_DUMP", "fuse_updates")
    tte.compile(EXAMPLE, scheme="last-1")
    err = capsys.readouterr().err
    assert err.startswith("// after fuse_updates\ngraph tiny_cnn.train(") and "bias_update(" in err
