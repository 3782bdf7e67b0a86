"""L-CAM-Fm and L-CAM-Img: a learned attention mechanism on a frozen classifier.

Gkartzonika, Gkalelis, Mezaris, "Learning visual explanations for DCNN-based image classifiers
using an attention mechanism" (ECCV-W 2022), and the authors' code (github.com/bmezaris/L-CAM).

    lcam = cams.LCAM.train(model, dataset, mode="img")   # learns one 1x1 conv, model stays frozen
    maps = lcam(images)                                   # (N, H, W) float32 in [0, 1], one pass
    lcam.save("lcam.npz"); lcam = cams.LCAM.load("lcam.npz", model)
    cams.export.export_savedmodel(model, "sm/", explain=lcam)   # a SavedModel that serves the map

The package by role:
    attention.py   the 1x1 conv attention (a Keras layer), a = sigmoid(conv(F))     (paper Eq. 3)
    losses.py      1.5 CE + 2 mean((M + 0.0005)^0.3) + 0.01 TV(M)                 (paper Eq. 6-8)
    training.py    AttentionTrainer: keras.Model with the custom train_step, SGD + schedule
    callbacks.py   images/s and lr in the logs, history across resumes, .npz checkpoints
    data.py        ImageNet-layout folders streamed by tf.data (cams lcam-train --images)
    fileformat.py  the .npz file and the classifier fingerprint check
    explainer.py   LCAM: inference (paper Eq. 9), train/save/load
"""
from .attention import Attention, attention_logits, initial_weights, select_class
from .callbacks import NpzCheckpoint, RecordHistory, ThroughputAndRate
from .explainer import LCAM
from .fileformat import FORMAT_VERSION, model_fingerprint
from .losses import (AREA_COEF, AREA_EPS, AREA_POWER, CE_COEF, LOSSES, TV_BORDER_PENALTY, TV_COEF, TV_POWER,
                     area_loss, cross_entropy, lcam_loss, total_variation_loss)
from .training import (BIAS_LR_MULTIPLIER, LABEL_SOURCES, LR_DECAY, MODES, MOMENTUM, WEIGHT_DECAY,
                       AttentionTrainer, learning_rate_schedule, make_optimizer)

__all__ = [
    "LCAM", "Attention", "AttentionTrainer", "NpzCheckpoint", "RecordHistory", "ThroughputAndRate",
    "attention_logits", "select_class", "initial_weights", "area_loss", "cross_entropy", "lcam_loss",
    "total_variation_loss", "learning_rate_schedule", "make_optimizer", "model_fingerprint",
]
