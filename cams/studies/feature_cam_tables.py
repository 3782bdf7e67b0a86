"""The Feature CAM paper's evaluation and figures for one model and one image set.

Explanation map (the paper's Fig. 3, `cams.metrics.explanation_map`): mask = map >= its 80th
percentile, original pixels inside, zero outside. For every base CAM (Grad-CAM, Grad-CAM++,
Smooth Grad-CAM++) and every Feature CAM combination built on it, the explanation maps are passed
back through the model and compared with the class c the model predicts on the original image
(the maps explain that class):

    right classification %  = 100 * mean[argmax P(. | explanation map) == c]      (Table 2)
    average confidence %    = 100 * mean P(c | explanation map)                    (Table 3)

Table 3 also gives the average confidence of c on the original images. Edge maps are computed once
for all bases, and each base CAM once for all its combinations.

    ev = evaluate(model, images)                       # FeatureCAMEvaluation
    print(right_classification_table(ev)); print(confidence_table(ev))
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Mapping, Optional, Sequence

import keras
import numpy as np

from cams.methods.feature_cam import edges as _edges
from cams import metrics
from cams.core.labels import describe
from cams.methods import registry
from cams.core import model_graph
from cams.methods.feature_cam import (
    PAPER_BASES,
    base_names,
    TOP_FIVE,
    Combination,
    FeatureCAM,
    FeatureCAMResult,
    combination_name,
    normalise,
)
from cams.core.inputs import check_images


@dataclass
class FeatureCAMEvaluation:
    """Scores of one evaluation; `results[base]` keeps the maps for figures."""

    n_images: int
    edges: str
    percentile: float
    k: float
    combinations: List[Combination]
    original_confidence: float
    #: base -> {"base" or combination label: {"right_classification": %, "confidence": %}}
    scores: Dict[str, Dict[str, Dict[str, float]]] = field(default_factory=dict)
    results: Dict[str, FeatureCAMResult] = field(default_factory=dict)
    predicted: Optional[np.ndarray] = None
    #: value of pixels outside the explanation-map mask (black in the model's input space)
    fill: float = 0.0

    def to_dict(self) -> dict:
        return {
            "n_images": self.n_images,
            "edges": self.edges,
            "percentile": self.percentile,
            "k": self.k,
            "combinations": [combination_name(v, e) for v, e in self.combinations],
            "original_confidence": self.original_confidence,
            "scores": self.scores,
        }


def _score(model, images, maps, cls, percentile, batch_size, fill=0.0) -> Dict[str, float]:
    p = metrics.probabilities(model, metrics.explanation_map(images, maps, percentile, fill), batch_size)
    return {
        "right_classification": float(100.0 * np.mean(p.argmax(axis=1) == cls)),
        "confidence": float(100.0 * np.mean(p[np.arange(len(cls)), cls])),
    }


def evaluate(
    model: keras.Model,
    images,
    bases: Sequence[str] = PAPER_BASES,
    edges: str = "hed",
    edge_maps=None,
    layer=None,
    combinations: Sequence[Combination] = TOP_FIVE,
    percentile: float = 80,
    k: float = 0.25,
    batch_size: int = 32,
    seed: Optional[int] = 0,
    fill: float = 0.0,
) -> FeatureCAMEvaluation:
    """Right classification % and average confidence of explanation maps (the paper's Tables 2, 3).

    `edge_maps` may pass precomputed edges (N, H, W); `seed` seeds Smooth Grad-CAM++'s noise;
    `fill` is the value outside the mask (black in input space: 0, or -1 for [-1, 1] models).
    """
    if not bases:
        raise ValueError(f"give at least one base CAM from {', '.join(base_names())}")
    for b in bases:
        if b not in base_names():
            raise ValueError(f"base must be one of {', '.join(map(repr, base_names()))}, got {b!r}")
    x = check_images(images, model_graph.input_shape(model))
    probs = metrics.probabilities(model, x, batch_size)
    cls = probs.argmax(axis=1).astype(np.int32)
    f = _edges.edge_maps(x, edges) if edge_maps is None else np.asarray(edge_maps, np.float32)
    ev = FeatureCAMEvaluation(
        n_images=len(x),
        edges=edges,
        percentile=float(percentile),
        k=float(k),
        combinations=list(combinations),
        original_confidence=float(100.0 * np.mean(probs[np.arange(len(x)), cls])),
        predicted=cls,
        fill=float(fill),
    )
    for b in bases:
        options = {"batch_size": batch_size}
        if b == "smoothgradcam++":
            options["seed"] = seed
        fc = FeatureCAM(model, layer=layer, base=b, edges=edges, k=k, base_options=options)
        res = fc.all_combinations(x, targets=cls, edges=f, combinations=combinations)
        ev.results[b] = res
        ev.scores[b] = {"base": _score(model, x, res.base, cls, percentile, batch_size, fill)}
        for combo in combinations:
            ev.scores[b][combination_name(*combo)] = _score(model, x, res[combo], cls, percentile, batch_size, fill)
    return ev


def _header(ev: FeatureCAMEvaluation, caption: str) -> str:
    return (
        f"{caption} ({ev.n_images} images, {ev.edges.upper() if ev.edges == 'hed' else ev.edges.title()} edges, "
        f"mask = map >= {ev.percentile:g}th percentile, k = {ev.k:g})\n\n"
    )


def right_classification_table(ev: FeatureCAMEvaluation) -> str:
    """The paper's Table 2 as Markdown: % of explanation maps classified as the original image."""
    labels = [combination_name(v, e) for v, e in ev.combinations]
    lines = [
        "| Base CAM | Base CAM | " + " | ".join(labels) + " |",
        "|---|" + "---:|" * (1 + len(labels)),
    ]
    for b, s in ev.scores.items():
        cells = [s["base"]["right_classification"]] + [s[c]["right_classification"] for c in labels]
        lines.append(f"| {registry.title(b)} | " + " | ".join(f"{v:.1f}%" for v in cells) + " |")
    return _header(ev, "Right classification % of explanation maps: Base CAMs vs Feature CAM") + "\n".join(lines) + "\n"


def confidence_table(ev: FeatureCAMEvaluation) -> str:
    """The paper's Table 3 as Markdown: average confidence (%) of the class predicted on the
    original image, on the original image, the base CAMs' and Feature CAM's explanation maps."""
    labels = [combination_name(v, e) for v, e in ev.combinations]
    lines = [
        "| Base CAM | Original | Base CAM | " + " | ".join(labels) + " |",
        "|---|" + "---:|" * (2 + len(labels)),
    ]
    for b, s in ev.scores.items():
        cells = [ev.original_confidence, s["base"]["confidence"]] + [s[c]["confidence"] for c in labels]
        lines.append(f"| {registry.title(b)} | " + " | ".join(f"{v:.1f}%" for v in cells) + " |")
    return _header(ev, "Average confidence %: original image vs Base CAMs vs Feature CAM") + "\n".join(lines) + "\n"


# ----------------------------------------------------------------------------- figures


def _axes_off(axes):
    for ax in np.ravel(axes):
        ax.set_xticks([])
        ax.set_yticks([])


def save_stages(
    images,
    maps: Mapping[str, np.ndarray],
    path: str | os.PathLike,
    percentile: float = 80,
    colormap: str = "jet",
    cell_size: float = 2.0,
    fill: float = 0.0,
) -> Path:
    """The paper's Fig. 3: one row per (image, method): image | saliency map | mask | explanation map."""
    from cams.core.files import save_figure
    from cams.viz import heatmap, to_uint8_rgb  # sets the headless backend before pyplot loads

    import matplotlib.pyplot as plt

    x = np.asarray(images, np.float32)
    rows = [(i, name) for i in range(len(x)) for name in maps]
    if not rows:
        raise ValueError("nothing to draw: no images or no maps")
    fig, axes = plt.subplots(len(rows), 4, figsize=(cell_size * 4, cell_size * len(rows)), squeeze=False)
    explained = {name: metrics.explanation_map(x, m, percentile, fill) for name, m in maps.items()}
    for r, (i, name) in enumerate(rows):
        m = np.asarray(maps[name][i], np.float32)
        thr = np.percentile(m, percentile)
        axes[r, 0].imshow(to_uint8_rgb(x[i]))
        axes[r, 0].set_ylabel(name, fontsize=8)
        axes[r, 1].imshow(heatmap(m, colormap=colormap))
        axes[r, 2].imshow(m >= thr, cmap="gray", vmin=0, vmax=1)
        axes[r, 3].imshow(to_uint8_rgb(explained[name][i]))
    for j, t in enumerate(("image", "saliency map", f"mask (>= p{percentile:g})", "explanation map")):
        axes[0, j].set_title(t, fontsize=9)
    _axes_off(axes)
    fig.tight_layout()
    return save_figure(fig, path)


def save_heatmap_grid(
    images,
    maps: Mapping[str, np.ndarray],
    path: str | os.PathLike,
    row_labels: Optional[Sequence[str]] = None,
    colormap: str = "jet",
    cell_size: float = 2.0,
) -> Path:
    """The paper's Fig. 1/5: input | one coloured map per method (no overlay, so the edge detail
    Feature CAM adds stays visible). Colours span each map's own min..max (the products of the
    multiply/complement experiments are often dim), which changes no map's ranking of pixels."""
    from cams.core.files import save_figure
    from cams.viz import heatmap, to_uint8_rgb  # sets the headless backend before pyplot loads

    import matplotlib.pyplot as plt

    x = np.asarray(images)
    for name, m in maps.items():
        if len(m) != len(x):
            raise ValueError(f"method {name!r} has {len(m)} maps for {len(x)} images")
    cols = 1 + len(maps)
    fig, axes = plt.subplots(len(x), cols, figsize=(cell_size * cols, cell_size * len(x)), squeeze=False)
    for i in range(len(x)):
        axes[i, 0].imshow(to_uint8_rgb(x[i]))
        if row_labels is not None:
            axes[i, 0].set_ylabel(str(row_labels[i]), fontsize=8)
        for j, (name, m) in enumerate(maps.items(), start=1):
            axes[i, j].imshow(heatmap(normalise(np.asarray(m[i:i + 1], np.float32))[0], colormap=colormap))
            if i == 0:
                axes[i, j].set_title(name, fontsize=8)
    axes[0, 0].set_title("input", fontsize=8)
    _axes_off(axes)
    fig.tight_layout()
    return save_figure(fig, path)


#: the files `save_figures` writes into its folder
FIGURES = {"stages": "stages.png", "grid": "top5_grid.png"}


def save_figures(ev: FeatureCAMEvaluation, images, out: str | os.PathLike, rows: int = 4, figure_base: Optional[str] = None,
                 class_names: Optional[Sequence[str]] = None) -> Dict[str, Path]:
    """Write stages.png (Fig. 3: base CAM and add·blend21, `rows` images) and
    top5_grid.png (Fig. 1/5: the base CAMs and the top combinations on `figure_base`); rows are
    labelled with the predicted class, by name when `class_names` is given."""
    out = Path(out)
    if rows < 1:
        raise ValueError(f"rows must be >= 1, got {rows}")
    if figure_base is None:
        figure_base = "gradcam++" if "gradcam++" in ev.results else next(iter(ev.results))
    res = ev.results[figure_base]
    # rows spread evenly over the image set (folders are sorted, so e.g. both classes show)
    pick = np.unique(np.linspace(0, ev.n_images - 1, min(rows, ev.n_images)).round().astype(int))
    x = np.asarray(images)[pick]
    title = registry.title(figure_base)
    # the paper's best combination (add x input 2) unless it was not evaluated
    first = ("blend21", "add") if ("blend21", "add") in ev.combinations else (ev.combinations[0] if ev.combinations else None)
    stage_maps = {title: res.base[pick]}
    if first is not None:
        stage_maps[f"FC {combination_name(*first)}"] = res[first][pick]
    grid_maps = {registry.title(b): r.base[pick] for b, r in ev.results.items()}
    grid_maps["edges"] = res.edges[pick]
    for v, e in ev.combinations:
        grid_maps[f"FC {combination_name(v, e)}"] = res[(v, e)][pick]
    labels = [f"#{int(i)}: {describe(ev.predicted[i], class_names)}" for i in pick] if ev.predicted is not None else None
    return {
        "stages": save_stages(x, stage_maps, out / FIGURES["stages"], ev.percentile, fill=ev.fill),
        "grid": save_heatmap_grid(x, grid_maps, out / FIGURES["grid"], row_labels=labels),
    }
