"""Build the training graph at compile time: forward (int8, saving what backward needs), loss,
backward (float32, only toward trained parameters), and the parameter updates.

    training graph = forward + xent(logits, label) + reverse-mode rules (tte.autodiff.rules) + sgd

Trained parameters become *state* inputs of the graph; each update writes the parameter's next value
(``graph.state_updates``), so a training step is a pure function of (input, label, state).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import TteError
from ..ir import Graph, Node, Value
from ..ir.facts import LABEL, LOSS, is_depthwise
from ..ir.registry import NOT_DIFFERENTIATED, OPS, output_types
from .scheme import TrainPlan

ROUNDINGS = ("nearest", "trunc", "stochastic", "accumulate")
__all__ = ["LABEL", "LOSS", "ROUNDINGS", "Builder", "TrainOptions", "TrainedParam", "build_training_graph"]


@dataclass(frozen=True)
class TrainOptions:
    """How parameters are updated (see README, "Training").

    ``qas``: quantization-aware scaling: the step taken in real units, lr * grad, is converted to the
    parameter's integer units by dividing by its scale (weights: s_W, biases: s_W * s_x).  Without it
    the gradient is taken with respect to the integer parameter, lr * grad * s, as naive int8
    training does (the paper's baseline).
    ``rounding``: how an int8 weight / int32 bias absorbs a step that is not a whole number of units:
    ``nearest`` (round half to even), ``trunc`` (toward zero, as the paper's code), ``stochastic``
    (floor(step + u), u uniform from a counter-based hash of ``seed``, the step count and the index:
    deterministic and the same in C), ``accumulate`` (a float32 residual per trained parameter keeps
    the fraction for the next step; costs 4 bytes per trained parameter).
    """

    lr: float = 0.005
    momentum: float = 0.0
    qas: bool = True
    rounding: str = "stochastic"
    seed: int = 0

    def __post_init__(self) -> None:
        if self.rounding not in ROUNDINGS:
            raise TteError(f"unknown rounding '{self.rounding}'; choose one of {', '.join(ROUNDINGS)}")
        if not (self.lr > 0 and np.isfinite(self.lr)):
            raise TteError(f"learning rate must be positive and finite, got {self.lr}")
        if not 0 <= self.momentum < 1:
            raise TteError(f"momentum must be in [0, 1), got {self.momentum}")


@dataclass
class TrainedParam:
    """A trained parameter: the node it belongs to, the slice that trains and its gradient's value."""

    name: str
    node: str
    kind: str  # "weight" or "bias"
    axis: int  # the axis of the trained leading slice
    channels: int  # length of that slice
    grad: str = ""


class Builder:
    def __init__(self, fwd: Graph, plan: TrainPlan, opts: TrainOptions):
        self.g = fwd.copy()
        self.g.name = f"{fwd.name}.train"
        self.plan = plan
        self.opts = opts
        self.params: dict[str, TrainedParam] = {}
        self.initial: dict[str, np.ndarray] = {}
        self.requires: set[str] = set()
        self.contribs: dict[str, list[str]] = {}
        self.masks: dict[str, str] = {}
        self.saved_values: set[str] = set()
        self.origin: dict[str, str] = {}  # backward node -> the forward node it differentiates
        self._current: str | None = None

    # -- what rules call ----------------------------------------------------------------------------
    def wants(self, name: str) -> bool:
        return name in self.requires

    def channels(self, param: str) -> int:
        return self.params[param].channels

    def saved(self, name: str) -> str:
        """A forward value that backward reads (it must stay alive until then)."""
        self.saved_values.add(name)
        return name

    def mask_of(self, node: Node) -> str:
        return self.masks[node.name]

    def contribute(self, name: str, grad: str) -> None:
        self.contribs.setdefault(name, []).append(grad)

    def param_grad(self, name: str, grad: str) -> None:
        self.params[name].grad = grad

    def emit(self, op: str, inputs: list[str], hint: str, **attrs) -> str:
        node = Node(op, self.g.unique_name(hint) + ":" + op, list(inputs), [], attrs)
        outs = []
        for i, (dtype, shape) in enumerate(output_types(self.g, node)):
            outs.append(Value(self.g.unique_name(hint if i == 0 else f"{hint}.{i}"), dtype, shape))
        node.name = outs[0].name
        if self._current is not None:
            self.origin[node.name] = self._current
        for v in outs:
            self.g.add_value(v)
        node.outputs = [v.name for v in outs]
        self.g.nodes.append(node)
        return node.outputs[0]

    # -- the build ----------------------------------------------------------------------------------
    def build(self) -> Graph:
        g = self.g
        forward = list(g.nodes)
        self._make_state()
        for node in forward:
            if any(i in self.requires for i in node.inputs):
                self.requires.update(node.outputs)
        for node in forward:
            if node.output in self.requires and "qmin" in node.attrs:
                node.attrs["save_mask"] = True
                mask = Value(g.unique_name(f"{node.output}.mask"), "bool", g[node.output].shape)
                g.add_value(mask)
                node.outputs.append(mask.name)
                self.masks[node.name] = mask.name
        logits = g.outputs[0]
        if len(g.outputs) != 1 or g[logits].dtype != "float32" or len(g[logits].shape) != 2:
            raise TteError(f"training needs one float32 [N, classes] output (logits); '{g.name}' has "
                           f"{[g[o].type_str() for o in g.outputs]}")
        g.add_input(Value(LABEL, "int32", (g[logits].shape[0],)))
        self.emit("xent", [logits, LABEL], LOSS)
        loss_node = g.nodes[-1]
        self.contribute(logits, loss_node.outputs[1])
        for node in reversed(forward):
            grads = self.contribs.get(node.output)
            if not grads or node.output not in self.requires:
                continue  # symbolic zero: nothing downstream of a trained parameter reaches the loss here
            self._current = node.name
            gy = grads[0]
            for other in grads[1:]:
                gy = self.emit("grad_add", [gy, other], f"{node.output}.grad")
            rule = OPS[node.op].grad
            if rule is NOT_DIFFERENTIATED:
                raise AssertionError(f"'{node.op}' is a training op: it is never differentiated")
            rule(self, node, gy)
        self._current = None
        self._updates()
        g.outputs = [LOSS, logits]
        g.verify()
        return g

    def _make_state(self) -> None:
        g = self.g
        for node in g.nodes:
            if node.op not in ("conv", "gemm") or not self.plan.trains(node.name):
                continue
            w, b = node.inputs[1], node.inputs[2]
            if node.name in self.plan.weight_channels:
                axis = 0 if is_depthwise(g, node) else 1
                self._to_state(TrainedParam(w, node.name, "weight", axis, self.plan.weight_channels[node.name]))
            if node.name in self.plan.bias:
                self._to_state(TrainedParam(b, node.name, "bias", 0, g[b].shape[0]))

    def _to_state(self, p: TrainedParam) -> None:
        v = self.g[p.name]
        self.initial[p.name] = v.data
        v.data = None
        self.g.inputs.append(p.name)
        self.g.state.append(p.name)
        self.params[p.name] = p
        self.requires.add(p.name)

    def _state(self, name: str, data: np.ndarray) -> str:
        v = Value(self.g.unique_name(name), str(data.dtype), data.shape)
        self.g.add_state(v)
        self.initial[v.name] = data
        return v.name

    def _updates(self) -> None:
        g, o = self.g, self.opts
        step = None
        if o.rounding == "stochastic":
            step = self._state("train.step", np.zeros((), np.int32))
            g.state_updates[step] = self.emit("count", [step], "train.step.next")
        for stream, p in enumerate(self.params.values()):
            if not p.grad:
                continue  # a trained parameter whose layer does not reach the loss
            grad = p.grad
            shape = g[grad].shape
            if o.momentum:
                vel = self._state(f"{p.name}.velocity", np.zeros(shape, np.float32))
                grad = self.emit("momentum", [vel, grad], f"{p.name}.velocity.next", beta=o.momentum)
                g.state_updates[vel] = grad
            factor = self._factor(p, shape)
            inputs = [p.name, grad, factor]
            if o.rounding == "stochastic":
                inputs.append(step)
            elif o.rounding == "accumulate":
                inputs.append(self._state(f"{p.name}.residual", np.zeros(shape, np.float32)))
            info = np.iinfo(g[p.name].dtype)
            qmin = -127 if g[p.name].dtype == "int8" else info.min  # int8 weights are symmetric
            new = self.emit("sgd", inputs, f"{p.name}.next", lr=o.lr, rounding=o.rounding, axis=p.axis,
                            channels=p.channels, qmin=qmin, qmax=info.max, seed=o.seed, stream=stream)
            node = g.nodes[-1]
            g[new].quant = g[p.name].quant
            g.state_updates[p.name] = new
            if o.rounding == "accumulate":
                g.state_updates[inputs[3]] = node.outputs[1]

    def _factor(self, p: TrainedParam, shape: tuple[int, ...]) -> str:
        """Per-channel factor converting a real-unit step into the parameter's integer units."""
        scale = self.g[p.name].quant.scale.astype(np.float64)
        rows = shape[0]
        s = scale[:rows] if p.kind == "weight" and p.axis == 0 else scale
        f = (1.0 / s) if self.opts.qas else s
        f = f.astype(np.float32).reshape((-1,) + (1,) * (len(shape) - 1))
        return self.g.add_const(f"{p.name}.step_factor", f).name


def build_training_graph(fwd: Graph, plan: TrainPlan, opts: TrainOptions) -> Builder:
    b = Builder(fwd, plan, opts)
    b.build()
    return b
