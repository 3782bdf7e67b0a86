"""cams: class activation maps and faithfulness metrics for Keras 3 / TensorFlow classifiers.

    import cams
    maps = cams.GradCAM(model)(images)            # (N, H, W) float32 in [0, 1]
    cams.metrics.ad_ic(model, images, maps)       # {"AD(100%)": ..., "IC(100%)": ..., ...}
    cams.viz.save_grid(images, {"Grad-CAM": maps}, "grid.png")

Submodules and classes load on first use, so `import cams` (and every command line's --help)
does not import TensorFlow.
"""
from __future__ import annotations

import importlib

__version__ = "0.1.0"

_EXPORTS = {
    "GradCAM": "gradient_cams",
    "GradCAMPlusPlus": "gradient_cams",
    "SmoothGradCAMPlusPlus": "gradient_cams",
    "ScoreCAM": "perturbation_cams",
    "RISE": "perturbation_cams",
    "Saliency": "saliency",
    "FeatureCAM": "feature_cam",
    "LCAM": "lcam",
    "resolve_layer": "model_graph",
    "conv_layer_names": "model_graph",
}
_SUBMODULES = {"files", "metrics", "training", "viz", "model_graph", "images", "base", "inputs", "quiet", "export"}

#: command-line name -> explainer class name (`--methods gradcam,scorecam`)
METHOD_NAMES = {
    "gradcam": "GradCAM",
    "gradcam++": "GradCAMPlusPlus",
    "smoothgradcam++": "SmoothGradCAMPlusPlus",
    "scorecam": "ScoreCAM",
    "rise": "RISE",
    "saliency": "Saliency",
}

#: command-line name -> title for tables and figures
METHOD_TITLES = {
    "gradcam": "Grad-CAM",
    "gradcam++": "Grad-CAM++",
    "smoothgradcam++": "Smooth Grad-CAM++",
    "scorecam": "Score-CAM",
    "rise": "RISE",
    "saliency": "Saliency",
}

__all__ = sorted(set(_EXPORTS) | _SUBMODULES | {"METHODS", "METHOD_NAMES", "METHOD_TITLES"})


def __getattr__(name: str):
    if name in _SUBMODULES:
        value = importlib.import_module(f".{name}", __name__)
    elif name in _EXPORTS:
        value = getattr(importlib.import_module(f".{_EXPORTS[name]}", __name__), name)
    elif name == "METHODS":
        value = {key: __getattr__(cls) for key, cls in METHOD_NAMES.items()}
    else:
        raise AttributeError(f"module 'cams' has no attribute {name!r}")
    globals()[name] = value
    return value


def __dir__():
    return __all__
