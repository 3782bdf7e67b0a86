#!/usr/bin/env python
"""Developer check (not part of the test suite: torch, grad-cam and quantus are not dependencies of
cams): our metrics against pytorch-grad-cam 1.5.7's ROAD and Quantus 0.6.0 on identical inputs.

    pip install torch==2.13.0 (CPU) ; pip install --no-deps grad-cam==1.5.7 ttach
    pip install quantus==0.6.0 pandas cachetools    # quantus imports pandas and cachetools
    python scripts/check_reference_metrics.py

The tiny CNN of scripts/check_reference_pytorch.py is built in Keras and copied into PyTorch (same
weights; its helpers are imported, not copied). Deterministic metrics (ROAD without noise,
Sparseness, Complexity, relevance mass / rank, Random Logit on the same classes) are compared per
image; stochastic ones (ROAD with noise, MuFidelity, Max- and average sensitivity) in
distribution: R independent repeats on each side with the same number of samples, compared by the
difference of the per-image means in units of its standard error (z). Prints one Markdown table:
metric, our mean, the reference's mean, max |diff| over images (or max z), convention notes.
"""
from __future__ import annotations

import os
import sys
import warnings

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
warnings.filterwarnings("ignore")

import numpy as np  # noqa: E402

import cams  # noqa: E402
from cams import metrics  # noqa: E402
from cams.metrics.imputation import n_removed  # noqa: E402
from check_reference_pytorch import CLASSES, SIZE, _stub_torchvision, keras_cnn, torch_twin  # noqa: E402

HW = SIZE * SIZE
ROWS = []


def row(metric, ours, theirs, diff, note):
    ROWS.append(f"| {metric} | {ours} | {theirs} | {diff} | {note} |")
    print(ROWS[-1], flush=True)


def exact(metric, ours, theirs, note=""):
    ours, theirs = np.asarray(ours, np.float64), np.asarray(theirs, np.float64)
    row(metric, f"{ours.mean():.6f}", f"{theirs.mean():.6f}", f"{np.abs(ours - theirs).max():.1e}", note)


def in_distribution(metric, ours, theirs, note=""):
    """ours, theirs: (R, N) repeats x images."""
    ours, theirs = np.asarray(ours, np.float64), np.asarray(theirs, np.float64)
    se = np.sqrt(ours.var(axis=0, ddof=1) / len(ours) + theirs.var(axis=0, ddof=1) / len(theirs))
    z = np.abs(ours.mean(axis=0) - theirs.mean(axis=0)) / np.maximum(se, 1e-12)
    row(metric, f"{ours.mean():.4f} (sd {ours.std(axis=0).mean():.1e})", f"{theirs.mean():.4f} (sd {theirs.std(axis=0).mean():.1e})",
        f"max z = {z.max():.2f}", note + f"; {len(ours)} repeats per side")


def nchw(a):
    return np.ascontiguousarray(a.transpose(0, 3, 1, 2))


def road_rows(mlp, tmlp, x, maps, t):
    """ROAD against pytorch-grad-cam's NoisyLinearImputer and Remove{Most,Least}RelevantFirst."""
    import torch
    from pytorch_grad_cam.metrics.perturbation_confidence import (PerturbationConfidenceMetric, RemoveLeastRelevantFirst,
                                                                  RemoveMostRelevantFirst)
    from pytorch_grad_cam.metrics.road import NoisyLinearImputer
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputSoftmaxTarget

    pcts = (10, 20, 30, 40, 50)
    targets = [ClassifierOutputSoftmaxTarget(int(c)) for c in t]

    def peer(order, noise, seed=None):
        if seed is not None:
            torch.manual_seed(seed)
        out = []
        for p in pcts:
            # the peer keeps the pixels below its `percentile`-th value: ask for the threshold halfway
            # between the kept and the removed pixel so that exactly floor(p HW / 100) go (ours)
            q = 100.0 * (HW - n_removed(p, HW) - 0.5) / (HW - 1)
            cls = RemoveMostRelevantFirst if order == "morf" else RemoveLeastRelevantFirst
            metric = PerturbationConfidenceMetric(cls(q, NoisyLinearImputer(noise=noise)))
            # float64 maps: the peer's 1 - map in float32 would merge close values into ties
            out.append(metric(torch.tensor(nchw(x)), maps.astype(np.float64), targets, tmlp, return_diff=False))
        return np.stack(out, axis=1)

    note = ("same removed pixels (the peer's `percentile` is the % kept, thresholded with <; ours the % removed, "
            "by rank, floor(p HW / 100) pixels); score = softmax probability (peer default: logit, diff to clean)")
    for order in ("morf", "lerf"):
        ours = metrics.road(mlp, x, maps, t, percentiles=pcts, order=order, noise=0.0)
        exact(f"ROAD {order.upper()} 10..50 %, noise 0", ours, peer(order, 0.0), note)
    reps = 12
    ours = [metrics.road(mlp, x, maps, t, percentiles=pcts, order="morf", seed=s).mean(axis=1) for s in range(reps)]
    theirs = [peer("morf", 0.01, seed=s).mean(axis=1) for s in range(reps)]
    in_distribution("ROAD MoRF, noise 0.01 (mean over 10..50 %)", ours, theirs, "noise N(0, 0.01^2) on imputed pixels on both sides")


