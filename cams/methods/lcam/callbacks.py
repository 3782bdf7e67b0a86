"""Keras callbacks for L-CAM training: throughput and learning rate in the logs, the explainer's
per-epoch history (kept across a BackupAndRestore resume), and checkpoints in the .npz format."""
from __future__ import annotations

import time

import keras

from cams.core.run_state import RunState


class ThroughputAndRate(keras.callbacks.Callback):
    """Adds `images/s` (images of this epoch over its wall time) to each batch's and epoch's logs,
    and the epoch's learning rate `lr` to the epoch logs. Put it before the progress bar."""

    def on_epoch_begin(self, epoch, logs=None):
        self._t0 = time.perf_counter()
        self._lr = float(keras.ops.convert_to_numpy(self.model.optimizer.learning_rate))

    def _rate(self, logs):
        if logs is not None and "images" in logs:
            logs["images/s"] = float(logs["images"]) / max(time.perf_counter() - self._t0, 1e-9)

    def on_train_batch_end(self, batch, logs=None):
        self._rate(logs)

    def on_epoch_end(self, epoch, logs=None):
        self._rate(logs)
        if logs is not None:
            logs["lr"] = self._lr


class RecordHistory(RunState):
    """Keeps `lcam.history` = {log key: [one value per epoch]} for all epochs of the training.

    A `cams.core.run_state.RunState` whose history is the explainer's: with `path`, it is written there
    (JSON) after every epoch and read back at the start, so a run resumed by BackupAndRestore keeps
    the epochs done before the interruption.
    """

    def __init__(self, lcam, path=None):
        super().__init__(path)
        self.lcam = lcam

    def on_train_begin(self, logs=None):
        self.restore()
        self.lcam.history = self.history

    def record(self, epoch, logs):
        super().record(epoch, logs)
        if "images" in self.history:
            self.history["images"] = [int(v) for v in self.history["images"]]


class NpzCheckpoint(keras.callbacks.Callback):
    """Saves the explainer (`lcam.save`, the .npz format `LCAM.load` reads) after every epoch.

    Args:
        path: the file; "{epoch}" in it is replaced by the 1-based epoch (one file per epoch),
            otherwise the same file is rewritten (atomically) each epoch.
        lcam: the LCAM being trained (default: the one whose trainer runs this callback).
    """

    def __init__(self, path, lcam=None):
        super().__init__()
        self.lcam, self.path = lcam, str(path)

    def on_epoch_end(self, epoch, logs=None):
        lcam = self.lcam if self.lcam is not None else self.model.frozen.explainer
        lcam.save(self.path.replace("{epoch}", str(epoch + 1)))
