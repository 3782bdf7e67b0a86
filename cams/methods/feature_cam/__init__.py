"""Feature CAM (Clement, Yang & Cheng, "Feature CAM: Interpretability in Image Classification with
Improved Visual Attention"): a Grad-CAM-family map M combined with an edge feature image.

Edge map F = HED(x) (or Canny), in [0, 1]. Three input versions V (the paper's Fig. 2):

    feature  V = F                       (input 1, "feature only")
    blend21  V = 2/3 G + 1/3 F           (input 2, feature-enhanced original 2:1)
    blend11  V = 1/2 G + 1/2 F           (input 3, feature-enhanced original 1:1)

with G the grey image in [0, 1]. Three experiments with the base CAM M (in [0, 1]):

    add         normalise(k V + M), k = 0.25    (experiment 1, eq. 7)
    multiply    V * M                           (experiment 2, eq. 8)
    complement  (1 - V) * M                     (experiment 3, eq. 9)

`add` is min-max normalised per map because k V + M lies in [0, 1 + k]; the two products already lie
in [0, 1] and are left as they are (the explanation map thresholds at a percentile, which no
rescaling changes). The paper's top five combinations are add x {feature, blend21, blend11} and
complement x {feature, blend11} (`TOP_FIVE`). The paper does not say which "Ours n" column is
which, so tables and figures here name each combination.

    fc = cams.FeatureCAM(model)                  # Grad-CAM++ base, HED edges, blend21 + add
    maps = fc(images)                            # (N, H, W) float32 in [0, 1]
    res = fc.all_combinations(images)            # base CAM and edges computed once
    res[("blend11", "complement")], res.base, res.edges
"""
from __future__ import annotations

import numbers
from dataclasses import dataclass, field
from typing import Callable, Dict, Mapping, Optional, Sequence, Tuple

import keras
import numpy as np

from cams.methods import registry
from cams.methods.feature_cam import edges as _edges
from cams.core.base import normalize_maps
from cams.core.inputs import Targets, check_images

VERSIONS = ("feature", "blend21", "blend11")
EXPERIMENTS = ("add", "multiply", "complement")
#: the paper's base CAMs (any gradient CAM of the registry that reads a layer works)
PAPER_BASES = ("gradcam", "gradcam++", "smoothgradcam++")
#: the paper's top five (version, experiment) combinations
TOP_FIVE = (("feature", "add"), ("blend21", "add"), ("blend11", "add"), ("feature", "complement"), ("blend11", "complement"))
ALL_COMBINATIONS = tuple((v, e) for e in EXPERIMENTS for v in VERSIONS)

Combination = Tuple[str, str]


def combination_name(version: str, experiment: str) -> str:
    """Short label of a combination, e.g. 'add·blend21'."""
    return f"{experiment}·{version}"


def base_names() -> Tuple[str, ...]:
    """Registered methods usable as the base CAM M: the CAMs of a feature layer computed in one graph
    (no per-channel scoring loop, no trained file)."""
    return tuple(n for n, m in registry.methods().items() if m.uses_layer and m.exportable and not m.trained_file)


def _check_choice(name: str, value, choices) -> str:
    if not isinstance(value, str) or value not in choices:
        raise ValueError(f"{name} must be one of {', '.join(map(repr, choices))}, got {value!r}")
    return value


def _as_maps(a, name: str) -> np.ndarray:
    m = np.asarray(a, dtype=np.float32)
    if m.ndim != 3:
        raise ValueError(f"{name} must have shape (N, H, W), got {m.shape}")
    return m


def normalise(maps) -> np.ndarray:
    """Per-map min-max normalisation to [0, 1]; a constant map becomes zeros (`cams.core.base.normalize_maps`)."""
    return normalize_maps(_as_maps(maps, "maps")).numpy()


# ----------------------------------------------------------------------------- input versions


def version_feature(edges, grey=None) -> np.ndarray:
    """Input 1 of the paper (Fig. 2, "feature only"): V = F."""
    return _as_maps(edges, "edges").copy()


