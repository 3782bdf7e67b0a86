"""Feature CAM: each version/experiment formula on hand-made arrays, the explainer, all_combinations."""
import numpy as np
import pytest

import cams
from cams.methods.feature_cam import edges as cams_edges
from cams.methods import feature_cam as fcm
from cams_models import conv_gap_dense, images

# 1 image of 2x2: edges F, grey image G, base CAM M
F = np.array([[[0.0, 1.0], [0.5, 0.25]]], np.float32)
G = np.array([[[0.3, 0.6], [0.9, 0.0]]], np.float32)
M = np.array([[[0.0, 0.5], [1.0, 0.2]]], np.float32)


def test_versions_by_hand():
    np.testing.assert_allclose(fcm.version_feature(F, G), F)
    # 2/3 G + 1/3 F: 0.2 + 0, 0.4 + 1/3, 0.6 + 1/6, 0 + 1/12
    np.testing.assert_allclose(fcm.version_blend21(F, G), [[[0.2, 0.4 + 1 / 3], [0.6 + 1 / 6, 1 / 12]]], rtol=1e-6)
    # 1/2 G + 1/2 F
    np.testing.assert_allclose(fcm.version_blend11(F, G), [[[0.15, 0.8], [0.7, 0.125]]], rtol=1e-6)


def test_add_is_normalised_k_v_plus_m():
    # 0.25 F + M = [[0, 0.75], [1.125, 0.2625]]; min 0, max 1.125
    out = fcm.experiment_add(F, M, k=0.25)
    np.testing.assert_allclose(out, [[[0.0, 0.75 / 1.125], [1.0, 0.2625 / 1.125]]], rtol=1e-6)
    # k = 0 gives back M min-max normalised (M already spans [0, 1])
    np.testing.assert_allclose(fcm.experiment_add(F, M, k=0.0), M)
    # a larger k pulls the map towards the edges: k = 1 -> F + M = [[0, 1.5], [1.5, 0.45]]
    np.testing.assert_allclose(fcm.experiment_add(F, M, k=1.0), [[[0.0, 1.0], [1.0, 0.3]]], rtol=1e-6)


def test_multiply_and_complement_by_hand():
    v = fcm.version_blend11(F, G)  # [[0.15, 0.8], [0.7, 0.125]]
    np.testing.assert_allclose(fcm.experiment_multiply(v, M), [[[0.0, 0.4], [0.7, 0.025]]], rtol=1e-6)
    np.testing.assert_allclose(fcm.experiment_complement(v, M), [[[0.0, 0.1], [0.3, 0.175]]], rtol=1e-6)
    # complement of feature alone: (1 - F) * M -> an edge pixel (F = 1) is cut out of the map
    np.testing.assert_allclose(fcm.experiment_complement(F, M), [[[0.0, 0.0], [0.5, 0.15]]], rtol=1e-6)


def test_combine_gives_all_nine_in_unit_range_and_matches_the_formulas():
    rng = np.random.default_rng(1)
    m, f, g = (rng.random((3, 5, 6)).astype(np.float32) for _ in range(3))
    out = fcm.combine(m, f, g)
    assert sorted(out) == sorted((v, e) for v in fcm.VERSIONS for e in fcm.EXPERIMENTS)
    for (v, e), maps in out.items():
        assert maps.shape == (3, 5, 6) and maps.dtype == np.float32
        assert maps.min() >= 0.0 and maps.max() <= 1.0
    v21 = 2 / 3 * g + 1 / 3 * f
    np.testing.assert_allclose(out[("blend21", "multiply")], v21 * m, rtol=1e-5)
    s = 0.25 * f + m
    lo, hi = s.min(axis=(1, 2), keepdims=True), s.max(axis=(1, 2), keepdims=True)
    np.testing.assert_allclose(out[("feature", "add")], (s - lo) / (hi - lo), rtol=1e-5, atol=1e-6)


def test_normalise_constant_map_is_zeros():
    out = fcm.normalise(np.full((2, 3, 3), 0.7, np.float32))
    assert np.array_equal(out, np.zeros((2, 3, 3), np.float32))


def test_combine_rejects_mismatched_shapes_and_unknown_names():
    with pytest.raises(ValueError, match="share one shape"):
        fcm.combine(M, F[:, :1], G)
    with pytest.raises(ValueError, match="version must be one of 'feature', 'blend21', 'blend11'"):
        fcm.combine(M, F, G, [("blend31", "add")])


