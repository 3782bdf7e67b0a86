"""cams.LCAM: loss terms against hand-computed values, model splitting, training, inference,
save/load and SavedModel round trips, errors."""
import math

import keras
import numpy as np
import pytest
import tensorflow as tf

import cams
from cams.methods import lcam as L
from cams.core import model_graph
from cams.core.model_graph import forward
from cams_models import conv_flatten_dense, conv_gap_dense, images


# ----------------------------------------------------------------------------- loss terms by hand
def test_area_loss_by_hand():
    m = tf.constant([[[0.0, 1.0], [1.0, 0.0]]])
    expected = (2 * 0.0005 ** 0.3 + 2 * 1.0005 ** 0.3) / 4  # mean((M + 0.0005) ** 0.3)
    assert float(L.area_loss(m)) == pytest.approx(expected, rel=1e-6)
    assert float(L.area_loss(tf.zeros((3, 4, 4)))) == pytest.approx(math.exp(0.3 * math.log(0.0005)), rel=1e-6)


def test_total_variation_by_hand():
    # one 2x2 map [[1, 0], [0, 0]]: vertical diffs 1, horizontal diffs 1,
    # border: first row 1 + first column 1 (last row/column 0) -> 0.3 * 2; total 2.6 / (2 * N)
    m = tf.constant([[[1.0, 0.0], [0.0, 0.0]]])
    assert float(L.total_variation_loss(m)) == pytest.approx(2.6 / 2)
    # a second, all-zero map only doubles the batch size in the normaliser
    assert float(L.total_variation_loss(tf.concat([m, tf.zeros_like(m)], 0))) == pytest.approx(2.6 / 4)
    # all-ones 2x2: no variation; each border row/column sums to 2, four of them (corners twice)
    assert float(L.total_variation_loss(tf.ones((1, 2, 2)))) == pytest.approx(0.3 * 8 / 2)
    # a single 1 in the centre of a 3x3 map: 4 squared differences of 1, no border
    centre = np.zeros((1, 3, 3), np.float32)
    centre[0, 1, 1] = 1.0
    assert float(L.total_variation_loss(tf.constant(centre))) == pytest.approx(4 / 2)


def test_cross_entropy_by_hand():
    logits = tf.constant([[0.0, 0.0], [math.log(3.0), 0.0]])
    labels = tf.constant([0, 0])
    expected = (math.log(2.0) + math.log(4.0 / 3.0)) / 2  # -log(1/2), -log(3/4)
    assert float(L.cross_entropy(logits, labels)) == pytest.approx(expected, rel=1e-6)


def test_full_loss_weights_and_ce_ablation():
    logits = tf.constant([[0.0, 0.0]])
    labels = tf.constant([1])
    m = tf.constant([[[1.0, 0.0], [0.0, 0.0]]])
    full = {k: float(v) for k, v in L.lcam_loss(logits, labels, m, "full").items()}
    ce = math.log(2.0)
    area = (0.0005 ** 0.3 * 3 + 1.0005 ** 0.3) / 4
    tv = 2.6 / 2
    assert full["ce"] == pytest.approx(1.5 * ce, rel=1e-6)
    assert full["area"] == pytest.approx(2 * area, rel=1e-6)
    assert full["tv"] == pytest.approx(0.01 * tv, rel=1e-6)
    assert full["loss"] == pytest.approx(1.5 * ce + 2 * area + 0.01 * tv, rel=1e-6)
    only = {k: float(v) for k, v in L.lcam_loss(logits, labels, m, "ce").items()}
    assert only == pytest.approx({"loss": 1.5 * ce, "ce": 1.5 * ce, "area": 0.0, "tv": 0.0})
    with pytest.raises(ValueError, match="loss must be one of"):
        L.lcam_loss(logits, labels, m, "mse")


