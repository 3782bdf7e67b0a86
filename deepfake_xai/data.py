"""Folder data sets `<root>/<name>/{train,val,test}/{real,fake}/` as tf.data pipelines.

real = 0, fake = 1. Images are decoded, resized to the model's input size and normalised to
[-1, 1] (x / 127.5 - 1, also Xception's own preprocessing); the train split adds a random crop and
a horizontal flip. Every file is checked once before training: a corrupt or non-image file is
reported by path and left out, so an epoch never stops half-way on a bad file.
"""
from __future__ import annotations

import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

SPLITS = ("train", "val", "test")
CLASSES = ("real", "fake")  # label = index
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif")  # what tf.io.decode_image reads


class DatasetError(ValueError):
    """A data set folder is missing, incomplete or empty."""


@dataclass
class SplitFiles:
    """The readable images of one split, their labels, and the files that were left out."""

    split: str
    paths: list[str]
    labels: list[int]
    skipped: list[tuple[str, str]] = field(default_factory=list)

    def count(self, label: int) -> int:
        return sum(1 for lab in self.labels if lab == label)


def resolve_dataset(name: str | os.PathLike, data_root: str | os.PathLike = "data") -> Path:
    """Find the data set folder for `-d NAME`: `<data_root>/NAME`, or NAME itself when it is a path."""
    name = str(name)
    candidates = [Path(data_root) / name]
    if Path(name).is_absolute() or os.sep in name or (os.altsep and os.altsep in name):
        candidates.insert(0, Path(name))   # an explicit path wins
    elif Path(name).is_dir():
        candidates.append(Path(name))      # a bare name: <data_root>/NAME first, then ./NAME
    for c in candidates:
        if c.is_dir():
            return c
    hint = ("; generate the embedded data set with `deepfake-xai make-dataset`"
            if name == "fakes_dataset" else "")
    raise DatasetError(f"data set {name!r} not found (looked in {', '.join(str(c) for c in candidates)}): "
                       f"pass --data-root or a path to a folder with train/val/test/{{real,fake}}{hint}")


def check_layout(dataset_dir: str | os.PathLike, splits: tuple[str, ...] = SPLITS) -> None:
    """Raise DatasetError naming the first missing split or class folder."""
    root = Path(dataset_dir)
    for split in splits:
        for cls in CLASSES:
            d = root / split / cls
            if not d.is_dir():
                raise DatasetError(f"missing folder {d}: a data set needs {{train,val,test}}/{{real,fake}}/ "
                                   f"image folders (real = label 0, fake = label 1)")


def _check_decodable(paths: list[str]) -> set[str]:
    """Return the subset of `paths` that TensorFlow can decode as an image (one parallel pass)."""
    import tensorflow as tf

    if not paths:
        return set()
    ds = tf.data.Dataset.from_tensor_slices(paths)

    def probe(p):
        img = tf.io.decode_image(tf.io.read_file(p), channels=3, expand_animations=False)
        return p, tf.shape(img)

    ds = ds.map(probe, num_parallel_calls=tf.data.AUTOTUNE).ignore_errors()
    ok = set()
    for p, shape in ds.as_numpy_iterator():
        if shape[0] > 0 and shape[1] > 0:
            ok.add(p.decode("utf-8"))
    return ok


def list_split(dataset_dir: str | os.PathLike, split: str, check: bool = True, need_both: bool = True) -> SplitFiles:
    """List the images of one split (sorted, real then fake); unreadable files go to `skipped`.

    Args:
        dataset_dir: the data set folder.
        split: train, val or test.
        check: also decode every file once (undecodable ones are skipped).
        need_both: refuse a split where a class has no usable image (training and evaluation need both).

    Returns:
        The split's usable files and labels, and the files left out with the reason.

    Raises:
        DatasetError: one line naming the class folder, what it holds and what can be read.
    """
    root = Path(dataset_dir)
    check_layout(root, (split,))
    paths, labels, skipped = [], [], []
    for label, cls in enumerate(CLASSES):
        for p in sorted((root / split / cls).iterdir()):
            if p.name.startswith(".") or p.is_dir():
                continue
            if p.suffix.lower() not in IMAGE_SUFFIXES:
                skipped.append((str(p), f"not an image file (suffix {p.suffix or 'none'})"))
                continue
            paths.append(str(p))
            labels.append(label)
    if check:
        ok = _check_decodable(paths)
        keep = [i for i, p in enumerate(paths) if p in ok]
        skipped += [(p, "cannot be decoded (corrupt or truncated image)") for p in paths if p not in ok]
        paths, labels = [paths[i] for i in keep], [labels[i] for i in keep]
    empty = [cls for k, cls in enumerate(CLASSES) if k not in labels]
    if len(empty) == len(CLASSES) or (need_both and empty):
        found = " nor in ".join(f"{root / split / cls} ({describe_folder(root / split / cls)})" for cls in empty)
        raise DatasetError(f"no usable image in {found}; {READABLE}")
    return SplitFiles(split, paths, labels, skipped)


#: what the loaders read, for the message when a class folder has nothing usable
READABLE = f"images must be {', '.join(IMAGE_SUFFIXES)} files that TensorFlow decodes"


def describe_folder(folder: Path) -> str:
    """What a folder holds, for an error message: 'found 3 files: 2 .webp, 1 .txt; 1 subfolder'."""
    from collections import Counter

    entries = list(folder.iterdir())
    kinds = Counter((p.suffix.lower() or "no suffix") for p in entries if not p.is_dir())
    dirs = sum(1 for p in entries if p.is_dir())
    if not kinds and not dirs:
        return "it is empty"
    text = f"found {sum(kinds.values())} file(s)" + (": " + ", ".join(f"{n} {k}" for k, n in kinds.most_common(5))
                                                     if kinds else "")
    return text + (f"; {dirs} subfolder(s), not read" if dirs else "")


