"""Training L-CAM with Keras' own machinery: `AttentionTrainer` is a keras.Model whose custom
`train_step` computes the paper's loss on the frozen classifier, trained by `fit` under any
tf.distribute strategy with `keras.optimizers.SGD(momentum=0.9, nesterov=True)` and a per-epoch
x0.75 `ExponentialDecay` schedule (Gkartzonika, Gkalelis, Mezaris, ECCV-W 2022, Fig. 2a/2b, Eq. 4-8;
the authors' code github.com/bmezaris/L-CAM, Train_L_CAM_VGG16.py and my_optim.py).

  * L-CAM-Fm:  the classifier's head runs on a_c * F                         (paper Eq. 4);
  * L-CAM-Img: a_c is bilinearly upsampled to the input size, multiplies the input image and the
    frozen classifier runs a second time on it                            (paper Eq. 5).

The official optimiser is torch.optim.SGD(momentum=0.9, nesterov=True, weight_decay=5e-4) with the
biases at twice the weights' learning rate. Keras' SGD decays weights decoupled from the gradient,
so the torch-style (coupled) L2 decay is the term 0.5 * wd * ||theta||^2 added to the objective,
and the bias gradient is multiplied by 2: for momentum SGD, which is linear in the gradient, that
is exactly the x2 learning rate of the bias group.
"""
from __future__ import annotations

import keras
import numpy as np
import tensorflow as tf

from cams.core import model_graph

from .losses import lcam_loss

MODES = ("img", "fm")
LABEL_SOURCES = ("model", "dataset")
LR_DECAY = 0.75
MOMENTUM = 0.9
WEIGHT_DECAY = 0.0005
BIAS_LR_MULTIPLIER = 2.0
TERMS = ("loss", "ce", "area", "tv")


class _Frozen:
    """Holds the classifier outside Keras' tracking: its weights are neither trained nor written
    by BackupAndRestore / save_weights of the trainer (only the attention's are)."""

    def __init__(self, model, layer, explainer=None):
        self.model, self.layer, self.explainer = model, layer, explainer


def learning_rate_schedule(learning_rate: float, steps_per_epoch: int, decay: float = LR_DECAY):
    """LR = learning_rate * decay ** epoch (official `reduce_lr`, x0.75 per epoch) as a Keras
    schedule over optimizer steps: ExponentialDecay(decay_steps=steps_per_epoch, staircase=True)."""
    return keras.optimizers.schedules.ExponentialDecay(
        float(learning_rate), decay_steps=int(steps_per_epoch), decay_rate=float(decay), staircase=True)


def make_optimizer(learning_rate: float, steps_per_epoch: int, decay: float = LR_DECAY, momentum: float = MOMENTUM):
    """keras.optimizers.SGD(momentum, nesterov=True) on the per-epoch schedule."""
    return keras.optimizers.SGD(learning_rate_schedule(learning_rate, steps_per_epoch, decay),
                                momentum=float(momentum), nesterov=True)


class AttentionTrainer(keras.Model):
    """The L-CAM-Fm / L-CAM-Img training network around a frozen classifier (paper Fig. 2a/2b).

    Only `attention` (a `cams.methods.lcam.attention.Attention`) is trained. `fit` yields per epoch
    the means of the weighted loss terms (loss, ce, area, tv), the masked-pass accuracy (%) against
    the labels and the number of images.

    Args:
        classifier: the frozen keras.Model.
        layer: its feature layer.
        attention: the Attention layer (create it, and this model, inside the strategy's scope).
        mode: "img" or "fm"; loss: "full" or "ce"; labels: "model" (the classifier's top-1, the
            paper's model-truth labels) or "dataset".
        weight_decay: coupled L2 coefficient (torch's weight_decay); bias_lr_multiplier: x2.
        explainer: the LCAM owning `attention` (for callbacks such as NpzCheckpoint).
    """

    def __init__(self, classifier, layer, attention, mode="img", loss="full", labels="model",
                 weight_decay=WEIGHT_DECAY, bias_lr_multiplier=BIAS_LR_MULTIPLIER, explainer=None, **kwargs):
        super().__init__(name=kwargs.pop("name", "lcam_trainer"), **kwargs)
        self.attention = attention
        self.frozen = _Frozen(classifier, layer, explainer)
        self.mode, self.loss_kind, self.label_source = mode, loss, labels
        self.weight_decay, self.bias_lr_multiplier = float(weight_decay), float(bias_lr_multiplier)
        self.n_classes = model_graph.num_classes(classifier)
        self.trackers = [keras.metrics.Mean(name=t) for t in TERMS] + [
            keras.metrics.Mean(name="accuracy"), keras.metrics.Sum(name="images")]
        self.built = True

    @property
    def metrics(self):
        return list(self.trackers)

    def call(self, features):
        return self.attention(features)

    def masks_and_logits(self, x, labels, features=None):
        """M = a_c (N, h, w) and the float32 logits of the L-CAM network; L-CAM-Img reuses the
        features of the clean pass when given."""
        model, layer = self.frozen.model, self.frozen.layer
        if self.mode == "fm":
            masks = []

            def replace(A):
                masks.append(self.attention.masks(A, labels))
                return tf.cast(A, tf.float32) * masks[0][..., None]

            _, logits = model_graph.forward(model, x, layer, replace=replace)
            return masks[0], tf.cast(logits, tf.float32)
        if features is None:
            features, _ = model_graph.forward(model, x, layer)
        m = self.attention.masks(features, labels)
        up = tf.image.resize(m[..., None], tf.shape(x)[1:3], method="bilinear")
        _, logits = model_graph.forward(model, x * tf.cast(up, x.dtype))
        return m, tf.cast(logits, tf.float32)

    def labels_and_features(self, x, y):
        """One clean pass gives both the model-truth labels and L-CAM-Img's features A."""
        features = None
        labels = tf.cast(y, tf.int32)
        if self.label_source == "model" or self.mode == "img":
            features, logits0 = model_graph.forward(self.frozen.model, x, self.frozen.layer)
            if self.label_source == "model":
                labels = tf.argmax(logits0, axis=-1, output_type=tf.int32)
        if self.label_source == "dataset":
            tf.debugging.assert_non_negative(labels, message="the dataset yields labels < 0")
            tf.debugging.assert_less(labels, self.n_classes, message=(
                f"the dataset yields a label >= {self.n_classes}, the model's number of classes"))
        return labels, features

    def train_step(self, data):
        x, y = data[0], data[1]
        x = tf.cast(x, tf.float32)
        labels, features = self.labels_and_features(x, y)
        variables = [self.attention.kernel, self.attention.bias]
        watched = [v.value for v in variables]  # the tf.Variables behind the Keras variables
        replicas = tf.distribute.get_replica_context().num_replicas_in_sync
        with tf.GradientTape(watch_accessed_variables=False) as tape:
            tape.watch(watched)
            masks, logits = self.masks_and_logits(x, labels, features)
            terms = lcam_loss(logits, labels, masks, self.loss_kind)
            l2 = 0.5 * self.weight_decay * tf.add_n([tf.reduce_sum(tf.square(v)) for v in watched])
            objective = self.optimizer.scale_loss((terms["loss"] + l2) / replicas)
        kernel_grad, bias_grad = (tf.convert_to_tensor(g) for g in tape.gradient(objective, watched))
        self.optimizer.apply_gradients([(kernel_grad, variables[0]),
                                        (bias_grad * self.bias_lr_multiplier, variables[1])])
        n = tf.cast(tf.shape(x)[0], tf.float32)
        for tracker, name in zip(self.trackers, TERMS):
            tracker.update_state(terms[name], sample_weight=n)
        hits = tf.cast(tf.equal(tf.argmax(logits, -1, output_type=tf.int32), labels), tf.float32)
        self.trackers[4].update_state(100.0 * hits)
        self.trackers[5].update_state(n)
        return {m.name: m.result() for m in self.trackers}


