"""CAM, HiResCAM, XGrad-CAM, Layer-CAM, Eigen-CAM, Ablation-CAM, SS-CAM and IS-CAM against their
papers' formulas: closed forms on linear heads, and plain numpy implementations of the equations
on the same tiny models."""
import keras
import numpy as np
import pytest
import tensorflow as tf

import cams
from cams_models import conv_flatten_dense, conv_gap_dense, images


def _normalise(m):
    m = np.asarray(m, np.float64)
    m = m - m.min()
    return m / m.max() if m.max() > 0 else m


def _resize(m, size):
    return tf.image.resize(np.asarray(m, np.float32)[None, ..., None], size)[0, ..., 0].numpy()


def _expected(cam, size):
    """What the library does after the raw map: bilinear resize, then min-max normalisation."""
    return _normalise(_resize(cam, size))


def _features(model, layer, x):
    return keras.Model(model.input, model.get_layer(layer).output)(x).numpy().astype(np.float64)


def conv_flatten_linear(size=16, classes=3):
    """conv -> feat (ReLU) -> Flatten -> Dense: S_c = sum_ijk V_ijkc A_ijk + b_c, so dS/dA = V_c."""
    inp = keras.Input((size, size, 3))
    x = keras.layers.Conv2D(6, 3, activation="relu", name="conv1")(inp)
    x = keras.layers.Conv2D(5, 3, activation="relu", name="feat")(x)
    out = keras.layers.Dense(classes, name="head")(keras.layers.Flatten()(x))
    return keras.Model(inp, out, name="flat_linear")


# --- CAM ---------------------------------------------------------------------------------------


def test_cam_is_the_dense_kernel_column_times_the_activations():
    """Zhou 2016: M_c = sum_k W_kc A^k (no ReLU), also through a softmax output."""
    model = conv_gap_dense(softmax=True)
    x, targets = images(3), np.array([0, 2, 3])
    maps = cams.CAM(model)(x, targets)
    A, W = _features(model, "feat", x), model.get_layer("head").kernel.numpy()
    for i, c in enumerate(targets):
        np.testing.assert_allclose(maps[i], _expected(A[i] @ W[:, c], x.shape[1:3]), atol=1e-5)
    grad = cams.GradCAM(model)(x, targets)  # Grad-CAM on this head is ReLU(CAM): equal where CAM > 0
    for i, c in enumerate(targets):
        assert np.corrcoef(grad[i].ravel(), _expected(np.maximum(A[i] @ W[:, c], 0), x.shape[1:3]).ravel())[0, 1] > 0.999


def test_cam_finds_the_head_inside_a_nested_base_and_refuses_other_heads():
    inner_in = keras.Input((24, 24, 3))
    feat = keras.layers.Conv2D(4, 3, activation="relu", name="b_feat")(inner_in)
    base = keras.Model(inner_in, keras.layers.GlobalAveragePooling2D()(feat), name="base")
    inp = keras.Input((24, 24, 3))
    model = keras.Model(inp, keras.layers.Dense(3, name="fc")(keras.layers.Dropout(0.2)(base(inp))))
    ex = cams.CAM(model)
    assert ex.layer.name == "b_feat" and ex.dense.name == "fc"
    with pytest.raises(ValueError, match=r"CAM needs a head .*GlobalAveragePooling2D -> Dense.*Flatten"):
        cams.CAM(conv_flatten_dense())
    with pytest.raises(ValueError, match="CAM reads the layer feeding the global average pooling, 'feat', not 'conv1'"):
        cams.CAM(conv_gap_dense(), layer="conv1")


# --- HiResCAM, XGrad-CAM, Layer-CAM on a linear Flatten head (dS/dA = V_c exactly) ------------------


def _linear_head_case():
    model = conv_flatten_linear()
    x, targets = images(3, size=16), np.array([0, 1, 2])
    A = _features(model, "feat", x)  # (3, 12, 12, 5)
    V = model.get_layer("head").kernel.numpy().reshape(A.shape[1:] + (-1,))  # (12, 12, 5, classes)
    return model, x, targets, A, V


