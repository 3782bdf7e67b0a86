"""cams: class activation maps and faithfulness metrics for Keras 3 / TensorFlow classifiers.

    import cams
    maps = cams.GradCAM(model)(images)            # (N, H, W) float32 in [0, 1]
    cams.metrics.ad_ic(model, images, maps)       # {"AD(100%)": ..., "IC(100%)": ..., ...}
    cams.viz.save_grid(images, {"Grad-CAM": maps}, "grid.png")
"""
from . import files, metrics, training, viz
from .gradient_cams import GradCAM, GradCAMPlusPlus, SmoothGradCAMPlusPlus
from .model_graph import conv_layer_names, resolve_layer
from .perturbation_cams import RISE, ScoreCAM
from .saliency import Saliency

__version__ = "0.1.0"

#: name -> explainer class, for command lines (`--methods gradcam,scorecam`)
METHODS = {
    "gradcam": GradCAM,
    "gradcam++": GradCAMPlusPlus,
    "smoothgradcam++": SmoothGradCAMPlusPlus,
    "scorecam": ScoreCAM,
    "rise": RISE,
    "saliency": Saliency,
}

__all__ = [
    "GradCAM", "GradCAMPlusPlus", "SmoothGradCAMPlusPlus", "ScoreCAM", "RISE", "Saliency",
    "METHODS", "metrics", "viz", "files", "training", "resolve_layer", "conv_layer_names",
]
