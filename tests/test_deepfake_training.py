"""Training: cams.training resume helpers (BackupAndRestore + RunState), the report's JSON, the report's command verbatim."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import keras
import numpy as np
import pytest

import cams.training as ct
from deepfake_xai.cli import build_parser, main
from deepfake_xai.history_json import SERIES, read_runs
from deepfake_xai.make_dataset import generate_dataset
from deepfake_xai.train import TrainConfig, train

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    root = tmp_path_factory.mktemp("df_train") / "data"
    generate_dataset(root, "fakes_dataset", 64, {"train": 12, "val": 6, "test": 6}, progress=False,
                     log=lambda s: None)
    return root


# ----------------------------------------------------------------------------- cams.training helpers

def _toy_model():
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3, activation="relu"), keras.layers.Dense(2)])
    model.compile(optimizer=keras.optimizers.Adam(0.01),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True), metrics=["accuracy"])
    return model


def _toy_data():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(32, 4)).astype(np.float32)
    y = (x[:, 0] > 0).astype(np.int32)
    return x, y


class _Count(keras.callbacks.Callback):
    def __init__(self, stop_after=None):
        super().__init__()
        self.epochs, self.stop_after = [], stop_after

    def on_epoch_end(self, epoch, logs=None):
        self.epochs.append(epoch)
        if self.stop_after is not None and len(self.epochs) == self.stop_after:
            raise KeyboardInterrupt


def test_resumable_continues_after_an_interruption_with_history_and_best_threshold(tmp_path):
    import tensorflow as tf

    x, y = _toy_data()
    ds = tf.data.Dataset.from_tensor_slices((x, y)).batch(8)
    backup, best = tmp_path / "backup", tmp_path / "best.keras"
    model = _toy_model()
    callbacks, state = ct.resumable(backup, 5, fingerprint={"lr": 0.01}, best_path=best, extra_eval={"test": ds},
                                    log=None)
    with pytest.raises(KeyboardInterrupt):
        model.fit(ds, epochs=5, validation_data=ds, callbacks=[*callbacks, _Count(stop_after=2)], verbose=0)
    saved = json.loads((backup / "run_state.json").read_text())
    assert len(saved["history"]["loss"]) == 2 and "test_accuracy" in saved["history"] and best.is_file()

    fresh = _toy_model()  # a new process would build a new model
    logs, counter = [], _Count()
    callbacks, state = ct.resumable(backup, 5, fingerprint={"lr": 0.01}, best_path=best, extra_eval={"test": ds},
                                    log=logs.append)
    checkpoint = next(c for c in callbacks if isinstance(c, ct.AtomicModelCheckpoint))
    assert checkpoint.best == max(saved["history"]["val_accuracy"])  # the earlier epochs' best is the threshold
    fresh.fit(ds, epochs=5, validation_data=ds, callbacks=[*callbacks, counter], verbose=0)
    assert counter.epochs == [2, 3, 4]        # only the remaining epochs ran
    assert len(state.history["loss"]) == 5 and state.history["loss"][:2] == saved["history"]["loss"]
    assert any("resuming" in m and "2 of 5" in m for m in logs)
    assert not backup.exists()                # Keras removes the backup once all epochs are done
    assert int(fresh.optimizer.iterations.numpy()) == 5 * 4  # the optimizer state came back too
    epoch, value = state.best("val_accuracy")
    assert value == max(state.history["val_accuracy"]) and state.history["val_accuracy"][epoch - 1] == value


def test_resumable_refuses_a_backup_with_other_settings_until_restart(tmp_path):
    """The rule since 'nothing the user has is lost': a backup made with other settings stops the run with
    one line (it was discarded silently before); restart=True removes only the job's own files."""
    import tensorflow as tf

    x, y = _toy_data()
    data = tf.data.Dataset.from_tensor_slices((x, y)).batch(8)
    callbacks, _ = ct.resumable(tmp_path / "s", 3, fingerprint={"lr": 1}, log=None)
    with pytest.raises(KeyboardInterrupt):
        _toy_model().fit(data, epochs=3, callbacks=[*callbacks, _Count(stop_after=1)], verbose=0)
    assert (tmp_path / "s" / "run_state.json").is_file()
    (tmp_path / "s" / "notes.txt").write_text("mine")  # a user file put into the backup folder later
    with pytest.raises(ValueError, match=r"s holds an interrupted run with other settings \(lr: 1 -> 2\).*--restart"):
        ct.resumable(tmp_path / "s", 3, fingerprint={"lr": 2}, log=None)
    logs, counter = [], _Count()
    callbacks, state = ct.resumable(tmp_path / "s", 3, fingerprint={"lr": 2}, log=logs.append, restart=True)
    _toy_model().fit(data, epochs=3, callbacks=[*callbacks, counter], verbose=0)
    assert counter.epochs == [0, 1, 2] and len(state.history["loss"]) == 3
    assert any("discarded" in m for m in logs)
    assert sorted(p.name for p in (tmp_path / "s").iterdir()) == ["notes.txt"]  # only the job's files went
    assert (tmp_path / "s" / "notes.txt").read_text() == "mine"