def test_learning_rate_schedule_is_x075_per_epoch():
    schedule = L.learning_rate_schedule(0.01, steps_per_epoch=5)
    lrs = [float(schedule(step)) for step in (0, 4, 5, 9, 10, 14)]
    assert lrs == pytest.approx([0.01, 0.01, 0.0075, 0.0075, 0.01 * 0.75 ** 2, 0.01 * 0.75 ** 2])
    opt = L.make_optimizer(0.01, 5)
    assert isinstance(opt, keras.optimizers.SGD) and opt.nesterov and opt.momentum == pytest.approx(0.9)


def test_attention_conv_and_class_selection_by_hand():
    f = tf.constant([[[[1.0, 2.0]]]])  # (1, 1, 1, K=2)
    kernel = tf.constant([[1.0, 0.0, -1.0], [0.5, 1.0, 2.0]])  # (K=2, C=3)
    bias = tf.constant([0.0, 1.0, -2.0])
    c = L.attention_logits(f, kernel, bias)
    np.testing.assert_allclose(c.numpy()[0, 0, 0], [2.0, 3.0, 1.0])
    maps = tf.reshape(tf.range(2 * 2 * 2 * 3, dtype=tf.float32), (2, 2, 2, 3))
    picked = L.select_class(maps, tf.constant([2, 0])).numpy()
    np.testing.assert_array_equal(picked[0], maps.numpy()[0, :, :, 2])
    np.testing.assert_array_equal(picked[1], maps.numpy()[1, :, :, 0])


# ----------------------------------------------------------------------------- model splitting
def test_forward_with_replace_runs_the_head_on_the_replacement():
    model = conv_gap_dense(size=16, softmax=True)
    layer = model_graph.resolve_layer(model, "feat")
    x = tf.constant(images(3, size=16))
    A, logits = model_graph.forward(model, x, layer)
    A2, same = forward(model, x, layer, replace=lambda a: a)
    np.testing.assert_allclose(same.numpy(), logits.numpy(), atol=1e-5)
    np.testing.assert_allclose(A2.numpy(), A.numpy())
    dense = model.get_layer("head")
    w, b = dense.kernel.numpy(), dense.bias.numpy()
    _, zero = forward(model, x, layer, replace=lambda a: 0.0 * a)  # GAP(0) = 0 -> logits = bias
    np.testing.assert_allclose(zero.numpy(), np.tile(b, (3, 1)), atol=1e-6)
    _, double = forward(model, x, layer, replace=lambda a: 2.0 * a)  # linear head: 2 W^T gap(A) + b
    np.testing.assert_allclose(double.numpy(), 2 * A.numpy().mean(axis=(1, 2)) @ w + b, atol=1e-4)


def nested_model(size=16, classes=3):
    """An 'Xception-like' transfer model: a nested conv base, then a Dense head."""
    inp = keras.Input((size, size, 3))
    x = keras.layers.Conv2D(6, 3, activation="relu", name="b1")(inp)
    x = keras.layers.Conv2D(5, 3, activation="relu", name="b2")(x)
    base = keras.Model(inp, x, name="base")
    outer_in = keras.Input((size, size, 3))
    y = keras.layers.GlobalAveragePooling2D()(base(outer_in))
    y = keras.layers.Dense(classes, activation="softmax", name="out")(y)
    return keras.Model(outer_in, y, name="transfer")


# ----------------------------------------------------------------------------- training
@pytest.fixture(scope="module")
def trained():
    keras.utils.set_random_seed(0)
    model = conv_flatten_dense(size=16, classes=3, softmax=True)
    x = images(24, size=16, seed=1)
    before = [w.numpy().copy() for w in model.weights]
    lcams = {mode: cams.LCAM.train(model, x, mode=mode, epochs=2, batch_size=8, learning_rate=0.5, seed=0, verbose=False)
             for mode in ("img", "fm")}
    return model, x, before, lcams


