"""The report's training JSON: `out/<dataset>_<model>_<optimizer>.json` holds a list of run dicts.

Each run dict has model, dataset, optimizer {name, params}, and train/val/test loss and accuracy,
one value per epoch, accuracies in percent (as in the original train_main.py). A new run is
appended; extra keys (run_id, status, batch_size, ...) describe the run and are ignored by readers.
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Mapping, Sequence

from cams.core.files import read_utf8

SERIES = ("train_loss", "train_acc", "val_loss", "val_acc", "test_loss", "test_acc")


def run_stem(dataset: str, model: str, optimizer: str) -> str:
    """`<dataset>_<model>_<optimizer>`, the report's file stem for JSON and checkpoints."""
    return f"{dataset}_{model}_{optimizer}"


def optimizer_record(name: str, lr: float, momentum: float | None = None) -> dict:
    """{name, params} as the report writes it: lr for Adam, lr and momentum for SGD."""
    params: dict[str, float] = {"lr": float(lr)}
    if name == "SGD":
        params["momentum"] = float(momentum or 0.0)
    return {"name": name, "params": params}


def series_from_history(history: Mapping[str, Sequence[float]]) -> dict[str, list[float]]:
    """Keras history (loss, accuracy, val_*, test_*) -> the report's six series, accuracies in percent."""
    out: dict[str, list[float]] = {}
    for prefix, keras_prefix in (("train", ""), ("val", "val_"), ("test", "test_")):
        out[f"{prefix}_loss"] = [round(float(v), 6) for v in history.get(f"{keras_prefix}loss", [])]
        out[f"{prefix}_acc"] = [round(100.0 * float(v), 4) for v in history.get(f"{keras_prefix}accuracy", [])]
    return out


def run_record(model: str, dataset: str, optimizer: Mapping[str, Any],
               history: Mapping[str, Sequence[float]], **info: Any) -> dict:
    """One run dict in the report's format, plus any descriptive `info` keys."""
    record: dict[str, Any] = {"model": model, "dataset": dataset, "optimizer": dict(optimizer)}
    record.update(series_from_history(history))
    record.update(info)
    return record


def read_runs(path: str | os.PathLike) -> list[dict]:
    """Read a training JSON (a list of run dicts, or one run dict) with errors naming the path."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"training JSON not found: {path} (train first, or pass -j PATH)")
    text = read_utf8(path, "a training JSON is UTF-8, as train writes it")
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise ValueError(f"{path} is not valid JSON: {exc}") from None
    runs = [data] if isinstance(data, dict) else data
    if not isinstance(runs, list) or not runs:
        raise ValueError(f"{path} holds no runs (expected a list of run dicts)")
    for i, run in enumerate(runs):
        missing = [k for k in SERIES if not isinstance(run, dict) or k not in run]
        if missing:
            raise ValueError(f"{path}: run {i} lacks {', '.join(missing)}")
    return runs


def pick_run(runs: list[dict], index: int = -1, path: str | os.PathLike = "") -> dict:
    """Run number `index` (default: the latest), with an error naming the valid range."""
    if not -len(runs) <= index < len(runs):
        raise IndexError(f"{path} holds {len(runs)} runs; --run must be in {-len(runs)}..{len(runs) - 1}")
    return runs[index]


def best_epoch(run: Mapping[str, Sequence[float]]) -> int:
    """1-based epoch with the highest validation accuracy (first one on ties)."""
    val = list(run["val_acc"])
    if not val:
        raise ValueError("the run has no epochs")
    return int(max(range(len(val)), key=lambda i: (val[i], -i))) + 1
