#!/usr/bin/env python
"""Benchmark of the metrics: each metric's time divided by the time of the forward passes (or
explanations) it needs, measured in one run, and the passes it ran counted against the cost it
states (`cams.metrics.*_forward_passes`, `*_explanations`).

    python scripts/bench_metrics.py                      # ResNet50(weights=None) at 224 px + a small CNN
    python scripts/bench_metrics.py --images 2 --mufidelity-samples 16 --models small

The floor of a metric is the time the same compiled logits function takes on as many images, in
chunks of the same batch size (for the robustness and randomisation metrics: as many calls of
the explainer on the same images). Ratios near 1 mean the metric adds little beyond the model.
Times are wall-clock seconds on whatever this machine is; run it on an idle machine.
"""
from __future__ import annotations

import argparse
import os
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

import cams  # noqa: E402
from cams import metrics  # noqa: E402
from cams.core import model_graph  # noqa: E402


class Counter:
    """Wraps the model's cached logits function (every metric runs the model through it) and
    counts the images that go through."""

    def __init__(self, model):
        self.fn, self.images = model_graph.logits_function(model), 0
        model_graph._LOGITS_FNS[model] = self

    def __call__(self, x):
        self.images += int(x.shape[0])
        return self.fn(x)


class CountingExplainer:
    def __init__(self, explainer):
        self.explainer, self.model, self.images = explainer, explainer.model, 0

    def __call__(self, images, targets=None):
        self.images += len(images)
        return self.explainer(images, targets)


def timed(fn, repeat=1):
    best = np.inf
    for _ in range(repeat):
        start = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - start)
    return best, out


def forward_floor(counter, x, n_images, batch_size):
    """Seconds for `n_images` images through the logits function in chunks of `batch_size`."""
    pool = np.concatenate([x] * (n_images // len(x) + 1))[:n_images]
    return timed(lambda: [counter.fn(tf.constant(pool[s: s + batch_size])).numpy() for s in range(0, n_images, batch_size)], 2)[0]


def small_cnn(size=64, classes=10):
    keras.utils.set_random_seed(0)
    inp = keras.Input((size, size, 3))
    x = keras.layers.Conv2D(16, 3, activation="relu", padding="same")(inp)
    x = keras.layers.MaxPooling2D()(x)
    x = keras.layers.Conv2D(32, 3, activation="relu", padding="same", name="feat")(x)
    out = keras.layers.Dense(classes)(keras.layers.GlobalAveragePooling2D()(x))
    return keras.Model(inp, out, name="small_cnn")


def bench_model(model, n, mf_samples, sens_samples, batch_size):
    size = model_graph.input_shape(model)[1]
    rng = np.random.default_rng(0)
    x = rng.random((n, size, size, 3)).astype(np.float32)
    counter = Counter(model)
    t = metrics._scoring.targets_and_probs(model, x, None, batch_size)[0]
    ex = cams.GradCAM(model)
    maps = ex(x, t)
    ex(x, t)
    explain_time = timed(lambda: ex(x, t), 3)[0]
    noisy = [x + rng.uniform(-0.2, 0.2, x.shape).astype(np.float32) for _ in range(sens_samples)]
    sens_floor = timed(lambda: [ex(z, t) for z in noisy], 2)[0]  # the explanations a sensitivity metric needs
    masks = np.zeros((n, size, size), bool)
    masks[:, size // 4: size // 2, size // 4: 3 * size // 4] = True
    pcts = (10, 20, 30, 40, 50)
    rows = [("road MoRF 5 percentiles", lambda: metrics.road(model, x, maps, None, pcts, batch_size=batch_size),
             metrics.road_forward_passes(pcts), "forward"),
            ("road LeRF 5 percentiles", lambda: metrics.road(model, x, maps, t, pcts, order="lerf", batch_size=batch_size),
             metrics.road_forward_passes(pcts, targets_given=True), "forward"),
            (f"mufidelity {mf_samples} subsets", lambda: metrics.mufidelity(model, x, maps, t, n_samples=mf_samples, batch_size=batch_size),
             metrics.mufidelity_forward_passes(mf_samples), "forward"),
            ("ad_ic (100/50/15 %)", lambda: metrics.ad_ic(model, x, maps, batch_size=batch_size), 4, "forward"),
            ("deletion_auc 32 steps", lambda: metrics.deletion_auc(model, x, maps, t, steps=32, batch_size=batch_size), 34, "forward")]
    print(f"\n### {model.name} ({size} px, {n} images, batch {batch_size}): one explanation of {n} images "
          f"(Grad-CAM) {explain_time:.3f} s\n")
    print("| metric | stated cost / image | counted / image | time (s) | floor (s) | ratio |\n|---|---:|---:|---:|---:|---:|")
    for name, call, stated, _ in rows:
        call()  # warm (first-shape compilation of the batch sizes)
        counter.images = 0
        seconds, _ = timed(call)
        counted = counter.images / n
        floor = forward_floor(counter, x, counter.images, batch_size)
        print(f"| {name} | {stated} fwd | {counted:g} | {seconds:.3f} | {floor:.3f} | {seconds / floor:.2f}x |", flush=True)
    for name, fn in (("max_sensitivity", metrics.max_sensitivity), ("avg_sensitivity", metrics.avg_sensitivity)):
        cex = CountingExplainer(ex)
        seconds, _ = timed(lambda: fn(cex, x, maps, t, n_samples=sens_samples))
        floor = sens_floor
        print(f"| {name} {sens_samples} samples | {metrics.sensitivity_explanations(sens_samples)} expl | "
              f"{cex.images / n:g} expl | {seconds:.3f} | {floor:.3f} | {seconds / floor:.2f}x |", flush=True)
    cex = CountingExplainer(ex)
    seconds, _ = timed(lambda: metrics.random_logit(model, cex, x, maps, t))
    print(f"| random_logit | {metrics.random_logit_explanations()} expl | {cex.images / n:g} expl | {seconds:.3f} | "
          f"{explain_time:.3f} | {seconds / explain_time:.2f}x |", flush=True)
    for name, call in (("sparseness", lambda: metrics.sparseness(maps)), ("complexity", lambda: metrics.complexity(maps)),
                       ("relevance_mass", lambda: metrics.relevance_mass(maps, masks)),
                       ("relevance_rank", lambda: metrics.relevance_rank(maps, masks))):
        counter.images = 0
        seconds, _ = timed(call, 3)
        print(f"| {name} | 0 fwd | {counter.images / n:g} | {seconds:.4f} | - | {1000 * seconds / n:.2f} ms / image |")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--images", type=int, default=4)
    ap.add_argument("--mufidelity-samples", type=int, default=128)
    ap.add_argument("--sensitivity-samples", type=int, default=8)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--models", choices=("both", "small", "resnet50"), default="both")
    args = ap.parse_args(argv)
    print(f"TensorFlow {tf.__version__}, Keras {keras.__version__}, devices: "
          f"{[d.device_type for d in tf.config.list_logical_devices()]}, CPU cores: {os.cpu_count()}")
    if args.models in ("both", "small"):
        bench_model(small_cnn(), args.images, args.mufidelity_samples, args.sensitivity_samples, args.batch_size)
    if args.models in ("both", "resnet50"):
        model = keras.applications.ResNet50(weights=None, input_shape=(224, 224, 3))
        bench_model(model, args.images, args.mufidelity_samples, args.sensitivity_samples, args.batch_size)
    return 0


if __name__ == "__main__":
    sys.exit(main())
