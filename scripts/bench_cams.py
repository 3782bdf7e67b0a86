#!/usr/bin/env python
"""Benchmark every registered cams method, and tf-keras-vis / xplique where they have the method,
on the same models and inputs, in one run.

The method list is the registry (`cams.methods.registry.methods()`); methods that need a
trained file (L-CAM) or a second network (Feature CAM's edge detector) are listed as skipped with the
reason. For each method it prints ms per image, its cost floor from `explainer.forward_passes()`
(in compiled forward passes of the same batch, timed alternately with the method so both see the
same load on a shared machine; for Ablation-CAM one forward plus K passes through the head only,
timed separately), our time / that floor, and the speed-up over tf-keras-vis and
xplique (their time / ours; > 1 means we are faster). Times are medians of --reps runs after one
warm-up run (which includes tracing/compilation for every library).

    python scripts/bench_cams.py                  # small CNN + Xception 299x299 batch 8
    python scripts/bench_cams.py --models cnn     # quick
    python scripts/bench_cams.py --models vit     # keras_hub ViT-B/16 config, 224x224 (pip install keras-hub)
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

from cams.core import model_graph, sublayers  # noqa: E402
from cams.methods import registry  # noqa: E402

def skip_reason(method):
    """Why a method is not timed here (it needs training first, or runs a second network), or None."""
    if method.trained_file:
        return "needs training first; its inference is one forward pass (see the L-CAM Table 1 study)"
    if method.second_network:
        return f"base CAM + {method.second_network}: not a cost of the classifier"
    return None


def vit_b16(size: int = 224) -> keras.Model:
    """keras_hub's ViT-B/16 classifier config (12 blocks, 12 heads, width 768), random weights, 10 classes,
    no preprocessor (so its compiled forward pass is the same computation the explainers run)."""
    import keras_hub

    backbone = keras_hub.models.ViTBackbone(image_shape=(size, size, 3), patch_size=16, num_layers=12, num_heads=12,
                                            hidden_dim=768, mlp_dim=3072)
    return keras_hub.models.ViTImageClassifier(backbone=backbone, num_classes=10, preprocessor=None, name="vit_b16")


def vit_plan(batch):
    def plan(name, method):
        """ViT-B/16: perturbation methods on 1 image with few channels or masks."""
        table = {"smoothgradcam++": ({"n_samples": 2}, batch), "scorecam": ({"max_channels": 8}, 1),
                 "rise": ({"n_masks": 16}, 1), "ablationcam": ({"batch_size": 32}, 1),
                 "integratedgradients": ({"steps": 4}, 1)}
        return table.get(name, ({}, batch))

    return plan


#: the methods timed on the ViT by default (the others share these code paths and are slow on a CPU)
VIT_METHODS = "gradcam,gradcam++,layercam,eigencam,saliency,rollout,gradattention"


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


def small_cnn_gap() -> keras.Model:
    """The small CNN with a GlobalAveragePooling2D -> Dense head (for CAM, which needs one)."""
    inp = keras.Input((28, 28, 1))
    x = keras.layers.Conv2D(32, 3, activation="relu", name="conv1")(inp)
    x = keras.layers.Conv2D(64, 3, activation="relu", name="conv2")(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    return keras.Model(inp, keras.layers.Dense(10, name="logits")(x), name="small_cnn_gap")


def xception_classifier(size: int = 299) -> keras.Model:
    """Keras' Xception classifier (GAP -> Dense softmax head, random weights, 2 classes), for CAM."""
    return keras.applications.Xception(include_top=True, weights=None, input_shape=(size, size, 3), classes=2)


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


def timed_with_forward(fn, forward, reps: int):
    """(median seconds of fn, median seconds of forward), the two timed alternately after a warm-up,
    so both see the same load on a shared machine."""
    fn()
    forward()
    ours, fwd = [], []
    for _ in range(reps):
        for fun, out in ((fn, ours), (forward, fwd)):
            t0 = time.perf_counter()
            result = fun()
            if hasattr(result, "numpy"):
                result.numpy()
            out.append(time.perf_counter() - t0)
    return statistics.median(ours), statistics.median(fwd)


