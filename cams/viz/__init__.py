"""Figures shared by the library and both apps: heatmaps, overlays, method grids, history plots.

All functions take numpy arrays; images may be float in [0, 1], float in [0, 255] or uint8,
grey (H, W) / (H, W, 1) or RGB (H, W, 3). Figures are written atomically (see `cams.files`).
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Mapping, Sequence

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from cams.core.files import save_figure  # noqa: E402


def to_uint8_rgb(image: np.ndarray) -> np.ndarray:
    """Convert an image (grey or RGB, float [0,1] / [0,255] or uint8) to uint8 RGB (H, W, 3)."""
    img = np.asarray(image)
    if img.ndim == 3 and img.shape[-1] == 1:
        img = img[..., 0]
    if img.ndim == 2:
        img = np.stack([img] * 3, axis=-1)
    if img.ndim != 3 or img.shape[-1] != 3:
        raise ValueError(f"expected an image of shape (H, W), (H, W, 1) or (H, W, 3), got {img.shape}")
    if img.dtype == np.uint8:
        return img
    img = img.astype(np.float32)
    lo, hi = float(np.nanmin(img)), float(np.nanmax(img))
    if lo >= 0.0 and hi <= 1.0:
        img = img * 255.0
    elif lo < 0.0 or hi > 255.0:  # e.g. [-1, 1] or standardised input: rescale for display
        img = (img - lo) / (hi - lo + 1e-12) * 255.0
    return np.clip(np.rint(img), 0, 255).astype(np.uint8)


def heatmap(cam: np.ndarray, colormap: str = "jet", size: tuple[int, int] | None = None) -> np.ndarray:
    """Colour a map in [0, 1] (H, W) with a matplotlib colormap -> uint8 RGB (H, W, 3).

    `size` = (H, W) resizes the map bilinearly first.
    """
    cam = np.asarray(cam, dtype=np.float32)
    if cam.ndim == 3 and cam.shape[-1] == 1:
        cam = cam[..., 0]
    if cam.ndim != 2:
        raise ValueError(f"expected a map of shape (H, W), got {cam.shape}")
    if size is not None and tuple(cam.shape) != tuple(size):
        import cv2

        cam = cv2.resize(cam, (int(size[1]), int(size[0])), interpolation=cv2.INTER_LINEAR)
    cam = np.clip(np.nan_to_num(cam), 0.0, 1.0)
    rgba = matplotlib.colormaps[colormap](cam)
    return (rgba[..., :3] * 255.0 + 0.5).astype(np.uint8)


def overlay(image: np.ndarray, cam: np.ndarray, alpha: float = 0.4, colormap: str = "jet") -> np.ndarray:
    """Blend the coloured map over the image: (1 - alpha) * image + alpha * heatmap, uint8 RGB."""
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"alpha must be in [0, 1], got {alpha}")
    rgb = to_uint8_rgb(image)
    hm = heatmap(cam, colormap=colormap, size=rgb.shape[:2])
    out = (1.0 - alpha) * rgb.astype(np.float32) + alpha * hm.astype(np.float32)
    return np.clip(np.rint(out), 0, 255).astype(np.uint8)


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


def plot_history(
    history: Mapping[str, Sequence[float]],
    path: str | os.PathLike,
    title: str | None = None,
) -> Path:
    """Loss and accuracy per epoch, side by side, from a Keras-style history dict.

    Keys containing "loss" go to the left panel, keys containing "acc" to the right
    (e.g. loss/val_loss/accuracy/val_accuracy or train_loss/val_loss/train_acc/val_acc).
    A panel with no keys is left out.
    """
    loss_keys = [k for k in history if "loss" in k and len(history[k])]
    acc_keys = [k for k in history if "acc" in k and len(history[k])]
    if not loss_keys and not acc_keys:
        raise ValueError(f"history has no loss or accuracy series (keys: {sorted(history)})")
    panels = [(ks, name) for ks, name in ((loss_keys, "loss"), (acc_keys, "accuracy")) if ks]
    fig, axes = plt.subplots(1, len(panels), figsize=(5 * len(panels), 3.6), squeeze=False)
    for ax, (keys, name) in zip(axes[0], panels):
        for k in keys:
            values = np.asarray(history[k], dtype=float)
            ax.plot(np.arange(1, len(values) + 1), values, marker="o", markersize=3, label=k)
        ax.set_xlabel("epoch")
        ax.set_ylabel(name)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return save_figure(fig, path)
