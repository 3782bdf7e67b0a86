"""Segmentation and box targets on tiny keras_hub models built from their configs (random weights,
offline): DeepLabV3 (a Segmentation target) and RetinaNet (a BoxScore target with keras_hub's own
anchors and box decoding). Scores are checked against numpy on the models' own outputs; every
applicable method of the registry gives valid maps."""
from __future__ import annotations

import numpy as np
import pytest

keras_hub = pytest.importorskip("keras_hub")
import keras  # noqa: E402
import tensorflow as tf  # noqa: E402

import cams  # noqa: E402
from cams import targets as T  # noqa: E402
from cams.core import model_graph  # noqa: E402
from cams.methods import registry  # noqa: E402

S = 32
QUICK = {"n_masks": 16, "seed": 0, "max_channels": 3, "n_samples": 2, "n_steps": 2, "steps": 2}


def softmax(z):
    e = np.exp(z - z.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)


def resnet():
    return keras_hub.models.ResNetBackbone(
        input_conv_filters=[64], input_conv_kernel_sizes=[3], stackwise_num_filters=[64, 16, 16],
        stackwise_num_blocks=[1, 1, 1], stackwise_num_strides=[1, 2, 2], block_type="basic_block",
        use_pre_activation=False, image_shape=(S, S, 3))


@pytest.fixture(scope="module")
def images():
    return np.random.default_rng(0).random((2, S, S, 3), dtype=np.float32)


@pytest.fixture(scope="module")
def deeplab():
    keras.utils.set_random_seed(0)
    backbone = keras_hub.models.DeepLabV3Backbone(
        image_encoder=resnet(), spatial_pyramid_pooling_key="P3", upsampling_size=2, dilation_rates=[1, 2],
        low_level_feature_key="P2", projection_filters=8, image_shape=(S, S, 3))
    return keras_hub.models.DeepLabV3ImageSegmenter(backbone=backbone, num_classes=3, activation="softmax")


@pytest.fixture(scope="module")
def retinanet():
    keras.utils.set_random_seed(0)
    backbone = keras_hub.models.RetinaNetBackbone(image_encoder=resnet(), min_level=3, max_level=4, use_p5=False,
                                                  image_shape=(S, S, 3))
    return keras_hub.models.RetinaNetObjectDetector(backbone=backbone, num_classes=2, pre_logits_num_conv_layers=1)


SEG_LAYER = "deep_lab_v3_backbone/segmentation_head_relu"
DET_LAYER = "retina_net_backbone/backbone/stack2_block0_out"


def test_deeplab_segmentation_score_is_the_pre_softmax_sum_over_the_mask(deeplab, images):
    _, z = model_graph.forward(deeplab, tf.constant(images))  # the model's scores before its softmax
    z = z.numpy()
    np.testing.assert_allclose(softmax(z), deeplab.predict(images, verbose=0), atol=5e-3)
    mask = np.zeros((S, S), np.float32)
    mask[4:20, 8:24] = 1
    np.testing.assert_allclose(T.evaluate_targets(deeplab, images, T.Segmentation(2, mask)),
                               (z[..., 2] * mask).sum((1, 2)), rtol=1e-5)
    predicted = z.argmax(-1) == 1
    np.testing.assert_allclose(T.evaluate_targets(deeplab, images, T.Segmentation(1)),
                               (z[..., 1] * predicted).sum((1, 2)), rtol=1e-5, atol=1e-4)


def _decoded(model, images):
    """keras_hub RetinaNet's raw predictions in numpy: anchors (its own generator, yxyx) + center_xywh deltas."""
    out = model(images)
    anchors = np.concatenate([a.numpy() for a in model.anchor_generator(images).values()])
    d = out["bbox_regression"].numpy()
    cy, cx = (anchors[:, 0] + anchors[:, 2]) / 2, (anchors[:, 1] + anchors[:, 3]) / 2
    h, w = anchors[:, 2] - anchors[:, 0], anchors[:, 3] - anchors[:, 1]
    bx, by = d[..., 0] * w + cx, d[..., 1] * h + cy
    bw, bh = np.exp(d[..., 2]) * w, np.exp(d[..., 3]) * h
    boxes = np.stack([by - bh / 2, bx - bw / 2, by + bh / 2, bx + bw / 2], -1)  # yxyx, the model's format
    return boxes, out["cls_logits"].numpy()


def _iou(a, b):
    lo, hi = np.maximum(a[..., :2], b[:2]), np.minimum(a[..., 2:], b[2:])
    inter = np.prod(np.clip(hi - lo, 0, None), -1)
    return inter / (np.prod(a[..., 2:] - a[..., :2], -1) + np.prod(b[2:] - b[:2]) - inter)


def test_retinanet_box_score_matches_numpy_decoding(retinanet, images):
    boxes, logits = _decoded(retinanet, images)
    given = boxes[0, 37]  # a raw prediction's own box: at least one match (itself)
    target = T.BoxScore([given], [1], iou=0.5)
    expected = [(logits[i, :, 1] * (_iou(boxes[i], given) >= 0.5)).sum() for i in range(len(images))]
    assert (_iou(boxes[0], given) >= 0.5).sum() >= 1
    np.testing.assert_allclose(T.evaluate_targets(retinanet, images, target), expected, rtol=1e-4, atol=1e-4)


#: one method per way of scoring a target: a gradient CAM at a layer, Score-CAM's per-channel and RISE's
#: random perturbed copies (test_targets.py covers the other methods on small closed-form models)
METHODS = {"gradcam": {}, "scorecam": {"max_channels": 2, "batch_size": 2}, "rise": {"n_masks": 8, "seed": 0}}


@pytest.mark.parametrize("which", ["deeplab", "retinanet"])
def test_methods_give_valid_maps_for_dense_targets(which, request, images):
    model = request.getfixturevalue(which)
    if which == "deeplab":
        mask = np.zeros((S, S), np.float32)
        mask[8:24, 8:24] = 1
        layer, target = SEG_LAYER, T.Segmentation(1, mask)
    else:
        layer, target = DET_LAYER, T.BoxScore([_decoded(model, images)[0][0, 37]], [1])
    nonzero = 0
    for name, options in METHODS.items():
        if registry.get(name).uses_layer:
            options = {**options, "layer": layer}
        maps = cams.make_explainer(name, model, **options)(images[:1], targets=target)
        assert maps.shape == (1, S, S) and np.isfinite(maps).all(), (name, which)
        assert maps.min() >= 0 and maps.max() <= 1, (name, which)  # random weights: a ReLU may zero a map
        nonzero += bool(maps.max() > 0)
    assert nonzero >= 2  # most maps show something
    scores = cams.metrics.ad_ic(model, images[:1], maps, targets=target)  # the metrics score the same target
    assert len(scores) == 6 and all(np.isfinite(v) for v in scores.values())
