"""The data randomisation test of Adebayo et al. ("Sanity Checks for Saliency Maps", NeurIPS 2018,
Sec. 3.2 and 5): train the same architecture on the same images with the labels permuted, so the
model can only memorise them, and compare its maps with those of the model trained on the true
labels. A method whose maps stay similar does not depend on the relation between images and labels
the model learned.

    def build():            return build_cnn()
    def train(model, x, y): model.fit(x, keras.utils.to_categorical(y, 10), epochs=5, verbose=0)
    result = cams.sanity.data_randomisation(model, build, train, x_train, y_train, x_test, ["gradcam"])

Both models explain the class the original model predicts on each image (or the given targets), with
the same maps and measures as the model-parameter test (`cams.sanity.checks`).
"""
from __future__ import annotations

from typing import Callable, Mapping, Optional

import numpy as np

from cams.metrics.similarity import similarities
from cams.sanity.checks import SanityResult, Step, build_explainers, explain_all

#: the layer column of the data randomisation test's single step
PERMUTED = "labels permuted"


def permuted_labels(y, seed: int = 0) -> np.ndarray:
    """`y` in a seeded random order (the same multiset of labels, so the class balance is kept)."""
    y = np.asarray(y)
    if y.ndim == 0 or len(y) < 2:
        raise ValueError(f"need at least 2 labels to permute, got {y.shape}")
    return y[np.random.default_rng(seed).permutation(len(y))]


def data_randomisation(model, build_fn: Callable[[], object], train_fn: Callable[[object, np.ndarray, np.ndarray], None],
                       x_train, y_train, images, methods, seed: int = 0, targets=None, layer=None,
                       options: Optional[Mapping[str, dict]] = None, randomised_model=None) -> SanityResult:
    """Compare the maps of `model` with those of the same architecture trained on permuted labels.

    Args:
        model: the model trained on the true labels (never changed).
        build_fn: () -> a fresh, compiled model of the same architecture.
        train_fn: (model, x, y) -> None, trains the model in place as `model` was trained.
        x_train: the training images (in the form `train_fn` takes).
        y_train: their labels (in the form `train_fn` takes).
        images: (N, H, W, C) images to explain (held-out ones, as in the paper).
        methods: registered method names (comma string or sequence).
        seed: seed of the permutation.
        targets: the explained classes (None: `model`'s top-1 on `images`).
        layer: feature layer name for the CAMs.
        options: {method: {option: value}}.
        randomised_model: an already trained permuted-label model (skips build_fn / train_fn).

    Returns:
        A `SanityResult` with mode "data" and one step (layer "labels permuted").
    """
    from cams.core.inputs import check_images, check_targets
    from cams.core.model_graph import input_shape, num_classes
    from cams.metrics import probabilities

    x = check_images(images, input_shape(model))
    if targets is None:
        targets = probabilities(model, x).argmax(axis=1)
    targets = check_targets(targets, len(x), num_classes(model)).astype(np.int32)
    if randomised_model is None:
        randomised_model = build_fn()
        train_fn(randomised_model, x_train, permuted_labels(y_train, seed))
    layer = getattr(layer, "name", layer)
    reference = explain_all(build_explainers(model, _names(methods), layer=layer, options=options, seed=seed), x, targets)
    maps = explain_all(build_explainers(randomised_model, _names(methods), layer=layer, options=options, seed=seed), x, targets)
    scores = {m: similarities(reference[m], v) for m, v in maps.items()}
    return SanityResult("data", Step(0, "", reference), [Step(1, PERMUTED, maps, scores)])


def _names(methods):
    from cams.methods import registry

    return registry.parse_methods(methods) if isinstance(methods, str) else [registry.get(m).name for m in methods]
