"""Read what an explanation run wrote, as the report's rows and pictures.

Three layouts are read, recognised by their run manifests (`cams.core.outputs`):

* `cams explain-folder` (`.cams-run.explain-folder.json`): `predictions.csv` (file, maps, class,
  probability), one `maps/<name>.npz` per image and, unless --no-overlays, the overlays
  `overlays/<name>.<method>.png`;
* `cams explain` (`.cams-run.explain.json`): `predictions.csv` (file, class, name, probability) and
  `maps.npz` (the files, the predicted classes and one (N, H, W) array per method);
* `cams evaluate` (`.cams-run.evaluate.json`): `per_image.csv` (file, class, name, method, one
  column per metric) and `maps/<method>.npz` (`maps`, (N, H, W)); every metric column becomes a
  per-image score "<column> (<method>)"; the run records no probability, so none is shown.

The input images are read again from the paths the run recorded (a missing one shows as a grey
square); overlays are `cams.viz.overlay` of the map on the image, as the run drew them. An optional
`scores.csv` in the folder adds per-image scores: a `file` column, optionally a `method` column, and
numeric columns (pointing game, AD, insertion ...), shown as "<column> (<method>)" when a method is given.
"""
from __future__ import annotations

import csv
import json
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence

import numpy as np

from cams.core.files import read_utf8
from cams.core.images import load_image
from cams.core.mapfiles import MapReader
from cams.core.outputs import MANIFEST_PREFIX
from cams.report.page import Entry
from cams.report.thumbs import Pictures

#: the jobs whose folders the report reads, by manifest name
JOBS = ("explain-folder", "explain", "evaluate")
SCORES = "scores.csv"


@dataclass
class Run:
    """An explanation run read back: its rows, how to draw row i, its methods and settings."""

    job: str
    entries: List[Entry]
    pictures: Pictures
    methods: List[str]
    settings: Dict[str, object]


def _manifest(folder: Path, job: str) -> Optional[dict]:
    path = folder / f"{MANIFEST_PREFIX}{job}.json"
    if not path.is_file():
        return None
    try:
        data = json.loads(read_utf8(path))
    except ValueError:
        raise ValueError(f"{path} is not a readable run manifest; move it away and run the explanation again") from None
    return data if isinstance(data, dict) else None


def _rows(path: Path, header: Sequence[str]) -> List[dict]:
    if not path.is_file():
        raise ValueError(f"{path} is missing: the run did not finish; run it again to complete it")
    with open(path, encoding="utf-8", newline="") as f:
        reader = csv.DictReader(f)
        if list(reader.fieldnames or [])[: len(header)] != list(header):
            got = ",".join(reader.fieldnames or [])
            raise ValueError(f"{path}: expected the columns {','.join(header)}, got {got}")
        return list(reader)


def _image(path: str, size) -> Optional[np.ndarray]:
    """The image at `path` as uint8 RGB of `size` (H, W), or None when it cannot be read."""
    try:
        x = load_image(Path(path), size, 3, scale=1.0)
    except (ValueError, OSError):
        return None
    return np.clip(np.rint(x), 0, 255).astype(np.uint8)


def _overlay(image: Optional[np.ndarray], cam: np.ndarray) -> np.ndarray:
    from cams import viz

    return viz.heatmap(cam) if image is None else viz.overlay(image, cam)


def read_scores(folder: Path) -> Dict[str, Dict[str, float]]:
    """{file: {score name: value}} from `folder/scores.csv` (empty when there is none); see the module docstring."""
    path = folder / SCORES
    if not path.is_file():
        return {}
    with open(path, encoding="utf-8", newline="") as f:
        reader = csv.DictReader(f)
        fields = list(reader.fieldnames or [])
        if "file" not in fields:
            raise ValueError(f"{path}: no 'file' column; give one row per image with file,<score>,... "
                             f"(and optionally method)")
        found: Dict[str, Dict[str, float]] = {}
        for row in reader:
            method = row.get("method") or ""
            for key in (k for k in fields if k not in ("file", "method")):
                try:
                    value = float(row[key])
                except (TypeError, ValueError):
                    continue
                found.setdefault(row["file"], {})[f"{key} ({method})" if method else key] = value
    return found


def _names(labels: Optional[Sequence[str]], k: int, given: str = "") -> str:
    if given:
        return given
    return labels[k] if labels and 0 <= k < len(labels) else ""


