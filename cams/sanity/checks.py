"""The model-parameter randomisation tests of Adebayo et al. ("Sanity Checks for Saliency Maps",
NeurIPS 2018, Sec. 3.1 and 4): explain the same images with the original model and with copies whose
weights are re-initialised block by block from the logits down, and measure how similar the maps
stay (`cams.metrics.similarity`: Spearman rank correlation of the absolute and of the signed maps,
SSIM, Pearson correlation of HOG features). A method whose maps stay similar while the model's
parameters become random cannot be explaining what the model learned.

    result = cams.sanity.sanity_check(model, images, ["gradcam", "guidedbackprop"], mode="cascading")
    result.table()          # one row per (method, step): method, step, layer, spearman_abs, spearman, ssim, hog

Maps. Methods that take `signed=True` (the input attributions: Gradient x Input, Integrated
Gradients, Guided Backprop, Guided Grad-CAM) are explained with it, so the signed map M in [-1, 1]
gives the signed Spearman and |M| the other three measures; for the rest (CAMs, Saliency) M is the
method's own map in [0, 1] and both Spearman correlations agree. Every step explains the class the
original model predicts (or the given targets), as the paper does: a randomised model's own top-1 is
arbitrary. The explainers are built once on the randomised copy (`Randomiser`), whose variables are
re-initialised in place, so their compiled graphs are reused at every step.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Dict, Iterable, Iterator, List, Mapping, Optional, Sequence, Tuple

import numpy as np

from cams.metrics.similarity import MEASURES, Comparison
from cams.sanity.randomise import MODES, Randomiser

#: the columns of the randomisation table (sanity.csv)
COLUMNS = ("method", "step", "layer", *MEASURES)


@dataclass
class Step:
    """One randomisation step: the maps computed and their similarity to the reference.

    Attributes:
        step: 1 = the top block randomised (0 = the unrandomised reference).
        layer: the block's name ("" for the reference).
        maps: {method: (N, H, W) float32 maps} (signed where the method has a sign).
        scores: {method: {measure: float64 (N,) per image}} (empty for the reference).
    """

    step: int
    layer: str
    maps: Dict[str, np.ndarray]
    scores: Dict[str, Dict[str, np.ndarray]] = field(default_factory=dict)

    def rows(self) -> List[dict]:
        """Table rows of this step: method, step, layer and the mean of each measure over the images."""
        return [{"method": m, "step": self.step, "layer": self.layer,
                 **{k: float(np.mean(v[k])) for k in MEASURES}} for m, v in self.scores.items()]


@dataclass
class SanityResult:
    """The steps of one test: `reference` (step 0) and `steps` (1..B, from the top)."""

    mode: str
    reference: Step
    steps: List[Step]

    def table(self) -> List[dict]:
        """One row per method and step, from the top: method, step, layer, spearman_abs, spearman, ssim, hog."""
        rows = [r for s in self.steps for r in s.rows()]
        order = {m: i for i, m in enumerate(self.reference.maps)}
        return sorted(rows, key=lambda r: (order.get(r["method"], len(order)), r["step"]))


def takes_sign(method: str) -> bool:
    """True when the registered `method` has a signed map (`signed=True` option)."""
    from cams.methods import registry

    return "signed" in registry.get(method).options


def build_explainers(model, methods: Sequence[str], layer=None, options: Optional[Mapping[str, dict]] = None,
                     seed: int = 0) -> dict:
    """{method: explainer} on `model`, signed where the method takes `signed` (see the module docstring).

    Args:
        model: the model to explain (the randomised copy).
        methods: registered method names.
        layer: the feature layer's name for the methods that read one (None: their default).
        options: {method: {option: value}} passed to that method (e.g. {"integratedgradients": {"steps": 16}}).
        seed: the seed of the methods that draw noise or masks (SmoothGrad, RISE, ...).
    """
    from cams.methods import registry

    options = dict(options or {})
    unknown = [m for m in options if m not in methods]
    if unknown:
        raise ValueError(f"options given for {unknown[0]!r}, which is not among the methods {', '.join(methods)}")
    out = {}
    for name in dict.fromkeys(registry.get(m).name for m in methods):
        method = registry.get(name)
        if method.trained_file:
            raise ValueError(f"method {name!r} needs a file trained on the original model ({method.trained_by}); "
                             "it cannot follow a randomised one")
        extra = {"signed": True} if takes_sign(name) else {}
        out[name] = method.make(model, layer=layer, seed=seed, **{**extra, **options.get(name, {})})
    return out


def explain_all(explainers: Mapping[str, object], images, targets) -> Dict[str, np.ndarray]:
    """{method: maps} of every explainer for `images` and fixed integer `targets`."""
    return {name: np.asarray(ex(images, targets=targets), np.float32) for name, ex in explainers.items()}


class SanityCheck:
    """A randomisation test set up once: the randomised copy and its explainers.

    Args:
        model: the user's model (never changed).
        methods: registered method names (comma string or sequence).
        mode: "cascading" (top blocks random, cumulatively) or "independent" (one block at a time).
        seed: seed of the re-initialisation.
        blocks: see `Randomiser` (default: one block per layer with weights).
        layer: feature layer name for the CAMs (None: each method's default).
        options: {method: {option: value}}.
    """

    def __init__(self, model, methods, mode: str = "cascading", seed: int = 0, blocks=None, layer=None,
                 options: Optional[Mapping[str, dict]] = None):
        from cams.methods import registry

        if mode not in MODES:
            raise ValueError(f"unknown randomisation mode {mode!r}; choose from {', '.join(MODES)}")
        self.methods = registry.parse_methods(methods) if isinstance(methods, str) else [registry.get(m).name for m in methods]
        if not self.methods:
            raise ValueError("no method given; name at least one registered method")
        self.mode = mode
        self.randomiser = Randomiser(model, seed=seed, blocks=blocks)
        layer = getattr(layer, "name", layer)
        self.explainers = build_explainers(self.randomiser.model, self.methods, layer=layer, options=options, seed=seed)

    @property
    def n_steps(self) -> int:
        """The number of randomisation steps (blocks)."""
        return len(self.randomiser.blocks)

    def targets_for(self, images, targets=None) -> np.ndarray:
        """The explained classes: `targets`, or the original model's top-1 on `images`."""
        from cams.core.inputs import check_images, check_targets
        from cams.core.model_graph import input_shape, num_classes
        from cams.metrics import probabilities

        self.randomiser.restore()
        x = check_images(images, input_shape(self.randomiser.model))
        if targets is None:
            return probabilities(self.randomiser.model, x).argmax(axis=1).astype(np.int32)
        return check_targets(targets, len(x), num_classes(self.randomiser.model)).astype(np.int32)

    def run(self, images, targets=None, skip: Iterable[Tuple[str, int]] = ()) -> Iterator[Step]:
        """Yield the reference (step 0), then each randomised step with its maps and similarities.

        Args:
            images: (N, H, W, C) float images in the model's input range.
            targets: the explained classes (None: the original model's top-1).
            skip: (method, step) pairs already done (a resumed run): not recomputed; a method whose
                steps are all done is left out of the reference too.
        """
        skip = set(skip)
        targets = self.targets_for(images, targets)
        todo = {m: [s for s in range(1, self.n_steps + 1) if (m, s) not in skip] for m in self.methods}
        live = {m: ex for m, ex in self.explainers.items() if todo[m]}
        reference = explain_all(live, images, targets)
        compare = {m: Comparison(v) for m, v in reference.items()}  # the reference's ranks and HOG, once
        yield Step(0, "", reference)
        for step, block in self.randomiser.steps(self.mode):
            now = {m: ex for m, ex in live.items() if step in todo[m]}
            maps = explain_all(now, images, targets)
            yield Step(step, block.name, maps, {m: compare[m](v) for m, v in maps.items()})
        self.randomiser.restore()


def sanity_check(model, images, methods, mode: str = "cascading", seed: int = 0, targets=None, blocks=None,
                 layer=None, options: Optional[Mapping[str, dict]] = None) -> SanityResult:
    """Run Adebayo et al.'s model-parameter randomisation test and collect every step.

    Args:
        model: the Keras classifier (Sequential or functional; never changed).
        images: (N, H, W, C) float images in the model's input range.
        methods: registered method names (comma string or sequence).
        mode: "cascading" (from the logits down, cumulatively) or "independent" (one block at a time).
        seed: seed of the re-initialisation (same seed, same random weights).
        targets: the explained classes (None: the original model's top-1 on each image).
        blocks: see `Randomiser` (default: one block per layer with weights).
        layer: feature layer name for the CAMs.
        options: {method: {option: value}}.

    Returns:
        A `SanityResult`: `.table()` rows (method, step, layer, spearman_abs, spearman, ssim, hog), the
        reference maps and every step's maps and per-image similarities.
    """
    check = SanityCheck(model, methods, mode=mode, seed=seed, blocks=blocks, layer=layer, options=options)
    steps = list(check.run(images, targets))
    return SanityResult(mode, steps[0], steps[1:])
