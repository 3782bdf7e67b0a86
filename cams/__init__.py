"""cams: class activation maps and faithfulness metrics for Keras 3 / TensorFlow classifiers.

    import cams
    maps = cams.GradCAM(model)(images)            # (N, H, W) float32 in [0, 1]
    maps = cams.make_explainer("layercam", model)(images, targets=[3, 1])
    cams.metrics.ad_ic(model, images, maps)       # {"AD(100%)": ..., "IC(100%)": ..., ...}
    cams.viz.save_grid(images, {"Grad-CAM": maps}, "grid.png")

Layout: `cams.core` (model graph, inputs, the base explainer, images, files), `cams.methods`
(one module per family and the registry), `cams.metrics`, `cams.viz`, `cams.cli`,
`cams.studies` (the papers' evaluation tables), `cams.distributed` (folder explanation),
`cams.export` (SavedModels), `cams.training`. Submodules and classes load on first use, so
`import cams` does not import TensorFlow.
"""
from __future__ import annotations

import importlib
import importlib.abc
import importlib.util
import sys
import warnings

__version__ = "0.1.0"

_FUNCTIONS = {
    "make_explainer": "cams.methods.registry",
    "resolve_layer": "cams.core.model_graph",
    "conv_layer_names": "cams.core.model_graph",
}
_SUBMODULES = {
    "core": "cams.core", "methods": "cams.methods", "registry": "cams.methods.registry",
    "metrics": "cams.metrics", "viz": "cams.viz", "cli": "cams.cli", "studies": "cams.studies",
    "distributed": "cams.distributed", "export": "cams.export", "training": "cams.training",
    "files": "cams.core.files", "images": "cams.core.images", "model_graph": "cams.core.model_graph",
    "inputs": "cams.core.inputs", "base": "cams.core.base", "model_io": "cams.core.model_io",
    "quiet": "cams.core.quiet",
}
#: module paths of version 0.1, kept as deprecated aliases of their new homes
_MOVED = {
    "cams.gradient_cams": "cams.methods.gradient", "cams.perturbation_cams": "cams.methods.perturbation",
    "cams.saliency": "cams.methods.saliency", "cams.feature_cam": "cams.methods.feature_cam",
    "cams.edges": "cams.methods.feature_cam.edges", "cams.lcam": "cams.methods.lcam",
    "cams.lcam_eval": "cams.studies.lcam_table1", "cams.feature_cam_eval": "cams.studies.feature_cam_tables",
    "cams.batch_explain": "cams.distributed.local", "cams.cli_feature_cam": "cams.cli.feature_cam",
    "cams.cli_lcam": "cams.cli.lcam",
    **{f"cams.{old}": new for old, new in _SUBMODULES.items() if new.startswith("cams.core.")},
}


class _MovedModuleFinder(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """`import cams.gradient_cams` (and friends) still works, with a DeprecationWarning."""

    def find_spec(self, fullname, path=None, target=None):
        if fullname in _MOVED:
            return importlib.util.spec_from_loader(fullname, self)
        return None

    def create_module(self, spec):
        new = _MOVED[spec.name]
        if not new.startswith("cams.core."):
            warnings.warn(f"{spec.name} moved to {new}; the old path will be removed", DeprecationWarning, stacklevel=3)
        return importlib.import_module(new)

    def exec_module(self, module):
        pass


if not any(isinstance(f, _MovedModuleFinder) for f in sys.meta_path):
    sys.meta_path.append(_MovedModuleFinder())


def _explainer_classes() -> dict:
    from cams.methods import registry

    return {m.cls.__name__: m.cls for m in registry.methods().values()}


def __getattr__(name: str):
    if name in _SUBMODULES:
        value = importlib.import_module(_SUBMODULES[name])
    elif name in _FUNCTIONS:
        value = getattr(importlib.import_module(_FUNCTIONS[name]), name)
    elif name in ("METHODS", "METHOD_NAMES", "METHOD_TITLES"):
        # deprecated tables of version 0.1, now read from the registry
        from cams.methods import registry

        table = registry.methods()
        value = {
            "METHODS": {k: m.cls for k, m in table.items()},
            "METHOD_NAMES": {k: m.cls.__name__ for k, m in table.items()},
            "METHOD_TITLES": {k: m.title for k, m in table.items()},
        }[name]
    elif name[:1].isupper() and name in _explainer_classes():
        value = _explainer_classes()[name]
    else:
        raise AttributeError(f"module 'cams' has no attribute {name!r}")
    globals()[name] = value
    return value


def __dir__():
    return sorted(set(_SUBMODULES) | set(_FUNCTIONS) | {"__version__"})
