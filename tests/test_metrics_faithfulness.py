"""ROAD and MuFidelity on cases whose answer is known in closed form, plus their bad inputs (rows
"api-metric-*" of docs/bad_inputs.md)."""
import re
from pathlib import Path

import keras
import numpy as np
import pytest

from cams import metrics
from cams.metrics.imputation import NEIGHBOURS, noisy_linear_imputation

DOC = Path(__file__).resolve().parents[1] / "docs" / "bad_inputs.md"
SIZE = 8


def linear_model(weights: np.ndarray, bias=(0.0, 0.0), softmax=True) -> keras.Model:
    """(SIZE, SIZE, C) images -> logits = flatten(x) @ weights + bias (softmax on top: metrics must
    read the logits through it)."""
    inp = keras.Input((SIZE, SIZE, weights.shape[0] // (SIZE * SIZE)))
    dense = keras.layers.Dense(weights.shape[1], activation="softmax" if softmax else None)
    model = keras.Model(inp, dense(keras.layers.Flatten()(inp)))
    dense.set_weights([weights.astype(np.float32), np.asarray(bias, np.float32)])
    return model


REGION = np.zeros((SIZE, SIZE), bool)
REGION[2:6, 2:6] = True  # 16 pixels = 25 % of the image


@pytest.fixture(scope="module")
def region_model():
    """Class 0's logit = 0.5 * sum of the pixels in REGION, class 1's logit = 0."""
    w = np.zeros((SIZE * SIZE, 2))
    w[REGION.ravel(), 0] = 0.5
    return linear_model(w)


def softmax2(z0):
    return np.exp(z0) / (np.exp(z0) + 1.0)


# --- noisy linear imputation -------------------------------------------------------------------

def test_imputation_recovers_an_affine_image_inside():
    """Away from the border the 8-neighbour weighted mean of an affine image is its centre value,
    so the (unique) solution of the system is the affine image itself."""
    r, c = np.mgrid[0:12, 0:12]
    img = np.stack([0.3 * r - 0.2 * c + 1.0, 0.05 * r + 0.1 * c, -r + 2.0 * c], axis=-1).astype(np.float32)
    removed = np.zeros((12, 12), bool)
    removed[3:9, 2:10] = True
    removed[1, 1] = True
    out = noisy_linear_imputation(img, removed, noise=0.0)
    np.testing.assert_allclose(out, img, atol=1e-4)


def test_imputed_pixels_solve_the_papers_equations():
    """Each removed pixel equals the weighted mean (1/6 direct, 1/12 diagonal) of its in-image
    neighbours, border pixels included; kept pixels are untouched."""
    rng = np.random.default_rng(1)
    img = rng.random((9, 11, 2)).astype(np.float32)
    removed = rng.random((9, 11)) < 0.5
    removed[0, 0] = removed[8, 10] = True
    out = noisy_linear_imputation(img, removed, noise=0.0).astype(np.float64)
    np.testing.assert_array_equal(out[~removed], img[~removed])
    for i, j in zip(*np.nonzero(removed)):
        num, den = np.zeros(2), 0.0
        for dr, dc, wt in NEIGHBOURS:
            if 0 <= i + dr < 9 and 0 <= j + dc < 11:
                num, den = num + wt * out[i + dr, j + dc], den + wt
        np.testing.assert_allclose(out[i, j], num / den, atol=1e-5)


def test_imputation_noise_has_the_requested_spread():
    img = np.zeros((40, 40, 1), np.float32)
    removed = np.zeros((40, 40), bool)
    removed[5:35, 5:35] = True
    out = noisy_linear_imputation(img, removed, noise=0.05, rng=np.random.default_rng(0))
    assert np.std(out[removed]) == pytest.approx(0.05, rel=0.05)
    assert np.all(out[~removed] == 0)


# --- ROAD --------------------------------------------------------------------------------------

def test_road_morf_removing_the_region_leaves_chance(region_model):
    """MoRF at 25 % removes exactly REGION; its neighbours are 0, so the imputed region is 0 and
    both logits are 0: P = 0.5. At 0 % nothing is removed."""
    x = np.where(REGION, 1.0, 0.0)[None, ..., None].astype(np.float32).repeat(2, axis=0)
    maps = np.where(REGION, 1.0, 0.1)[None].repeat(2, axis=0)
    got = metrics.road(region_model, x, maps, targets=0, percentiles=(0, 25), order="morf", noise=0.0)
    assert got.shape == (2, 2)
    np.testing.assert_allclose(got[:, 0], softmax2(0.5 * 16), rtol=1e-5)
    np.testing.assert_allclose(got[:, 1], 0.5, atol=1e-5)


def test_road_lerf_outside_the_region_keeps_the_score(region_model):
    """LeRF up to 75 % removes only pixels outside REGION: the score cannot change."""
    rng = np.random.default_rng(2)
    x = rng.random((3, SIZE, SIZE, 1)).astype(np.float32)
    maps = np.where(REGION, 1.0, 0.0) + 0.01 * rng.random((3, SIZE, SIZE))
    expected = softmax2(0.5 * x[:, REGION, 0].sum(axis=1))
    got = metrics.road(region_model, x, maps, targets=[0, 0, 0], percentiles=(10, 40, 75), order="lerf")
    np.testing.assert_allclose(got, np.repeat(expected[:, None], 3, axis=1), rtol=1e-5)


def test_road_morf_matches_imputation_by_hand_and_is_batch_independent(region_model):
    """Scores = softmax of the linear logits of our own imputation, done image by image, percentile
    by percentile with the documented seeds; any batch size gives the same numbers."""
    rng = np.random.default_rng(3)
    x = rng.random((3, SIZE, SIZE, 1)).astype(np.float32)
    maps = rng.random((3, SIZE, SIZE)).astype(np.float32)
    pcts = (10, 30, 50)
    a = metrics.road(region_model, x, maps, targets=0, percentiles=pcts, noise=0.02, seed=7, batch_size=1)
    b = metrics.road(region_model, x, maps, targets=0, percentiles=pcts, noise=0.02, seed=7, batch_size=5)
    np.testing.assert_allclose(a, b, rtol=1e-6)
    for i in range(3):
        order = np.argsort(-maps[i].ravel(), kind="stable")
        rng_i = np.random.default_rng([7, i])
        for j, p in enumerate(pcts):
            removed = np.zeros(SIZE * SIZE, bool)
            removed[order[: int(p * SIZE * SIZE / 100)]] = True
            imp = noisy_linear_imputation(x[i], removed.reshape(SIZE, SIZE), 0.02, rng_i)
            assert a[i, j] == pytest.approx(softmax2(0.5 * imp[REGION, 0].sum()), rel=1e-5)


def test_road_forward_passes():
    assert metrics.road_forward_passes((10, 20, 30, 40, 50)) == 6
    assert metrics.road_forward_passes((10, 20), orders=("morf", "lerf"), targets_given=True) == 4


# --- MuFidelity --------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def linear3():
    """A 3-channel linear softmax classifier with random weights, and its class-1 weights as an image."""
    w = np.random.default_rng(4).normal(size=(SIZE * SIZE * 3, 3))
    return linear_model(w, bias=(0.1, -0.2, 0.3)), w[:, 1].reshape(SIZE, SIZE, 3)


@pytest.mark.parametrize("grid", [None, 4])
def test_mufidelity_of_gradient_times_input_on_a_linear_logit_is_one(linear3, grid):
    """logit_t(x) - logit_t(x with S at baseline) = sum_{i in S} sum_c w_ic (x_ic - b) exactly, so the
    map sum_c w_c (x_c - b) correlates perfectly with the drop (its negation at -1)."""
    model, w1 = linear3
    x = np.random.default_rng(5).random((2, SIZE, SIZE, 3)).astype(np.float32)
    for baseline in (0.0, 0.5):
        g = (w1[None] * (x - baseline)).sum(axis=-1)
        got = metrics.mufidelity(model, x, g, targets=1, n_samples=20, baseline=baseline, grid=grid, batch_size=7)
        assert got.shape == (2,)
        np.testing.assert_allclose(got, 1.0, atol=1e-4)
    np.testing.assert_allclose(metrics.mufidelity(model, x, -g, targets=1, n_samples=20, grid=grid, baseline=0.5), -1.0, atol=1e-4)


def test_mufidelity_matches_a_numpy_estimate_with_the_same_subsets(linear3):
    """Against a plain numpy mu_F on the documented subsets: a map unrelated to the model."""
    model, w1 = linear3
    x = np.random.default_rng(6).random((2, SIZE, SIZE, 3)).astype(np.float32)
    g = np.random.default_rng(7).random((2, SIZE, SIZE)).astype(np.float32)
    got = metrics.mufidelity(model, x, g, targets=[1, 1], subset_fraction=0.25, n_samples=30, seed=3)
    for i in range(2):
        rng = np.random.default_rng([3, i])
        chosen = np.argpartition(rng.random((30, SIZE * SIZE)), 15, axis=1)[:, :16]
        sums = g[i].ravel()[chosen].sum(axis=1)
        drops = [(w1 * x[i]).reshape(-1, 3)[c].sum() for c in chosen]
        assert got[i] == pytest.approx(np.corrcoef(sums, drops)[0, 1], abs=1e-4)


def test_mufidelity_forward_passes():
    assert metrics.mufidelity_forward_passes(128) == 129


# --- bad inputs --------------------------------------------------------------------------------

def _x(n=2):
    return np.random.default_rng(0).random((n, SIZE, SIZE, 1)).astype(np.float32)


def _maps(n=2):
    return np.random.default_rng(1).random((n, SIZE, SIZE)).astype(np.float32)


CASES = {
    "api-metric-road-percentile-100": (lambda m: metrics.road(m, _x(), _maps(), percentiles=(50, 100)),
                                       r"percentiles must be values in \[0, 100\) \(the % of pixels removed\), got \(50, 100\)"),
    "api-metric-road-percentile-negative": (lambda m: metrics.road(m, _x(), _maps(), percentiles=[-5]),
                                            r"percentiles must be values in \[0, 100\)"),
    "api-metric-road-order": (lambda m: metrics.road(m, _x(), _maps(), order="most"),
                              r"order must be 'morf' \(most relevant first\) or 'lerf' \(least relevant first\), got 'most'"),
    "api-metric-road-noise-negative": (lambda m: metrics.road(m, _x(), _maps(), noise=-0.1), r"noise must be >= 0, got -0.1"),
    "api-metric-road-batch-size-0": (lambda m: metrics.road(m, _x(), _maps(), batch_size=0), r"batch_size must be >= 1, got 0"),
    "api-metric-road-maps-shape": (lambda m: metrics.road(m, _x(), _maps()[:, :4]),
                                   r"maps must have shape \(2, 8, 8\) \(N, H, W\) to match the images, got \(2, 4, 8\)"),
    "api-metric-mufidelity-fraction": (lambda m: metrics.mufidelity(m, _x(), _maps(), subset_fraction=1.0),
                                       r"subset_fraction must be in \(0, 1\), got 1.0"),
    "api-metric-mufidelity-n-samples-1": (lambda m: metrics.mufidelity(m, _x(), _maps(), n_samples=1),
                                          r"n_samples must be >= 2 \(a correlation needs two subsets\), got 1"),
    "api-metric-mufidelity-grid-too-big": (lambda m: metrics.mufidelity(m, _x(), _maps(), grid=9),
                                           r"grid must be at most the image side 8, got 9"),
    "api-metric-mufidelity-targets": (lambda m: metrics.mufidelity(m, _x(), _maps(), targets=5),
                                      r"target class 5 is out of range: the model has 2 classes \(0..1\)"),
}


@pytest.mark.parametrize("case", list(CASES))
def test_bad_input_is_one_value_error(region_model, case):
    call, message = CASES[case]
    with pytest.raises(ValueError) as info:
        call(region_model)
    assert re.search(message, str(info.value)), str(info.value)
    assert "\n" not in str(info.value)


def test_every_case_is_in_the_table():
    table = DOC.read_text()
    assert [c for c in CASES if f"`{c}`" not in table] == []
