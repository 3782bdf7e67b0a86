"""The figure of a methods x metrics evaluation: one panel per metric column, one bar per method,
the 95% confidence interval of the mean over images as error bars. Written atomically
(see `cams.core.files`).
"""
from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np

from cams.core.files import save_figure
from cams.viz._backend import plt


def save_evaluation_figure(
    rows: Sequence[Mapping],
    path: str | os.PathLike,
    higher_is_better: Mapping[str, bool] | None = None,
    title: str | None = None,
    panels_per_row: int = 4,
) -> Path:
    """Bar charts of an evaluation table.

    Args:
        rows: one mapping per (method, metric column) with "method" (the bar's label), "column"
            (the panel), "mean", "ci95_low" and "ci95_high" (NaN bounds draw no error bar).
        path: the image file to write (format from the suffix).
        higher_is_better: {column: direction}; the panel's title gets an arrow (up: higher is better).
        title: the figure's title.
        panels_per_row: panels side by side.

    Returns:
        The path written.
    """
    if not rows:
        raise ValueError("no results to draw")
    columns = list(dict.fromkeys(r["column"] for r in rows))
    methods = list(dict.fromkeys(r["method"] for r in rows))
    cols = min(int(panels_per_row), len(columns))
    lines = math.ceil(len(columns) / cols)
    width = max(2.6, 0.5 * len(methods) + 1.2)
    fig, axes = plt.subplots(lines, cols, figsize=(width * cols, 2.9 * lines), squeeze=False)
    colours = plt.get_cmap("tab10")(np.arange(len(methods)) % 10)
    for ax, column in zip(axes.ravel(), columns):
        found = {r["method"]: r for r in rows if r["column"] == column}
        names = [m for m in methods if m in found]
        mean = np.array([float(found[m]["mean"]) for m in names])
        low = np.array([float(found[m]["ci95_low"]) for m in names])
        high = np.array([float(found[m]["ci95_high"]) for m in names])
        err = np.nan_to_num(np.vstack([mean - low, high - mean]), nan=0.0)
        ax.bar(np.arange(len(names)), mean, yerr=err, capsize=3,
               color=[colours[methods.index(m)] for m in names])
        ax.set_xticks(np.arange(len(names)))
        ax.set_xticklabels(names, rotation=45, ha="right", fontsize=8)
        arrow = "" if higher_is_better is None or column not in higher_is_better else (
            " \u2191" if higher_is_better[column] else " \u2193")
        ax.set_title(f"{column}{arrow}", fontsize=9)
        ax.grid(axis="y", alpha=0.3)
    for ax in axes.ravel()[len(columns):]:
        ax.axis("off")
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return save_figure(fig, path)
