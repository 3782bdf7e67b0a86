#!/usr/bin/env python
"""Benchmark cams against tf-keras-vis and xplique on the same models and inputs, in one run.

For each model and method it prints ms per image, the ratio to one compiled forward pass of the
same batch (for Score-CAM and RISE: to the forward passes the method needs), and the speed-up over
tf-keras-vis and xplique (their time / ours; > 1 means we are faster). Times are medians of
--reps runs after one warm-up run (which includes tracing/compilation for every library).

    python scripts/bench_cams.py                  # small CNN + Xception 299x299 batch 8
    python scripts/bench_cams.py --models cnn     # quick
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

import cams  # noqa: E402


def small_cnn() -> keras.Model:
    """The Bengali study's CNN (28x28x1, logits head so every library explains the same score)."""
    inp = keras.Input((28, 28, 1))
    x = keras.layers.Conv2D(32, 3, activation="relu", name="conv1")(inp)
    x = keras.layers.Conv2D(64, 3, activation="relu", name="conv2")(x)
    x = keras.layers.MaxPooling2D(2)(x)
    x = keras.layers.Dropout(0.25)(x)
    x = keras.layers.Flatten()(x)
    x = keras.layers.Dense(256, activation="relu")(x)
    return keras.Model(inp, keras.layers.Dense(10, name="logits")(x), name="small_cnn")


def xception_transfer(size: int = 299) -> keras.Model:
    """Xception (random weights) + the deepfake study's MLP head, as one flat functional graph
    (tf-keras-vis cannot reach layers inside a nested base; cams can, see the tests)."""
    inp = keras.Input((size, size, 3))
    base = keras.applications.Xception(include_top=False, weights=None, input_tensor=inp, pooling="avg")
    x = base.output
    for units in (1000, 256, 64):
        x = keras.layers.Dense(units, activation="relu")(x)
    return keras.Model(inp, keras.layers.Dense(2, name="logits")(x), name="xception_transfer")


def timed(fn, reps: int) -> float:
    """Median seconds of `reps` calls after one warm-up call."""
    fn()
    times = []
    for _ in range(reps):
        t0 = time.perf_counter()
        out = fn()
        if hasattr(out, "numpy"):
            out.numpy()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def bench_model(model, layer, x, targets, reps, score_channels, rise_masks, title, score_images=None):
    from tf_keras_vis.gradcam import Gradcam
    from tf_keras_vis.gradcam_plus_plus import GradcamPlusPlus
    from tf_keras_vis.saliency import Saliency as TkvSaliency
    from tf_keras_vis.scorecam import Scorecam
    from tf_keras_vis.utils.scores import CategoricalScore
    from xplique.attributions import GradCAM as XGradCAM
    from xplique.attributions import GradCAMPP as XGradCAMPP
    from xplique.attributions import Rise as XRise
    from xplique.attributions import Saliency as XSaliency

    n = len(x)
    xt = tf.constant(x)
    onehot = tf.one_hot(targets, model.output_shape[-1])
    score = CategoricalScore(list(targets))
    forward = tf.function(lambda v: model(v, training=False))
    t_fwd = timed(lambda: forward(xt), reps)
    print_header(title)
    print_row("forward pass (compiled)", 1000 * t_fwd / n, 1.0, None, None)

    def row(name, ours, base_cost, tkv=None, xpl=None, images=n):
        """Time ours and the references; base_cost is the forward-pass floor for `images` images."""
        t_ours = timed(ours, reps)
        t_tkv = timed(tkv, reps) if tkv else None
        t_xpl = timed(xpl, reps) if xpl else None
        print_row(name, 1000 * t_ours / images, t_ours / base_cost, t_tkv and t_tkv / t_ours, t_xpl and t_xpl / t_ours)

    gc, gcpp = cams.GradCAM(model, layer), cams.GradCAMPlusPlus(model, layer)
    row("Grad-CAM", lambda: gc(x, targets), t_fwd,
        lambda: Gradcam(model, clone=False)(score, x, penultimate_layer=layer),
        lambda: XGradCAM(model, conv_layer=layer, batch_size=n).explain(x, onehot))
    row("Grad-CAM++", lambda: gcpp(x, targets), t_fwd,
        lambda: GradcamPlusPlus(model, clone=False)(score, x, penultimate_layer=layer),
        lambda: XGradCAMPP(model, conv_layer=layer, batch_size=n).explain(x, onehot))
    sg = cams.SmoothGradCAMPlusPlus(model, layer, n_samples=8, seed=0)
    row("Smooth Grad-CAM++ (8 samples)", lambda: sg(x, targets), 9 * t_fwd)
    sal = cams.Saliency(model)
    row("Saliency", lambda: sal(x, targets), t_fwd,
        lambda: TkvSaliency(model, clone=False)(score, x),
        lambda: XSaliency(model, batch_size=n).explain(x, onehot))
    k, m = score_channels, score_images or n
    sc = cams.ScoreCAM(model, layer, batch_size=64, max_channels=k)
    xs, ts = x[:m], targets[:m]
    row(f"Score-CAM ({k} channels, {m} images)", lambda: sc(xs, ts), (k + 1) * t_fwd * m / n,
        lambda: Scorecam(model, clone=False)(CategoricalScore(list(ts)), xs, penultimate_layer=layer, max_N=k, batch_size=64),
        images=m)
    if rise_masks:
        rise = cams.RISE(model, n_masks=rise_masks, batch_size=64, seed=0)
        row(f"RISE ({rise_masks} masks)", lambda: rise(x, targets), rise_masks * t_fwd,
            xpl=lambda: XRise(model, nb_samples=rise_masks, batch_size=64).explain(x, onehot))


