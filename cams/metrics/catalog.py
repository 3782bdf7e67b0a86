"""The metrics catalog: every metric `cams evaluate` can compute, declared once with its role and cost.

    from cams.metrics import catalog
    for metric in catalog.resolve_metrics("ad,insertion,sparseness"):
        scores = metric(model, explainer, images, maps, targets)    # {column: (N,) float64}
        print(metric.title, {c: v.mean() for c, v in scores.items()}, metric.cost(explainer))

Each `Metric` returns one value per image for each of its columns (AD at 100/50/15% are three
columns of the metric `ad`), so a table can give the mean over images with a confidence interval
(`mean_ci95`). The per-image values are computed from the public functions of the role modules
(`cams.metrics.fidelity`, `cams.metrics.localisation`, ...); their means equal what those functions
return for the whole set. Cost: `Metric.forward_passes` classifier forward passes per image that
the metric runs itself (the one that scores the clean image included), plus `Metric.explanations`
new explanations per image, each costing the explainer's own `forward_passes()` (`Metric.cost`).

    name             role           better  columns (one value per image)            forward passes / image
    ad, ic           fidelity       lower, higher  AD/IC at 100, 50, 15% (x100)      1 + 3
    insertion        fidelity       higher  AUC of P(t) inserting from a blur (32 steps)  1 + 33
    deletion         fidelity       lower   AUC of P(t) deleting to 0 (32 steps)     1 + 33
    road-morf/-lerf  fidelity       lower / higher  mean P(t) over 10..50% imputed   5
    mufidelity       fidelity       higher  Pearson(sum of map over S, logit drop)   128 + 1
    pointing         localisation   higher  map's argmax inside the mask (0/1)       0
    relevance-mass   localisation   higher  share of the map inside the mask         0
    relevance-rank   localisation   higher  share of the top-|mask| pixels inside    0
    max-/avg-sensitivity robustness lower   max/mean ||E(x+d) - E(x)|| / ||E(x)||    16 explanations
    sparseness       complexity     higher  Gini index of |map|                      0
    complexity       complexity     lower   entropy of |map| / sum |map|             0
    random-logit     randomisation  lower   SSIM(E(x, t), E(x, random t'))           1 explanation

The costs count targets as given (the classes explained, as `cams evaluate` passes them).
"""
from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass
from typing import Callable, Dict, List, Tuple

import numpy as np

from cams.metrics import fidelity, localisation
from cams.metrics.complexity import complexity, complexity_forward_passes, sparseness
from cams.metrics.imputation import road, road_forward_passes
from cams.metrics.randomisation import random_logit, random_logit_explanations
from cams.metrics.robustness import avg_sensitivity, max_sensitivity, sensitivity_explanations
from cams.metrics._scoring import probabilities

#: the roles, in the order of the tables
ROLES = ("fidelity", "localisation", "robustness", "complexity", "randomisation")
#: AD / IC keep the top L% of each map (the L-CAM protocol's 100%, 50%, 15%)
AD_IC_PERCENTS = (100, 50, 15)
#: insertion / deletion steps (each adds or removes 1/STEPS of the pixels)
CAUSAL_STEPS = 32
#: ROAD removes these % of the pixels (Rong et al.'s 10..50%); the score is the mean over them
ROAD_PERCENTILES = (10, 20, 30, 40, 50)
#: MuFidelity's random subsets per image
MUFIDELITY_SAMPLES = 128
#: Max/Avg-Sensitivity: perturbed copies per image, and the L-inf radius as a share of the images'
#: value range (max - min over the set: 0.2 for [0, 1] images, Quantus' default radius)
SENSITIVITY_SAMPLES, SENSITIVITY_RADIUS = 16, 0.2

Scores = Dict[str, np.ndarray]


