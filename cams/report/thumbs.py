"""The report's thumbnails: one small JPEG per image and per method overlay, in a folder beside the page.

They are written into a fresh temporary folder (its name starts with `TEMP_PREFIX`) which then
replaces the folder of an earlier report in one rename, so a report is never half old, half new.
Encoding runs in a few threads (Pillow releases the GIL while it resizes and encodes).
"""
from __future__ import annotations

import io
import os
import shutil
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Callable, Dict, Optional, Sequence, Tuple

import numpy as np
from PIL import Image

from cams.core.files import TEMP_PREFIX

#: JPEG quality of the thumbnails (85: about 3-6 kB for 128 px)
QUALITY = 85
THREADS = 4

#: (image as uint8 RGB or None, {method: overlay as uint8 RGB or None}) of row i
Pictures = Callable[[int], Tuple[Optional[np.ndarray], Dict[str, Optional[np.ndarray]]]]


def thumb_name(i: int, k: int) -> str:
    """Row i's k-th thumbnail (k = 0: the image; k >= 1: the k-th method), relative to the folder."""
    return f"{i // 1000}/{i}.{k}.jpg"


def encode(picture: Optional[np.ndarray], size: int) -> bytes:
    """A JPEG of `picture` (uint8 RGB) whose longer side is at most `size` (a grey square for None)."""
    if picture is None:
        picture = np.full((size, size, 3), 200, np.uint8)
    im = Image.fromarray(np.asarray(picture, np.uint8))
    if max(im.size) > size:
        im.thumbnail((size, size), Image.Resampling.LANCZOS)
    buf = io.BytesIO()
    im.save(buf, format="JPEG", quality=QUALITY, subsampling=0)  # 4:4:4: the maps' colours stay put
    return buf.getvalue()


def _write_row(folder: Path, i: int, pictures: Pictures, methods: Sequence[str], size: int) -> None:
    image, overlays = pictures(i)
    for k, picture in enumerate([image, *(overlays.get(m) for m in methods)]):
        path = folder / thumb_name(i, k)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(encode(picture, size))


def write_thumbs(target: Path, n: int, pictures: Pictures, methods: Sequence[str], size: int = 128,
                 progress: Optional[Callable[[int], None]] = None) -> Path:
    """Write the thumbnails of rows 0..n-1 into a new folder that then replaces `target`.

    Args:
        target: the thumbnails' folder (`OUT/report_files`); an existing one is replaced whole.
        n: the number of rows.
        pictures: row -> (image, {method: overlay}) as uint8 RGB arrays.
        methods: the methods in column order.
        size: the longer side of a thumbnail in pixels.
        progress: called with the number of rows done after each row.

    Returns:
        `target`.
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f"{TEMP_PREFIX}{target.name}.", dir=target.parent))
    old = None
    try:
        with ThreadPoolExecutor(max_workers=THREADS) as pool:
            for _ in pool.map(lambda i: _write_row(tmp, i, pictures, methods, size), range(n)):
                if progress:
                    progress(1)
        os.chmod(tmp, 0o755)  # mkdtemp makes it 0700
        if target.exists():
            old = target.parent / f"{TEMP_PREFIX}{target.name}.old.{os.getpid()}"
            os.replace(target, old)
        os.replace(tmp, target)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    return target

