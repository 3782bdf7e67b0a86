"""Training as the report's train_main.py does it: per-epoch train/val/test loss and accuracy to JSON,
best-validation checkpoint, plus resume after an interruption and mixed precision."""
from __future__ import annotations

import os
import time
import uuid
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable

from cams.core.outputs import OutputFolder, check_apart
from cams.training import (STRATEGIES, RunState, make_strategy, resumable, set_mixed_precision, set_seed,
                           upsert_json_record)

from . import data as ddata
from .determinism import set_op_determinism
from .history_json import optimizer_record, run_record, run_stem
from .models import MODELS, build_model, describe_params

OPTIMIZERS = ("Adam", "SGD")


@dataclass
class TrainConfig:
    """Everything one training run depends on (the CLI flags)."""

    dataset: str = "fakes_dataset"
    model: str = "SimpleNet"
    lr: float = 1e-3
    batch_size: int = 32
    epochs: int = 5
    optimizer: str = "Adam"
    momentum: float = 0.9
    data_root: str = "data"
    image_size: int = 256
    weights: str | None = None  # None = model default: imagenet for XceptionBased, none for SimpleNet
    mixed_precision: bool = False
    strategy: str = "default"  # tf.distribute: default | mirrored | tpu (not part of the resume fingerprint)
    seed: int | None = 0
    out_dir: str = "out"
    checkpoint_dir: str = "checkpoints"
    resume: bool = True  # False: the same as restart=True (kept for older callers)
    verbose: int | str = "auto"
    restart: bool = False  # discard an interrupted run's own backup files and start over
    explain_every: int = 0  # N > 0: Grad-CAM of 4 fixed test images every N epochs (cams.callbacks.ExplainEpoch)

    def validate(self) -> None:
        if self.model not in MODELS:
            raise ValueError(f"unknown model {self.model!r}: choose one of {', '.join(MODELS)}")
        if self.optimizer not in OPTIMIZERS:
            raise ValueError(f"unknown optimizer {self.optimizer!r}: choose one of {', '.join(OPTIMIZERS)}")
        if self.strategy not in STRATEGIES:
            raise ValueError(f"unknown strategy {self.strategy!r}: choose one of {', '.join(STRATEGIES)}")
        for name in ("lr", "batch_size", "epochs"):
            if getattr(self, name) <= 0:
                raise ValueError(f"--{name.replace('_', '-')} must be positive, got {getattr(self, name)}")
        if self.explain_every < 0:
            raise ValueError(f"--explain-every must be 0 (off) or more, got {self.explain_every}")

    def resolved_weights(self) -> str:
        if self.weights is not None:
            return self.weights
        return "imagenet" if self.model == "XceptionBased" else "none"

    def fingerprint(self) -> dict:
        """The settings that must match for an interrupted run to be resumed."""
        keys = ("dataset", "model", "lr", "batch_size", "epochs", "optimizer", "image_size", "seed",
                "mixed_precision")
        fp = {k: getattr(self, k) for k in keys}
        fp["momentum"] = self.momentum if self.optimizer == "SGD" else None
        fp["weights"] = self.resolved_weights()
        return fp


@dataclass
class TrainOutputs:
    """Where a run wrote its results, and the run dict it appended."""

    json_path: Path
    checkpoint: Path
    record: dict
    state: RunState  # history (all epochs), extra (run_id, started)


def make_optimizer(name: str, lr: float, momentum: float = 0.9):
    """Adam(lr) or SGD(lr, momentum)."""
    import keras

    if name == "Adam":
        return keras.optimizers.Adam(learning_rate=lr)
    if name == "SGD":
        return keras.optimizers.SGD(learning_rate=lr, momentum=momentum)
    raise ValueError(f"unknown optimizer {name!r}: choose one of {', '.join(OPTIMIZERS)}")


def _keep_previous(path: Path, folder: OutputFolder, log: Callable[[str], None]) -> None:
    """A finished earlier run's checkpoint (this job's, see `train_outputs`) is renamed with its date,
    never overwritten; the new name is recorded in the folder's manifest."""
    if path.exists():
        stamp = datetime.fromtimestamp(path.stat().st_mtime).strftime("%Y%m%d-%H%M%S")
        kept = path.with_name(f"{path.stem}.{stamp}{path.suffix}")
        n = 1
        while kept.exists() or kept.is_symlink():
            kept = path.with_name(f"{path.stem}.{stamp}-{n}{path.suffix}")
            n += 1
        folder.record(kept.name)
        path.rename(kept)
        log(f"kept the previous checkpoint as {kept}")