def references(model, layer, x, targets):
    """{method name: (tf-keras-vis call or None, xplique call or None)} for the methods they have."""
    from tf_keras_vis.gradcam import Gradcam
    from tf_keras_vis.gradcam_plus_plus import GradcamPlusPlus
    from tf_keras_vis.layercam import Layercam
    from tf_keras_vis.saliency import Saliency as TkvSaliency
    from tf_keras_vis.scorecam import Scorecam
    from tf_keras_vis.utils.scores import CategoricalScore
    from xplique.attributions import GradCAM as XGradCAM
    from xplique.attributions import GradCAMPP as XGradCAMPP
    from xplique.attributions import Rise as XRise
    from xplique.attributions import GradientInput as XGradientInput
    from xplique.attributions import GuidedBackprop as XGuidedBackprop
    from xplique.attributions import IntegratedGradients as XIntegratedGradients
    from xplique.attributions import Saliency as XSaliency

    n = len(x)
    onehot = tf.one_hot(targets, model.output_shape[-1])
    score = CategoricalScore(list(targets))
    return {
        "gradcam": (lambda: Gradcam(model, clone=False)(score, x, penultimate_layer=layer),
                    lambda: XGradCAM(model, conv_layer=layer, batch_size=n).explain(x, onehot)),
        "gradcam++": (lambda: GradcamPlusPlus(model, clone=False)(score, x, penultimate_layer=layer),
                      lambda: XGradCAMPP(model, conv_layer=layer, batch_size=n).explain(x, onehot)),
        "layercam": (lambda: Layercam(model, clone=False)(score, x, penultimate_layer=layer), None),
        "saliency": (lambda: TkvSaliency(model, clone=False)(score, x),
                     lambda: XSaliency(model, batch_size=n).explain(x, onehot)),
        "scorecam": (lambda xs, ts, k: Scorecam(model, clone=False)(CategoricalScore(list(ts)), xs, penultimate_layer=layer,
                                                                    max_N=k, batch_size=64), None),
        "rise": (None, lambda xs, ts, m: XRise(model, nb_samples=m, batch_size=64).explain(xs, tf.one_hot(ts, model.output_shape[-1]))),
        "gradinput": (None, lambda: XGradientInput(model, batch_size=n).explain(x, onehot)),
        "guidedbackprop": (None, lambda: XGuidedBackprop(model, batch_size=n).explain(x, onehot)),
        "integratedgradients": (None, lambda xs, ts, m: XIntegratedGradients(model, steps=m, batch_size=64, baseline_value=0.0)
                                .explain(xs, tf.one_hot(ts, model.output_shape[-1]))),
    }


def head_pass_seconds(model, layer, x, reps, copies=64) -> float:
    """Seconds of one pass of one feature map through the head (the layers after `layer`)."""
    head = model_graph.head_model(model, model_graph.resolve_layer(model, layer))
    if head is None:
        return float("nan")
    A, _ = model_graph.forward(model, tf.constant(x[:1]), model_graph.resolve_layer(model, layer))
    batch = tf.repeat(A, copies, axis=0)
    fn = tf.function(lambda a: model_graph.forward(head, a)[1])
    return timed(lambda: fn(batch), reps) / copies


def gap_head_row(name, method, gap_model, layer, x, targets, reps):
    """A method that needs a GAP -> Dense head (CAM), timed on `gap_model` against its own forward pass."""
    forward = tf.function(lambda v: gap_model(v, training=False))
    ex = method.make(gap_model, layer=layer)
    t_ours, t_fwd = (t / len(x) for t in timed_with_forward(lambda: ex(x, targets), lambda: forward(tf.constant(x)), reps))
    print_row(f"{method.title} (on {gap_model.name}: forward {1000 * t_fwd:.1f} ms / image, {len(x)} images)",
              1000 * t_ours, f"{ex.forward_passes():g}", t_ours / (ex.forward_passes() * t_fwd), None, None)


def bench_model(model, layer, x, targets, reps, title, plan, gap_model=None, only=None, with_references=True):
    """Time every registered method on (x, targets); `plan` gives per-method options and image counts;
    a method that refuses the model's head (CAM) runs on `gap_model`, the same trunk with a GAP head.
    Methods that read attention layers run only on a model that has them."""
    n = len(x)
    forward = tf.function(lambda v: model(v, training=False))
    t_fwd = timed(lambda: forward(tf.constant(x)), reps) / n  # seconds per image
    refs = references(model, layer, x, targets) if with_references else {}
    has_attention = bool(sublayers.attention_layers(model))
    print_header(title)
    print_row("forward pass (compiled)", 1000 * t_fwd, "1", 1.0, None, None)
    for name, method in registry.methods().items():
        if only is not None and name not in only:
            continue
        if skip_reason(method):
            print(f"| {method.title} | skipped: {skip_reason(method)} | | | | |", flush=True)
            continue
        if method.attention and not has_attention:
            continue
        options, m = plan(name, method)
        xs, ts = x[:m], targets[:m]
        try:
            ex = method.make(model, layer=layer, seed=0, **options)
        except ValueError as err:
            if gap_model is None:
                raise
            print(f"<!-- {method.title} on {model.name}: {err} -->", flush=True)
            gap_head_row(name, method, gap_model, None, x, targets, reps)
            continue
        passes = ex.forward_passes()
        t_ours, t_near = timed_with_forward(lambda: ex(xs, ts), lambda: forward(tf.constant(x)), reps)
        t_ours, t_near = t_ours / m, t_near / n  # the forward pass timed beside this method
        floor, floor_text = passes * t_near, f"{passes:g}"
        if name == "ablationcam":
            t_head = head_pass_seconds(model, layer, x, reps)
            floor, floor_text = t_near + (passes - 1) * t_head, f"1 + {passes - 1:g} head"
        tkv, xpl = refs.get(name, (None, None))
        extra = {"scorecam": options.get("max_channels"), "rise": options.get("n_masks"),
                 "integratedgradients": options.get("steps")}.get(name)
        if extra is not None:  # the references take the same channel / mask count and image subset
            tkv = tkv and (lambda f=tkv: f(xs, ts, extra))
            xpl = xpl and (lambda f=xpl: f(xs, ts, extra))
        t_tkv = tkv and timed(tkv, reps) / m
        t_xpl = xpl and timed(xpl, reps) / m
        label = f"{method.title} ({describe(options)}{', ' if options else ''}{m} images)"
        print_row(label, 1000 * t_ours, floor_text, t_ours / floor, t_tkv and t_tkv / t_ours, t_xpl and t_xpl / t_ours)
    return t_fwd


