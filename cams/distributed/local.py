"""Explain a large folder of images without holding it in memory, resuming where it stopped.

Images stream through tf.data (decoded in a background thread, `batch_size` at a time); for each
image `<out>/maps/<relative path>.npz` holds one map per method plus the predicted class and its
probability, and `<out>/overlays/<relative path>.<method>.png` the overlay. Every file is written
atomically, so an existing .npz means that image is complete: a rerun skips it.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
import tensorflow as tf
from PIL import Image
from tqdm import tqdm

from cams.core import files
from cams import metrics
from cams.core import model_graph
from cams import viz
from cams.core.images import list_images, load_image


@dataclass
class BatchReport:
    """What a run did: counts and where things went."""

    total: int = 0
    done_before: int = 0
    explained: int = 0
    skipped: List[Tuple[str, str]] = field(default_factory=list)
    out: Optional[Path] = None


def _relative(path: Path, roots: Sequence[Path]) -> Path:
    for root in roots:
        if root.is_dir():
            try:
                return path.resolve().relative_to(root.resolve())
            except ValueError:
                continue
    return Path(path.name)


def _stream(paths: List[Path], size, channels: int, scale: float, offset: float, batch_size: int):
    """tf.data pipeline of (index, image, ok) batches; unreadable files come back with ok=False."""

    def gen():
        for i, p in enumerate(paths):
            try:
                yield i, load_image(p, size, channels, scale, offset), True
            except ValueError:
                yield i, np.zeros((size[0], size[1], channels), np.float32), False

    spec = (
        tf.TensorSpec((), tf.int32),
        tf.TensorSpec((size[0], size[1], channels), tf.float32),
        tf.TensorSpec((), tf.bool),
    )
    return tf.data.Dataset.from_generator(gen, output_signature=spec).batch(batch_size).prefetch(2)


def explain_folder(
    model,
    inputs: Sequence[str | Path],
    out: str | Path,
    explainers: Dict[str, object],
    size: Optional[Tuple[int, int]] = None,
    scale: float = 1 / 255.0,
    offset: float = 0.0,
    batch_size: int = 16,
    overlays: bool = True,
    progress: bool = True,
) -> BatchReport:
    """Explain every image under `inputs` with each explainer in `explainers` (name -> explainer)."""
    _, h, w, c = model_graph.input_shape(model)
    if h is None or w is None:
        if size is None:
            raise ValueError("the model accepts any image size: pass size=(H, W)")
        h, w = size
    roots = [Path(p) for p in inputs]
    paths = list_images(roots)
    out = Path(out)
    rel = {p: _relative(p, roots) for p in paths}
    npz_of = {p: out / "maps" / rel[p].with_suffix(rel[p].suffix + ".npz") for p in paths}
    todo = [p for p in paths if not npz_of[p].exists()]
    report = BatchReport(total=len(paths), done_before=len(paths) - len(todo), out=out)
    bar = tqdm(total=len(todo), desc="explaining", unit="img", disable=not progress)
    for idx, x, ok in _stream(todo, (h, w), c, scale, offset, batch_size):
        idx, x, ok = idx.numpy(), x.numpy(), ok.numpy()
        for i in idx[~ok]:
            report.skipped.append((str(todo[i]), "not a readable image"))
        idx, x = idx[ok], x[ok]
        if len(x):
            probs = metrics.probabilities(model, x, batch_size)
            maps = {name: ex(x) for name, ex in explainers.items()}
            for j, i in enumerate(idx):
                p = todo[i]
                if overlays:
                    for name, m in maps.items():
                        png = out / "overlays" / rel[p].parent / f"{rel[p].name}.{name}.png"
                        with files.atomic_path(png, suffix=".png") as tmp:
                            Image.fromarray(viz.overlay(x[j], m[j])).save(tmp, format="PNG")
                files.save_npz(
                    npz_of[p],
                    predicted=np.int64(probs[j].argmax()),
                    probability=np.float32(probs[j].max()),
                    **{name.replace("+", "p"): m[j] for name, m in maps.items()},
                )
                report.explained += 1
        bar.update(len(idx) + int((~ok).sum()))
    bar.close()
    return report
