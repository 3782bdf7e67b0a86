"""ROAD: RemOve And Debias (Rong et al., "A Consistent and Efficient Evaluation Strategy for
Attribution Methods", ICML 2022).

The top (MoRF, most relevant first) or bottom (LeRF, least relevant first) p% of a map's pixels
are removed and filled by *noisy linear imputation*: every removed pixel i takes the weighted mean
of its 8 neighbours (weight 1/6 for the 4 direct neighbours, 1/12 for the 4 diagonal ones,
neighbours outside the image left out),

    sum_{j in N(i)} w_ij x_i - sum_{j in N(i), j removed} w_ij x_j = sum_{j in N(i), j kept} w_ij v_j,

one sparse linear system per image and percentile (all channels share it), then
x_i <- x_i + noise * eps, eps ~ N(0, 1). The imputed image leaks no information about the removed
pixels' *position* through their values, which plain replacement by a constant does. The score is
the softmax probability of the target class on each imputed image: MoRF curves that fall fast and
LeRF curves that stay high mean a faithful map.
"""
from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import Iterable, Iterator, Sequence

import keras
import numpy as np
import scipy.sparse as sp
from scipy.sparse.linalg import splu

from cams.core import model_graph
from cams.core.inputs import Targets, check_count, check_images
from cams.metrics._scoring import check_maps, resolve_targets, target_scores

#: (row offset, column offset, weight) of the 8 neighbours, as in the authors' code
NEIGHBOURS = ((-1, -1, 1 / 12), (-1, 0, 1 / 6), (-1, 1, 1 / 12), (0, -1, 1 / 6),
              (0, 1, 1 / 6), (1, -1, 1 / 12), (1, 0, 1 / 6), (1, 1, 1 / 12))
ORDERS = ("morf", "lerf")


def _shifted(a: np.ndarray, dr: int, dc: int, fill) -> np.ndarray:
    """out[r, c] = a[r + dr, c + dc] (fill outside the image)."""
    out = np.full_like(a, fill)
    h, w = a.shape[:2]
    out[max(0, -dr): h - max(0, dr), max(0, -dc): w - max(0, dc)] = a[max(0, dr): h - max(0, -dr), max(0, dc): w - max(0, -dc)]
    return out


def nested_dissection(rows: np.ndarray, cols: np.ndarray, leaf: int = 64) -> np.ndarray:
    """Order of grid points (rows, cols) for a sparse factorisation with little fill (George 1973):
    split along the median row or column of the longer side, order the two halves recursively,
    the separating line last. One line separates an 8-neighbour stencil."""
    out = []

    def split(ids):
        if len(ids) <= leaf:
            out.append(ids)
            return
        r, c = rows[ids], cols[ids]
        v = r if np.ptp(r) >= np.ptp(c) else c
        mid = np.median(v)
        mid = np.floor(mid) if np.floor(mid) > v.min() else np.ceil(mid)
        lo, hi = ids[v < mid], ids[v > mid]
        if len(lo) == 0 or len(hi) == 0:
            out.append(ids)
            return
        split(lo)
        split(hi)
        out.append(ids[v == mid])

    split(np.arange(len(rows)))
    return np.concatenate(out)


def noisy_linear_imputation(image, removed, noise: float = 0.01, rng=None) -> np.ndarray:
    """Fill the `removed` pixels of one image by noisy linear imputation (Rong et al. 2022).

    Args:
        image: (H, W, C) array.
        removed: (H, W) bool, True where the pixel is removed (at least one pixel must stay).
        noise: standard deviation of the Gaussian noise added to the imputed values, in the
            image's units (the authors' 0.01 is for standardised inputs).
        rng: numpy Generator for the noise (default: a fresh unseeded one).
    Returns:
        float32 (H, W, C) copy with the removed pixels replaced.
    """
    x = np.asarray(image, np.float64)
    h, w, c = x.shape
    rem = np.asarray(removed, bool)
    idx = np.flatnonzero(rem)
    out = x.reshape(h * w, c).copy()
    if len(idx) == 0:
        return out.reshape(h, w, c).astype(np.float32)
    if len(idx) == h * w:
        raise ValueError("noisy linear imputation needs at least one kept pixel; every pixel is removed")
    idx = idx[nested_dissection(*np.divmod(idx, w))]  # unknowns numbered in nested-dissection order
    var = np.full((h, w), -1, np.int64)
    var.flat[idx] = np.arange(len(idx))
    known = np.where(rem[..., None], 0.0, x)
    diag, b, rows, cols, vals = np.zeros(len(idx)), np.zeros((len(idx), c)), [], [], []
    for dr, dc, wt in NEIGHBOURS:
        nb_var = _shifted(var, dr, dc, -1).flat[idx]            # index of a removed neighbour, else -1
        inside = _shifted(np.ones((h, w), bool), dr, dc, False).flat[idx]
        diag += wt * inside
        b += wt * _shifted(known, dr, dc, 0.0).reshape(h * w, c)[idx]
        eq = np.flatnonzero(nb_var >= 0)
        rows.append(eq), cols.append(nb_var[eq]), vals.append(np.full(len(eq), -wt))
    n = len(idx)
    A = sp.csc_matrix((np.concatenate([diag, *vals]), (np.concatenate([np.arange(n), *rows]),
                                                       np.concatenate([np.arange(n), *cols]))), shape=(n, n))
    # A is symmetric and diagonally dominant: LU with diagonal pivots in the nested-dissection order
    solution = splu(A, permc_spec="NATURAL", options={"SymmetricMode": True}).solve(b)
    if noise:
        solution = solution + noise * (rng or np.random.default_rng()).standard_normal(solution.shape)
    out[idx] = solution
    return out.reshape(h, w, c).astype(np.float32)


