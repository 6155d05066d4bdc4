"""What a newcomer trips over, one test each (issue 12, "Fix every item"): hints that name --classes, one SRAM
accounting and one --scheme auto for `tte plan`, `tte compile` and the Python API, consistent input shapes,
tables that fit, a warning for a scheme of another model, sizes and numbers refused in one line, output
directories, the step counter past 2^31, the stricter C warnings."""

from __future__ import annotations

import io
import json
import os
import re
import shutil
import subprocess
import warnings

import numpy as np
import pytest
from click.testing import CliRunner
from conftest import ROOT, SHARED, shared_model
from rich.console import Console

import tte
from tte.cli import main
from tte.codegen.outdir import MANIFEST
from tte.codegen.project import RUNTIME_RESERVE
from tte.plan import plan
from tte.report import TEXT_WIDTH, plan_text, print_plan, read_memory_text, terminal_console

EXAMPLE = ROOT / "examples" / "tiny_cnn.int8.onnx"
WARNINGS = ["-Wall", "-Wextra", "-Wconversion", "-Wsign-conversion", "-Werror"]


def run(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


def one_line_error(r, *needles, code: int = 1) -> str:
    """The result failed with exit code ``code`` and exactly one line on stderr, holding every needle."""
    err = r.stderr.strip()
    assert r.exit_code == code, (r.exit_code, r.output)
    assert len(err.splitlines()) == 1 and err.startswith("error: "), err
    assert "Traceback" not in r.output and "internal error" not in err, err
    for needle in needles:
        assert needle in err, (needle, err)
    return err


# -- hints that name --classes ----------------------------------------------------------------------------------------
def test_a_1000_class_head_that_does_not_fit_names_classes(tmp_path):
    """mbv2 with a published scheme but its own 1000-class head (its weights alone 109 KB) at 160 KB: the hint says
    --classes N (plan, compile, Python); with a 10-class head the same scheme fits."""
    model, scheme = shared_model("mbv2-w0.35"), SHARED / "schemes" / "mbv2-w0.35.49kb.json"
    for cmd in (["plan", model, "--scheme", scheme], ["compile", model, "--scheme", scheme, "-o", tmp_path / "o"]):
        err = one_line_error(run(*cmd, "--sram", "160k"), "1000-class classifier", "--classes N")
        assert "over the 160.0 KB budget" in err
    assert not (tmp_path / "o").exists()
    with pytest.raises(tte.TteError, match=r"1000-class classifier .*classes=N"):
        tte.compile(model, scheme=scheme, sram="160k")
    assert run("plan", model, "--scheme", scheme, "--classes", "10", "--sram", "160k").exit_code == 0
    # --scheme auto at a budget where even the classifier alone does not fit: the same hint
    one_line_error(run("plan", model, "--sram", "128k"), "no scheme fits", "--classes N")
    # a new head the user chose is not second-guessed
    err = one_line_error(run("plan", model, "--scheme", "full", "--classes", "10"))
    assert "--classes" not in err and "try a smaller --scheme" in err


# -- one accounting ---------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("where", ["1 KB short of the full update", "the full update's KB", "48k"])
def test_plan_and_compile_agree(where, tmp_path):
    """`tte plan` and `tte compile` decide "fits" the same way (the runtime reserve counted by both) and choose the
    same --scheme auto; so does tte.compile(scheme="auto", sram=...).  Budgets on either side of what the full update
    needs (with the reserve), and well below it."""
    need = -(-plan(EXAMPLE, scheme="full", classes=4).sram_needed // 1024)  # KB, rounded up
    sram = {"1 KB short of the full update": f"{need - 1}k", "the full update's KB": f"{need}k", "48k": "48k"}[where]
    for scheme in ("full", "auto"):
        p = run("plan", EXAMPLE, "--sram", sram, "--scheme", scheme, "--classes", "4", "--json")
        out = tmp_path / f"{scheme}-{sram}"
        c = run("compile", EXAMPLE, "--sram", sram, "--scheme", scheme, "--classes", "4", "-o", out)
        assert (p.exit_code == 0) == (c.exit_code == 0), (p.output, c.output)
        d = json.loads(p.stdout)
        assert d["fits"] == (p.exit_code == 0)
        assert d["runtime_reserve_bytes"] == RUNTIME_RESERVE
        assert d["sram_needed_bytes"] == d["peak_sram_bytes"] + RUNTIME_RESERVE
        assert d["fits"] == (d["sram_needed_bytes"] <= d["sram_budget_bytes"])
        if c.exit_code == 0:
            record = json.loads((out / "tte_compile.json").read_text())
            assert record["options"]["scheme"]["name"] == d["scheme"]
            memory = (out / "memory.txt").read_text()
            assert re.search(r"SRAM: runtime reserve +9,216", memory), memory
            assert re.search(rf"SRAM: total +{d['sram_needed_bytes']:,} ", memory)
            if scheme == "auto":
                program = tte.compile(EXAMPLE, scheme="auto", sram=sram, classes=4)
                assert program.plan.scheme.name == d["scheme"]
                assert program.fingerprint == int(record["fingerprint"], 16)
        else:
            assert "kept for stack, heap and C library" in c.stderr
    assert (d["scheme"] == "full") == (where == "the full update's KB")  # below it, auto stops short of the full update


def _row(text: str, name: str) -> int:
    """The bytes of the row ``name`` ("SRAM: peak", ...) of a printed report (a rich table, memory.txt or the lines
    of `tte compile`): the first number after the name on its line."""
    rows = [line for line in text.splitlines() if re.match(rf"^\W*{re.escape(name)}\b", line)]
    assert len(rows) == 1, (name, rows)
    return int(re.search(r"(\d[\d,]*)", rows[0][rows[0].index(name) + len(name):]).group(1).replace(",", ""))


def test_one_accounting_everywhere(tmp_path):
    """Issue 15: `tte plan` (table and --json), `tte compile` (what it prints and memory.txt), tte.plan.plan() and
    tte.compile() report the same peak SRAM (arena + trained parameters + optimizer state + kernel scratch), the
    runtime reserve as a line of its own, and the same total, for a paper model and a published scheme."""
    model, scheme = shared_model("mbv2-w0.35"), SHARED / "schemes" / "mbv2-w0.35.49kb.json"
    args = [model, "--scheme", scheme, "--classes", "10", "--sram", "256k"]
    r = run("plan", *args, "--json")
    assert r.exit_code == 0, r.output
    d = json.loads(r.stdout)
    peak, reserve, total = d["peak_sram_bytes"], d["runtime_reserve_bytes"], d["sram_needed_bytes"]
    assert peak == d["arena_bytes"] + d["trained_param_bytes"] + d["optimizer_state_bytes"] + d["scratch_bytes"]
    assert reserve == RUNTIME_RESERVE == sum(d["runtime_reserve"].values()) and total == peak + reserve
    figures = {"SRAM: peak": peak, "SRAM: runtime reserve": reserve, "SRAM: total": total}
    table = run("plan", *args).stdout
    out = tmp_path / "o"
    c = run("compile", *args, "-o", out)
    assert c.exit_code == 0, c.output
    memory = (out / "memory.txt").read_text()
    for name, value in figures.items():
        assert _row(table, name) == _row(c.stdout, name) == _row(memory, name) == value, name
    assert {k: read_memory_text(memory)[k] for k in figures} == figures  # what `tte run` reads back
    p = plan(model, "256k", scheme=scheme, classes=10)
    assert (p.memory.peak_sram, p.reserve, p.sram_needed) == (peak, reserve, total)
    assert p.to_dict()["peak_sram_bytes"] == peak
    program = tte.compile(model, scheme=scheme, classes=10, sram="256k")
    assert program.memory.peak_sram == program.memory_report().peak_sram == peak


def test_reserve_is_a_line_of_both_reports():
    r = run("plan", EXAMPLE, "--classes", "4")
    assert r.exit_code == 0
    assert "SRAM: runtime reserve" in r.stdout and "SRAM: total" in r.stdout and "SRAM: peak" in r.stdout
    assert "9,216" in r.stdout


def test_python_compile_takes_auto_and_budgets():
    p = tte.compile(EXAMPLE, scheme="auto", classes=4)  # the CLI's default budgets, 256k and 1m
    assert p.plan.scheme.name == plan(EXAMPLE, "256k", "1m", scheme="auto", classes=4).program.plan.scheme.name
    assert p.plan.scheme.all_weights  # tiny_cnn's full update fits 256 KB
    small = tte.compile(EXAMPLE, scheme="auto", sram=48 * 1024, flash="1m", classes=4)
    assert not small.plan.scheme.all_weights and small.memory.peak_sram < p.memory.peak_sram
    with pytest.raises(tte.TteError, match="over the 64.0 KB budget"):
        tte.compile(EXAMPLE, scheme="full", sram="64k", classes=4)
    with pytest.raises(tte.TteError, match="no scheme fits"):
        tte.compile(EXAMPLE, scheme="auto", sram="16k", classes=4)


# -- input shapes -----------------------------------------------------------------------------------------------------
def test_graph_and_program_infer_take_the_same_shapes():
    g = tte.load(EXAMPLE)
    program = tte.compile(EXAMPLE, scheme="last-1")
    x = np.random.default_rng(0).uniform(-1, 1, (1, 3, 32, 32)).astype(np.float32)
    outs = [g.infer(x), g.infer(x[0]), program.infer(x), program.infer(x[0])]
    assert all(o.shape == (1, 10) for o in outs)
    assert all(np.array_equal(outs[0], o) for o in outs)
    for f in (g.infer, program.infer):
        with pytest.raises(tte.TteError, match=r"expects \(1, 3, 32, 32\) or \(3, 32, 32\) \(one sample\)"):
            f(x[0, 0])
    program.train_step(x[0], 1)
    program.train_step(x, [1])
    assert program.steps == 2


# -- tables -----------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("width", [80, 120])
def test_tables_fit_the_terminal(width, monkeypatch):
    p = plan(EXAMPLE, scheme="auto", classes=4)
    buf = io.StringIO()
    print_plan(p, console=Console(file=buf, width=width, force_terminal=True, color_system=None))
    lines = buf.getvalue().splitlines()
    assert max(len(line) for line in lines) <= width and any("SRAM: runtime reserve" in line for line in lines)
    from tte.inspect import inspect as run_inspect
    from tte.report import print_inspect

    buf = io.StringIO()
    print_inspect(run_inspect(tte.load(EXAMPLE)), console=Console(file=buf, width=width, force_terminal=True,
                                                                  color_system=None))
    assert max(len(line) for line in buf.getvalue().splitlines()) <= width
    # on a terminal, the console takes the terminal's width (rich reads COLUMNS), not a fixed one
    monkeypatch.setenv("COLUMNS", str(width))
    monkeypatch.setattr(Console, "is_terminal", property(lambda self: True))
    assert terminal_console().width == width


def test_memory_txt_is_plain_text(tmp_path):
    out = tmp_path / "o"
    assert run("compile", EXAMPLE, "--classes", "4", "-o", out).exit_code == 0
    text = (out / "memory.txt").read_text()
    assert max(len(line) for line in text.splitlines()) <= TEXT_WIDTH
    assert not re.search("[\u2500-\u257f]", text)  # no box drawing
    assert text.isascii()
    p = plan(EXAMPLE, scheme="auto", classes=4)
    assert text.startswith(plan_text(p))


# -- a scheme made for another model -----------------------------------------------------------------------------------
def test_scheme_of_another_model_warns(tmp_path):
    other = tmp_path / "other.json"
    other.write_text(json.dumps({"model": "mcunet-5fps", "bias_update_last": 2, "weight_update": {"9": 1}}))
    mine = tmp_path / "mine.json"
    mine.write_text(json.dumps({"model": "tiny_cnn", "bias_update_last": 2, "weight_update": {"9": 1}}))
    r = run("plan", EXAMPLE, "--scheme", other, "--json")
    assert r.exit_code == 0
    assert len(r.stderr.strip().splitlines()) == 1
    assert r.stderr.startswith("warning: scheme 'other.json' was made for model 'mcunet-5fps'")
    json.loads(r.stdout)  # the warning stays off stdout
    r = run("plan", EXAMPLE, "--scheme", mine, "--json")
    assert r.exit_code == 0 and not r.stderr
    with pytest.warns(tte.autodiff.scheme.SchemeWarning, match="made for model 'mcunet-5fps', not for 'tiny_cnn'"):
        tte.compile(EXAMPLE, scheme=other)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        tte.compile(EXAMPLE, scheme=mine)
        tte.compile(shared_model("mbv2-w0.35"), scheme=SHARED / "schemes" / "mbv2-w0.35.49kb.json", classes=10)


# -- sizes and absurd numbers -----------------------------------------------------------------------------------------
@pytest.mark.parametrize(("args", "needles"), [
    (("--sram", "256"), ["--sram '256' would be 256 bytes; did you mean 256k?"]),
    (("--sram", "0.5"), ["0.5 bytes", "whole number of bytes"]),
    (("--sram", "0.3k"), ["whole number of bytes"]),
    (("--sram", "1e400"), ["--sram '1e400' is not a size"]),
    (("--flash", "99999999999k"), ["more than 4 GB"]),
    (("--sram", "0"), ["must be positive"]),
    (("--classes", "1000000000"), ["--classes must be between 1 and 65535"]),
    (("--classes", "0"), ["--classes must be between 1 and 65535"]),
])
def test_sizes_and_numbers_are_one_line(args, needles, tmp_path):
    one_line_error(run("plan", EXAMPLE, *args), *needles)
    one_line_error(run("compile", EXAMPLE, *args, "-o", tmp_path / "o"), *needles)
    assert not (tmp_path / "o").exists()


def test_sizes_that_are_fine():
    from tte.units import parse_size

    assert [parse_size(s) for s in ("256k", "256KB", "1m", "1.5m", "0.5k", "512B", "262144", " 256 kib ")] == \
        [262144, 262144, 1048576, 1572864, 512, 512, 262144, 262144]
    r = run("plan", "--help")
    assert "a number without a unit is bytes and must be at least 1024" in " ".join(r.stdout.split())


def test_deeply_nested_scheme_json(tmp_path):
    deep = tmp_path / "deep.json"
    deep.write_text("[" * 100000 + "]" * 100000)
    one_line_error(run("plan", EXAMPLE, "--scheme", deep), "nested too deeply")
    with pytest.raises(tte.TteError, match="nested too deeply"):
        tte.compile(EXAMPLE, scheme=deep)


@pytest.mark.parametrize(("kwargs", "match"), [
    ({"classes": 2.7}, "classes must be an integer, got float 2.7"),
    ({"classes": True}, "classes must be an integer"),
    ({"classes": 10**9}, "classes must be between 1 and 65535"),
    ({"seed": 2**32}, "seed must be between 0 and 4294967295"),
    ({"seed": -1}, "seed must be between 0"),
    ({"seed": 1.5}, "seed must be an integer"),
    ({"lr": "0.1"}, "lr must be a number"),
    ({"lr": float("inf")}, "lr must be finite"),
    ({"momentum": 1.5}, r"momentum must be in \[0, 1\)"),
    ({"qas": "yes"}, "qas must be True or False"),
    ({"rounding": "up"}, "unknown rounding 'up'; choose one of"),
    ({"scheme": 3}, "scheme must be"),
    ({"sram": "256"}, "did you mean 256k"),
    ({"input_shape": "1,3,32,32"}, "input_shape must be a shape"),
    ({"input_shape": (1, 3, 32.5, 32)}, "dimension must be an integer"),
])
def test_compile_checks_its_arguments(kwargs, match):
    with pytest.raises(tte.TteError, match=match):
        tte.compile(EXAMPLE, **kwargs)


def test_load_checks_its_arguments():
    for bad in (None, 3, b"x.onnx", ""):
        with pytest.raises(tte.TteError, match="model must be a file path"):
            tte.load(bad)
    with pytest.raises(tte.TteError, match="input_shape must be a shape"):
        tte.load(EXAMPLE, input_shape="abc")
    with pytest.raises(tte.TteError, match="keys must be input names"):
        tte.load(EXAMPLE, input_shape={0: (1, 3, 32, 32)})
    with pytest.raises(tte.TteError, match="model must be a file path or a Graph"):
        tte.compile(3)


def test_train_step_checks_labels():
    program = tte.compile(EXAMPLE, scheme="last-1", classes=4)
    x = np.zeros((3, 32, 32), np.float32)
    for bad in (1.5, True, "1", [1, 2], 4, -1, float("nan"), None):
        with pytest.raises(tte.TteError, match=r"label must be 1 class index\(es\), integers in \[0, 4\)"):
            program.train_step(x, bad)
    assert program.steps == 0
    for good in (2, 2.0, np.int64(2), np.array([2]), [2]):
        program.train_step(x, good)
    assert program.steps == 5


def test_seed_limit_compiles_in_c(tmp_path):
    """The largest seed (2^32 - 1) is valid C; a larger one is refused before any C is written."""
    program = tte.compile(EXAMPLE, scheme="last-1", classes=4, seed=2**32 - 1)
    native = program.native(str(tmp_path / "n"))
    x = np.zeros((3, 32, 32), np.float32)
    assert native.train_step(x, 1) == pytest.approx(program.train_step(x, 1), rel=1e-6)


# -- output directories -----------------------------------------------------------------------------------------------
def test_empty_output_refused(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    one_line_error(run("compile", EXAMPLE, "-o", ""), "output directory is empty")
    assert not list(tmp_path.iterdir())


def test_foreign_directory_needs_force(tmp_path):
    out = tmp_path / "mine"
    out.mkdir()
    (out / "Makefile").write_text("# my own\n")
    (out / "notes.txt").write_text("keep me\n")
    one_line_error(run("compile", EXAMPLE, "--classes", "4", "-o", out), "not empty", "not written by tte", "--force")
    assert (out / "Makefile").read_text() == "# my own\n" and sorted(p.name for p in out.iterdir()) == \
        ["Makefile", "notes.txt"]
    r = run("compile", EXAMPLE, "--classes", "4", "-o", out, "--force")
    assert r.exit_code == 0, r.output
    assert (out / "notes.txt").read_text() == "keep me\n"  # not tte's: untouched
    assert (out / "Makefile").read_text().startswith("# Generated by tte")  # --force: tte's name, replaced
    manifest = json.loads((out / MANIFEST).read_text())
    assert "notes.txt" not in manifest["files"] and "Makefile" in manifest["files"]
    # tte's own directory: recompiled into without --force
    assert run("compile", EXAMPLE, "--classes", "4", "-o", out).exit_code == 0


def test_only_tte_files_are_written_and_stray_sources_are_not_compiled(tmp_path):
    out = tmp_path / "o"
    assert run("compile", EXAMPLE, "--classes", "4", "-o", out).exit_code == 0
    manifest = json.loads((out / MANIFEST).read_text())["files"]
    on_disk = sorted(p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file())
    assert sorted(manifest + [MANIFEST]) == on_disk
    # a file of the previous compile that this one does not write is removed; the user's are left alone
    (out / "runtime" / "src" / "tte_old_kernel.c").write_text("int main(void) { return 3; }\n")
    (out / "samples.bin").write_bytes(b"mine")
    m = json.loads((out / MANIFEST).read_text())
    m["files"].append("runtime/src/tte_old_kernel.c")
    (out / MANIFEST).write_text(json.dumps(m))
    (out / "runtime" / "src" / "stray.c").write_text("int main(void) { return 4; }\n")
    assert run("compile", EXAMPLE, "--classes", "4", "-o", out).exit_code == 0
    assert not (out / "runtime" / "src" / "tte_old_kernel.c").exists()
    assert (out / "samples.bin").read_bytes() == b"mine" and (out / "runtime" / "src" / "stray.c").exists()
    makefile = (out / "Makefile").read_text()
    assert "wildcard" not in makefile and "stray.c" not in makefile and "runtime/src/tte_conv_s8.c" in makefile
    p = subprocess.run(["make", "-s", "-C", str(out), "run"], capture_output=True, text=True)
    assert p.returncode == 0, p.stderr  # stray.c (a second main) is not compiled in
    assert p.stdout.count(" loss ") == 5


def test_output_under_a_file_or_unwritable(tmp_path):
    f = tmp_path / "file.txt"
    f.write_text("x")
    one_line_error(run("compile", EXAMPLE, "-o", f / "out"), "is a file, not a directory")
    one_line_error(run("compile", EXAMPLE, "-o", f), "is a file, not a directory")
    if os.geteuid() == 0:  # root writes everywhere a mode allows: a directory no one may create in
        target = "/proc/tte-out" if os.path.isdir("/proc") else None
        if target is None:
            pytest.skip("no unwritable directory for root here")
    else:
        locked = tmp_path / "locked"
        locked.mkdir(mode=0o500)
        target = locked / "out"
    one_line_error(run("compile", EXAMPLE, "-o", target), "cannot create the output directory")


def test_os_errors_are_one_line(tmp_path):
    one_line_error(run("plan", EXAMPLE, "--scheme", "last-1", "--plot", tmp_path / "no" / "such" / "x.png"),
                   "No such file or directory")
    out = tmp_path / "o"
    assert run("compile", EXAMPLE, "--classes", "4", "-o", out).exit_code == 0
    blob = tte.compile(EXAMPLE, scheme="auto", classes=4)
    (tmp_path / "s.bin").write_bytes(blob.state_blob())
    one_line_error(run("export", out, "--state", tmp_path / "s.bin", "-o", tmp_path / "no" / "t.onnx"),
                   "No such file or directory")


# -- the step counter -------------------------------------------------------------------------------------------------
def test_step_counter_wraps_without_overflow(tmp_path):
    """Stochastic rounding's step counter past 2^31 steps: the C (built with UBSan, which stops on a signed overflow)
    and the reference train the same integers across the wrap; the emitted increment is unsigned."""
    program = tte.compile(EXAMPLE, scheme="last-2", classes=4, lr=0.05)
    (step,) = [k for k in program.state if k.startswith("train.step")]
    program.state[step] = np.array(2**31 - 2, np.int32)
    from tte.codegen import build_program

    native = build_program(program, str(tmp_path / "n"),
                           extra_flags=["-fsanitize=undefined", "-fno-sanitize-recover=all"])
    assert "(*(uint32_t *)" in (tmp_path / "n" / "tte_model.c").read_text()
    rng = np.random.default_rng(1)
    for i in range(4):
        x = rng.uniform(-1, 1, (3, 32, 32)).astype(np.float32)
        assert native.train_step(x, i % 4) == program.train_step(x, i % 4)
    assert int(program.state[step]) == -2**31 + 2 == int(native.state()[step])
    for name, value in program.state.items():
        assert np.array_equal(value, native.state()[name]), name


# -- the C builds clean with -Wconversion -Wsign-conversion -----------------------------------------------------------
@pytest.mark.parametrize("cc", ["gcc", "arm-none-eabi-gcc"])
def test_runtime_and_emitted_c_build_with_conversion_warnings(cc, tmp_path):
    if shutil.which(cc) is None:
        pytest.skip(f"{cc} not installed")
    arch = ["-mcpu=cortex-m4", "-mfpu=fpv4-sp-d16", "-mfloat-abi=hard", "-mthumb"] if cc.startswith("arm") else []
    out = tmp_path / "o"
    assert run("compile", EXAMPLE, "--classes", "4", "--scheme", "full", "-o", out).exit_code == 0
    assert all(w in (out / "Makefile").read_text() for w in WARNINGS)
    sources = [out / "tte_model.c", out / "tte_main.c", *sorted((ROOT / "runtime_c" / "src").glob("*.c"))]
    if arch:
        sources.append(ROOT / "runtime_c" / "board" / "tte_startup_cortex_m.c")
    for src in sources:
        p = subprocess.run([cc, "-std=c99", "-O2", *WARNINGS, "-ffp-contract=off", *arch, f"-I{out}",
                            f"-I{ROOT / 'runtime_c' / 'include'}", "-c", str(src), "-o", os.devnull],
                           capture_output=True, text=True)
        assert p.returncode == 0 and not p.stderr, f"{src.name}:\n{p.stderr}"


def test_no_runtime_line_over_120_characters():
    long = [f"{p.relative_to(ROOT)}:{i}" for p in sorted((ROOT / "runtime_c").rglob("*.[ch]"))
            for i, line in enumerate(p.read_text().splitlines(), 1) if len(line) > 120]
    assert not long, long