def train_outputs(cfg: TrainConfig, root: Path) -> tuple[OutputFolder, OutputFolder]:
    """The checked output folders of a training run, before any work: (results, checkpoints).

    --out-dir and --checkpoint-dir stay apart from the data set; OUT_DIR/<stem>.json and
    CHECKPOINT_DIR/<stem>.keras are new or this job's (its run manifests), and the backup folder
    CHECKPOINT_DIR/<stem>.resume holds nothing else (cams.training.resume.check_backup).

    Args:
        cfg: the run's settings.
        root: the data set folder.

    Returns:
        The OutputFolder of --out-dir and of --checkpoint-dir (the same object when they are one folder).

    Raises:
        ValueError: one line naming the path in the way and the option to change.
    """
    from cams.training.resume import check_backup

    stem = run_stem(root.name, cfg.model, cfg.optimizer)
    job, command = f"train.{stem}", "deepfake-xai train"
    check_apart(cfg.out_dir, {"--dataset": [root]}, "--out-dir")
    check_apart(cfg.checkpoint_dir, {"--dataset": [root]}, "--checkpoint-dir")
    results = OutputFolder(cfg.out_dir, job, command, cfg.fingerprint(), option="--out-dir")
    same = os.path.abspath(cfg.out_dir) == os.path.abspath(cfg.checkpoint_dir)
    checkpoints = results if same else OutputFolder(cfg.checkpoint_dir, job, command, cfg.fingerprint(),
                                                    option="--checkpoint-dir")
    results.claim([f"{stem}.json"])
    checkpoints.claim([f"{stem}.keras"])
    check_backup(checkpoints.path(f"{stem}.resume"), hint="choose another --checkpoint-dir")
    return results, checkpoints


def train(cfg: TrainConfig, log: Callable[[str], None] = print) -> TrainOutputs:
    """Train `cfg.model` on `cfg.dataset`; append the run to the JSON; keep the best-val checkpoint.

    Every output is checked before any work (`train_outputs`): files of another origin are never
    replaced or changed, and a saved run with other settings stops with one line naming its backup
    folder and --restart (`cfg.restart` discards the job's own backup files and starts over).

    Args:
        cfg: the run's settings.
        log: where progress lines go.

    Returns:
        The JSON and checkpoint paths, the run record and the RunState.
    """
    cfg.validate()
    root = ddata.resolve_dataset(cfg.dataset, cfg.data_root)
    ddata.check_layout(root)
    results, checkpoints = train_outputs(cfg, root)  # before any work
    set_seed(cfg.seed)
    if cfg.seed is not None:  # same seed -> same weights and history on a CPU (TF op determinism)
        set_op_determinism(True)
    try:
        return _train(cfg, root, results, checkpoints, log)
    finally:  # explainers run later in this process may draw unseeded noise, refused under it
        if cfg.seed is not None:
            set_op_determinism(False)