@pytest.mark.parametrize("name", ["hirescam", "xgradcam", "layercam", "gradcam"])
def test_gradient_cams_match_their_formulas_on_a_linear_head(name):
    model, x, targets, A, V = _linear_head_case()
    maps = cams.make_explainer(name, model, layer="feat")(x, targets)
    for i, c in enumerate(targets):
        g = V[..., c]
        if name == "hirescam":  # Draelos & Carin 2020: ReLU(sum_k g^k * A^k)
            cam = np.maximum((g * A[i]).sum(-1), 0)
        elif name == "xgradcam":  # Fu 2020: w_k = sum_ij A_ij^k / sum_ab A_ab^k * g_ij^k
            total = A[i].sum(axis=(0, 1))
            w = np.where(total > 0, (A[i] * g).sum(axis=(0, 1)) / np.where(total > 0, total, 1), 0)
            cam = np.maximum(A[i] @ w, 0)
        elif name == "layercam":  # Jiang 2021: ReLU(sum_k ReLU(g^k) * A^k)
            cam = np.maximum((np.maximum(g, 0) * A[i]).sum(-1), 0)
        else:
            cam = np.maximum(A[i] @ g.mean(axis=(0, 1)), 0)
        np.testing.assert_allclose(maps[i], _expected(cam, x.shape[1:3]), atol=1e-5)


def test_xgradcam_and_hirescam_differ_from_gradcam_where_the_gradient_varies():
    model, x, targets, _, _ = _linear_head_case()
    grad = cams.GradCAM(model, layer="feat")(x, targets)
    for cls in (cams.HiResCAM, cams.XGradCAM):
        assert np.abs(cls(model, layer="feat")(x, targets) - grad).max() > 0.05


def test_layercam_fusion_is_the_max_of_normalised_maps_with_tanh_on_shallow_layers():
    model, x, targets, _, _ = _linear_head_case()
    maps = cams.LayerCAM(model, layers=["conv1", "feat"])(x, targets)
    sub = keras.Model(model.input, [model.get_layer("conv1").output, model.get_layer("feat").output, model.output])
    xt = tf.constant(x)
    with tf.GradientTape() as tape:
        a1, a2, logits = sub(xt)
        s = tf.reduce_sum(logits * tf.one_hot(targets, 3))
    g1, g2 = tape.gradient(s, [a1, a2])
    for i in range(len(x)):
        per_layer = []
        for A, g in ((a1[i].numpy(), g1[i].numpy()), (a2[i].numpy(), g2[i].numpy())):
            per_layer.append(_expected(np.maximum((np.maximum(g, 0) * A).sum(-1), 0), x.shape[1:3]))
        shallow = np.tanh(2 * per_layer[0] / per_layer[0].max())
        np.testing.assert_allclose(maps[i], _normalise(np.maximum(shallow, per_layer[1])), atol=1e-5)
    with pytest.raises(ValueError, match="either layer= .* or layers="):
        cams.LayerCAM(model, layer="feat", layers=["conv1"])
    with pytest.raises(ValueError, match="no layer named 'nope'"):
        cams.LayerCAM(model, layers=["conv1", "nope"])


# --- Eigen-CAM -----------------------------------------------------------------------------------


def test_eigencam_is_the_first_principal_component_with_the_sign_of_the_mean_activation():
    model = conv_gap_dense()
    x = images(3)
    maps = cams.EigenCAM(model, layer="feat")(x)
    np.testing.assert_allclose(cams.EigenCAM(model, layer="feat")(x, [3, 2, 1]), maps, atol=1e-6)  # class-agnostic
    A = _features(model, "feat", x)
    for i in range(len(x)):
        X = A[i].reshape(-1, A.shape[-1])
        X = X - X.mean(axis=0)
        _, _, vt = np.linalg.svd(X, full_matrices=False)
        proj = (X @ vt[0]).reshape(A.shape[1:3])
        mean_act = A[i].mean(-1)
        if np.corrcoef(proj.ravel(), mean_act.ravel())[0, 1] < 0:
            proj = -proj
        np.testing.assert_allclose(maps[i], _expected(proj, x.shape[1:3]), atol=1e-4)


