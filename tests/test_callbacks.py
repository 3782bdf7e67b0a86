"""cams.callbacks.ExplainEpoch: the maps it logs are the model's maps at that epoch, one explanation
pass per logged epoch, TensorBoard summaries and PNGs agree, and it works under a tf.distribute
strategy with mixed precision."""
from pathlib import Path

import keras
import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from cams.callbacks import ExplainEpoch

DOC = Path(__file__).resolve().parents[1] / "docs" / "bad_inputs.md"
CASES = ["callback-no-output", "callback-every-zero", "callback-unknown-method", "callback-user-file",
         "callback-images-wrong-size"]


def tiny_cnn():
    return keras.Sequential([keras.Input((12, 12, 1)), keras.layers.Conv2D(4, 3, activation="relu", name="conv"),
                             keras.layers.Flatten(), keras.layers.Dense(3, activation="softmax", dtype="float32")])


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(0)
    x = rng.random((32, 12, 12, 1)).astype("float32")
    return x, keras.utils.to_categorical(rng.integers(0, 3, 32), 3)


class Fresh(keras.callbacks.Callback):
    """After ExplainEpoch in the list: maps of a newly built Grad-CAM at each epoch's end."""

    def __init__(self, images):
        super().__init__()
        self.images, self.maps = images, {}

    def on_epoch_end(self, epoch, logs=None):
        import cams

        if (epoch + 1) % 2 == 0:
            self.maps[epoch + 1] = cams.GradCAM(self.model)(self.images)


def events(log_dir):
    """[(tag, step, image as uint8 array)] of the image summaries under log_dir."""
    from tensorflow.core.util import event_pb2

    found = []
    for path in sorted(Path(log_dir).rglob("events.out.tfevents.*")):
        for raw in tf.data.TFRecordDataset(str(path)):
            event = event_pb2.Event.FromString(raw.numpy())
            for value in event.summary.value:
                png = value.tensor.string_val[2]  # width, height, then the encoded image
                found.append((value.tag, event.step, tf.io.decode_png(png).numpy()))
    return found


