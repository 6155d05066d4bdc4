"""A seeded, bounded fuzz of the TFLite frontend: byte-level mutants of a small int8 model that the test builds
(bits flipped, bytes set, a run zeroed, bytes inserted or deleted, the file truncated) through ``tte.load``,
``tte inspect`` and ``tte plan``.  Every mutant ends in success or in one tte error line, never in another
exception; a mutant that loads also plans."""

from __future__ import annotations

import numpy as np
import pytest
from test_cli import run
from tflite_builder import TFLiteBuilder

import tte

SEED, COUNT = 11, 400


def small_model() -> bytes:
    b = TFLiteBuilder(seed=5)
    x = b.input((1, 12, 12, 3))
    y = b.conv2d(x, 8, 3, stride=2, activation="RELU6")
    z = b.depthwise_conv2d(y, 3, activation="RELU")
    y = b.add(y, b.conv2d(z, 8, 1))
    y = b.avg_pool(y, kernel=6, stride=6)
    y = b.fully_connected(b.reshape(y, (1, 8)), 4)
    return b.build(outputs=[b.softmax(y)])


def mutate(data: bytes, rng: np.random.Generator) -> tuple[str, bytes]:
    a = bytearray(data)
    kind = rng.choice(["flip", "set", "zero-run", "insert", "delete", "truncate"])
    i = int(rng.integers(0, len(a)))
    if kind == "flip":
        for _ in range(int(rng.integers(1, 4))):
            j = int(rng.integers(0, len(a)))
            a[j] ^= 1 << int(rng.integers(0, 8))
    elif kind == "set":
        a[i] = int(rng.choice([0, 1, 0x7F, 0x80, 0xFF, int(rng.integers(0, 256))]))
    elif kind == "zero-run":
        n = int(rng.integers(2, 16))
        a[i:i + n] = bytes(len(a[i:i + n]))
    elif kind == "insert":
        a[i:i] = bytes(rng.integers(0, 256, int(rng.integers(1, 8)), dtype=np.uint8))
    elif kind == "delete":
        del a[i:i + int(rng.integers(1, 8))]
    else:
        del a[i:]
    return f"{kind}@{i}", bytes(a)


@pytest.mark.filterwarnings("ignore")
def test_tflite_mutants_end_in_success_or_one_error_line(tmp_path, figures):
    data = small_model()
    rng = np.random.default_rng(SEED)
    path = tmp_path / "m.tflite"
    verdicts = {"ok": 0, "error": 0}
    crashes = []
    for k in range(COUNT):
        what, mutant = mutate(data, rng)
        path.write_bytes(mutant)
        try:
            g = tte.load(path)
        except tte.TteError as e:
            assert "\n" not in str(e), (what, str(e))
            verdicts["error"] += 1
            continue
        except Exception as e:  # noqa: BLE001  (the property under test: nothing but a TteError)
            crashes.append(f"[{k}] {what}: {type(e).__name__}: {e}")
            continue
        verdicts["ok"] += 1
        if verdicts["ok"] <= 20:  # the CLI on the first accepted mutants: inspect and plan end cleanly
            for args in (("inspect", path), ("plan", path, "--scheme", "full", "--sram", "16m")):
                r = run(*args)
                if r.exit_code not in (0, 1) or "internal error" in r.output or "Traceback" in r.output:
                    crashes.append(f"[{k}] {what}: tte {args[0]}: exit {r.exit_code}: {r.output[-300:]}")
        del g
    assert not crashes, "\n".join(crashes)
    assert verdicts["ok"] > 0 and verdicts["error"] > 0, verdicts
    figures(f"tflite fuzz: {COUNT} byte-level mutants: {verdicts['ok']} load, {verdicts['error']} refused with one "
            f"line, 0 crashes")
