"""The best-model checkpoint survives a kill during its save (cams.training.AtomicModelCheckpoint).

A child process trains a toy model, saves a first best checkpoint, then is killed with SIGKILL
half-way through writing the next one (the save is cut short: the bytes written so far stay on
disk, then the process dies). Keras' own ModelCheckpoint leaves a truncated file that no longer
loads; the atomic one leaves the last complete model, and the partial write only under a
temporary name that the project's clean-up removes.
"""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import zipfile

import pytest

CHILD = textwrap.dedent("""
    import os, signal, sys
    os.environ["TF_CPP_MIN_LOG_LEVEL"] = "3"
    import keras, numpy as np
    from cams.training import AtomicModelCheckpoint

    path, kind = sys.argv[1], sys.argv[2]
    keras.utils.set_random_seed(0)
    x = np.random.default_rng(0).normal(size=(32, 6)).astype("float32")
    y = (x[:, 0] > 0).astype("int32")
    model = keras.Sequential([keras.Input((6,)), keras.layers.Dense(16, activation="relu"), keras.layers.Dense(2)])
    model.compile("adam", keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    cls = AtomicModelCheckpoint if kind == "atomic" else keras.callbacks.ModelCheckpoint
    saves = []
    original = keras.Model.save

    def save_then_die_half_way(self, filepath, *args, **kwargs):
        original(self, filepath, *args, **kwargs)
        saves.append(filepath)
        if len(saves) == 2:  # the second save is cut: half of its bytes reach the disk, then SIGKILL
            size = os.path.getsize(filepath)
            with open(filepath, "r+b") as f:
                f.truncate(size // 2)
            os.kill(os.getpid(), signal.SIGKILL)

    keras.Model.save = save_then_die_half_way
    model.fit(x, y, epochs=5, verbose=0,
              callbacks=[cls(path, monitor="loss", mode="min", save_best_only=True)])
""")


def _run_killed(tmp_path, kind: str):
    path = tmp_path / "best.keras"
    proc = subprocess.run([sys.executable, "-c", CHILD, str(path), kind], capture_output=True, text=True, timeout=300)
    assert proc.returncode == -signal.SIGKILL, proc.stderr[-2000:]
    return path


@pytest.mark.skipif(not hasattr(signal, "SIGKILL"), reason="needs POSIX signals")
def test_a_kill_during_the_save_keeps_the_last_complete_checkpoint(tmp_path):
    import keras

    path = _run_killed(tmp_path, "atomic")
    assert zipfile.is_zipfile(path)
    assert keras.models.load_model(path).output_shape == (None, 2)  # the first best model, whole
    leftovers = [p.name for p in tmp_path.iterdir() if p.name != "best.keras"]
    assert len(leftovers) == 1 and leftovers[0].startswith(".cams-tmp-best.keras.")  # the cut write, aside

    from cams.core.outputs import remove_temporary

    assert remove_temporary([tmp_path]) == 1 and sorted(os.listdir(tmp_path)) == ["best.keras"]


@pytest.mark.skipif(not hasattr(signal, "SIGKILL"), reason="needs POSIX signals")
def test_keras_own_checkpoint_is_left_truncated_by_the_same_kill(tmp_path):
    """The control: the fault this guards against is real (Keras writes onto the file itself)."""
    path = _run_killed(tmp_path, "keras")
    assert path.exists() and not zipfile.is_zipfile(path)


def test_placeholders_in_the_path_are_refused(tmp_path):
    from cams.training import AtomicModelCheckpoint

    with pytest.raises(ValueError, match=r"plain file path, got .*\{epoch\}"):
        AtomicModelCheckpoint(str(tmp_path / "m{epoch}.keras"))
