"""Figure 1 of the face study: real and fake samples of each data set found under the data root."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

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
    """Per data set one row: n real then n fake samples side by side, each drawn at its full
    resolution (one image pixel per figure pixel, no interpolation) ->
    `<out_dir>/figures/samples_of_faces_dataset.png` (the report's plot_samples_of_faces_dataset.py)."""
    from .faces import read_rgb

    if n < 1:
        raise ValueError(f"--n must be at least 1, got {n}")
    found = find_datasets(data_root, datasets)
    outputs = samples_outputs(out_dir, found)
    outputs.record(FIGURE)
    rows = []
    for d in found:
        picked = pick_samples(d, split, n, seed)
        rows.append((d, [(cls, read_rgb(p)) for cls in ("real", "fake") for p in picked[cls]]))
    path = _full_resolution_figure(rows, outputs.path(FIGURE))
    log(f"wrote {path} ({', '.join(d.name for d in found)}; {split} split, {n} per class, full resolution)")
    return path


def _full_resolution_figure(rows: list, path: Path, dpi: int = 100, gap: int = 4, title_px: int = 30) -> Path:
    """Lay out [(data set, [(class, image or None), ...]), ...] one data set per row under its name,
    every image at its own pixel size (the largest image sets the cell) and titled with its class."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from cams.core.files import atomic_path

    cell = max((im.shape[0] for _, ims in rows for _, im in ims if im is not None), default=64)
    cols = max((len(ims) for _, ims in rows), default=1)
    width, height = cols * (cell + gap) + gap, len(rows) * (cell + title_px + gap) + gap
    fig = plt.figure(figsize=(width / dpi, height / dpi), dpi=dpi)
    for r, (d, ims) in enumerate(rows):
        top = gap + r * (cell + title_px + gap) + title_px
        fig.text(gap / width, 1 - (top - title_px + 2) / height, d.name, fontsize=9, va="top", weight="bold")
        for c, (cls, im) in enumerate(ims):
            if im is None:
                continue
            h, w = im.shape[:2]
            left = gap + c * (cell + gap)
            ax = fig.add_axes((left / width, 1 - (top + h) / height, w / width, h / height))
            ax.imshow(im, interpolation="none")
            ax.set_axis_off()
            ax.set_title(cls, fontsize=8, loc="left", pad=2)
    with atomic_path(path) as tmp:  # no bbox cropping: the axes stay at their exact pixel size
        fig.savefig(tmp, dpi=dpi, format="png")
    plt.close(fig)
    return path