def report_skipped(files: SplitFiles, log: Callable[[str], None] | None = None) -> None:
    """Print one line per left-out file, naming its path and why, then the count by reason."""
    from collections import Counter

    log = log or (lambda s: print(s, file=sys.stderr))
    for path, why in files.skipped:
        log(f"warning: skipping {path}: {why}")
    if files.skipped:
        reasons = Counter(why.split(" (")[0] for _, why in files.skipped)
        log(f"warning: {files.split}: left out {len(files.skipped)} of {len(files.skipped) + len(files.paths)} "
            f"files ({', '.join(f'{n} {why}' for why, n in reasons.most_common())}); using {len(files.paths)}")


def _decode(path, image_size: int):
    import tensorflow as tf

    img = tf.io.decode_image(tf.io.read_file(path), channels=3, expand_animations=False)
    img.set_shape([None, None, 3])
    img = tf.image.resize(tf.cast(img, tf.float32), (image_size, image_size), antialias=True)
    return tf.clip_by_value(img, 0.0, 255.0)  # antialiased resampling overshoots a little


def normalise(images):
    """uint8-range pixels -> [-1, 1]."""
    return images / 127.5 - 1.0


def denormalise(images: np.ndarray) -> np.ndarray:
    """[-1, 1] -> [0, 1] float32 for display."""
    return np.clip((np.asarray(images, np.float32) + 1.0) / 2.0, 0.0, 1.0)


def make_pipeline(files: SplitFiles, image_size: int, batch_size: int, training: bool = False,
                  seed: int | None = 0, with_paths: bool = False):
    """tf.data pipeline of (images in [-1, 1], labels) batches; train: shuffle, random crop and flip."""
    import tensorflow as tf

    if image_size < 8:
        raise ValueError(f"image size must be at least 8, got {image_size}")
    ds = tf.data.Dataset.from_tensor_slices((files.paths, np.asarray(files.labels, np.int32)))
    if training:
        ds = ds.shuffle(len(files.paths), seed=seed, reshuffle_each_iteration=True)
    big = int(round(image_size * 1.125))

    def load(path, label):
        if training:
            img = _decode(path, big)
            img = tf.image.random_crop(img, (image_size, image_size, 3))
            img = tf.image.random_flip_left_right(img)
        else:
            img = _decode(path, image_size)
        img = normalise(img)
        return (img, label, path) if with_paths else (img, label)

    ds = ds.map(load, num_parallel_calls=tf.data.AUTOTUNE).ignore_errors(log_warning=True)
    # ignore_errors hides the length from Keras ("1/Unknown" steps, no ETA); list_split has already
    # moved undecodable files to `skipped`, so every listed file yields one element
    ds = ds.apply(tf.data.experimental.assert_cardinality(len(files.paths)))
    return ds.batch(batch_size).prefetch(tf.data.AUTOTUNE)


def load_split(dataset_dir: str | os.PathLike, split: str, image_size: int, batch_size: int,
               training: bool = False, seed: int | None = 0, with_paths: bool = False, quiet: bool = False):
    """List, check and pipeline one split; returns (tf.data.Dataset, SplitFiles)."""
    files = list_split(dataset_dir, split)
    if not quiet:
        report_skipped(files)
    return make_pipeline(files, image_size, batch_size, training, seed, with_paths), files


def fake_to_real(n_fake: int, n_real: int) -> str:
    """The fake:real proportion as the report writes it (700 fake, 1400 real -> "1:2")."""
    if n_fake == 0:
        return "0:1"
    r = n_real / n_fake
    return f"1:{r:.0f}" if abs(r - round(r)) < 1e-9 else f"1:{r:.2f}"


def summarize(dataset_dir: str | os.PathLike, check: bool = False) -> dict[str, dict]:
    """Counts per split and class, the fake share and the fake:real proportion (the report's data set summary)."""
    out = {}
    check_layout(dataset_dir)
    for split in SPLITS:
        files = list_split(dataset_dir, split, check=check, need_both=False)
        n_real, n_fake = files.count(0), files.count(1)
        out[split] = {"real": n_real, "fake": n_fake, "total": n_real + n_fake,
                      "fake_percent": 100.0 * n_fake / max(1, n_real + n_fake),
                      "fake_to_real": fake_to_real(n_fake, n_real), "skipped": len(files.skipped)}
    return out


def format_summary(summary: dict[str, dict], name: str = "") -> str:
    """A small table of `summarize` output."""
    lines = [f"data set {name}".rstrip(),
             f"{'split':<6} {'real':>7} {'fake':>7} {'total':>7} {'fake %':>8} {'fake:real':>10}"]
    for split, s in summary.items():
        lines.append(f"{split:<6} {s['real']:>7} {s['fake']:>7} {s['total']:>7} {s['fake_percent']:>7.3f}% "
                     f"{s['fake_to_real']:>10}" + (f"  ({s['skipped']} skipped)" if s.get("skipped") else ""))
    return "\n".join(lines)


def mask_path(dataset_dir: str | os.PathLike, split: str, image_path: str | os.PathLike) -> Path:
    """Where the generated set keeps the planted-region mask of a fake image."""
    return Path(dataset_dir) / "masks" / split / (Path(image_path).stem + ".png")
