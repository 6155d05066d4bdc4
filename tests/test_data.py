"""`tte data pack`: images (folders or .npz) prepared exactly as the model's input, split, packed into the documented
sample file; the emitted demo reads it (and refuses a file packed for another model); bad input is one line."""

from __future__ import annotations

import struct
import subprocess

import numpy as np
import pytest
from click.testing import CliRunner
from conftest import ROOT, SHARED
from PIL import Image

import tte
from tte import data as td
from tte.cli import main
from tte.reference import semantics as sem

EXAMPLE = ROOT / "examples" / "tiny_cnn.int8.onnx"
DIGITS = SHARED / "data" / "mnist10k.npz"


def run(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


def assert_clean_error(result, *needles: str, code: int = 1) -> str:
    assert result.exit_code == code, (result.exit_code, result.output)
    err = result.stderr.strip()
    assert len(err.splitlines()) == 1, err
    assert "Traceback" not in result.output
    for needle in needles:
        assert needle in err, (needle, err)
    return err


def digits(n: int = 40, seed: int = 0):
    """n small digit-like uint8 images (28 x 28) and labels: ../shared's digits when there, else strokes."""
    if DIGITS.exists():
        z = np.load(DIGITS)
        idx = np.random.default_rng(seed).permutation(len(z["labels"]))[:n]
        return z["images"][idx], z["labels"][idx].astype(np.int64)
    rng = np.random.default_rng(seed)
    x = np.zeros((n, 28, 28), np.uint8)
    y = rng.integers(0, 10, n)
    for i, c in enumerate(y):
        x[i, 4:24, 2 + 2 * c:6 + 2 * c] = 255
    return x, y


@pytest.fixture(scope="module")
def npz(tmp_path_factory):
    x, y = digits()
    path = tmp_path_factory.mktemp("data") / "digits.npz"
    np.savez(path, x=x, y=y)
    return path, x, y


# -- preparation: what the model's input is ---------------------------------------------------------------------------
def test_pack_prepares_each_image_as_the_python_api_would(npz, tmp_path):
    path, x, y = npz
    out = tmp_path / "s.bin"
    r = run("data", "pack", path, "--model", EXAMPLE, "-o", out, "--split", 30)
    assert r.exit_code == 0, r.output
    assert "40 samples (30 train, 10 test), 10 classes" in r.stdout
    s = td.Samples.read(out)
    assert (s.count, s.train, s.test, s.classes) == (40, 30, 10, 10)
    g = tte.load(EXAMPLE)
    q = g[g.nodes[0].output].quant
    assert s.format == td.InputFormat((1, 3, 32, 32), "NCHW", float(np.float32(q.scale)), int(q.zero_point),
                                      s.format.model_id)
    assert s.value_range == (-1.0, 1.0)  # the example's input quantization spans about [-1, 1]
    order = np.random.default_rng(0).permutation(40)  # shuffled with the seed, the first 30 train
    assert np.array_equal(s.labels, y[order])
    for k in (0, 17, 39):
        img = x[order[k]]
        # independently: Pillow's bilinear resize of the [0, 1] image, copied to R, G, B, mapped to [-1, 1], then
        # the reference quantize with the model's scale and zero point
        plane = np.asarray(Image.fromarray(img.astype(np.float32) / 255).resize((32, 32), Image.BILINEAR))
        real = np.repeat((plane * 2 - 1)[None], 3, axis=0).astype(np.float32)
        expected = sem.quantize(real, float(q.scale), int(q.zero_point))
        assert np.array_equal(s.inputs[k].reshape(3, 32, 32), expected)
        # and the float32 input the Python API takes quantizes to exactly these integers in the model's graph
        program_input = s.format.dequantize(s.inputs[k]).reshape(1, 3, 32, 32)
        assert np.array_equal(td.model_input(g).quantize(program_input).reshape(-1), s.inputs[k])


def test_the_sample_file_format_is_as_documented(npz, tmp_path):
    path, _, _ = npz
    out = tmp_path / "s.bin"
    assert run("data", "pack", path, "--model", EXAMPLE, "-o", out, "--limit", 5, "--test-fraction", 0.4,
               "--range", "0,1").exit_code == 0
    data = out.read_bytes()
    magic, version, header, count, train, sample, classes, rank = struct.unpack_from("<8s7I", data)
    assert (magic, version, header, count, train, sample, rank) == (b"TTEDATA\0", 1, 80, 5, 3, 3072, 4)
    assert struct.unpack_from("<4I", data, 36) == (1, 3, 32, 32)
    scale, zp, layout, model_id, lo, hi = struct.unpack_from("<fiIQff", data, 52)
    assert (zp, layout, lo, hi) == (-1, 0, 0.0, 1.0)
    assert model_id == int.from_bytes(__import__("hashlib").sha256(EXAMPLE.read_bytes()).digest()[:8], "big")
    assert len(data) == 80 + 5 * (4 + 3072)
    s = td.Samples.read(out)
    for k in range(5):
        rec = data[80 + k * 3076: 80 + (k + 1) * 3076]
        assert struct.unpack_from("<i", rec)[0] == s.labels[k]
        assert rec[4:] == s.inputs[k].tobytes()


def test_image_folders_equal_the_same_images_in_an_npz(npz, tmp_path):
    """One folder per class (sorted names: class 0 first), PNG and JPEG, any size; grayscale into an RGB model."""
    _, x, y = npz
    keep = np.flatnonzero(y < 3)[:9]
    folder = tmp_path / "images"
    for i in keep:
        d = folder / f"digit{y[i]}"
        d.mkdir(parents=True, exist_ok=True)
        Image.fromarray(x[i]).save(d / f"{i:04d}.png")
    (folder / "digit0" / "notes.txt").write_text("not an image")
    r = run("data", "pack", folder, "--model", EXAMPLE, "-o", tmp_path / "f.bin", "--test-fraction", 0)
    assert r.exit_code == 0, r.output
    from_folder = td.Samples.read(tmp_path / "f.bin")
    order = np.argsort([f"digit{y[i]}/{i:04d}.png" for i in keep], kind="stable")
    same = td.pack(x[keep][order], EXAMPLE, y=y[keep][order], test_fraction=0)
    assert np.array_equal(from_folder.inputs, same.inputs) and np.array_equal(from_folder.labels, same.labels)
    assert from_folder.classes == 3 and from_folder.test == 0
    # RGB JPEGs of another size are read too
    rgb = tmp_path / "rgb"
    for c in range(2):
        (rgb / str(c)).mkdir(parents=True)
        Image.fromarray(np.full((40, 50, 3), 60 * c + 10, np.uint8)).save(rgb / str(c) / "a.jpg")
    s = td.pack(rgb, EXAMPLE, test_fraction=0)
    assert s.count == 2 and sorted(s.labels) == [0, 1]


def test_rgb_to_grayscale_model_and_nhwc_layout(tmp_path):
    """A TFLite model declares an NHWC input: samples keep it; RGB images reach a 1-channel model as luma."""
    from tflite_builder import TFLiteBuilder

    for channels in (3, 1):
        b = TFLiteBuilder(seed=0)
        t = b.input((1, 8, 8, channels))
        t = b.conv2d(t, 4, 3, padding="SAME", activation="RELU6")
        t = b.fully_connected(b.reshape(t, (1, -1)), 3)
        path = tmp_path / f"m{channels}.tflite"
        b.save(path)
        m = td.model_input(path)
        assert m.format.layout == "NHWC" and m.format.shape == (1, 8, 8, channels)
        img = np.zeros((8, 8, 3), np.uint8)
        img[..., 0], img[..., 1], img[..., 2] = 255, 100, 0  # R, G, B differ
        s = td.pack(img[None], path, y=[1], test_fraction=0, value_range_choice="0,1")
        if channels == 3:
            want = np.array([1.0, 100 / 255, 0.0], np.float32)
        else:
            want = np.array([(0.299 * 255 + 0.587 * 100) / 255], np.float32)
        expected = m.quantize(np.broadcast_to(want, (1, 8, 8, channels)).astype(np.float32))
        assert np.array_equal(s.inputs[0].reshape(1, 8, 8, channels), expected)


def test_value_range_auto_follows_the_input_quantization():
    f = td.InputFormat((1, 3, 8, 8), "NCHW", 1 / 127.5, 0)
    assert td.value_range(f) == (-1.0, 1.0)
    assert td.value_range(td.InputFormat((1, 3, 8, 8), "NCHW", 1 / 255, -128)) == (0.0, 1.0)
    assert td.value_range(td.InputFormat((1, 3, 8, 8), "NCHW", 1.0, -128)) == (0.0, 255.0)
    assert td.value_range(f, "0,255") == (0.0, 255.0)


def test_split_limit_and_seed():
    tr, te = td.split_indices(100, test_fraction=0.25)
    assert (len(tr), len(te)) == (75, 25) and len(set(tr) | set(te)) == 100
    tr2, te2 = td.split_indices(100, split=10, limit=30, seed=3)
    assert (len(tr2), len(te2)) == (10, 20)
    assert np.array_equal(np.concatenate([tr2, te2]), np.random.default_rng(3).permutation(100)[:30])


# -- the emitted demo reads it -----------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def project(tmp_path_factory, npz):
    d = tmp_path_factory.mktemp("proj")
    r = run("compile", EXAMPLE, "--classes", 10, "--scheme", "full", "-o", d / "out")
    assert r.exit_code == 0, r.output
    p = subprocess.run(["make", "-s", "-C", str(d / "out"), "all"], capture_output=True, text=True)
    assert p.returncode == 0, p.stderr
    assert run("data", "pack", npz[0], "--model", EXAMPLE, "-o", d / "s.bin", "--split", 30).exit_code == 0
    return d


def demo(project, *args):
    return subprocess.run([str(project / "out" / "tte_demo"), *map(str, args)], capture_output=True, text=True,
                          cwd=project / "out")


def test_host_demo_trains_on_the_file_and_without_one_keeps_the_noise_demo(project):
    p = demo(project, project / "s.bin", 2)
    assert p.returncode == 0, p.stdout
    lines = [line for line in p.stdout.splitlines() if line.startswith("epoch")]
    assert len(lines) == 2 and "over 30 steps, test accuracy" in lines[0] and "/10 (" in lines[0]
    assert "ticks" not in p.stdout  # no clock on the host
    assert "state saved to tte_state.bin: status 0" in p.stdout and "60 steps" in p.stdout
    p = demo(project)
    assert p.returncode == 0 and p.stdout.count("\nstep ") + p.stdout.startswith("step ") == 5
    assert "ticks" not in p.stdout


def _patched(project, name: str, offset: int, fmt: str, value):
    data = bytearray((project / "s.bin").read_bytes())
    struct.pack_into(fmt, data, offset, value)
    path = project / name
    path.write_bytes(bytes(data))
    return path


@pytest.mark.parametrize("what,offset,fmt,value,needle", [
    ("magic", 0, "<8s", b"NOTDATA\0", "not a sample file"),
    ("version", 8, "<I", 2, "another format version"),
    ("scale", 52, "<f", 0.5, "packed for another input"),
    ("zero point", 56, "<i", 3, "packed for another input"),
    ("model", 64, "<Q", 12345, "packed for another model file"),
    ("classes", 28, "<I", 11, "more classes than the model"),
])
def test_demo_refuses_a_file_for_another_model(project, what, offset, fmt, value, needle):
    path = _patched(project, f"bad_{offset}.bin", offset, fmt, value)
    p = demo(project, path)
    assert p.returncode == 1 and needle in p.stdout, (what, p.stdout)
    assert "state saved" not in p.stdout
    r = run("run", project / "out", "--data", path)  # tte run says it before building anything
    assert r.exit_code == 1 and "Traceback" not in r.output and len(r.stderr.strip().splitlines()) == 1, r.output


def test_demo_refuses_a_truncated_file_and_a_bad_label(project):
    data = (project / "s.bin").read_bytes()
    (project / "short.bin").write_bytes(data[:-100])
    p = demo(project, project / "short.bin")
    assert p.returncode == 1 and "ends before record 39" in p.stdout
    bad = bytearray(data)
    struct.pack_into("<i", bad, 80, 10)  # label 10 of 10 classes
    (project / "label.bin").write_bytes(bytes(bad))
    p = demo(project, project / "label.bin")
    assert p.returncode == 1 and "label 10, outside [0, 10)" in p.stdout
    assert_clean_error(run("run", project / "out", "--data", project / "short.bin"), "truncated")


def test_another_model_file_with_the_same_input_is_refused(project, npz, tmp_path):
    import onnx

    m = onnx.load(EXAMPLE)
    m.doc_string = "another model"
    other = tmp_path / "other.onnx"
    onnx.save(m, other)
    assert run("compile", other, "--classes", 10, "--scheme", "full", "-o", tmp_path / "o").exit_code == 0
    assert_clean_error(run("run", tmp_path / "o", "--data", project / "s.bin"), "another model file")
    # --model may name the compiled directory itself (its copy of the model): then it is the same model
    r = run("data", "pack", npz[0], "--model", tmp_path / "o", "-o", tmp_path / "o.bin", "--limit", 3)
    assert r.exit_code == 0, r.output
    assert td.Samples.read(tmp_path / "o.bin").format.model_id == td.model_input(other).format.model_id
    r = run("run", tmp_path / "o", "--data", tmp_path / "o.bin")
    assert r.exit_code == 0 and "over 2 steps, test accuracy" in r.stdout, r.output


# -- bad input: one line ----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("arrays,needle", [
    ({"x": np.zeros((3, 8, 8), np.uint8), "y": np.array([0, 1.5, 2])}, "integer class labels; it holds 1.5"),
    ({"x": np.zeros((3, 8, 8), np.uint8), "y": np.array([0, -1, 2])}, "negative label -1"),
    ({"x": np.zeros((3, 8, 8), np.uint8), "y": np.array(["a", "b", "c"])}, "integer class labels"),
    ({"x": np.zeros((3, 8, 8), np.uint8), "y": np.array([0, 1])}, "3 images but there are 2 labels"),
    ({"x": np.full((2, 8, 8), 200.0), "y": np.array([0, 1])}, "divide by 255"),
    ({"x": np.zeros((2, 8), np.uint8), "y": np.array([0, 1])}, "[N, H, W] or [N, H, W, C]"),
    ({"images_": np.zeros((2, 8, 8), np.uint8)}, "holds 'x' (images) and 'y' (labels)"),
])
def test_bad_npz_is_one_line(tmp_path, arrays, needle):
    path = tmp_path / "bad.npz"
    np.savez(path, **arrays)
    assert_clean_error(run("data", "pack", path, "--model", EXAMPLE, "-o", tmp_path / "s.bin"), needle)
    assert not (tmp_path / "s.bin").exists()