@dataclass(frozen=True)
class Metric:
    """One metric of the catalog.

    Attributes:
        name: the command-line name (`--metrics ad,insertion`), lower case.
        title: the name in tables and figures.
        role: one of ROLES.
        higher_is_better: the direction of every column of the metric.
        columns: the names of the per-image scores it returns (e.g. "AD(100%)", "AD(50%)").
        function: (model, explainer, images, maps, targets, masks, seed, batch_size) -> {column: (N,)}.
        forward_passes: classifier forward passes per image the metric runs itself.
        explanations: new explanations per image it asks of the explainer (robustness, randomisation).
        needs_masks: True when it compares maps with ground-truth masks.
        needs_explainer: True when it calls the explainer again (on perturbed images or other targets).
        paper: where it comes from.
    """

    name: str
    title: str
    role: str
    higher_is_better: bool
    columns: Tuple[str, ...]
    function: Callable[..., Scores]
    forward_passes: float
    explanations: float = 0.0
    needs_masks: bool = False
    needs_explainer: bool = False
    paper: str = ""

    def cost(self, explainer=None) -> float:
        """Classifier forward passes per image: the metric's own plus its explanations' (the
        explainer's `forward_passes()` each; 1 when no explainer is given)."""
        per_explanation = float(explainer.forward_passes()) if explainer is not None else 1.0
        return float(self.forward_passes) + float(self.explanations) * per_explanation

    def __call__(self, model, explainer, images, maps, targets, masks=None, seed: int = 0,
                 batch_size: int = 32) -> Scores:
        """Per-image scores of `maps` (made by `explainer` for `targets` on `images`).

        Args:
            model: the Keras classifier; explainer: the explainer that made `maps` (images, targets) -> maps.
            images: float32 (N, H, W, C); maps: float32 (N, H, W); targets: (N,) ints (the explained classes).
            masks: (N, H, W) ground-truth masks (pixel > 0 inside), needed when `needs_masks`.
            seed: seed of the stochastic metrics; batch_size: images per forward pass.

        Returns:
            {column: float64 (N,)} for each of `columns`.
        """
        if self.needs_masks and masks is None:
            raise ValueError(f"metric {self.name!r} needs ground-truth masks")
        scores = self.function(model, explainer, images, maps, targets, masks, seed, batch_size)
        n = len(images)
        out = {}
        for column in self.columns:
            values = np.asarray(scores[column], np.float64).reshape(-1)
            if len(values) != n:
                raise ValueError(f"metric {self.name!r} gave {len(values)} values of {column} for {n} images")
            out[column] = values
        return out


METRICS: "OrderedDict[str, Metric]" = OrderedDict()


def register(metric: Metric) -> Metric:
    """Add `metric` to METRICS (its name must be new); returns it."""
    if metric.role not in ROLES:
        raise ValueError(f"role must be one of {', '.join(ROLES)}, got {metric.role!r}")
    if metric.name in METRICS:
        raise ValueError(f"metric name {metric.name!r} is already taken")
    METRICS[metric.name] = metric
    return metric


def metric_names() -> List[str]:
    """Command-line names of the metrics, in table order."""
    return list(METRICS)


def resolve_metrics(text: str) -> List[Metric]:
    """The metrics of a `--metrics` value: "all" or a comma list of names (repeats dropped).

    Raises:
        ValueError: one line naming the unknown metric and listing the valid names.
    """
    chosen = [m.strip().lower() for m in str(text).split(",") if m.strip()]
    if chosen == ["all"]:
        return list(METRICS.values())
    if not chosen:
        raise ValueError(f"no metric given; choose from all, {', '.join(METRICS)}")
    unknown = [m for m in chosen if m not in METRICS]
    if unknown:
        raise ValueError(f"unknown metric {unknown[0]!r}; choose from all, {', '.join(METRICS)}")
    return [METRICS[m] for m in dict.fromkeys(chosen)]


def mean_ci95(values) -> Tuple[float, float, float, int]:
    """Mean and 95% confidence interval of the mean over images (Student's t).

    With the n finite values v (NaN dropped), mean m and sample standard deviation s (ddof = 1):
    m +- t_{0.975, n-1} * s / sqrt(n), t from `scipy.stats.t`. Fewer than two values: NaN bounds.

    Returns:
        (mean, low, high, n).
    """
    from scipy import stats

    v = np.asarray(values, np.float64).reshape(-1)
    v = v[np.isfinite(v)]
    n = len(v)
    if n == 0:
        return float("nan"), float("nan"), float("nan"), 0
    mean = float(v.mean())
    if n < 2:
        return mean, float("nan"), float("nan"), n
    half = float(stats.t.ppf(0.975, n - 1) * v.std(ddof=1) / np.sqrt(n))
    return mean, mean - half, mean + half, n


# ---------------------------------------------------------------- fidelity
def _kept_probabilities(model, images, maps, targets, batch_size) -> Tuple[np.ndarray, List[np.ndarray]]:
    """Y = P(t | x) and, for each of AD_IC_PERCENTS, O = P(t | x * keep_top(map)) as `fidelity.ad_ic` runs them."""
    idx = np.arange(len(images))
    y = probabilities(model, images, batch_size)[idx, targets]
    kept = [probabilities(model, images * fidelity.keep_top(maps, p)[..., None], batch_size)[idx, targets]
            for p in AD_IC_PERCENTS]
    return y, kept