def _train(cfg: TrainConfig, root: Path, results: OutputFolder, checkpoints: OutputFolder,
           log: Callable[[str], None]) -> TrainOutputs:
    """The training run of `train`, once the outputs are checked and the seed set."""
    import keras

    name = root.name
    policy = set_mixed_precision(cfg.mixed_precision)
    strategy = make_strategy(cfg.strategy)
    (train_ds, val_ds, test_ds), (train_files, val_files, test_files) = _load_splits(root, cfg, log)

    with strategy.scope():  # variables are created (and mirrored) under the strategy
        model = build_model(cfg.model, cfg.image_size, cfg.resolved_weights())
        model.compile(optimizer=make_optimizer(cfg.optimizer, cfg.lr, cfg.momentum),
                      loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True), metrics=["accuracy"])
    log(describe_params(model))

    stem = run_stem(name, cfg.model, cfg.optimizer)
    json_path = Path(cfg.out_dir) / f"{stem}.json"
    ckpt = Path(cfg.checkpoint_dir) / f"{stem}.keras"
    backup_dir = Path(cfg.checkpoint_dir) / f"{stem}.resume"  # keras.callbacks.BackupAndRestore's folder
    run_id = uuid.uuid4().hex[:12]
    started = datetime.now(timezone.utc).isoformat(timespec="seconds")
    write_record = _record_writer(cfg, name, root, ckpt, policy, (train_files, val_files, test_files), json_path)
    # test metrics each epoch, best-val_accuracy ModelCheckpoint, the JSON record, BackupAndRestore
    callbacks, state = resumable(backup_dir, cfg.epochs, fingerprint=cfg.fingerprint(),
                                 extra={"run_id": run_id, "started": started}, best_path=ckpt,
                                 extra_eval={"test": test_ds}, on_update=lambda s: write_record(s, "running"), log=log,
                                 restart=cfg.restart or not cfg.resume, restart_option="--restart",
                                 hint="choose another --checkpoint-dir")
    if cfg.explain_every:
        callbacks.append(explain_watcher(Path(cfg.out_dir) / stem, test_ds, cfg.explain_every, log))
    if not state.history:  # a new run: an earlier finished run's checkpoint is kept under another name
        _keep_previous(ckpt, checkpoints, log)
    results.record(json_path.name)  # listed before they are written: a killed run's files are still its own
    checkpoints.record(ckpt.name)

    log(f"training {cfg.model} on {root} for {cfg.epochs} epochs ({cfg.optimizer}, lr {cfg.lr}, "
        f"batch {cfg.batch_size}, {cfg.image_size}x{cfg.image_size}, {policy}, "
        f"{strategy.num_replicas_in_sync} replica(s)); "
        f"JSON {json_path}, checkpoint {ckpt}")
    t0 = time.time()
    with strategy.scope():
        model.fit(train_ds, epochs=cfg.epochs, validation_data=val_ds, callbacks=callbacks, verbose=cfg.verbose)
    record = write_record(state, "complete")
    best = state.best("val_accuracy")[0]
    if best:
        log(f"done in {time.time() - t0:.0f} s: best validation accuracy {record['val_acc'][best - 1]:.2f}% "
            f"at epoch {best}, test accuracy there {record['test_acc'][best - 1]:.2f}%")
    log(f"wrote {json_path} (run {record['run_id']}) and {ckpt}")
    return TrainOutputs(json_path, ckpt, record, state)


def explain_watcher(base: Path, test_ds, every: int, log: Callable[[str], None]):
    """Grad-CAM of the first 4 test images every `every` epochs: PNGs and maps.gif in <base>.explain/,
    TensorBoard images in <base>.tensorboard/ (`cams.callbacks.ExplainEpoch`)."""
    import numpy as np

    from cams.callbacks import ExplainEpoch

    images = np.concatenate([x.numpy() for x, _ in test_ds.take(2)])[:4]
    out, logs = base.with_name(base.name + ".explain"), base.with_name(base.name + ".tensorboard")
    log(f"every {every} epoch(s): Grad-CAM of {len(images)} test images into {out} and {logs}")
    return ExplainEpoch(images, methods=("gradcam",), log_dir=logs, out=out, every=every)


def _load_splits(root: Path, cfg: TrainConfig, log: Callable[[str], None]):
    """The train, val and test pipelines and their files; one line of counts each."""
    loaded = [ddata.load_split(root, "train", cfg.image_size, cfg.batch_size, training=True, seed=cfg.seed),
              ddata.load_split(root, "val", cfg.image_size, cfg.batch_size),
              ddata.load_split(root, "test", cfg.image_size, cfg.batch_size)]
    for _, f in loaded:
        log(f"{f.split}: {len(f.paths)} images ({f.count(0)} real, {f.count(1)} fake, fake:real "
            f"{ddata.fake_to_real(f.count(1), f.count(0))})" + (f", {len(f.skipped)} skipped" if f.skipped else ""))
    return tuple(d for d, _ in loaded), tuple(f for _, f in loaded)


def _record_writer(cfg: TrainConfig, name: str, root: Path, ckpt: Path, policy: str, splits, json_path: Path):
    """write_record(state, status): the run's record (the report's JSON format) upserted into json_path."""
    optimizer = optimizer_record(cfg.optimizer, cfg.lr, cfg.momentum)
    info = dict(batch_size=cfg.batch_size, epochs=cfg.epochs, image_size=cfg.image_size,
                weights=cfg.resolved_weights(), precision=policy, seed=cfg.seed,
                data_dir=str(root), checkpoint=str(ckpt),
                counts={f.split: {"real": f.count(0), "fake": f.count(1)} for f in splits})

    def write_record(state: RunState, status: str) -> dict:
        record = run_record(cfg.model, name, optimizer, state.history, run_id=state.extra["run_id"], status=status,
                            started=state.extra["started"], best_epoch=state.best("val_accuracy")[0], **info)
        upsert_json_record(json_path, record, key="run_id")
        return record

    return write_record


def config_dict(cfg: TrainConfig) -> dict:
    """The config as a plain dict (for logs and tests)."""
    return asdict(cfg)
