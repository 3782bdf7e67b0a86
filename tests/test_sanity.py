"""Adebayo et al.'s randomisation tests (cams.sanity) and the similarity measures (cams.metrics.similarity)."""
import keras
import numpy as np
import pytest
from scipy.stats import spearmanr

from cams.metrics import similarity as sim
from cams.sanity import Randomiser, data_randomisation, group_by_prefix, permuted_labels, sanity_check
from cams.sanity.checks import SanityCheck
from cams.sanity.randomise import copy_model
from cams_models import images

SIZE = 12


def tiny_cnn():
    """conv1 -> bn -> conv2 (feature layer) -> GAP -> dense; 3 classes."""
    inp = keras.Input((SIZE, SIZE, 3))
    x = keras.layers.Conv2D(4, 3, activation="relu", name="conv1")(inp)
    x = keras.layers.BatchNormalization(name="bn")(x)
    x = keras.layers.Conv2D(6, 3, activation="relu", name="conv2")(x)
    x = keras.layers.GlobalAveragePooling2D(name="gap")(x)
    out = keras.layers.Dense(3, name="dense")(x)
    model = keras.Model(inp, out)
    bn = model.get_layer("bn")  # non-default BN statistics, so re-initialising them shows
    bn.set_weights([w + 0.5 for w in bn.get_weights()])
    return model


def linear_model(classes=3):
    inp = keras.Input((SIZE, SIZE, 1))
    out = keras.layers.Dense(classes, name="logits")(keras.layers.Flatten()(inp))
    return keras.Model(inp, out)


@pytest.fixture(scope="module")
def cnn():
    keras.utils.set_random_seed(1)
    return tiny_cnn()


def weights_of(model):
    """{"layer/weight": value} of every weight."""
    return {f"{layer.name}/{v.name}": v.numpy() for layer in model.layers for v in layer.weights}


def changed_layers(model, original):
    now, before = weights_of(model), weights_of(original)
    return sorted({k.split("/")[0] for k in now if not np.array_equal(now[k], before[k])})


# ---------------------------------------------------------------- similarity measures
def test_identical_maps_give_one_everywhere():
    a = np.random.default_rng(0).random((3, 16, 16))
    for name, values in sim.similarities(a, a.copy()).items():
        np.testing.assert_allclose(values, 1.0, atol=1e-12, err_msg=name)


def test_negated_map_spearman_minus_one_abs_one():
    a = np.random.default_rng(1).normal(size=(2, 10, 10))
    np.testing.assert_allclose(sim.spearman(a, -a), -1.0)
    np.testing.assert_allclose(sim.spearman_abs(a, -a), 1.0)
    np.testing.assert_allclose(sim.ssim(a, -a), 1.0)  # SSIM and HOG compare |a|
    np.testing.assert_allclose(sim.hog_pearson(a, -a), 1.0)


def test_spearman_agrees_with_scipy_including_ties():
    rng = np.random.default_rng(2)
    a = rng.integers(0, 5, (4, 9, 9)).astype(float)  # many ties
    b = a + rng.normal(size=a.shape)
    got = sim.spearman(a, b)
    want = [spearmanr(p.ravel(), q.ravel()).statistic for p, q in zip(a, b)]
    np.testing.assert_allclose(got, want, atol=1e-12)
    want_abs = [spearmanr(np.abs(p).ravel(), np.abs(q).ravel()).statistic for p, q in zip(a - 2, b - 2)]
    np.testing.assert_allclose(sim.spearman_abs(a - 2, b - 2), want_abs, atol=1e-12)


def test_rank_and_hog_measures_ignore_monotone_and_scale_changes():
    a = np.random.default_rng(3).random((2, 16, 16))
    np.testing.assert_allclose(sim.spearman(a, a ** 3 + 1), 1.0)  # ranks unchanged
    np.testing.assert_allclose(sim.hog_pearson(a, 2.5 * a), 1.0, atol=1e-9)  # block-normalised HOG
    assert np.all(sim.hog_pearson(a, np.rot90(a, axes=(1, 2))) < 0.9)


def test_constant_map_counts_as_decorrelated():
    a = np.random.default_rng(4).random((1, 8, 8))
    zero = np.zeros_like(a)
    assert sim.spearman(a, zero)[0] == 0.0 and sim.hog_pearson(a, zero)[0] == 0.0
    assert sim.spearman(zero, zero)[0] == 1.0 and sim.ssim(zero, zero)[0] == 1.0


def test_similarity_refuses_mismatched_shapes():
    with pytest.raises(ValueError, match="one shape"):
        sim.spearman(np.zeros((1, 4, 4)), np.zeros((1, 4, 5)))