def quantus_deterministic_rows(x, maps, t, tmlp):
    import quantus

    a = maps[:, None].astype(np.float64)
    kw = dict(model=tmlp, x_batch=nchw(x), y_batch=t, channel_first=True, device="cpu")
    sp = quantus.Sparseness(disable_warnings=True, return_aggregate=False)(a_batch=a.copy(), **kw)
    exact("Sparseness (Gini)", metrics.sparseness(maps), sp,
          "Quantus adds 1e-7 to abs(a) (normalised by the batch max) before the Gini index; we use abs(a) as is (next row)")
    exact("Sparseness of abs(a) / max + 1e-7 (Quantus' input)", metrics.sparseness(np.abs(maps) / np.abs(maps).max() + 1e-7), sp,
          "same formula on the same numbers")
    cx = quantus.Complexity(disable_warnings=True, return_aggregate=False)(a_batch=a.copy(), **kw)
    exact("Complexity (entropy)", metrics.complexity(maps), cx, "Quantus: -sum p ln(p + 1e-12); ours 0 ln 0 = 0")
    masks = np.zeros((len(x), SIZE, SIZE), bool)
    for i in range(len(x)):
        r, c = divmod(i * 5, SIZE - 6)
        masks[i, r: r + 6, c: c + 7] = True
    s = masks[:, None].astype(np.float64)
    rm = quantus.RelevanceMassAccuracy(disable_warnings=True, return_aggregate=False)(a_batch=a.copy(), s_batch=s, **kw)
    exact("Relevance mass accuracy", metrics.relevance_mass(maps, masks), rm,
          "identical on non-negative maps; on signed maps we keep positive relevance (Quantus sums signed values)")
    rr = quantus.RelevanceRankAccuracy(disable_warnings=True, return_aggregate=False)(a_batch=a.copy(), s_batch=s, **kw)
    exact("Relevance rank accuracy", metrics.relevance_rank(maps, masks), rr, "ties: ours raster order, Quantus numpy's argsort")


def grey_pair(mlp, tmlp):
    """1-channel twins (grey replicated to RGB inside the model), so that Quantus' features (C H W
    elements) are our features (pixels)."""
    import keras
    import torch

    inp = keras.Input((SIZE, SIZE, 1))
    model = keras.Model(inp, mlp(keras.layers.Concatenate()([inp, inp, inp])))

    class Grey(torch.nn.Module):
        def __init__(self, net):
            super().__init__()
            self.net = net

        def forward(self, z):
            return self.net(z.repeat(1, 3, 1, 1))

    return model, Grey(tmlp).eval()


def mufidelity_rows(mlp, tmlp, x, maps, t):
    import quantus

    gm, gt = grey_pair(mlp, tmlp)
    import tensorflow as tf

    g = x.mean(axis=-1, keepdims=True)
    xg = tf.constant(g)
    with tf.GradientTape() as tape:  # gradient x input of the target logit: a map with a clear positive mu_F
        tape.watch(xg)
        score = tf.gather(gm(xg), t, batch_dims=1)
    maps = (tape.gradient(score, xg) * xg).numpy()[..., 0]
    n_samples, k, reps = 64, int(round(0.2 * HW)), 24
    ours = [metrics.mufidelity(gm, g, maps, t, subset_fraction=0.2, n_samples=n_samples, seed=s) for s in range(reps)]
    theirs = []
    for s in range(reps):
        np.random.seed(s)
        metric = quantus.FaithfulnessCorrelation(nr_runs=n_samples, subset_size=k, perturb_baseline=0.0, disable_warnings=True,
                                                 return_aggregate=False)
        theirs.append(metric(model=gt, x_batch=nchw(g), y_batch=t, a_batch=maps[:, None].copy(), channel_first=True, device="cpu"))
    in_distribution("MuFidelity of gradient x input (20 % of pixels, 64 subsets, baseline 0)", ours, theirs,
                    "logit scores on both sides (Quantus softmax=False); Quantus draws C H W elements, we pixels: "
                    "compared on a grey model where they coincide")


def torch_gradcam(tmlp):
    """Quantus explain_func: pytorch-grad-cam's Grad-CAM at the feature layer, (N, 1, H, W)."""
    import torch
    from pytorch_grad_cam import GradCAM
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

    def explain(model, inputs, targets, **_):
        with GradCAM(model=tmlp, target_layers=[tmlp.feat]) as cam:
            out = cam(input_tensor=torch.tensor(np.asarray(inputs, np.float32)),
                      targets=[ClassifierOutputTarget(int(c)) for c in np.atleast_1d(targets)])
        return out[:, None]

    return explain


