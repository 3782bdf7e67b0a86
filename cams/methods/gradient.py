"""Gradient CAMs: Grad-CAM, Grad-CAM++, Smooth Grad-CAM++, HiResCAM, XGrad-CAM, Layer-CAM.

All share one compiled step (`GradientCAM`): a forward pass with the feature layer watched, one
tape, dS/dA for the target logits S, then the method's own rule, usually channel weights w and
L = ReLU(sum_k w_k A^k). The backward pass only crosses the layers after A (the tape watches A,
not the weights). A new gradient CAM is a subclass that defines `weights(A, d)` or `combine(A, d)`.
"""
from __future__ import annotations

from typing import NamedTuple, Optional

import keras
import tensorflow as tf

from cams.core import model_graph
from cams.core.base import (LayerExplainer, noisy_copy, normalize_maps, resize_maps, resolve_targets, seeded_generator,
                            target_scores)
from cams.core.inputs import check_count
from cams.methods.registry import register


class Derivatives(NamedTuple):
    """Derivatives of the target score S with respect to the activations A, all (B, h, w, K).

    `first` = dS/dA; `second` and `third` are g^2 and g^3 (the exp-trick stand-ins for the 2nd and
    3rd derivatives of exp(S) used by Grad-CAM++), or their SmoothGrad averages; None unless the
    method sets `higher_orders = True`.
    """

    first: tf.Tensor
    second: Optional[tf.Tensor] = None
    third: Optional[tf.Tensor] = None


def gradcam_plus_plus_weights(A: tf.Tensor, d1: tf.Tensor, d2: tf.Tensor, d3: tf.Tensor) -> tf.Tensor:
    """Grad-CAM++ (Chattopadhay 2018, exp trick as in the authors' code and tf-keras-vis).

    alpha_ij^k = d2 / (2 d2 + sum_ab A_ab^k d3)   (a zero denominator counts as 1),
    alpha normalised by its spatial sum (a zero sum counts as 1),
    w_k = sum_ij alpha_ij^k ReLU(d1_ij^k),
    with d1, d2, d3 = g, g^2, g^3 for g = dS/dA (or their SmoothGrad averages).
    """
    global_sum = tf.reduce_sum(A, axis=[1, 2], keepdims=True)
    denom = 2.0 * d2 + d3 * global_sum
    alpha = d2 / tf.where(denom != 0.0, denom, tf.ones_like(denom))
    norm = tf.reduce_sum(alpha, axis=[1, 2], keepdims=True)
    alpha = alpha / tf.where(norm != 0.0, norm, tf.ones_like(norm))
    return tf.reduce_sum(alpha * tf.nn.relu(d1), axis=[1, 2])


@tf.autograph.experimental.do_not_convert
def layer_gradients(explainer, x: tf.Tensor, targets):
    """One forward pass and one tape through a layer explainer's feature layer.

    Args:
        explainer: a `LayerExplainer` (its `forward` replays the model and exposes A).
        x: float32 images (B, H, W, C).
        targets: int32 (B,) class indices, -1 for the top-1 class (or a bound target object).

    Returns:
        (A, g = dS/dA both float32, the logits, the targets resolved to the top-1 class where -1).
    """
    with tf.GradientTape(watch_accessed_variables=False) as tape:
        A, logits = explainer.forward(x, on_feature=tape.watch)
        targets = resolve_targets(logits, targets)
        scores = target_scores(logits, targets)
    g = tape.gradient(scores, A)
    if g is None:
        raise ValueError(f"the model's output does not depend on layer {explainer.layer.name!r}")
    return tf.cast(A, tf.float32), tf.cast(g, tf.float32), logits, targets


