"""The L-CAM explainer: inference (paper Eq. 9, Fig. 2c), training entry point, files and export.

Gkartzonika, Gkalelis, Mezaris, "Learning visual explanations for DCNN-based image classifiers
using an attention mechanism" (ECCV-W 2022). Inference is one forward pass: the map is the
pre-sigmoid attention of the target class, min-max normalised, then bilinearly resized.
"""
from __future__ import annotations

from pathlib import Path
from typing import Dict, Optional, Sequence

import keras
import numpy as np
import tensorflow as tf

from cams.core import model_graph
from cams.core.distribute import make_strategy
from cams.core.base import LayerExplainer, normalize_maps, resize_maps, resolve_targets
from cams.core.inputs import Targets, check_count, check_images
from cams.methods.registry import register

from . import fileformat, training
from .attention import Attention, initial_weights
from .callbacks import RecordHistory, ThroughputAndRate
from .losses import LOSSES


def _qualified_name(model, layer) -> str:
    for name, candidate, _ in model_graph.iter_layers(model):
        if candidate is layer:
            return name
    return layer.name


def _load_for_registry(model, path, batch_size: int = 32):
    """`make_explainer("lcam", model, path=FILE)`: a trained L-CAM file for this classifier."""
    lcam = LCAM.load(path, model)
    lcam.batch_size = int(batch_size)
    return lcam


def resolve_strategy(strategy) -> tf.distribute.Strategy:
    """None: the current strategy; a name: cams.core.distribute.make_strategy(name); else the Strategy."""
    if strategy is None:
        return tf.distribute.get_strategy()
    if isinstance(strategy, str):
        return make_strategy(strategy)
    return strategy


@register("lcam", gradient=False, trained_file="path", trained_by="cams lcam-train", title="L-CAM", family="learned", cost="1 forward (after training)",
          paper="Gkartzonika et al., ECCV-W 2022", formula="upsampled pre-sigmoid 1x1-conv attention of the target class",
          build=_load_for_registry)
