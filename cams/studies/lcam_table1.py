"""Table 1 of the L-CAM paper for any Keras classifier: AD/IC at 100/50/15%, #FW and ms per image.

    from cams.studies import lcam_table1
    rows, maps = lcam_table1.table1(model, images, [lcam_img, lcam_fm], rise_masks=4000)
    print(lcam_table1.markdown(rows))

Rows: Grad-CAM, Grad-CAM++, Score-CAM, RISE (the paper's baselines, from this library) and one
row per trained L-CAM. AD/IC come from `cams.metrics.ad_ic` (targets = the top-1 class on the
clean image). #FW counts forward passes of the classifier per explanation, including the one that
finds the top-1 class: 1 for the gradient CAMs (plus a backward pass through the head) and L-CAM,
1 + K for Score-CAM (K channels scored; all-zero channels are skipped at run time, so this is an
upper bound), 1 + n_masks for RISE. The paper lists K and n_masks. ms/image is the wall time of
explaining all images after one warm-up call (tracing excluded), divided by the image count.
"""
from __future__ import annotations

import sys
import time
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

from cams.methods import registry

COLUMNS = ("AD(100%)", "IC(100%)", "AD(50%)", "IC(50%)", "AD(15%)", "IC(15%)")
#: the paper's baselines (any method of `baseline_names()` can be a row)
BASELINES = ("gradcam", "gradcam++", "scorecam", "rise")


def baseline_names() -> list:
    """Registered methods that can be a baseline row: those that need no trained file."""
    return [name for name, method in registry.methods().items() if not method.trained_file]


def _timed(explain, images: np.ndarray, batch_size: int) -> Tuple[np.ndarray, float]:
    explain(images[:1])  # warm-up: tracing and compilation are not timed
    start = time.perf_counter()
    maps = np.concatenate([explain(images[s : s + batch_size]) for s in range(0, len(images), batch_size)])
    return maps.astype(np.float32), 1000.0 * (time.perf_counter() - start) / len(images)


def _baseline(name: str, model, layer, rise_masks: int, rise_batch: int, scorecam_batch: int,
              scorecam_max_channels: Optional[int], seed: int):
    """(explainer, forward passes per explanation) for a registered method that needs no training."""
    method = registry.get(name)
    if method.trained_file:
        raise ValueError(f"{name!r} must be trained first: pass the trained explainer in `lcams`")
    options = {"layer": layer, "seed": seed}
    if "n_masks" in method.options:
        options.update(n_masks=rise_masks, batch_size=rise_batch)
    elif "max_channels" in method.options:
        options.update(batch_size=scorecam_batch, max_channels=scorecam_max_channels)
    explainer = method.make(model, **options)
    return explainer, int(round(explainer.forward_passes()))


def table1(
    model,
    images,
    lcams: Sequence = (),
    methods: Sequence[str] = BASELINES,
    layer=None,
    rise_masks: int = 4000,
    rise_batch: int = 64,
    scorecam_batch: int = 32,
    scorecam_max_channels: Optional[int] = None,
    batch_size: int = 16,
    seed: int = 0,
    verbose: bool = True,
) -> Tuple[List[Dict], Dict[str, np.ndarray]]:
    """Explain `images` with each baseline in `methods` and each trained `cams.LCAM` in `lcams`;
    return (rows, maps). Each row: {"method", "AD(100%)", ..., "IC(15%)", "#FW", "ms/image"}.
    `layer` (default: each L-CAM's own layer for the gradient CAMs and Score-CAM if all L-CAMs
    share one, else the last 4-D layer) is the feature layer of the layer-based baselines."""
    from tqdm import tqdm

    from cams import metrics
    from cams.core.inputs import check_count, check_images
    from cams.core import model_graph

    x = check_images(images, model_graph.input_shape(model))
    check_count(batch_size, "batch_size")
    for lc in lcams:
        if lc.model is not model:
            raise ValueError(f"{lc.name} was loaded for another model object; load it with this model")
    if layer is None and lcams and len({lc.layer_name for lc in lcams}) == 1:
        layer = lcams[0].layer_name
    jobs = [(m, None) for m in methods] + [(lc.name, lc) for lc in lcams]
    names = [registry.title(m) for m, _ in jobs]
    if len(set(names)) != len(names):
        raise ValueError(f"two methods share a row name ({', '.join(names)}); pass each L-CAM variant once")
    rows, all_maps = [], {}
    for (key, lc), title in tqdm(list(zip(jobs, names)), desc="methods", unit="method", disable=not verbose, file=sys.stderr):
        if lc is None:
            explainer, n_fw = _baseline(key, model, layer, rise_masks, rise_batch, scorecam_batch, scorecam_max_channels, seed)
        else:
            explainer, n_fw = lc, 1
        maps, ms = _timed(explainer, x, int(batch_size))
        scores = metrics.ad_ic(model, x, maps)
        rows.append({"method": title, **{c: scores[c] for c in COLUMNS}, "#FW": int(n_fw), "ms/image": ms})
        all_maps[title] = maps
        if verbose:
            print(f"{title}: AD(100%) {scores['AD(100%)']:.2f}  IC(100%) {scores['IC(100%)']:.2f}  {ms:.1f} ms/image", file=sys.stderr)
    return rows, all_maps


def forward_ms(model, images, batch_size: int = 16) -> float:
    """ms per image of one compiled forward pass of the classifier (the reference for L-CAM's
    "one forward pass" claim: a trained L-CAM should cost about 1.2x this), timed like the explainers."""
    import tensorflow as tf

    from cams.core import model_graph

    fn = model_graph.logits_function(model)
    x = np.asarray(images, np.float32)
    return _timed(lambda b: fn(tf.constant(b)).numpy(), x, int(batch_size))[1]


def markdown(rows: Sequence[Dict]) -> str:
    """The rows as a Markdown table in the paper's column order (+ ms/image)."""
    head = ["Method", *COLUMNS, "#FW", "ms/image"]
    lines = ["| " + " | ".join(head) + " |", "|" + "|".join(["---"] + ["---:"] * (len(head) - 1)) + "|"]
    for r in rows:
        cells = [r["method"], *(f"{r[c]:.2f}" for c in COLUMNS), str(r["#FW"]), f"{r['ms/image']:.1f}"]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"
