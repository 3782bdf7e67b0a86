"""Resuming `model.fit`: evaluation of extra sets each epoch, and the callbacks that continue an
interrupted run (BackupAndRestore + the run's history and a settings check).

The backup folder belongs to the job only while it holds nothing else: `run_state.json` (written
when training begins, with the settings' fingerprint) marks it as the job's, and the job's files in
it are that marker, Keras' state files and the `own_files` the caller names. A folder with other
files and no marker is refused before training; a backup made with other settings stops the run
with one line (resume with the same settings, or restart); `restart=True` and the end of training
remove only the job's own files, and the folder itself only when nothing else is left in it.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import keras

from cams.core.files import TEMP_PREFIX, write_json
from cams.core.outputs import describe_changes, remove_temporary
from cams.core.run_state import RunState
from cams.training.checkpoint import AtomicModelCheckpoint

#: the file that marks a backup folder as a resumable job's (RunState's JSON)
MARKER = "run_state.json"
#: what keras.callbacks.BackupAndRestore writes into its folder (the .bkp copies with double_checkpoint)
KERAS_STATE = ("latest.weights.h5", "training_metadata.json", "latest.weights.h5.bkp", "training_metadata.json.bkp")


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


def _own_names(own_files: Sequence[str] = ()) -> set:
    return {MARKER, *KERAS_STATE, *map(str, own_files)}


def check_backup(backup_dir, own_files: Sequence[str] = (), hint: str = "choose another backup folder") -> bool:
    """Refuse, before any work, a backup folder that holds files this job did not write.

    Args:
        backup_dir: the BackupAndRestore folder.
        own_files: names of further files the job keeps there (besides the marker and Keras' state).
        hint: what the user should do, ending the one-line message (e.g. "choose another --backup-dir").

    Returns:
        True when the folder holds a run of this job (its marker), False when it is absent or empty.

    Raises:
        ValueError: the folder is a file, or holds other files and no marker (naming a few of them).
    """
    folder = Path(backup_dir)
    if not folder.exists():
        return False
    if not folder.is_dir():
        raise ValueError(f"backup folder {folder} is a file; {hint}")
    if (folder / MARKER).is_file():
        return True
    others = sorted(e.name for e in folder.iterdir() if not e.name.startswith(TEMP_PREFIX))
    if others:
        shown = ", ".join(others[:3]) + (f" and {len(others) - 3} more" if len(others) > 3 else "")
        raise ValueError(f"backup folder {folder} holds files this training did not write ({shown}); {hint}")
    return False


def remove_backup(backup_dir, own_files: Sequence[str] = ()) -> None:
    """Delete the job's own files from `backup_dir` (the marker, Keras' state, `own_files`, the
    writers' temporary files), then the folder if nothing else is left in it. Anything else stays.

    Args:
        backup_dir: the BackupAndRestore folder.
        own_files: the caller's further file names in it (as given to `check_backup`).
    """
    folder = Path(backup_dir)
    if not folder.is_dir():
        return
    for name in _own_names(own_files):
        path = folder / name
        if path.is_file() or path.is_symlink():
            path.unlink()
    remove_temporary([folder])
    if not any(folder.iterdir()):
        folder.rmdir()


class OwnedBackupAndRestore(keras.callbacks.BackupAndRestore):
    """keras.callbacks.BackupAndRestore that removes only the job's own files when training ends
    (Keras deletes the whole folder) and turns a saved state that does not fit the model into one
    line naming the folder and `restart_option`, instead of Keras' loading error."""

    def __init__(self, backup_dir, own_files: Sequence[str] = (), restart_option: str = "--restart"):
        super().__init__(str(backup_dir))
        self.own_files, self.restart_option = tuple(own_files), restart_option

    def on_train_begin(self, logs=None):
        try:
            super().on_train_begin(logs)
        except (ValueError, KeyError, OSError) as err:
            raise ValueError(f"the interrupted run in {self.backup_dir} cannot be resumed with this model "
                             f"({type(err).__name__}); add {self.restart_option} to discard it and start over") from None

    def on_train_end(self, logs=None):
        keras_files = [Path(str(getattr(self, a))).name for a in ("_weights_path", "_training_metadata_path",
                                                                  "_prev_weights_path", "_prev_training_metadata_path")
                       if getattr(self, a, None)]  # the names this Keras version uses
        remove_backup(self.backup_dir, [*self.own_files, *keras_files])


class _MarkedRunState(RunState):
    """RunState that writes its file (the backup folder's marker) when training begins, so the folder
    is known as the job's before any other file appears in it."""

    def on_train_begin(self, logs=None):
        if self.path is not None and not self.path.is_file():
            write_json(self.path, {"fingerprint": self.fingerprint, "history": self.history, "extra": self.extra})


def _differences(before: Any, after: Any) -> str:
    if isinstance(before, dict) and isinstance(after, dict):
        keys = sorted(k for k in set(before) | set(after) if before.get(k) != after.get(k))
        return describe_changes(before, after, keys)
    return f"settings: {before} -> {after}"


def _check_saved(state: RunState, backup_dir: Path, epochs: int, restart: bool, restart_option: str,
                 own_files: Sequence[str], log) -> None:
    """Resume, restart or refuse the run saved in `backup_dir` (see `resumable`)."""
    if restart:
        if (backup_dir / MARKER).is_file():
            remove_backup(backup_dir, own_files)
            if log:
                log(f"{restart_option}: discarded the saved run in {backup_dir}; starting over")
        return
    try:
        saved = state.saved()
        if saved is not None and not isinstance(saved, dict):
            raise ValueError("not a run state")
    except ValueError:
        raise ValueError(f"backup folder {backup_dir}: its {MARKER} is not readable; add {restart_option} to "
                         "discard the saved run and start over") from None
    if saved is None:
        return
    done = max((len(v) for v in saved.get("history", {}).values()), default=0)
    if saved.get("fingerprint") != state.fingerprint:
        if done == 0:  # a start that finished no epoch: no run to keep
            remove_backup(backup_dir, own_files)
            return
        raise ValueError(f"backup folder {backup_dir} holds an interrupted run with other settings "
                         f"({_differences(saved.get('fingerprint'), state.fingerprint)}); rerun with its settings "
                         f"to resume it, or add {restart_option} to discard it and start over")
    state.restore()
    if log and done:
        log(f"resuming an interrupted run from {backup_dir}: {done} of {epochs} epochs done")


def resumable(backup_dir, epochs: int, fingerprint: Any = None, extra: Mapping[str, Any] | None = None,
              best_path=None, monitor: str = "val_accuracy", mode: str = "max",
              extra_eval: Mapping[str, Any] | None = None, on_update=None, log: Callable[[str], None] | None = print,
              restart: bool = False, restart_option: str = "--restart", own_files: Sequence[str] = (),
              hint: str = "choose another backup folder"):
    """Callbacks for `model.fit` that resume an interrupted run: ([callbacks], RunState).

    [EvaluateEachEpoch(extra_eval)], [AtomicModelCheckpoint(best_path, save_best_only, monitor, mode)],
    RunState(backup_dir/run_state.json), OwnedBackupAndRestore(backup_dir). Rerunning the same
    command after an interruption (Ctrl-C, SIGKILL, preemption) continues after the last finished
    epoch with the weights, optimizer state and history of that epoch; the best checkpoint keeps the
    best value of the earlier epochs as its threshold.

    Args:
        backup_dir: the folder of the saved state; new, empty, or this job's (see `check_backup`).
        epochs: the run's epochs (for the message).
        fingerprint: any JSON-able description of the settings; a saved run with another one stops
            with a ValueError naming the folder, the differences and `restart_option`.
        extra: RunState's free data.
        on_update: RunState's per-epoch hook.
        best_path: the best checkpoint's file (None: none).
        monitor: the quantity the best checkpoint watches.
        mode: "min" or "max" for `monitor`.
        extra_eval: {name: dataset} evaluated each epoch (logs `<name>_<metric>`).
        log: where the resume / restart messages go (None: nowhere).
        restart: discard the job's own saved state (never other files) and start over.
        restart_option: the command line's option that sets `restart`, named in messages.
        own_files: further file names the caller writes into `backup_dir` (removed with the state).
        hint: the end of the message refusing a folder with other files.

    Returns:
        (callbacks, state): the callbacks in order, and the RunState with the run's history.

    Raises:
        ValueError: the folder holds other files, or a run with other settings (without restart).
    """
    backup_dir = Path(backup_dir)
    check_backup(backup_dir, own_files, hint)
    state = _MarkedRunState(backup_dir / MARKER, fingerprint, extra, on_update)
    _check_saved(state, backup_dir, epochs, restart, restart_option, own_files, log)
    callbacks: list[keras.callbacks.Callback] = [EvaluateEachEpoch(extra_eval)] if extra_eval else []
    if best_path is not None:
        _, best = state.best(monitor, mode)
        callbacks.append(AtomicModelCheckpoint(str(best_path), monitor=monitor, mode=mode, save_best_only=True,
                                               initial_value_threshold=best))
    callbacks += [state, OwnedBackupAndRestore(backup_dir, own_files, restart_option)]
    return callbacks, state