def test_training_leaves_the_model_unchanged_and_learns_the_attention(trained):
    model, x, before, lcams = trained
    for w0, w in zip(before, model.weights):
        np.testing.assert_array_equal(w0, w.numpy())
    fresh = cams.LCAM(model, seed=0)
    for mode, lc in lcams.items():
        assert not np.allclose(lc.kernel.numpy(), fresh.kernel.numpy()), mode
        h = lc.history
        assert set(h) >= {"loss", "ce", "area", "tv", "accuracy", "lr"} and all(len(v) == 2 for v in h.values())
        assert h["lr"] == pytest.approx([0.5, 0.375])
        assert h["images"] == [24, 24]
        for i in range(2):
            assert h["loss"][i] == pytest.approx(h["ce"][i] + h["area"][i] + h["tv"][i], rel=1e-5)
        assert h["area"][1] < h["area"][0]  # the area term pulls the masks down
        assert lc.name == {"img": "L-CAM-Img", "fm": "L-CAM-Fm"}[mode]


def test_training_prints_loss_components_per_epoch(capsys):
    model = conv_gap_dense(size=16, softmax=True)
    cams.LCAM.train(model, images(8, size=16), mode="fm", epochs=1, batch_size=8, verbose=True)
    out = capsys.readouterr().out  # Keras' progress bar
    assert all(f"{k}: " in out for k in ("loss", "ce", "area", "tv", "accuracy", "images/s"))


@pytest.mark.parametrize("mode", ["img", "fm"])
def test_training_pass_with_saturated_masks_matches_the_model(mode):
    """Mask all ones -> the L-CAM network is the classifier itself; all zeros -> input 0 (Img) or
    head(0) (Fm). Checks where the mask enters in each mode."""
    model = conv_gap_dense(size=16, softmax=True)
    x = tf.constant(images(4, size=16))
    lc = cams.LCAM(model, mode=mode)
    k = np.zeros((lc.channels, lc.n_classes), np.float32)
    labels = tf.constant([0, 1, 2, 3])
    _, logits = model_graph.forward(model, x)
    lc.kernel.assign(k), lc.bias.assign(np.full(lc.n_classes, 60.0, np.float32))
    masks, out = lc.trainer().masks_and_logits(x, labels)
    np.testing.assert_allclose(masks.numpy(), 1.0)
    np.testing.assert_allclose(out.numpy(), logits.numpy(), atol=1e-5)
    lc.bias.assign(np.full(lc.n_classes, -60.0, np.float32))
    _, out = lc.trainer().masks_and_logits(x, labels)
    if mode == "img":
        _, expected = model_graph.forward(model, tf.zeros_like(x))
    else:
        expected = tf.tile(model.get_layer("head").bias[None], (4, 1))
    np.testing.assert_allclose(out.numpy(), expected.numpy(), atol=1e-5)


def test_nested_model_and_dataset_labels_from_tf_data():
    model = nested_model()
    x = images(12, size=16, seed=3)
    y = np.eye(3, dtype=np.float32)[np.arange(12) % 3]  # one-hot labels are accepted
    ds = tf.data.Dataset.from_tensor_slices((x, y))  # unbatched: batched by batch_size
    lc = cams.LCAM.train(model, ds, mode="fm", layer="base/b2", labels="dataset", loss="ce", epochs=1,
                         batch_size=5, verbose=False)
    assert lc.layer_name == "base/b2" and lc.channels == 5 and lc.name == "L-CAM-Fm*"
    assert lc.history["images"] == [12] and lc.history["area"] == [0.0]
    maps = lc(x)
    assert maps.shape == (12, 16, 16) and maps.dtype == np.float32