# --- Ablation-CAM ----------------------------------------------------------------------------------


def test_ablationcam_closed_form_on_a_gap_dense_head():
    """S - S_k = W_kc mean(A^k) for GAP -> Dense, so w_k = W_kc mean(A^k) / S."""
    model = conv_gap_dense(softmax=True)
    x, targets = images(3), np.array([1, 0, 3])
    ex = cams.AblationCAM(model, layer="feat", batch_size=4)  # 6 channels: two chunks
    assert ex.head is not None and ex.forward_passes() == 7
    maps = ex(x, targets)
    A, W = _features(model, "feat", x), model.get_layer("head").kernel.numpy()
    b = model.get_layer("head").bias.numpy()
    for i, c in enumerate(targets):
        S = A[i].mean(axis=(0, 1)) @ W[:, c] + b[c]
        w = W[:, c] * A[i].mean(axis=(0, 1)) / S
        np.testing.assert_allclose(maps[i], _expected(np.maximum(A[i] @ w, 0), x.shape[1:3]), atol=1e-5)


def test_ablationcam_cuts_the_head_of_a_nested_base_and_agrees_with_the_flat_model():
    conv1 = keras.layers.Conv2D(6, 3, activation="relu", name="b_conv1")
    conv2 = keras.layers.Conv2D(5, 3, activation="relu", name="b_conv2")
    d1, d2 = keras.layers.Dense(8, activation="relu"), keras.layers.Dense(3, activation="softmax")
    inner_in = keras.Input((16, 16, 3))
    base = keras.Model(inner_in, keras.layers.Flatten()(conv2(conv1(inner_in))), name="base")
    outer_in = keras.Input((16, 16, 3))
    nested = keras.Model(outer_in, d2(d1(base(outer_in))))
    flat_in = keras.Input((16, 16, 3))
    flat = keras.Model(flat_in, d2(d1(keras.layers.Flatten()(conv2(conv1(flat_in))))))
    x = images(2, size=16)
    on_nested, on_flat = cams.AblationCAM(nested, batch_size=3), cams.AblationCAM(flat, layer="b_conv2", batch_size=3)
    assert on_nested.head is not None and on_flat.head is not None
    np.testing.assert_allclose(on_nested(x, [0, 2]), on_flat(x, [0, 2]), atol=1e-5)


def test_ablationcam_with_a_skip_connection_runs_the_whole_model_and_keeps_the_closed_form():
    """No head can be cut around a skip connection: each ablation replaces A inside a full pass.
    S = W_c . mean(a + A) + b_c, so S - S_k = W_kc mean(A^k) still."""
    inp = keras.Input((16, 16, 3))
    a = keras.layers.Conv2D(5, 3, padding="same", activation="relu", name="a")(inp)
    feat = keras.layers.Conv2D(5, 3, padding="same", activation="relu", name="feat")(a)
    x_ = keras.layers.GlobalAveragePooling2D()(keras.layers.Add()([a, feat]))
    model = keras.Model(inp, keras.layers.Dense(3, name="head")(x_))
    x, targets = images(2, size=16), np.array([0, 2])
    ex = cams.AblationCAM(model, layer="feat", batch_size=2)
    assert ex.head is None
    maps = ex(x, targets)
    A, a_act = _features(model, "feat", x), _features(model, "a", x)
    W, b = model.get_layer("head").kernel.numpy(), model.get_layer("head").bias.numpy()
    for i, c in enumerate(targets):
        S = (a_act[i] + A[i]).mean(axis=(0, 1)) @ W[:, c] + b[c]
        w = W[:, c] * A[i].mean(axis=(0, 1)) / S
        np.testing.assert_allclose(maps[i], _expected(np.maximum(A[i] @ w, 0), x.shape[1:3]), atol=1e-5)


# --- SS-CAM and IS-CAM ----------------------------------------------------------------------------


