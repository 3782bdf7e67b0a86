"""Train the paper's CNN on a DigitData and write model, history, metrics and the loss figure."""
from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any


from cams.core.files import write_json
from cams.training import STRATEGIES, make_strategy, resumable, save_model_atomic, set_mixed_precision, set_seed
from cams.viz import plot_history

from .digits import DigitData
from .errors import BengaliXAIError
from .model import LAST_CONV, build_cnn
from .outputs import BACKUP_DIR, TRAIN_FILES, check_backup_dir, output_folder
from .pipeline import make_dataset, split_data

DEFAULT_EPOCHS = 25
DEFAULT_BATCH_SIZE = 250


def train_settings(data: DigitData, epochs: int, batch_size: int, seed: int, policy: str) -> dict[str, Any]:
    """What a training run depends on: its resume fingerprint and the manifest's settings."""
    return {"data": data.name, "n": int(len(data.y)), "epochs": epochs, "batch_size": batch_size, "seed": seed,
            "policy": policy}


def train_outputs(out: str | os.PathLike, settings: dict[str, Any], inputs: dict | None = None):
    """The checked --out folder of `train` (before any work): no file of another origin where
    model.keras, history.json, metrics.json, loss.png or accuracy.png go, nor in .resume/."""
    folder = output_folder(out, "train", settings, TRAIN_FILES, inputs)
    check_backup_dir(folder)
    return folder


def train_cnn(
    data: DigitData,
    out: str | os.PathLike,
    epochs: int = DEFAULT_EPOCHS,
    batch_size: int = DEFAULT_BATCH_SIZE,
    seed: int = 0,
    mixed_precision: bool = False,
    verbose: int = 2,
    strategy: str = "default",
    restart: bool = False,
    outputs=None,
    explain_every: int = 0,
) -> dict[str, Any]:
    """Split 60/20/20, train, evaluate on the test set and write to `out`:

    model.keras, history.json, metrics.json (test_accuracy, test_loss, ...), loss.png and
    accuracy.png. After each epoch keras.callbacks.BackupAndRestore writes the weights and optimizer
    state to `out/.resume/` (with the history so far): running the same command again after an
    interruption (Ctrl-C, SIGKILL) continues after the last finished epoch; a rerun with other
    settings stops with one line naming that folder, unless `restart`.

    Args:
        data: the digits.
        out: the output folder.
        epochs, batch_size, seed: training settings.
        mixed_precision: compute in float16/bfloat16.
        verbose: Keras' verbosity.
        strategy: tf.distribute strategy (default, mirrored, multiworker, tpu; see cams.training.make_strategy).
        restart: discard an interrupted run's own backup (never other files) and start over.
        outputs: the checked OutputFolder (cams.core.outputs) to record the files in; default
            `train_outputs(out, ...)`, checked here.
        explain_every: N > 0: every N epochs, Grad-CAM of 6 fixed test digits at the last convolution
            (`cams.callbacks.ExplainEpoch`) goes to `out/explain_epochs/epoch_XXXX.png` (plus `maps.gif`
            at the end) and to TensorBoard in `out/tensorboard/`; 0: off.

    Returns:
        The metrics dict with the written paths under "files" and the model under "model".
    """
    if epochs < 1:
        raise BengaliXAIError(f"--epochs must be at least 1, got {epochs}")
    if strategy not in STRATEGIES:
        raise BengaliXAIError(f"unknown strategy {strategy!r}: choose one of {', '.join(STRATEGIES)}")
    out = Path(out)
    requested = "mixed" if mixed_precision else "float32"
    outputs = outputs or train_outputs(out, train_settings(data, epochs, batch_size, seed, requested))
    set_seed(seed)
    split = split_data(data, val=0.2, test=0.2, seed=seed)
    watch = explain_watcher(out, data.x[split.test[:6]], explain_every) if explain_every else None
    policy = set_mixed_precision(mixed_precision)
    outputs.record(*TRAIN_FILES)  # listed before they are written: a killed run's files are still its own
    try:
        model, state, (test_loss, test_acc), train_s = _fit(data, split, out, epochs, batch_size, seed, policy,
                                                            strategy, verbose, restart, [watch] if watch else [])
        model_path = save_model_atomic(model, out / "model.keras")
    finally:
        set_mixed_precision(False)
    history = {k: [float(v) for v in vals] for k, vals in state.history.items()}
    metrics, files = _write_results(data, out, history, model_path, test_loss, test_acc, split, epochs, batch_size,
                                    seed, policy, train_s)
    files["metrics"] = write_json(out / "metrics.json", metrics)
    print(f"test accuracy {test_acc:.4f}, test loss {test_loss:.4f}", flush=True)
    return dict(metrics, files={k: str(v) for k, v in files.items()}, model=model)