def test_training_errors():
    model = conv_gap_dense(size=16)
    x = images(4, size=16)
    with pytest.raises(ValueError, match="yields no labels"):
        cams.LCAM.train(model, x, labels="dataset", verbose=False)
    with pytest.raises(ValueError, match="mode must be"):
        cams.LCAM.train(model, x, mode="pixels", verbose=False)
    with pytest.raises(ValueError, match="labels must be"):
        cams.LCAM.train(model, x, labels="truth", verbose=False)
    with pytest.raises(ValueError, match="label >= 4"):
        cams.LCAM.train(model, (x, np.array([0, 1, 2, 9])), labels="dataset", epochs=1, verbose=False)
    with pytest.raises(ValueError, match="epochs must be"):
        cams.LCAM.train(model, x, epochs=0, verbose=False)


def test_mixed_precision_model_gives_float32_maps():
    keras.mixed_precision.set_global_policy("mixed_bfloat16")
    model = conv_gap_dense(size=16, softmax=True)
    x = images(6, size=16)
    lc = cams.LCAM.train(model, x, mode="img", epochs=1, batch_size=6, verbose=False)
    maps = lc(x)
    assert maps.dtype == np.float32 and np.isfinite(maps).all() and maps.min() >= 0 and maps.max() <= 1
    assert np.isfinite(lc.history["loss"]).all()


# ----------------------------------------------------------------------------- inference
def test_maps_are_the_normalised_pre_sigmoid_conv_of_the_target(trained):
    model, x, _, lcams = trained
    lc = lcams["img"]
    maps = lc(x[:5])
    assert maps.shape == (5, 16, 16) and maps.dtype == np.float32
    assert maps.min() >= 0.0 and maps.max() <= 1.0
    A, logits = model_graph.forward(model, tf.constant(x[:5]), lc.layer)
    top1 = logits.numpy().argmax(1)
    c = np.einsum("nhwk,kc->nhwc", A.numpy(), lc.kernel.numpy()) + lc.bias.numpy()
    cam = c[np.arange(5), :, :, top1]
    lo, hi = cam.min(axis=(1, 2), keepdims=True), cam.max(axis=(1, 2), keepdims=True)
    expected = tf.image.resize(((cam - lo) / (hi - lo))[..., None], (16, 16), method="bilinear")[..., 0].numpy()
    np.testing.assert_allclose(maps, expected, atol=1e-5)
    np.testing.assert_allclose(lc(x[:5], targets=top1), maps, atol=1e-6)
    other = lc(x[:5], targets=(top1 + 1) % 3)
    assert not np.allclose(other, maps)


def test_inference_is_one_forward_pass_in_one_cached_function(trained):
    model, x, _, lcams = trained
    lc = lcams["fm"]
    lc(x[:3])
    lc(x[:7])  # another batch size: no retrace (input signature has a None batch)
    fns = lc._compiled._list_all_concrete_functions_for_serialization()
    assert len(fns) == 1
    ops = [op.type for op in fns[0].graph.get_operations()]
    assert ops.count("Conv2D") == 2  # c1 and c2 once each: a single pass of the classifier
    assert ops.count("MatMul") == 2  # the head's two Dense layers, once


def test_bad_inputs(trained):
    model, x, _, lcams = trained
    with pytest.raises(ValueError, match="channels"):
        lcams["img"](np.zeros((1, 16, 16, 1), np.float32))
    with pytest.raises(ValueError, match="out of range"):
        lcams["img"](x[:2], targets=5)
    with pytest.raises(ValueError, match="attention weights have shapes"):
        cams.LCAM(model, kernel=np.zeros((3, 3)), bias=np.zeros(3))