def removal_order(map_: np.ndarray, order: str) -> np.ndarray:
    """Pixel indices (flattened) in removal order: most relevant first ("morf") or least ("lerf");
    ties keep raster order."""
    flat = np.asarray(map_, np.float64).ravel()
    return np.argsort(-flat if order == "morf" else flat, kind="stable")


def n_removed(percentile: float, n_pixels: int) -> int:
    """Pixels removed at `percentile`: floor(p / 100 * n_pixels) (Quantus' ROAD convention)."""
    return int(np.floor(percentile / 100.0 * n_pixels + 1e-9))


def road_forward_passes(percentiles: Sequence[float] = (10, 20, 30, 40, 50), orders: Sequence[str] = ("morf",),
                        targets_given: bool = False) -> int:
    """Forward passes per image: one per (percentile, order), plus one for the top-1 class when
    targets are not given."""
    return len(percentiles) * len(orders) + (0 if targets_given else 1)


def _check_road_args(percentiles, order, noise):
    pcts = np.atleast_1d(np.asarray(percentiles, np.float64))
    if pcts.ndim != 1 or len(pcts) == 0 or not np.all((pcts >= 0) & (pcts < 100)):
        raise ValueError(f"percentiles must be values in [0, 100) (the % of pixels removed), got {percentiles!r}")
    if order not in ORDERS:
        raise ValueError(f"order must be 'morf' (most relevant first) or 'lerf' (least relevant first), got {order!r}")
    if not noise >= 0:
        raise ValueError(f"noise must be >= 0, got {noise}")
    return pcts


def _imputed(x, m, pcts, order, noise, seed) -> Iterator[np.ndarray]:
    h, w = m.shape[1:]
    for i in range(len(x)):
        rank = removal_order(m[i], order)
        rng = np.random.default_rng([seed, i])
        for p in pcts:
            removed = np.zeros(h * w, bool)
            removed[rank[: n_removed(p, h * w)]] = True
            yield noisy_linear_imputation(x[i], removed.reshape(h, w), noise, rng)


def _batches(items: Iterable[np.ndarray], size: int) -> Iterator[np.ndarray]:
    """Stack `items` into arrays of `size`, building the next batch in a background thread while
    the caller runs the model on the current one (memory: two batches)."""
    it = iter(items)

    def take():
        chunk = [a for _, a in zip(range(size), it)]
        return np.stack(chunk) if chunk else None

    with ThreadPoolExecutor(1) as pool:
        nxt = pool.submit(take)
        while (batch := nxt.result()) is not None:
            nxt = pool.submit(take)
            yield batch


def road(
    model: keras.Model,
    images,
    maps,
    targets: Targets = None,
    percentiles: Sequence[float] = (10, 20, 30, 40, 50),
    order: str = "morf",
    batch_size: int = 32,
    noise: float = 0.01,
    seed: int = 0,
) -> np.ndarray:
    """ROAD (Rong et al. 2022): P(target | imputed image) per image and percentile.

    For each image i and percentile p, the floor(p/100 * H W) pixels ranked first by `order`
    ("morf": highest map values first; "lerf": lowest first; ties in raster order) are removed and
    filled by `noisy_linear_imputation`; the score is the softmax probability of t_i on the result.
    Images and percentiles stream through the model `batch_size` at a time (imputation of the
    next batch overlaps the model on the current one). Cost: `road_forward_passes`.

    Args:
        model: Keras classifier (its pre-softmax logits are used, then softmax).
        images: (N, H, W, C) in the model's input space.
        maps: (N, H, W) saliency maps.
        targets: None (top-1 class on the clean image), an int or N ints.
        percentiles: % of pixels removed, each in [0, 100).
        order: "morf" or "lerf".
        batch_size: imputed images per forward pass.
        noise: std of the imputation noise in input units (0.01 as the authors, for standardised
            inputs; scale it for [0, 255] inputs).
        seed: seeds the noise (image i uses the stream [seed, i]).
    Returns:
        (N, P) float32 probabilities of the target class.
    """
    x = check_images(images, model_graph.input_shape(model))
    m = check_maps(maps, x)
    pcts = _check_road_args(percentiles, order, noise)
    batch_size = check_count(batch_size, "batch_size")
    t = resolve_targets(model, x, targets, batch_size)
    per = np.repeat(t, len(pcts))
    scores = target_scores(model, _batches(_imputed(x, m, pcts, order, noise, seed), batch_size), per)
    return scores.reshape(len(x), len(pcts))
