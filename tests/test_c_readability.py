"""Generated C a firmware engineer can read: lines of at most 120 characters, a named view per arena tensor
(no raw arena offsets in the code), named kinds of kernel call, each constant array once, and a memory report
whose flash counts exactly the constant arrays the C holds."""

from __future__ import annotations

import re

import numpy as np
import pytest
from conftest import ROOT, SHARED, SHARED_MODELS, ZOO_MODELS, shared_model

import tte
from tte.codegen import emit_inference
from tte.codegen.c_train import emit_program
from tte.codegen.project import write_project
from tte.ops.cgen import MAX_IDENT, Emitter, Shared, c_float
from tte.passes.forward import fuse_pointwise_depthwise
from tte.passes.memory import arena_of, memory_report
from tte.plan import make_plan

EXAMPLE = ROOT / "examples" / "tiny_cnn.int8.onnx"
PUBLISHED = {"mbv2-w0.35": "99kb", "mcunet-5fps": "99kb", "proxyless-w0.3": "98kb"}
GENERATED = ("tte_model.c", "tte_model.h", "tte_main.c")  # the runtime is copied from runtime_c/, not generated
SIZES = {"int8_t": 1, "uint8_t": 1, "int32_t": 4, "float": 4}
ARRAY = re.compile(r"^static const (\w+) (\w+)\[(\d+)\] = \{\n(.*?)\n\};", re.M | re.S)


def readability_problems(directory) -> list[str]:
    """What in the generated sources of ``directory`` breaks the rules of the module docstring."""
    problems = []
    for name in GENERATED:
        path = directory / name
        if not path.exists():
            continue
        text = path.read_text()
        for i, line in enumerate(text.splitlines(), 1):
            if len(line) > 120:
                problems.append(f"{name}:{i}: {len(line)} characters")
            if re.search(r"tte_arena \+ \d", line) and not line.startswith("#define "):
                problems.append(f"{name}:{i}: a raw arena offset outside the view definitions: {line.strip()}")
        if re.search(r"TTE_CALL\(\s*\d", text):
            problems.append(f"{name}: a numeric TTE_CALL kind")
        kinds = set(re.findall(r"TTE_CALL\((\w+),", text)) - {"kind"}
        declared = set(re.findall(r"^    (TTE_KIND_\w+),$", text, re.M))
        named = set(re.findall(r"^    \[(TTE_KIND_\w+)\] = \"\w+\",$", text, re.M))
        if not kinds <= declared or declared != named:
            problems.append(f"{name}: kinds called {sorted(kinds)}, declared {sorted(declared)}, named {sorted(named)}")
        seen = {}
        for ctype, array, _, items in ARRAY.findall(text):
            key = (ctype, re.sub(r"\s+", "", items))
            if key in seen:
                problems.append(f"{name}: {array} repeats {seen[key]} (same type and contents)")
            seen.setdefault(key, array)
    return problems


def const_array_bytes(path) -> int:
    return sum(SIZES[ctype] * int(n) for ctype, _, n, _ in ARRAY.findall(path.read_text()))


def flash_arrays(g) -> int:
    """The memory report's flash for constant arrays: frozen parameters and quantization arrays."""
    m = memory_report(g)
    return sum(m.frozen_flash.values()) + m.quant_flash - m.quant_literals


def check_inference(model, out) -> list[str]:
    """emit_inference's output for the model's forward graph, plain and fused."""
    g = tte.load(model)
    problems = []
    for graph, sub in ((g, "plain"), (fuse_pointwise_depthwise(g)[0], "fused")):
        emit_inference(graph, out / sub)
        problems += [f"inference ({sub}) {p}" for p in readability_problems(out / sub)]
    return problems


