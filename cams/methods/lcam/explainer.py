"""The L-CAM explainer: inference (paper Eq. 9, Fig. 2c), training entry point, files and export.

Gkartzonika, Gkalelis, Mezaris, "Learning visual explanations for DCNN-based image classifiers
using an attention mechanism" (ECCV-W 2022). Inference is one forward pass: the map is the
pre-sigmoid attention of the target class, min-max normalised, then bilinearly resized.
"""
from __future__ import annotations

import math
import numbers
import time
from pathlib import Path
from typing import Dict, Optional, Sequence, Union

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


#: "auto" steps_per_execution: a step estimated shorter than this (seconds) gets several per call,
SHORT_STEP_S = 0.05
#: as many as make about this much work per call (seconds),
EXECUTION_S = 0.2
#: at most this many,
MAX_STEPS_PER_EXECUTION = 32
#: and a classifier with more parameters than this is not measured (1 step per call)
AUTO_MAX_PARAMS = 50_000_000
#: forward-pass equivalents of one training step: L-CAM-Img 2 forwards + a backward through the
#: second (about 2 forwards); L-CAM-Fm 1 forward + a backward through the head; +1 for model labels
STEP_PASSES = {"img": 4, "fm": 2}


def check_steps_per_execution(value) -> Union[str, int]:
    """"auto" or an int >= 1 (Keras' compile option); anything else: one ValueError line."""
    if isinstance(value, str) and value == "auto":
        return value
    if isinstance(value, numbers.Integral) and not isinstance(value, bool) and int(value) >= 1:
        return int(value)
    raise ValueError(f"steps_per_execution must be 'auto' or a whole number >= 1, got {value!r}; "
                     "pass steps_per_execution='auto' (the default) or e.g. 8")


def auto_steps_per_execution(step_seconds: float, steps_per_epoch: int, whole_epoch: bool = False) -> int:
    """The "auto" rule: steps per compiled call for a training step of `step_seconds`.

    k = 1 when step_seconds >= SHORT_STEP_S (50 ms: Keras' per-call work, its Python, the callbacks
    and the wait for the step's logs, a few ms, is then small); else k = ceil(EXECUTION_S /
    step_seconds) (about 200 ms of work per call), at most MAX_STEPS_PER_EXECUTION (32) and
    steps_per_epoch. Unless one epoch is one whole pass over a finite data set (`whole_epoch`:
    Keras ends the last call of the epoch where the data ends), k is then lowered to the largest
    divisor of steps_per_epoch, so that every epoch is whole calls and Keras runs exactly the steps
    it runs with k = 1 (on an endless stream it would run ceil(steps / k) * k steps per epoch).
    """
    if not step_seconds < SHORT_STEP_S:
        return 1
    k = max(1, min(MAX_STEPS_PER_EXECUTION, int(steps_per_epoch), math.ceil(EXECUTION_S / max(step_seconds, 1e-6))))
    return k if whole_epoch else _largest_divisor(int(steps_per_epoch), k)


def _largest_divisor(n: int, at_most: int) -> int:
    """The largest divisor of n that is <= at_most (1 at least)."""
    return max(d for d in range(1, max(1, min(n, at_most)) + 1) if n % d == 0)