def _explain_folder(folder: Path, manifest: dict, labels, scores) -> Run:
    settings = manifest.get("settings") or {}
    methods = [m for m in str(settings.get("methods", "")).split(",") if m]
    rows = [r for r in _rows(folder / "predictions.csv", ("file", "maps", "class", "probability")) if r["class"] != ""]
    entries = [Entry(r["file"], int(r["class"]), float(r["probability"]), _names(labels, int(r["class"])),
                     scores.get(r["file"], {})) for r in rows]

    read = MapReader(folder)

    def pictures(i: int):
        rel = rows[i]["maps"]
        unreadable = (OSError, ValueError, EOFError, KeyError, IndexError, zipfile.BadZipFile)
        try:
            record = read(rel)
            maps = {m: record[m.replace("+", "p")] for m in methods if m.replace("+", "p") in record}
        except unreadable:
            maps = {}
        try:
            stem = read.output_name(rel)
        except unreadable:
            stem = rel
        size = next(iter(maps.values())).shape if maps else (128, 128)
        image = _image(rows[i]["file"], size)
        overlays = {}
        for m in methods:
            png = folder / "overlays" / f"{stem}.{m}.png"
            overlays[m] = _png(png) if png.is_file() else (_overlay(image, maps[m]) if m in maps else None)
        return image, overlays

    return Run("explain-folder", entries, pictures, methods, dict(settings, command=manifest.get("command")))


def _png(path: Path) -> Optional[np.ndarray]:
    from PIL import Image

    try:
        with Image.open(path) as im:
            return np.asarray(im.convert("RGB"))
    except OSError:
        return None


def _explain(folder: Path, manifest: dict, labels, scores) -> Run:
    settings = manifest.get("settings") or {}
    rows = _rows(folder / "predictions.csv", ("file", "class", "name", "probability"))
    path = folder / "maps.npz"
    if not path.is_file():
        raise ValueError(f"{path} is missing: the run did not finish; run cams explain again")
    with np.load(path) as z:
        stored = {k: z[k] for k in z.files}
    methods = [m for m in str(settings.get("methods", "")).split(",") if m.replace("+", "p") in stored]
    entries = [Entry(r["file"], int(r["class"]), float(r["probability"]), _names(labels, int(r["class"]), r["name"]),
                     scores.get(r["file"], {})) for r in rows]

    def pictures(i: int):
        maps = {m: stored[m.replace("+", "p")][i] for m in methods}
        image = _image(rows[i]["file"], next(iter(maps.values())).shape) if maps else None
        return image, {m: _overlay(image, cam) for m, cam in maps.items()}

    return Run("explain", entries, pictures, methods, dict(settings, command=manifest.get("command")))


def _evaluate(folder: Path, manifest: dict, labels, scores) -> Run:
    rows = _rows(folder / "per_image.csv", ("file", "class", "name", "method"))
    methods = list(dict.fromkeys(r["method"] for r in rows))
    files = list(dict.fromkeys(r["file"] for r in rows))
    entries = {f: Entry(f, 0, None, "", dict(scores.get(f, {}))) for f in files}
    for r in rows:
        entry = entries[r["file"]]
        entry.predicted, entry.name = int(r["class"]), _names(labels, int(r["class"]), r["name"])
        for key in (k for k in r if k not in ("file", "class", "name", "method")):
            try:
                entry.scores[f"{key} ({r['method']})"] = float(r[key])
            except (TypeError, ValueError):
                continue
    stored = {}
    for m in methods:
        try:
            with np.load(folder / "maps" / f"{m}.npz") as z:
                stored[m] = z["maps"]
        except (OSError, KeyError, ValueError):
            continue

    def pictures(i: int):
        maps = {m: v[i] for m, v in stored.items() if i < len(v)}
        image = _image(files[i], next(iter(maps.values())).shape) if maps else None
        return image, {m: _overlay(image, cam) for m, cam in maps.items()}

    settings = manifest.get("settings") or {}
    return Run("evaluate", list(entries.values()), pictures, methods, dict(settings, command=manifest.get("command")))


READERS: Dict[str, Callable] = {"explain-folder": _explain_folder, "explain": _explain, "evaluate": _evaluate}


def read_run(folder, labels: Optional[Sequence[str]] = None) -> Run:
    """The explanation run in `folder` (written by `cams explain-folder`, `cams explain` or `cams evaluate`).

    Args:
        folder: the run's output folder.
        labels: class names (class 0 first) for runs that did not record them.

    Returns:
        A `Run`: entries in the order of predictions.csv, row -> pictures, methods, settings.

    Raises:
        ValueError: no run in `folder`, or its files are incomplete.
    """
    folder = Path(folder)
    if "://" in str(folder):
        raise ValueError(f"{folder}: the report is written into a local folder; copy the run's folder here first")
    if not folder.is_dir():
        raise ValueError(f"{folder}: no such folder; give the --out folder of a cams explain or explain-folder run")
    scores = read_scores(folder)
    for job in JOBS:
        manifest = _manifest(folder, job)
        if manifest is not None:
            return READERS[job](folder, manifest, labels, scores)
    raise ValueError(f"{folder} holds no cams explain, explain-folder or evaluate run (no {MANIFEST_PREFIX}"
                     f"explain*.json or evaluate.json); give the --out folder of such a run")
