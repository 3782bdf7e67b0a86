"""Training curves: loss and accuracy per epoch from a Keras-style history dict, saved to disk.

Figures are written atomically (see `cams.core.files`).
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np

from cams.core.files import save_figure
from cams.viz._backend import plt


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
