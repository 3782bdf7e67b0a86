"""cams: class activation maps and faithfulness metrics for Keras 3 / TensorFlow classifiers.

    import cams
    maps = cams.GradCAM(model)(images)            # (N, H, W) float32 in [0, 1]
    maps = cams.make_explainer("layercam", model)(images, targets=[3, 1])
    cams.metrics.ad_ic(model, images, maps)       # {"AD(100%)": ..., "IC(100%)": ..., ...}
    cams.viz.save_grid(images, {"Grad-CAM": maps}, "grid.png")

The public names are listed below, each with the module that defines it. They load on first use,
so `import cams` does not import TensorFlow. Layers, bottom first (each imports only those below):
`cams.core` (model graph, inputs, the base explainer, images, files), `cams.methods` (the registry
and one module per family), `cams.metrics`, `cams.viz`, `cams.training` / `cams.export`,
`cams.distributed` (folder explanation), `cams.studies` (the papers' tables), `cams.cli`.
"""
from __future__ import annotations

import importlib

__version__ = "0.1.0"

#: the explainers, by class name -> the module that declares them (and registers their `--methods` name)
EXPLAINERS = {
    "GradCAM": "cams.methods.gradient",
    "GradCAMPlusPlus": "cams.methods.gradient",
    "SmoothGradCAMPlusPlus": "cams.methods.gradient",
    "HiResCAM": "cams.methods.gradient",
    "XGradCAM": "cams.methods.gradient",
    "LayerCAM": "cams.methods.gradient",
    "CAM": "cams.methods.cam",
    "EigenCAM": "cams.methods.eigen",
    "Saliency": "cams.methods.saliency",
    "GradientInput": "cams.methods.attribution",
    "IntegratedGradients": "cams.methods.attribution",
    "GuidedBackprop": "cams.methods.attribution",
    "GuidedGradCAM": "cams.methods.attribution",
    "ScoreCAM": "cams.methods.perturbation",
    "RISE": "cams.methods.perturbation",
    "AblationCAM": "cams.methods.ablation",
    "SSCAM": "cams.methods.score_variants",
    "ISCAM": "cams.methods.score_variants",
    "AttentionRollout": "cams.methods.attention",
    "GradientAttention": "cams.methods.attention",
    "LCAM": "cams.methods.lcam",
    "FeatureCAM": "cams.methods.feature_cam",
}
FUNCTIONS = {
    "make_explainer": "cams.methods.registry",
    "resolve_layer": "cams.core.model_graph",
    "conv_layer_names": "cams.core.model_graph",
}
SUBPACKAGES = ("core", "targets", "methods", "metrics", "viz", "training", "export", "callbacks", "report", "sanity",
               "distributed", "studies", "cli")

__all__ = [*EXPLAINERS, *FUNCTIONS, *SUBPACKAGES, "__version__"]


def __getattr__(name: str):
    if name in SUBPACKAGES:
        value = importlib.import_module(f"cams.{name}")
    elif name in EXPLAINERS or name in FUNCTIONS:
        value = getattr(importlib.import_module({**EXPLAINERS, **FUNCTIONS}[name]), name)
    else:
        raise AttributeError(f"module 'cams' has no attribute {name!r}")
    globals()[name] = value
    return value


def __dir__():
    return sorted(__all__)