class GradientCAM(LayerExplainer):
    """Base class of the gradient CAMs: one tape per batch, then the method's rule.

    Subclasses define `weights(A, d) -> (B, K)` (the map is then L = ReLU(sum_k w_k A^k)) or
    override `combine(A, d) -> (B, h, w)` for a map that is not a weighted sum of channels.
    `A` is float32 (B, h, w, K); `d` is a `Derivatives`. Set `higher_orders = True` to receive
    `d.second` and `d.third`.

    Every gradient CAM has the SmoothGrad option (Smilkov et al., 2017): with `smooth_samples` = n > 0
    the derivative terms are averaged over n noisy copies x + N(0, (noise (max x - min x))^2) (range
    per image) while A and the default target come from the clean image; Smooth Grad-CAM++ is
    Grad-CAM++ with this option.

    Args:
        model: a Keras classifier (Sequential or functional, nested bases included).
        layer: the feature layer: a name, a Layer, or None for the last layer with a 4-D output.
        batch_size: images per compiled call (one tape per call).
        smooth_samples: noisy copies per image (0: the derivatives at x alone).
        noise: the noise standard deviation as a fraction of each image's value range.
        seed: seed of the noise (None: a fresh draw every call).
    """

    higher_orders: bool = False

    def __init__(self, model: keras.Model, layer=None, batch_size: int = 32, smooth_samples: int = 0,
                 noise: float = 0.15, seed: Optional[int] = None):
        if isinstance(smooth_samples, bool) or int(smooth_samples) != smooth_samples or smooth_samples < 0:
            raise ValueError(f"smooth_samples must be a whole number >= 0, got {smooth_samples!r}")
        if not noise >= 0:  # NaN too
            raise ValueError(f"noise must be >= 0, got {noise}")
        self.smooth_samples, self.noise = int(smooth_samples), float(noise)
        self._rng = seeded_generator(seed)
        super().__init__(model, layer)
        self.batch_size = check_count(batch_size, "batch_size")

    @property
    def variables(self) -> list:
        """The noise generator's state (tracked when the explainer is exported)."""
        return [self._rng.state]

    def forward_passes(self) -> float:
        """One forward pass (the head's backward pass is small), plus one per noisy copy."""
        return 1.0 + self.smooth_samples

    def weights(self, A: tf.Tensor, d: Derivatives) -> tf.Tensor:  # pragma: no cover - abstract
        raise NotImplementedError(f"{type(self).__name__} must define weights(A, d) or combine(A, d)")

    def combine(self, A: tf.Tensor, d: Derivatives) -> tf.Tensor:
        """The raw map (B, h, w): ReLU(sum_k w_k A^k) with w = `weights(A, d)`."""
        return tf.nn.relu(tf.einsum("bhwk,bk->bhw", A, self.weights(A, d)))

    def _gradients(self, x: tf.Tensor, targets: tf.Tensor):
        """(A, g, targets) with g = dS/dA, all float32; targets resolved to top-1 where -1."""
        A, g, _, targets = layer_gradients(self, x, targets)
        return A, g, targets

    def _orders(self, g: tf.Tensor) -> Derivatives:
        if not self.higher_orders:
            return Derivatives(g)
        g2 = g * g
        return Derivatives(g, g2, g2 * g)

    def derivatives(self, x: tf.Tensor, targets: tf.Tensor):
        """(A, Derivatives) for the images x and the targets (-1: the top-1 class at x)."""
        if self.smooth_samples == 0:
            A, g, _ = self._gradients(x, targets)
            return A, self._orders(g)
        A, logits = self.forward(x)
        targets = resolve_targets(logits, targets)
        A = tf.cast(A, tf.float32)
        d1, d2, d3 = tf.zeros_like(A), tf.zeros_like(A), tf.zeros_like(A)
        for _ in tf.range(self.smooth_samples):
            _, g, _ = self._gradients(noisy_copy(x, self.noise, self._rng), targets)
            d1 += g
            if self.higher_orders:  # a Python constant: traced once either way
                d2 += g * g
                d3 += g * g * g
        n = float(self.smooth_samples)
        return A, Derivatives(d1 / n, d2 / n, d3 / n) if self.higher_orders else Derivatives(d1 / n)

    def _explain_batch(self, x: tf.Tensor, targets: tf.Tensor) -> tf.Tensor:
        A, d = self.derivatives(x, targets)
        return self.combine(A, d)

    #: `map_from_pass` reads g = dS/dA (`cams.methods.shared` takes it once for every method on the layer)
    needs_gradient = True

    @property
    def shares_pass(self) -> bool:
        """True when the map can come from a forward pass and tape shared with other methods on the
        same layer (`cams.methods.shared`): no SmoothGrad copies and this class's own single-pass rule."""
        return self.smooth_samples == 0 and type(self)._explain_batch is GradientCAM._explain_batch

    def map_from_pass(self, A: tf.Tensor, g: tf.Tensor, logits, targets) -> tf.Tensor:
        """The raw map (B, h, w) from a shared pass: A and g = dS/dA in float32, `targets` resolved."""
        return self.combine(A, self._orders(g))