@pytest.fixture(scope="module")
def model():
    import keras

    keras.utils.set_random_seed(0)
    return conv_gap_dense(size=24, softmax=True)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"base": "scorecam"}, "base must be one of 'gradcam', 'gradcam\\+\\+', 'smoothgradcam\\+\\+', .*got 'scorecam'"),
        ({"edges": "sobel"}, "edges must be one of 'hed', 'canny', got 'sobel'"),
        ({"version": "blend12"}, "version must be one of 'feature', 'blend21', 'blend11', got 'blend12'"),
        ({"experiment": "subtract"}, "experiment must be one of 'add', 'multiply', 'complement', got 'subtract'"),
        ({"k": -0.1}, "k must be a finite number >= 0"),
        ({"k": float("nan")}, "k must be a finite number >= 0"),
        ({"layer": "nope"}, "no layer named 'nope'"),
    ],
)
def test_bad_arguments_are_clear_value_errors(model, kwargs, message):
    with pytest.raises(ValueError, match=message):
        cams.FeatureCAM(model, **kwargs)


def test_call_returns_unit_maps_built_on_the_existing_base_explainer(model):
    x = images(3, 24)
    fc = cams.FeatureCAM(model, base="gradcam", edges="canny", version="blend11", experiment="multiply")
    maps = fc(x)
    assert maps.shape == (3, 24, 24) and maps.dtype == np.float32
    assert 0.0 <= maps.min() and maps.max() <= 1.0
    base = cams.GradCAM(model)(x)
    assert isinstance(fc.base_explainer, cams.GradCAM)
    v = 0.5 * cams_edges.grey_images(x) + 0.5 * cams_edges.canny_edges(x)
    np.testing.assert_allclose(maps, v * base, atol=1e-6)
    # numpy scalars are numbers too
    assert cams.FeatureCAM(model, edges="canny", k=np.float32(0.5)).k == 0.5
    # targets reach the base CAM
    np.testing.assert_allclose(fc(x, targets=2), v * cams.GradCAM(model)(x, targets=2), atol=1e-6)


class _Counting:
    def __init__(self, fn):
        self.fn, self.calls = fn, 0

    def __call__(self, *args, **kwargs):
        self.calls += 1
        return self.fn(*args, **kwargs)


def test_all_combinations_computes_base_and_edges_once(model, monkeypatch):
    x = images(4, 24)
    fc = cams.FeatureCAM(model, base="gradcam++", edges="canny")
    edges = _Counting(cams_edges.canny_edges)
    monkeypatch.setitem(cams_edges.EDGE_METHODS, "canny", edges)
    fc.base_explainer = base = _Counting(fc.base_explainer)
    res = fc.all_combinations(x)
    assert (edges.calls, base.calls) == (1, 1)
    assert len(res.maps) == 9
    assert set(res.top_five()) == {"add·feature", "add·blend21", "add·blend11", "complement·feature", "complement·blend11"}
    np.testing.assert_allclose(res.base, cams.GradCAMPlusPlus(model)(x), atol=1e-6)
    # precomputed edges skip the detector entirely
    res2 = fc.all_combinations(x, edges=res.edges)
    assert (edges.calls, base.calls) == (1, 2)
    np.testing.assert_allclose(res2[("feature", "add")], res[("feature", "add")])
    # each combination equals a single-combination explainer's output
    for v, e in [("blend21", "add"), ("feature", "complement"), ("blend11", "multiply")]:
        single = cams.FeatureCAM(model, base="gradcam++", edges="canny", version=v, experiment=e)(x)
        np.testing.assert_allclose(res[(v, e)], single, atol=1e-6)


def test_precomputed_edges_of_wrong_shape_are_rejected(model):
    fc = cams.FeatureCAM(model, edges="canny")
    with pytest.raises(ValueError, match=r"edges must have shape \(2, 24, 24\)"):
        fc(images(2, 24), edges=np.zeros((2, 12, 12), np.float32))


def test_grey_model_with_hed(monkeypatch):
    """A 1-channel 28x28 model: HED gets a 3-channel upsampled copy; maps come back at 28x28."""
    m = conv_gap_dense(size=28, channels=1, softmax=True)
    x = np.zeros((2, 28, 28, 1), np.float32)
    x[:, 8:20, 10:18] = 1.0
    fc = cams.FeatureCAM(m, base="smoothgradcam++", edges="hed", version="feature", experiment="add",
                         base_options={"n_samples": 2, "seed": 0})
    res = fc.all_combinations(x)
    assert res.edges.shape == (2, 28, 28) and res[("feature", "add")].shape == (2, 28, 28)
    assert 0.0 <= res[("feature", "add")].min() and res[("feature", "add")].max() <= 1.0
