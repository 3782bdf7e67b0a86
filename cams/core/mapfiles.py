"""How explain-folder stores maps: the .npz encodings and the two layouts, and their decoders.

Encodings (`--maps-dtype`), measured on a 224 x 224 Grad-CAM-like map on a 2-core machine:

    float16   np.savez (no zlib), 101 KB, 0.24 ms to encode; error <= 2^-11   -- the default
    uint8     np.savez (no zlib),  51 KB, 0.16 ms; q = round(255 m), m = q * `maps_scale`, error <= 1/510
    float32   np.savez_compressed, 134 KB, 6.7 ms (zlib dominates): exact

float16 is smaller than compressed float32 and 28x cheaper to write; float32's compression cost up
to a forward pass of ResNet50 per map under load. Every map is in [0, 1]; the decoders return
float32 whatever the encoding.

Layouts (`--maps-layout`):

    files    maps/<name>.npz per image: `predicted`, `probability` and one (H, W) map per method
    shards   maps/shards/<digest>.npz per batch: `names` (N,) (the images' output names), `predicted`
             (N,), `probability` (N,) and one (N, H, W) array per method; <digest> is the first 16
             hex digits of the sha256 of the names, one per line

predictions.csv points at an image's maps with a reference: `maps/<name>.npz`, or
`maps/shards/<digest>.npz#<row>` for a shard.
"""
from __future__ import annotations

import hashlib
import io
import re
from pathlib import Path
from typing import Dict, List, Mapping, Optional, Sequence, Tuple

import numpy as np

#: the encodings a user can choose (--maps-dtype); the first is the default
DTYPES = ("float16", "uint8", "float32")
#: the layouts a user can choose (--maps-layout); the first is the default
LAYOUTS = ("files", "shards")
#: key of the uint8 maps' scale in the .npz (map = q * scale)
SCALE_KEY = "maps_scale"
#: key of a shard's image names
NAMES_KEY = "names"
#: keys of an explain-folder .npz that are not maps
INFO_KEYS = ("predicted", "probability", SCALE_KEY, NAMES_KEY)
#: where shards go, relative to the output folder, and what their names look like
SHARDS = "maps/shards"
SHARD_NAME = re.compile(r"^maps/shards/[0-9a-f]{16}\.npz$")


def check_choice(value: str, choices: Sequence[str], what: str) -> str:
    """`value` if it is one of `choices`, else ValueError naming them."""
    if value not in choices:
        raise ValueError(f"{what} must be one of {', '.join(choices)}, got {value!r}")
    return value


def check_dtype(dtype: str) -> str:
    """`dtype` if it is one of `DTYPES`, else ValueError naming the choices."""
    return check_choice(dtype, DTYPES, "maps dtype")


def check_layout(layout: str) -> str:
    """`layout` if it is one of `LAYOUTS`, else ValueError naming the choices."""
    return check_choice(layout, LAYOUTS, "maps layout")


def encode_npz(maps: Mapping[str, np.ndarray], dtype: str = DTYPES[0], **info) -> bytes:
    """The .npz bytes of maps ({key: (H, W) or (N, H, W) float in [0, 1]}) and `info` arrays.

    Args:
        maps: {key: map(s)}; keys are stored as given.
        dtype: "float16" or "uint8" (q = round(255 m), with `maps_scale` = 1/255 stored beside them),
            both uncompressed, or "float32" (zlib-compressed).
        info: further arrays (predicted, probability, names).

    Returns:
        The file's bytes.
    """
    check_dtype(dtype)
    buf = io.BytesIO()
    if dtype == "float32":
        np.savez_compressed(buf, **info, **{k: np.asarray(m, np.float32) for k, m in maps.items()})
    elif dtype == "float16":
        np.savez(buf, **info, **{k: np.asarray(m, np.float16) for k, m in maps.items()})
    else:
        q = {k: np.round(np.clip(np.asarray(m, np.float32), 0.0, 1.0) * 255.0).astype(np.uint8) for k, m in maps.items()}
        np.savez(buf, **info, **{SCALE_KEY: np.float32(1.0 / 255.0)}, **q)
    return buf.getvalue()


