"""Grad-CAM family figures for a trained digit CNN, and how much map energy lies on the strokes."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from cams.core.files import write_json

from .digits import DigitData
from .errors import MODEL_HINT, BengaliXAIError
from .model import LAST_CONV
from .outputs import IMAGENET_FILES, explain_files, output_folder, triplet_name
from .pipeline import split_data

STROKE_THRESHOLD = 0.3
STROKE_DILATION = 2


def load_model(path: str | os.PathLike):
    """Load a .keras model, with a one-line error naming the file when that fails."""
    from cams.core.model_io import load_keras_model

    try:
        return load_keras_model(path, MODEL_HINT)
    except ValueError as err:
        raise BengaliXAIError(str(err)) from None


def make_explainer(name: str, model, layer: str | None = None, seed: int = 0):
    """The cams explainer registered as `name`, seeded, 64 images (or masked copies) per batch."""
    from cams.methods import registry

    return registry.make_explainer(name, model, layer=layer, seed=seed, batch_size=64)


def default_layer(model) -> str | None:
    """The paper CNN's last convolution ("conv2", 24x24); None lets cams pick the last 4-D layer."""
    names = {layer.name for layer in model.layers}
    return LAST_CONV if LAST_CONV in names else None


def pick_examples(data: DigitData, n: int, seed: int = 0) -> np.ndarray:
    """Indices of n test-split images, cycling through the digits (0, 1, ..., 9, 0, ...)."""
    if n < 1:
        raise BengaliXAIError(f"--n must be at least 1, got {n}")
    test = split_data(data, val=0.2, test=0.2, seed=seed).test
    rng = np.random.default_rng(seed)
    by_class = {d: list(rng.permutation(test[data.y[test] == d])) for d in range(10)}
    out: list[int] = []
    while len(out) < min(n, len(test)):
        for d in range(10):
            if by_class[d] and len(out) < n:
                out.append(int(by_class[d].pop()))
    return np.array(out, np.int64)


def stroke_masks(images: np.ndarray, threshold: float = STROKE_THRESHOLD, dilation: int = STROKE_DILATION) -> np.ndarray:
    """Digit strokes (pixels brighter than `threshold`) dilated by `dilation` pixels -> bool (N, H, W).

    Images with a light background (mean of the 2-pixel border above 0.5, e.g. NumtaDB) are
    inverted first, so the strokes are the ink either way.
    """
    import cv2

    x = np.asarray(images, np.float32)
    x = x[..., 0] if x.ndim == 4 else x
    border = np.concatenate([x[:, :2].reshape(len(x), -1), x[:, -2:].reshape(len(x), -1),
                             x[:, :, :2].reshape(len(x), -1), x[:, :, -2:].reshape(len(x), -1)], axis=1)
    x = np.where(border.mean(axis=1)[:, None, None] > 0.5, 1.0 - x, x)
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * dilation + 1, 2 * dilation + 1))
    return np.stack([cv2.dilate((im > threshold).astype(np.uint8), kernel) > 0 for im in x])


def stroke_energy(maps: np.ndarray, images: np.ndarray, **mask_kw: Any) -> dict[str, float]:
    """Share of map energy on the dilated strokes, and the share a uniform map would get (mask area)."""
    import cams

    masks = stroke_masks(images, **mask_kw)
    return {"energy_on_strokes": float(cams.metrics.energy_in_mask(maps, masks)),
            "mask_area": float(masks.mean())}


