"""Load image files for explanation: decode, convert to the model's channels, resize, scale; arrays to uint8 RGB for display."""
from __future__ import annotations

from pathlib import Path
from typing import List, Sequence, Tuple

import cv2
import numpy as np

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp")


def list_images(paths: Sequence[str | Path]) -> List[Path]:
    """Expand files and folders (recursively) into a sorted list of image files."""
    found: List[Path] = []
    for p in map(Path, paths):
        if p.is_dir():
            found += sorted(q for q in p.rglob("*") if q.suffix.lower() in IMAGE_SUFFIXES)
        elif p.is_file():
            found.append(p)
        else:
            raise ValueError(f"{p}: no such file or folder")
    if not found:
        raise ValueError(f"no image files ({', '.join(IMAGE_SUFFIXES)}) found in {', '.join(map(str, paths))}")
    return found


def load_image(path: Path, size: Tuple[int, int], channels: int, scale: float = 1 / 255.0, offset: float = 0.0) -> np.ndarray:
    """Read one image as float32 (H, W, channels) resized to `size` = (H, W): pixel * scale + offset."""
    try:
        data = Path(path).read_bytes()
    except OSError:
        data = b""
    return decode_image(data, size, channels, scale, offset, name=str(path))


def decode_image(data: bytes, size: Tuple[int, int], channels: int, scale: float = 1 / 255.0, offset: float = 0.0,
                 name: str = "image") -> np.ndarray:
    """Decode an encoded image (PNG, JPEG, ... bytes) exactly as `load_image` reads a file.

    Raises ValueError '<name>: not a readable image' when OpenCV cannot decode `data`, and
    '<name>: truncated JPEG' for a JPEG without its end-of-image marker (OpenCV would decode it padded
    with grey). 16-bit PNGs are scaled to 0..255 like 8-bit ones; an alpha channel is dropped.
    """
    flag = cv2.IMREAD_GRAYSCALE if channels == 1 else cv2.IMREAD_COLOR
    try:
        img = cv2.imdecode(np.frombuffer(data, np.uint8), flag) if data else None
    except cv2.error:
        img = None
    if img is None:
        raise ValueError(f"{name}: not a readable image")
    if data[:2] == b"\xff\xd8" and b"\xff\xd9" not in data[-64:]:  # OpenCV fills a cut JPEG with grey
        raise ValueError(f"{name}: truncated JPEG (no end-of-image marker)")
    if channels == 3:
        img = cv2.cvtColor(img, cv2.COLOR_BGR2RGB)
    img = cv2.resize(img, (int(size[1]), int(size[0])), interpolation=cv2.INTER_AREA)
    img = img.astype(np.float32).reshape(int(size[0]), int(size[1]), channels)
    return img * np.float32(scale) + np.float32(offset)


def load_images(paths: Sequence[Path], size, channels: int, scale: float = 1 / 255.0, offset: float = 0.0):
    """Load many images; unreadable files are skipped and returned separately as (path, reason)."""
    images, kept, skipped = [], [], []
    for p in paths:
        try:
            images.append(load_image(p, size, channels, scale, offset))
            kept.append(p)
        except ValueError as err:
            skipped.append((p, str(err)))
    arr = np.stack(images) if images else np.zeros((0, int(size[0]), int(size[1]), channels), np.float32)
    return arr, kept, skipped


def load_for_model(model, inputs: Sequence[str | Path], scale: float = 1 / 255.0, offset: float = 0.0,
                   size: Tuple[int, int] | None = None, limit: int | None = None):
    """Images under `inputs` (files/folders), sized for `model`: (x, kept paths, skipped (path, reason)).

    `size` = (H, W) is needed only when the model accepts any size; `limit` keeps the first N files.
    Raises ValueError when nothing can be read.
    """
    from cams.core.model_graph import input_shape

    _, h, w, c = input_shape(model)
    if h is None or w is None:
        if size is None:
            raise ValueError("the model accepts any image size: pass --size H W")
        h, w = size
    if limit is not None and limit < 1:
        raise ValueError(f"--limit must be >= 1, got {limit}")
    x, kept, skipped = load_images(list_images(inputs)[:limit], (h, w), c, scale=scale, offset=offset)
    if not len(x):
        raise ValueError("none of the images could be read: " + "; ".join(f"{p}: {why}" for p, why in skipped[:3]))
    return x, kept, skipped


def to_uint8_rgb(image: np.ndarray) -> np.ndarray:
    """Convert an image (grey or RGB, float [0,1] / [0,255] or uint8) to uint8 RGB (H, W, 3)."""
    img = np.asarray(image)
    if img.ndim == 3 and img.shape[-1] == 1:
        img = img[..., 0]
    if img.ndim == 2:
        img = np.stack([img] * 3, axis=-1)
    if img.ndim != 3 or img.shape[-1] != 3:
        raise ValueError(f"expected an image of shape (H, W), (H, W, 1) or (H, W, 3), got {img.shape}")
    if img.dtype == np.uint8:
        return img
    img = img.astype(np.float32)
    lo, hi = float(np.nanmin(img)), float(np.nanmax(img))
    if lo >= 0.0 and hi <= 1.0:
        img = img * 255.0
    elif lo < 0.0 or hi > 255.0:  # e.g. [-1, 1] or standardised input: rescale for display
        img = (img - lo) / (hi - lo + 1e-12) * 255.0
    return np.clip(np.rint(img), 0, 255).astype(np.uint8)