def test_bad_sources_and_outputs_are_one_line(npz, tmp_path):
    path = npz[0]
    assert_clean_error(run("data", "pack", tmp_path, "--model", EXAMPLE, "-o", tmp_path / "s.bin"), "no class folders")
    (tmp_path / "cls" / "a").mkdir(parents=True)
    assert_clean_error(run("data", "pack", tmp_path / "cls", "--model", EXAMPLE, "-o", tmp_path / "s.bin"),
                       "holds no images")
    (tmp_path / "cls" / "a" / "x.png").write_bytes(b"not a png")
    assert_clean_error(run("data", "pack", tmp_path / "cls", "--model", EXAMPLE, "-o", tmp_path / "s.bin"),
                       "cannot read the image", "x.png")
    (tmp_path / "notes.txt").write_text("hello")
    assert_clean_error(run("data", "pack", tmp_path / "notes.txt", "--model", EXAMPLE, "-o", tmp_path / "s.bin"),
                       "neither an image folder nor an .npz")
    assert_clean_error(run("data", "pack", path, "--model", EXAMPLE, "-o", tmp_path / "notes.txt"),
                       "refusing to overwrite", "not a sample file")
    assert (tmp_path / "notes.txt").read_text() == "hello"
    assert run("data", "pack", path, "--model", EXAMPLE, "-o", tmp_path / "s.bin").exit_code == 0
    assert_clean_error(run("data", "pack", path, "--model", EXAMPLE, "-o", tmp_path / "s.bin"), "--force")
    assert run("data", "pack", path, "--model", EXAMPLE, "-o", tmp_path / "s.bin", "--force").exit_code == 0
    assert_clean_error(run("data", "pack", path, "--model", EXAMPLE, "-o", tmp_path / "t.bin", "--split", 10,
                           "--test-fraction", 0.5), "not both")
    assert_clean_error(run("data", "pack", path, "--model", EXAMPLE, "-o", tmp_path / "t.bin", "--split", 1000),
                       "--split must be")
    assert_clean_error(run("data", "pack", path, "--model", tmp_path / "notes.txt", "-o", tmp_path / "t.bin"))
    assert_clean_error(run("data", "pack", path, "--model", EXAMPLE, "-o", tmp_path / "nodir" / "t.bin"),
                       "cannot write")


def test_a_corrupted_sample_file_is_refused_in_python(npz, tmp_path):
    out = tmp_path / "s.bin"
    assert run("data", "pack", npz[0], "--model", EXAMPLE, "-o", out).exit_code == 0
    data = out.read_bytes()
    for bad, needle in [(data[:50], "not a sample file"), (data[:-1], "truncated"),
                        (data[:8] + struct.pack("<I", 9) + data[12:], "format version 9")]:
        (tmp_path / "b.bin").write_bytes(bad)
        with pytest.raises(tte.TteError, match=needle):
            td.Samples.read(tmp_path / "b.bin")