def as_dataset(data, batch_size: int):
    """(batched tf.data.Dataset of (float32 images, int32 labels), has_labels).

    Accepts a Dataset of images, of (images, labels) or (images, labels, weights), batched or
    not; or an array of images; or an (images, labels) tuple of arrays. Labels may be ints or
    one-hot; missing labels are -1.
    """
    if not isinstance(data, tf.data.Dataset):
        data = _arrays_dataset(data, batch_size)
    spec = data.element_spec
    if isinstance(spec, dict):
        raise ValueError("the dataset yields dicts; map it to images or (images, labels) first")
    has_labels = isinstance(spec, tuple) and len(spec) >= 2
    image_spec = spec[0] if isinstance(spec, tuple) else spec
    if image_spec.shape.rank == 3:
        data = data.batch(batch_size)
    elif image_spec.shape.rank != 4:
        raise ValueError(f"the dataset's images must be (H, W, C) or batches (N, H, W, C), got {image_spec.shape}")

    def split(*elem):
        x = tf.cast(elem[0], tf.float32)
        if not has_labels:
            return x, tf.fill(tf.shape(x)[:1], -1)
        y = elem[1]
        if y.shape.rank == 2:
            y = tf.argmax(y, axis=-1)
        return x, tf.cast(tf.reshape(y, [-1]), tf.int32)

    return data.map(split, num_parallel_calls=tf.data.AUTOTUNE).prefetch(tf.data.AUTOTUNE), has_labels


def _arrays_dataset(data, batch_size: int) -> tf.data.Dataset:
    if isinstance(data, (tuple, list)):
        if len(data) not in (1, 2):
            raise ValueError("pass images, or a tuple (images, labels), or a tf.data.Dataset")
        arrays = tuple(np.asarray(a) for a in data)
    else:
        arrays = (np.asarray(data),)
    if arrays[0].ndim != 4:
        raise ValueError(f"images must have shape (N, H, W, C), got {arrays[0].shape}")
    if len(arrays) == 2:
        if len(arrays[1]) != len(arrays[0]):
            raise ValueError(f"{len(arrays[0])} images but {len(arrays[1])} labels")
        return tf.data.Dataset.from_tensor_slices(arrays).batch(batch_size)
    return tf.data.Dataset.from_tensor_slices(arrays[0]).batch(batch_size)


def check_array_labels(data, n_classes: int) -> None:
    """Labels given as arrays are checked before training (a dataset's are checked in the step)."""
    if isinstance(data, (tuple, list)) and len(data) == 2:
        y = np.asarray(data[1])
        y = y.argmax(-1) if y.ndim == 2 else y.reshape(-1)
        if y.size and y.min() < 0:
            raise ValueError("the dataset yields labels < 0")
        if y.size and y.max() >= n_classes:
            raise ValueError(f"the dataset yields a label >= {n_classes}, the model's number of classes")


def steps_per_epoch_of(data: tf.data.Dataset, steps_per_epoch=None) -> int:
    """Steps per epoch: `steps_per_epoch` if given, else the batched dataset's cardinality."""
    if steps_per_epoch is not None:
        if int(steps_per_epoch) < 1:
            raise ValueError(f"steps_per_epoch must be >= 1, got {steps_per_epoch}")
        return int(steps_per_epoch)
    card = int(data.cardinality())
    if card == 0:
        raise ValueError("the dataset is empty")
    if card < 0:
        raise ValueError("the dataset's length is unknown or infinite: pass steps_per_epoch "
                         "(or tf.data.experimental.assert_cardinality on the dataset)")
    return card