def explain(
    model,
    data: DigitData,
    methods: Sequence[str],
    out: str | os.PathLike,
    n: int = 8,
    layer: str | None = None,
    seed: int = 0,
    energy_samples: int = 200,
    outputs=None,
) -> dict[str, Any]:
    """Maps of each method on n test digits: per-method triplet figures (input | heatmap | overlay),
    one grid comparing the methods, and explain.json with the stroke-energy share of each method
    on `energy_samples` test digits.

    Args:
        model: the digit CNN.
        data: the digits (test digits are drawn from its split).
        methods: method names (a list, or a comma-separated string).
        out: the output folder.
        n: digits in the figures.
        layer: the layer explained (default: conv2).
        seed: which digits, and the methods' own randomness.
        energy_samples: test digits for the stroke-energy share (0 skips it).
        outputs: the checked OutputFolder (cams.core.outputs) of `out`; default: checked here.

    Returns:
        The summary with the written paths under "files".
    """
    import cams

    out = Path(out)
    from cams.methods import registry

    methods = list(dict.fromkeys(registry.parse_methods(methods) if isinstance(methods, str) else methods))
    outputs = outputs or output_folder(out, "explain", {"methods": methods, "layer": layer, "n": n, "seed": seed},
                                       explain_files(methods))
    outputs.record(*explain_files(methods))
    layer = layer or default_layer(model)
    idx = pick_examples(data, n, seed)
    x, y = data.x[idx], data.y[idx]
    probs = model.predict(x, verbose=0)
    pred = probs.argmax(axis=1)
    titles = [f"true {t} / pred {p} ({probs[i, p]:.2f})" for i, (t, p) in enumerate(zip(y, pred))]
    eidx = pick_examples(data, energy_samples, seed + 1) if energy_samples > 0 else np.array([], np.int64)
    files, grid, energy = _explain_each(model, data, methods, out, x, titles, eidx, layer, seed)
    files["methods_grid"] = str(cams.viz.save_grid(x, grid, out / "methods_grid.png", row_labels=titles))
    summary = {
        "layer": layer if layer is not None else "last 4-D layer",
        "images": [int(i) for i in idx],
        "true": [int(v) for v in y],
        "predicted": [int(v) for v in pred],
        "stroke_mask": f"pixels > {STROKE_THRESHOLD} dilated by {STROKE_DILATION} px (ellipse)",
        "energy_samples": int(len(eidx)),
        "energy": energy,
    }
    files["summary"] = str(write_json(out / "explain.json", summary))
    return dict(summary, files=files)


def _explain_each(model, data: DigitData, methods: Sequence[str], out: Path, x: np.ndarray, titles: list[str],
                  eidx: np.ndarray, layer: str | None, seed: int) -> tuple[dict, dict, dict]:
    """Each method's triplet figure and stroke-energy share -> (files, {title: maps}, {method: energy})."""
    import cams
    from cams.methods import registry

    files: dict[str, str] = {}
    grid: dict[str, np.ndarray] = {}
    energy: dict[str, Any] = {}
    for name in methods:
        label = registry.title(name)
        try:
            ex = make_explainer(name, model, layer=layer, seed=seed)
        except ValueError as err:
            raise BengaliXAIError(f"{label}: {err}") from None
        maps = ex(x)
        grid[label] = maps
        files[f"{name}_triplets"] = str(cams.viz.save_triplets(x, maps, out / triplet_name(name), titles=titles))
        if len(eidx):
            energy[name] = stroke_energy(ex(data.x[eidx]), data.x[eidx])
            print(f"{label:18s} energy on strokes (+{STROKE_DILATION} px) {energy[name]['energy_on_strokes']:.3f} "
                  f"(mask covers {energy[name]['mask_area']:.3f} of the image; {len(eidx)} test digits)", flush=True)
    return files, grid, energy


# ---------------------------------------------------------------------------------------------
# Figure 9: Grad-CAM of an ImageNet classifier on digit images
# ---------------------------------------------------------------------------------------------

def imagenet_classifier(arch: str, weights: str | None = "imagenet", input_size: int | None = None):
    """`keras.applications.<arch>` with its classification head, and that module's `preprocess_input`.

    Args:
        arch: any keras.applications classifier by name (VGG16, ResNet50, Xception, MobileNetV2, ...).
        weights: "imagenet" (downloaded by Keras; offline it is one BengaliXAIError line), "none"/None
            (random initialisation) or the path of a local weights file for the full model (with top).
        input_size: square input side; default the architecture's own (224 or 299; 224 when it has none).
    Returns:
        (model, preprocess_input).
    """
    import importlib

    import keras

    build = getattr(keras.applications, arch, None)
    if not callable(build) or not arch[:1].isupper():
        names = sorted(n for n in dir(keras.applications) if n[:1].isupper())
        raise BengaliXAIError(f"unknown --arch {arch!r}: choose a keras.applications classifier, one of "
                              f"{', '.join(names)}")
    preprocess = getattr(importlib.import_module(build.__module__), "preprocess_input", None)
    if preprocess is None:
        raise BengaliXAIError(f"--arch {arch}: its module {build.__module__} has no preprocess_input")
    if weights in ("none", "None", ""):
        weights = None
    if weights not in (None, "imagenet") and not Path(weights).is_file():
        raise BengaliXAIError(f"--weights {weights}: file not found; give a local weights file of the full "
                              f"{arch} (with its 1000-class top), 'imagenet' (needs network access) or 'none'")
    kwargs = {"input_shape": (input_size, input_size, 3)} if input_size else {}
    try:
        model = build(weights=weights, include_top=True, classes=1000, **kwargs)
    except Exception as err:  # keras.utils.get_file raises a bare Exception when the download fails
        first = str(err).strip().splitlines()[0][:200] if str(err).strip() else type(err).__name__
        if weights == "imagenet" and ("URL fetch failure" in first or isinstance(err, OSError)
                                      or "urlopen" in first.lower()):
            raise BengaliXAIError(f"{arch} ImageNet weights could not be downloaded ({first}): run with network "
                                  f"access, or pass --weights PATH to a local .h5, or --weights none") from None
        raise BengaliXAIError(f"--arch {arch} --weights {weights}: {first}") from None
    return model, preprocess


