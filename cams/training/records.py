"""Run outputs written atomically: whole-model `.keras` files and a JSON list of run records."""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Mapping

import keras

from cams.core.files import atomic_path, write_json


def save_model_atomic(model: keras.Model, path: str | os.PathLike, include_optimizer: bool = True) -> Path:
    """Save a whole model to a `.keras` file atomically.

    include_optimizer=False writes an uncompiled copy (architecture + weights only): for inference
    checkpoints this avoids storing Adam's two extra copies of every weight.
    """
    target = model
    if not include_optimizer and getattr(model, "optimizer", None) is not None:
        # clone_model would carry the compile state over; a model rebuilt from its config does not
        target = model.__class__.from_config(model.get_config())
        target.set_weights(model.get_weights())
    with atomic_path(path, suffix=".keras") as tmp:
        target.save(tmp)
    return Path(path)


def upsert_json_record(path: str | os.PathLike, record: Mapping[str, Any], key: str = "run_id") -> Path:
    """Keep a JSON file holding a list of records: replace the one with the same `key`, else append.

    The file is rewritten atomically; records written by earlier runs are left as they were. A file
    that is not a JSON list is an error naming the path (it is never overwritten).
    """
    path = Path(path)
    records: list = []
    if path.exists():
        try:
            records = json.loads(path.read_text(encoding="utf-8"))
        except ValueError as exc:
            raise ValueError(f"{path} is not valid JSON ({exc}); move it away to start a new file") from None
        if isinstance(records, dict):  # a single record written by another tool
            records = [records]
        if not isinstance(records, list):
            raise ValueError(f"{path} does not hold a JSON list of runs; move it away to start a new file")
    for i, old in enumerate(records):
        if isinstance(old, dict) and key in record and old.get(key) == record[key]:
            records[i] = dict(record)
            break
    else:
        records.append(dict(record))
    return write_json(path, records)
