"""Localisation of the planted region: pointing game and share of map energy inside the mask.

Only for data sets with ground truth (`masks/test/<id>.png` beside `test/fake/<id>.jpg`, as written by
`make-dataset`). Maps are computed for the fake class on every test fake, with Saliency, Grad-CAM
and Grad-CAM++. The chance level of both numbers is the mean mask area: a uniform map puts that
share of its energy inside the mask, and a random pixel falls inside with that probability.
"""
from __future__ import annotations

import cv2
import numpy as np

from cams.core.files import write_json
from cams.viz import save_grid

from ..data import denormalise, list_split, mask_path
from .common import Analysis

#: the methods the study compares (any name of `cams methods` works)
METHODS = ("saliency", "gradcam", "gradcam++")


def load_masks(an: Analysis, paths: list[str], split: str = "test") -> np.ndarray:
    """Ground-truth masks {0, 1} (N, H, W) float32 at the model's input size."""
    masks = []
    for p in paths:
        mp = mask_path(an.dataset_dir, split, p)
        m = cv2.imread(str(mp), cv2.IMREAD_GRAYSCALE)
        if m is None:
            raise FileNotFoundError(f"no ground-truth mask {mp} for {p}: localisation needs a data set made "
                                    f"by `deepfake-xai make-dataset`")
        if m.shape != (an.image_size, an.image_size):
            m = cv2.resize(m, (an.image_size, an.image_size), interpolation=cv2.INTER_NEAREST)
        masks.append((m > 127).astype(np.float32))
    return np.stack(masks)


def has_masks(an: Analysis, split: str = "test") -> bool:
    """True when the split's fakes have ground-truth masks."""
    files = list_split(an.dataset_dir, split, check=False, need_both=False)
    fakes = [p for p, y in zip(files.paths, files.labels) if y == 1]
    return bool(fakes) and all(mask_path(an.dataset_dir, split, p).is_file() for p in fakes)


def explainers(model, layer: str | None) -> dict:
    """The methods compared, by name, from cams' method registry."""
    from cams.methods import registry

    return {name: registry.make_explainer(name, model, layer=layer) for name in METHODS}


def localization_analysis(an: Analysis, batch_size: int = 16, n_examples: int = 4, tolerance: int = 0) -> dict:
    """Pointing game and energy-in-mask of each method on all test fakes; JSON + example grid."""
    from cams import metrics

    from ..models import cam_layer

    an.outputs("localization")
    if not has_masks(an):
        raise FileNotFoundError(f"{an.dataset_dir}/masks/test has no mask for some test fakes: localisation needs "
                                f"the ground truth written by `deepfake-xai make-dataset`")
    methods = explainers(an.model, cam_layer(an.model))
    maps = {m: [] for m in methods}
    all_masks, correct, examples = [], [], []
    for images, labels, paths in an.batches("test", batch_size):
        sel = labels == 1
        if not sel.any():
            continue
        x = images[sel]
        fps = [p for p, s in zip(paths, sel) if s]
        masks = load_masks(an, fps)
        targets = [1] * len(x)
        for name, ex in methods.items():
            maps[name].append(np.asarray(ex(x, targets=targets), np.float32))
        all_masks.append(masks)
        correct.append(metrics.probabilities(an.model, x, batch_size)[:, 1] > 0.5)
        if len(examples) < n_examples:
            examples.extend((x[i], masks[i], {n: maps[n][-1][i] for n in methods})
                            for i in range(min(n_examples - len(examples), len(x))))
    if not all_masks:
        raise ValueError(f"no fake images in {an.dataset_dir / 'test'}")
    masks = np.concatenate(all_masks)
    correct = np.concatenate(correct)
    maps = {n: np.concatenate(v) for n, v in maps.items()}
    chance = float(masks.reshape(len(masks), -1).mean(axis=1).mean())
    table = {}
    for name, m in maps.items():
        row = {"pointing_game": float(metrics.pointing_game(m, masks, tolerance=tolerance)),
               "energy_in_mask": float(metrics.energy_in_mask(m, masks))}
        if correct.any():
            row["pointing_game_detected"] = float(metrics.pointing_game(m[correct], masks[correct],
                                                                        tolerance=tolerance))
            row["energy_in_mask_detected"] = float(metrics.energy_in_mask(m[correct], masks[correct]))
        table[name] = row
    grid_maps = {"planted region": np.stack([e[1] for e in examples])}
    grid_maps.update({n: np.stack([e[2][n] for e in examples]) for n in methods})
    grid = save_grid(denormalise(np.stack([e[0] for e in examples])), grid_maps, an.figure("localization_examples"))
    result = {"dataset": an.dataset_name, "model": an.model_name, "n_fakes": int(len(masks)),
              "n_detected": int(correct.sum()), "tolerance": tolerance, "chance": chance,
              "methods": table, "figure": str(grid)}
    path = write_json(an.result("localization"), result)
    an.log(f"localisation of the planted region on {len(masks)} test fakes ({int(correct.sum())} detected); "
           f"chance = mean mask area = {chance:.3f}")
    an.log(f"{'method':<11} {'pointing game':>14} {'energy in mask':>15}")
    for name, row in table.items():
        an.log(f"{name:<11} {row['pointing_game']:>14.3f} {row['energy_in_mask']:>15.3f}")
    an.log(f"wrote {path} and {grid}")
    return result
