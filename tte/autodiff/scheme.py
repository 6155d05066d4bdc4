"""What trains: sparse-update schemes (the paper's JSON format and presets), resolved onto a graph.

A scheme names layers by index: the conv and gemm nodes in forward order, counted from 0 (the stem),
**excluding the classifier** (the last weighted layer, always trained, weight and bias).  This is the
``conv_index`` of the published schemes in ``../shared/schemes/`` (the paper's models have no gemm).

* ``bias_update_last: k`` trains the biases of the last k layers;
* ``weight_update: {index: ratio}`` trains the weights of that layer for its first
  ``round(ratio * C_in)`` input channels (for a depthwise conv: its first ``round(ratio * C)``
  channels); ratio 0 means bias only.  Which channels come first is decided offline by weight
  magnitude (:mod:`tte.autodiff.channels`).

Presets: ``full`` (every weight and bias), ``bias-only`` (every bias, plus the classifier),
``last-K`` (weights and biases of the last K layers, plus the classifier).
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass, field, replace

from ..errors import TteError
from ..ir import Graph, Node
from ..ir.facts import is_depthwise
from ..ir.registry import OPS


class SchemeError(TteError):
    """A sparse-update scheme that is malformed or does not fit the model."""


class SchemeWarning(UserWarning):
    """A scheme that was made for another model (its ``model`` field names another one); applied all the same."""


@dataclass(frozen=True)
class SparseScheme:
    name: str
    bias_last: int | None  # None: every layer's bias
    weights: dict[int, float] = field(default_factory=dict)  # layer index -> input-channel ratio
    all_weights: bool = False  # `full`: every layer's weight, whole
    model: str | None = field(default=None, compare=False)  # the model a scheme file says it was made for

    @classmethod
    def full(cls) -> SparseScheme:
        return cls("full", None, {}, all_weights=True)

    @classmethod
    def bias_only(cls) -> SparseScheme:
        return cls("bias-only", None, {})

    @classmethod
    def last(cls, k: int) -> SparseScheme:
        return cls(f"last-{k}", k, {-i: 1.0 for i in range(1, k + 1)})

    @classmethod
    def from_dict(cls, d: object, where: str = "scheme") -> SparseScheme:
        if not isinstance(d, dict):
            raise SchemeError(f"{where}: expected a JSON object with 'bias_update_last' and 'weight_update'")
        unknown = set(d) - {"model", "label", "bias_update_last", "weight_update", "classifier"}
        if unknown:
            raise SchemeError(f"{where}: unknown key(s) {sorted(unknown)}; expected 'bias_update_last' and "
                              f"'weight_update' (and optionally 'model', 'label', 'classifier')")
        if "bias_update_last" not in d:
            raise SchemeError(f"{where}: missing 'bias_update_last' (number of last layers whose bias trains)")
        k = d["bias_update_last"]
        if not isinstance(k, int) or isinstance(k, bool) or k < 0:
            raise SchemeError(f"{where}: 'bias_update_last' must be a non-negative integer, got {k!r}")
        wu = d.get("weight_update", {})
        if not isinstance(wu, dict):
            raise SchemeError(f"{where}: 'weight_update' must be an object {{layer_index: ratio}}, got {wu!r}")
        weights: dict[int, float] = {}
        for key, ratio in wu.items():
            try:
                idx = int(key)
            except (TypeError, ValueError):
                raise SchemeError(f"{where}: weight_update key {key!r} is not a layer index") from None
            if idx < 0:
                raise SchemeError(f"{where}: weight_update layer index {idx} is negative")
            if isinstance(ratio, bool) or not isinstance(ratio, (int, float)) or not 0 <= ratio <= 1:
                raise SchemeError(f"{where}: weight_update ratio for layer {idx} must be a number in [0, 1], "
                                  f"got {ratio!r}")
            weights[idx] = float(ratio)
        model = d.get("model") if isinstance(d.get("model"), str) else None
        return cls(str(d.get("label") or d.get("model") or "custom"), k, weights, model=model)

    @classmethod
    def from_json(cls, path: str | os.PathLike) -> SparseScheme:
        try:
            with open(path, encoding="utf-8") as f:
                text = f.read()
        except OSError as e:
            raise SchemeError(f"{path}: cannot read scheme file ({e.strerror or e})") from None
        except UnicodeDecodeError:
            raise SchemeError(f"{path}: not a scheme file (not UTF-8 text)") from None
        try:
            d = json.loads(text)
        except json.JSONDecodeError as e:
            raise SchemeError(f"{path}: not valid JSON (line {e.lineno}, column {e.colno}: {e.msg})") from None
        except RecursionError:
            raise SchemeError(f"{path}: JSON nested too deeply to be a scheme (expected an object with "
                              "'bias_update_last' and 'weight_update')") from None
        scheme = cls.from_dict(d, str(path))
        return replace(scheme, name=os.path.basename(str(path)))

    @classmethod
    def parse(cls, spec: str | os.PathLike | dict | SparseScheme | None) -> SparseScheme:
        """A scheme from a preset name, a JSON file path, a dict or a scheme (None: ``full``)."""
        if spec is None:
            return cls.full()
        if isinstance(spec, SparseScheme):
            return spec
        if isinstance(spec, dict):
            return cls.from_dict(spec)
        s = os.fspath(spec)
        if s == "full":
            return cls.full()
        if s == "bias-only":
            return cls.bias_only()
        m = re.fullmatch(r"last-(\d+)", s)
        if m:
            return cls.last(int(m.group(1)))
        if os.path.exists(s) or s.endswith(".json"):
            return cls.from_json(s)
        raise SchemeError(f"unknown scheme '{s}': give a JSON file, 'full', 'bias-only' or 'last-K'")


@dataclass
class TrainPlan:
    """A scheme resolved onto a graph: which node's bias trains, and how many weight channels."""

    scheme: SparseScheme
    layers: list[str]  # weighted nodes (conv/gemm) by layer index, classifier excluded
    classifier: str
    bias: set[str]
    weight_channels: dict[str, int]  # node -> leading channels whose weights train (>= 1)

    def trains(self, node: str) -> bool:
        return node in self.bias or node in self.weight_channels


