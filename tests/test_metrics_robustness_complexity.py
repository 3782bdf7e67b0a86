"""Sparseness, Complexity, relevance mass / rank, Max- and average sensitivity and Random Logit on
cases whose answer is known, plus their bad inputs (rows "api-metric-*" of docs/bad_inputs.md)."""
import re
from pathlib import Path

import keras
import numpy as np
import pytest
from scipy.stats import entropy
from skimage.metrics import structural_similarity

from cams import metrics

DOC = Path(__file__).resolve().parents[1] / "docs" / "bad_inputs.md"


# --- complexity --------------------------------------------------------------------------------

def test_sparseness_known_values_and_mean_difference_form():
    n = 6 * 5
    one_hot = np.zeros((6, 5))
    one_hot[2, 3] = -4.0  # |map| is used
    rng = np.random.default_rng(0)
    rand = rng.normal(size=(6, 5))
    got = metrics.sparseness(np.stack([one_hot, np.full((6, 5), 0.3), np.zeros((6, 5)), rand]))
    assert got[0] == pytest.approx(1 - 1 / n)
    assert got[1] == pytest.approx(0.0, abs=1e-12) and got[2] == 0.0
    a = np.abs(rand).ravel()  # Gini as the mean absolute difference over twice the mean
    assert got[3] == pytest.approx(np.abs(a[:, None] - a[None, :]).sum() / (2 * n * a.sum()))


def test_complexity_is_the_entropy_of_the_normalised_map():
    n = 7 * 4
    rand = np.random.default_rng(1).normal(size=(7, 4))
    one_hot = np.zeros((7, 4))
    one_hot[0, 0] = 2.0
    got = metrics.complexity(np.stack([np.full((7, 4), 0.5), one_hot, rand, np.zeros((7, 4))]))
    assert got[0] == pytest.approx(np.log(n))
    assert got[1] == pytest.approx(0.0)
    assert got[2] == pytest.approx(entropy(np.abs(rand).ravel()))
    assert np.isnan(got[3])
    assert metrics.complexity_forward_passes() == 0


# --- localisation ------------------------------------------------------------------------------

def test_relevance_mass_and_rank():
    mask = np.zeros((2, 6, 6), bool)
    mask[:, 1:3, 1:4] = True  # 6 pixels
    inside = np.where(mask, np.random.default_rng(2).random((2, 6, 6)) + 0.1, 0.0)
    uniform = np.ones((2, 6, 6))
    np.testing.assert_allclose(metrics.relevance_mass(inside, mask), 1.0)
    np.testing.assert_allclose(metrics.relevance_mass(uniform, mask[..., None]), 6 / 36)
    np.testing.assert_allclose(metrics.relevance_rank(inside, mask), 1.0)
    np.testing.assert_allclose(metrics.relevance_rank(1.0 - mask, mask), 0.0)
    # a map whose 6 largest values are 3 inside and 3 outside the mask
    m = np.zeros((1, 6, 6))
    m[0, 1, 1:4] = [9, 8, 7]
    m[0, 5, 0:3] = [6, 5, 4]
    m[0, 2, 1:4] = [1, 1, 1]
    assert metrics.relevance_rank(m, mask[:1])[0] == pytest.approx(0.5)
    assert metrics.relevance_mass(m, mask[:1])[0] == pytest.approx((24 + 3) / (24 + 15 + 3))


# --- robustness --------------------------------------------------------------------------------

class Recorder:
    """A callable explainer that records the targets it is asked for; map = scale * channel 0."""

    def __init__(self, scale=1.0, fixed=None, model=None):
        self.scale, self.fixed, self.model, self.calls = scale, fixed, model, []

    def __call__(self, images, targets=None):
        self.calls.append(None if targets is None else np.asarray(targets).copy())
        if self.fixed is not None:
            return np.repeat(self.fixed[None], len(images), axis=0)
        return self.scale * np.asarray(images)[..., 0]


