"""The dispatcher behind `--data`: `load_data` reads the synthetic set, Ekush or NumtaDB as a DigitData."""
from __future__ import annotations

import os
from typing import Any

from .data_ekush import load_ekush
from .data_numtadb import load_numtadb
from .digits import NUM_CLASSES, DigitData, subsample
from .errors import BengaliXAIError

DATASETS = ("synthetic", "ekush", "numtadb")


def load_data(
    name: str,
    data_dir: str | os.PathLike | None = None,
    max_samples: int | None = None,
    seed: int = 0,
    **kwargs: Any,
) -> DigitData:
    """Load `synthetic`, `ekush` (CSV file or folder) or `numtadb` (folder) as a DigitData."""
    if max_samples is not None and max_samples < NUM_CLASSES:
        raise BengaliXAIError(f"--max-samples must be at least {NUM_CLASSES}, got {max_samples}")
    if name == "synthetic":
        from .synthetic import DEFAULT_N, make_synthetic  # here, not above: it imports OpenCV

        n = kwargs.pop("n", DEFAULT_N)
        return make_synthetic(max_samples if max_samples is not None else n, seed=seed, **kwargs)
    if data_dir is None:
        raise BengaliXAIError(f"--data {name} needs --data-dir pointing at the {name} files")
    if name == "ekush":
        return subsample(load_ekush(data_dir), max_samples, seed)
    if name == "numtadb":
        return load_numtadb(data_dir, max_samples=max_samples, seed=seed, **kwargs)
    raise BengaliXAIError(f"unknown dataset {name!r}; choose one of {', '.join(DATASETS)}")
