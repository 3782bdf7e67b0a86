"""Adebayo et al.'s sanity checks ("Sanity Checks for Saliency Maps", NeurIPS 2018) on the two models
this project trains, over several training seeds; prints the Markdown table the README quotes.

Models: the Bengali digit CNN (`bengali_xai.model.build_cnn`) on the synthetic digits `bengali-xai
demo` generates (held-out fonts explained), and SimpleNet (`deepfake_xai.models.simplenet`) on
planted-face fakes drawn in memory as `deepfake-xai make-dataset` draws them (procedural faces, one
face planted into another), at a small size so the whole run fits a laptop CPU. The data are drawn
once (seed 0); each seed then trains the model, runs the cascading model-parameter randomisation
test (from the logits down, the re-initialisation seeded by the same seed) and the data
randomisation test (the architecture retrained on permuted labels for --random-epochs), and
records the similarity of every method's maps to the original ones (`cams.sanity`). The CAMs read
the layer each app explains: conv2 of the digit CNN (24 x 24), conv3 of SimpleNet.

The table gives, per model, test and method, the similarity at full randomisation (all layers
re-initialised; for the data test, the permuted-label model) as mean +- standard deviation over the
seeds. Adebayo et al. found Guided Backprop and Guided Grad-CAM maps nearly unchanged by cascading
randomisation, and Gradient, Integrated Gradients and Grad-CAM maps decorrelated.

    python scripts/reproduce_sanity.py                     # 3 seeds: 441 s of CPU time (2 cores, ~8 min idle)
    python scripts/reproduce_sanity.py --seeds 0 --digits 600 --faces 200 --epochs 1   # a quick look

Writes OUT/sanity_reproduce.json (every step of every run), OUT/<model>_curves.png (similarity
against the randomised depth, mean and spread over the seeds) and OUT/<model>_grid.png (one image's
maps as the layers are randomised, first seed); a rerun replaces its own files only.
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

METHODS = ("saliency,gradinput,integratedgradients,guidedbackprop,guidedgradcam,gradcam,gradcam++,hirescam,"
           "xgradcam,layercam,scorecam,eigencam")
MEASURES = ("spearman_abs", "spearman", "ssim", "hog")
OUTPUTS = ("sanity_reproduce.json", "digit_cnn_curves.png", "digit_cnn_grid.png", "simplenet_curves.png",
           "simplenet_grid.png")


def digit_data(n: int):
    """(x_train, y_train, x_test, y_test) of the synthetic Bengali digits (test: held-out fonts)."""
    from bengali_xai.synthetic import make_synthetic

    data = make_synthetic(n, seed=0)
    return data.x[~data.heldout], data.y[~data.heldout], data.x[data.heldout], data.y[data.heldout]


def face_data(n: int, n_test: int, size: int):
    """(x_train, y_train, x_test, y_test) planted-face images in [-1, 1], real 0 / fake 1, half each."""
    from deepfake_xai.faces import draw_face
    from deepfake_xai.make_dataset import plant_face

    rng = np.random.default_rng(0)

    def draw(count):
        x, y = np.empty((count, size, size, 3), np.float32), np.arange(count) % 2
        for i in range(count):
            img, face = draw_face(rng, size)
            if y[i]:
                donor, donor_face = draw_face(rng, size)
                img, _ = plant_face(img, face, donor, donor_face, rng)
            x[i] = img / 127.5 - 1.0
        return x, y

    return (*draw(n), *draw(n_test))


def build(kind: str, size: int):
    """A fresh compiled model: the digit CNN, or SimpleNet (logits) with Adam and sparse cross-entropy."""
    import keras

    if kind == "digit_cnn":
        from bengali_xai.model import build_cnn

        return build_cnn()
    from deepfake_xai.models import simplenet

    model = simplenet(size)
    model.compile(optimizer=keras.optimizers.Adam(1e-3),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True), metrics=["accuracy"])
    return model


def trainer(kind: str, epochs: int, batch_size: int):
    """train(model, x, y) -> final training accuracy, for `cams.sanity.data_randomisation`."""
    import keras

    def train(model, x, y):
        target = keras.utils.to_categorical(y, 10) if kind == "digit_cnn" else y
        hist = model.fit(x, target, epochs=epochs, batch_size=batch_size, shuffle=True, verbose=0)
        train.accuracy = float(hist.history["accuracy"][-1])

    return train


def one_seed(kind: str, seed: int, data, a) -> dict:
    """Train, then both randomisation tests, for one model and seed; returns the rows and timings."""
    import keras

    from cams.sanity import data_randomisation, sanity_check
    from bengali_xai.explain import default_layer
    from deepfake_xai.models import cam_layer

    x_train, y_train, x_test, y_test = data
    x_explain = x_test[: a.images]
    options = {"integratedgradients": {"steps": a.ig_steps}}
    t = time.time()
    keras.utils.set_random_seed(seed)
    model = build(kind, a.face_size)
    train = trainer(kind, a.epochs, a.batch_size)
    train(model, x_train, y_train)
    accuracy = float(np.mean(model.predict(x_test, verbose=0).argmax(1) == y_test))
    t_train = time.time() - t
    t = time.time()
    layer = default_layer(model) if kind == "digit_cnn" else cam_layer(model)  # the apps' CAM layers: conv2, conv3
    cascade = sanity_check(model, x_explain, a.methods, mode="cascading", seed=seed, layer=layer, options=options)
    t_cascade = time.time() - t
    t = time.time()
    keras.utils.set_random_seed(seed + 1000)
    permuted = trainer(kind, a.random_epochs, a.batch_size)
    data_test = data_randomisation(model, lambda: build(kind, a.face_size), permuted, x_train, y_train, x_explain,
                                   a.methods, seed=seed, layer=layer, options=options)
    t_data = time.time() - t
    grid = {m: [cascade.reference.maps[m][0], *(s.maps[m][0] for s in cascade.steps)] for m in cascade.reference.maps}
    return {"seed": seed, "test_accuracy": accuracy, "permuted_train_accuracy": permuted.accuracy,
            "cascading": cascade.table(), "data": data_test.table(), "grid": grid,
            "seconds": {"train": t_train, "cascading": t_cascade, "data": t_data}}


def summary_rows(runs: list, test: str, last_only: bool) -> tuple:
    """(mean rows, std rows) over the seeds for each (method, step) of `test`; last step only if asked."""
    keyed = {}
    for run in runs:
        rows = run[test]
        last = max(r["step"] for r in rows)
        for r in rows:
            if not last_only or r["step"] == last:
                keyed.setdefault((r["method"], r["step"], r["layer"]), []).append([r[k] for k in MEASURES])
    means, stds = [], []
    for (method, step, layer), vals in keyed.items():
        v = np.array(vals)
        sd = v.std(axis=0, ddof=1) if len(v) > 1 else np.zeros(v.shape[1])
        means.append({"method": method, "step": step, "layer": layer, **dict(zip(MEASURES, v.mean(axis=0)))})
        stds.append({"method": method, "step": step, "layer": layer, **dict(zip(MEASURES, sd))})
    return means, stds


def markdown(results: dict, seeds: list) -> str:
    """The README's table: model, test, method and each measure at full randomisation, mean +- std."""
    from cams.methods import registry

    lines = [f"| model | test | method | Spearman (abs) | Spearman (signed) | SSIM | HOG |",
             "|---|---|---|---|---|---|---|"]
    for model, runs in results.items():
        for test, label in (("cascading", "cascading, all layers"), ("data", "labels permuted")):
            means, stds = summary_rows(runs, test, last_only=True)
            for m, s in zip(means, stds):
                cells = " | ".join(f"{m[k]:.2f} ± {s[k]:.2f}" for k in MEASURES)
                lines.append(f"| {model} | {label} | {registry.title(m['method'])} | {cells} |")
    lines.append(f"\nmean ± standard deviation over seeds {', '.join(map(str, seeds))}; 1 = maps unchanged, 0 = unrelated")
    return "\n".join(lines)


