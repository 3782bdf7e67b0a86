"""Training helpers shared by both apps and L-CAM, for what Keras does not do itself: seeding,
the mixed-precision policy per device, tf.distribute strategies by name, evaluation of extra sets
each epoch, the run history kept across a `keras.callbacks.BackupAndRestore` resume (with a
settings check), atomic model files and a JSON list of run records."""
from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any, Callable, Mapping

import keras
import tensorflow as tf

from cams.core.files import atomic_path, write_json

STRATEGIES = ("default", "mirrored", "multiworker", "tpu")


def set_seed(seed: int | None) -> None:
    """Seed Python, NumPy and TensorFlow (keras.utils.set_random_seed); None leaves them alone."""
    if seed is not None:
        keras.utils.set_random_seed(int(seed))


def has_gpu() -> bool:
    """True when TensorFlow sees at least one GPU."""
    return bool(tf.config.list_physical_devices("GPU"))


def set_mixed_precision(enabled: bool) -> str:
    """Set the global Keras dtype policy and return its name.

    mixed_float16 on a GPU, mixed_bfloat16 elsewhere (CPU/TPU), float32 when disabled.
    Models built afterwards must keep their output layer in float32 (dtype="float32").
    """
    name = ("mixed_float16" if has_gpu() else "mixed_bfloat16") if enabled else "float32"
    keras.mixed_precision.set_global_policy(name)
    return name


def make_strategy(name: str = "default") -> tf.distribute.Strategy:
    """A tf.distribute strategy: build, compile and fit the model inside `strategy.scope()`.

    default: the current (single-device) strategy; mirrored: synchronous data parallelism over
    all GPUs, or over all logical CPU devices when there is no GPU; multiworker:
    MultiWorkerMirroredStrategy over the machines described by the TF_CONFIG environment variable
    (run the same command on every worker); tpu: TPUStrategy on the
    TPU runtime found by TPUClusterResolver (Colab, Cloud TPU). The batch size stays global.
    """
    if name == "default":
        return tf.distribute.get_strategy()
    if name == "mirrored":
        gpus = tf.config.list_logical_devices("GPU")
        devices = [d.name for d in (gpus or tf.config.list_logical_devices("CPU"))]
        return tf.distribute.MirroredStrategy(devices)
    if name == "multiworker":
        return tf.distribute.MultiWorkerMirroredStrategy()
    if name == "tpu":
        try:
            resolver = tf.distribute.cluster_resolver.TPUClusterResolver()
            tf.config.experimental_connect_to_cluster(resolver)
            tf.tpu.experimental.initialize_tpu_system(resolver)
        except (ValueError, RuntimeError, tf.errors.OpError) as err:
            raise ValueError(
                f"no TPU found ({type(err).__name__}: {err}); run on a TPU runtime "
                "(Colab: Runtime > Change runtime type > TPU) or use --strategy default or mirrored"
            ) from None
        return tf.distribute.TPUStrategy(resolver)
    raise ValueError(f"unknown strategy {name!r}: choose one of {', '.join(STRATEGIES)}")




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
