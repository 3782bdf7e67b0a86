"""grad_cam_analysis: Grad-CAM of one real and one fake test image (the report's Grad-CAM figures) at conv3
(SimpleNet) or Xception's last convolution, for the image's true class."""
from __future__ import annotations

import numpy as np

from cams.viz import save_triplets

from ..data import CLASSES, denormalise
from ..models import cam_layer
from .common import Analysis


def get_grad_cam_visualization(model, image: np.ndarray, label: int, layer: str | None = None) -> np.ndarray:
    """Grad-CAM (H, W) in [0, 1] of one normalised image for class `label`."""
    import cams

    return np.asarray(cams.GradCAM(model, layer=layer)(image[None].astype(np.float32), targets=[int(label)]))[0]


def grad_cam_analysis(an: Analysis, seed: int | None = None, batch_size: int = 32) -> dict:
    """Pick a random real and a random fake test image; write one input|heatmap|overlay figure each."""
    import cams

    an.outputs("grad-cam-analysis")
    images, labels, paths = an.load_split_arrays("test", batch_size)
    rng = np.random.default_rng(seed)
    layer = cam_layer(an.model)
    explainer = cams.GradCAM(an.model, layer=layer)
    out: dict = {"layer": layer or "last 4-D layer (Xception's last conv)"}
    for c, name in enumerate(CLASSES):
        idx = np.flatnonzero(labels == c)
        if idx.size == 0:
            an.log(f"warning: no {name} image in the test split; skipping its Grad-CAM")
            continue
        i = int(rng.choice(idx))
        cam = np.asarray(explainer(images[i:i + 1], targets=[c]))[0]
        prob = cams.metrics.probabilities(an.model, images[i:i + 1])[0]
        title = f"{name}: P(fake)={prob[1]:.2f}"
        path = save_triplets(denormalise(images[i:i + 1]), cam[None], an.figure(f"grad_cam_{name}"), titles=[title])
        out[name] = {"path": paths[i], "figure": str(path), "p_fake": float(prob[1])}
        an.log(f"Grad-CAM of {name} image {paths[i]} at {out['layer']} (P(fake) = {prob[1]:.3f}): wrote {path}")
    return out