def explain_watcher(out: Path, images, every: int):
    """The callback drawing Grad-CAM of `images` every `every` epochs into out/explain_epochs and out/tensorboard."""
    from cams.callbacks import ExplainEpoch

    return ExplainEpoch(images, methods=("gradcam",), log_dir=out / "tensorboard", out=out / "explain_epochs",
                        every=every, layer=LAST_CONV)


def _fit(data, split, out, epochs, batch_size, seed, policy, strategy, verbose, restart, extra=()):
    """Build and fit the CNN (resuming an interrupted run) -> (model, RunState, (test loss, accuracy), seconds)."""
    dist = make_strategy(strategy)
    with dist.scope():  # variables are created (and mirrored) under the strategy
        model = build_cnn()
    train_ds = make_dataset(data.x[split.train], data.y[split.train], batch_size, shuffle=True, seed=seed)
    val_ds = make_dataset(data.x[split.val], data.y[split.val], batch_size)
    test_ds = make_dataset(data.x[split.test], data.y[split.test], batch_size)
    print(f"training on {len(split.train)} images, validating on {len(split.val)}, testing on "
          f"{len(split.test)} ({data.name}; {epochs} epochs, batch {batch_size}, policy {policy}, "
          f"{dist.num_replicas_in_sync} replica(s))", flush=True)
    t0 = time.time()
    callbacks, state = resumable(out / BACKUP_DIR, epochs, fingerprint=train_settings(data, epochs, batch_size,
                                                                                      seed, policy),
                                 log=lambda m: print(m, flush=True), restart=restart, restart_option="--restart",
                                 hint="choose another --out")
    with dist.scope():
        model.fit(train_ds, epochs=epochs, validation_data=val_ds, callbacks=[*callbacks, *extra], verbose=verbose)
    train_s = time.time() - t0
    return model, state, tuple(model.evaluate(test_ds, verbose=0)), train_s


def _write_results(data, out, history, model_path, test_loss, test_acc, split, epochs, batch_size, seed, policy,
                   train_s):
    """history.json, loss.png, accuracy.png and the metrics dict (metrics.json is written by the caller)."""
    files = {
        "model": model_path,
        "history": write_json(out / "history.json", history),
        "loss_figure": plot_history({k: v for k, v in history.items() if "loss" in k}, out / "loss.png",
                                    title=f"CNN loss ({data.name})"),
        "accuracy_figure": plot_history({k: v for k, v in history.items() if "acc" in k}, out / "accuracy.png",
                                        title=f"CNN accuracy ({data.name})"),
    }
    metrics: dict[str, Any] = {
        "data": data.name,
        "test_accuracy": float(test_acc),
        "test_loss": float(test_loss),
        "train_accuracy": history["accuracy"][-1],
        "train_loss": history["loss"][-1],
        "val_accuracy": history["val_accuracy"][-1],
        "val_loss": history["val_loss"][-1],
        "epochs": epochs,
        "batch_size": batch_size,
        "seed": seed,
        "dtype_policy": policy,
        "n_train": int(len(split.train)),
        "n_val": int(len(split.val)),
        "n_test": int(len(split.test)),
        "train_seconds": round(train_s, 1),
        "test_set": "held-out fonts" if data.heldout is not None else "stratified 20%",
        "data_info": data.info,
    }
    return metrics, files
