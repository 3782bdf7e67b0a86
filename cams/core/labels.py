"""Class names for figures and tables: from a file the user gives, or ImageNet's for 1000-class models.

A labels file is a text file with one name per line (line i = class i), a JSON list of names, or
a JSON class index as Keras ships for ImageNet ({"0": ["n01440764", "tench"], ...}). For a model
with 1000 outputs and no file, the names come from Keras' ImageNet class index (the file
`keras.applications.imagenet_utils.decode_predictions` uses, downloaded once into the Keras cache);
when it cannot be had (offline, first use), figures fall back to class numbers.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import List, Optional, Sequence

from cams.core.files import read_utf8

IMAGENET_CLASSES = 1000
IMAGENET_INDEX_URL = "https://storage.googleapis.com/download.tensorflow.org/data/imagenet_class_index.json"
IMAGENET_INDEX_HASH = "c2c37ea517e94d9795004a39431a14cb"


def _names_from_json(data, path: Path) -> List[str]:
    if isinstance(data, list) and all(isinstance(n, str) for n in data):
        return list(data)
    if isinstance(data, dict):
        try:
            keys = sorted(data, key=int)
        except ValueError:
            keys = None
        if keys == [str(i) for i in range(len(data))]:
            entries = [data[k] for k in keys]
            return [e[-1] if isinstance(e, list) and e else str(e) for e in entries]
    raise ValueError(f"{path}: not a list of class names nor a class index {{\"0\": [id, name], ...}}; "
                     "give one name per line, a JSON list, or Keras' imagenet_class_index.json format")


def read_class_names(path) -> List[str]:
    """Class names from a labels file (one per line, a JSON list, or a JSON class index).

    Args:
        path: the file.

    Returns:
        The names, class 0 first.
    """
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"{path}: no such labels file (one class name per line, or a JSON list)")
    text = read_utf8(path, "save the labels file as UTF-8")
    if path.suffix.lower() == ".json" or text.lstrip()[:1] in ("[", "{"):
        try:
            return _names_from_json(json.loads(text), path)
        except json.JSONDecodeError as err:
            raise ValueError(f"{path}: not valid JSON ({err.msg} at line {err.lineno}); "
                             "give one class name per line or a JSON list") from None
    names = [line.strip() for line in text.splitlines() if line.strip()]
    if not names:
        raise ValueError(f"{path}: the labels file is empty; write one class name per line")
    return names


def imagenet_class_names(cache_dir=None) -> Optional[List[str]]:
    """ImageNet's 1000 class names from Keras' class index, or None when it cannot be had.

    Args:
        cache_dir: the Keras cache folder (default ~/.keras or $KERAS_HOME); the index is read from
            its models/ subfolder, downloaded there once if missing.
    """
    import keras

    try:
        path = keras.utils.get_file("imagenet_class_index.json", IMAGENET_INDEX_URL, cache_subdir="models",
                                    file_hash=IMAGENET_INDEX_HASH, cache_dir=cache_dir)
        return read_class_names(path)
    except Exception as err:  # offline or blocked: figures fall back to class numbers
        print(f"note: ImageNet class names unavailable ({type(err).__name__}); showing class numbers. "
              "Pass --labels FILE, or run once with network access to cache Keras' class index.", file=sys.stderr)
        return None


def class_names_for(n_classes: int, labels_path=None) -> Optional[List[str]]:
    """Names for a model with `n_classes` outputs: the labels file if given (its length must
    match), else ImageNet's for 1000 classes when available, else None (figures show numbers)."""
    if labels_path:
        names = read_class_names(labels_path)
        if len(names) != n_classes:
            raise ValueError(f"{labels_path}: {len(names)} class names, but the model has {n_classes} outputs; "
                             f"give exactly one name per class, class 0 first")
        return names
    if n_classes == IMAGENET_CLASSES:
        return imagenet_class_names()
    return None


def describe(k: int, names: Optional[Sequence[str]]) -> str:
    """'tabby (class 281)' with names, 'class 281' without."""
    k = int(k)
    return f"{names[k]} (class {k})" if names else f"class {k}"
