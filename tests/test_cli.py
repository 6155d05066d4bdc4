"""`tte inspect` and the CLI's handling of bad input: one clear line, non-zero exit, no traceback."""

from __future__ import annotations

import json
import pathlib
import re
import shutil
import subprocess
import sys

import numpy as np
import onnx
import pytest
from click.testing import CliRunner
from conftest import ROOT, SHARED_MODELS, shared_model

from tte.cli import main
from tte.report import read_memory_text
from tte.zoo import INPUT_NAME, GraphBuilder, quantize

EXAMPLE = ROOT / "examples" / "tiny_cnn.int8.onnx"


def run(*args: str):
    return CliRunner().invoke(main, [str(a) for a in args])


def assert_clean_error(result, *needles: str, code: int = 1):
    """Exactly one line on stderr containing every needle, exit code ``code``, no traceback."""
    assert result.exit_code == code, (result.exit_code, result.output)
    err = result.stderr.strip()
    assert len(err.splitlines()) == 1, err
    assert "Traceback" not in result.output
    for needle in needles:
        assert needle in err, (needle, err)
    return err


# -- the happy path ---------------------------------------------------------------------------
@pytest.mark.parametrize("name", SHARED_MODELS)
def test_inspect_table_shared_models(name):
    r = run("inspect", shared_model(name))
    assert r.exit_code == 0, r.output
    for needle in ("first_conv", "classifier", "params:", "MACs:", "peak int8 activation memory"):
        assert needle in r.stdout


def test_inspect_json_is_machine_readable():
    r = run("inspect", EXAMPLE, "--json")
    assert r.exit_code == 0, r.output
    d = json.loads(r.stdout)
    assert d["totals"]["params"] == sum(layer["params"] for layer in d["layers"])
    assert d["totals"]["macs"] == sum(layer["macs"] for layer in d["layers"])
    conv = next(layer for layer in d["layers"] if layer["op"] == "conv")
    assert set(conv) >= {"name", "op", "input_shape", "output_shape", "kernel", "stride", "groups", "params", "macs",
                         "output_scale", "output_zero_point"}


def test_dump_ir():
    r = run("inspect", EXAMPLE, "--dump-ir")
    assert r.exit_code == 0
    assert r.stdout.startswith("graph tiny_cnn(") and "= conv(" in r.stdout


def test_help_explains_commands():
    r = run("--help")
    assert r.exit_code == 0 and "inspect" in r.stdout
    r = run("inspect", "--help")
    assert "--input-shape" in r.stdout and "--json" in r.stdout


