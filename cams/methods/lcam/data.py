"""Image folders at ImageNet scale for L-CAM training, streamed by tf.data.

Layout: DIR/<class folder>/*.JPEG (ImageNet's n01440764/... folders, or any names). The class of
a file is its nearest parent folder named in the class list; the class list comes from a class
index JSON (Keras' imagenet_class_index.json, {"0": ["n01440764", "tench"], ...}, or a JSON list
of folder names), or from the sorted names of DIR's subfolders.

Only the file names are held in memory (bytes, about 70 per file: ~90 MB for ImageNet's 1.28 M);
each epoch reads them in a new order (a shuffle of their indices), decodes in parallel threads,
resizes and centre-crops as the ImageNet evaluation of the L-CAM paper (shorter side to 256/224 of
the model's input, central crop), applies pixel * scale + offset and prefetches.
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import List, Optional, Sequence, Tuple

import numpy as np
import tensorflow as tf

from cams.core.images import IMAGE_SUFFIXES

CROP_RATIO = 256 / 224


def read_class_index(path) -> List[str]:
    """Folder names in class order from a JSON class index: Keras' {"0": [wnid, name], ...}, a
    {"0": name} map or a list of names. ValueError naming the file otherwise."""
    p = Path(path)
    try:
        data = json.loads(p.read_text(encoding="utf-8"))
    except (OSError, ValueError) as err:
        raise ValueError(f"{p}: not a readable JSON class index ({err})") from None
    if isinstance(data, dict):
        try:
            items = sorted(data.items(), key=lambda kv: int(kv[0]))
        except ValueError:
            raise ValueError(f"{p}: a class index's keys must be class numbers, "
                             f"e.g. {{\"0\": [\"n01440764\", \"tench\"]}}") from None
        data = [v[0] if isinstance(v, list) else v for _, v in items]
    if not isinstance(data, list) or not all(isinstance(v, str) for v in data) or len(data) < 2:
        raise ValueError(f"{p}: expected Keras' class index {{\"0\": [\"n01440764\", \"tench\"], ...}} "
                         "or a list of folder names")
    return data


def class_folders(roots: Sequence[str | os.PathLike]) -> List[str]:
    """The sorted names of the subfolders of `roots` (the default class order)."""
    names = sorted({e.name for r in roots if Path(r).is_dir() for e in os.scandir(r) if e.is_dir()})
    if len(names) < 2:
        raise ValueError(f"{', '.join(map(str, roots))}: expected one subfolder per class (DIR/<class>/*.JPEG), "
                         "or pass --class-index / --class-names")
    return names


def list_files(roots: Sequence[str | os.PathLike],
               classes: Optional[Sequence[str]] = None) -> Tuple[np.ndarray, np.ndarray]:
    """(paths as bytes, labels int32) of the image files under `roots` (files or folders), sorted.

    labels: the index in `classes` of the file's nearest parent folder named there; -1 when
    `classes` is None. ValueError naming a file whose folders name no class.
    """
    lookup = {name: i for i, name in enumerate(classes)} if classes is not None else None
    paths: List[bytes] = []
    labels: List[int] = []
    for root in map(Path, roots):
        if root.is_file():
            found = [str(root)]
        elif root.is_dir():
            found = sorted(os.path.join(d, f) for d, _, fs in os.walk(root) for f in fs
                           if os.path.splitext(f)[1].lower() in IMAGE_SUFFIXES)
        else:
            raise ValueError(f"{root}: no such file or folder")
        for f in found:
            paths.append(f.encode())
            labels.append(-1 if lookup is None else _label(f, lookup))
    if not paths:
        others = sum(len(fs) for r in map(Path, roots) if r.is_dir() for _, _, fs in os.walk(r))
        raise ValueError(f"no image files in {', '.join(map(str, roots))}: found {others} file(s), none named "
                         f"{', '.join(IMAGE_SUFFIXES)}")
    return np.array(paths), np.array(labels, np.int32)


#: what tf.io.decode_image reads, by the first bytes of the file
_MAGIC = ((b"\xff\xd8\xff", "JPEG"), (b"\x89PNG\r\n\x1a\n", "PNG"), (b"GIF87a", "GIF"), (b"GIF89a", "GIF"),
          (b"BM", "BMP"))
READABLE = ("JPEG", "PNG", "GIF", "BMP") + (("WebP",) if hasattr(tf.io, "decode_webp") else ())


def _format(path: bytes) -> Optional[str]:
    """The format `decode` reads the file as ("JPEG", ...), or None (unreadable, or not one it decodes)."""
    try:
        with open(path, "rb") as f:
            head = f.read(16)
    except OSError:
        return None
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "WebP" if "WebP" in READABLE else None
    return next((name for magic, name in _MAGIC if head.startswith(magic)), None)


def usable_files(paths: np.ndarray, labels: np.ndarray) -> Tuple[np.ndarray, np.ndarray, List[bytes]]:
    """(paths, labels, dropped): the files whose first bytes are a format `decode` reads (JPEG, PNG,
    GIF, BMP, WebP), and the others (unreadable, empty, TIFF, ...), which a training would skip.

    Args:
        paths: from `list_files`.
        labels: from `list_files`.

    Returns:
        the kept paths and labels, and the dropped paths.

    Raises:
        ValueError: no file is usable (naming how many were found and what can be read).
    """
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(16) as pool:  # one small read per file: I/O bound
        keep = np.array([f is not None for f in pool.map(_format, paths.tolist())], bool)
    if not keep.any():
        raise ValueError(f"none of the {len(paths)} image file(s) found can be read (e.g. {paths[0].decode()}): "
                         f"training reads {', '.join(READABLE)} files")
    return paths[keep], labels[keep], paths[~keep].tolist()


def _label(path: str, lookup: dict) -> int:
    for part in reversed(Path(path).parent.parts):
        if part in lookup:
            return lookup[part]
    raise ValueError(f"{path}: no parent folder is named after a class (e.g. {next(iter(lookup))}); "
                     "check --class-index / --class-names")


def decode(path: tf.Tensor, size: Tuple[int, int], channels: int, scale: float, offset: float, crop: bool = True):
    """One file -> float32 (H, W, channels): decode, resize (shorter side to 256/224 of the input,
    then a central crop; or a plain resize with crop=False), then pixel * scale + offset."""
    img = tf.io.decode_image(tf.io.read_file(path), channels=channels, expand_animations=False)
    img = tf.cast(img, tf.float32)
    h, w = int(size[0]), int(size[1])
    if crop:
        shape = tf.cast(tf.shape(img)[:2], tf.float32)
        factor = tf.reduce_max(tf.constant([h, w], tf.float32) * CROP_RATIO / shape)
        img = tf.image.resize(img, tf.cast(tf.math.ceil(shape * factor), tf.int32), antialias=True)
        img = tf.image.resize_with_crop_or_pad(img, h, w)
    else:
        img = tf.image.resize(img, (h, w), antialias=True)
    return tf.ensure_shape(img * scale + offset, (h, w, channels))


def image_dataset(paths: np.ndarray, labels: np.ndarray, size: Tuple[int, int], channels: int,
                  batch_size: int, scale: float = 1 / 255.0, offset: float = 0.0, crop: bool = True,
                  shuffle: bool = True, seed: Optional[int] = 0) -> tf.data.Dataset:
    """An endless tf.data stream of (images, labels) batches over `paths` (one pass = one epoch of
    ceil(N / batch_size) steps, the last batch partial): a new order each pass, parallel
    decoding, prefetching.

    Unreadable files are skipped (tf.data ignore_errors)."""
    table = tf.constant(paths)
    label_table = tf.constant(labels)
    order = tf.data.Dataset.range(len(paths))
    if shuffle:  # a full shuffle of the indices: 8 bytes per image, never the images
        order = order.shuffle(len(paths), seed=seed, reshuffle_each_iteration=True)

    def load(i):
        return decode(tf.gather(table, i), size, channels, scale, offset, crop), tf.gather(label_table, i)

    ds = order.map(load, num_parallel_calls=tf.data.AUTOTUNE, deterministic=not shuffle).ignore_errors()
    return ds.batch(int(batch_size)).repeat().prefetch(tf.data.AUTOTUNE)
