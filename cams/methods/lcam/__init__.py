"""L-CAM-Fm and L-CAM-Img: a learned attention mechanism on a frozen classifier.

Gkartzonika, Gkalelis, Mezaris, "Learning visual explanations for DCNN-based image classifiers
using an attention mechanism" (ECCV-W 2022), and the authors' code (github.com/bmezaris/L-CAM,
models/VGG16_L_CAM_{Fm,Img}.py, L_CAM_VGG16/Train_L_CAM_VGG16.py, my_optim.py).

    lcam = cams.LCAM.train(model, dataset, mode="img")   # learns one 1x1 conv, model stays frozen
    maps = lcam(images)                                   # (N, H, W) float32 in [0, 1], one pass
    lcam.save("lcam.npz"); lcam = cams.LCAM.load("lcam.npz", model)
    lcam.export_savedmodel("sm/")   # signature: images -> {"probabilities", "map"}

The attention mechanism is one 1x1 convolution with bias from the K channels of the feature
layer's output F to the C classes; a = sigmoid(conv(F)) and a_c is its channel of class c
(the label). Training (the classifier frozen, gradients only for the conv):
  * L-CAM-Fm:  the classifier's head runs on a_c * F                   (paper Eq. 4);
  * L-CAM-Img: a_c is bilinearly upsampled to the input size, multiplies the input image (the
    tensor the model receives, i.e. before any preprocessing layers inside the model), and the
    frozen model runs a second time on it                                (paper Eq. 5).
Loss (paper Eq. 6-8, official coefficients): 1.5 CE + 2 mean((M + 0.0005)^0.3) + 0.01 TV(M), with
M = a_c at feature resolution; `loss="ce"` keeps only the 1.5 CE term (the paper's starred rows).
Inference (paper Eq. 9, Fig. 2c): one forward pass; the map is the pre-sigmoid conv output of the
target class, min-max normalised, then bilinearly resized to the input size.

Saving: `save(path)` writes only the attention weights and a description of the classifier
(layer, shapes, a fingerprint of its weights) to one .npz file; the classifier is *not* stored and
is passed to `LCAM.load(path, model)`, which refuses a classifier that does not match.
"""
from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path
from typing import Dict, Optional

import keras
import numpy as np
import tensorflow as tf

from cams.core import model_graph
from cams.core.base import LayerExplainer, normalize_maps, resize_maps, resolve_targets
from cams.core.inputs import Targets, check_images, check_targets
from cams.methods.registry import register

FORMAT_VERSION = 1
MODES = ("img", "fm")
LOSSES = ("full", "ce")
LABEL_SOURCES = ("model", "dataset")

# official settings (models/VGG16_L_CAM_*.py, L_CAM_VGG16/my_optim.py)
CE_COEF = 1.5
AREA_COEF = 2.0
TV_COEF = 0.01
AREA_POWER = 0.3
AREA_EPS = 0.0005
TV_POWER = 2
TV_BORDER_PENALTY = 0.3
LR_DECAY = 0.75
MOMENTUM = 0.9
WEIGHT_DECAY = 0.0005
BIAS_LR_MULTIPLIER = 2.0


# ----------------------------------------------------------------------------- loss terms
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


def learning_rate_at(epoch: int, base: float, decay: float = LR_DECAY) -> float:
    """LR of epoch `epoch` (0-based): base * decay ** epoch (official `reduce_lr`, factor 0.75)."""
    return float(base) * float(decay) ** int(epoch)


def sgd_nesterov(param: tf.Variable, grad: tf.Tensor, buf: tf.Variable, lr, momentum: float = MOMENTUM,
                 weight_decay: float = WEIGHT_DECAY) -> None:
    """One torch.optim.SGD(momentum, nesterov=True, weight_decay) step, as the official code uses:
    d = g + wd * p;  buf = momentum * buf + d;  p -= lr * (d + momentum * buf)."""
    d = grad + weight_decay * param
    buf.assign(momentum * buf + d)
    param.assign_sub(lr * (d + momentum * buf))


def attention_logits(features: tf.Tensor, kernel: tf.Tensor, bias: tf.Tensor) -> tf.Tensor:
    """The attention mechanism's 1x1 convolution (paper Eq. 3): (N, h, w, K) -> (N, h, w, C), float32."""
    return tf.einsum("nhwk,kc->nhwc", tf.cast(features, tf.float32), kernel) + bias


def select_class(maps: tf.Tensor, classes: tf.Tensor) -> tf.Tensor:
    """(N, h, w, C) maps and N class indices -> (N, h, w): each map's channel of its class."""
    per_class = tf.transpose(maps, [0, 3, 1, 2])
    return tf.gather(per_class, tf.cast(classes, tf.int32), axis=1, batch_dims=1)


