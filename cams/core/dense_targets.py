"""Targets of dense outputs: a segmentation map (`Segmentation`) and a detector's raw predictions (`BoxScore`).

Segmentation (as pytorch-grad-cam's SemanticSegmentationTarget, on pre-softmax scores):
    S = sum_p m(p) z_k(p), z (B, h, w, C) the pre-softmax scores, m the mask resized to h x w
    (nearest), or m(p) = [argmax_c z_c(p) = k] when no mask is given.
BoxScore (the counterpart of pytorch-grad-cam's FasterRCNNBoxScoreTarget for raw, pre-NMS predictions):
    S = sum_j sum_a [IoU(b_a, B_j) >= iou] s_a(l_j), b_a the decoded box of raw prediction a, s_a its
    raw class scores, (B_j, l_j) the given boxes and labels. The match is not differentiated: the
    gradient flows through the class scores of the matched predictions. The matches are made on the
    image explained; its perturbed copies (Score-CAM, RISE, Ablation-CAM, metrics) are scored on the
    same raw predictions, whose boxes move as the input changes.
"""
from __future__ import annotations

import copy
import weakref
from typing import Callable, Optional

import keras
import numpy as np
import tensorflow as tf

from cams.core.targets import Target, _index, _OneOutput

CORNER_FORMATS = ("xyxy", "yxyx")
_PREDICTED = np.ones((1, 1), np.float32)  # stands for "the pixels predicted as the category", once fixed


class Segmentation(_OneOutput):
    """S = sum over the mask's pixels of category k's pre-softmax score.

    Args:
        category: k, the category (channel) of the (N, h, w, C) output.
        mask: (H, W) array, nonzero inside (any resolution: resized to h x w, nearest); None: the
            pixels the model predicts as k (argmax over categories), recomputed on every input.
    """

    ranks = (4,)
    what = "(N, h, w, categories)"

    def __init__(self, category: int, mask=None):
        self.category = _index(category, "Segmentation(category)")
        self.mask = None if mask is None else _mask_array(mask)

    def key(self):
        return ("Segmentation", self.mask is None)

    def params(self):
        c = np.int32(self.category)
        return (c,) if self.mask is None else (c, self.mask)

    def check_shape(self, shape):
        if shape[-1] is not None and self.category >= shape[-1]:
            raise ValueError(f"category {self.category} is out of range: the output {shape} has {shape[-1]} "
                             f"categories (0..{shape[-1] - 1})")

    def resolved(self):
        if self.mask is not None:
            return self
        fixed = copy.copy(self)
        fixed.mask = _PREDICTED  # the mask parameter now holds the predicted pixels
        return fixed

    def resolve_params(self, outputs, params, images):
        if self.mask is not None:
            return params
        z = self.tensor(outputs)
        predicted = tf.equal(tf.argmax(z, axis=-1, output_type=tf.int32), params[0][:, None, None])
        return params[0], tf.cast(predicted, tf.float32)

    def _weights(self, z, params):
        """(scores of category k (B, h, w), mask (B, h, w)) in float32."""
        zk = tf.gather(z, params[0], axis=3, batch_dims=1)
        if self.mask is None:
            m = tf.cast(tf.equal(tf.argmax(z, axis=-1, output_type=tf.int32), params[0][:, None, None]), tf.float32)
        else:
            m = tf.image.resize(params[1][..., None], tf.shape(z)[1:3], method="nearest")[..., 0]
        return zk, tf.stop_gradient(m)

    def score(self, outputs, params, images):
        zk, m = self._weights(self.tensor(outputs), params)
        return tf.reduce_sum(zk * m, axis=[1, 2])

    def probability(self, outputs, params, images):
        """Mean over the mask of softmax(z)_k (0 for an empty predicted mask)."""
        z = self.tensor(outputs)
        _, m = self._weights(z, params)
        pk = tf.gather(tf.nn.softmax(z, axis=-1), params[0], axis=3, batch_dims=1)
        return tf.math.divide_no_nan(tf.reduce_sum(pk * m, axis=[1, 2]), tf.reduce_sum(m, axis=[1, 2]))

    def __repr__(self):
        return f"Segmentation({self.category}{'' if self.mask is None else ', mask'})"