def acts_per_batch(callbacks) -> bool:
    """Whether one of `callbacks` has its own (not Keras') batch-level hook, e.g. on_train_batch_end:
    "auto" then keeps 1 step per call, so that such a callback still sees every batch."""
    hooks = ("on_train_batch_begin", "on_train_batch_end", "on_batch_begin", "on_batch_end")
    owners = (getattr(getattr(cb, h), "__func__", getattr(cb, h)) for cb in callbacks or () for h in hooks)
    return any(not (getattr(fn, "__module__", None) or "").startswith("keras.") for fn in owners)


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
              steps_per_epoch: Optional[int] = None, history_path=None,
              steps_per_execution: Union[str, int] = "auto") -> "LCAM":
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
            Python round trips when a step takes only milliseconds; batch-level callbacks and the
            progress bar see every Nth batch, the trained weights are the same. "auto" (default):
            times one forward pass of the classifier and, for a step estimated under 50 ms, runs
            about 200 ms of steps per call (at most 32; see `auto_steps_per_execution`); the choice
            is in `lcam.settings["steps_per_execution"]`; 1 with a callback of your own per batch
            or on several replicas.

        Returns:
            the LCAM; `lcam.history` holds per epoch the mean weighted loss terms, the accuracy
            (%) of the masked pass against the labels, lr, images and images/s.
        """
        if labels not in training.LABEL_SOURCES:
            raise ValueError(f"labels must be 'model' (top-1 predictions) or 'dataset', got {labels!r}")
        steps_per_execution = check_steps_per_execution(steps_per_execution)
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
        per_call = lcam._steps_per_execution(steps_per_execution, data, steps, labels, strategy, callbacks)
        if not isinstance(dataset, tf.data.Dataset) and int(data.cardinality()) == steps and steps % per_call == 0:
            data = data.repeat()  # arrays: the same batches each epoch, one iterator (no restart per epoch)
        with strategy.scope():
            trainer = lcam.trainer(labels, weight_decay)
            trainer.compile(optimizer=training.make_optimizer(learning_rate, steps, lr_decay, momentum),
                            jit_compile=False, steps_per_execution=per_call)
        lcam._fit(trainer, data, int(epochs), steps, verbose, callbacks, history_path)
        return lcam

    def forward_seconds(self, batch_shape, strategy=None, repeats: int = 5) -> float:
        """Seconds of one compiled inference pass of the classifier (to its logits, as training runs
        it) on a zero batch of `batch_shape` per replica: the best of `repeats` calls after a warm-up
        call (tracing). Reads no data and changes no weight, optimizer or random state."""
        strategy = resolve_strategy(strategy)
        x = tf.zeros(batch_shape, tf.float32)

        def replica(y):
            return tf.reduce_sum(tf.cast(model_graph.forward(self.model, y, self.layer)[1], tf.float32))

        fn = tf.function(lambda y: strategy.reduce("SUM", strategy.run(replica, args=(y,)), axis=None))
        fn(x).numpy()  # warm-up: tracing and first-call allocations
        best = math.inf
        for _ in range(int(repeats)):
            t0 = time.perf_counter()
            fn(x).numpy()
            best = min(best, time.perf_counter() - t0)
            if best >= SHORT_STEP_S:
                break  # already long: more calls cannot make the step short
        return best

    def _steps_per_execution(self, value, data, steps: int, labels: str, strategy, callbacks) -> int:
        """The steps per compiled call: `value` if an int; for "auto", `auto_steps_per_execution` of the
        step estimated as STEP_PASSES forward passes (`forward_seconds`) on one batch; 1 without a
        measurement for a classifier of more than AUTO_MAX_PARAMS parameters or of unknown image
        size, or with a callback of its own per batch (`acts_per_batch`), or on several replicas
        (Keras 3 fails on a step inside its while loop under a MirroredStrategy of 2 or more replicas,
        keras-team/keras#19246; an int > 1 there is refused). Recorded in settings (with the
        estimated step in ms, None when not measured). An int that does not divide `steps` is refused
        unless an epoch is one whole pass over finite data (see `auto_steps_per_execution`)."""
        step_ms, replicas = None, int(strategy.num_replicas_in_sync)
        whole_epoch = int(data.cardinality()) == steps
        mirrored = isinstance(strategy, (tf.distribute.MirroredStrategy, tf.distribute.MultiWorkerMirroredStrategy))
        if value != "auto" and value > 1 and mirrored and replicas > 1:
            raise ValueError(f"steps_per_execution={value} fails in Keras 3 under {type(strategy).__name__} on "
                             f"{replicas} replicas (keras-team/keras#19246); use steps_per_execution=1 or 'auto'")
        if value != "auto" and steps % value and not whole_epoch:
            raise ValueError(f"steps_per_execution={value} does not divide the {steps} steps per epoch of this endless "
                             f"or longer data set (Keras would run {-(-steps // value) * value}); use a divisor of "
                             f"{steps}, e.g. {_largest_divisor(steps, value)}, or 'auto'")
        if value == "auto":
            value = 1
            spec = data.element_spec[0].shape
            shape = [spec[i] or self.input_shape[i] for i in (1, 2, 3)]
            if (replicas == 1 and None not in shape and self.model.count_params() <= AUTO_MAX_PARAMS
                    and not acts_per_batch(callbacks)):
                passes = STEP_PASSES[self.mode] + (labels == "model" and self.mode == "fm")
                step = passes * self.forward_seconds([int(self.settings["batch_size"]), *shape], strategy)
                step_ms = round(1000 * step, 3)
                value = auto_steps_per_execution(step, steps, whole_epoch)
        self.settings.update(steps_per_execution=int(value), step_ms_estimate=step_ms)
        return int(value)

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
