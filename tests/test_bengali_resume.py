"""bengali-xai train resumes through keras.callbacks.BackupAndRestore: a run killed with SIGKILL in
the middle of an epoch and rerun with the same command loses at most that epoch."""
import json
import signal
import subprocess
import sys
import textwrap

ARGV = ["train", "--data", "synthetic", "--max-samples", "300", "--seed", "1", "--epochs", "2",
        "--batch-size", "32"]

# the same command as a user runs, with SIGKILL sent to itself after batch 1 of the second epoch
KILLED = """
import os, signal, sys
import keras
_fit = keras.Model.fit

class Kill(keras.callbacks.Callback):
    def on_epoch_begin(self, epoch, logs=None):
        self.epoch = epoch
    def on_train_batch_end(self, batch, logs=None):
        if self.epoch == 1 and batch == 1:
            os.kill(os.getpid(), signal.SIGKILL)

def fit(self, *args, callbacks=None, **kwargs):
    return _fit(self, *args, callbacks=[*(callbacks or []), Kill()], **kwargs)

keras.Model.fit = fit
from bengali_xai.cli import main
sys.exit(main(sys.argv[1:]))
"""

PLAIN = "import sys\nfrom bengali_xai.cli import main\nsys.exit(main(sys.argv[1:]))\n"


def _run(tmp_path, body, out):
    script = tmp_path / "run.py"
    script.write_text(textwrap.dedent(body))
    return subprocess.run([sys.executable, str(script), *ARGV, "--out", str(out)], capture_output=True, text=True,
                          timeout=600)


def test_sigkill_mid_epoch_then_the_same_command_resumes(tmp_path):
    out = tmp_path / "run"
    killed = _run(tmp_path, KILLED, out)
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-2000:]
    state = json.loads((out / ".resume" / "run_state.json").read_text())
    assert len(state["history"]["loss"]) == 1 and not (out / "model.keras").exists()
    resumed = _run(tmp_path, PLAIN, out)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert "resuming an interrupted run" in resumed.stdout and "1 of 2 epochs done" in resumed.stdout
    history = json.loads((out / "history.json").read_text())
    assert len(history["loss"]) == len(history["val_accuracy"]) == 2
    assert history["loss"][0] == state["history"]["loss"][0]  # epoch 1 was not trained again
    assert (out / "model.keras").is_file() and not (out / ".resume").exists()
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["epochs"] == 2 and 0.0 <= metrics["test_accuracy"] <= 1.0