def test_upsert_json_record(tmp_path):
    path = tmp_path / "runs.json"
    ct.upsert_json_record(path, {"run_id": "a", "v": 1})
    ct.upsert_json_record(path, {"run_id": "b", "v": 2})
    ct.upsert_json_record(path, {"run_id": "a", "v": 3})
    assert json.loads(path.read_text()) == [{"run_id": "a", "v": 3}, {"run_id": "b", "v": 2}]
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(ValueError, match=str(bad)):
        ct.upsert_json_record(bad, {"run_id": "c"})
    assert bad.read_text() == "{not json"  # never overwritten


# ----------------------------------------------------------------------------- deepfake training

def test_seed_command_verbatim_via_script(tiny):
    """`python scripts/train_main.py -d fakes_dataset -m SimpleNet -lr 0.001 -b 32 -e 5 -o Adam`."""
    cwd = tiny.parent
    env = dict(os.environ, PYTHONPATH=str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    cmd = [sys.executable, str(REPO / "scripts" / "train_main.py"), "-d", "fakes_dataset", "-m", "SimpleNet",
           "-lr", "0.001", "-b", "32", "-e", "5", "-o", "Adam"]
    proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    runs = read_runs(cwd / "out" / "fakes_dataset_SimpleNet_Adam.json")
    assert len(runs) == 1
    run = runs[0]
    assert run["model"] == "SimpleNet" and run["dataset"] == "fakes_dataset"
    assert run["optimizer"] == {"name": "Adam", "params": {"lr": 0.001}}
    assert run["image_size"] == 256
    for key in SERIES:
        assert len(run[key]) == 5
    for key in ("train_acc", "val_acc", "test_acc"):
        assert all(0.0 <= v <= 100.0 for v in run[key])
    # accuracies are percentages of whole images: test has 6 images
    assert all(abs(v * 6 / 100 - round(v * 6 / 100)) < 1e-3 for v in run["test_acc"])
    assert (cwd / "checkpoints" / "fakes_dataset_SimpleNet_Adam.keras").is_file()
    assert not (cwd / "checkpoints" / "fakes_dataset_SimpleNet_Adam.resume").exists()


def test_runs_append_sgd_momentum_and_checkpoint_kept(tiny, tmp_path):
    common = ["-d", "fakes_dataset", "--data-root", str(tiny), "--image-size", "64", "-e", "1", "-b", "8",
              "--out-dir", str(tmp_path / "out"), "--checkpoint-dir", str(tmp_path / "ck"), "-v", "0"]
    assert main(["train", "-o", "SGD", "--lr", "0.01", "--momentum", "0.5", *common]) == 0
    assert main(["train", "-o", "SGD", "-lr", "0.02", "--momentum", "0.5", *common]) == 0
    runs = read_runs(tmp_path / "out" / "fakes_dataset_SimpleNet_SGD.json")
    assert [r["optimizer"] for r in runs] == [{"name": "SGD", "params": {"lr": 0.01, "momentum": 0.5}},
                                               {"name": "SGD", "params": {"lr": 0.02, "momentum": 0.5}}]
    assert runs[0]["run_id"] != runs[1]["run_id"] and all(r["status"] == "complete" for r in runs)
    ckpts = sorted(p.name for p in (tmp_path / "ck").glob("*.keras"))
    assert "fakes_dataset_SimpleNet_SGD.keras" in ckpts and len(ckpts) == 2  # the first run's was renamed


def test_train_resumes_after_interruption(tiny, tmp_path, monkeypatch):
    cfg = TrainConfig(dataset="fakes_dataset", data_root=str(tiny), image_size=64, epochs=3, batch_size=8,
                      out_dir=str(tmp_path / "out"), checkpoint_dir=str(tmp_path / "ck"), verbose=0)
    original = keras.callbacks.BackupAndRestore.on_epoch_end
    calls = {"n": 0}

    def interrupt_after_first(self, epoch, logs=None):  # Ctrl-C once epoch 1 is backed up
        original(self, epoch, logs)
        calls["n"] += 1
        if calls["n"] == 1:
            raise KeyboardInterrupt

    monkeypatch.setattr(keras.callbacks.BackupAndRestore, "on_epoch_end", interrupt_after_first)
    with pytest.raises(KeyboardInterrupt):
        train(cfg, log=lambda s: None)
    partial = read_runs(tmp_path / "out" / "fakes_dataset_SimpleNet_Adam.json")
    assert len(partial) == 1 and partial[0]["status"] == "running" and len(partial[0]["val_acc"]) == 1
    logs = []
    out = train(cfg, log=logs.append)
    assert any("resuming" in m and "1 of 3" in m for m in logs)
    assert calls["n"] == 3
    runs = read_runs(out.json_path)
    assert len(runs) == 1 and runs[0]["run_id"] == partial[0]["run_id"]  # same run, completed
    assert runs[0]["status"] == "complete" and len(runs[0]["val_acc"]) == 3
    assert runs[0]["val_acc"][0] == partial[0]["val_acc"][0]


def test_pipelines_keep_their_length_for_the_progress_bar(tiny):
    """Keras shows each epoch's steps and ETA only when the dataset's cardinality is known."""
    from deepfake_xai import data as ddata

    for split, training in (("train", True), ("val", False)):
        ds, files = ddata.load_split(tiny / "fakes_dataset", split, 64, 5, training=training, quiet=True)
        assert int(ds.cardinality()) == -(-len(files.paths) // 5) > 0


def test_train_mixed_precision_runs(tiny, tmp_path):
    cfg = TrainConfig(dataset=str(tiny / "fakes_dataset"), image_size=64, epochs=1, batch_size=8,
                      mixed_precision=True, out_dir=str(tmp_path / "out"), checkpoint_dir=str(tmp_path / "ck"),
                      verbose=0)
    try:
        out = train(cfg, log=lambda s: None)
    finally:
        ct.set_mixed_precision(False)
    assert out.record["precision"].startswith("mixed_")
    assert np.isfinite(out.record["train_loss"][0])


def test_cli_flags_and_bad_values(capsys):
    a = build_parser().parse_args(["train", "-d", "x", "-lr", "0.5"])
    b = build_parser().parse_args(["train", "-d", "x", "--lr", "0.5"])
    assert a.lr == b.lr == 0.5
    rc = main(["train", "-d", "x", "-e", "0"])
    assert rc == 2 and "--epochs must be positive" in capsys.readouterr().err
    assert main(["train", "-d", "x", "-o", "RMSprop"]) == 2
    assert "invalid choice" in capsys.readouterr().err


def test_the_same_seed_trains_the_same_weights_on_a_cpu(tiny, tmp_path):
    def run(name, seed):
        cfg = TrainConfig(dataset="fakes_dataset", data_root=str(tiny), image_size=64, epochs=2, batch_size=8,
                          seed=seed, out_dir=str(tmp_path / name / "out"), checkpoint_dir=str(tmp_path / name / "ck"),
                          verbose=0)
        out = train(cfg, log=lambda s: None)
        return keras.models.load_model(out.checkpoint).get_weights(), out

    first, a = run("a", 0)
    second, b = run("b", 0)
    other, _ = run("c", 1)
    assert all(np.array_equal(u, v) for u, v in zip(first, second))  # bit for bit (op determinism)
    assert a.state.history == b.state.history  # the same losses and accuracies, epoch by epoch
    assert not all(np.array_equal(u, v) for u, v in zip(first, other))
