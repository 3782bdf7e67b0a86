"""Grad-CAM family: closed forms, agreement with tf-keras-vis, nested models, mixed precision."""
import keras
import numpy as np
import pytest
import tensorflow as tf

import cams
from cams_models import conv_flatten_dense, conv_gap_dense, images


def _normalise(m):
    m = m - m.min()
    return m / m.max() if m.max() > 0 else m


def _corr(a, b):
    return float(np.corrcoef(a.ravel(), b.ravel())[0, 1])


def test_gradcam_equals_classic_cam_for_gap_dense():
    """With conv -> GAP -> Dense, Grad-CAM = ReLU(sum_k W[k, c] A^k) (Zhou 2016) up to scale."""
    model = conv_gap_dense()
    x = images(3)
    targets = np.array([0, 2, 3])
    maps = cams.GradCAM(model, layer="feat")(x, targets)
    A = keras.Model(model.input, model.get_layer("feat").output)(x).numpy()
    W = model.get_layer("head").kernel.numpy()
    for i, c in enumerate(targets):
        cam = np.maximum(np.tensordot(A[i], W[:, c], axes=([2], [0])), 0)
        expected = _normalise(tf.image.resize(cam[None, ..., None], x.shape[1:3])[0, ..., 0].numpy())
        np.testing.assert_allclose(maps[i], expected, atol=1e-5)


def test_softmax_output_uses_logits_and_model_is_not_mutated():
    """A model ending in softmax gives the same maps as the same weights without softmax."""
    with_softmax = conv_gap_dense(softmax=True)
    without = conv_gap_dense(softmax=False)
    without.set_weights(with_softmax.get_weights())
    x = images(2)
    before = with_softmax.predict(x, verbose=0)
    a = cams.GradCAM(with_softmax)(x, [1, 2])
    b = cams.GradCAM(without)(x, [1, 2])
    np.testing.assert_allclose(a, b, atol=1e-6)
    assert with_softmax.get_layer("head").activation is keras.activations.softmax
    np.testing.assert_allclose(with_softmax.predict(x, verbose=0), before, atol=1e-7)


@pytest.mark.parametrize("ours,theirs", [("GradCAM", "Gradcam"), ("GradCAMPlusPlus", "GradcamPlusPlus")])
def test_agrees_with_tf_keras_vis(ours, theirs):
    """Same functional model and inputs. At feature resolution the formulas agree exactly; at input
    resolution only the upsampling differs (scipy corner-aligned zoom vs half-pixel bilinear)."""
    from tf_keras_vis.gradcam import Gradcam
    from tf_keras_vis.gradcam_plus_plus import GradcamPlusPlus
    from tf_keras_vis.utils.model_modifiers import ReplaceToLinear
    from tf_keras_vis.utils.scores import CategoricalScore

    ref_cls = {"Gradcam": Gradcam, "GradcamPlusPlus": GradcamPlusPlus}[theirs]
    model = conv_flatten_dense(size=32, softmax=True, functional=True)
    x = images(4, size=32)
    targets = [0, 1, 2, 0]
    ref = ref_cls(model, model_modifier=ReplaceToLinear(), clone=True)
    ours_ex = getattr(cams, ours)(model, layer="c2")
    ref_small = np.asarray(ref(CategoricalScore(targets), x, penultimate_layer="c2", expand_cam=False))
    ours_small = ours_ex._explain_batch(tf.constant(x), tf.constant(targets, tf.int32)).numpy()
    compared = 0
    for i in range(len(x)):
        if np.isfinite(ref_small[i]).all() and ref_small[i].max() > 0:
            np.testing.assert_allclose(_normalise(ours_small[i]), _normalise(ref_small[i]), atol=1e-4)
            compared += 1
    assert compared >= 2


@pytest.mark.parametrize("ours,theirs", [("GradCAM", "Gradcam"), ("GradCAMPlusPlus", "GradcamPlusPlus")])
def test_full_resolution_maps_correlate_with_tf_keras_vis(ours, theirs):
    from tf_keras_vis.gradcam import Gradcam
    from tf_keras_vis.gradcam_plus_plus import GradcamPlusPlus
    from tf_keras_vis.utils.scores import CategoricalScore

    ref_cls = {"Gradcam": Gradcam, "GradcamPlusPlus": GradcamPlusPlus}[theirs]
    model = conv_gap_dense(size=32, softmax=False)  # 28x28 feature maps
    x = images(4, size=32)
    targets = [0, 1, 2, 3]
    ref = np.asarray(ref_cls(model)(CategoricalScore(targets), x, penultimate_layer="feat"))
    got = getattr(cams, ours)(model, layer="feat")(x, targets)
    for i in range(len(x)):
        assert _corr(got[i], ref[i]) >= 0.99


