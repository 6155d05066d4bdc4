"""Generated C (inference): bit-exact with the reference, warning-free, deterministic, no malloc."""

from __future__ import annotations

import re
import subprocess

import numpy as np
import pytest
from conftest import ALL_MODELS, ROOT
from inputs import inputs

import tte
from tte.codegen import build_native, emit_inference
from tte.codegen.c_emitter import emit_node
from tte.codegen.native import SANITIZE, compile_c
from tte.ir.registry import OPS
from tte.ops.cgen import Emitter
from tte.passes.forward import fuse_pointwise_depthwise
from tte.passes.memory import arena_of
from tte.reference import semantics as sem

EXAMPLE = ROOT / "examples" / "tiny_cnn.int8.onnx"


@pytest.mark.parametrize("model_path", ALL_MODELS, indirect=True)
def test_native_inference_is_bit_exact(model_path, tmp_path, figures):
    g = tte.load(model_path)
    fused, _ = fuse_pointwise_depthwise(g)
    for graph, sub in ((g, "plain"), (fused, "fused")):
        native = build_native(graph, str(tmp_path / sub))
        q = graph[graph.nodes[0].output].quant
        for x in inputs(g[g.inputs[0]].shape, 6, seed=2):
            ours = graph.infer(x)
            assert np.array_equal(native.infer(x), ours)
            xq = sem.quantize(x, float(q.scale), int(q.zero_point))
            int8 = graph.run({graph.inputs[0]: x}, keep=True)[graph.nodes[-1].inputs[0]]
            assert np.array_equal(native.infer_s8(xq), int8.reshape(-1))


def test_emission_is_deterministic(tmp_path):
    g = tte.load(EXAMPLE)
    a = emit_inference(g, tmp_path / "a")
    b = emit_inference(tte.load(EXAMPLE), tmp_path / "b")
    assert [p.relative_to(tmp_path / "a") for p in a] == [p.relative_to(tmp_path / "b") for p in b]
    for pa, pb in zip(a, b):
        assert pa.read_bytes() == pb.read_bytes(), pa.name


def test_no_dynamic_memory(tmp_path):
    files = emit_inference(tte.load(EXAMPLE), tmp_path)
    for f in files:
        text = f.read_text()
        assert not re.search(r"\b(malloc|calloc|realloc|free)\s*\(", text), f


def test_sanitizers_are_clean(tmp_path):
    """A host program built with AddressSanitizer and UndefinedBehaviorSanitizer runs the model."""
    g, _ = fuse_pointwise_depthwise(tte.load(EXAMPLE))
    emit_inference(g, tmp_path)
    (tmp_path / "main.c").write_text(r"""
#include <stdio.h>
#include "tte_model.h"
int main(void) {
    static int8_t input[TTE_INPUT_SIZE];
    int8_t logits[TTE_OUTPUT_SIZE];
    for (int i = 0; i < TTE_INPUT_SIZE; i++) input[i] = (int8_t)((i * 37) % 256 - 128);
    if (tte_infer(input, logits) != 0) return 1;
    for (int i = 0; i < TTE_OUTPUT_SIZE; i++) printf("%d ", logits[i]);
    printf("\n");
    return 0;
}
""")
    exe = compile_c(tmp_path, tmp_path / "demo", SANITIZE)
    p = subprocess.run([str(exe)], capture_output=True, text=True)
    assert p.returncode == 0, p.stderr
    x = ((np.arange(g[g.nodes[0].output].size) * 37) % 256 - 128).astype(np.int8)
    env = {g.nodes[0].output: x.reshape(g[g.nodes[0].output].shape)}
    env.update({v.name: v.data for v in g.constants()})
    from tte.ir.executor import evaluate

    sub = g.copy()
    sub.nodes = g.nodes[1:-1]
    evaluate(sub, env)
    expected = env[g.nodes[-1].inputs[0]].reshape(-1)
    assert p.stdout.split() == [str(int(v)) for v in expected]


def test_op_without_emitter_is_a_named_error(monkeypatch):
    """Every registered op has an emitter (a missing facet fails registration, tests/test_ops_registry.py);
    a node whose op the registry does not know is a named error at emission."""
    g = tte.load(EXAMPLE)
    _, root, arena = arena_of(g)
    node = next(n for n in g.nodes if n.op == "add")
    monkeypatch.delitem(OPS, "add")
    with pytest.raises(tte.TteError, match="no C emitter for op 'add' \\(node 'add0'\\)"):
        emit_node(Emitter(g, arena, root), node)


def test_the_runtime_archive_is_keyed_by_contents_and_flags(tmp_path):
    """Native builds link the runtime from an archive compiled once per set of flags: the same runtime and flags
    find the same archive; a changed runtime file (a fix, or a deliberately planted bug) or other flags build
    another, so a build never links stale objects."""
    from tte.codegen.c_train import emit_program
    from tte.codegen.native import CFLAGS, runtime_archive

    emit_program(tte.compile(ROOT / "examples" / "tiny_cnn.int8.onnx", scheme="last-2", classes=4), tmp_path)
    flags = [*CFLAGS, "-fPIC"]
    first = runtime_archive(tmp_path, flags)
    assert first.exists() and runtime_archive(tmp_path, flags) == first
    assert runtime_archive(tmp_path, [*flags, "-DTTE_SOMETHING"]) != first
    source = tmp_path / "runtime" / "src" / "tte_add_s8.c"
    source.write_text(source.read_text() + "\n/* changed */\n")
    assert runtime_archive(tmp_path, flags) != first