@register("gradcam", gradient=True, title="Grad-CAM", family="gradient", cost="1 forward + head backward",
          paper="Selvaraju et al., ICCV 2017", formula="w_k = mean_ij dS/dA^k_ij; L = ReLU(sum_k w_k A^k)")
class GradCAM(GradientCAM):
    """Grad-CAM (Selvaraju et al., ICCV 2017): L = ReLU(sum_k mean_ij(dS/dA_ij^k) A^k)."""

    def weights(self, A, d):
        return tf.reduce_mean(d.first, axis=[1, 2])


@register("gradcam++", gradient=True, title="Grad-CAM++", family="gradient", cost="1 forward + head backward",
          paper="Chattopadhay et al., WACV 2018",
          formula="w_k = sum_ij alpha^k_ij ReLU(dS/dA^k_ij), alpha from 2nd/3rd-order terms (exp trick)")
class GradCAMPlusPlus(GradientCAM):
    """Grad-CAM++ (Chattopadhay et al., WACV 2018); weights in `gradcam_plus_plus_weights`."""

    higher_orders = True

    def weights(self, A, d):
        return gradcam_plus_plus_weights(A, d.first, d.second, d.third)


@register("smoothgradcam++", gradient=True, title="Smooth Grad-CAM++", family="gradient", cost="n_samples + 1 forwards + backwards",
          paper="Omeiza et al., 2019", formula="Grad-CAM++ on derivatives averaged over noisy copies",
          quick={"n_samples": 2})
class SmoothGradCAMPlusPlus(GradCAMPlusPlus):
    """Smooth Grad-CAM++ (Omeiza et al., 2019): Grad-CAM++ with the SmoothGrad option.

    The derivative terms g, g^2, g^3 are averaged over `n_samples` noisy copies
    x + N(0, (noise * (max x - min x))^2) (range per image), then the Grad-CAM++ formula is
    applied with the activations A of the clean image. Targets default to the clean top-1.

    Args:
        model: as for `GradientCAM`.
        layer: as for `GradientCAM`.
        batch_size: as for `GradientCAM`.
        n_samples: noisy copies per image (at least 1).
        noise: noise standard deviation as a fraction of each image's value range.
        seed: seed of the noise (None: a fresh draw every call).
    """

    def __init__(self, model: keras.Model, layer=None, n_samples: int = 16, noise: float = 0.15,
                 seed: Optional[int] = None, batch_size: int = 32):
        super().__init__(model, layer, batch_size=batch_size, smooth_samples=check_count(n_samples, "n_samples"),
                         noise=noise, seed=seed)
        self.n_samples = self.smooth_samples


@register("hirescam", gradient=True, title="HiResCAM", family="gradient", cost="1 forward + head backward",
          paper="Draelos & Carin, 2020", formula="L = ReLU(sum_k dS/dA^k * A^k) (element-wise)")
class HiResCAM(GradientCAM):
    """HiResCAM (Draelos & Carin, "Use HiResCAM instead of Grad-CAM", 2020).

    L = ReLU(sum_k dS/dA^k (.) A^k): the gradient multiplies the activations element-wise instead
    of being averaged first, so the map is exactly the contribution of each position to S for a
    model whose head is linear after A.
    """

    def combine(self, A, d):
        return tf.nn.relu(tf.reduce_sum(d.first * A, axis=-1))


@register("xgradcam", gradient=True, title="XGrad-CAM", family="gradient", cost="1 forward + head backward",
          paper="Fu et al., BMVC 2020", formula="w_k = sum_ij (A^k_ij / sum_ab A^k_ab) dS/dA^k_ij")
