"""The metrics catalog (cams.metrics.catalog): names, per-image scores that average to the library's
whole-set functions, declared forward passes against the passes really run, and the 95% interval."""
import numpy as np
import pytest
from scipy import stats

from cams.core import model_graph
from cams.metrics import catalog, fidelity, localisation
from cams_models import conv_gap_dense, images as random_images

SIZE, N = 16, 5


@pytest.fixture(scope="module")
def setup():
    from cams.methods.gradient import GradCAM

    model = conv_gap_dense(size=SIZE, softmax=True)
    x = random_images(N, SIZE, seed=3)
    explainer = GradCAM(model)
    maps = explainer(x)
    targets = fidelity.probabilities(model, x).argmax(1)
    masks = np.zeros((N, SIZE, SIZE), bool)
    for i in range(N):
        masks[i, i : i + 6, 2:9] = True
    return model, explainer, x, maps, targets, masks


def test_resolve_all_names_and_repeats():
    assert catalog.resolve_metrics("all") == list(catalog.METRICS.values())
    assert [m.name for m in catalog.resolve_metrics(" IC, ad,ic ")] == ["ic", "ad"]
    assert catalog.metric_names() == list(catalog.METRICS)


@pytest.mark.parametrize("text, message", [("ad,nope", r"unknown metric 'nope'; choose from all, ad, ic, "),
                                           (" , ", r"no metric given; choose from all, ad, ")])
def test_bad_metric_names_are_one_line(text, message):
    with pytest.raises(ValueError, match=message) as err:
        catalog.resolve_metrics(text)
    assert "\n" not in str(err.value) and all(name in str(err.value) for name in catalog.metric_names())


def test_every_metric_is_declared_completely():
    for metric in catalog.METRICS.values():
        assert metric.role in catalog.ROLES and metric.columns and metric.title
        assert metric.forward_passes >= 0 and metric.explanations >= 0
        assert metric.needs_explainer or metric.explanations == 0


def test_mean_ci95_is_student_t_over_images():
    v = [1.0, 2.0, 3.0, 4.0, 5.0]  # mean 3, s = sqrt(2.5), t_{0.975, 4} = 2.776445 (tables)
    mean, low, high, n = catalog.mean_ci95(v)
    assert (mean, n) == (3.0, 5)
    assert high - mean == pytest.approx(2.776445 * np.sqrt(2.5) / np.sqrt(5), rel=1e-6)
    assert (low, high) == pytest.approx(stats.t.interval(0.95, 4, loc=3.0, scale=stats.sem(v)))
    mean, low, high, n = catalog.mean_ci95([2.0, np.nan, 4.0])  # NaN left out
    assert (mean, n) == (3.0, 2) and high - mean == pytest.approx(stats.t.ppf(0.975, 1) * np.sqrt(2) / np.sqrt(2))
    mean, low, high, n = catalog.mean_ci95([7.0])
    assert (mean, n) == (7.0, 1) and np.isnan(low) and np.isnan(high)
    assert catalog.mean_ci95([5.0, 5.0, 5.0])[1:3] == (5.0, 5.0)


def _scores(name, setup, **kw):
    model, explainer, x, maps, targets, masks = setup
    return catalog.METRICS[name](model, explainer, x, maps, targets, masks, **kw)


def test_ad_ic_per_image_average_to_ad_ic(setup):
    model, _, x, maps, targets, _ = setup
    whole = fidelity.ad_ic(model, x, maps, percents=catalog.AD_IC_PERCENTS, targets=targets)
    per_image = {**_scores("ad", setup), **_scores("ic", setup)}
    assert sorted(per_image) == sorted(whole)
    for column, values in per_image.items():
        assert values.shape == (N,) and values.mean() == pytest.approx(whole[column], rel=1e-5, abs=1e-6)
    # plain numpy of the paper's per-image AD at 100%: 100 max(0, Y - O) / Y
    p = fidelity.probabilities(model, x)[np.arange(N), targets]
    o = fidelity.probabilities(model, x * maps[..., None])[np.arange(N), targets]
    np.testing.assert_allclose(per_image["AD(100%)"], 100 * np.maximum(0, p - o) / p, rtol=1e-5)


def test_insertion_deletion_per_image_average_to_the_aucs(setup):
    model, _, x, maps, targets, _ = setup
    for name, function in (("insertion", fidelity.insertion_auc), ("deletion", fidelity.deletion_auc)):
        values = _scores(name, setup)[name]
        whole = function(model, x, maps, targets, steps=catalog.CAUSAL_STEPS)
        assert values.shape == (N,) and values.mean() == pytest.approx(whole, rel=1e-5)


def test_trapezoid_auc_closed_form():
    curves = np.array([[1.0, 1.0, 1.0], [0.0, 0.5, 1.0], [1.0, 0.0, 0.0]])
    np.testing.assert_allclose(catalog.trapezoid_auc(curves), [1.0, 0.5, 0.25])


