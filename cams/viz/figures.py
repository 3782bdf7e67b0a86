"""Saliency figures saved to disk: method grids (images x methods) and input | heatmap | overlay triplets.

Images may be float in [0, 1], float in [0, 255] or uint8, grey (H, W) / (H, W, 1) or RGB
(H, W, 3); maps are (N, H, W) in [0, 1]. Figures are written atomically (see `cams.core.files`).
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np

from cams.core.files import save_figure
from cams.core.images import to_uint8_rgb
from cams.viz._backend import plt
from cams.viz.colors import heatmap, overlay


def save_grid(
    images: np.ndarray,
    maps: Mapping[str, np.ndarray],
    path: str | os.PathLike,
    row_labels: Sequence[str] | None = None,
    alpha: float = 0.4,
    colormap: str = "jet",
    cell_size: float = 2.0,
) -> Path:
    """Grid of images (rows) x methods (columns): the input, then one overlay per method.

    `maps` maps a method name to an (N, H, W) array of maps in [0, 1].
    """
    images = np.asarray(images)
    n = len(images)
    for name, m in maps.items():
        if len(m) != n:
            raise ValueError(f"method {name!r} has {len(m)} maps for {n} images")
    cols = 1 + len(maps)
    fig, axes = plt.subplots(n, cols, figsize=(cell_size * cols, cell_size * n), squeeze=False)
    for i in range(n):
        axes[i, 0].imshow(to_uint8_rgb(images[i]))
        if i == 0:
            axes[i, 0].set_title("input", fontsize=9)
        if row_labels is not None:
            axes[i, 0].set_ylabel(str(row_labels[i]), fontsize=8)
        for j, (name, m) in enumerate(maps.items(), start=1):
            axes[i, j].imshow(overlay(images[i], m[i], alpha=alpha, colormap=colormap))
            if i == 0:
                axes[i, j].set_title(name, fontsize=9)
    return _save_without_ticks(fig, axes, path)


def _save_without_ticks(fig, axes, path: str | os.PathLike) -> Path:
    """Hide every axis' ticks, tighten the layout and save the figure atomically."""
    for ax in np.ravel(axes):
        ax.set_xticks([])
        ax.set_yticks([])
    fig.tight_layout()
    return save_figure(fig, path)


def save_triplets(
    images: np.ndarray,
    maps: np.ndarray,
    path: str | os.PathLike,
    titles: Sequence[str] | None = None,
    alpha: float = 0.4,
    colormap: str = "jet",
    cell_size: float = 2.0,
) -> Path:
    """One row per image: input | heatmap | overlay (the Bengali study's Grad-CAM figure)."""
    images, maps = np.asarray(images), np.asarray(maps)
    if len(images) != len(maps):
        raise ValueError(f"{len(images)} images but {len(maps)} maps")
    n = len(images)
    fig, axes = plt.subplots(n, 3, figsize=(cell_size * 3, cell_size * n), squeeze=False)
    for i in range(n):
        rgb = to_uint8_rgb(images[i])
        axes[i, 0].imshow(rgb)
        axes[i, 1].imshow(heatmap(maps[i], colormap=colormap, size=rgb.shape[:2]))
        axes[i, 2].imshow(overlay(images[i], maps[i], alpha=alpha, colormap=colormap))
        if titles is not None:
            axes[i, 0].set_ylabel(str(titles[i]), fontsize=8)
    for j, t in enumerate(("input", "heatmap", "overlay")):
        axes[0, j].set_title(t, fontsize=9)
    return _save_without_ticks(fig, axes, path)
