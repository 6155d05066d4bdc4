"""IR construction, the verifier (each failure it must catch) and the text dump."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import ALL_MODELS

import tte
from tte.errors import IRError
from tte.ir import Graph, QuantParams, Value


def small_graph() -> Graph:
    """input -> quantize -> conv 3x3 (4->8) -> add(residual of a 1x1 conv) -> dequantize."""
    g = Graph("small")
    g.add_input(Value("x", "float32", (1, 4, 6, 6)))
    qa = QuantParams.per_tensor(0.05, -3)
    g.add_node("quantize", "q", ["x"], [Value("xq", "int8", (1, 4, 6, 6), qa)])
    rng = np.random.default_rng(0)
    wq = QuantParams(np.full(8, 0.01, np.float32), np.zeros(8, np.int32), 0)
    bq = QuantParams(np.full(8, 0.0005, np.float32), np.zeros(8, np.int32), 0)
    g.add_const("w", rng.integers(-127, 128, (8, 4, 3, 3), dtype=np.int8), wq)
    g.add_const("b", rng.integers(-500, 500, 8, dtype=np.int32), bq)
    g.add_node("conv", "conv", ["xq", "w", "b"], [Value("y", "int8", (1, 8, 6, 6), QuantParams.per_tensor(0.1, 2))],
               strides=(1, 1), pads=(1, 1, 1, 1), groups=1, qmin=-128, qmax=127)
    g.add_const("w2", rng.integers(-127, 128, (8, 8, 1, 1), dtype=np.int8), wq)
    g.add_const("b2", np.zeros(8, np.int32), QuantParams(np.full(8, 0.001, np.float32), np.zeros(8, np.int32), 0))
    g.add_node("conv", "pw", ["y", "w2", "b2"], [Value("z", "int8", (1, 8, 6, 6), QuantParams.per_tensor(0.2, 0))],
               strides=(1, 1), pads=(0, 0, 0, 0), groups=1, qmin=0, qmax=127)
    g.add_node("add", "add", ["y", "z"], [Value("s", "int8", (1, 8, 6, 6), QuantParams.per_tensor(0.25, -1))],
               qmin=-128, qmax=127)
    g.add_node("dequantize", "dq", ["s"], [Value("out", "float32", (1, 8, 6, 6))])
    g.outputs.append("out")
    return g


def test_valid_graph_verifies_and_runs():
    g = small_graph()
    g.verify()
    out = g.infer(np.zeros((1, 4, 6, 6), np.float32))
    assert out.shape == (1, 8, 6, 6) and out.dtype == np.float32


@pytest.mark.parametrize("model_path", ALL_MODELS, indirect=True)
def test_every_loaded_model_verifies(model_path):
    tte.load(model_path).verify()


def _breaks(mutate, match: str):
    g = small_graph()
    mutate(g)
    with pytest.raises(IRError, match=match):
        g.verify()


def test_use_before_definition():
    def swap(g):
        g.nodes[1], g.nodes[2] = g.nodes[2], g.nodes[1]
    _breaks(swap, "used before it is defined")


def test_double_assignment():
    def twice(g):
        g.nodes[2].outputs = ["y"]
    _breaks(twice, "assigned twice")


def test_undefined_operand():
    def ghost(g):
        g.nodes[3].inputs[1] = "ghost"
    _breaks(ghost, "'ghost' does not exist")


def test_wrong_shape():
    def shape(g):
        g["y"].shape = (1, 8, 5, 5)
    _breaks(shape, "shape")


def test_wrong_dtype():
    def dtype(g):
        g["b"].dtype = "int8"
        g["b"].data = g["b"].data.astype(np.int8)
    _breaks(dtype, "expected int32")


def test_missing_quant_params():
    def noq(g):
        g["z"].quant = None
    _breaks(noq, "no quantization parameters")


def test_per_channel_activation_rejected():
    def perchan(g):
        g["z"].quant = QuantParams(np.full(8, 0.1, np.float32), np.zeros(8, np.int32), 1)
    _breaks(perchan, "per channel")


def test_bad_clamp():
    def clamp(g):
        g.nodes[2].attrs["qmin"] = 50
        g.nodes[2].attrs["qmax"] = 10
    _breaks(clamp, r"clamp \[50, 10\]")


def test_verifier_message_shows_context():
    g = small_graph()
    g["y"].shape = (1, 8, 5, 5)
    with pytest.raises(IRError) as e:
        g.verify()
    assert ">> %y: int8[1,8,5,5]" in str(e.value)


def test_dump_is_readable():
    text = small_graph().dump()
    assert "%y: int8[1,8,6,6] q(s=0.1, z=2) = conv(%xq, @w, @b) {strides=1x1, pads=1x1x1x1, groups=1}" in text
    assert "clamp=[0,127]" in text
    assert text.splitlines()[-2] == "  return %out"


def test_quant_params_equality():
    a = QuantParams.per_tensor(0.5, 3)
    assert a == QuantParams.per_tensor(0.5, 3) and a != QuantParams.per_tensor(0.5, 2)
    assert len({a, QuantParams.per_tensor(0.5, 3)}) == 1