# ---------------------------------------------------------------- the randomised copy
def test_cascading_changes_exactly_the_top_k_layers(cnn):
    r = Randomiser(cnn, seed=0)
    top_down = ["dense", "conv2", "bn", "conv1"]
    assert [b.name for b in r.top_down()] == top_down
    for step, block in r.cascading():
        assert block.name == top_down[step - 1]
        assert changed_layers(r.model, cnn) == sorted(top_down[:step])


def test_independent_changes_exactly_one_layer(cnn):
    r = Randomiser(cnn, seed=0)
    for step, block in r.independent():
        assert changed_layers(r.model, cnn) == [block.name]
    r.restore()
    assert changed_layers(r.model, cnn) == []


def test_each_weight_gets_its_own_layers_initialiser(cnn):
    r = Randomiser(cnn, seed=0)
    r.randomise(r.blocks[1])  # bn: gamma ones, beta zeros, moving mean zeros, moving variance ones
    gamma, beta, mean, var = r.model.get_layer("bn").get_weights()
    assert np.all(gamma == 1) and np.all(beta == 0) and np.all(mean == 0) and np.all(var == 1)
    inp = keras.Input((4,))
    custom = keras.Model(inp, keras.layers.Dense(2, kernel_initializer=keras.initializers.Constant(0.25),
                                                 bias_initializer="ones", name="d")(inp))
    custom.get_layer("d").set_weights([np.zeros((4, 2)), np.zeros(2)])
    rc = Randomiser(custom)
    next(rc.cascading())
    kernel, bias = rc.model.get_layer("d").get_weights()
    assert np.all(kernel == 0.25) and np.all(bias == 1)


def test_same_seed_same_weights_other_seed_other_weights(cnn):
    def last(seed):
        r = Randomiser(cnn, seed=seed)
        list(r.cascading())
        return weights_of(r.model)

    a, b, c = last(3), last(3), last(4)
    assert all(np.array_equal(a[k], b[k]) for k in a)
    assert not np.array_equal(a["conv1/kernel"], c["conv1/kernel"])


def test_a_layer_gets_the_same_random_weights_in_both_modes(cnn):
    cascade, single = Randomiser(cnn, seed=5), Randomiser(cnn, seed=5)
    list(cascade.cascading())
    for _, block in single.independent():
        if block.name == "conv1":
            break
    np.testing.assert_array_equal(weights_of(cascade.model)["conv1/kernel"], weights_of(single.model)["conv1/kernel"])


def test_group_by_prefix_and_errors(cnn):
    inp = keras.Input((SIZE, SIZE, 1))
    x = keras.layers.Conv2D(2, 3, name="block1_conv1")(inp)
    x = keras.layers.Conv2D(2, 3, name="block1_conv2")(x)
    x = keras.layers.Conv2D(2, 3, name="block2_conv1")(x)
    out = keras.layers.Dense(2, name="predictions")(keras.layers.Flatten()(x))
    blocks = group_by_prefix(keras.Model(inp, out))
    assert [(b.name, b.layers) for b in blocks] == [("block1", ("block1_conv1", "block1_conv2")),
                                                    ("block2", ("block2_conv1",)), ("predictions", ("predictions",))]
    no_weights = keras.Sequential([keras.Input((4,)), keras.layers.Activation("relu")])
    with pytest.raises(ValueError, match="no layer with weights"):
        Randomiser(no_weights)
    with pytest.raises(ValueError, match="unknown randomisation mode"):
        SanityCheck(cnn, ["gradcam"], mode="sideways")


class Scale(keras.layers.Layer):
    """A custom layer whose weight has no `<name>_initializer` attribute."""

    def build(self, shape):
        self.w = self.add_weight(shape=(shape[-1],), initializer="ones", name="w")

    def call(self, x):
        return x * self.w


def test_weight_without_declared_initialiser_is_refused():
    inp = keras.Input((4,))
    r = Randomiser(keras.Model(inp, keras.layers.Dense(2, name="d")(Scale(name="scale")(inp))))
    with pytest.raises(ValueError, match="'scale' .*declares no initialiser for its weight 'w'"):
        list(r.cascading())


def test_copy_is_separate(cnn):
    clone = copy_model(cnn)
    assert all(a is not b for a, b in zip(clone.weights, cnn.weights))
    assert all(np.array_equal(a, b) for a, b in zip(clone.get_weights(), cnn.get_weights()))


# ---------------------------------------------------------------- the tests on maps
@pytest.fixture(scope="module")
def cascading_run(cnn):
    before = [w.tobytes() for w in cnn.get_weights()]
    check = SanityCheck(cnn, ["gradcam", "gradinput"], seed=0)
    steps = list(check.run(images(3, SIZE, 3)))
    return before, check, steps


