"""The callback's pictures: a grid of images and their overlays, and an animated GIF of such grids.

The grid has one row per image: the image, then one overlay (`cams.viz.overlay`) per method, each
cell resized to `cell` pixels (nearest-neighbour when enlarged, so small digits stay sharp), under a
header naming the columns. The animation is written by Pillow (`Image.save(save_all=True)`).
"""
from __future__ import annotations

from pathlib import Path
from typing import Mapping, Sequence

import cv2
import numpy as np
from PIL import Image

from cams.core import files
from cams.viz import overlay, to_uint8_rgb

HEADER = 18


def _cell(picture: np.ndarray, cell: int) -> np.ndarray:
    h, w = picture.shape[:2]
    scale = cell / max(h, w)
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    resized = cv2.resize(picture, size, interpolation=cv2.INTER_NEAREST if scale >= 1 else cv2.INTER_AREA)
    out = np.full((cell, cell, 3), 255, np.uint8)
    out[: size[1], : size[0]] = resized
    return out


def _header(titles: Sequence[str], cell: int) -> np.ndarray:
    strip = np.full((HEADER, cell * len(titles), 3), 255, np.uint8)
    for j, text in enumerate(titles):
        cv2.putText(strip, text[: max(1, cell // 7)], (j * cell + 3, HEADER - 5), cv2.FONT_HERSHEY_SIMPLEX, 0.4,
                    (0, 0, 0), 1, cv2.LINE_AA)
    return strip


def explanation_grid(images: np.ndarray, maps: Mapping[str, np.ndarray], titles: Mapping[str, str], label: str = "",
                     cell: int = 96) -> np.ndarray:
    """The grid of `images` (N, H, W, C) and each method's overlay: uint8 RGB (18 + N * cell, (1 + M) * cell, 3).

    Args:
        images: the explained images.
        maps: {method: (N, H, W) maps in [0, 1]}.
        titles: {method: column title}.
        label: the first column's title (e.g. "epoch 3").
        cell: the side of one cell in pixels.
    """
    rows = []
    for i, image in enumerate(images):
        rgb = to_uint8_rgb(image)
        rows.append(np.concatenate([_cell(rgb, cell)] + [_cell(overlay(rgb, m[i]), cell) for m in maps.values()], 1))
    header = _header([label] + [titles.get(k, k) for k in maps], cell)
    return np.concatenate([header] + rows, 0)


def save_png(picture: np.ndarray, path) -> Path:
    """Write a uint8 RGB array as a PNG, atomically."""
    with files.atomic_path(path, suffix=".png") as tmp:
        Image.fromarray(picture).save(tmp, format="PNG")
    return Path(path)


def save_animation(frames: Sequence, path, seconds_per_frame: float = 0.6) -> Path:
    """An animated GIF (looping) of `frames` (uint8 RGB arrays or image paths), written atomically by Pillow."""
    pictures = [Image.open(f).convert("RGB") if isinstance(f, (str, Path)) else Image.fromarray(f) for f in frames]
    with files.atomic_path(path, suffix=".gif") as tmp:
        pictures[0].save(tmp, format="GIF", save_all=True, append_images=pictures[1:],
                         duration=int(seconds_per_frame * 1000), loop=0)
    return Path(path)