def figures(out, kind: str, runs: list) -> None:
    """The curves (mean and spread over seeds) and the first seed's grid of maps."""
    from cams.methods import registry
    from cams.viz.sanity import plot_similarity_curves, save_randomisation_grid

    means, stds = summary_rows(runs, "cascading", last_only=False)
    titles = {m: registry.title(m) for m in {r["method"] for r in means}}
    plot_similarity_curves(means, out.path(f"{kind}_curves.png"), titles=titles, spread=stds,
                           title=f"{kind}: cascading randomisation, {len(runs)} seeds")
    out.record(f"{kind}_curves.png")
    layer_of = {r["step"]: r["layer"] for r in runs[0]["cascading"]}
    steps = ["original", *(layer_of[s] for s in sorted(layer_of))]
    save_randomisation_grid(runs[0]["image"], runs[0]["grid"], steps, out.path(f"{kind}_grid.png"), titles=titles)
    out.record(f"{kind}_grid.png")


def parse_args(argv):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seeds", default="0,1,2", help="training and randomisation seeds (default 0,1,2)")
    ap.add_argument("--models", default="digit_cnn,simplenet", help="digit_cnn,simplenet (default both)")
    ap.add_argument("--methods", default=METHODS, help=f"registered methods (default {METHODS})")
    ap.add_argument("--digits", type=int, default=3000, help="synthetic digits, 20%% held-out-font test (default 3000)")
    ap.add_argument("--faces", type=int, default=600, help="face training images, half fakes (default 600)")
    ap.add_argument("--face-size", type=int, default=64, help="SimpleNet's input side (default 64)")
    ap.add_argument("--epochs", type=int, default=6, help="training epochs on the true labels (default 6)")
    ap.add_argument("--random-epochs", type=int, default=20, help="epochs on the permuted labels (default 20)")
    ap.add_argument("--batch-size", type=int, default=64, help="training batch size (default 64)")
    ap.add_argument("--images", type=int, default=16, help="held-out images explained (default 16)")
    ap.add_argument("--ig-steps", type=int, default=16, help="Integrated Gradients path steps (default 16)")
    ap.add_argument("--out", default="runs/sanity_reproduce", help="output folder (default runs/sanity_reproduce)")
    return ap.parse_args(argv)


