"""The per-epoch history of a training run, kept across a `keras.callbacks.BackupAndRestore` resume."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Callable, Mapping

import keras

from cams.core.files import write_json


class RunState(keras.callbacks.Callback):
    """The per-epoch history of a run that `keras.callbacks.BackupAndRestore` may resume.

    After every epoch, `history` ({log key: one value per epoch, all epochs of the run, resumed
    ones included}), the settings `fingerprint` and free `extra` data are written to `path`
    (atomically; path=None keeps them in memory), and `on_update(self)` runs (e.g. to write the study's JSON record). Put it
    before BackupAndRestore in the callback list: a kill between the two leaves this file one
    epoch ahead, which the rerun overwrites (entries are indexed by epoch).
    """

    def __init__(self, path, fingerprint: Any = None, extra: Mapping[str, Any] | None = None,
                 on_update: Callable[["RunState"], None] | None = None):
        super().__init__()
        self.path = Path(path) if path is not None else None  # None: kept in memory only
        self.fingerprint = json.loads(json.dumps(fingerprint, default=str))
        self.history: dict[str, list[float]] = {}
        self.extra = dict(extra or {})
        self.on_update = on_update

    def saved(self) -> dict | None:
        """The state written by an earlier run, or None."""
        if self.path is None or not self.path.is_file():
            return None
        try:
            return json.loads(self.path.read_text(encoding="utf-8"))
        except ValueError as exc:
            raise ValueError(f"unreadable run state {self.path}: {exc}; delete {self.path.parent} to start over") from None

    def restore(self) -> int:
        """Take history and extra from the saved state; returns the number of epochs it holds."""
        state = self.saved() or {}
        self.history = {k: list(v) for k, v in state.get("history", {}).items()}
        self.extra.update(state.get("extra", {}))
        return max((len(v) for v in self.history.values()), default=0)

    def best(self, monitor: str, mode: str = "max") -> tuple[int | None, float | None]:
        """(1-based epoch, value) of the best `monitor` so far ("max" or "min"), or (None, None)."""
        values = self.history.get(monitor, [])
        if not values:
            return None, None
        pick = max if mode == "max" else min
        i = pick(range(len(values)), key=lambda j: (values[j] if mode == "max" else -values[j], -j))
        return i + 1, values[i]

    def record(self, epoch: int, logs: Mapping[str, Any]) -> None:
        """Put epoch `epoch`'s logs in `history` (a resumed epoch replaces what a killed run left)."""
        for key, value in logs.items():
            self.history[key] = self.history.get(key, [])[:epoch] + [float(value)]

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        self.record(epoch, logs or {})
        if self.path is not None:
            write_json(self.path, {"fingerprint": self.fingerprint, "history": self.history, "extra": self.extra})
        if self.on_update is not None:
            self.on_update(self)