def version_blend21(edges, grey) -> np.ndarray:
    """Input 2 of the paper (Fig. 2, feature-enhanced original at 2:1): V = 2/3 G + 1/3 F."""
    return (2.0 / 3.0) * _as_maps(grey, "grey") + (1.0 / 3.0) * _as_maps(edges, "edges")


def version_blend11(edges, grey) -> np.ndarray:
    """Input 3 of the paper (Fig. 2, feature-enhanced original at 1:1): V = 1/2 G + 1/2 F."""
    return 0.5 * _as_maps(grey, "grey") + 0.5 * _as_maps(edges, "edges")


VERSION_FUNCTIONS: Dict[str, Callable] = {"feature": version_feature, "blend21": version_blend21, "blend11": version_blend11}

# ----------------------------------------------------------------------------- experiments


def experiment_add(v, m, k: float = 0.25) -> np.ndarray:
    """Experiment 1 of the paper (eq. 7, k F_hed(x) + M_c(x), k = 0.25): normalise(k V + M)."""
    return normalise(k * _as_maps(v, "V") + _as_maps(m, "base maps"))


def experiment_multiply(v, m, k: float = 0.25) -> np.ndarray:
    """Experiment 2 of the paper (eq. 8, F_hed(x) o M_c(x)): V * M (pixel-wise; k unused)."""
    return (_as_maps(v, "V") * _as_maps(m, "base maps")).astype(np.float32)


def experiment_complement(v, m, k: float = 0.25) -> np.ndarray:
    """Experiment 3 of the paper (eq. 9, F'_hed(x) o M_c(x)): (1 - V) * M (pixel-wise; k unused)."""
    return ((1.0 - _as_maps(v, "V")) * _as_maps(m, "base maps")).astype(np.float32)


EXPERIMENT_FUNCTIONS: Dict[str, Callable] = {
    "add": experiment_add,
    "multiply": experiment_multiply,
    "complement": experiment_complement,
}


def combine(
    base_maps,
    edges,
    grey,
    combinations: Sequence[Combination] = ALL_COMBINATIONS,
    k: float = 0.25,
) -> Dict[Combination, np.ndarray]:
    """Feature CAM maps for each (version, experiment) from base CAMs M, edges F and grey images G.

    All three are (N, H, W) in [0, 1]; returns {(version, experiment): float32 (N, H, W) in [0, 1]}.
    """
    m, f, g = _as_maps(base_maps, "base maps"), _as_maps(edges, "edges"), _as_maps(grey, "grey")
    if not (m.shape == f.shape == g.shape):
        raise ValueError(f"base maps, edges and grey images must share one shape, got {m.shape}, {f.shape}, {g.shape}")
    versions: Dict[str, np.ndarray] = {}
    out: Dict[Combination, np.ndarray] = {}
    for version, experiment in combinations:
        _check_choice("version", version, VERSIONS)
        _check_choice("experiment", experiment, EXPERIMENTS)
        if version not in versions:
            versions[version] = VERSION_FUNCTIONS[version](f, g)
        out[(version, experiment)] = np.clip(EXPERIMENT_FUNCTIONS[experiment](versions[version], m, k), 0.0, 1.0)
    return out


@dataclass
class FeatureCAMResult:
    """What `FeatureCAM.all_combinations` returns: base CAMs, edges, grey images and every combination.

    `result[(version, experiment)]` is the same as `result.maps[(version, experiment)]`.
    """

    base: np.ndarray
    edges: np.ndarray
    grey: np.ndarray
    maps: Dict[Combination, np.ndarray] = field(default_factory=dict)
    base_name: str = "gradcam++"

    def __getitem__(self, key: Combination) -> np.ndarray:
        return self.maps[key]

    def top_five(self) -> Dict[str, np.ndarray]:
        """The paper's top five combinations, {label: maps}, in `TOP_FIVE` order."""
        return {combination_name(v, e): self.maps[(v, e)] for v, e in TOP_FIVE if (v, e) in self.maps}


@registry.register(
    "featurecam", gradient=True, second_network="an edge detector (HED or Canny)", title="Feature CAM", family="edge", cost="base CAM + 1 HED pass",
    paper="Clement, Yang & Cheng, arXiv 2024", formula="normalise(k V + M), V = HED edges blended with the grey image",
    quick={"edges": "canny"})
