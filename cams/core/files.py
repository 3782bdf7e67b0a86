"""Atomic output helpers: nothing the user already has is half-written or lost.

Every writer goes to a temporary file in the destination folder and then `os.replace`s it,
so an interrupted run leaves either the old file or the new one, never a truncated one. Temporary
names start with `TEMP_PREFIX`, which no user file has, so a resumed run removes only those.
Text is UTF-8; tables go through the `csv` module (quoted), JSON through `json`.
"""
from __future__ import annotations

import contextlib
import json
import os
import tempfile
import threading
from pathlib import Path
from typing import Any, Iterable, Iterator, Sequence

#: the start of every temporary file and folder name the writers make
TEMP_PREFIX = ".cams-tmp-"


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, suffix: str | None = None) -> Iterator[Path]:
    """Yield a temporary path beside `path`; on success it replaces `path` atomically."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    suffix = suffix if suffix is not None else "".join(path.suffixes) or ".tmp"
    fd, tmp = tempfile.mkstemp(prefix=f"{TEMP_PREFIX}{path.stem}.", suffix=suffix, dir=path.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        if tmp_path.is_file():  # mkstemp makes 0600 files; give them the usual umask permissions
            os.chmod(tmp_path, 0o666 & ~_umask())
        os.replace(tmp_path, path)
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


@contextlib.contextmanager
def atomic_savedmodel_dir(out: str | os.PathLike) -> Iterator[Path]:
    """Yield a fresh folder beside `out` to write a SavedModel into; on success it replaces `out`.

    An existing SavedModel at `out` is replaced; any other non-empty folder (or a file) is refused
    with a ValueError, so nothing the user has is lost.
    """
    import shutil

    out = Path(out)
    if out.exists() and (not out.is_dir() or (any(out.iterdir()) and not (out / "saved_model.pb").is_file())):
        raise ValueError(f"{out} exists and is not a SavedModel folder; choose another output folder")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f"{TEMP_PREFIX}{out.name}.", dir=out.parent))
    try:
        yield tmp / "sm"
        if out.exists():
            shutil.rmtree(out)
        os.replace(tmp / "sm", out)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


_UMASK_LOCK = threading.Lock()


def _umask() -> int:
    """The process umask. Reading it means setting it, so writer threads take turns."""
    with _UMASK_LOCK:
        mask = os.umask(0)
        os.umask(mask)
    return mask


def write_text(path: str | os.PathLike, text: str) -> Path:
    """Write `text` to `path` atomically and return the path."""
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return Path(path)


def write_csv(path: str | os.PathLike, header: Sequence[str], rows: Iterable[Sequence[Any]]) -> Path:
    """Write a CSV table atomically in UTF-8 through the `csv` module (fields with commas, quotes or
    line breaks are quoted, so every row reads back as written)."""
    import csv

    with atomic_path(path) as tmp:
        with open(tmp, "w", encoding="utf-8", newline="") as f:
            writer = csv.writer(f)
            writer.writerow(header)
            writer.writerows(rows)
    return Path(path)


def read_utf8(path: str | os.PathLike, fix: str = "save it as UTF-8") -> str:
    """The text of `path` decoded as UTF-8 (a byte-order mark dropped).

    Args:
        path: the text file (labels, CSV, JSON).
        fix: what the user should do when it is not UTF-8, for the message.

    Returns:
        The text.

    Raises:
        ValueError: `<path>: not UTF-8 text (byte 0xe9 at offset 11); <fix>`.
    """
    data = Path(path).read_bytes()
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        raise ValueError(f"{path}: not UTF-8 text (byte {err.object[err.start]:#04x} at offset {err.start}); {fix}") from None


def write_json(path: str | os.PathLike, obj: Any) -> Path:
    """Write `obj` as indented JSON atomically."""
    return write_text(path, json.dumps(obj, indent=2, default=_json_default) + "\n")


def save_figure(fig, path: str | os.PathLike, dpi: int = 150) -> Path:
    """Save a matplotlib figure atomically (format from the suffix) and close it."""
    import matplotlib.pyplot as plt

    path = Path(path)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=dpi, bbox_inches="tight", format=path.suffix.lstrip(".") or "png")
    plt.close(fig)
    return path


def save_npz(path: str | os.PathLike, **arrays) -> Path:
    """Save arrays to a compressed .npz atomically."""
    import numpy as np

    with atomic_path(path, suffix=".npz") as tmp:
        np.savez_compressed(tmp, **arrays)
    return Path(path)


def _json_default(obj: Any):
    import numpy as np

    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"cannot write {type(obj).__name__} to JSON")
