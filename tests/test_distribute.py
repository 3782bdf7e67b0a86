"""tf.distribute: training under MirroredStrategy on two logical CPU devices gives the same
metrics as a single-device run (the CPU is split in a fresh process, before TF initialises)."""
import json
import subprocess
import sys
import textwrap

import pytest

SPLIT_CPU = """
import json, sys, tensorflow as tf
cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
"""

DEEPFAKE = """
import deepfake_xai.data as ddata
_load = ddata.load_split
ddata.load_split = lambda *a, training=False, **k: _load(*a, training=False, **k)  # no random augmentation
from deepfake_xai.make_dataset import generate_dataset
from deepfake_xai.train import TrainConfig, train
root = sys.argv[1]
generate_dataset(root, "tiny", 64, {"train": 16, "val": 8, "test": 8}, progress=False, log=lambda s: None)
out = {}
for strategy in ("default", "mirrored"):
    cfg = TrainConfig(dataset="tiny", data_root=root, model="SimpleNet", image_size=64, epochs=2, batch_size=8,
                      lr=1e-3, strategy=strategy, out_dir=f"{root}/out-{strategy}",
                      checkpoint_dir=f"{root}/ck-{strategy}", verbose=0)
    res = train(cfg, log=lambda s: None)
    out[strategy] = {k: res.record[k] for k in ("train_loss", "val_loss", "test_loss", "test_acc")}
    out[strategy]["replicas"] = tf.distribute.get_strategy().num_replicas_in_sync
import cams.training
out["mirrored_replicas"] = cams.training.make_strategy("mirrored").num_replicas_in_sync
print("RESULT " + json.dumps(out))
"""


BENGALI = """
from bengali_xai.synthetic import make_synthetic
from bengali_xai.train import train_cnn
data = make_synthetic(1500, seed=0)
out = {}
for strategy in ("default", "mirrored"):
    r = train_cnn(data, f"{sys.argv[1]}/{strategy}", epochs=3, batch_size=100, seed=0, strategy=strategy, verbose=0)
    out[strategy] = {k: r[k] for k in ("test_accuracy", "test_loss")}
import cams.training
out["mirrored_replicas"] = cams.training.make_strategy("mirrored").num_replicas_in_sync
print("RESULT " + json.dumps(out))
"""


def _run(body: str, tmp_path) -> dict:
    script = tmp_path / "run.py"
    script.write_text(SPLIT_CPU + textwrap.dedent(body))
    proc = subprocess.run([sys.executable, str(script), str(tmp_path / "data")], capture_output=True, text=True,
                          timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    line = [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")][-1]
    return json.loads(line[len("RESULT "):])


def test_deepfake_mirrored_matches_single_device(tmp_path):
    out = _run(DEEPFAKE, tmp_path)
    assert out["mirrored_replicas"] == 2
    one, two = out["default"], out["mirrored"]
    for key in ("train_loss", "val_loss", "test_loss"):
        assert two[key] == pytest.approx(one[key], rel=1e-3, abs=1e-4), key
    assert two["test_acc"] == pytest.approx(one["test_acc"], abs=1e-6)


def test_bengali_mirrored_learns_like_single_device(tmp_path):
    """The CNN has Dropout, whose masks are drawn per replica, so the runs are not bit-identical;
    both must learn the digits (held-out fonts) to the same level."""
    out = _run(BENGALI, tmp_path)
    assert out["mirrored_replicas"] == 2
    one, two = out["default"], out["mirrored"]
    assert one["test_accuracy"] > 0.6 and two["test_accuracy"] > 0.6
    assert abs(two["test_accuracy"] - one["test_accuracy"]) < 0.08
    assert two["test_loss"] == pytest.approx(one["test_loss"], rel=0.35)
