"""Deterministic test inputs in [-1, 1]: uniform noise and smooth random images."""

from __future__ import annotations

import numpy as np


def smooth_image(rng: np.random.Generator, shape) -> np.ndarray:
    """Blocky low-frequency image with a little noise, like a blurred photo."""
    n, c, h, w = shape
    cell = max(min(h, w) // 8, 1)
    coarse = rng.uniform(-1, 1, (n, c, -(-h // cell), -(-w // cell)))
    img = np.kron(coarse, np.ones((1, 1, cell, cell)))[:, :, :h, :w]
    return np.clip(img + rng.normal(0, 0.1, img.shape), -1, 1).astype(np.float32)


def pixels(rng: np.random.Generator, shape) -> np.ndarray:
    """An 8-bit image mapped as pixel / 127.5 - 1 (the shared models' preprocessing)."""
    p = np.round((smooth_image(rng, shape) + 1) * 127.5).astype(np.float32)
    return (p / np.float32(127.5) - np.float32(1)).astype(np.float32)


def inputs(shape, count: int, seed: int = 0):
    """``count`` inputs cycling through uniform noise, smooth images and 8-bit pixel images."""
    rng = np.random.default_rng(seed)
    for i in range(count):
        kind = i % 3
        if kind == 0:
            yield rng.uniform(-1, 1, shape).astype(np.float32)
        elif kind == 1:
            yield smooth_image(rng, shape)
        else:
            yield pixels(rng, shape)