# ----------------------------------------------------------------------------- helpers
def _qualified_name(model, layer) -> str:
    for name, candidate, _ in model_graph.iter_layers(model):
        if candidate is layer:
            return name
    return layer.name


def model_fingerprint(model) -> str:
    """sha256 over the classifier's weight shapes and values (float32): identifies the classifier."""
    h = hashlib.sha256()
    for w in model.weights:
        v = np.asarray(keras.ops.convert_to_numpy(w), dtype=np.float32)
        h.update(str(v.shape).encode())
        h.update(v.tobytes())
    return h.hexdigest()


def _as_dataset(data, batch_size: int):
    """A batched tf.data.Dataset of (images, labels) from a Dataset or numpy arrays.

    Accepts a Dataset of images, of (images, labels) or (images, labels, weights), batched or
    not; or an array of images; or an (images, labels) tuple of arrays. Labels may be ints or
    one-hot. Missing labels are -1.
    """
    if not isinstance(data, tf.data.Dataset):
        if isinstance(data, (tuple, list)):
            if len(data) not in (1, 2):
                raise ValueError("pass images, or a tuple (images, labels), or a tf.data.Dataset")
            arrays = tuple(np.asarray(a) for a in data)
        else:
            arrays = (np.asarray(data),)
        if arrays[0].ndim != 4:
            raise ValueError(f"images must have shape (N, H, W, C), got {arrays[0].shape}")
        data = tf.data.Dataset.from_tensor_slices(arrays if len(arrays) > 1 else arrays[0]).batch(batch_size)
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

    if isinstance(data.element_spec, tuple):
        data = data.map(lambda *e: split(*e))
    else:
        data = data.map(lambda x: split(x))
    return data, has_labels


def _progress(iterable, total, desc, enabled):
    from tqdm import tqdm

    return tqdm(iterable, total=total, desc=desc, unit="batch", disable=not enabled, leave=False, file=sys.stderr)


# ----------------------------------------------------------------------------- the explainer
def _load_for_registry(model, path, batch_size: int = 32):
    """`make_explainer("lcam", model, path=FILE)`: a trained L-CAM file for this classifier."""
    lcam = LCAM.load(path, model)
    lcam.batch_size = int(batch_size)
    return lcam


@register("lcam", title="L-CAM", family="learned", cost="1 forward (after training)",
          paper="Gkartzonika et al., ECCV-W 2022", formula="upsampled pre-sigmoid 1x1-conv attention of the target class",
          build=_load_for_registry)