def digits_to_rgb(images: np.ndarray, size: int) -> np.ndarray:
    """Grey digits (N, h, w[, 1]) in [0, 1] -> (N, size, size, 3) in [0, 255] (bilinear, grey copied to RGB)."""
    import tensorflow as tf

    x = np.asarray(images, np.float32)
    x = x[..., None] if x.ndim == 3 else x
    x = tf.image.resize(x, (size, size), method="bilinear").numpy()
    return np.repeat(np.clip(x, 0.0, 1.0), 3, axis=-1) * 255.0


def explain_imagenet(
    model,
    preprocess,
    data: DigitData,
    out: str | os.PathLike,
    n: int = 3,
    layer: str | None = None,
    seed: int = 0,
    labels: str | None = None,
    outputs=None,
) -> dict[str, Any]:
    """Grad-CAM of an ImageNet classifier for its top-1 ImageNet class on n test digits (the Bengali
    study's Figure 9): `<out>/imagenet_gradcam.png` (input | heatmap | overlay, titled with the class
    name) and `<out>/imagenet_explain.json`. Class names come from Keras' ImageNet class index
    (`labels` = a local names file); without them the titles say "class N".

    Args:
        model, preprocess: the classifier and its preprocess_input (see `imagenet_classifier`).
        data: the digits.
        out: the output folder.
        n, layer, seed: digits shown, the layer explained, which digits.
        labels: a local ImageNet class-names file.
        outputs: the checked OutputFolder (cams.core.outputs) of `out`; default: checked here.

    Returns:
        The summary with the written paths under "files".
    """
    import cams
    from cams.core.labels import class_names_for, describe
    from cams.methods import registry

    outputs = outputs or output_folder(out, "explain", {"arch": model.name, "n": n, "seed": seed}, IMAGENET_FILES)

    size = int(model.input_shape[1])
    idx = pick_examples(data, n, seed)
    shown = digits_to_rgb(data.x[idx], size)
    x = np.asarray(preprocess(shown.copy()), np.float32)
    logits = model.predict(x, verbose=0)
    top = logits.argmax(axis=1)
    try:
        names = class_names_for(int(logits.shape[1]), labels)
        maps = registry.make_explainer("gradcam", model, layer=layer)(x, targets=top)
    except ValueError as err:
        raise BengaliXAIError(str(err)) from None
    titles = [f"digit {int(t)}: {describe(k, names)}" for t, k in zip(data.y[idx], top)]
    out = Path(out)
    outputs.record(*IMAGENET_FILES)
    fig = cams.viz.save_triplets(shown / 255.0, maps, out / "imagenet_gradcam.png", titles=titles)
    summary = {"model": model.name, "input_size": size, "layer": layer or "last 4-D layer",
               "images": [int(i) for i in idx], "true": [int(v) for v in data.y[idx]],
               "top1_class": [int(k) for k in top], "top1_name": [describe(k, names) for k in top],
               "class_names": "ImageNet class index" if names else "unavailable (class numbers shown)"}
    files = {"imagenet_gradcam": str(fig), "summary": str(write_json(out / "imagenet_explain.json", summary))}
    return dict(summary, files=files)