def test_localisation_per_image(setup):
    model, explainer, x, _, targets, masks = setup
    maps = np.zeros((N, SIZE, SIZE), np.float32)
    maps[:, 3, 4] = 1.0  # the maximum at (3, 4): inside the masks of images 0..3 (rows i..i+5), not image 4
    maps[:, 12, 12] = 0.5  # outside every mask
    got = catalog.METRICS["pointing"](model, explainer, x, maps, targets, masks)["pointing"]
    np.testing.assert_array_equal(got, [1, 1, 1, 1, 0])
    mass = catalog.METRICS["relevance-mass"](model, explainer, x, maps, targets, masks)["relevance-mass"]
    np.testing.assert_allclose(mass, [1 / 1.5] * 4 + [0.0], rtol=1e-6)
    assert mass.mean() == pytest.approx(localisation.energy_in_mask(maps, masks))  # the energy pointing game


def test_road_per_image_is_the_mean_over_percentiles(setup):
    from cams.metrics.imputation import road

    model, _, x, maps, targets, _ = setup
    got = _scores("road-morf", setup, seed=4)["ROAD-MoRF"]
    curve = road(model, x, maps, targets, percentiles=catalog.ROAD_PERCENTILES, order="morf", seed=4)
    np.testing.assert_allclose(got, curve.mean(axis=1), rtol=1e-6)


def test_declared_forward_passes_are_the_passes_run(setup, monkeypatch):
    """Each metric's `cost` equals the images it sends through the classifier, per image."""
    model, explainer, x, maps, targets, masks = setup
    seen = []
    original = model_graph.logits_function

    def counting(m):
        fn = original(m)
        return lambda batch: (seen.append(int(batch.shape[0])), fn(batch))[1]

    monkeypatch.setattr(model_graph, "logits_function", counting)
    for metric in catalog.METRICS.values():
        if metric.needs_explainer:
            continue  # their explanations are counted through the explainer's own forward_passes()
        seen.clear()
        metric(model, explainer, x, maps, targets, masks)
        assert sum(seen) / N == metric.cost(explainer), metric.name


class CountingExplainer:
    """A model-free explainer (the image's channel mean) that counts the images it explains."""

    def __init__(self):
        self.explained = 0

    def forward_passes(self):
        return 1.0

    def __call__(self, images, targets=None):
        self.explained += len(images)
        m = np.asarray(images, np.float32).mean(axis=-1)
        return m + 0.01 * np.asarray(targets, np.float32)[:, None, None]


def test_declared_explanations_are_the_explanations_run(setup, monkeypatch):
    model, _, x, maps, targets, masks = setup
    seen = []
    original = model_graph.logits_function
    monkeypatch.setattr(model_graph, "logits_function",
                        lambda m: (lambda batch, fn=original(m): (seen.append(int(batch.shape[0])), fn(batch))[1]))
    for metric in [m for m in catalog.METRICS.values() if m.needs_explainer]:
        explainer, seen[:] = CountingExplainer(), []
        metric(model, explainer, x, explainer(x, targets), targets, masks)
        assert (explainer.explained - N) / N == metric.explanations, metric.name
        assert sum(seen) / N == metric.forward_passes, metric.name


def test_new_metrics_are_the_library_functions(setup):
    from cams.metrics.complexity import complexity, sparseness
    from cams.metrics.fidelity import mufidelity
    from cams.metrics.localisation import relevance_mass, relevance_rank
    from cams.metrics.randomisation import random_logit
    from cams.metrics.robustness import avg_sensitivity, max_sensitivity

    model, explainer, x, maps, targets, masks = setup
    expected = {
        "sparseness": sparseness(maps), "complexity": complexity(maps),
        "relevance-mass": relevance_mass(maps, masks), "relevance-rank": relevance_rank(maps, masks),
        "MuFidelity": mufidelity(model, x, maps, targets, n_samples=catalog.MUFIDELITY_SAMPLES, seed=2),
        "random-logit": random_logit(model, explainer, x, maps, targets, seed=2),
    }
    radius = catalog.SENSITIVITY_RADIUS * float(x.max() - x.min())
    for function, column in ((max_sensitivity, "Max-Sensitivity"), (avg_sensitivity, "Avg-Sensitivity")):
        expected[column] = function(explainer, x, maps, targets, radius=radius,
                                    n_samples=catalog.SENSITIVITY_SAMPLES, seed=2)
    got = {}
    for name in ("sparseness", "complexity", "relevance-mass", "relevance-rank", "mufidelity", "random-logit",
                 "max-sensitivity", "avg-sensitivity"):
        got.update(_scores(name, setup, seed=2))
    assert sorted(got) == sorted(expected)
    for column in expected:
        np.testing.assert_allclose(got[column], expected[column], rtol=1e-6, err_msg=column)


def test_cost_adds_the_explainers_passes():
    class Fake:
        def forward_passes(self):
            return 7.0

    metric = catalog.Metric("x", "X", "robustness", False, ("x",), lambda *a: {"x": np.zeros(1)}, 2.0,
                            explanations=3.0, needs_explainer=True)
    assert metric.cost(Fake()) == 2.0 + 3.0 * 7.0


def test_a_metric_giving_the_wrong_count_is_refused():
    metric = catalog.Metric("bad", "Bad", "complexity", True, ("bad",), lambda *a: {"bad": np.zeros(2)}, 0)
    with pytest.raises(ValueError, match=r"metric 'bad' gave 2 values of bad for 3 images"):
        metric(None, None, np.zeros((3, 4, 4, 1)), np.zeros((3, 4, 4)), np.zeros(3, int))
