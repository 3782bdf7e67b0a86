"""Figure 1 of the face study: real and fake samples of each data set found under the data root."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from cams.core.files import save_figure
from cams.core.outputs import OutputFolder, check_apart

KNOWN = ("fakes_dataset", "synthetic_dataset")
#: the figure plot-samples writes under --out-dir
FIGURE = "figures/samples_of_faces_dataset.png"


def find_datasets(data_root: str | os.PathLike, names: Sequence[str] | None = None) -> list[Path]:
    """Data sets to show: `names` (each must exist), else every folder under data_root with the
    {train,val,test}/{real,fake} layout, the study's two first."""
    from .data import DatasetError, check_layout, resolve_dataset

    root = Path(data_root)
    if names:
        return [resolve_dataset(n, root) for n in names]
    if not root.is_dir():
        raise DatasetError(f"data root not found: {root}; build a data set with `deepfake-xai make-dataset`")
    found = []
    for d in sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")):
        try:
            check_layout(d)
        except DatasetError:
            continue
        found.append(d)
    if not found:
        raise DatasetError(f"no data set with {{train,val,test}}/{{real,fake}}/ under {root}; build one with "
                           f"`deepfake-xai make-dataset` (--kind synthetic for the synthetic one)")
    return sorted(found, key=lambda p: (KNOWN.index(p.name) if p.name in KNOWN else len(KNOWN), p.name))


def pick_samples(dataset: Path, split: str, n: int, seed: int = 0) -> dict[str, list[str]]:
    """n random image paths of each class of one split (fewer when the class has fewer)."""
    from .data import list_split

    files = list_split(dataset, split, check=False, need_both=False)
    rng = np.random.default_rng(seed)
    out = {}
    for k, cls in enumerate(("real", "fake")):
        paths = [p for p, y in zip(files.paths, files.labels) if y == k]
        out[cls] = [paths[i] for i in sorted(rng.choice(len(paths), min(n, len(paths)), replace=False))]
    return out


def samples_outputs(out_dir: str | os.PathLike, datasets: Sequence[Path]) -> OutputFolder:
    """The checked --out-dir of `plot-samples`, before any work: apart from the data sets shown, and
    no file of another origin at figures/samples_of_faces_dataset.png.

    Args:
        out_dir: the --out-dir folder.
        datasets: the data set folders shown.

    Returns:
        The OutputFolder (cams.core.outputs) to record the figure in.
    """
    check_apart(out_dir, {"--dataset": datasets}, "--out-dir")
    folder = OutputFolder(out_dir, "plot-samples", "deepfake-xai plot-samples",
                          {"datasets": [str(d) for d in datasets]}, option="--out-dir")
    folder.claim([FIGURE])
    return folder


def plot_samples(data_root: str | os.PathLike = "data", datasets: Sequence[str] | None = None, n: int = 4,
                 split: str = "train", out_dir: str | os.PathLike = "out", seed: int = 0,
                 log: Callable[[str], None] = print) -> Path:
    """One row of n real and one of n fake samples per data set ->
    `<out_dir>/figures/samples_of_faces_dataset.png` (the report's plot_samples_of_faces_dataset.py)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from .faces import read_rgb

    if n < 1:
        raise ValueError(f"--n must be at least 1, got {n}")
    found = find_datasets(data_root, datasets)
    outputs = samples_outputs(out_dir, found)
    outputs.record(FIGURE)
    rows = [(d, cls, paths) for d in found for cls, paths in pick_samples(d, split, n, seed).items()]
    fig, axes = plt.subplots(len(rows), n, figsize=(2.2 * n, 2.3 * len(rows)), squeeze=False)
    for r, (d, cls, paths) in enumerate(rows):
        for c in range(n):
            ax = axes[r, c]
            ax.axis("off")
            if c < len(paths):
                img = read_rgb(paths[c])
                if img is not None:
                    ax.imshow(img)
            if c == 0:
                ax.set_title(f"{d.name}: {cls}", loc="left", fontsize=10)
    fig.tight_layout()
    path = save_figure(fig, outputs.path(FIGURE))
    plt.close(fig)
    log(f"wrote {path} ({', '.join(d.name for d in found)}; {split} split, {n} per class)")
    return path