def sensitivity_rows(mlp, tmlp, x, maps, t):
    import quantus

    ours_ex, peer_ex = cams.GradCAM(mlp, layer="feat"), torch_gradcam(tmlp)
    exact("(maps) our Grad-CAM vs pytorch-grad-cam's, on x", maps, peer_ex(None, nchw(x), t)[:, 0], "the explainer under test on both sides")
    n_samples, reps = 8, 10
    for name, ours_fn, peer_cls in (("Max-Sensitivity", metrics.max_sensitivity, quantus.MaxSensitivity),
                                    ("Avg-Sensitivity", metrics.avg_sensitivity, quantus.AvgSensitivity)):
        ours = [ours_fn(ours_ex, x, maps, t, radius=0.2, n_samples=n_samples, seed=s) for s in range(reps)]
        theirs = []
        for s in range(reps):
            np.random.seed(s)
            metric = peer_cls(nr_samples=n_samples, lower_bound=0.2, disable_warnings=True, return_aggregate=False)
            theirs.append(metric(model=tmlp, x_batch=nchw(x), y_batch=t, a_batch=maps[:, None].copy(), explain_func=peer_ex,
                                 channel_first=True, device="cpu"))
        in_distribution(f"{name} (r = 0.2, {n_samples} samples)", ours, theirs,
                        "uniform noise in the L-inf ball, Frobenius norms, divided by the norm of E(x) (Quantus defaults; Yeh et al.'s "
                        "formula has no denominator: relative=False)")


def random_logit_rows(mlp, tmlp, x, maps, t):
    import quantus

    from cams.metrics.similarity import ssim

    # Quantus' draw of the other class, reproduced so that both sides explain the same t'
    np.random.seed(42)
    idx = np.random.randint(0, CLASSES - 1, len(x))
    other = np.array([[c for c in range(CLASSES) if c != ti][j] for ti, j in zip(t, idx)])
    ours = metrics.random_logit(mlp, cams.GradCAM(mlp, layer="feat"), x, maps, t, other_targets=other)
    peer_ex = torch_gradcam(tmlp)
    kw = dict(model=tmlp, x_batch=nchw(x), y_batch=t, a_batch=maps[:, None].copy(), explain_func=peer_ex, channel_first=True, device="cpu")
    flat = quantus.RandomLogit(num_classes=CLASSES, seed=42, disable_warnings=True, return_aggregate=False)(**kw)
    two_d = quantus.RandomLogit(num_classes=CLASSES, seed=42, disable_warnings=True, return_aggregate=False,
                                similarity_func=lambda a, b, batched=True, **_: ssim(a.reshape(-1, SIZE, SIZE),
                                                                                     b.reshape(-1, SIZE, SIZE)))(**kw)
    exact("Random Logit (SSIM), Quantus' own SSIM", ours, flat,
          "Quantus flattens the maps and runs a 1-D SSIM along the vector; we compare them as 2-D images (Sixt et al.)")
    exact("Random Logit, Quantus with a 2-D SSIM", ours, two_d, "same classes t' (Quantus' seeded draw), same maps up to the explainers' 1e-7")


def main() -> int:
    stubbed = _stub_torchvision()
    import quantus
    import torch

    print(f"cams {cams.__version__ if hasattr(cams, '__version__') else ''} / quantus {quantus.__version__} / torch {torch.__version__}"
          + (" (torchvision stand-in registered)" if stubbed else ""))
    mlp = keras_cnn("mlp", 2)
    tmlp = torch_twin(mlp, "mlp")
    rng = np.random.default_rng(0)
    x = rng.random((4, SIZE, SIZE, 3)).astype("float32")
    with torch.no_grad():
        same = np.abs(mlp.predict(x, verbose=0) - tmlp(torch.tensor(nchw(x))).numpy()).max()
    print(f"max |Keras logits - PyTorch logits| = {same:.2e}")
    t = np.array([0, 1, 2, 3])
    # Grad-CAM maps with a 1e-4 jitter: ties (ReLU zeros) would make 'the top p %' ambiguous
    maps = (cams.GradCAM(mlp, layer="feat")(x, t) + 1e-4 * rng.random((4, SIZE, SIZE))).astype(np.float32)
    print("\n| metric | ours | reference | max abs diff | conventions |\n|---|---:|---:|---:|---|")
    road_rows(mlp, tmlp, x, maps, t)
    quantus_deterministic_rows(x, maps, t, tmlp)
    mufidelity_rows(mlp, tmlp, x, maps, t)
    sensitivity_rows(mlp, tmlp, x, cams.GradCAM(mlp, layer="feat")(x, t), t)
    random_logit_rows(mlp, tmlp, x, cams.GradCAM(mlp, layer="feat")(x, t), t)
    return 0


if __name__ == "__main__":
    sys.exit(main())
