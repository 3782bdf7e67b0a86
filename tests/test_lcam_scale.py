"""L-CAM training at scale: MirroredStrategy on 2 logical CPUs equals one device; a run killed
with SIGKILL mid-epoch and rerun ends where an uninterrupted run ends; ImageNet-layout folders
streamed by tf.data; mixed precision."""
import json
import signal
import subprocess
import sys
import textwrap

import keras
import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

import cams
from cams.cli import main
from cams.methods.lcam import data
from cams_models import conv_gap_dense, images

TRAIN = """
import json, os, signal, sys
import keras, numpy as np, tensorflow as tf
sys.path.insert(0, {tests!r})
import cams
from cams.methods.lcam import NpzCheckpoint
from cams_models import conv_gap_dense, images
keras.utils.set_random_seed(0)
model = conv_gap_dense(size=16, softmax=True)
x = images(24, size=16, seed=1)
"""

MIRRORED = """
import tensorflow as tf
cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
""" + TRAIN + """
out = {{}}
for strategy in ("default", "mirrored"):
    lc = cams.LCAM.train(model, x, mode=sys.argv[1], epochs=2, batch_size=8, learning_rate=0.5, seed=3,
                         strategy=strategy, verbose=0)
    out[strategy] = {{"kernel": lc.kernel.numpy().tolist(), "bias": lc.bias.numpy().tolist(),
                     "loss": lc.history["loss"], "replicas": lc.settings["replicas"]}}
print("RESULT " + json.dumps(out))
"""

KILLABLE = TRAIN + """
class KillMidEpoch(keras.callbacks.Callback):
    def on_train_batch_end(self, batch, logs=None):
        if self.epoch == 2 and batch == 1:  # in the middle of the third epoch
            os.kill(os.getpid(), signal.SIGKILL)
    def on_epoch_begin(self, epoch, logs=None):
        self.epoch = epoch
out = sys.argv[1]
cbs = [keras.callbacks.BackupAndRestore(out + "/backup"), NpzCheckpoint(out + "/lcam.npz")]
if sys.argv[2] == "kill":
    cbs.append(KillMidEpoch())
lc = cams.LCAM.train(model, x, mode="fm", epochs=4, batch_size=6, learning_rate=0.5, seed=3, verbose=0,
                     callbacks=cbs, history_path=out + "/backup/history.json")
lc.save(out + "/final.npz")
"""


def _script(tmp_path, body):
    path = tmp_path / "run.py"
    path.write_text(textwrap.dedent(body.format(tests=str(__import__("pathlib").Path(__file__).parent))))
    return path