def _score_cam_reference(model, layer, x, target, scores_of_masks):
    """Score-CAM's skeleton from the equations: H^k = minmax(up(A^k)); w_k = scores_of_masks(H^k);
    L = ReLU(sum_k w_k A^k), resized and normalised."""
    A = _features(model, layer, x[None])[0]
    up = tf.image.resize(A[None].astype(np.float32), x.shape[:2]).numpy()[0].astype(np.float64)
    lo, hi = up.min(axis=(0, 1)), up.max(axis=(0, 1))
    live = np.abs(A).max(axis=(0, 1)) > 0
    H = np.where(hi > lo, (up - lo) / np.where(hi > lo, hi - lo, 1), 0)[..., live].transpose(2, 0, 1)
    w = scores_of_masks(H)
    return _expected(np.maximum(A[..., live] @ w, 0), x.shape[:2])


def _probs(model, batch, target):
    logits = cams.core.model_graph.logits_function(model)(tf.constant(batch, tf.float32)).numpy().astype(np.float64)
    e = np.exp(logits - logits.max(-1, keepdims=True))
    return (e / e.sum(-1, keepdims=True))[:, target]


def test_iscam_integrates_each_mask_from_zero():
    """Naidu 2020: w_k = (1/n) sum_{i=1..n} softmax(f(x * (i/n) H^k))_c."""
    model = conv_gap_dense(softmax=True)
    x, n, target = images(2), 3, 2
    maps = cams.ISCAM(model, layer="feat", n_steps=n, batch_size=4)(x, target)
    for i in range(len(x)):
        def scores(H):
            return np.mean([_probs(model, x[i] * (s / n) * H[..., None], target) for s in range(1, n + 1)], axis=0)

        np.testing.assert_allclose(maps[i], _score_cam_reference(model, "feat", x[i], target, scores), atol=1e-4)


def test_sscam_averages_the_scores_of_noisy_masks():
    """Wang 2020: w_k = (1/N) sum_i softmax(f(x * (H^k + e_i)))_c, e_i ~ N(0, std^2); the same
    draws as the explainer (one normal draw of shape (K, H, W) per sample, from the seeded generator)."""
    model = conv_gap_dense(softmax=True)
    x, n, std, target = images(1), 3, 0.5, 1
    maps = cams.SSCAM(model, layer="feat", n_samples=n, std=std, seed=5, batch_size=16)(x, target)
    rng = tf.random.Generator.from_seed(5)

    def scores(H):
        noise = [rng.normal(H.shape).numpy().astype(np.float64) for _ in range(n)]
        return np.mean([_probs(model, x[0] * (H + std * e)[..., None], target) for e in noise], axis=0)

    np.testing.assert_allclose(maps[0], _score_cam_reference(model, "feat", x[0], target, scores), atol=1e-4)


def test_sscam_without_noise_and_iscam_with_one_step_are_scorecam():
    model = conv_flatten_dense(softmax=True)
    x = images(2, size=20)
    score = cams.ScoreCAM(model)(x, [0, 1])
    np.testing.assert_allclose(cams.SSCAM(model, n_samples=2, std=0.0)(x, [0, 1]), score, atol=1e-5)
    np.testing.assert_allclose(cams.ISCAM(model, n_steps=1)(x, [0, 1]), score, atol=1e-5)
    assert np.abs(cams.ISCAM(model, n_steps=4)(x, [0, 1]) - score).max() > 1e-3
    assert cams.SSCAM(model, n_samples=5, max_channels=4).forward_passes() == 21
    assert cams.ISCAM(model, n_steps=10).forward_passes() == 81


@pytest.mark.parametrize("cls,option", [("SSCAM", {"n_samples": 0}), ("SSCAM", {"std": -1.0}), ("ISCAM", {"n_steps": 0}),
                                        ("AblationCAM", {"batch_size": 0})])
def test_bad_options_are_one_clear_error(cls, option):
    with pytest.raises(ValueError, match=f"{next(iter(option))} must be"):
        getattr(cams, cls)(conv_gap_dense(), **option)