def test_sensitivity_of_a_fixed_map_is_zero():
    x = np.random.default_rng(3).random((3, 8, 8, 2)).astype(np.float32)
    ex = Recorder(fixed=np.random.default_rng(4).random((8, 8)))
    np.testing.assert_array_equal(metrics.max_sensitivity(ex, x, n_samples=4), 0.0)
    np.testing.assert_array_equal(metrics.avg_sensitivity(ex, x, n_samples=4), 0.0)
    assert len(ex.calls) == 2 * 5  # the clean map once and 4 perturbed copies, per call


def test_sensitivity_of_the_identity_explainer():
    """E(x) = a x_0: ||E(x + d) - E(x)|| / ||E(x)|| = ||d_0|| / ||x_0||, whatever a; each d_0 has
    64 entries uniform in [-r, r]: ||d_0|| <= 8 r, and E||d_0||^2 = 64 r^2 / 3."""
    x = np.random.default_rng(5).random((2, 8, 8, 3)).astype(np.float32)
    r, norm = 0.1, np.linalg.norm(x[..., 0].reshape(2, -1), axis=1)
    mx = metrics.max_sensitivity(Recorder(), x, radius=r, n_samples=40, seed=1)
    avg = metrics.avg_sensitivity(Recorder(), x, radius=r, n_samples=40, seed=1)
    np.testing.assert_allclose(metrics.max_sensitivity(Recorder(scale=3.0), x, radius=r, n_samples=40, seed=1), mx, rtol=1e-5)
    assert np.all(avg < mx) and np.all(mx <= 8 * r / norm)
    np.testing.assert_allclose(avg, r * np.sqrt(64 / 3) / norm, rtol=0.05)
    absolute = metrics.avg_sensitivity(Recorder(scale=3.0), x, radius=r, n_samples=40, seed=1, relative=False)
    np.testing.assert_allclose(absolute, 3.0 * avg * norm, rtol=1e-5)
    assert metrics.sensitivity_explanations(16, maps_given=False) == 17


def test_sensitivity_keeps_the_clean_top1_target():
    inp = keras.Input((8, 8, 1))
    model = keras.Model(inp, keras.layers.Dense(3)(keras.layers.Flatten()(inp)))
    x = np.random.default_rng(6).random((4, 8, 8, 1)).astype(np.float32)
    kernel, bias = model.layers[-1].get_weights()
    top1 = (x.reshape(4, -1) @ kernel + bias).argmax(axis=1)
    ex = Recorder(model=model)
    metrics.max_sensitivity(ex, x, n_samples=3, radius=5.0)
    assert len(ex.calls) == 4 and all(np.array_equal(c, top1) for c in ex.calls)


# --- randomisation -----------------------------------------------------------------------------

@pytest.fixture(scope="module")
def five_classes():
    inp = keras.Input((12, 12, 1))
    return keras.Model(inp, keras.layers.Dense(5, activation="softmax")(keras.layers.Flatten()(inp)))


class ClassPattern:
    """Map of class c: a bright 4 x 4 square at a class-dependent place on a shared ramp."""

    def __call__(self, images, targets):
        out = np.tile(np.linspace(0, 0.2, 12)[None, None, :], (len(images), 12, 1))
        for i, c in enumerate(np.broadcast_to(targets, (len(images),))):
            out[i, 2 * c: 2 * c + 4, 2 * c: 2 * c + 4] = 1.0
        self.last = np.array(targets)
        return out


def test_random_logit_of_a_class_blind_explainer_is_one(five_classes):
    x = np.random.default_rng(7).random((3, 12, 12, 1)).astype(np.float32)
    blind = Recorder()
    np.testing.assert_allclose(metrics.random_logit(five_classes, blind, x), 1.0)