class FeatureCAM:
    """Feature CAM explainer: `maps = FeatureCAM(model)(images, targets=None)`.

    model: a keras.Model; layer: the feature layer of the base CAM (name | Layer | None = last
    layer with a 4-D output); base: "gradcam", "gradcam++" or "smoothgradcam++" (the existing
    `cams` explainers compute M); edges: "hed" or "canny"; version: "feature", "blend21" or
    "blend11"; experiment: "add", "multiply" or "complement"; k: weight of V in `add` (the paper
    keeps k = 0.25 in [0, 0.5]). `base_options` go to the base explainer (e.g. n_samples, seed,
    batch_size for Smooth Grad-CAM++). Images: (N, H, W, C) as the model takes them; for the edge
    detectors they are converted for display (see `cams.methods.feature_cam.edges`).
    """

    #: edges (HED's own network or OpenCV's Canny) and the combination run on arrays: no SavedModel serves it
    exportable = False
    layer = None

    def __init__(
        self,
        model: keras.Model,
        layer=None,
        base: str = "gradcam++",
        edges: str = "hed",
        version: str = "blend21",
        experiment: str = "add",
        k: float = 0.25,
        base_options: Optional[Mapping] = None,
    ):
        self.base_name = _check_choice("base", base, base_names())
        self.edges_name = _check_choice("edges", edges, tuple(_edges.EDGE_METHODS))
        self.version = _check_choice("version", version, VERSIONS)
        self.experiment = _check_choice("experiment", experiment, EXPERIMENTS)
        if isinstance(k, bool) or not isinstance(k, numbers.Real) or not np.isfinite(k) or k < 0:
            raise ValueError(f"k must be a finite number >= 0 (the paper uses 0.25, in [0, 0.5]), got {k!r}")
        self.k = float(k)
        self.base_explainer = registry.make_explainer(base, model, layer=layer, **dict(base_options or {}))
        self.model = model
        self.layer = self.base_explainer.layer
        self.input_shape = self.base_explainer.input_shape

    def forward_passes(self) -> float:
        """Classifier forward passes per image: the base CAM's (the edge detector is another network)."""
        return self.base_explainer.forward_passes()

    def explain_tensor(self, x, targets):
        """Not available: the edge maps (HED's network or OpenCV's Canny) and the combination run on arrays."""
        raise NotImplementedError("Feature CAM combines edge maps computed on arrays: call the explainer on images")

    def edge_maps(self, images) -> np.ndarray:
        """Edge maps F (N, H, W) in [0, 1] with this explainer's edge detector."""
        return _edges.edge_maps(images, self.edges_name)

    def _inputs(self, images, targets, edges):
        x = check_images(images, self.input_shape)
        base = self.base_explainer(x, targets)
        if edges is None:
            edges = self.edge_maps(x)
        edges = _as_maps(edges, "edges")
        if edges.shape != x.shape[:3]:
            raise ValueError(f"edges must have shape {x.shape[:3]} to match the images, got {edges.shape}")
        return x, base, edges, _edges.grey_images(x)

    def __call__(self, images, targets: Targets = None, edges=None) -> np.ndarray:
        """Maps of this explainer's (version, experiment), float32 (N, H, W) in [0, 1].

        `edges` may pass precomputed edge maps (N, H, W) to skip the edge detector.
        """
        x, base, f, g = self._inputs(images, targets, edges)
        return combine(base, f, g, [(self.version, self.experiment)], self.k)[(self.version, self.experiment)]

    def all_combinations(
        self, images, targets: Targets = None, edges=None, combinations: Sequence[Combination] = ALL_COMBINATIONS
    ) -> FeatureCAMResult:
        """Every (version, experiment) combination (default all nine) with one base CAM and one
        edge-detector pass for the batch; `edges` may pass precomputed edge maps."""
        x, base, f, g = self._inputs(images, targets, edges)
        return FeatureCAMResult(base=base, edges=f, grey=g, maps=combine(base, f, g, combinations, self.k), base_name=self.base_name)