def test_gradcam_plus_plus_is_finite_on_saturated_logits():
    """tf-keras-vis multiplies by exp(S), which overflows for large logits; the factor cancels in
    the formula, so we never form it and the maps stay finite."""
    model = conv_flatten_dense(size=32, softmax=True, functional=True)
    model.set_weights([w + 0.05 for w in model.get_weights()])  # pushes logits to ~40
    maps = cams.GradCAMPlusPlus(model, layer="c2")(images(4, size=32), [0, 1, 2, 0])
    assert np.isfinite(maps).all() and maps.max() == 1.0


def test_gradcam_plus_plus_closed_form_on_linear_head():
    """For GAP -> Dense, g = W_kc / (hw) is constant, so alpha = 1/(2 + sum(A) g / ...) is closed form."""
    model = conv_gap_dense(k=5)
    x = images(2)
    A = keras.Model(model.input, model.get_layer("feat").output)(x).numpy().astype(np.float64)
    W = model.get_layer("head").kernel.numpy().astype(np.float64)
    hw = A.shape[1] * A.shape[2]
    maps = cams.GradCAMPlusPlus(model, layer="feat")(x, 1)
    for i in range(2):
        g = W[:, 1] / hw  # (K,)
        denom = 2 * g**2 + A[i].sum(axis=(0, 1)) * g**3
        alpha = np.where(denom != 0, g**2 / np.where(denom != 0, denom, 1), 0)  # same at every pixel
        alpha_sum = alpha * hw
        alpha = np.where(alpha_sum != 0, alpha / np.where(alpha_sum != 0, alpha_sum, 1), alpha)
        w = (alpha * np.maximum(g, 0)) * hw
        cam = np.maximum(A[i] @ w, 0)
        expected = _normalise(tf.image.resize(cam[None, ..., None].astype(np.float32), x.shape[1:3])[0, ..., 0].numpy())
        np.testing.assert_allclose(maps[i], expected, atol=1e-4)


def _nested_and_flat():
    conv1 = keras.layers.Conv2D(6, 3, activation="relu", name="b_conv1")
    conv2 = keras.layers.Conv2D(8, 3, activation="relu", name="b_conv2")
    gap = keras.layers.GlobalAveragePooling2D()
    d1 = keras.layers.Dense(12, activation="relu", name="mlp1")
    d2 = keras.layers.Dense(3, activation="softmax", name="mlp2")
    inner_in = keras.Input((24, 24, 3))
    base = keras.Model(inner_in, gap(conv2(conv1(inner_in))), name="base")
    outer_in = keras.Input((24, 24, 3))
    nested = keras.Model(outer_in, d2(d1(base(outer_in))), name="transfer")
    flat_in = keras.Input((24, 24, 3))
    flat = keras.Model(flat_in, d2(d1(gap(conv2(conv1(flat_in))))), name="flat")
    return nested, flat


def test_nested_model_layer_inside_base_matches_flat_model():
    nested, flat = _nested_and_flat()
    x = images(3)
    explainer = cams.GradCAM(nested)  # None -> last 4-D layer, found inside the nested base
    assert explainer.layer.name == "b_conv2"
    np.testing.assert_allclose(explainer(x), cams.GradCAM(flat, layer="b_conv2")(x), atol=1e-5)
    np.testing.assert_allclose(
        cams.GradCAMPlusPlus(nested, layer="base/b_conv1")(x), cams.GradCAMPlusPlus(flat, layer="b_conv1")(x), atol=1e-5
    )


def test_xception_transfer_model_gradcam_matches_manual_gradient():
    """The tf-keras-vis failure case: a layer inside an Xception base of a transfer model."""
    base = keras.applications.Xception(include_top=False, weights=None, input_shape=(71, 71, 3), pooling="avg")
    inp = keras.Input((71, 71, 3))
    head = keras.layers.Dense(2, name="fc")
    model = keras.Model(inp, head(base(inp)))
    x = images(2, size=71)
    explainer = cams.GradCAM(model)
    assert explainer.layer.name == "block14_sepconv2_act"
    maps = explainer(x, [0, 1])
    feat = keras.Model(base.input, base.get_layer("block14_sepconv2_act").output)
    A = tf.constant(feat(x))
    with tf.GradientTape() as tape:
        tape.watch(A)
        logits = head(tf.reduce_mean(A, axis=[1, 2]))
        s = tf.reduce_sum(logits * tf.one_hot([0, 1], 2))
    w = tf.reduce_mean(tape.gradient(s, A), axis=[1, 2])
    cam = tf.nn.relu(tf.einsum("bhwk,bk->bhw", A, w))
    expected = np.stack([_normalise(m) for m in tf.image.resize(cam[..., None], (71, 71))[..., 0].numpy()])
    np.testing.assert_allclose(maps, expected, atol=1e-4)


