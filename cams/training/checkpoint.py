"""The best-model checkpoint of a training run, written atomically.

`keras.callbacks.ModelCheckpoint` saves straight onto its file: a run killed while it writes leaves
a truncated `.keras` file in place of the last good one. `AtomicModelCheckpoint` writes beside the
file (a name starting with `cams.core.files.TEMP_PREFIX`, removed by the next run's clean-up) and
renames it over the old one only once the save has finished, so the file is always a whole model.
"""
from __future__ import annotations

import os
from pathlib import Path

import keras

from cams.core.files import TEMP_PREFIX


class AtomicModelCheckpoint(keras.callbacks.ModelCheckpoint):
    """`keras.callbacks.ModelCheckpoint` whose file is replaced only by a complete save.

    Same arguments as Keras' callback; `filepath` must be a plain path (no `{epoch}` placeholders),
    ending in `.keras` (whole model) or `.weights.h5` (with `save_weights_only=True`).
    """

    def __init__(self, filepath, *args, **kwargs):
        if "{" in str(filepath):
            raise ValueError(f"AtomicModelCheckpoint needs a plain file path, got {filepath}")
        super().__init__(filepath, *args, **kwargs)

    def _save_model(self, epoch, batch, logs):
        final = Path(self.filepath)
        suffix = ".weights.h5" if final.name.endswith(".weights.h5") else final.suffix
        tmp = final.with_name(f"{TEMP_PREFIX}{final.name}.{os.getpid()}{suffix}")
        self.filepath = str(tmp)
        try:
            super()._save_model(epoch, batch, logs)  # saves to tmp when the monitored value improved
            if tmp.exists():
                os.replace(tmp, final)
        finally:
            self.filepath = str(final)
            if tmp.exists():
                tmp.unlink()