def _mask_array(mask) -> np.ndarray:
    try:
        m = np.asarray(mask, dtype=np.float32)
    except (TypeError, ValueError) as err:
        raise ValueError(f"Segmentation mask must be a numeric (H, W) array: {err}") from None
    if m.ndim == 3 and m.shape[-1] == 1:
        m = m[..., 0]
    if m.ndim != 2:
        raise ValueError(f"Segmentation mask must have shape (H, W), got {m.shape}")
    if not np.isfinite(m).all():
        raise ValueError("Segmentation mask contains NaN or infinite values")
    if not (m != 0).any():
        raise ValueError("Segmentation mask is empty (no nonzero pixel): the score would be 0 and the map flat")
    return (m != 0).astype(np.float32)


def pairwise_iou(a: tf.Tensor, b: tf.Tensor) -> tf.Tensor:
    """IoU of every box of a (B, A, 4) with every box of b (B, K, 4), both corner boxes (x1 y1 x2 y2
    or y1 x1 y2 x2, the same for both): (B, A, K); 0 where the union is empty."""
    lo = tf.maximum(a[:, :, None, :2], b[:, None, :, :2])
    hi = tf.minimum(a[:, :, None, 2:], b[:, None, :, 2:])
    inter = tf.reduce_prod(tf.nn.relu(hi - lo), axis=-1)
    area_a = tf.reduce_prod(tf.nn.relu(a[..., 2:] - a[..., :2]), axis=-1)
    area_b = tf.reduce_prod(tf.nn.relu(b[..., 2:] - b[..., :2]), axis=-1)
    return tf.math.divide_no_nan(inter, area_a[:, :, None] + area_b[:, None, :] - inter)


_DECODERS: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()


def keras_hub_decoder(model) -> Optional[Callable]:
    """decode(outputs, images) -> (boxes (B, A, 4) in `model.bounding_box_format`, raw class scores
    (B, A, C)) for a keras_hub RetinaNet-style detector (outputs "bbox_regression", "cls_logits" and an
    `anchor_generator`), as its `decode_predictions` does before non-max suppression; None otherwise.
    Cached per model, so every call shares one compiled function."""
    if model in _DECODERS:
        return _DECODERS[model]
    gen, fmt = getattr(model, "anchor_generator", None), getattr(model, "bounding_box_format", None)
    struct = getattr(model, "_outputs_struct", None)
    names = set(struct) if isinstance(struct, dict) else set()
    decode = None
    if gen is not None and fmt is not None and {"bbox_regression", "cls_logits"} <= names:
        shape = tuple(model.inputs[0].shape[1:])
        fixed = None if None in shape else np.concatenate(  # a fixed input size: the anchors once
            [np.asarray(a) for a in gen(np.zeros((1, *shape), np.float32)).values()])

        def retinanet_decode(outputs, images):
            size = shape if fixed is not None else tuple(images.shape[1:])
            anchors = fixed if fixed is not None else keras.ops.concatenate(list(gen(images).values()), axis=0)
            boxes = keras.utils.bounding_boxes.decode_deltas_to_boxes(
                anchors=anchors, boxes_delta=outputs["bbox_regression"], encoded_format="center_xywh",
                anchor_format=gen.bounding_box_format, box_format=fmt, image_shape=size)
            return boxes, outputs["cls_logits"]

        decode = retinanet_decode
    _DECODERS[model] = decode
    return decode