class LCAM(LayerExplainer):
    """L-CAM-Fm / L-CAM-Img explainer: `maps = lcam(images, targets=None)`.

    Build it with `LCAM.train(...)` or `LCAM.load(path, model)`. `mode` is "img" (L-CAM-Img) or
    "fm" (L-CAM-Fm); it only matters for training, inference is the same for both. `attention` is
    the Keras layer (1x1 conv), `kernel` (K, C) and `bias` (C,) its variables (default: PyTorch's
    Conv2d initialisation, uniform in +-1/sqrt(K), as the official code uses).
    """

    class_targets_only = True  # one attention map per class

    def __init__(self, model: keras.Model, layer=None, mode: str = "img", kernel=None, bias=None,
                 loss: str = "full", seed: Optional[int] = None, batch_size: int = 32):
        if mode not in training.MODES:
            raise ValueError(f"mode must be 'img' (L-CAM-Img) or 'fm' (L-CAM-Fm), got {mode!r}")
        if loss not in LOSSES:
            raise ValueError(f"loss must be 'full' (the paper's loss) or 'ce' (cross-entropy only), got {loss!r}")
        batch_size = check_count(batch_size, "batch_size")
        super().__init__(model, layer)
        self.mode, self.loss, self.batch_size = mode, loss, batch_size
        self.layer_name = _qualified_name(model, self.layer)
        self.channels = model_graph.feature_channels(model, self.layer)
        k0, b0 = initial_weights(self.channels, self.n_classes, seed)
        kernel = k0 if kernel is None else kernel
        bias = b0 if bias is None else bias
        try:
            self.attention = Attention(self.channels, self.n_classes, kernel, bias, name="lcam_attention")
        except ValueError as err:
            raise ValueError(f"{err} (layer {self.layer_name!r} has {self.channels} channels and the model "
                             f"{self.n_classes} classes)") from None
        self.history: Dict[str, list] = {}
        self.settings: Dict[str, object] = {}

    @property
    def kernel(self):
        """The 1x1 conv's kernel variable (K, C)."""
        return self.attention.kernel

    @property
    def bias(self):
        """The 1x1 conv's bias variable (C,)."""
        return self.attention.bias

    @property
    def variables(self) -> list:
        """The attention's own variables (the 1x1 conv's kernel and bias)."""
        return [self.kernel, self.bias]

    @property
    def name(self) -> str:
        """"L-CAM-Img" / "L-CAM-Fm", with a star for the cross-entropy-only ablation."""
        return ("L-CAM-Img" if self.mode == "img" else "L-CAM-Fm") + ("*" if self.loss == "ce" else "")

    # ------------------------------------------------------------------ inference
    def _maps_and_logits(self, x: tf.Tensor, targets: tf.Tensor):
        """One forward pass: A and logits, the attention conv, the target's pre-sigmoid map."""
        A, logits = self.forward(x)
        targets = resolve_targets(logits, targets)
        cam = self.attention.class_logits(A, targets)  # = select_class(self.attention(A), targets)
        maps = resize_maps(normalize_maps(cam), tf.shape(x)[1:3])  # paper Eq. 9: normalise, then upscale
        return maps, tf.cast(logits, tf.float32)

    def explain_tensor(self, x: tf.Tensor, targets: tf.Tensor) -> tf.Tensor:
        return self._maps_and_logits(x, targets)[0]

    def explain_with_probabilities(self, images, targets: Targets = None):
        """(maps, probabilities): the maps as `__call__` and softmax(logits), from the same pass."""
        x = check_images(images, self.input_shape)
        t = self.checked_targets(targets, len(x))
        if not hasattr(self, "_compiled_both"):
            self._compiled_both = tf.function(self._maps_and_logits, input_signature=self._signature())
        maps, probs = [], []
        for s in range(0, len(x), self.batch_size):
            m, lg = self._compiled_both(tf.constant(x[s : s + self.batch_size]), tf.constant(t[s : s + self.batch_size]))
            maps.append(m.numpy())
            probs.append(tf.nn.softmax(lg, axis=-1).numpy())
        return np.concatenate(maps).astype(np.float32), np.concatenate(probs).astype(np.float32)

    # ------------------------------------------------------------------ training
    def trainer(self, labels: str = "model", weight_decay: float = training.WEIGHT_DECAY):
        """The `AttentionTrainer` (a keras.Model) that trains this explainer's attention layer."""
        return training.AttentionTrainer(self.model, self.layer, self.attention, mode=self.mode, loss=self.loss,
                                         labels=labels, weight_decay=weight_decay, explainer=self)

    @classmethod
    def train(cls, model: keras.Model, dataset, mode: str = "img", layer=None, epochs: int = 8,
              learning_rate: float = 0.01, labels: str = "model", loss: str = "full", batch_size: int = 64,
              lr_decay: float = training.LR_DECAY, momentum: float = training.MOMENTUM,
              weight_decay: float = training.WEIGHT_DECAY, seed: Optional[int] = None, verbose=True,
              strategy=None, callbacks: Optional[Sequence[keras.callbacks.Callback]] = None,
              steps_per_epoch: Optional[int] = None, history_path=None, steps_per_execution: int = 1) -> "LCAM":
        """Train the attention mechanism on a frozen `model` with `fit` and return the explainer.

        dataset: a tf.data.Dataset of images or (images, labels[, weights]) (batched or not), or
            numpy images, or a tuple (images, labels). Images as the model takes them.
        mode: "img" (L-CAM-Img) or "fm" (L-CAM-Fm); layer: the feature layer (default: the last
            layer with a 4-D output, nested models included).
        labels: "model" = the classifier's top-1 (the paper's model-truth labels) or "dataset".
        loss: "full" = 1.5 CE + 2 area + 0.01 TV; "ce" = 1.5 CE only (paper's starred ablation).
        Optimiser (official code): SGD, momentum 0.9, Nesterov, weight decay 5e-4, biases at twice
        the LR; LR = learning_rate * lr_decay ** epoch. 0.01 is the official effective rate of the
        weights (base 1e-4 times the x100 group multiplier); 8 epochs as the official VGG-16 script.
        strategy: None (current), a name (default/mirrored/multiworker/tpu) or a tf.distribute
            Strategy; the attention and optimizer are created in its scope; batch_size is global.
        callbacks: Keras callbacks (BackupAndRestore, NpzCheckpoint, CSVLogger, ...).
        steps_per_epoch: needed when the dataset's length is unknown or it repeats.
        verbose: Keras' progress bar with the loss terms, accuracy and images/s (True/1, 2, False/0).
        history_path: JSON file keeping `history` across a BackupAndRestore resume.
        steps_per_execution: training steps per compiled call (Keras' compile option): fewer
            Python round trips when a step takes only milliseconds; callbacks see every Nth batch.

        Returns:
            the LCAM; `lcam.history` holds per epoch the mean weighted loss terms, the accuracy
            (%) of the masked pass against the labels, lr, images and images/s.
        """
        if labels not in training.LABEL_SOURCES:
            raise ValueError(f"labels must be 'model' (top-1 predictions) or 'dataset', got {labels!r}")
        check_count(epochs, "epochs")
        if not learning_rate > 0:
            raise ValueError(f"learning_rate must be > 0, got {learning_rate}")
        strategy = resolve_strategy(strategy)
        with strategy.scope():
            lcam = cls(model, layer=layer, mode=mode, loss=loss, seed=seed)
        data, has_labels = training.as_dataset(dataset, int(batch_size))
        if labels == "dataset" and not has_labels:
            raise ValueError("labels='dataset' but the dataset yields no labels; yield (images, labels) or use labels='model'")
        training.check_array_labels(dataset, lcam.n_classes)
        steps = training.steps_per_epoch_of(data, steps_per_epoch)
        lcam.settings = dict(epochs=int(epochs), learning_rate=float(learning_rate), labels=labels,
                             batch_size=int(batch_size), lr_decay=float(lr_decay), momentum=float(momentum),
                             weight_decay=float(weight_decay), seed=seed, steps_per_epoch=steps,
                             replicas=int(strategy.num_replicas_in_sync))
        with strategy.scope():
            trainer = lcam.trainer(labels, weight_decay)
            trainer.compile(optimizer=training.make_optimizer(learning_rate, steps, lr_decay, momentum),
                            jit_compile=False, steps_per_execution=int(steps_per_execution))
        lcam._fit(trainer, data, int(epochs), steps, verbose, callbacks, history_path)
        return lcam

    def _fit(self, trainer, data, epochs, steps, verbose, callbacks, history_path) -> None:
        cbs = [ThroughputAndRate(), RecordHistory(self, history_path), *(callbacks or [])]
        try:
            trainer.fit(data, epochs=epochs, steps_per_epoch=steps, callbacks=cbs, shuffle=False,
                        verbose={True: 1, False: 0}.get(verbose, verbose))
        except tf.errors.InvalidArgumentError as err:
            if "the dataset yields" in str(err):
                line = next(ln for ln in str(err).splitlines() if "the dataset yields" in ln)
                raise ValueError(line[line.index("the dataset yields"):].split(".")[0].strip()) from None
            raise

    # ------------------------------------------------------------------ files
    def save(self, path) -> Path:
        """Write the attention weights and the classifier's description to one file (atomically).

        A path ending in `.keras` gets a Keras model of the attention (features -> class logits,
        loadable by `keras.saving.load_model` once `cams.methods.lcam` is imported); any other, the
        `.npz`. The classifier itself is not stored: load either with `LCAM.load(path, model)`.
        """
        if not hasattr(self, "_fingerprint"):  # the classifier is frozen: hash its weights once
            self._fingerprint = fileformat.model_fingerprint(self.model)
        meta = fileformat.describe(self.model, self.layer_name, self.channels, self.mode, self.loss,
                                   self.history, self.settings, self._fingerprint)
        write = fileformat.write_keras if Path(path).suffix == ".keras" else fileformat.write
        return write(path, self.kernel.numpy(), self.bias.numpy(), meta)

    @staticmethod
    def read_meta(path) -> dict:
        """The description stored in an L-CAM file (mode, loss, layer, classes, history, ...)."""
        meta, arrays = fileformat.read(path)
        meta["_arrays"] = arrays
        return meta

    @classmethod
    def load(cls, path, model: keras.Model, strict: bool = True) -> "LCAM":
        """Load an L-CAM saved with `save` for `model`, the classifier it was trained on.

        Raises ValueError if the model lacks the layer, has other shapes or classes, or (with
        strict=True) has other weights than the classifier it was trained on (sha256 fingerprint;
        strict=False accepts e.g. a fine-tuned copy of the same architecture).
        """
        meta, arrays = fileformat.read(path)
        layer = fileformat.check_model(path, meta, model, strict)
        lcam = cls(model, layer=layer, mode=meta["mode"], kernel=arrays["kernel"], bias=arrays["bias"], loss=meta["loss"])
        lcam.history = meta.get("history", {})
        lcam.settings = meta.get("settings", {})
        return lcam
