"""What every analysis command shares: the checkpoint, the test split at the model's input size,
and where figures go (`<out>/figures/<dataset>_<model>_<what>.png`)."""
from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator

import numpy as np

from .. import data as ddata
from ..history_json import run_stem
from ..models import load_checkpoint


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
                  log: Callable[[str], None] = print) -> Analysis:
    """Resolve the data set, load the checkpoint (default: what `train` wrote with Adam)."""
    root = ddata.resolve_dataset(dataset, data_root)
    ddata.check_layout(root, ("test",))
    ckpt = Path(checkpoint) if checkpoint else default_checkpoint(root.name, model_name)
    model = load_checkpoint(ckpt)
    if model.name != model_name:
        print(f"warning: {ckpt} holds a {model.name} model, not {model_name}", file=sys.stderr)
    size = int(model.input_shape[1])
    log(f"loaded {ckpt} ({model.name}, {size}x{size} input); data set {root}")
    return Analysis(model, model_name, root.name, root, size, Path(out_dir), log)