class XGradCAM(GradientCAM):
    """XGrad-CAM (Fu et al., "Axiom-based Grad-CAM", BMVC 2020).

    w_k = sum_ij (A_ij^k / sum_ab A_ab^k) dS/dA_ij^k (a channel whose activations sum to 0 gets
    weight 0); L = ReLU(sum_k w_k A^k).
    """

    def weights(self, A, d):
        total = tf.reduce_sum(A, axis=[1, 2], keepdims=True)
        share = tf.math.divide_no_nan(A, total)
        return tf.reduce_sum(share * d.first, axis=[1, 2])


@register("layercam", gradient=True, title="Layer-CAM", family="gradient", cost="1 forward + backward to the shallowest layer",
          paper="Jiang et al., IEEE TIP 2021",
          formula="L = ReLU(sum_k ReLU(dS/dA^k) * A^k); layers=[...]: max of normalised maps, shallow ones tanh(2M/max M)")
class LayerCAM(GradientCAM):
    """Layer-CAM (Jiang, Zhang, Hou, Cheng & Wei, "LayerCAM", IEEE TIP 2021).

    One layer: L = ReLU(sum_k ReLU(dS/dA^k) (.) A^k) (element-wise, positive gradients only).
    Several layers (`layers=[...]`, given from shallow to deep; one forward pass and one tape
    record them all): each map L_l is resized to the input size and min-max normalised; every
    layer but the last (deepest) is scaled as in the paper, L_l <- tanh(2 L_l / max L_l); the
    maps are fused by the element-wise maximum.

    Args:
        model: as for `GradientCAM`.
        batch_size: as for `GradientCAM`.
        smooth_samples: as for `GradientCAM` (SmoothGrad with one layer).
        noise: as for `GradientCAM`.
        seed: as for `GradientCAM`.
        layer: the feature layer (one-layer Layer-CAM); None for the last 4-D layer.
        layers: several feature layers (names or Layers, shallow to deep) to fuse; exclusive with `layer`.
    """

    def __init__(self, model: keras.Model, layer=None, layers=None, batch_size: int = 32, smooth_samples: int = 0,
                 noise: float = 0.15, seed: Optional[int] = None):
        if layers is not None and layer is not None:
            raise ValueError("give either layer= (one layer) or layers=[...] (fusion), not both")
        if layers is not None and smooth_samples:
            raise ValueError("smooth_samples works with one layer; give layer= or smooth_samples=0")
        if layers is not None and (isinstance(layers, (str, keras.layers.Layer)) or len(layers) == 0):
            raise ValueError(f"layers must be a non-empty list of layer names or Layers, got {layers!r}")
        chosen = [model_graph.resolve_layer(model, lyr) for lyr in layers] if layers is not None else None
        super().__init__(model, chosen[-1] if chosen else layer, batch_size=batch_size, smooth_samples=smooth_samples,
                         noise=noise, seed=seed)
        self.layers = chosen or [self.layer]

    def combine(self, A, d):
        return tf.nn.relu(tf.reduce_sum(tf.nn.relu(d.first) * A, axis=-1))

    @property
    def shares_pass(self) -> bool:
        """One layer without SmoothGrad: the map can come from a shared pass (`cams.methods.shared`)."""
        return len(self.layers) == 1 and self.smooth_samples == 0

    def _explain_batch(self, x: tf.Tensor, targets: tf.Tensor) -> tf.Tensor:
        if len(self.layers) == 1:
            return super()._explain_batch(x, targets)
        with tf.GradientTape(watch_accessed_variables=False) as tape:
            acts, logits = model_graph.forward_layers(self.model, x, self.layers, on_feature=tape.watch, all_outputs=True)
            scores = target_scores(logits, resolve_targets(logits, targets))
        grads = tape.gradient(scores, acts)
        fused = None
        for i, (A, g) in enumerate(zip(acts, grads)):
            if g is None:
                raise ValueError(f"the model's output does not depend on layer {self.layers[i].name!r}")
            m = self.combine(tf.cast(A, tf.float32), Derivatives(tf.cast(g, tf.float32)))
            m = normalize_maps(resize_maps(m, tf.shape(x)[1:3]))
            if i < len(self.layers) - 1:  # shallow layer: the paper's tanh scaling
                top = tf.reduce_max(m, axis=[1, 2], keepdims=True)
                m = tf.tanh(2.0 * tf.math.divide_no_nan(m, top))
            fused = m if fused is None else tf.maximum(fused, m)
        return fused