def print_header(title):
    print(f"\n### {title}\n")
    print("| method | ms / image | x cost floor | speed-up vs tf-keras-vis | speed-up vs xplique |")
    print("|---|---:|---:|---:|---:|", flush=True)


def print_row(name, ms, ratio, tkv, xpl):
    fmt = lambda v: "-" if v is None else f"{v:.2f}x"  # noqa: E731
    print(f"| {name} | {ms:.1f} | {ratio:.2f} | {fmt(tkv)} | {fmt(xpl)} |", flush=True)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", default="cnn,xception", help="comma list of cnn,xception (default both)")
    ap.add_argument("--reps", type=int, default=3, help="timed runs per measurement (median reported)")
    ap.add_argument("--batch", type=int, default=8, help="images per batch for Xception (default 8)")
    args = ap.parse_args(argv)
    rng = np.random.default_rng(0)
    print(f"TensorFlow {tf.__version__}, Keras {keras.__version__}, devices: "
          f"{[d.device_type for d in tf.config.list_physical_devices()]}")
    for name in args.models.split(","):
        if name == "cnn":
            model, layer, n = small_cnn(), "conv2", 32
            x = rng.random((n, 28, 28, 1), dtype=np.float32)
            bench_model(model, layer, x, rng.integers(0, 10, n), args.reps, score_channels=64, rise_masks=500,
                        title=f"Small CNN (Bengali study), 28x28x1, batch {n}")
        elif name == "xception":
            model, layer, n = xception_transfer(), "block14_sepconv2_act", args.batch
            x = rng.random((n, 299, 299, 3), dtype=np.float32)
            bench_model(model, layer, x, rng.integers(0, 2, n), args.reps, score_channels=8, rise_masks=0,
                        title=f"Xception transfer model (random weights), 299x299, batch {n}", score_images=2)
        else:
            print(f"error: unknown model {name!r}; choose from cnn, xception", file=sys.stderr)
            return 2
    print("\n'x cost floor' = our time / the forward passes the method needs (1 pass for gradient methods, "
          "9 for Smooth Grad-CAM++ with 8 samples, K+1 for Score-CAM, n_masks for RISE); "
          "speed-up = their time / ours.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
