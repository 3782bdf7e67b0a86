"""`read_maps`: an explain-folder output folder read back as float32 maps, whatever its encoding.

The encodings (`--maps-dtype`) and layouts (`--maps-layout`) are described, and decoded, in
`cams.core.mapfiles`; this module only walks predictions.csv.
"""
from __future__ import annotations

import csv
from pathlib import Path
from typing import Dict, Iterator, Tuple

from cams.core.mapfiles import MapReader


def read_maps(out) -> Iterator[Tuple[str, Dict[str, object]]]:
    """Every image an explain-folder run explained into `out`, with its maps, in predictions.csv order.

    Args:
        out: the local --out folder of `cams explain-folder` (predictions.csv and maps/).

    Yields:
        (the image file as predictions.csv lists it, its record: predicted class, probability and one
        float32 (H, W) map in [0, 1] per method, '+' written 'p'), whatever --maps-dtype and
        --maps-layout the run used. Rows whose maps file is missing are skipped.

    Raises:
        ValueError: no predictions.csv in `out` (not an explain-folder output folder, or not finished).
    """
    table = Path(out) / "predictions.csv"
    if not table.is_file():
        raise ValueError(f"{table} does not exist: read_maps reads the --out folder of a finished cams explain-folder run")
    with open(table, encoding="utf-8", newline="") as f:
        rows = list(csv.reader(f))[1:]
    read = MapReader(out)
    for row in rows:
        if len(row) < 2:
            continue
        try:
            record = read(row[1])
        except FileNotFoundError:
            continue
        yield row[0], record
