"""Ekush digit CSVs: maleDigits.csv + femaleDigits.csv, 784 pixels + label per row.

Labels 112..121 mean digits 0..9 (0..9 are accepted too); the label is the `label` column when
the file has a header naming it, else the last column. Pixels are divided by 255 and shaped
28x28x1. Rows in error messages are the file's own line numbers (the header, if any, is row 1),
as a spreadsheet shows them; columns are 1-based.
"""
from __future__ import annotations

import csv
import os
import warnings
from pathlib import Path

import numpy as np

from cams.core.files import read_utf8

from .digits import UTF8_FIX, DigitData
from .errors import BengaliXAIError

EKUSH_FILES = ("maleDigits.csv", "femaleDigits.csv")
N_PIXELS = 784
N_COLUMNS = N_PIXELS + 1
EKUSH_LABEL_OFFSET = 112


def _is_number(cell: str) -> bool:
    try:
        float(cell)
    except ValueError:
        return False
    return True


def _read_header(path: Path) -> tuple[list[str] | None, int]:
    """(header cells or None, number of the first data row). Raises on an empty file."""
    with open(path, newline="", encoding="utf-8-sig") as fh:
        for lineno, row in enumerate(csv.reader(fh), start=1):
            if not row or all(not c.strip() for c in row):
                continue
            cells = [c.strip() for c in row]
            numeric = all(_is_number(c) for c in cells)
            # a header of column indices (0..784 or 1..785) is numeric but is no data row
            names_are_indices = numeric and [float(c) for c in cells] in (
                [float(i) for i in range(len(cells))],
                [float(i) for i in range(1, len(cells) + 1)],
            )
            if not numeric or names_are_indices:
                return cells, lineno + 1
            return None, lineno
    raise BengaliXAIError(f"{path}: the file is empty; expected rows of {N_COLUMNS} columns (784 pixels + label)")


def _locate_error(path: Path, header: list[str] | None, first_row: int) -> BengaliXAIError:
    """Scan the file row by row and describe the first malformed row (column count or cell)."""
    with open(path, newline="", encoding="utf-8-sig") as fh:
        for lineno, row in enumerate(csv.reader(fh), start=1):
            if lineno < first_row or not row or all(not c.strip() for c in row):
                continue
            if len(row) != N_COLUMNS:
                return BengaliXAIError(
                    f"{path}: row {lineno} has {len(row)} columns, expected {N_COLUMNS} "
                    f"(784 pixels + label); fix or remove that row"
                )
            for col, cell in enumerate(row, start=1):
                if not _is_number(cell.strip()):
                    return BengaliXAIError(
                        f"{path}: row {lineno}, column {col}{_colname(header, col)}: {cell.strip()!r} is "
                        "not a number; every cell must be a pixel value 0..255 or the label"
                    )
    return BengaliXAIError(f"{path}: cannot read the file as a numeric CSV")


def _colname(header: list[str] | None, col: int) -> str:
    return f" ({header[col - 1]!r})" if header is not None and col - 1 < len(header) else ""


def read_ekush_csv(path: str | os.PathLike) -> tuple[np.ndarray, np.ndarray]:
    """Read one Ekush CSV -> (pixels uint8 (N, 784), digits int64 (N,)). Errors name file, row, column."""
    path = Path(path)
    if not path.is_file():
        raise BengaliXAIError(f"{path}: no such file; expected an Ekush digit CSV such as maleDigits.csv")
    read_utf8(path, UTF8_FIX)  # a one-line error before pandas/csv meet a byte they cannot decode
    header, first_row = _read_header(path)
    if header is not None and len(header) != N_COLUMNS:
        raise BengaliXAIError(
            f"{path}: row {first_row - 1} (header) has {len(header)} columns, expected {N_COLUMNS} (784 pixels + label)"
        )
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # "input contained no data": reported below
            values = np.loadtxt(path, delimiter=",", skiprows=first_row - 1, dtype=np.float64, ndmin=2,
                                encoding="utf-8-sig")
    except ValueError:
        raise _locate_error(path, header, first_row) from None
    if values.size == 0:
        raise BengaliXAIError(f"{path}: the file has a header but no data rows")
    if values.shape[1] != N_COLUMNS:
        raise _locate_error(path, header, first_row)
    rows = _data_row_numbers(path, first_row)
    label_col = header.index("label") if header is not None and "label" in header else N_COLUMNS - 1
    labels = values[:, label_col]
    pixels = np.delete(values, label_col, axis=1)
    bad = ~np.isfinite(values)
    if bad.any():
        r, c = np.argwhere(bad)[0]
        raise BengaliXAIError(f"{path}: row {rows[r]}, column {c + 1}{_colname(header, c + 1)}: "
                              f"{values[r, c]} is not a finite number")
    digit = np.where((labels >= 112) & (labels <= 121), labels - EKUSH_LABEL_OFFSET, labels)
    bad = (digit != np.round(digit)) | (digit < 0) | (digit > 9)
    if bad.any():
        r = int(np.flatnonzero(bad)[0])
        raise BengaliXAIError(
            f"{path}: row {rows[r]}, column {label_col + 1}{_colname(header, label_col + 1)}: label "
            f"{labels[r]:g} is neither 112..121 (Ekush digits) nor 0..9; fix the label"
        )
    bad = (pixels < 0) | (pixels > 255)
    if bad.any():
        r, c = np.argwhere(bad)[0]
        c = c + 1 if c < label_col else c + 2
        raise BengaliXAIError(f"{path}: row {rows[r]}, column {c}{_colname(header, c)}: pixel "
                              f"{values[r, c - 1]:g} is outside 0..255")
    return np.rint(pixels).astype(np.uint8), digit.astype(np.int64)


def _data_row_numbers(path: Path, first_row: int) -> np.ndarray:
    """File line numbers of the non-blank data rows (what np.loadtxt returned, in order)."""
    with open(path, encoding="utf-8-sig") as fh:
        return np.array([i for i, line in enumerate(fh, start=1) if i >= first_row and line.strip()])


def ekush_files(path: str | os.PathLike) -> list[Path]:
    """The CSVs to read: `path` itself, or maleDigits.csv and femaleDigits.csv inside a folder."""
    path = Path(path)
    if path.is_file():
        return [path]
    if not path.is_dir():
        raise BengaliXAIError(f"{path}: no such file or folder; pass the folder holding {' and '.join(EKUSH_FILES)}")
    found = [path / f for f in EKUSH_FILES if (path / f).is_file()]
    if not found:
        csvs = sorted(p.name for p in path.glob("*.csv"))
        hint = f" (CSV files there: {', '.join(csvs[:5])}; pass one as --data-dir FILE)" if csvs else ""
        raise BengaliXAIError(f"{path}: neither {' nor '.join(EKUSH_FILES)} found{hint}")
    return found


def load_ekush(path: str | os.PathLike) -> DigitData:
    """Load and merge the Ekush digit CSVs at `path` (folder or one CSV) -> DigitData in [0, 1]."""
    xs, ys, counts = [], [], {}
    for f in ekush_files(path):
        px, y = read_ekush_csv(f)
        xs.append(px)
        ys.append(y)
        counts[f.name] = int(len(y))
        print(f"read {len(y)} digits from {f}", flush=True)
    x = (np.concatenate(xs).astype(np.float32) / 255.0).reshape(-1, 28, 28, 1)
    return DigitData(x, np.concatenate(ys), "ekush", info={"files": counts})