def main(argv=None) -> int:
    from cams.core.files import write_json
    from cams.core.outputs import OutputFolder

    a = parse_args(argv)
    seeds = [int(s) for s in a.seeds.split(",") if s.strip()]
    kinds = [k.strip() for k in a.models.split(",") if k.strip()]
    if not seeds or set(kinds) - {"digit_cnn", "simplenet"}:
        raise SystemExit("reproduce_sanity.py: error: --seeds needs a seed; --models takes digit_cnn,simplenet")
    out = OutputFolder(a.out, "reproduce-sanity", "scripts/reproduce_sanity.py", vars(a))
    out.claim(OUTPUTS)
    started, t0 = datetime.now(timezone.utc), time.time()
    results, info = {}, {}
    for kind in kinds:
        t = time.time()
        data = digit_data(a.digits) if kind == "digit_cnn" else face_data(a.faces, max(a.images, 64), a.face_size)
        print(f"{kind}: {len(data[0])} training images, {len(data[2])} test images ({time.time() - t:.0f} s)", flush=True)
        results[kind] = []
        for seed in seeds:
            run = one_seed(kind, seed, data, a)
            run["image"] = data[2][0]
            results[kind].append(run)
            print(f"{kind} seed {seed}: test accuracy {run['test_accuracy']:.3f}, permuted-label training accuracy "
                  f"{run['permuted_train_accuracy']:.3f}; " + ", ".join(f"{k} {v:.0f} s" for k, v in run["seconds"].items()),
                  flush=True)
        figures(out, kind, results[kind])
        info[kind] = {k: [r[k] for r in results[kind]] for k in ("test_accuracy", "permuted_train_accuracy", "seconds")}
    table = markdown(results, seeds)
    seconds = time.time() - t0
    from reproduce_numbers import machine

    record = {"date": started.isoformat(timespec="seconds"), "machine": machine(), "seconds": seconds,
              "settings": vars(a), "models": info, "table": table,
              "runs": {k: [{key: r[key] for key in ("seed", "cascading", "data")} for r in v] for k, v in results.items()}}
    write_json(out.path("sanity_reproduce.json"), record)
    out.record("sanity_reproduce.json")
    print(f"\n{record['date']} on {record['machine']}; {seconds:.0f} s in all\n")
    print(table)
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    sys.exit(main())
