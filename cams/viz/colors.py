"""Colour for maps: colour-mapped heatmaps and heatmap overlays on images, as uint8 RGB arrays.

Images may be float in [0, 1], float in [0, 255] or uint8, grey (H, W) / (H, W, 1) or RGB
(H, W, 3); they are converted with `cams.core.images.to_uint8_rgb`. Nothing here draws a figure.
"""
from __future__ import annotations

import matplotlib
import numpy as np

from cams.core.images import to_uint8_rgb


def heatmap(cam: np.ndarray, colormap: str = "jet", size: tuple[int, int] | None = None) -> np.ndarray:
    """Colour a map in [0, 1] (H, W) with a matplotlib colormap -> uint8 RGB (H, W, 3).

    `size` = (H, W) resizes the map bilinearly first.
    """
    cam = np.asarray(cam, dtype=np.float32)
    if cam.ndim == 3 and cam.shape[-1] == 1:
        cam = cam[..., 0]
    if cam.ndim != 2:
        raise ValueError(f"expected a map of shape (H, W), got {cam.shape}")
    if size is not None and tuple(cam.shape) != tuple(size):
        import cv2

        cam = cv2.resize(cam, (int(size[1]), int(size[0])), interpolation=cv2.INTER_LINEAR)
    cam = np.clip(np.nan_to_num(cam), 0.0, 1.0)
    rgba = matplotlib.colormaps[colormap](cam)
    return (rgba[..., :3] * 255.0 + 0.5).astype(np.uint8)


def overlay(image: np.ndarray, cam: np.ndarray, alpha: float = 0.4, colormap: str = "jet") -> np.ndarray:
    """Blend the coloured map over the image: (1 - alpha) * image + alpha * heatmap, uint8 RGB."""
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"alpha must be in [0, 1], got {alpha}")
    rgb = to_uint8_rgb(image)
    hm = heatmap(cam, colormap=colormap, size=rgb.shape[:2])
    out = (1.0 - alpha) * rgb.astype(np.float32) + alpha * hm.astype(np.float32)
    return np.clip(np.rint(out), 0, 255).astype(np.uint8)
