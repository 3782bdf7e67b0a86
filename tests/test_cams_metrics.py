"""Metrics on hand-computed toy cases."""
import keras
import numpy as np
import pytest

import cams
from cams import metrics


def _linear_model(W, b):
    """2x2x1 images -> logits = flatten(x) @ W + b, with softmax on top (metrics must use logits)."""
    inp = keras.Input((2, 2, 1))
    dense = keras.layers.Dense(W.shape[1], activation="softmax")
    model = keras.Model(inp, dense(keras.layers.Flatten()(inp)))
    dense.set_weights([W.astype(np.float32), b.astype(np.float32)])
    return model


def _softmax(z):
    e = np.exp(z - z.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


W = np.array([[2.0, 0.0], [1.0, 0.5], [-1.0, 0.0], [0.0, 1.0]])
b = np.array([0.0, 0.2])


def test_ad_ic_by_hand():
    model = _linear_model(W, b)
    x = np.array([[1.0, 2.0, 3.0, 4.0], [2.0, 1.0, 0.0, 1.0]]).reshape(2, 2, 2, 1)
    maps = np.array([[1.0, 0.5, 0.25, 0.0], [0.0, 0.9, 0.6, 0.3]]).reshape(2, 2, 2)
    # By hand: 100% keeps every pixel with its value; 50% keeps the two largest values per map.
    kept = {
        100: maps.reshape(2, 4),
        50: np.array([[1.0, 0.5, 0.0, 0.0], [0.0, 0.9, 0.6, 0.0]]),
    }
    flat = x.reshape(2, 4)
    p_orig = _softmax(flat @ W + b)
    t = p_orig.argmax(axis=1)
    Y = p_orig[[0, 1], t]
    got = metrics.ad_ic(model, x, maps, percents=(100, 50))
    for pct, k in kept.items():
        O = _softmax((flat * k) @ W + b)[[0, 1], t]
        assert got[f"AD({pct}%)"] == pytest.approx(100 * np.mean(np.maximum(0, Y - O) / Y), rel=1e-5)
        assert got[f"IC({pct}%)"] == pytest.approx(100 * np.mean(O > Y))


def test_ad_ic_of_an_all_ones_map_is_zero_at_100_percent():
    model = _linear_model(W, b)
    x = np.random.default_rng(0).random((3, 2, 2, 1)).astype(np.float32)
    out = metrics.ad_ic(model, x, np.ones((3, 2, 2)), percents=(100,))
    assert out == {"AD(100%)": 0.0, "IC(100%)": 0.0}


def test_ad_ic_explicit_targets_and_shape_errors():
    model = _linear_model(W, b)
    x = np.ones((2, 2, 2, 1), np.float32)
    out = metrics.ad_ic(model, x, np.ones((2, 2, 2)) * 0.5, percents=(100,), targets=[1, 1])
    p = _softmax(np.ones(4) @ W + b)[1]
    q = _softmax(0.5 * np.ones(4) @ W + b)[1]
    assert out["AD(100%)"] == pytest.approx(100 * max(0, p - q) / p, rel=1e-5)
    with pytest.raises(ValueError, match=r"maps must have shape \(2, 2, 2\)"):
        metrics.ad_ic(model, x, np.ones((2, 3, 3)))


def test_explanation_map_keeps_the_top_20_percent():
    img = np.arange(1, 11, dtype=np.float32).reshape(1, 2, 5, 1)
    cam = np.arange(10, dtype=np.float32).reshape(1, 2, 5)  # 80th percentile = 7.2 -> keeps 8 and 9
    out = metrics.explanation_map(img, cam)
    assert out.shape == img.shape
    np.testing.assert_array_equal(out.ravel(), [0] * 8 + [9, 10])


def test_explanation_map_scores_by_hand():
    model = _linear_model(W, b)
    x = np.array([[1.0, 2.0, 3.0, 4.0]]).reshape(1, 2, 2, 1)
    cam = np.array([[0.0, 0.1, 0.2, 0.9]]).reshape(1, 2, 2)  # 80th pct = 0.69 -> keeps pixel 3 only
    p = _softmax(x.reshape(1, 4) @ W + b)[0]
    q = _softmax(np.array([0, 0, 0, 4.0]) @ W + b)
    got = metrics.explanation_map_scores(model, x, cam)
    assert got["original_confidence"] == pytest.approx(100 * p.max(), rel=1e-5)
    assert got["mean_confidence"] == pytest.approx(100 * q[p.argmax()], rel=1e-5)
    assert got["right_classification"] == (100.0 if q.argmax() == p.argmax() else 0.0)


def test_pointing_game_and_energy():
    maps = np.zeros((2, 4, 4), np.float32)
    maps[0, 0, 0] = 1.0  # peak at (0, 0)
    maps[0, 3, 3] = 0.5
    maps[1, 3, 3] = 1.0  # peak at (3, 3)
    masks = np.zeros((2, 4, 4), bool)
    masks[:, :2, :2] = True
    assert metrics.pointing_game(maps, masks) == 0.5
    assert metrics.pointing_game(maps, masks, tolerance=3) == 1.0  # (3,3) is 2.83 px from (1,1)
    assert metrics.pointing_game(maps, masks, tolerance=2) == 0.5
    assert metrics.energy_in_mask(maps, masks) == pytest.approx((1.0 / 1.5 + 0.0) / 2)
    with pytest.raises(ValueError, match="mask 1 is empty"):
        metrics.pointing_game(maps, np.stack([masks[0], np.zeros((4, 4), bool)]))


def test_insertion_deletion_closed_forms():
    # A model with zero weights predicts 1/2 for both classes whatever it sees: both AUCs are 1/2.
    flat = _linear_model(np.zeros((4, 2)), np.zeros(2))
    x = np.random.default_rng(0).random((2, 2, 2, 1)).astype(np.float32)
    maps = np.random.default_rng(1).random((2, 2, 2)).astype(np.float32)
    assert metrics.deletion_auc(flat, x, maps, steps=4) == pytest.approx(0.5)
    assert metrics.insertion_auc(flat, x, maps, steps=4, substrate="zeros") == pytest.approx(0.5)
    # For a model that relies on pixel 0, deleting it first is worse for the class than deleting it last.
    model = _linear_model(np.array([[6.0, 0.0], [0.0, 0.0], [0.0, 0.0], [0.0, 0.0]]), np.array([0.0, 3.0]))
    x = np.ones((1, 2, 2, 1), np.float32)
    good = np.array([[[1.0, 0.1], [0.1, 0.1]]], np.float32)
    bad = 1.0 - good
    auc, curves = metrics.deletion_auc(model, x, good, targets=0, steps=4, return_curves=True)
    assert curves.shape == (1, 5)
    p_full, p_none = _softmax(np.array([6.0, 3.0]))[0], _softmax(np.array([0.0, 3.0]))[0]
    assert curves[0, 0] == pytest.approx(p_full, rel=1e-5) and curves[0, 1] == pytest.approx(p_none, rel=1e-5)
    assert auc < metrics.deletion_auc(model, x, bad, targets=0, steps=4)
    assert metrics.insertion_auc(model, x, good, targets=0, steps=4, substrate="zeros") > metrics.insertion_auc(
        model, x, bad, targets=0, steps=4, substrate="zeros"
    )


def test_explanation_map_fill_is_black_in_input_space():
    img = np.full((1, 2, 5, 1), 0.5, np.float32)
    cam = np.arange(10, dtype=np.float32).reshape(1, 2, 5)
    out = metrics.explanation_map(img, cam, fill=-1.0)  # a [-1, 1] model: black is -1
    np.testing.assert_array_equal(out.ravel(), [-1.0] * 8 + [0.5, 0.5])


def test_ad_ic_fill_moves_hidden_pixels_to_the_baseline():
    model = _linear_model(W, b)
    x = np.array([[1.0, 2.0, 3.0, 4.0]]).reshape(1, 2, 2, 1)
    maps = np.array([[1.0, 1.0, 0.0, 0.0]]).reshape(1, 2, 2)
    got = metrics.ad_ic(model, x, maps, percents=(100,), fill=-1.0)
    p = _softmax(x.reshape(1, 4) @ W + b)[0]
    t = p.argmax()
    q = _softmax(np.array([1.0, 2.0, -1.0, -1.0]) @ W + b)[t]
    assert got["AD(100%)"] == pytest.approx(100 * max(0, p[t] - q) / p[t], rel=1e-5)
