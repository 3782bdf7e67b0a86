"""How explain-folder stores maps in its .npz files, and `read_maps` to read them back as float32.

Encodings (`--maps-dtype`), measured on a 224 x 224 map (2-core machine under load; relative costs):

    float32   np.savez_compressed, ~134 KB, ~57 ms to encode (zlib dominates)   -- the default
    float16   np.savez (no zlib), 100 KB, < 0.1 ms; error <= 2^-11 (half precision in [0, 1])
    uint8     np.savez (no zlib), 50 KB, < 1 ms; q = round(255 m), m = q * `maps_scale`, error <= 1/510

so float16 and uint8 cost nothing next to the model, where float32's compression can cost as much
as a forward pass per map. Every map is in [0, 1]; `decode` returns float32 whatever the encoding.
"""
from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Dict, Iterator, Mapping, Tuple

import numpy as np

#: the encodings a user can choose (--maps-dtype)
DTYPES = ("float32", "float16", "uint8")
#: key of the uint8 maps' scale in the .npz (map = q * scale)
SCALE_KEY = "maps_scale"
#: keys of an explain-folder .npz that are not maps
INFO_KEYS = ("predicted", "probability", SCALE_KEY)


def check_dtype(dtype: str) -> str:
    """`dtype` if it is one of `DTYPES`, else ValueError naming the choices."""
    if dtype not in DTYPES:
        raise ValueError(f"maps dtype must be one of {', '.join(DTYPES)}, got {dtype!r}")
    return dtype


def encode_npz(maps: Mapping[str, np.ndarray], dtype: str = "float32", **info) -> bytes:
    """The .npz bytes of one image's maps ({key: (H, W) float in [0, 1]}) and `info` arrays.

    Args:
        maps: {key: map}; keys are stored as given.
        dtype: "float32" (zlib-compressed, as before), "float16" or "uint8" (q = round(255 m), with
            `maps_scale` = 1/255 stored beside them), both uncompressed.
        info: further arrays (predicted, probability).

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


def decode_npz(source) -> Dict[str, object]:
    """One explain-folder .npz as {"predicted": int, "probability": float, method key: float32 (H, W) map}.

    Args:
        source: the .npz's path or a binary file object.

    Returns:
        The record; uint8 maps are multiplied by their stored scale, float16 ones widened.
    """
    with np.load(source) as z:
        scale = float(z[SCALE_KEY]) if SCALE_KEY in z.files else None
        out: Dict[str, object] = {"predicted": int(z["predicted"]), "probability": float(z["probability"])}
        for key in z.files:
            if key not in INFO_KEYS:
                m = z[key]
                out[key] = m.astype(np.float32) * np.float32(scale) if scale is not None and m.dtype == np.uint8 \
                    else m.astype(np.float32)
    return out


def read_maps(out) -> Iterator[Tuple[str, Dict[str, object]]]:
    """Every image an explain-folder run explained into `out`, with its maps, in predictions.csv order.

    Args:
        out: the local --out folder of `cams explain-folder` (predictions.csv and maps/).

    Yields:
        (the image file as predictions.csv lists it, `decode_npz` of its .npz: predicted class,
        probability and one float32 (H, W) map in [0, 1] per method, '+' written 'p'), whatever
        --maps-dtype the run used. Rows whose .npz is missing are skipped.

    Raises:
        ValueError: no predictions.csv in `out` (not an explain-folder output folder, or not finished).
    """
    table = Path(out) / "predictions.csv"
    if not table.is_file():
        raise ValueError(f"{table} does not exist: read_maps reads the --out folder of a finished cams explain-folder run")
    with open(table, encoding="utf-8", newline="") as f:
        rows = list(csv.reader(f))[1:]
    for row in rows:
        path = Path(out) / row[1]
        if len(row) >= 2 and path.is_file():
            yield row[0], decode_npz(path)