def describe(options) -> str:
    return ", ".join(f"{k}={v}" for k, v in options.items() if k != "seed")


def print_header(title):
    print(f"\n### {title}\n")
    print("| method | ms / image | cost floor (forward passes) | x cost floor | speed-up vs tf-keras-vis | speed-up vs xplique |")
    print("|---|---:|---:|---:|---:|---:|", flush=True)


def print_row(name, ms, floor_text, ratio, tkv, xpl):
    fmt = lambda v: "-" if v is None else f"{v:.2f}x"  # noqa: E731
    print(f"| {name} | {ms:.1f} | {floor_text} | {ratio:.2f} | {fmt(tkv)} | {fmt(xpl)} |", flush=True)


def cnn_plan(name, method):
    """Options and image count per method for the small CNN (64 feature channels, batch 32)."""
    table = {"smoothgradcam++": ({"n_samples": 8}, 32), "scorecam": ({"max_channels": 64}, 32),
             "rise": ({"n_masks": 500}, 32), "sscam": ({"max_channels": 16, "n_samples": 4}, 8),
             "iscam": ({"max_channels": 16, "n_steps": 4}, 8), "ablationcam": ({}, 32),
             "integratedgradients": ({"steps": 16}, 8)}
    return table.get(name, ({}, 32))


def xception_plan(batch):
    def plan(name, method):
        """Xception (2048 channels): perturbation methods on 2 images with few channels or masks."""
        table = {"smoothgradcam++": ({"n_samples": 8}, batch), "scorecam": ({"max_channels": 8}, 2),
                 "rise": ({"n_masks": 16}, 2), "sscam": ({"max_channels": 8, "n_samples": 2}, 2),
                 "iscam": ({"max_channels": 8, "n_steps": 2}, 2), "ablationcam": ({"batch_size": 256}, 2),
                 "integratedgradients": ({"steps": 4}, 2)}
        return table.get(name, ({}, batch))

    return plan


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", default="cnn,xception", help="comma list of cnn,xception,vit (default cnn,xception)")
    ap.add_argument("--reps", type=int, default=3, help="timed runs per measurement (median reported)")
    ap.add_argument("--batch", type=int, default=8, help="images per batch for Xception (default 8)")
    ap.add_argument("--methods", default=None, help="comma list of registered methods (default: all)")
    args = ap.parse_args(argv)
    only = registry.parse_methods(args.methods) if args.methods else None
    rng = np.random.default_rng(0)
    print(f"TensorFlow {tf.__version__}, Keras {keras.__version__}, {os.cpu_count()} CPUs, devices: "
          f"{[d.device_type for d in tf.config.list_physical_devices()]}")
    for name in args.models.split(","):
        if name == "cnn":
            x = rng.random((32, 28, 28, 1), dtype=np.float32)
            bench_model(small_cnn(), "conv2", x, rng.integers(0, 10, 32), args.reps,
                        "Small CNN (Bengali study), 28x28x1, batch 32", cnn_plan, gap_model=small_cnn_gap(), only=only)
        elif name == "xception":
            x = rng.random((args.batch, 299, 299, 3), dtype=np.float32)
            bench_model(xception_transfer(), "block14_sepconv2_act", x, rng.integers(0, 2, args.batch), args.reps,
                        f"Xception transfer model (random weights), 299x299, batch {args.batch}", xception_plan(args.batch),
                        gap_model=xception_classifier(), only=only)
        elif name == "vit":
            x = rng.random((args.batch, 224, 224, 3), dtype=np.float32)
            bench_model(vit_b16(), None, x, rng.integers(0, 10, args.batch), args.reps,
                        f"keras_hub ViT-B/16 config (random weights), 224x224, batch {args.batch}; Grad-CAM family "
                        "through the captured sublayer vit_encoder/transformer_block_12/ln_1", vit_plan(args.batch),
                        only=only or registry.parse_methods(VIT_METHODS), with_references=False)
        else:
            print(f"error: unknown model {name!r}; choose from cnn, xception, vit", file=sys.stderr)
            return 2
    print("\n'cost floor' = explainer.forward_passes() (1 for one-pass methods, n_samples + 1 for Smooth Grad-CAM++, "
          "K + 1 for Score-CAM, 1 + K n for SS-CAM / IS-CAM, n_masks + 1 for RISE; Ablation-CAM: 1 forward + K head passes, "
          "the head pass timed on its own); 'x cost floor' = our time / the floor's time; speed-up = their time / ours.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