class LCAM(LayerExplainer):
    """L-CAM-Fm / L-CAM-Img explainer: `maps = lcam(images, targets=None)`.

    Build it with `LCAM.train(...)` or `LCAM.load(path, model)`. `mode` is "img" (L-CAM-Img) or
    "fm" (L-CAM-Fm); it only matters for training, inference is the same for both. `kernel`
    (K, C) and `bias` (C,) are the 1x1 conv's weights (default: PyTorch's Conv2d initialisation,
    uniform in +-1/sqrt(K), as the official code uses).
    """

    def __init__(self, model: keras.Model, layer=None, mode: str = "img", kernel=None, bias=None,
                 loss: str = "full", seed: Optional[int] = None, batch_size: int = 32):
        if mode not in MODES:
            raise ValueError(f"mode must be 'img' (L-CAM-Img) or 'fm' (L-CAM-Fm), got {mode!r}")
        if loss not in LOSSES:
            raise ValueError(f"loss must be 'full' (the paper's loss) or 'ce' (cross-entropy only), got {loss!r}")
        if int(batch_size) < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        super().__init__(model, layer)
        self.mode, self.loss = mode, loss
        self.batch_size = int(batch_size)
        self.layer_name = _qualified_name(model, self.layer)
        self.channels = model_graph.feature_channels(model, self.layer)
        k, c = self.channels, self.n_classes
        if kernel is None or bias is None:
            rng = np.random.default_rng(seed)
            bound = 1.0 / np.sqrt(k)
            kernel = rng.uniform(-bound, bound, (k, c)) if kernel is None else kernel
            bias = rng.uniform(-bound, bound, (c,)) if bias is None else bias
        kernel, bias = np.asarray(kernel, np.float32), np.asarray(bias, np.float32)
        if kernel.shape != (k, c) or bias.shape != (c,):
            raise ValueError(
                f"attention weights have shapes {kernel.shape} and {bias.shape}, but layer "
                f"{self.layer_name!r} has {k} channels and the model {c} classes: expected ({k}, {c}) and ({c},)"
            )
        self.kernel = tf.Variable(kernel, trainable=True, name="lcam_kernel")
        self.bias = tf.Variable(bias, trainable=True, name="lcam_bias")
        self.history: Dict[str, list] = {}
        self.settings: Dict[str, object] = {}

    # ------------------------------------------------------------------ inference
    @property
    def name(self) -> str:
        """"L-CAM-Img" / "L-CAM-Fm", with a star for the cross-entropy-only ablation."""
        return ("L-CAM-Img" if self.mode == "img" else "L-CAM-Fm") + ("*" if self.loss == "ce" else "")

    def _maps_and_logits(self, x: tf.Tensor, targets: tf.Tensor):
        """One forward pass: A and logits, the attention conv, the target's pre-sigmoid map."""
        A, logits = self.forward(x)
        targets = resolve_targets(logits, targets)
        cam = select_class(attention_logits(A, self.kernel, self.bias), targets)
        maps = resize_maps(normalize_maps(cam), tf.shape(x)[1:3])  # paper Eq. 9: normalise, then upscale
        return maps, tf.cast(logits, tf.float32)

    def explain_tensor(self, x: tf.Tensor, targets: tf.Tensor) -> tf.Tensor:
        return self._maps_and_logits(x, targets)[0]

    def explain_with_probabilities(self, images, targets: Targets = None):
        """(maps, probabilities): the maps as `__call__` and softmax(logits), from the same pass."""
        x = check_images(images, self.input_shape)
        t = check_targets(targets, len(x), self.n_classes)
        if not hasattr(self, "_compiled_both"):
            self._compiled_both = tf.function(self._maps_and_logits, input_signature=self._signature())
        maps, probs = [], []
        for s in range(0, len(x), self.batch_size):
            m, lg = self._compiled_both(tf.constant(x[s : s + self.batch_size]), tf.constant(t[s : s + self.batch_size]))
            maps.append(m.numpy())
            probs.append(tf.nn.softmax(lg, axis=-1).numpy())
        return np.concatenate(maps).astype(np.float32), np.concatenate(probs).astype(np.float32)

    # ------------------------------------------------------------------ training
    def _training_masks_and_logits(self, x: tf.Tensor, labels: tf.Tensor, A: Optional[tf.Tensor] = None):
        """M = a_c (N, h, w) and the logits of the L-CAM-Fm / L-CAM-Img network (paper Fig. 2a/2b).

        L-CAM-Img takes the features A of the clean pass when the caller already has them."""
        masks = []

        def attend(A):
            m = select_class(tf.sigmoid(attention_logits(A, self.kernel, self.bias)), labels)
            masks.append(m)
            return m

        if self.mode == "fm":
            _, logits = model_graph.forward(
                self.model, x, self.layer, replace=lambda A: tf.cast(A, tf.float32) * attend(A)[..., None]
            )
        else:
            if A is None:
                A, _ = self.forward(x)
            m = attend(A)
            up = tf.image.resize(m[..., None], tf.shape(x)[1:3], method="bilinear")
            _, logits = model_graph.forward(self.model, x * up)
        return masks[0], tf.cast(logits, tf.float32)

    def _train_step(self, x, y, lr, use_model_labels: bool):
        # one clean pass gives both the model-truth labels and L-CAM-Img's features A
        A = None
        labels = y
        if use_model_labels or self.mode == "img":
            A, logits0 = self.forward(x)
            if use_model_labels:
                labels = tf.argmax(logits0, axis=-1, output_type=tf.int32)
        variables = [self.kernel, self.bias]
        with tf.GradientTape(watch_accessed_variables=False) as tape:
            tape.watch(variables)
            masks, logits = self._training_masks_and_logits(x, labels, A)
            terms = lcam_loss(logits, labels, masks, self.loss)
        grads = tape.gradient(terms["loss"], variables)
        # official optimiser: parameter groups with LR x1 for weights and x2 for biases
        sgd_nesterov(self.kernel, grads[0], self._buffers[0], lr, self._momentum, self._weight_decay)
        sgd_nesterov(self.bias, grads[1], self._buffers[1], lr * BIAS_LR_MULTIPLIER, self._momentum, self._weight_decay)
        hits = tf.reduce_sum(tf.cast(tf.equal(tf.argmax(logits, -1, output_type=tf.int32), labels), tf.float32))
        return terms, hits

    @classmethod
    def train(
        cls,
        model: keras.Model,
        dataset,
        mode: str = "img",
        layer=None,
        epochs: int = 8,
        learning_rate: float = 0.01,
        labels: str = "model",
        loss: str = "full",
        batch_size: int = 64,
        lr_decay: float = LR_DECAY,
        momentum: float = MOMENTUM,
        weight_decay: float = WEIGHT_DECAY,
        seed: Optional[int] = None,
        verbose: bool = True,
    ) -> "LCAM":
        """Train the attention mechanism on a frozen `model` and return the explainer.

        dataset: a tf.data.Dataset of images or (images, labels[, weights]) (batched or not), or
            numpy images, or a tuple (images, labels). Images as the model takes them.
        mode: "img" (L-CAM-Img) or "fm" (L-CAM-Fm); layer: the feature layer (default: the last
            layer with a 4-D output, nested models included).
        labels: "model" = the classifier's own top-1 predictions (the paper's model-truth labels),
            "dataset" = the labels the dataset yields (ints or one-hot).
        loss: "full" = 1.5 CE + 2 area + 0.01 TV; "ce" = 1.5 CE only (paper's starred ablation).
        Optimiser (official code): SGD, momentum 0.9, Nesterov, weight decay 5e-4, biases at twice
        the LR; LR = learning_rate * lr_decay ** epoch. The default learning_rate 0.01 is the
        official effective rate for the weights (base 1e-4 times the x100 group multiplier);
        epochs 8 as the official VGG-16 script (the paper reports 7). Only the 1x1 conv is
        updated; the model's weights never change. The per-epoch mean of each weighted loss term,
        the LR and the masked-pass accuracy against the labels are printed (if verbose) and kept
        in `lcam.history`.
        """
        if labels not in LABEL_SOURCES:
            raise ValueError(f"labels must be 'model' (top-1 predictions) or 'dataset', got {labels!r}")
        if int(epochs) < 1:
            raise ValueError(f"epochs must be >= 1, got {epochs}")
        if not learning_rate > 0:
            raise ValueError(f"learning_rate must be > 0, got {learning_rate}")
        lcam = cls(model, layer=layer, mode=mode, loss=loss, seed=seed)
        data, has_labels = _as_dataset(dataset, int(batch_size))
        if labels == "dataset" and not has_labels:
            raise ValueError("labels='dataset' but the dataset yields no labels; yield (images, labels) or use labels='model'")
        lcam._buffers = [tf.Variable(tf.zeros_like(lcam.kernel)), tf.Variable(tf.zeros_like(lcam.bias))]
        lcam._momentum, lcam._weight_decay = float(momentum), float(weight_decay)
        _, h, w, c = lcam.input_shape
        step = tf.function(
            lambda x, y, lr: lcam._train_step(x, y, lr, labels == "model"),
            input_signature=[tf.TensorSpec((None, h, w, c), tf.float32), tf.TensorSpec((None,), tf.int32),
                             tf.TensorSpec((), tf.float32)],
            autograph=False,  # plain TensorFlow: no Python control flow on tensors in the step
        )
        card = int(data.cardinality())
        total = card if card > 0 else None
        history: Dict[str, list] = {k: [] for k in ("loss", "ce", "area", "tv", "accuracy", "lr", "images")}
        for epoch in range(int(epochs)):
            lr = learning_rate_at(epoch, learning_rate, lr_decay)
            sums = {k: 0.0 for k in ("loss", "ce", "area", "tv")}
            n_seen, hits_total = 0, 0.0
            bar = _progress(data, total, f"{lcam.name} epoch {epoch + 1}/{epochs}", verbose)
            for x, y in bar:
                n = int(x.shape[0])
                if labels == "dataset" and bool(tf.reduce_any(y < 0)):
                    raise ValueError("the dataset yields labels < 0")
                if labels == "dataset" and bool(tf.reduce_any(y >= lcam.n_classes)):
                    raise ValueError(f"the dataset yields a label >= {lcam.n_classes}, the model's number of classes")
                terms, hits = step(x, y, tf.constant(lr, tf.float32))
                for k in sums:
                    sums[k] += float(terms[k]) * n
                hits_total += float(hits)
                n_seen += n
                bar.set_postfix(loss=f"{sums['loss'] / n_seen:.4f}")
            if n_seen == 0:
                raise ValueError("the dataset is empty")
            for k in sums:
                history[k].append(sums[k] / n_seen)
            history["accuracy"].append(100.0 * hits_total / n_seen)
            history["lr"].append(lr)
            history["images"].append(n_seen)
            if verbose:
                print(
                    f"{lcam.name} epoch {epoch + 1}/{epochs}: lr {lr:.3g}  loss {history['loss'][-1]:.4f}  "
                    f"ce {history['ce'][-1]:.4f}  area {history['area'][-1]:.4f}  tv {history['tv'][-1]:.4f}  "
                    f"acc {history['accuracy'][-1]:.1f}%",
                    file=sys.stderr,
                )
        lcam.history = history
        lcam.settings = dict(epochs=int(epochs), learning_rate=float(learning_rate), labels=labels,
                             batch_size=int(batch_size), lr_decay=float(lr_decay), momentum=float(momentum),
                             weight_decay=float(weight_decay), seed=seed)
        del lcam._buffers
        return lcam

    # ------------------------------------------------------------------ persistence
    def _meta(self) -> dict:
        return {
            "format": "cams.LCAM",
            "version": FORMAT_VERSION,
            "mode": self.mode,
            "loss": self.loss,
            "layer": self.layer_name,
            "channels": self.channels,
            "classes": self.n_classes,
            "input_shape": [None if d is None else int(d) for d in self.input_shape],
            "model_name": self.model.name,
            "model_fingerprint": model_fingerprint(self.model),
            "history": self.history,
            "settings": self.settings,
        }

    def save(self, path) -> Path:
        """Write the attention weights and the classifier's description to one .npz (atomically).

        The classifier itself is not stored: load with `LCAM.load(path, model)`.
        """
        from cams.core.files import save_npz

        return save_npz(path, kernel=self.kernel.numpy(), bias=self.bias.numpy(),
                        meta=np.array(json.dumps(self._meta())))

    @staticmethod
    def read_meta(path) -> dict:
        """The description stored in an L-CAM file (mode, loss, layer, classes, history, ...)."""
        p = Path(path)
        if not p.is_file():
            raise ValueError(f"{p}: no such L-CAM file")
        try:
            with np.load(p, allow_pickle=False) as data:
                meta = json.loads(str(data["meta"]))
                arrays = {"kernel": data["kernel"], "bias": data["bias"]}
        except Exception as err:  # zipfile / KeyError / json errors
            raise ValueError(f"{p}: not an L-CAM file written by LCAM.save ({type(err).__name__}: {err})") from None
        if meta.get("format") != "cams.LCAM":
            raise ValueError(f"{p}: not an L-CAM file written by LCAM.save")
        meta["_arrays"] = arrays
        return meta

    @classmethod
    def load(cls, path, model: keras.Model, strict: bool = True) -> "LCAM":
        """Load an L-CAM saved with `save` for `model`, the classifier it was trained on.

        Raises ValueError if the model lacks the layer, has other shapes or classes, or (with
        strict=True) has other weights than the classifier it was trained on (sha256 fingerprint;
        strict=False accepts e.g. a fine-tuned copy of the same architecture).
        """
        meta = cls.read_meta(path)
        arrays = meta.pop("_arrays")
        if not isinstance(model, keras.Model):
            raise ValueError(f"model must be a keras.Model, got {type(model).__name__}")
        try:
            layer = model_graph.resolve_layer(model, meta["layer"])
        except ValueError as err:
            raise ValueError(f"{path}: the L-CAM was trained on layer {meta['layer']!r} of model "
                             f"{meta['model_name']!r}, which this model lacks ({err})") from None
        shape = [None if d is None else int(d) for d in model_graph.input_shape(model)]
        if shape != meta["input_shape"] or model_graph.num_classes(model) != meta["classes"]:
            raise ValueError(
                f"{path}: the L-CAM was trained for a model with input {tuple(meta['input_shape'])} and "
                f"{meta['classes']} classes; this model has input {tuple(shape)} and {model_graph.num_classes(model)} classes"
            )
        if strict and model_fingerprint(model) != meta["model_fingerprint"]:
            raise ValueError(
                f"{path}: this model's weights differ from those of the classifier the L-CAM was trained on "
                f"({meta['model_name']!r}); pass that classifier, or strict=False to use it anyway"
            )
        lcam = cls(model, layer=layer, mode=meta["mode"], kernel=arrays["kernel"], bias=arrays["bias"], loss=meta["loss"])
        lcam.history = meta.get("history", {})
        lcam.settings = meta.get("settings", {})
        return lcam

    @property
    def variables(self) -> list:
        """The attention's own variables (the 1x1 conv's kernel and bias)."""
        return [self.kernel, self.bias]

    def export_savedmodel(self, directory) -> Path:
        """Write a SavedModel (classifier + attention) through `cams.export.export_savedmodel`:
        "serving_default": images -> {"predictions", "probabilities", "class", "map"} for the top-1
        class in one forward pass; "explain": (images, targets) -> the same for the given classes."""
        from cams.export import export_savedmodel

        return export_savedmodel(self.model, directory, explain=self)
