"""Synthetic Bengali handwritten-like digits from the shipped glyph atlas (no font needed).

Each sample takes one digit glyph of one font and applies a random stroke-width change
(dilation/erosion), a random affine map (rotation, scale, aspect, shear, shift), an elastic
displacement field, a slight blur, a contrast change and pixel noise, then is downsampled to
28x28, white on black like Ekush. Fonts are split by design family: the held-out families
only ever appear in the test set. Everything is drawn from one NumPy generator, so a seed
gives the same data bit for bit.
"""
from __future__ import annotations

from typing import Sequence

import cv2
import numpy as np

from .atlas import GlyphAtlas, load_atlas
from .digits import NUM_CLASSES, DigitData
from .errors import BengaliXAIError

DEFAULT_N = 20000
DEFAULT_TEST_FAMILIES = ("Lohit Assamese", "Noto Serif Bengali")


def font_split(atlas: GlyphAtlas, test_families: Sequence[str] = DEFAULT_TEST_FAMILIES) -> tuple[np.ndarray, np.ndarray]:
    """Indices of (train fonts, test fonts); the families named in `test_families` are held out."""
    unknown = sorted(set(test_families) - set(atlas.families))
    if unknown:
        raise BengaliXAIError(
            f"unknown font families {unknown}; the atlas has {sorted(set(atlas.families))}"
        )
    is_test = np.array([f in set(test_families) for f in atlas.families])
    if is_test.all() or not is_test.any():
        raise BengaliXAIError("the held-out families must leave at least one family on each side")
    return np.flatnonzero(~is_test), np.flatnonzero(is_test)


def distort(glyph: np.ndarray, rng: np.random.Generator, out_size: int = 28) -> np.ndarray:
    """One random handwriting-like distortion of a uint8 (S, S) glyph -> float32 (out, out) in [0, 1]."""
    s = glyph.shape[0]
    img = glyph.astype(np.float32) / 255.0
    # stroke width: thinner, unchanged or thicker pen
    k = rng.choice([-3, 0, 3, 5, 7], p=[0.15, 0.3, 0.25, 0.2, 0.1])
    if k > 0:
        img = cv2.dilate(img, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (int(k), int(k))))
    elif k < 0:
        img = cv2.erode(img, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (-int(k), -int(k))))
    # affine: output pixel -> source pixel (inverse map), about the centre
    angle = np.deg2rad(rng.uniform(-15, 15))
    scale = rng.uniform(0.8, 1.1)
    aspect = np.exp(rng.uniform(-0.18, 0.18))
    shear = rng.uniform(-0.3, 0.3)
    a = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    a = a @ np.array([[1.0, shear], [0.0, 1.0]]) @ np.diag([scale * aspect, scale / aspect])
    inv = np.linalg.inv(a)
    c = (s - 1) / 2.0
    shift = rng.uniform(-0.06, 0.06, size=2) * s
    yy, xx = np.mgrid[0:s, 0:s].astype(np.float32)
    px, py = xx - c - shift[0], yy - c - shift[1]
    src_x = inv[0, 0] * px + inv[0, 1] * py + c
    src_y = inv[1, 0] * px + inv[1, 1] * py + c
    # elastic: a smooth random displacement field (coarse noise upsampled bicubically)
    alpha = rng.uniform(0.0, 0.06) * s
    coarse = rng.uniform(-1, 1, size=(2, 5, 5)).astype(np.float32)
    src_x += alpha * cv2.resize(coarse[0], (s, s), interpolation=cv2.INTER_CUBIC)
    src_y += alpha * cv2.resize(coarse[1], (s, s), interpolation=cv2.INTER_CUBIC)
    src_x, src_y = src_x.astype(np.float32), src_y.astype(np.float32)
    img = cv2.remap(img, src_x, src_y, interpolation=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=0)
    sigma = rng.uniform(0.0, 1.2)
    if sigma > 0.3:
        img = cv2.GaussianBlur(img, (0, 0), sigma)
    img = cv2.resize(img, (out_size, out_size), interpolation=cv2.INTER_AREA)
    img = img / max(float(img.max()), 1e-6) * rng.uniform(0.7, 1.0)
    img = img + rng.normal(0.0, rng.uniform(0.0, 0.06), size=img.shape)
    return np.clip(img, 0.0, 1.0).astype(np.float32)


def make_synthetic(
    n: int = DEFAULT_N,
    seed: int = 0,
    test_fraction: float = 0.2,
    test_families: Sequence[str] = DEFAULT_TEST_FAMILIES,
    atlas: GlyphAtlas | None = None,
    progress: bool = False,
) -> DigitData:
    """`n` synthetic digits, balanced over classes; a `test_fraction` share drawn from held-out fonts.

    Returns a DigitData whose `heldout` mask marks the held-out-font samples.
    """
    if n < 2 * NUM_CLASSES:
        raise BengaliXAIError(f"synthetic data needs at least {2 * NUM_CLASSES} samples, got {n}")
    if not 0.0 < test_fraction < 1.0:
        raise BengaliXAIError(f"test_fraction must be in (0, 1), got {test_fraction}")
    atlas = atlas if atlas is not None else load_atlas()
    train_fonts, test_fonts = font_split(atlas, test_families)
    rng = np.random.default_rng(seed)
    n_test = max(NUM_CLASSES, int(round(n * test_fraction)))
    heldout = np.zeros(n, bool)
    heldout[n - n_test:] = True
    y = np.concatenate([rng.permutation(np.arange(m) % NUM_CLASSES) for m in (n - n_test, n_test)])
    fonts = np.where(heldout, rng.choice(test_fonts, size=n), rng.choice(train_fonts, size=n))
    x = np.empty((n, 28, 28, 1), np.float32)
    it = range(n)
    if progress:
        from tqdm import tqdm

        it = tqdm(it, desc="synthetic digits", unit="img", mininterval=1.0)
    for i in it:
        x[i, :, :, 0] = distort(atlas.glyphs[fonts[i], y[i]], rng)
    info = {
        "train_fonts": [atlas.fonts[i] for i in train_fonts],
        "test_fonts": [atlas.fonts[i] for i in test_fonts],
        "seed": seed,
        "n": n,
    }
    return DigitData(x, y.astype(np.int64), "synthetic", heldout, info)
