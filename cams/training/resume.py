"""Resuming `model.fit`: evaluation of extra sets each epoch, and the callbacks that continue an
interrupted run (BackupAndRestore + the run's history and a settings check)."""
from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any, Callable, Mapping

import keras

from cams.core.run_state import RunState


class EvaluateEachEpoch(keras.callbacks.Callback):
    """At each epoch end, evaluate the model on extra data sets and add `<name>_<metric>` to the logs.

    Put it first in the callback list so later callbacks (checkpoints, loggers, the progress bar)
    see e.g. `test_loss` and `test_accuracy` next to `val_loss`.
    """

    def __init__(self, datasets: Mapping[str, Any]):
        super().__init__()
        self.datasets = dict(datasets)

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        if logs is None:
            return
        for name, data in self.datasets.items():
            result = self.model.evaluate(data, verbose=0, return_dict=True)
            for key, value in result.items():
                logs[f"{name}_{key}"] = float(value)


def resumable(backup_dir, epochs: int, fingerprint: Any = None, extra: Mapping[str, Any] | None = None,
              best_path=None, monitor: str = "val_accuracy", mode: str = "max",
              extra_eval: Mapping[str, Any] | None = None, on_update=None, log: Callable[[str], None] | None = print):
    """Callbacks for `model.fit` that resume an interrupted run: ([callbacks], RunState).

    [EvaluateEachEpoch(extra_eval)], [ModelCheckpoint(best_path, save_best_only, monitor, mode)],
    RunState(backup_dir/run_state.json), BackupAndRestore(backup_dir). Rerunning the same command
    after an interruption (Ctrl-C, SIGKILL, preemption) continues after the last finished epoch with
    the weights, optimizer state and history of that epoch; the best checkpoint keeps the best value
    of the earlier epochs as its threshold. A backup made with another `fingerprint` (any JSON-able
    description of the settings) is discarded with a message. Keras removes the backup when all
    epochs are done.
    """
    backup_dir = Path(backup_dir)
    state = RunState(backup_dir / "run_state.json", fingerprint, extra, on_update)
    saved = state.saved()
    if saved is not None and saved.get("fingerprint") != state.fingerprint:
        if log:
            log(f"discarding the interrupted run in {backup_dir}: it was started with other settings")
        shutil.rmtree(backup_dir)
    elif saved is not None:
        done = state.restore()
        if log:
            log(f"resuming an interrupted run from {backup_dir}: {done} of {epochs} epochs done")
    callbacks: list[keras.callbacks.Callback] = [EvaluateEachEpoch(extra_eval)] if extra_eval else []
    if best_path is not None:
        _, best = state.best(monitor, mode)
        callbacks.append(keras.callbacks.ModelCheckpoint(str(best_path), monitor=monitor, mode=mode,
                                                         save_best_only=True, initial_value_threshold=best))
    callbacks += [state, keras.callbacks.BackupAndRestore(str(backup_dir))]
    return callbacks, state