class BoxScore(Target):
    """S = sum over the given boxes of the raw class scores of the raw predictions matching them.

    Args:
        boxes: (K, 4) boxes in pixels, in `box_format`.
        labels: K class indices, one per box (the score of that class is summed).
        iou: the IoU from which a decoded prediction matches a box.
        decode: `decode(outputs, images) -> (boxes (B, A, 4), scores (B, A, C))`, the model's raw
            predictions as boxes in `box_format` and their raw class scores; None: keras_hub's
            RetinaNet decoding (anchors + deltas, `keras_hub_decoder`).
        box_format: "xyxy", "yxyx" or any keras.utils.bounding_boxes format; None: the model's
            `bounding_box_format` (keras_hub), else "xyxy".
        from_logits: the class scores are logits (probability: mean sigmoid over the matches);
            False: they are probabilities already.
    """

    def __init__(self, boxes, labels, iou: float = 0.5, decode: Optional[Callable] = None,
                 box_format: Optional[str] = None, from_logits: bool = True):
        b = np.asarray(boxes, dtype=np.float32)
        b = b[None] if b.ndim == 1 else b
        if b.ndim != 2 or b.shape[-1] != 4 or len(b) == 0 or not np.isfinite(b).all():
            raise ValueError(f"BoxScore boxes must be a finite (K, 4) array with K >= 1, got shape {np.shape(boxes)}")
        lab = np.atleast_1d(np.asarray(labels))
        if lab.shape != (len(b),) or not np.issubdtype(lab.dtype, np.integer) or (lab < 0).any():
            raise ValueError(f"BoxScore labels must be {len(b)} class indices >= 0 (one per box), got {labels!r}")
        if not 0.0 < float(iou) <= 1.0:
            raise ValueError(f"BoxScore iou must be in (0, 1], got {iou}")
        self.boxes, self.labels, self.iou = b, lab.astype(np.int32), float(iou)
        self.decode, self.box_format, self.from_logits = decode, box_format, bool(from_logits)
        self.matched = False  # True once the matches are fixed on the clean image (`resolved`)

    def key(self):
        return ("BoxScore", id(self.decode), self.box_format, self.from_logits, self.matched)

    def params(self):
        return self.boxes, self.labels, np.ones(len(self.boxes), np.float32), np.float32(self.iou)

    @staticmethod
    def stack(rows):
        k = max(len(r[0]) for r in rows)
        pad = [(np.pad(r[0], ((0, k - len(r[0])), (0, 0))), np.pad(r[1], (0, k - len(r[1]))),
                np.pad(r[2], (0, k - len(r[2]))), r[3]) for r in rows]
        return tuple(np.stack([r[i] for r in pad]) for i in range(4))

    def check(self, info, model):
        decode = self.decode or keras_hub_decoder(model)
        if decode is None:
            raise ValueError(f"BoxScore cannot decode the outputs of model {info.model_name!r} ({info.describe()}): "
                             "pass decode=fn(outputs, images) -> (boxes (B, A, 4), class scores (B, A, C))")
        fmt = self.box_format or getattr(model, "bounding_box_format", None) or "xyxy"
        n_classes = getattr(model, "num_classes", None) if self.decode is None else None
        if isinstance(n_classes, int) and (self.labels >= n_classes).any():
            raise ValueError(f"BoxScore label {int(self.labels.max())} is out of range: model {info.model_name!r} "
                             f"detects {n_classes} classes (0..{n_classes - 1})")
        checked = BoxScore(self.boxes, self.labels, self.iou, decode, fmt, self.from_logits)
        return checked

    def resolved(self):
        fixed = copy.copy(self)
        fixed.matched = True
        return fixed

    def resolve_params(self, outputs, params, images):
        """(matches (B, A, K), labels (B, K)) on the clean image: perturbed copies (Score-CAM, RISE,
        Ablation-CAM, metrics) are scored on the predictions that matched there, not on new matches."""
        if self.matched:
            return params
        hit, _ = self._matches(outputs, params, images)
        return hit, params[1]

    def _matches(self, outputs, params, images):
        """(match weights (B, A, K), class scores of the labels (B, A, K)), float32."""
        boxes, scores = self.decode(outputs, images)
        if self.matched:
            hit, labels = params
            return hit, tf.gather(tf.cast(scores, tf.float32), labels, axis=2, batch_dims=1)
        given, labels, valid, iou = params
        boxes = tf.stop_gradient(tf.cast(boxes, tf.float32))
        if self.box_format not in CORNER_FORMATS:
            size = dict(height=tf.shape(images)[1], width=tf.shape(images)[2])
            boxes = keras.utils.bounding_boxes.convert_format(boxes, self.box_format, "xyxy", **size)
            given = keras.utils.bounding_boxes.convert_format(given, self.box_format, "xyxy", **size)
        hit = tf.cast(pairwise_iou(boxes, given) >= iou[:, None, None], tf.float32) * valid[:, None, :]
        picked = tf.gather(tf.cast(scores, tf.float32), labels, axis=2, batch_dims=1)
        return tf.stop_gradient(hit), picked

    def score(self, outputs, params, images):
        hit, picked = self._matches(outputs, params, images)
        return tf.reduce_sum(hit * picked, axis=[1, 2])

    def probability(self, outputs, params, images):
        hit, picked = self._matches(outputs, params, images)
        p = tf.sigmoid(picked) if self.from_logits else picked
        return tf.math.divide_no_nan(tf.reduce_sum(hit * p, axis=[1, 2]), tf.reduce_sum(hit, axis=[1, 2]))

    def __repr__(self):
        return f"BoxScore({len(self.boxes)} boxes, labels {self.labels.tolist()}, iou={self.iou})"


__all__ = ["BoxScore", "Segmentation", "keras_hub_decoder", "pairwise_iou"]
