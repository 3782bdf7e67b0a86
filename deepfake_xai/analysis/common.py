"""What every analysis command shares: the checkpoint, the test split at the model's input size,
where figures go (`<out>/figures/<dataset>_<model>_<what>.png`), and which files each command writes
there (`OUTPUTS`): a command replaces only the files its run manifest in --out-dir lists
(cams.core.outputs), and refuses any other file in their place before the model is loaded."""
from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator

import numpy as np

from cams.core.outputs import OutputFolder, check_apart

from .. import data as ddata
from ..history_json import run_stem
from ..models import load_checkpoint

#: the files each analysis command writes under --out-dir; {stem} is <dataset>_<model>
OUTPUTS = {
    "plot-accuracy-and-loss": ("figures/{stem}_losses_plot.png", "figures/{stem}_accuracies_plot.png"),
    "numerical-analysis": ("figures/{stem}_roc_curve.png", "figures/{stem}_det_curve.png", "{stem}_soft_scores.csv",
                           "{stem}_numerical_analysis.json"),
    "saliency-map": ("figures/{stem}_saliency_maps_and_images_pairs.png", "figures/{stem}_mean_saliency_maps.png",
                     "{stem}_mean_saliency_maps.npz"),
    "grad-cam-analysis": ("figures/{stem}_grad_cam_real.png", "figures/{stem}_grad_cam_fake.png"),
    "localization": ("figures/{stem}_localization_examples.png", "{stem}_localization.json"),
}


def analysis_outputs(out_dir: str | os.PathLike, command: str, dataset: str, model: str) -> OutputFolder:
    """The checked --out-dir of one analysis command (before any work): no file of another origin
    where its outputs go.

    Args:
        out_dir: the --out-dir folder.
        command: a key of OUTPUTS.
        dataset, model: the data set's folder name and the model name, naming the files.

    Returns:
        The OutputFolder (cams.core.outputs) to record the written files in.

    Raises:
        ValueError: one line naming the file in the way and --out-dir.
    """
    folder = OutputFolder(out_dir, command, f"deepfake-xai {command}", {"dataset": dataset, "model": model},
                          option="--out-dir")
    folder.claim(output_names(command, dataset, model))
    return folder


def output_names(command: str, dataset: str, model: str) -> list[str]:
    """The files `command` writes for this data set and model, relative to --out-dir."""
    return [name.format(stem=f"{dataset}_{model}") for name in OUTPUTS[command]]


@dataclass
class Analysis:
    """A loaded checkpoint and the data set it is analysed on."""

    model: object
    model_name: str
    dataset_name: str
    dataset_dir: Path
    image_size: int
    out_dir: Path
    log: Callable[[str], None] = print

    @property
    def figures_dir(self) -> Path:
        return self.out_dir / "figures"

    def figure(self, what: str, suffix: str = ".png") -> Path:
        """`<out>/figures/<dataset>_<model>_<what>.png`."""
        return self.figures_dir / f"{self.dataset_name}_{self.model_name}_{what}{suffix}"

    def result(self, what: str) -> Path:
        """`<out>/<dataset>_<model>_<what>.json`."""
        return self.out_dir / f"{self.dataset_name}_{self.model_name}_{what}.json"

    def outputs(self, command: str) -> OutputFolder:
        """The checked OutputFolder of `command` in out_dir, its files already listed in the manifest
        (they are written next; a killed run's files stay its own)."""
        folder = analysis_outputs(self.out_dir, command, self.dataset_name, self.model_name)
        folder.record(*output_names(command, self.dataset_name, self.model_name))
        return folder

    def batches(self, split: str = "test", batch_size: int = 32
                ) -> Iterator[tuple[np.ndarray, np.ndarray, list[str]]]:
        """(images in [-1, 1] (N,H,W,3) float32, labels (N,), paths) of a split, in file order."""
        ds, files = ddata.load_split(self.dataset_dir, split, self.image_size, batch_size, with_paths=True,
                                     quiet=False)
        for images, labels, paths in ds.as_numpy_iterator():
            yield images.astype(np.float32), labels.astype(np.int64), [p.decode("utf-8") for p in paths]

    def load_split_arrays(self, split: str = "test", batch_size: int = 32, limit: int | None = None):
        """Whole split (or its first `limit` images) as arrays: images, labels, paths."""
        xs, ys, ps = [], [], []
        n = 0
        for x, y, p in self.batches(split, batch_size):
            xs.append(x), ys.append(y), ps.extend(p)
            n += len(y)
            if limit is not None and n >= limit:
                break
        if not xs:
            raise ddata.DatasetError(f"no images in {self.dataset_dir / split}")
        return np.concatenate(xs)[:limit], np.concatenate(ys)[:limit], ps[:limit]


def default_checkpoint(dataset_name: str, model_name: str, checkpoint_dir: str | os.PathLike = "checkpoints",
                       optimizer: str = "Adam") -> Path:
    """`checkpoints/<dataset>_<model>_<optimizer>.keras`, what `train` writes."""
    return Path(checkpoint_dir) / f"{run_stem(dataset_name, model_name, optimizer)}.keras"


def open_analysis(model_name: str, dataset: str, checkpoint: str | os.PathLike | None = None,
                  data_root: str | os.PathLike = "data", out_dir: str | os.PathLike = "out",
                  log: Callable[[str], None] = print, command: str | None = None) -> Analysis:
    """Resolve the data set, load the checkpoint (default: what `train` wrote with Adam).

    Args:
        model_name: SimpleNet or XceptionBased (names the figures).
        dataset: the data set's name under data_root, or its path.
        checkpoint: the .keras checkpoint (default: checkpoints/<dataset>_<model>_Adam.keras).
        data_root: the folder holding the data sets.
        out_dir: where results go; never overlapping the data set or the checkpoint.
        log: where progress lines go.
        command: the analysis about to run (a key of OUTPUTS): its outputs are checked before the
            checkpoint is loaded.

    Returns:
        The Analysis.
    """
    root = ddata.resolve_dataset(dataset, data_root)
    ddata.check_layout(root, ("test",))
    ckpt = Path(checkpoint) if checkpoint else default_checkpoint(root.name, model_name)
    check_apart(out_dir, {"--dataset": [root], "--checkpoint-path": [ckpt]}, "--out-dir")
    if command is not None:
        analysis_outputs(out_dir, command, root.name, model_name)
    model = load_checkpoint(ckpt)
    if model.name != model_name:
        print(f"warning: {ckpt} holds a {model.name} model, not {model_name}", file=sys.stderr)
    size = int(model.input_shape[1])
    log(f"loaded {ckpt} ({model.name}, {size}x{size} input); data set {root}")
    return Analysis(model, model_name, root.name, root, size, Path(out_dir), log)
