"""Training helpers shared by both apps: seeding, mixed precision, tf.distribute strategies,
and training that resumes after an interruption."""
from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import keras
import numpy as np
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


# ---------------------------------------------------------------------------------------------
# Training that survives interruption: per-epoch evaluation of extra sets, best-validation
# checkpoint, resume state, and a JSON list of run records updated every epoch.
# ---------------------------------------------------------------------------------------------


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


class ResumeState:
    """Files in `directory` that let an interrupted training continue where it stopped.

    After each completed epoch: the weights, the optimizer variables, and `state.json` (epoch,
    per-epoch history, best value, a settings fingerprint and free `extra` data). `state.json` is
    written last and names the weight files, so a crash at any moment leaves a consistent state.
    """

    def __init__(self, directory: str | os.PathLike):
        self.dir = Path(directory)
        self.state_file = self.dir / "state.json"

    def exists(self) -> bool:
        return self.state_file.is_file()

    def read(self) -> dict:
        try:
            return json.loads(self.state_file.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise ValueError(f"unreadable resume state {self.state_file}: {exc}; delete {self.dir} "
                             f"to start over") from None

    def save(self, model: keras.Model, epoch: int, history: Mapping[str, Sequence[float]],
             best: Mapping[str, Any] | None = None, fingerprint: Any = None,
             extra: Mapping[str, Any] | None = None) -> None:
        """Record that `epoch` epochs are complete (weights, optimizer, history)."""
        self.dir.mkdir(parents=True, exist_ok=True)
        weights = f"weights-{epoch}.weights.h5"
        opt = f"optimizer-{epoch}.npz"
        with atomic_path(self.dir / weights, suffix=".weights.h5") as tmp:
            model.save_weights(tmp)
        if model.optimizer is not None:
            store: dict[str, np.ndarray] = {}
            model.optimizer.save_own_variables(store)
            with atomic_path(self.dir / opt, suffix=".npz") as tmp:
                np.savez(tmp, **store)
        write_json(self.state_file, {
            "epoch": int(epoch), "weights": weights, "optimizer": opt if model.optimizer is not None else None,
            "history": {k: [float(v) for v in vs] for k, vs in history.items()},
            "best": dict(best or {}), "fingerprint": fingerprint, "extra": dict(extra or {}),
        })
        for old in self.dir.iterdir():  # drop files of earlier epochs
            if old.name not in (weights, opt, self.state_file.name) and not old.name.startswith("."):
                old.unlink(missing_ok=True)

    def restore(self, model: keras.Model) -> dict:
        """Load the saved weights and optimizer variables into `model`; return the state dict."""
        state = self.read()
        if model.optimizer is not None and not model.optimizer.built:
            model.optimizer.build(model.trainable_variables)  # so its variables exist to be loaded
        model.load_weights(self.dir / state["weights"])
        if state.get("optimizer") and model.optimizer is not None:
            store = dict(np.load(self.dir / state["optimizer"]))
            if len(store) != len(model.optimizer.variables):
                raise ValueError(f"resume state {self.dir} holds {len(store)} optimizer variables, the model's "
                                 f"optimizer has {len(model.optimizer.variables)}; delete {self.dir} to start over")
            model.optimizer.load_own_variables(store)
        return state

    def clear(self) -> None:
        """Remove the resume state (after a run completes)."""
        if self.dir.exists():
            shutil.rmtree(self.dir)


@dataclass
class FitResult:
    """What `fit_resumable` returns: per-epoch history (all epochs, resumed ones included)."""

    history: dict[str, list[float]]
    best_epoch: int | None = None      # 1-based
    best_value: float | None = None
    resumed_from: int = 0              # epochs already done when this call started
    extra: dict = field(default_factory=dict)


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


class _EpochTracker(keras.callbacks.Callback):
    def __init__(self, history, best, monitor, mode, best_path, state, fingerprint, extra, on_epoch_end, log):
        super().__init__()
        self.history, self.best, self.monitor, self.mode = history, best, monitor, mode
        self.best_path, self.state, self.fingerprint, self.extra = best_path, state, fingerprint, extra
        self.hook, self.log = on_epoch_end, log

    def _improved(self, value: float) -> bool:
        old = self.best.get("value")
        if old is None:
            return True
        return value > old if self.mode == "max" else value < old

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        logs = dict(logs or {})
        for key, value in logs.items():
            self.history.setdefault(key, []).append(float(value))
        value = logs.get(self.monitor)
        if value is not None and self._improved(float(value)):
            self.best.update(epoch=epoch + 1, value=float(value))
            if self.best_path is not None:
                save_model_atomic(self.model, self.best_path, include_optimizer=False)
                if self.log:
                    self.log(f"epoch {epoch + 1}: {self.monitor} {float(value):.4f} is the best so far, "
                             f"saved {self.best_path}")
        if self.state is not None:
            self.state.save(self.model, epoch + 1, self.history, self.best, self.fingerprint, self.extra)
        if self.hook is not None:
            self.hook(FitResult(self.history, self.best.get("epoch"), self.best.get("value"), 0, self.extra))


def fit_resumable(
    model: keras.Model,
    train_data: Any,
    epochs: int,
    *,
    validation_data: Any = None,
    extra_eval: Mapping[str, Any] | None = None,
    state_dir: str | os.PathLike | None = None,
    best_path: str | os.PathLike | None = None,
    monitor: str = "val_accuracy",
    mode: str = "max",
    fingerprint: Any = None,
    extra: Mapping[str, Any] | None = None,
    on_epoch_end: Callable[[FitResult], None] | None = None,
    callbacks: Sequence[keras.callbacks.Callback] = (),
    verbose: int | str = "auto",
    log: Callable[[str], None] | None = print,
) -> FitResult:
    """`model.fit` that keeps a best-`monitor` checkpoint and resumes after an interruption.

    model must be compiled. extra_eval: {"test": dataset, ...} evaluated at each epoch end
    (`test_loss`, `test_accuracy` in the history). state_dir: where the resume state lives; when it
    holds a state with the same `fingerprint` (any JSON-able description of the run's settings), the
    weights, optimizer, history, best value and `extra` are restored and training continues at the
    next epoch; a state with another fingerprint is discarded with a message. The state is removed
    when all epochs are done. best_path: a `.keras` file, written atomically whenever `monitor`
    improves (architecture and weights, no optimizer state). on_epoch_end(result) runs after each epoch with the history so far (e.g. to write a
    JSON record). A KeyboardInterrupt propagates; calling again with the same arguments resumes.
    """
    if mode not in ("max", "min"):
        raise ValueError(f"mode must be 'max' or 'min', got {mode!r}")
    if model.optimizer is None or not getattr(model, "compiled", True):
        raise ValueError("fit_resumable needs a compiled model")
    fingerprint = json.loads(json.dumps(fingerprint, default=str)) if fingerprint is not None else None
    history: dict[str, list[float]] = {}
    best: dict[str, Any] = {}
    extra_data = dict(extra or {})
    initial_epoch = 0
    state = ResumeState(state_dir) if state_dir is not None else None
    if state is not None and state.exists():
        saved = state.read()
        if saved.get("fingerprint") == fingerprint:
            saved = state.restore(model)
            initial_epoch = int(saved["epoch"])
            history = {k: list(v) for k, v in saved.get("history", {}).items()}
            best = dict(saved.get("best", {}))
            extra_data = {**extra_data, **saved.get("extra", {})}
            if log:
                log(f"resuming an interrupted run from {state.dir}: {initial_epoch} of {epochs} epochs done")
        else:
            if log:
                log(f"discarding the interrupted run in {state.dir}: it was started with other settings")
            state.clear()
    best_file = Path(best_path) if best_path is not None else None
    tracker = _EpochTracker(history, best, monitor, mode, best_file, state, fingerprint, extra_data,
                            on_epoch_end, log)
    cbs: list[keras.callbacks.Callback] = []
    if extra_eval:
        cbs.append(EvaluateEachEpoch(extra_eval))
    cbs.append(tracker)
    cbs.extend(callbacks)
    if initial_epoch < epochs:
        model.fit(train_data, epochs=epochs, initial_epoch=initial_epoch, validation_data=validation_data,
                  callbacks=cbs, verbose=verbose, shuffle=not isinstance(train_data, tf.data.Dataset))
    if state is not None:
        state.clear()
    return FitResult(history, best.get("epoch"), best.get("value"), initial_epoch, extra_data)


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
