"""A float32 PyTorch model of a tte forward graph: the framework a user would otherwise train with.

Weights and biases are the dequantized int8/int32 values; each requantizing op keeps its real-valued
clamp range (ReLU / ReLU6 folded into the quantization range become clamps) but no rounding: the fp32
model the int8 one was quantized from, as far as the int8 file can tell.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from tte.ir import Graph


def _real(v) -> torch.Tensor:
    q = v.quant
    shape = (-1,) + (1,) * (v.data.ndim - 1) if q.axis is not None else ()
    s = torch.tensor(np.asarray(q.scale, np.float32)).reshape(shape)
    z = torch.tensor(np.asarray(q.zero_point, np.float32)).reshape(shape)
    return (torch.tensor(v.data.astype(np.float32)) - z) * s


class FloatModel(torch.nn.Module):
    def __init__(self, g: Graph, trained: dict[str, tuple[int, int]] | None = None):
        """``trained``: parameter name -> (axis, leading channels) that train (None: all parameters)."""
        super().__init__()
        self.g = g
        self.params = torch.nn.ParameterDict()
        self.masks: dict[str, torch.Tensor] = {}
        self.keys: dict[str, str] = {}
        for node in g.nodes:
            if node.op not in ("conv", "gemm"):
                continue
            for name in node.inputs[1:]:
                key = name.replace(".", "_")
                self.keys[name] = key
                self.params[key] = torch.nn.Parameter(_real(g[name]),
                                                      requires_grad=trained is None or name in trained)
                if trained and name in trained:
                    axis, k = trained[name]
                    m = torch.zeros_like(self.params[key])
                    m.narrow(axis, 0, k).fill_(1)
                    self.masks[key] = m

    def mask_grads(self) -> None:
        for key, m in self.masks.items():
            if self.params[key].grad is not None:
                self.params[key].grad *= m

    def _clamp(self, node, y):
        q = self.g[node.output].quant
        s, z = float(q.scale), int(q.zero_point)
        return torch.clamp(y, s * (node.attrs["qmin"] - z), s * (node.attrs["qmax"] - z))

    @property
    def cut(self) -> int:
        """Index of the first node that reads a trained parameter: the nodes before it are the frozen prefix."""
        trained = {name for name, key in self.keys.items() if self.params[key].requires_grad}
        return next((i for i, n in enumerate(self.g.nodes) if trained & set(n.inputs[1:])), len(self.g.nodes))

    def prefix(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """The frozen prefix's outputs that the rest reads (the values to cache per input)."""
        k = self.cut
        env = self._run({self.g.inputs[0]: x}, self.g.nodes[:k])
        needed = {i for n in self.g.nodes[k:] for i in n.inputs} | set(self.g.outputs)
        return {name: v for name, v in env.items() if name in needed}

    def tail(self, cached: dict[str, torch.Tensor]) -> torch.Tensor:
        """The logits from :meth:`prefix`'s outputs: ``tail(prefix(x))`` is ``forward(x)``."""
        return self._run(dict(cached), self.g.nodes[self.cut:])[self.g.outputs[0]]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self._run({self.g.inputs[0]: x}, self.g.nodes)[self.g.outputs[0]]

    def _run(self, env: dict[str, torch.Tensor], nodes) -> dict[str, torch.Tensor]:
        g = self.g
        for node in nodes:
            a = [env.get(i) for i in node.inputs]
            op = node.op
            if op in ("quantize", "dequantize"):
                y = a[0]
            elif op == "conv":
                t, left, b, r = node.attrs["pads"]
                w, bias = (self.params[self.keys[n]] for n in node.inputs[1:])
                y = F.conv2d(F.pad(a[0], (left, r, t, b)), w, bias, node.attrs["strides"], groups=node.attrs["groups"])
            elif op == "gemm":
                w, bias = (self.params[self.keys[n]] for n in node.inputs[1:])
                y = F.linear(a[0], w, bias)
            elif op == "add":
                other = a[1] if a[1] is not None else _real(g[node.inputs[1]])
                y = a[0] + other
            elif op == "global_avgpool":
                y = a[0].mean(dim=(2, 3), keepdim=True)
            elif op == "avgpool":
                t, left, b, r = node.attrs["pads"]
                y = F.avg_pool2d(F.pad(a[0], (left, r, t, b)), node.attrs["kernel"], node.attrs["strides"])
            elif op == "maxpool":
                t, left, b, r = node.attrs["pads"]
                y = F.max_pool2d(F.pad(a[0], (left, r, t, b), value=float("-inf")), node.attrs["kernel"],
                                 node.attrs["strides"])
            elif op == "concat":
                y = torch.cat(a, dim=node.attrs["axis"])
            elif op == "reshape":
                y = a[0].reshape(node.attrs["shape"])
            elif op == "requantize":
                y = a[0]
            else:
                raise NotImplementedError(op)
            if "qmin" in node.attrs:
                y = self._clamp(node, y)
            env[node.output] = y
        return env