def test_logged_maps_are_the_models_maps_at_that_epoch_one_pass_each(data, tmp_path):
    x, y = data
    model = tiny_cnn()
    model.compile("adam", "categorical_crossentropy")
    cb = ExplainEpoch(x[:3], methods=("gradcam", "gradcam++"), log_dir=tmp_path / "tb", out=tmp_path / "png", every=2)
    passes = {}

    class Count:  # counts the calls of each explainer the callback built
        def __init__(self, name, explainer):
            self.name, self.explainer = name, explainer

        def __call__(self, images, targets=None):
            passes[self.name] = passes.get(self.name, 0) + 1
            return self.explainer(images, targets=targets)

    cb.set_model(model)
    cb._explainers = {n: Count(n, e) for n, e in cb.explainers().items()}
    seen = {}

    class Grab(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            seen[epoch + 1] = cb.maps.get("gradcam")

    fresh = Fresh(x[:3])
    model.fit(x, y, epochs=4, batch_size=16, verbose=0, callbacks=[cb, Grab(), fresh])
    assert passes == {"gradcam": 2, "gradcam++": 2} and cb.calls == 2 and cb.builds == 1
    for epoch in (2, 4):  # the reused explainer follows the weights: same maps as a new one at that epoch
        np.testing.assert_allclose(seen[epoch], fresh.maps[epoch], atol=1e-5)
    assert not np.allclose(fresh.maps[2], fresh.maps[4], atol=1e-3)  # the maps did change between them
    names = sorted(p.name for p in (tmp_path / "png").iterdir())
    assert names == [".cams-run.explain-epoch.json", "epoch_0002.png", "epoch_0004.png", "maps.gif"]
    with Image.open(tmp_path / "png" / "maps.gif") as gif:
        assert gif.n_frames == 2
    logged = events(tmp_path / "tb")
    assert [(tag, step) for tag, step, _ in logged] == [("explanations", 2), ("explanations", 4)]
    for _, step, image in logged:
        on_disk = np.asarray(Image.open(tmp_path / "png" / f"epoch_{step:04d}.png"))
        assert image.shape == on_disk.shape == (18 + 3 * 96, 3 * 96, 3)
        np.testing.assert_array_equal(image, on_disk)


def test_rebuilt_only_for_another_model(data, tmp_path):
    x, _ = data
    cb = ExplainEpoch(x[:2], out=tmp_path)
    first, second = tiny_cnn(), tiny_cnn()
    cb.set_model(first)
    cb.log(1)
    cb.log(2)
    assert cb.builds == 1
    cb.set_model(second)
    cb.log(3)
    assert cb.builds == 2
    import cams

    np.testing.assert_allclose(cb.maps["gradcam"], cams.GradCAM(second)(x[:2]), atol=1e-5)


def test_mirrored_strategy_and_mixed_precision(data, tmp_path):
    from cams.training import make_strategy, set_mixed_precision

    x, y = data
    try:
        set_mixed_precision(True)
        strategy = make_strategy("mirrored")
        with strategy.scope():
            model = tiny_cnn()
            model.compile("adam", "categorical_crossentropy")
        cb = ExplainEpoch(x[:2], methods="gradcam,scorecam", log_dir=tmp_path / "tb")
        with strategy.scope():
            model.fit(x, y, epochs=1, batch_size=16, verbose=0, callbacks=[cb])
    finally:
        set_mixed_precision(False)
    assert model.layers[0].compute_dtype != "float32"  # really trained in mixed precision
    for maps in cb.maps.values():
        assert maps.dtype == np.float32 and maps.shape == (2, 12, 12) and np.isfinite(maps).all()
        assert maps.min() >= 0 and maps.max() <= 1
    assert [step for _, step, _ in events(tmp_path / "tb")] == [1]


def test_bengali_train_explain_every(tmp_path):
    from bengali_xai.cli import main

    out = tmp_path / "run"
    assert main(["train", "--data", "synthetic", "--max-samples", "100", "--epochs", "2", "--batch-size", "50",
                 "--explain-every", "1", "--out", str(out)]) == 0
    assert sorted(p.name for p in (out / "explain_epochs").glob("[!.]*")) == ["epoch_0001.png", "epoch_0002.png",
                                                                             "maps.gif"]
    assert [(tag, step) for tag, step, _ in events(out / "tensorboard")] == [("explanations", 1), ("explanations", 2)]
    grid = np.asarray(Image.open(out / "explain_epochs" / "epoch_0002.png"))
    assert grid.shape == (18 + 6 * 96, 2 * 96, 3)  # 6 digits: the digit, its Grad-CAM overlay


def test_deepfake_train_explain_every(tmp_path):
    from deepfake_xai.cli import build_parser
    from deepfake_xai.train import TrainConfig, explain_watcher

    assert build_parser().parse_args(["train", "-d", "x", "--explain-every", "3"]).explain_every == 3
    with pytest.raises(ValueError, match="--explain-every must be 0 .off. or more, got -1"):
        TrainConfig(explain_every=-1).validate()
    rng = np.random.default_rng(0)
    test_ds = tf.data.Dataset.from_tensor_slices((rng.random((6, 12, 12, 1), np.float32), np.zeros(6))).batch(3)
    cb = explain_watcher(tmp_path / "out" / "fakes_dataset_SimpleNet_Adam", test_ds, 2, log=lambda s: None)
    assert cb.every == 2 and cb.methods == ["gradcam"] and cb.images.shape == (4, 12, 12, 1)
    assert cb.folder.folder == tmp_path / "out" / "fakes_dataset_SimpleNet_Adam.explain"
    assert cb.log_dir == tmp_path / "out" / "fakes_dataset_SimpleNet_Adam.tensorboard"


def test_callback_no_output(data):
    with pytest.raises(ValueError, match="needs log_dir .* or out"):
        ExplainEpoch(data[0][:2])


def test_callback_every_zero(data, tmp_path):
    with pytest.raises(ValueError, match="every must be >= 1, got 0"):
        ExplainEpoch(data[0][:2], out=tmp_path, every=0)


def test_callback_unknown_method(data, tmp_path):
    with pytest.raises(ValueError, match="unknown method 'gradkam'"):
        ExplainEpoch(data[0][:2], methods=("gradkam",), out=tmp_path)


def test_callback_user_file(data, tmp_path):
    (tmp_path / "epoch_0001.png").write_bytes(b"my picture")
    with pytest.raises(ValueError, match="epoch_0001.png exists and was not written by ExplainEpoch"):
        ExplainEpoch(data[0][:2], out=tmp_path)
    assert (tmp_path / "epoch_0001.png").read_bytes() == b"my picture"


def test_callback_images_wrong_size(data, tmp_path):
    x, y = data
    model = tiny_cnn()
    model.compile("adam", "categorical_crossentropy")
    cb = ExplainEpoch(np.zeros((2, 10, 10, 1), np.float32), out=tmp_path)
    with pytest.raises(ValueError, match="ExplainEpoch images are 10x10 but the model expects 12x12"):
        model.fit(x, y, epochs=1, verbose=0, callbacks=[cb])


def test_every_case_is_in_the_table():
    table = DOC.read_text(encoding="utf-8")
    assert [c for c in CASES if f"`{c}`" not in table] == []