def test_random_logit_is_the_2d_ssim_of_the_two_maps(five_classes):
    x = np.random.default_rng(8).random((6, 12, 12, 1)).astype(np.float32)
    ex = ClassPattern()
    t = np.array([0, 1, 2, 3, 4, 0])
    got = metrics.random_logit(five_classes, ex, x, targets=t, seed=3)
    other = ex.last
    assert np.all(other != t) and np.all((other >= 0) & (other < 5))
    a, b = ex(x, t), ex(x, other)
    expected = [structural_similarity(p, q, win_size=7, data_range=float(max(p.max(), q.max()) - min(p.min(), q.min())))
                for p, q in zip(a, b)]
    np.testing.assert_allclose(got, expected, rtol=1e-6)
    assert np.all(got < 1.0)
    draws = np.concatenate([(metrics.random_logit(five_classes, ex, x[:1], targets=2, seed=s), ex.last)[1] for s in range(40)])
    assert set(draws) == {0, 1, 3, 4}  # uniform over the other classes: every one shows up


# --- bad inputs --------------------------------------------------------------------------------

def _maps(n=2, size=8):
    return np.random.default_rng(0).random((n, size, size))


def _x(n=2, size=8):
    return np.random.default_rng(1).random((n, size, size, 1)).astype(np.float32)


def _one_class():
    inp = keras.Input((8, 8, 1))
    return keras.Model(inp, keras.layers.Dense(1)(keras.layers.Flatten()(inp)))


CASES = {
    "api-metric-sparseness-rank": (lambda m: metrics.sparseness(np.ones((3, 8))), r"maps must have shape \(N, H, W\), got \(3, 8\)"),
    "api-metric-complexity-nan": (lambda m: metrics.complexity(np.full((1, 4, 4), np.nan)), r"maps contain NaN or infinite values"),
    "api-metric-mask-shape-mismatch": (lambda m: metrics.relevance_mass(_maps(), np.ones((2, 6, 8))),
                                       r"maps and masks must both be \(N, H, W\) of the same shape, got \(2, 8, 8\) and \(2, 6, 8\)"),
    "api-metric-mask-empty": (lambda m: metrics.relevance_rank(_maps(), np.zeros((2, 8, 8))),
                              r"ground-truth mask 0 is empty; relevance rank needs a non-empty region"),
    "api-metric-sensitivity-n-samples-0": (lambda m: metrics.max_sensitivity(Recorder(), _x(), n_samples=0),
                                           r"n_samples must be >= 1, got 0"),
    "api-metric-sensitivity-radius-0": (lambda m: metrics.avg_sensitivity(Recorder(), _x(), radius=0),
                                        r"radius must be > 0 \(the L-inf size of the perturbations\), got 0"),
    "api-metric-sensitivity-not-callable": (lambda m: metrics.max_sensitivity("gradcam", _x()),
                                            r"explain must be a callable \(images, targets\) -> maps, e.g. a cams explainer, got str"),
    "api-metric-sensitivity-maps-shape": (lambda m: metrics.max_sensitivity(Recorder(), _x(), maps=_maps(size=4)),
                                          r"maps must have shape \(2, 8, 8\) \(N, H, W\) to match the images, got \(2, 4, 4\)"),
    "api-metric-random-logit-one-class": (lambda m: metrics.random_logit(_one_class(), Recorder(), _x()),
                                          r"random_logit needs a model with at least 2 classes, got 1"),
    "api-metric-random-logit-same-class": (lambda m: metrics.random_logit(m, Recorder(), _x(size=12), targets=[1, 2], other_targets=[3, 2]),
                                           r"other_targets must differ from the targets; image 1 has both = 2"),
}


@pytest.mark.parametrize("case", list(CASES))
def test_bad_input_is_one_value_error(five_classes, case):
    call, message = CASES[case]
    with pytest.raises(ValueError) as info:
        call(five_classes)
    assert re.search(message, str(info.value)), str(info.value)
    assert "\n" not in str(info.value)


def test_every_case_is_in_the_table():
    table = DOC.read_text()
    assert [c for c in CASES if f"`{c}`" not in table] == []
