"""NumtaDB: folders training-a..training-e of digit images, each with a CSV (`filename`, `digit`).

The CSV may sit beside its folder (`training-a.csv`, as on Kaggle) or inside it. Images are read
in colour, converted to grey and resized to 28x28 (the paper's processing; NumtaDB digits are
dark on light, pass invert=True for white on black). An unreadable or missing image is reported
by path and skipped, with a count at the end. Rows in CSV errors are the file's line numbers
(the header is row 1).
"""
from __future__ import annotations

import csv
import os
from pathlib import Path

import numpy as np

from cams.core.files import read_utf8

from .digits import IMAGE_SHAPE, NUM_CLASSES, UTF8_FIX, DigitData, stratified_indices
from .errors import BengaliXAIError

SUBSETS = tuple(f"training-{c}" for c in "abcde")
MAX_WARNINGS = 10
#: what the reader decodes (cams.core.images.load_image, OpenCV), for the message when nothing could be read
READABLE = "NumtaDB images must be files OpenCV decodes (PNG, JPEG, BMP, TIFF, WebP, PNM) at the CSV's filename"


def find_subsets(root: str | os.PathLike) -> list[tuple[Path, Path]]:
    """(image folder, CSV) for each training-a..e subset present under `root`."""
    root = Path(root)
    if not root.is_dir():
        raise BengaliXAIError(f"{root}: no such folder; pass the NumtaDB folder holding training-a .. training-e")
    found = []
    for name in SUBSETS:
        folder = root / name
        if not folder.is_dir():
            continue
        for csv_path in (root / f"{name}.csv", folder / f"{name}.csv"):
            if csv_path.is_file():
                found.append((folder, csv_path))
                break
        else:
            raise BengaliXAIError(f"{folder}: found the image folder but no {name}.csv beside or inside it")
    if not found:
        raise BengaliXAIError(
            f"{root}: none of the NumtaDB folders {', '.join(SUBSETS)} found; expected e.g. "
            f"{root / 'training-a'}/ with {root / 'training-a.csv'}"
        )
    return found


def read_labels(csv_path: str | os.PathLike, folder: str | os.PathLike) -> list[tuple[Path, int]]:
    """(image path, digit) pairs from one NumtaDB CSV; errors name the file, row and column."""
    csv_path, folder = Path(csv_path), Path(folder)
    read_utf8(csv_path, UTF8_FIX)
    with open(csv_path, newline="", encoding="utf-8-sig") as fh:
        reader = csv.reader(fh)
        header = next(reader, None)
        if header is None or not any(c.strip() for c in header):
            raise BengaliXAIError(f"{csv_path}: the file is empty; expected a header with 'filename' and 'digit'")
        header = [c.strip() for c in header]
        for col in ("filename", "digit"):
            if col not in header:
                raise BengaliXAIError(f"{csv_path}: no {col!r} column (columns: {', '.join(header)})")
        fcol, dcol = header.index("filename"), header.index("digit")
        items = []
        for lineno, row in enumerate(reader, start=2):
            if not row or all(not c.strip() for c in row):
                continue
            if len(row) <= max(fcol, dcol):
                raise BengaliXAIError(f"{csv_path}: row {lineno} has {len(row)} columns, expected {len(header)}")
            name, digit = row[fcol].strip(), row[dcol].strip()
            if not name:
                raise BengaliXAIError(f"{csv_path}: row {lineno}, column {fcol + 1} ('filename') is empty")
            try:
                value = float(digit)
            except ValueError:
                value = float("nan")
            if not np.isfinite(value) or value != int(value) or not 0 <= value <= 9:
                raise BengaliXAIError(
                    f"{csv_path}: row {lineno}, column {dcol + 1} ('digit'): {digit!r} is not a digit 0..9; fix the label"
                )
            items.append((folder / name, int(value)))
    if not items:
        raise BengaliXAIError(f"{csv_path}: the file has a header but no data rows")
    return items


def _read_all(items: list[tuple[Path, int]], invert: bool, progress: bool):
    """Read the listed images -> (images, digits, [(path, why) of each image left out]); prints the first few."""
    it = items
    if progress:
        from tqdm import tqdm

        it = tqdm(items, desc="NumtaDB images", unit="img", mininterval=1.0)
    x, y, skipped = [], [], []
    for path, digit in it:
        try:
            image = _decode(path, invert)
        except ValueError as err:
            why = "missing" if not path.is_file() else str(err).replace(f"{path}: ", "")
            if len(skipped) < MAX_WARNINGS:
                print(f"warning: cannot read image {path}; skipped ({why})", flush=True)
            skipped.append((str(path), why))
            continue
        x.append(image)
        y.append(digit)
    return x, y, skipped


def _reasons(skipped: list[tuple[str, str]]) -> str:
    """'3 missing, 1 not a readable image': the images left out, counted by reason."""
    from collections import Counter

    return ", ".join(f"{n} {why}" for why, n in Counter(why for _, why in skipped).most_common())


def read_image(path: Path, invert: bool = False) -> np.ndarray | None:
    """One image -> float32 (28, 28) grey in [0, 1] (cams.core.images.load_image), or None when unreadable."""
    try:
        return _decode(path, invert)
    except ValueError:
        return None


def _decode(path: Path, invert: bool) -> np.ndarray:
    """One image -> float32 (28, 28) grey in [0, 1]; ValueError '<path>: <why>' when it cannot be read."""
    from cams.core.images import load_image

    grey = load_image(path, IMAGE_SHAPE[:2], channels=1)[..., 0]
    return 1.0 - grey if invert else grey


def load_numtadb(
    root: str | os.PathLike,
    max_samples: int | None = None,
    seed: int = 0,
    invert: bool = False,
    progress: bool = True,
) -> DigitData:
    """Load NumtaDB from `root`; `max_samples` keeps a stratified seeded subset before reading images."""
    items: list[tuple[Path, int]] = []
    for folder, csv_path in find_subsets(root):
        items.extend(read_labels(csv_path, folder))
    labels = np.array([d for _, d in items], np.int64)
    if max_samples is not None and max_samples < len(items):
        if max_samples < NUM_CLASSES:
            raise BengaliXAIError(f"--max-samples must be at least {NUM_CLASSES}, got {max_samples}")
        keep = stratified_indices(labels, max_samples, seed)
        items, labels = [items[i] for i in keep], labels[keep]
    x, y, skipped = _read_all(items, invert, progress)
    if skipped:
        print(f"skipped {len(skipped)} unreadable image(s) of {len(items)} ({_reasons(skipped)})", flush=True)
    if not x:
        first, why = skipped[0]
        raise BengaliXAIError(f"{root}: none of the {len(items)} listed images could be read ({_reasons(skipped)}; "
                              f"first: {first}: {why}); {READABLE}")
    data = np.stack(x)[..., None].astype(np.float32)
    return DigitData(data, np.array(y, np.int64), "numtadb",
                     info={"listed": len(items), "skipped": len(skipped),
                           "skipped_paths": [p for p, _ in skipped[:100]]})