def test_users_model_is_byte_identical_after_a_run(cnn, cascading_run):
    before, _, _ = cascading_run
    assert [w.tobytes() for w in cnn.get_weights()] == before


def test_explainers_are_compiled_once_for_every_step(cascading_run):
    _, check, steps = cascading_run
    assert [s.step for s in steps] == [0, 1, 2, 3, 4]
    for name, ex in check.explainers.items():
        assert ex._compiled.experimental_get_tracing_count() == 1, name


def test_reference_maps_are_the_original_models(cnn, cascading_run):
    from cams.methods.attribution import GradientInput
    from cams.methods.gradient import GradCAM

    x = images(3, SIZE, 3)
    _, _, steps = cascading_run
    np.testing.assert_allclose(steps[0].maps["gradcam"], GradCAM(cnn)(x), atol=1e-6)
    np.testing.assert_allclose(steps[0].maps["gradinput"], GradientInput(cnn, signed=True)(x), atol=1e-6)
    assert steps[0].maps["gradinput"].min() < 0  # the signed map


def test_step_scores_are_the_similarity_of_the_step_maps(cascading_run):
    _, _, steps = cascading_run
    ref = steps[0].maps
    for s in steps[1:]:
        for m, scores in s.scores.items():
            np.testing.assert_allclose(scores["spearman"], sim.spearman(ref[m], s.maps[m]))
            np.testing.assert_allclose(scores["hog"], sim.hog_pearson(ref[m], s.maps[m]))
    rows = [r for s in steps[1:] for r in s.rows()]
    assert {(r["method"], r["step"]) for r in rows} == {(m, k) for m in ("gradcam", "gradinput")
                                                         for k in range(1, 5)}


def test_linear_model_gradient_map_after_the_last_layer_is_random():
    """S_t = w_t . x + b_t, so dS/dx = w_t: the saliency map is |w_t| (normalised) before and after."""
    keras.utils.set_random_seed(2)
    model = linear_model()
    x = images(2, SIZE, 1, seed=3)
    targets = np.array([0, 2])
    check = SanityCheck(model, ["saliency", "gradinput"], seed=7)
    steps = list(check.run(x, targets))

    def expected(kernel):
        w = np.abs(kernel[:, targets].T.reshape(2, SIZE, SIZE))
        return (w - w.min(axis=(1, 2), keepdims=True)) / np.ptp(w, axis=(1, 2), keepdims=True)

    np.testing.assert_allclose(steps[0].maps["saliency"], expected(model.get_layer("logits").get_weights()[0]), atol=1e-5)
    r = Randomiser(model, seed=7)
    next(r.cascading())
    new_kernel = r.model.get_layer("logits").get_weights()[0]
    np.testing.assert_allclose(steps[1].maps["saliency"], expected(new_kernel), atol=1e-5)
    signed = x[..., 0] * new_kernel[:, targets].T.reshape(2, SIZE, SIZE)  # Gradient x Input = x w_t
    np.testing.assert_allclose(steps[1].maps["gradinput"], signed / np.abs(signed).max(axis=(1, 2), keepdims=True),
                               atol=1e-5)
    assert np.all(steps[1].scores["saliency"]["spearman"] < 0.5)


def test_sanity_check_table_and_modes(cnn):
    x = images(2, SIZE, 3)
    table = sanity_check(cnn, x, "gradcam", mode="independent", seed=1).table()
    assert [(r["method"], r["step"], r["layer"]) for r in table] == [
        ("gradcam", 1, "dense"), ("gradcam", 2, "conv2"), ("gradcam", 3, "bn"), ("gradcam", 4, "conv1")]
    assert all(-1 <= r[k] <= 1 for r in table for k in sim.MEASURES)


def test_data_randomisation_trains_on_permuted_labels(cnn):
    y = np.arange(12) % 3
    assert sorted(permuted_labels(y, 0)) == sorted(y) and not np.array_equal(permuted_labels(y, 0), y)
    seen = {}

    def build():
        return tiny_cnn()

    def train(model, xs, ys):
        seen["y"] = ys

    x = images(2, SIZE, 3)
    result = data_randomisation(cnn, build, train, np.zeros((12, SIZE, SIZE, 3)), y, x, ["gradcam"], seed=0)
    np.testing.assert_array_equal(seen["y"], permuted_labels(y, 0))
    assert [(r["method"], r["layer"]) for r in result.table()] == [("gradcam", "labels permuted")]
    same = data_randomisation(cnn, build, train, None, y, x, ["gradcam"], randomised_model=cnn)
    assert same.table()[0]["spearman"] == pytest.approx(1.0)