@pytest.mark.parametrize("mode", ["img"])
def test_mirrored_strategy_on_two_cpus_equals_one_device(tmp_path, mode):
    proc = subprocess.run([sys.executable, str(_script(tmp_path, MIRRORED)), mode], capture_output=True, text=True,
                          timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = json.loads([ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")][-1][7:])
    one, two = out["default"], out["mirrored"]
    assert one["replicas"] == 1 and two["replicas"] == 2
    moved = np.abs(np.array(one["kernel"])).max()
    assert moved > 0
    np.testing.assert_allclose(two["kernel"], one["kernel"], rtol=0, atol=1e-5)
    np.testing.assert_allclose(two["bias"], one["bias"], rtol=0, atol=1e-5)
    np.testing.assert_allclose(two["loss"], one["loss"], rtol=1e-5)


def test_sigkill_mid_epoch_then_rerun_ends_like_an_uninterrupted_run(tmp_path):
    script = _script(tmp_path, KILLABLE)
    run = lambda out, how: subprocess.run([sys.executable, str(script), str(out), how], capture_output=True,
                                          text=True, timeout=600)
    killed = run(tmp_path / "a", "kill")
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-2000:]
    saved = cams.LCAM.read_meta(tmp_path / "a" / "lcam.npz")  # the checkpoint of the last finished epoch
    assert len(saved["history"]["loss"]) == 2 and (tmp_path / "a" / "backup").is_dir()
    resumed = run(tmp_path / "a", "rerun")
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert not (tmp_path / "a" / "backup").exists()  # removed when training ends
    straight = run(tmp_path / "b", "straight")
    assert straight.returncode == 0, straight.stderr[-2000:]
    a, b = (cams.LCAM.read_meta(tmp_path / d / "final.npz") for d in ("a", "b"))
    np.testing.assert_allclose(a["_arrays"]["kernel"], b["_arrays"]["kernel"], rtol=0, atol=1e-6)
    np.testing.assert_allclose(a["_arrays"]["bias"], b["_arrays"]["bias"], rtol=0, atol=1e-6)
    assert a["history"]["lr"] == pytest.approx(b["history"]["lr"]) and len(a["history"]["lr"]) == 4
    np.testing.assert_allclose(a["history"]["loss"], b["history"]["loss"], rtol=1e-5)


@pytest.fixture
def imagenet_folder(tmp_path):
    """Two class folders named like ImageNet's, in the opposite order to the class index."""
    for wnid, value in (("n02", 200), ("n01", 50)):
        (tmp_path / "train" / wnid).mkdir(parents=True)
        for i in range(3):
            Image.fromarray(np.full((24, 40, 3), value, np.uint8)).save(tmp_path / "train" / wnid / f"{i}.JPEG")
    (tmp_path / "index.json").write_text(json.dumps({"0": ["n02", "goose"], "1": ["n01", "tench"]}))
    return tmp_path


def test_class_index_labels_and_the_streamed_epochs(imagenet_folder):
    root = imagenet_folder
    assert data.read_class_index(root / "index.json") == ["n02", "n01"]
    assert data.class_folders([root / "train"]) == ["n01", "n02"]
    paths, labels = data.list_files([root / "train"], data.read_class_index(root / "index.json"))
    assert [p.decode().split("/")[-2] for p in paths] == ["n01"] * 3 + ["n02"] * 3
    assert labels.tolist() == [1, 1, 1, 0, 0, 0]
    stream = data.image_dataset(paths, np.arange(6, dtype=np.int32), (16, 16), 3, 4, scale=0.5, offset=-1.0)
    passes = [[], []]
    for i, (x, y) in enumerate(stream.take(4)):  # 2 passes of ceil(6 / 4) = 2 batches
        assert x.shape[1:] == (16, 16, 3)
        passes[i // 2] += y.numpy().tolist()
        expected = np.where(y.numpy() < 3, 50, 200) * 0.5 - 1.0  # uniform images: crop keeps the value
        np.testing.assert_allclose(x.numpy().mean(axis=(1, 2, 3)), expected, atol=1e-3)
    assert sorted(passes[0]) == sorted(passes[1]) == list(range(6))


def test_cli_trains_on_an_imagenet_folder_with_a_class_index(imagenet_folder, capsys):
    root = imagenet_folder
    keras.utils.set_random_seed(0)
    conv_gap_dense(size=16, classes=2, softmax=True).save(root / "m.keras")
    argv = ["lcam-train", "--model", str(root / "m.keras"), "--images", str(root / "train"), "--labels", "dataset",
            "--class-index", str(root / "index.json"), "--epochs", "2", "--batch-size", "2", "--max-images", "4",
            "--steps-per-epoch", "3", "--mode", "fm", "--out", str(root / "l.npz"), "-q"]
    assert main(argv) == 0, capsys.readouterr().err
    assert "on 4 images" in capsys.readouterr().out
    meta = cams.LCAM.read_meta(root / "l.npz")
    assert meta["history"]["images"] == [6, 6] and meta["settings"]["steps_per_epoch"] == 3
    csv = (root / "l.csv").read_text().splitlines()
    assert csv[0].split(",")[0] == "epoch" and len(csv) == 3 and "images/s" in csv[0]
    assert not (root / "l.backup").exists()


def test_mixed_float16_keeps_float32_attention_logits_and_loss():
    keras.mixed_precision.set_global_policy("mixed_float16")
    try:
        model = conv_gap_dense(size=16, softmax=True)
        x = images(6, size=16)
        lc = cams.LCAM.train(model, x, mode="fm", epochs=1, batch_size=6, verbose=0)
        A, _ = cams.core.model_graph.forward(model, tf.constant(x), lc.layer)
        assert A.dtype == tf.float16 and lc.attention(A).dtype == tf.float32 and lc.kernel.dtype == "float32"
        assert np.isfinite(lc.history["loss"]).all() and np.isfinite(lc.kernel.numpy()).all()
    finally:
        keras.mixed_precision.set_global_policy("float32")
