"""L-CAM's training loss (Gkartzonika, Gkalelis, Mezaris, "Learning visual explanations for
DCNN-based image classifiers using an attention mechanism", ECCV-W 2022, Eq. 6-8, with the
coefficients of the authors' code github.com/bmezaris/L-CAM):

    L = 1.5 CE(logits, labels) + 2 mean((M + 0.0005)^0.3) + 0.01 TV(M)

M are the attention masks a_c at feature resolution; `loss="ce"` keeps only 1.5 CE (the paper's
starred ablation rows).
"""
from __future__ import annotations

from typing import Dict

import tensorflow as tf

LOSSES = ("full", "ce")
CE_COEF = 1.5
AREA_COEF = 2.0
TV_COEF = 0.01
AREA_POWER = 0.3
AREA_EPS = 0.0005
TV_POWER = 2
TV_BORDER_PENALTY = 0.3


def cross_entropy(logits: tf.Tensor, labels: tf.Tensor) -> tf.Tensor:
    """Mean softmax cross-entropy of integer `labels` under `logits` (torch nn.CrossEntropyLoss)."""
    logits = tf.cast(logits, tf.float32)
    return tf.reduce_mean(
        tf.nn.sparse_softmax_cross_entropy_with_logits(labels=tf.cast(labels, tf.int32), logits=logits)
    )


def area_loss(masks: tf.Tensor, power: float = AREA_POWER, eps: float = AREA_EPS) -> tf.Tensor:
    """Average (area) term, paper Eq. 7 / official `area_loss`: mean((M + 0.0005) ** 0.3).

    The 0.0005 keeps the derivative of the power finite at M = 0.
    """
    masks = tf.cast(masks, tf.float32)
    return tf.reduce_mean(tf.pow(masks + eps, power))


def total_variation_loss(masks: tf.Tensor, power: int = TV_POWER, border_penalty: float = TV_BORDER_PENALTY) -> tf.Tensor:
    """Total variation with border term, paper Eq. 8 / official `smoothness_loss` (Dabkowski 2017).

    For masks M of shape (N, h, w):
    [sum |M[i+1,j] - M[i,j]|^2 + sum |M[i,j+1] - M[i,j]|^2
     + 0.3 * sum(M[last row]^2 + M[first row]^2 + M[last col]^2 + M[first col]^2)] / (2 N)
    (the corners appear in both a row and a column sum, as in the official code; the division is
    by power * batch size).
    """
    m = tf.cast(masks, tf.float32)
    n = tf.cast(tf.shape(m)[0], tf.float32)
    x_loss = tf.reduce_sum(tf.pow(tf.abs(m[:, 1:, :] - m[:, :-1, :]), power))
    y_loss = tf.reduce_sum(tf.pow(tf.abs(m[:, :, 1:] - m[:, :, :-1]), power))
    border = border_penalty * tf.reduce_sum(
        tf.pow(m[:, -1, :], power) + tf.pow(m[:, 0, :], power)
    ) + border_penalty * tf.reduce_sum(tf.pow(m[:, :, -1], power) + tf.pow(m[:, :, 0], power))
    return (x_loss + y_loss + border) / (float(power) * n)


def lcam_loss(logits: tf.Tensor, labels: tf.Tensor, masks: tf.Tensor, loss: str = "full") -> Dict[str, tf.Tensor]:
    """Paper Eq. 6 with the official coefficients; returns the weighted terms and their sum.

    {"ce": 1.5 CE, "area": 2 area_loss(M), "tv": 0.01 TV(M), "loss": their sum}. With
    loss="ce" (the paper's L-CAM-Fm* / L-CAM-Img* ablation) area and tv are 0 and loss = 1.5 CE.
    """
    if loss not in LOSSES:
        raise ValueError(f"loss must be one of {LOSSES}, got {loss!r}")
    ce = CE_COEF * cross_entropy(logits, labels)
    if loss == "ce":
        zero = tf.zeros((), tf.float32)
        return {"loss": ce, "ce": ce, "area": zero, "tv": zero}
    area = AREA_COEF * area_loss(masks)
    tv = TV_COEF * total_variation_loss(masks)
    return {"loss": ce + area + tv, "ce": ce, "area": area, "tv": tv}
