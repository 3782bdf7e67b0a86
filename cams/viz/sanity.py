"""The figures of Adebayo et al.'s randomisation tests ("Sanity Checks for Saliency Maps", NeurIPS 2018,
Fig. 2 and 4): similarity curves per method against the randomised depth, and a grid of one image's
maps as the layers are randomised. Figures are written atomically (see `cams.core.files`).
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Mapping, Optional, Sequence

import numpy as np

from cams.core.files import save_figure
from cams.core.images import to_uint8_rgb
from cams.viz._backend import plt

#: measure -> axis title, in the order of the paper's panels
MEASURE_TITLES = {"spearman_abs": "Spearman (abs)", "spearman": "Spearman (signed)", "ssim": "SSIM",
                  "hog": "HOG similarity"}


def plot_similarity_curves(rows: Sequence[Mapping], path: str | os.PathLike, titles: Optional[Mapping[str, str]] = None,
                           title: Optional[str] = None, spread: Optional[Sequence[Mapping]] = None) -> Path:
    """One panel per measure: the similarity of each method's maps to the original ones (y) against
    the randomisation step (x: "original", then the blocks from the logits down).

    Args:
        rows: table rows (method, step, layer, spearman_abs, spearman, ssim, hog), any order.
        path: where the figure goes (.png, .pdf, ...).
        titles: {method: legend title} (default: the method names).
        title: the figure's title.
        spread: rows of the same form holding a spread (e.g. the standard deviation over seeds),
            drawn as a band around each curve.

    Returns:
        The path written.
    """
    if not rows:
        raise ValueError("no rows to plot; run a randomisation test first")
    titles = dict(titles or {})
    steps = sorted({int(r["step"]) for r in rows})
    layer_of = {int(r["step"]): str(r["layer"]) for r in rows}
    methods = list(dict.fromkeys(r["method"] for r in rows))
    fig, axes = plt.subplots(1, len(MEASURE_TITLES), figsize=(4.0 * len(MEASURE_TITLES), 3.6), squeeze=False)
    for ax, (measure, label) in zip(axes[0], MEASURE_TITLES.items()):
        for i, method in enumerate(methods):
            mine = sorted((int(r["step"]), float(r[measure])) for r in rows if r["method"] == method)
            xs = [0] + [s for s, _ in mine]
            ys = np.array([1.0] + [v for _, v in mine])
            colour = plt.get_cmap("tab20")(i % 20) if len(methods) > 10 else f"C{i}"
            line, = ax.plot(xs, ys, marker="o", markersize=3, color=colour, linestyle=("-", "--")[i // 20 % 2],
                            label=titles.get(method, method))
            if spread:
                band = dict(sorted((int(r["step"]), float(r[measure])) for r in spread if r["method"] == method))
                err = np.array([0.0] + [band.get(s, 0.0) for s in xs[1:]])
                ax.fill_between(xs, ys - err, ys + err, color=line.get_color(), alpha=0.2, linewidth=0)
        ax.axhline(0.0, color="grey", linewidth=0.5)
        ax.set_ylim(-1.05, 1.05)
        ax.set_title(label, fontsize=10)
        ax.set_xticks([0, *steps])
        ax.set_xticklabels(["original", *(layer_of[s] for s in steps)], rotation=60, ha="right", fontsize=7)
    axes[0, -1].legend(fontsize=7, loc="center left", bbox_to_anchor=(1.02, 0.5))
    if title:
        fig.suptitle(title, fontsize=11)
    fig.tight_layout()
    return save_figure(fig, path)


def _display(image: np.ndarray) -> np.ndarray:
    """An image in any value range as uint8 RGB (min-max stretched)."""
    img = np.asarray(image, np.float32)
    lo, hi = float(img.min()), float(img.max())
    return to_uint8_rgb((img - lo) / (hi - lo) if hi > lo else np.zeros_like(img))


def save_randomisation_grid(image: np.ndarray, maps: Mapping[str, Sequence[np.ndarray]], steps: Sequence[str],
                            path: str | os.PathLike, titles: Optional[Mapping[str, str]] = None,
                            cell_size: float = 1.4, colormap: str = "gray") -> Path:
    """One row per method: the input, then |map| of the original model and after each step.

    Args:
        image: the explained image (H, W, C), any value range.
        maps: {method: [map of the original, map after step 1, ...]}, each (H, W); signed maps are shown
            as their absolute value.
        steps: column titles after "input": "original", then the randomised blocks.
        path: where the figure goes.
        titles: {method: row title}.
        cell_size: inches per panel.
        colormap: matplotlib colormap of the maps (the paper shows grey maps).

    Returns:
        The path written.
    """
    titles = dict(titles or {})
    if not maps:
        raise ValueError("no maps to draw")
    for name, seq in maps.items():
        if len(seq) != len(steps):
            raise ValueError(f"method {name!r} has {len(seq)} maps for {len(steps)} columns")
    rows, cols = len(maps), 1 + len(steps)
    fig, axes = plt.subplots(rows, cols, figsize=(cell_size * cols, cell_size * rows), squeeze=False)
    rgb = _display(image)
    for i, (name, seq) in enumerate(maps.items()):
        axes[i, 0].imshow(rgb)
        axes[i, 0].set_ylabel(titles.get(name, name), fontsize=8)
        for j, m in enumerate(seq, start=1):
            axes[i, j].imshow(np.abs(np.asarray(m, np.float32)), cmap=colormap, vmin=0.0, vmax=1.0)
    for j, label in enumerate(["input", *steps]):
        axes[0, j].set_title(str(label), fontsize=7, rotation=45 if j else 0)
    for ax in axes.ravel():
        ax.set_xticks([])
        ax.set_yticks([])
    fig.tight_layout()
    return save_figure(fig, path)
