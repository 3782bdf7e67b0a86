"""saliency_map: gradient saliency maps of test images and per-class mean maps (the report's saliency figures).

The map of an image is max over colour channels of |d S_y / d x| for its true class y (the report's
compute_gradient_saliency_maps), computed by `cams.Saliency`.
"""
from __future__ import annotations

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from cams.core.files import save_figure, save_npz  # noqa: E402
from cams.viz import heatmap, save_triplets  # noqa: E402

from ..data import CLASSES, denormalise  # noqa: E402
from .common import Analysis  # noqa: E402


def compute_gradient_saliency_maps(model, images: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """(N, H, W) saliency maps in [0, 1] of `images` for their labels."""
    import cams

    return np.asarray(cams.Saliency(model)(np.asarray(images, np.float32), targets=[int(v) for v in labels]))


def saliency_analysis(an: Analysis, n_pairs: int = 8, batch_size: int = 32, seed: int = 0) -> dict:
    """Per-image figure for `n_pairs` test images (half real, half fake) and the mean map per class."""
    import cams

    an.outputs("saliency-map")
    explainer = cams.Saliency(an.model)
    sums = {0: None, 1: None}
    counts = {0: 0, 1: 0}
    pool = {0: [], 1: []}
    for images, labels, _ in an.batches("test", batch_size):
        maps = np.asarray(explainer(images, targets=[int(v) for v in labels]), np.float32)
        for c in (0, 1):
            sel = labels == c
            if sel.any():
                s = maps[sel].sum(axis=0)
                sums[c] = s if sums[c] is None else sums[c] + s
                counts[c] += int(sel.sum())
                if len(pool[c]) < n_pairs:
                    pool[c].extend(zip(images[sel], maps[sel]))
    rng = np.random.default_rng(seed)
    pick = []
    for c in (0, 1):
        k = min(len(pool[c]), max(1, n_pairs // 2))
        idx = rng.choice(len(pool[c]), size=k, replace=False) if pool[c] else []
        pick += [(c,) + pool[c][i] for i in idx]
    if not pick:
        raise ValueError(f"no test images in {an.dataset_dir}")
    pairs_path = save_triplets(
        denormalise(np.stack([p[1] for p in pick])), np.stack([p[2] for p in pick]),
        an.figure("saliency_maps_and_images_pairs"), titles=[CLASSES[p[0]] for p in pick])

    means = {CLASSES[c]: sums[c] / counts[c] for c in (0, 1) if counts[c]}
    fig, axes = plt.subplots(1, len(means), figsize=(3.2 * len(means), 3.4), squeeze=False)
    for ax, (name, m) in zip(axes[0], means.items()):
        shown = m / (m.max() + 1e-12)
        ax.imshow(heatmap(shown, colormap="hot"))
        ax.set_title(f"mean saliency: {name} (n={counts[CLASSES.index(name)]})", fontsize=9)
        ax.set_xticks([]), ax.set_yticks([])
    fig.tight_layout()
    mean_path = save_figure(fig, an.figure("mean_saliency_maps"))
    npz = save_npz(an.out_dir / f"{an.dataset_name}_{an.model_name}_mean_saliency_maps.npz",
                   **{k: v.astype(np.float32) for k, v in means.items()})
    for p in (pairs_path, mean_path, npz):
        an.log(f"wrote {p}")
    return {"pairs": str(pairs_path), "mean_maps": str(mean_path), "mean_maps_npz": str(npz),
            "counts": {CLASSES[c]: counts[c] for c in (0, 1)},
            "mean": {k: v for k, v in means.items()}}