# ----------------------------------------------------------------------------- save / load / SavedModel
def test_save_load_round_trip_and_classifier_checks(trained, tmp_path):
    model, x, _, lcams = trained
    lc = lcams["fm"]
    path = lc.save(tmp_path / "fm.npz")
    again = cams.LCAM.load(path, model)
    assert again.mode == "fm" and again.loss == "full" and again.layer_name == lc.layer_name
    assert again.history["loss"] == pytest.approx(lc.history["loss"])
    np.testing.assert_array_equal(again(x), lc(x))
    # a reloaded copy of the same classifier is accepted
    model.save(tmp_path / "m.keras")
    reloaded = keras.models.load_model(tmp_path / "m.keras", compile=False)
    np.testing.assert_allclose(cams.LCAM.load(path, reloaded)(x), lc(x), atol=1e-6)
    # same architecture, other weights: refused unless strict=False
    keras.utils.set_random_seed(5)
    other = conv_flatten_dense(size=16, classes=3, softmax=True)
    with pytest.raises(ValueError, match="weights differ"):
        cams.LCAM.load(path, other)
    assert cams.LCAM.load(path, other, strict=False)(x).shape == (24, 16, 16)
    with pytest.raises(ValueError, match="3 classes"):
        cams.LCAM.load(path, conv_flatten_dense(size=16, classes=4, softmax=True))
    with pytest.raises(ValueError, match="lacks"):
        cams.LCAM.load(path, conv_gap_dense(size=16, classes=3))
    with pytest.raises(ValueError, match="no such L-CAM file"):
        cams.LCAM.load(tmp_path / "missing.npz", model)
    (tmp_path / "bad.npz").write_bytes(b"nonsense")
    with pytest.raises(ValueError, match="not an L-CAM file"):
        cams.LCAM.load(tmp_path / "bad.npz", model)


def test_the_keras_file_holds_the_same_attention_and_loads_like_the_npz(trained, tmp_path):
    """`.keras` beside `.npz`: LCAM.load reads both to the same maps, and Keras alone opens the file
    as a model computing the attention logits F W + b (paper Eq. 3) of any feature map."""
    from cams.core import model_graph

    model, x, _, lcams = trained
    lc = lcams["img"]
    npz, kfile = lc.save(tmp_path / "img.npz"), lc.save(tmp_path / "img.keras")
    from_keras = cams.LCAM.load(kfile, model)
    assert from_keras.mode == "img" and from_keras.history["loss"] == pytest.approx(lc.history["loss"])
    np.testing.assert_array_equal(from_keras(x), cams.LCAM.load(npz, model)(x))
    attention = keras.saving.load_model(kfile)
    features, _ = model_graph.forward(model, x[:4], lc.layer)
    expected = np.einsum("nhwk,kc->nhwc", features.numpy(), lc.kernel.numpy()) + lc.bias.numpy()
    np.testing.assert_allclose(attention(features).numpy(), expected, rtol=1e-5, atol=1e-5)
    model.save(tmp_path / "classifier.keras")  # another .keras model is not an L-CAM file
    with pytest.raises(ValueError, match="classifier.keras: not an L-CAM file"):
        cams.LCAM.load(tmp_path / "classifier.keras", model)


def test_savedmodel_returns_probabilities_and_the_same_maps(trained, tmp_path):
    model, x, _, lcams = trained
    lc = lcams["img"]
    out = cams.export.export_savedmodel(model, tmp_path / "sm", explain=lc)
    served = tf.saved_model.load(str(out))
    result = served.signatures["serving_default"](images=tf.constant(x[:6]))
    maps, probs = lc.explain_with_probabilities(x[:6])
    np.testing.assert_allclose(result["map"].numpy(), maps, atol=1e-5)
    np.testing.assert_allclose(result["probabilities"].numpy(), probs, atol=1e-6)
    np.testing.assert_allclose(probs, cams.metrics.probabilities(model, x[:6]), atol=1e-6)
    targets = tf.constant([2, 1, 0, 2, 1, 0], tf.int32)
    chosen = served.signatures["explain"](images=tf.constant(x[:6]), targets=targets)
    np.testing.assert_allclose(chosen["map"].numpy(), lc(x[:6], targets=targets.numpy()), atol=1e-5)
    (tmp_path / "taken").mkdir()
    (tmp_path / "taken" / "notes.txt").write_text("mine")
    with pytest.raises(ValueError, match="not a SavedModel folder"):
        cams.export.export_savedmodel(model, tmp_path / "taken", explain=lc)