def _decoded(z) -> Dict[str, np.ndarray]:
    """{key: float32 array} of the maps in an open .npz (uint8 ones times their stored scale)."""
    scale = float(z[SCALE_KEY]) if SCALE_KEY in z.files else None
    out = {}
    for key in z.files:
        if key not in INFO_KEYS:
            m = z[key]
            out[key] = m.astype(np.float32) * np.float32(scale) if scale is not None and m.dtype == np.uint8 \
                else m.astype(np.float32)
    return out


def decode_npz(source) -> Dict[str, object]:
    """One image's .npz as {"predicted": int, "probability": float, method key: float32 (H, W) map}.

    Args:
        source: the .npz's path or a binary file object.

    Returns:
        The record; uint8 maps are multiplied by their stored scale, float16 ones widened.
    """
    with np.load(source) as z:
        return {"predicted": int(z["predicted"]), "probability": float(z["probability"]), **_decoded(z)}


def shard_name(names: Sequence[str]) -> str:
    """maps/shards/<digest>.npz for a batch of images with output `names` (see the module docstring)."""
    return f"{SHARDS}/{hashlib.sha256(chr(10).join(names).encode('utf-8')).hexdigest()[:16]}.npz"


def encode_shard(names: Sequence[str], maps: Mapping[str, np.ndarray], probs: np.ndarray, dtype: str) -> bytes:
    """The bytes of one shard: `names` (N,), predicted and probability (N,) from `probs` (N, K), and
    each of `maps` ({key: (N, H, W)}) encoded as `dtype` (`encode_npz`)."""
    probs = np.asarray(probs)
    return encode_npz(maps, dtype, names=np.asarray(list(names), dtype=str),
                      predicted=probs.argmax(axis=-1).astype(np.int64), probability=probs.max(axis=-1).astype(np.float32))


def decode_shard(source) -> List[Tuple[str, Dict[str, object]]]:
    """A shard's images in row order: [(output name, the `decode_npz` record of that image)]."""
    with np.load(source) as z:
        names, predicted, probability = z[NAMES_KEY], z["predicted"], z["probability"]
        maps = _decoded(z)
    return [(str(n), {"predicted": int(predicted[i]), "probability": float(probability[i]),
                      **{k: m[i] for k, m in maps.items()}}) for i, n in enumerate(names)]


def shard_index(source) -> List[Tuple[str, int, float]]:
    """[(output name, predicted class, probability)] of a shard's rows, its maps left unread."""
    with np.load(source) as z:
        return [(str(n), int(c), float(p)) for n, c, p in zip(z[NAMES_KEY], z["predicted"], z["probability"])]


def split_reference(ref: str) -> Tuple[str, Optional[int]]:
    """('maps/shards/<digest>.npz', row) for a shard reference, (ref, None) for a per-image .npz."""
    path, hash_, row = ref.rpartition("#")
    if hash_ and SHARD_NAME.match(path) and row.isdigit():
        return path, int(row)
    return ref, None


class MapReader:
    """Records of an output folder by predictions.csv reference, each shard decoded once (the last kept)."""

    def __init__(self, folder):
        self.folder = Path(folder)
        self._shard: Tuple[Optional[str], list] = (None, [])

    def _shard_row(self, path: str, row: int) -> Tuple[str, Dict[str, object]]:
        if self._shard[0] != path:
            self._shard = (path, decode_shard(self.folder / path))
        return self._shard[1][row]

    def __call__(self, ref: str) -> Dict[str, object]:
        """The record (`decode_npz`) `ref` points at; OSError/ValueError/KeyError/IndexError when it cannot be read."""
        path, row = split_reference(ref)
        return decode_npz(self.folder / path) if row is None else self._shard_row(path, row)[1]

    def output_name(self, ref: str) -> str:
        """The image's output name (`maps/<name>.npz`'s <name>, or the shard's `names` entry)."""
        path, row = split_reference(ref)
        if row is not None:
            return self._shard_row(path, row)[0]
        return path[len("maps/"):-len(".npz")] if path.startswith("maps/") and path.endswith(".npz") else path