def _ad(model, explainer, images, maps, targets, masks, seed, batch_size) -> Scores:
    """Average Drop per image: 100 max(0, Y - O) / Y (its mean is `fidelity.ad_ic`'s AD)."""
    y, kept = _kept_probabilities(model, images, maps, targets, batch_size)
    return {f"AD({p:g}%)": 100.0 * np.maximum(0.0, y - o) / y for p, o in zip(AD_IC_PERCENTS, kept)}


def _ic(model, explainer, images, maps, targets, masks, seed, batch_size) -> Scores:
    """Increase in Confidence per image: 100 [O > Y] (its mean is `fidelity.ad_ic`'s IC)."""
    y, kept = _kept_probabilities(model, images, maps, targets, batch_size)
    return {f"IC({p:g}%)": 100.0 * (o > y) for p, o in zip(AD_IC_PERCENTS, kept)}


def trapezoid_auc(curves: np.ndarray) -> np.ndarray:
    """Area under each curve of (N, steps + 1) values on [0, 1] (trapezoid rule), (N,)."""
    c = np.asarray(curves, np.float64)
    return (c[:, :-1] + c[:, 1:]).sum(axis=1) / (2.0 * (c.shape[1] - 1))


def _insertion(model, explainer, images, maps, targets, masks, seed, batch_size) -> Scores:
    _, curves = fidelity.insertion_auc(model, images, maps, targets, steps=CAUSAL_STEPS, batch_size=batch_size,
                                       return_curves=True)
    return {"insertion": trapezoid_auc(curves)}


def _deletion(model, explainer, images, maps, targets, masks, seed, batch_size) -> Scores:
    _, curves = fidelity.deletion_auc(model, images, maps, targets, steps=CAUSAL_STEPS, batch_size=batch_size,
                                      return_curves=True)
    return {"deletion": trapezoid_auc(curves)}


def _road(order: str):
    def score(model, explainer, images, maps, targets, masks, seed, batch_size) -> Scores:
        curve = road(model, images, maps, targets, percentiles=ROAD_PERCENTILES, order=order,
                          batch_size=batch_size, seed=seed)
        return {f"ROAD-{'MoRF' if order == 'morf' else 'LeRF'}": curve.astype(np.float64).mean(axis=1)}

    return score


def _mufidelity(model, explainer, images, maps, targets, masks, seed, batch_size) -> Scores:
    return {"MuFidelity": fidelity.mufidelity(model, images, maps, targets, n_samples=MUFIDELITY_SAMPLES, seed=seed,
                                              batch_size=batch_size)}


# ---------------------------------------------------------------- robustness, complexity, randomisation
def _sensitivity(function, column: str):
    def score(model, explainer, images, maps, targets, masks, seed, batch_size) -> Scores:
        radius = SENSITIVITY_RADIUS * float(np.max(images) - np.min(images) or 1.0)
        return {column: function(explainer, images, maps, targets, radius=radius, n_samples=SENSITIVITY_SAMPLES,
                                 seed=seed)}

    return score


def _sparseness(model, explainer, images, maps, targets, masks, seed, batch_size) -> Scores:
    return {"sparseness": sparseness(maps)}


def _complexity(model, explainer, images, maps, targets, masks, seed, batch_size) -> Scores:
    return {"complexity": complexity(maps)}


def _random_logit(model, explainer, images, maps, targets, masks, seed, batch_size) -> Scores:
    return {"random-logit": random_logit(model, explainer, images, maps, targets, seed=seed)}


# ---------------------------------------------------------------- localisation
def _per_image(function, maps, masks) -> np.ndarray:
    """`function(maps, masks)` of a whole-set localisation metric, image by image."""
    return np.array([function(maps[i : i + 1], masks[i : i + 1]) for i in range(len(maps))], np.float64)


def _pointing(model, explainer, images, maps, targets, masks, seed, batch_size) -> Scores:
    return {"pointing": _per_image(localisation.pointing_game, maps, masks)}


def _relevance_mass(model, explainer, images, maps, targets, masks, seed, batch_size) -> Scores:
    return {"relevance-mass": localisation.relevance_mass(maps, masks)}