@pytest.mark.parametrize("name", SHARED_MODELS)
def test_paper_models_with_a_published_scheme(name, tmp_path, figures):
    program = tte.compile(shared_model(name), scheme=SHARED / "schemes" / f"{name}.{PUBLISHED[name]}.json",
                          classes=10)
    plan = make_plan(program, 256 * 1024, 1024 * 1024)
    write_project(program, plan, tmp_path / "project")
    assert not readability_problems(tmp_path / "project") + check_inference(shared_model(name), tmp_path)
    emitted = const_array_bytes(tmp_path / "project" / "tte_model.c")
    assert flash_arrays(program.train) == emitted
    figures(f"C readability {name} [{PUBLISHED[name]}]: {emitted:,} B of constant arrays, each once, as the "
            "memory report counts them")


@pytest.mark.parametrize("scheme", ["full", "bias-only", "last-2"])
def test_generated_models(scheme, zoo, tmp_path):
    problems = []
    for name in ZOO_MODELS:
        program = tte.compile(zoo[name], scheme=scheme)
        out = tmp_path / f"{name}-{scheme}"
        emit_program(program, out)
        problems += [f"{name} {scheme}: {p}" for p in readability_problems(out)]
        if flash_arrays(program.train) != const_array_bytes(out / "tte_model.c"):
            problems.append(f"{name} {scheme}: the memory report counts {flash_arrays(program.train):,} B of "
                            f"constant arrays, the C holds {const_array_bytes(out / 'tte_model.c'):,} B")
        if scheme == "full":
            problems += [f"{name}: {p}" for p in check_inference(zoo[name], out)]
    assert not problems, "\n".join(problems)


def test_views_are_named_after_their_values_uniquely():
    g = tte.load(EXAMPLE)
    _, root, arena = arena_of(g)
    e = Emitter(g, arena, root, view_prefix="v_")
    assert e.ptr("conv0.out/x") == "v_conv0_out_x" and e.ptr("conv0_out.x") == "v_conv0_out_x_2"
    assert e.ptr("conv0.out/x") == "v_conv0_out_x"
    long = [e.ptr("a" * 80 + s) for s in ("b", "c", "d")]
    assert len(set(long)) == 3 and all(len(v) <= MAX_IDENT for v in long)


def test_views_say_which_tensors_share_bytes(tmp_path):
    emit_program(tte.compile(EXAMPLE, scheme="full", classes=4), tmp_path)
    text = (tmp_path / "tte_model.c").read_text()
    views = re.findall(r"^/\* (.*?) \*/\n#define (step_\w+) \(\((\w+) \*\)\(tte_arena \+ (\d+)\)\)$",
                       re.sub(r"\n \* ", " ", text), re.M)
    assert views and len({v[1] for v in views}) == len(views)
    shared = [v for v in views if "; the bytes of step_" in v[0]]
    assert any("(reshape: a view)" in v[0] or "(freshape: a view)" in v[0] for v in shared)
    assert any(": in place)" in v[0] for v in shared)
    offsets = {v[1]: v[3] for v in views}
    for comment, _, _, offset in shared:
        assert offsets[re.search(r"the bytes of (step_\w+)", comment)[1]] == offset


def test_float_literals_are_exact():
    values = np.random.default_rng(0).standard_normal(2000).astype(np.float32) * np.float32(1e-3)
    values = np.concatenate([values, np.float32([1, -1, 0.5, 2**-126, 3.4e38, 1e-45, -0.0, 0])])
    for v in values:
        assert np.float32(float.fromhex(c_float(v)[:-1])) == v


def test_identical_arrays_are_one_array():
    shared = Shared()
    a = shared.array("conv1/Conv_m", np.float32([0.5, 0.25]), "float")
    assert shared.array("conv2/Conv_m", np.float64([0.5, 0.25]), "float") == a
    assert shared.array("conv2/Conv_m", np.float32([0.5, 0.125]), "float") != a
    assert shared.array("bias", np.int32([1, 2]), "int32_t") != shared.array("w", np.int8([1, 2]), "int8_t")
    assert shared.array("state", np.float32([0.5, 0.25]), "float", const=False) != a  # SRAM: never shared
    assert shared.shared_bytes == 8 and len(shared.consts) == 5
    assert shared.consts[0].startswith("/* shared with identical conv2/Conv_m */\nstatic const float ")