@pytest.mark.parametrize("policy", ["mixed_float16", "mixed_bfloat16"])
def test_mixed_precision_model_gives_finite_float32_maps(policy):
    keras.mixed_precision.set_global_policy(policy)
    inp = keras.Input((24, 24, 3))
    x = keras.layers.Conv2D(8, 3, activation="relu", name="feat")(inp)
    x = keras.layers.GlobalAveragePooling2D()(x)
    out = keras.layers.Dense(3, activation="softmax", dtype="float32")(x)
    model = keras.Model(inp, out)
    keras.mixed_precision.set_global_policy("float32")
    assert model.get_layer("feat").compute_dtype != "float32"
    x = images(2)
    explainers = [cams.GradCAM(model), cams.GradCAMPlusPlus(model), cams.SmoothGradCAMPlusPlus(model, n_samples=2, seed=0),
                  cams.ScoreCAM(model), cams.RISE(model, n_masks=16, seed=0), cams.Saliency(model),
                  cams.FeatureCAM(model, edges="canny")]
    for explainer in explainers:
        maps = explainer(x)
        assert maps.dtype == np.float32 and maps.shape == (2, 24, 24), type(explainer).__name__
        assert np.isfinite(maps).all() and maps.min() >= 0 and maps.max() <= 1


def test_targets_none_is_top1_and_output_contract():
    model = conv_flatten_dense(softmax=True)
    x = images(5, size=20)
    top1 = model.predict(x, verbose=0).argmax(axis=1)
    ex = cams.GradCAM(model)
    maps = ex(x)
    assert maps.shape == (5, 20, 20) and maps.dtype == np.float32
    assert maps.min() >= 0.0 and maps.max() <= 1.0
    np.testing.assert_allclose(maps, ex(x, top1), atol=1e-6)


def test_constant_map_gives_zeros_not_nan():
    """A feature layer that is all zeros (ReLU of a negative bias) gives a zero map."""
    inp = keras.Input((16, 16, 3))
    feat = keras.layers.Conv2D(4, 3, activation="relu", name="feat", kernel_initializer="zeros", bias_initializer=keras.initializers.Constant(-1.0))(inp)
    out = keras.layers.Dense(2)(keras.layers.Flatten()(feat))
    model = keras.Model(inp, out)
    for cls in (cams.GradCAM, cams.GradCAMPlusPlus, cams.SmoothGradCAMPlusPlus):
        maps = cls(model)(images(2, size=16))
        assert not np.isnan(maps).any()
        assert (maps == 0).all()


def test_repeated_calls_do_not_retrace():
    model = conv_gap_dense()
    ex = cams.GradCAM(model, batch_size=4)
    ex(images(4))
    ex(images(4, seed=1), [1, 1, 1, 1])
    ex(images(3, seed=2))  # smaller last batch: same signature (None batch dimension)
    assert ex._compiled.experimental_get_tracing_count() == 1


def test_smooth_gradcam_plus_plus_without_noise_equals_gradcam_plus_plus():
    model = conv_flatten_dense(softmax=False)
    x = images(3, size=20)
    smooth = cams.SmoothGradCAMPlusPlus(model, n_samples=3, noise=0.0, seed=0)(x, [0, 1, 2])
    plain = cams.GradCAMPlusPlus(model)(x, [0, 1, 2])
    np.testing.assert_allclose(smooth, plain, atol=1e-4)


def test_smooth_gradcam_plus_plus_is_seeded_and_noise_changes_it():
    model = conv_flatten_dense(softmax=False)
    x = images(2, size=20)
    a = cams.SmoothGradCAMPlusPlus(model, n_samples=4, noise=0.3, seed=7)(x)
    b = cams.SmoothGradCAMPlusPlus(model, n_samples=4, noise=0.3, seed=7)(x)
    c = cams.GradCAMPlusPlus(model)(x)
    np.testing.assert_allclose(a, b, atol=1e-6)
    assert np.abs(a - c).max() > 1e-3