def _relevance_rank(model, explainer, images, maps, targets, masks, seed, batch_size) -> Scores:
    return {"relevance-rank": localisation.relevance_rank(maps, masks)}


def _declare_builtin() -> None:
    percents = ", ".join(f"{p:g}%" for p in AD_IC_PERCENTS)
    register(Metric("ad", f"Average Drop ({percents})", "fidelity", False,
                    tuple(f"AD({p:g}%)" for p in AD_IC_PERCENTS), _ad, 1 + len(AD_IC_PERCENTS),
                    paper="Chattopadhay et al., WACV 2018 (thresholds of L-CAM, ICIP 2021)"))
    register(Metric("ic", f"Increase in Confidence ({percents})", "fidelity", True,
                    tuple(f"IC({p:g}%)" for p in AD_IC_PERCENTS), _ic, 1 + len(AD_IC_PERCENTS),
                    paper="Chattopadhay et al., WACV 2018 (thresholds of L-CAM, ICIP 2021)"))
    register(Metric("insertion", "Insertion AUC", "fidelity", True, ("insertion",), _insertion,
                    2 + CAUSAL_STEPS, paper="Petsiuk et al., BMVC 2018"))
    register(Metric("deletion", "Deletion AUC", "fidelity", False, ("deletion",), _deletion,
                    2 + CAUSAL_STEPS, paper="Petsiuk et al., BMVC 2018"))
    road_passes = road_forward_passes(ROAD_PERCENTILES, targets_given=True)
    register(Metric("road-morf", "ROAD, most relevant first (mean P over 10..50% removed)", "fidelity", False,
                    ("ROAD-MoRF",), _road("morf"), road_passes, paper="Rong et al., ICML 2022"))
    register(Metric("road-lerf", "ROAD, least relevant first (mean P over 10..50% removed)", "fidelity", True,
                    ("ROAD-LeRF",), _road("lerf"), road_passes, paper="Rong et al., ICML 2022"))
    register(Metric("mufidelity", "MuFidelity (faithfulness correlation)", "fidelity", True, ("MuFidelity",),
                    _mufidelity, fidelity.mufidelity_forward_passes(MUFIDELITY_SAMPLES),
                    paper="Bhatt, Weller & Moura, IJCAI 2020"))
    register(Metric("pointing", "Pointing game", "localisation", True, ("pointing",), _pointing, 0,
                    needs_masks=True, paper="Zhang et al., ECCV 2016"))
    # for maps >= 0 (every explainer's) this is also the energy-based pointing game of Score-CAM
    # (`localisation.energy_in_mask`, Wang et al., CVPRW 2020), so that one is not listed twice
    register(Metric("relevance-mass", "Relevance mass accuracy (= energy-based pointing game)", "localisation", True,
                    ("relevance-mass",), _relevance_mass, 0, needs_masks=True,
                    paper="Arras, Osman & Samek, Information Fusion 2022; Wang et al., CVPRW 2020"))
    register(Metric("relevance-rank", "Relevance rank accuracy", "localisation", True, ("relevance-rank",),
                    _relevance_rank, 0, needs_masks=True, paper="Arras, Osman & Samek, Information Fusion 2022"))
    for name, function in (("max-sensitivity", max_sensitivity), ("avg-sensitivity", avg_sensitivity)):
        column = name.replace("max", "Max").replace("avg", "Avg").replace("sensitivity", "Sensitivity")
        register(Metric(name, f"{column} (radius {SENSITIVITY_RADIUS:g} of the value range, {SENSITIVITY_SAMPLES} copies)",
                        "robustness", False, (column,), _sensitivity(function, column), 0,
                        explanations=sensitivity_explanations(SENSITIVITY_SAMPLES, maps_given=True),
                        needs_explainer=True, paper="Yeh et al., NeurIPS 2019"))
    register(Metric("sparseness", "Sparseness (Gini index)", "complexity", True, ("sparseness",), _sparseness,
                    complexity_forward_passes(), paper="Chalasani et al., ICML 2020"))
    register(Metric("complexity", "Complexity (entropy)", "complexity", False, ("complexity",), _complexity,
                    complexity_forward_passes(), paper="Bhatt, Weller & Moura, IJCAI 2020"))
    register(Metric("random-logit", "Random logit (SSIM to another class's map)", "randomisation", False,
                    ("random-logit",), _random_logit, 0,
                    explanations=random_logit_explanations(maps_given=True), needs_explainer=True,
                    paper="Sixt, Granz & Landgraf, ICML 2020"))


_declare_builtin()