def made_for_another_model(scheme: SparseScheme, g: Graph) -> str | None:
    """The warning for a scheme whose ``model`` names another model than ``g`` (None when it names this one or
    none).  A name matches the graph's name or its source file's, whole or followed by a separator
    (``mbv2-w0.35`` matches ``mbv2-w0.35.int8.onnx`` and ``mbv2-w0.35_int8_qdq``)."""
    if not scheme.model:
        return None
    want = scheme.model.strip().lower()
    names = {g.name.lower()}
    if g.metadata.get("source"):
        names.add(os.path.basename(str(g.metadata["source"])).lower())
    if any(n == want or (n.startswith(want) and n[len(want)] in "._- ") for n in names):
        return None
    source = f" ({os.path.basename(str(g.metadata['source']))})" if g.metadata.get("source") else ""
    return (f"scheme '{scheme.name}' was made for model '{scheme.model}', not for '{g.name}'{source}: its layer "
            f"indices and channel ratios may not mean what they meant there")


def weighted_layers(g: Graph) -> tuple[list[Node], Node]:
    """(layers by scheme index, the classifier): conv/gemm nodes in order; the classifier is the last."""
    weighted = [n for n in g.nodes if OPS[n.op].layer]
    if not weighted:
        raise SchemeError(f"model '{g.name}' has no conv or gemm layer to train")
    return weighted[:-1], weighted[-1]


def channel_count(g: Graph, node: Node) -> int:
    """The channels a weight ratio applies to: input channels (per group), or a depthwise conv's channels."""
    w = g[node.inputs[1]].shape
    return w[0] if is_depthwise(g, node) else w[1]


def resolve(g: Graph, scheme: SparseScheme) -> TrainPlan:
    layers, classifier = weighted_layers(g)
    n = len(layers)
    if scheme.bias_last is not None and scheme.bias_last > n:
        raise SchemeError(f"scheme '{scheme.name}': bias_update_last={scheme.bias_last} but model '{g.name}' has "
                          f"only {n} layers besides the classifier")
    bias = {x.name for x in layers} if scheme.bias_last is None else {x.name for x in layers[n - scheme.bias_last:]}
    chans: dict[str, int] = {}
    if scheme.all_weights:
        chans = {x.name: channel_count(g, x) for x in layers}
    for idx, ratio in scheme.weights.items():
        i = idx + n if idx < 0 else idx
        if not 0 <= i < n:
            raise SchemeError(f"scheme '{scheme.name}': weight_update names layer {idx}, but model '{g.name}' has "
                              f"layers 0..{n - 1} besides the classifier")
        node = layers[i]
        if node.op == "conv" and node.attrs["groups"] > 1 and not is_depthwise(g, node) and 0 < ratio < 1:
            raise SchemeError(f"scheme '{scheme.name}': layer {idx} ('{node.name}') is a grouped conv; "
                              f"only ratio 0 or 1 is supported there")
        k = round(ratio * channel_count(g, node))
        if ratio > 0:
            k = max(k, 1)
        if k:
            chans[node.name] = k
    bias.add(classifier.name)
    chans[classifier.name] = channel_count(g, classifier)
    # a bias the model does not store as int32 (tte made it up, or re-quantized a float one) stays frozen:
    # there is no initializer to report its gradient under or to save it into
    synthetic = {n.name for n in layers + [classifier] if f"synthetic:{n.inputs[2]}" in g.metadata}
    return TrainPlan(scheme, [x.name for x in layers], classifier.name, bias - synthetic, chans)
