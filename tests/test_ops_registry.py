"""The op registry: every op declares every facet, once, in its family's module (tte.ops)."""

from __future__ import annotations

import dataclasses
import pathlib

import pytest

import tte  # noqa: F401  (registers every op)
from tte.codegen.c_train import PROGRAM_RUNTIME
from tte.frontend.onnx_frontend import Lifter
from tte.ir.registry import NOT_DIFFERENTIATED, OPS, Op, RegistryError, register

ROOT = pathlib.Path(__file__).resolve().parents[1]
FACETS = [f.name for f in dataclasses.fields(Op)]


@pytest.mark.parametrize("name", sorted(OPS))
def test_every_op_has_every_facet(name):
    op = OPS[name]
    for facet in FACETS:
        assert getattr(op, facet) is not None or facet in ("operands", "extra"), (name, facet)
    assert callable(op.kernel) and callable(op.emit) and callable(op.shape) and callable(op.channels)
    assert callable(op.grad) or op.grad is NOT_DIFFERENTIATED
    assert callable(op.scratch) and callable(op.in_place)
    # the C it needs exists
    for f in op.runtime:
        assert (ROOT / "runtime_c" / "src" / f).is_file(), (name, f)
    assert op.code_bytes > 0 or op.alias or not op.runtime, name
    # the frontend lifts each ONNX op it names
    for onnx_op in op.onnx:
        assert hasattr(Lifter, f"op_{onnx_op}"), (name, onnx_op)
    # a layer has a weight and a bias operand, and a gradient rule
    if op.layer:
        assert op.operands[1:3] == ("int8", "int32") and callable(op.grad)
    # a requantizing op clamps
    if op.requantizes:
        assert {"qmin", "qmax"} <= set(op.attrs)


def test_forward_ops_are_differentiable_and_training_ops_are_not():
    forward = {n for n, op in OPS.items() if op.onnx}
    assert {"conv", "gemm", "add", "avgpool", "global_avgpool", "maxpool", "concat", "reshape"} <= forward
    assert all(callable(OPS[n].grad) for n in forward)
    assert OPS["sgd"].grad is NOT_DIFFERENTIATED and OPS["conv_grad_input"].grad is NOT_DIFFERENTIATED


def test_every_runtime_source_belongs_to_an_op():
    # ... or to the emitted program itself (the persistence of its state: tte_state_*, tte_crc32)
    used = {f for op in OPS.values() for f in op.runtime} | set(PROGRAM_RUNTIME)
    sources = {p.name for p in (ROOT / "runtime_c" / "src").glob("*.c")}
    assert sources - used == set(), f"runtime files no op names: {sorted(sources - used)}"


def _facets(**changes):
    base = {f: getattr(OPS["requantize"], f) for f in FACETS}
    base["name"] = "test_op_never_registered"
    base.update(changes)
    return base


def test_a_missing_facet_is_an_error_at_registration():
    facets = _facets()
    del facets["code_bytes"]
    with pytest.raises(RegistryError, match=r"missing facets \['code_bytes'\]"):
        register(**facets)
    with pytest.raises(RegistryError, match=r"malformed facets \['grad'\]"):
        register(**_facets(grad=None))
    with pytest.raises(RegistryError, match="declared twice"):
        register(**_facets(name="conv"))
    assert "test_op_never_registered" not in OPS