# -- bad input ----------------------------------------------------------------------------------
@pytest.fixture
def bad_files(tmp_path):
    data = EXAMPLE.read_bytes()
    files = {
        "truncated": data[: len(data) // 2],
        "garbage": np.random.default_rng(0).bytes(4096),
        "text": b"this is not a model\n",
        "png": b"\x89PNG\r\n\x1a\n" + bytes(64),
        "empty": b"",
    }
    paths = {}
    for k, v in files.items():
        paths[k] = tmp_path / f"{k}.onnx"
        paths[k].write_bytes(v)
    return paths


@pytest.mark.parametrize("kind", ["truncated", "garbage", "text", "png"])
def test_corrupt_or_not_onnx(bad_files, kind):
    assert_clean_error(run("inspect", bad_files[kind]), f"{kind}.onnx", "cannot be read as ONNX")


def test_empty_file(bad_files):
    assert_clean_error(run("inspect", bad_files["empty"]), "empty.onnx", "empty")


def test_missing_file(tmp_path):
    assert_clean_error(run("inspect", tmp_path / "nope.onnx"), "nope.onnx", "no such file")


def test_malformed_graph(tmp_path):
    """Parses as protobuf but is not a valid graph (a node reads a tensor nobody defines)."""
    model = onnx.load(str(EXAMPLE))
    model.graph.node[3].input[0] = "undefined_tensor"
    path = tmp_path / "malformed.onnx"
    path.write_bytes(model.SerializeToString())
    assert_clean_error(run("inspect", path), "malformed.onnx", "malformed ONNX model", "undefined_tensor")


def _quantized_with(tmp_path: pathlib.Path, op_type: str) -> pathlib.Path:
    g = GraphBuilder("odd", seed=1, input_shape=(1, 3, 16, 16))
    x = g.conv(INPUT_NAME, 3, 8, 3)
    x = g._node(op_type, [x])
    x = g.flatten(g.global_avg_pool(x))
    fpath = tmp_path / "odd.float.onnx"
    onnx.save(g.finish(g.gemm(x, 8, 10), (1, 10)), str(fpath))
    return quantize(fpath, tmp_path / f"with_{op_type.lower()}.int8.onnx")


def test_unsupported_op(tmp_path):
    path = _quantized_with(tmp_path, "Tanh")  # Sigmoid became supported; Tanh is not
    assert "Tanh" in {n.op_type for n in onnx.load(str(path)).graph.node}
    err = assert_clean_error(run("inspect", path), "unsupported op 'Tanh'", "tanh0", "tte supports", "Conv")
    assert "with_tanh.int8.onnx" in err


def test_dynamic_dimension_and_fix(tmp_path):
    model = onnx.load(str(EXAMPLE))
    dim = model.graph.input[0].type.tensor_type.shape.dim[0]
    dim.ClearField("dim_value")
    dim.dim_param = "batch"
    for out in model.graph.output:
        out.type.tensor_type.shape.dim[0].dim_param = "batch"
    path = tmp_path / "dynamic.onnx"
    onnx.save(model, str(path))
    ok = run("inspect", path, "--json")  # a dynamic batch becomes 1, with a note
    assert ok.exit_code == 0, ok.output
    assert json.loads(ok.stdout)["layers"][0]["input_shape"] == [1, 3, 32, 32]
    assert any("dynamic batch dimension 'batch' set to 1" in n for n in json.loads(ok.stdout)["notes"])
    model.graph.input[0].type.tensor_type.shape.dim[2].dim_param = "height"
    onnx.save(model, str(path))
    assert_clean_error(run("inspect", path), "dynamic dimension 'height' at axis 2", "--input-shape input=1,3,D2,32")
    ok = run("inspect", path, "--input-shape", "input=1,3,32,32")
    assert ok.exit_code == 0, ok.output
    assert "1x3x32x32" in ok.stdout
    ok = run("inspect", path, "--input-shape", "1,3,32,32", "--json")
    assert json.loads(ok.stdout)["layers"][0]["input_shape"] == [1, 3, 32, 32]


def test_bad_input_shape_option(tmp_path):
    r = run("inspect", EXAMPLE, "--input-shape", "1,three,32,32")
    assert r.exit_code == 2 and "Traceback" not in r.output and "--input-shape" in r.output
    assert_clean_error(run("inspect", EXAMPLE, "--input-shape", "other=1,3,32,32"), "unknown input", "other")
    assert_clean_error(run("inspect", EXAMPLE, "--input-shape", "1,3,16,16"), "axis 2", "fixes it to 32")


def test_float_model(tmp_path):
    import examples_loader

    fpath = tmp_path / "tiny.float.onnx"
    onnx.save(examples_loader.tiny_cnn(), str(fpath))
    assert_clean_error(run("inspect", fpath), "tiny.float.onnx", "float model", "quantize_static", "QInt8")


def test_partially_quantized_model(tmp_path):
    """A float op whose output is never quantized again (e.g. a float head left by the user)."""
    model = onnx.load(str(EXAMPLE))
    # drop the final QuantizeLinear/DequantizeLinear pair so the Gemm's float output is the graph output
    nodes = list(model.graph.node)
    q = next(n for n in nodes if n.op_type == "QuantizeLinear" and n.input[0].startswith("logits"))
    dq = next(n for n in nodes if n.op_type == "DequantizeLinear" and n.input[0] == q.output[0])
    gemm_out = q.input[0]
    model.graph.node.remove(q)
    model.graph.node.remove(dq)
    for n in model.graph.node:
        n.output[:] = ["logits" if o == gemm_out else o for o in n.output]
    path = tmp_path / "partial.onnx"
    onnx.save(model, str(path))
    assert_clean_error(run("inspect", path), "graph output 'logits'", "not fully quantized")


def test_uint8_activations_are_rewritten_to_int8(tmp_path):
    import examples_loader
    from onnxruntime.quantization import QuantType, quantize_static

    from tte.zoo import _Reader, calibration_inputs  # noqa: PLC2701 (test-only use)

    fpath = tmp_path / "tiny.float.onnx"
    onnx.save(examples_loader.tiny_cnn(), str(fpath))
    qpath = tmp_path / "tiny.u8.onnx"
    quantize_static(str(fpath), str(qpath), _Reader(calibration_inputs((1, 3, 32, 32))),
                    activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8)
    ok = run("inspect", qpath, "--json")  # every use is q - z: shifted exactly to int8 (tests/test_onnx_normalize.py)
    assert ok.exit_code == 0, ok.output
    assert any("uint8 quantization" in note for note in json.loads(ok.stdout)["notes"])


def test_console_script_exit_code(bad_files):
    """The installed entry point (not just click's runner): exit status and stderr only."""
    p = subprocess.run([sys.executable, "-m", "tte", "inspect", str(bad_files["garbage"])], capture_output=True,
                       text=True)
    assert p.returncode == 1
    assert p.stderr.startswith("error: ") and "Traceback" not in p.stderr and not p.stdout


def _edited(tmp_path, edit, name="edited.onnx"):
    model = onnx.load(str(EXAMPLE))
    edit(model)
    path = tmp_path / name
    onnx.save(model, str(path))
    return path


def _conv(model, i=0):
    return [n for n in model.graph.node if n.op_type == "Conv"][i]


def _set_attr(node, name, ints):
    attr = next(a for a in node.attribute if a.name == name)
    del attr.ints[:]
    attr.ints.extend(ints)


def _zero_scale(model):
    init = next(i for i in model.graph.initializer if i.name.endswith("_scale") and not i.dims)
    init.CopyFrom(onnx.numpy_helper.from_array(np.array(0.0, np.float32), init.name))


def _drop_input_zero_point(model):
    for n in model.graph.node:
        if n.input[0] in ("input", "input_QuantizeLinear_Output"):
            del n.input[2:]


@pytest.mark.parametrize("edit,needles", [
    (lambda m: _set_attr(_conv(m), "strides", [0, 0]), ["conv0", "strides [0, 0]"]),
    (lambda m: _set_attr(_conv(m), "strides", [2]), ["conv0", "strides [2]"]),
    (lambda m: _set_attr(_conv(m), "pads", [1, 1]), ["conv0", "pads [1, 1]"]),
    (_zero_scale, ["scale", "positive"]),
    (_drop_input_zero_point, ["uint8", "no zero point", "QInt8"]),
])
def test_bad_attributes_and_parameters(tmp_path, edit, needles):
    path = _edited(tmp_path, edit)
    r = run("inspect", path)
    assert r.exit_code != 0 and "Traceback" not in r.output and "internal error" not in r.output, r.output
    assert len(r.stderr.strip().splitlines()) == 1, r.stderr
    for needle in needles:
        assert needle in r.stderr, (needle, r.stderr)


def test_window_larger_than_input(tmp_path):
    model = onnx.load(str(EXAMPLE))
    pool = next(n for n in model.graph.node if n.op_type == "GlobalAveragePool")
    pool.op_type = "AveragePool"
    pool.attribute.extend([onnx.helper.make_attribute("kernel_shape", [16, 16])])
    path = tmp_path / "bigpool.onnx"
    onnx.save(model, str(path))
    assert_clean_error(run("inspect", path), "does not fit the padded 8x8 input")


# -- tte run: the plan's figures beside what the Cortex-M image measures -----------------------------------------------
@pytest.mark.skipif(shutil.which("arm-none-eabi-gcc") is None or shutil.which("qemu-system-arm") is None,
                    reason="the Arm toolchain and QEMU are not installed (.ci/run installs them)")
def test_run_puts_the_reserve_beside_the_measured_stack(tmp_path):
    """`tte run --target cortex-m4` prints memory.txt's planned peak and runtime reserve beside the image's measured
    static data (.data + .bss: the planned peak plus the C library's statics) and the stack's measured peak."""
    out = tmp_path / "out"
    assert run("compile", EXAMPLE, "--classes", "4", "--sram", "64k", "-o", out).exit_code == 0
    planned = read_memory_text((out / "memory.txt").read_text())
    r = run("run", out, "--target", "cortex-m4")
    assert r.exit_code == 0, r.output
    line = next(x for x in r.stdout.splitlines() if x.startswith("SRAM: planned peak"))
    m = re.fullmatch(r"SRAM: planned peak ([\d,]+) B, runtime reserve ([\d,]+) B \(memory\.txt\); measured: "
                     r"\.data \+ \.bss ([\d,]+) B \(the peak \+ ([\d,]+) B of C library and runtime statics\), "
                     r"stack peak ([\d,]+) B of its ([\d,]+) B, heap ([\d,]+) B", line)
    assert m, line
    peak, reserve, static, extra, stack_peak, stack, heap = (int(g.replace(",", "")) for g in m.groups())
    assert (peak, reserve) == (planned["SRAM: peak"], planned["SRAM: runtime reserve"])
    assert static == peak + extra and 0 <= extra <= 1024  # the reserve's 1 KB for the C library holds its statics
    assert 0 < stack_peak < stack == 4096 and stack + heap <= reserve
