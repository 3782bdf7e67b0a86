"""L-CAM training speed and memory, ratios measured in one run.

    python scripts/bench_lcam_train.py                  # speed: small CNN and ResNet50, both modes
    python scripts/bench_lcam_train.py --old /tmp/old_lcam.py   # + the hand-written loop it replaced
    python scripts/bench_lcam_train.py --memory 2000,20000      # peak RSS of `cams lcam-train` on JPEG folders
    python scripts/bench_lcam_train.py --models small_cnn --steps-per-execution 1,auto   # one column each

Speed: images/s of `cams.LCAM.train` (Keras fit) in steady state, against its floor: the passes one
training step needs, compiled in one tf.function on the same model and batch:
    L-CAM-Img: 2 forward passes + the backward pass through the second one (input-side gradient);
    L-CAM-Fm:  1 forward pass + the backward pass through the head (labels from the data set).
ratio = floor images/s / L-CAM images/s (1.0 = no overhead beyond the passes), one column per
--steps-per-execution value (an int, or "auto": the k LCAM.train chose is printed). All are timed
the same way: the best epoch (--steps batches) after the first (tracing and warm-up excluded), by
LCAM.train's own images/s log, by a timer in place of the old hand-written loop's progress bar
(`git show 2346014:cams/methods/lcam/__init__.py > /tmp/old_lcam.py`), and by timing --steps calls
of the floor step.
Each is run in --rounds interleaved rounds and the best round is kept (other load on the machine
only slows a round down). L-CAM's step also runs the attention conv (K -> 1000 classes) and the
loss, which the floor leaves out; with --steps 6, costs paid once per epoch (Keras' epoch-end work,
a new tf.data iterator when the data is a Dataset) weigh more than in a long epoch (--steps 48).

Memory: generates N small JPEGs in ImageNet's layout in a temporary folder (outside the repo), runs
`cams lcam-train --images DIR --max-images n` for each n in a child process and reports its peak RSS.
"""
from __future__ import annotations

import argparse
import importlib.util
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np


def small_cnn(size=224, classes=1000):
    import keras

    inp = keras.Input((size, size, 3))
    x = inp
    for filters in (16, 32, 64, 128):
        x = keras.layers.Conv2D(filters, 3, strides=2, padding="same", activation="relu")(x)
    x = keras.layers.Conv2D(128, 3, padding="same", activation="relu", name="feat")(x)
    out = keras.layers.Dense(classes)(keras.layers.GlobalAveragePooling2D()(x))
    return keras.Model(inp, out, name="small_cnn")


def resnet50(size=224):
    import keras

    return keras.applications.ResNet50(weights=None, input_shape=(size, size, 3))


def floor_step(model, layer, mode):
    """The passes one step needs, with gradients to a stand-in for the attention mask."""
    import tensorflow as tf

    from cams.core.model_graph import forward

    @tf.function
    def img(x):
        A, _ = forward(model, x, layer)
        u = tf.ones_like(x) + 0.0 * tf.reduce_mean(tf.cast(A, tf.float32))
        with tf.GradientTape() as tape:
            tape.watch(u)
            _, logits = forward(model, x * u)
            s = tf.reduce_sum(tf.cast(logits, tf.float32))
        return tape.gradient(s, u)

    @tf.function
    def fm(x):
        with tf.GradientTape() as tape:
            masks = []

            def replace(A):
                m = tf.ones_like(A[..., :1], tf.float32)
                tape.watch(m)
                masks.append(m)
                return tf.cast(A, tf.float32) * m

            _, logits = forward(model, x, layer, replace=replace)
            s = tf.reduce_sum(tf.cast(logits, tf.float32))
        return tape.gradient(s, masks[0])

    return img if mode == "img" else fm


def floor_rate(model, layer, mode, x, batch, steps, epochs):
    """Best images/s of the floor step over `epochs` runs of `steps` calls on batches of x (each call
    synchronised, as a training step with a per-batch log is), the first run not counted."""
    import tensorflow as tf

    step = floor_step(model, layer, mode)
    batches = [tf.constant(x[i : i + batch]) for i in range(0, batch * steps, batch)]
    rates = []
    for _ in range(epochs):
        t0 = time.perf_counter()
        for xb in batches:
            step(xb).numpy()
        rates.append(batch * steps / (time.perf_counter() - t0))
    return max(rates[1:])


def new_rate(model, data, mode, labels, batch, epochs, steps_per_execution=1):
    """(best images/s over epochs 2.. of `cams.LCAM.train` (its own per-epoch images/s log), the
    steps_per_execution it used)."""
    import cams

    lc = cams.LCAM.train(model, data, mode=mode, labels=labels, epochs=epochs, batch_size=batch, verbose=0,
                         steps_per_execution=steps_per_execution)
    return max(lc.history["images/s"][1:]), lc.settings["steps_per_execution"]


def old_rate(old, model, data, mode, labels, batch, epochs):
    """Best images/s over epochs 2.. of the old loop: its progress bar is replaced by a timer."""
    rates = []

    class Progress:
        def __init__(self, iterable, total, desc, enabled):
            self.iterable = iterable

        def __iter__(self):
            t0, n = time.perf_counter(), 0
            for x, y in self.iterable:
                n += int(x.shape[0])
                yield x, y
            rates.append(n / (time.perf_counter() - t0))

        def set_postfix(self, **kwargs):
            pass

    old._progress = Progress
    old.LCAM.train(model, data, mode=mode, labels=labels, epochs=epochs, batch_size=batch, verbose=False)
    return max(rates[1:])


def bench_model(name, model, args, old):
    import cams
    import cams.core.model_graph

    layer = cams.core.model_graph.resolve_layer(model, None)
    rng = np.random.default_rng(0)
    n = args.batch * args.steps
    x = rng.random((n, 224, 224, 3), dtype=np.float32)
    y = rng.integers(0, 1000, n)
    rows = []
    for mode in ("img", "fm"):
        labels = "model" if mode == "img" else "dataset"
        data = x if labels == "model" else (x, y)
        b, best, chosen = args.batch, {}, {}
        for _ in range(args.rounds):  # interleaved rounds, best of each: robust to other load on the machine
            runs = {"floor": lambda: floor_rate(model, layer, mode, x, b, args.steps, args.epochs)}
            for spe in args.spe:
                runs[spe] = lambda spe=spe: new_rate(model, data, mode, labels, b, args.epochs, spe)
            if old is not None:
                runs["old"] = lambda: old_rate(old, model, data, mode, labels, b, args.epochs)
            for key, run in runs.items():
                rate = run()
                if isinstance(rate, tuple):
                    rate, chosen[key] = rate
                best[key] = max(best.get(key, 0.0), rate)
        row = {"model": name, "mode": mode, "spe": args.spe, "chosen": chosen, **best}
        rows.append(row)
        print(_row(row), flush=True)
    return rows


def _row(r):
    s = f"| {r['model']} | L-CAM-{'Img' if r['mode'] == 'img' else 'Fm'} | {r['floor']:.1f} |"
    for spe in r["spe"]:
        s += f" {r[spe]:.1f} (k={r['chosen'][spe]}) | {r['floor'] / r[spe]:.2f}x |"
    if "old" in r:
        new = r[r["spe"][-1]]
        s += f" {r['old']:.1f} | {r['floor'] / r['old']:.2f}x | {new / r['old']:.2f}x |"
    return s


def load_old(path):
    spec = importlib.util.spec_from_file_location("old_lcam", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def speed(args):
    old = load_old(args.old) if args.old else None
    print(f"batch {args.batch}, {args.steps} steps per epoch, 224x224, random weights, best of {args.rounds} "
          f"rounds; images/s (k: steps per execution used); load average {os.getloadavg()[0]:.2f}")
    head = "| model | method | floor |" + "".join(f" fit, spe={spe} | / floor |" for spe in args.spe)
    print(head + (" old loop | old / floor | new vs old speed |" if old else ""))
    print("|---" * (3 + 2 * len(args.spe) + (3 if old else 0)) + "|")
    for name in args.models.split(","):
        bench_model(name, small_cnn() if name == "small_cnn" else resnet50(), args, old)


def make_jpegs(root: Path, n: int, classes: int = 100, size: int = 48):
    from PIL import Image

    rng = np.random.default_rng(0)
    for i in range(n):
        folder = root / f"n{i % classes:08d}"
        folder.mkdir(parents=True, exist_ok=True)
        Image.fromarray(rng.integers(0, 255, (size, size, 3), dtype=np.uint8)).save(folder / f"{i}.JPEG", quality=80)


def memory(args):
    import keras

    counts = [int(c) for c in args.memory.split(",")]
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        t0 = time.perf_counter()
        make_jpegs(tmp / "train", max(counts))
        print(f"generated {max(counts)} JPEGs (48x48, 100 class folders) in {time.perf_counter() - t0:.0f} s")
        keras.utils.set_random_seed(0)
        small_cnn(size=64, classes=100).save(tmp / "m.keras")
        print("| images | steps | peak RSS (MiB) | wall s |\n|---|---|---|---|")
        few = -(-min(counts) // 32)
        # every folder size for one epoch, then the largest for as many steps as the smallest took:
        # separates what grows with the number of files from what grows with the number of steps
        for n, steps in [(n, -(-n // 32)) for n in counts] + [(max(counts), few)]:
            code = ("import resource, sys; from cams.cli import main; rc = main(sys.argv[1:]); "
                    "print('RSS', resource.getrusage(resource.RUSAGE_SELF).ru_maxrss); sys.exit(rc)")
            cmd = [sys.executable, "-c", code, "lcam-train", "--model", str(tmp / "m.keras"), "--images",
                   str(tmp / "train"), "--max-images", str(n), "--epochs", "1", "--batch-size", "32",
                   "--steps-per-epoch", str(steps), "--labels", "dataset", "--mode", "fm",
                   "--out", str(tmp / f"l{n}.npz"), "-q"]
            t0 = time.perf_counter()
            proc = subprocess.run(cmd, capture_output=True, text=True)
            if proc.returncode != 0:
                raise SystemExit(proc.stderr[-2000:])
            rss = int([ln for ln in proc.stdout.splitlines() if ln.startswith("RSS ")][-1].split()[1]) / 1024
            print(f"| {n} | {steps} | {rss:.0f} | {time.perf_counter() - t0:.0f} |", flush=True)


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--models", default="small_cnn,resnet50", help="comma list of small_cnn, resnet50")
    p.add_argument("--batch", type=int, default=4)
    p.add_argument("--steps", type=int, default=6, help="steps per epoch")
    p.add_argument("--steps-per-execution", default="1,auto",
                   help="comma list of LCAM.train steps_per_execution values, ints or auto (default 1,auto)")
    p.add_argument("--epochs", type=int, default=3, help="epochs per training run (the first is not timed)")
    p.add_argument("--rounds", type=int, default=2, help="interleaved rounds; the best is kept")
    p.add_argument("--old", default=None, help="the old cams/methods/lcam/__init__.py (from git history)")
    p.add_argument("--memory", default=None, help="comma list of image counts: measure peak RSS instead of speed")
    args = p.parse_args()
    args.spe = [v if v == "auto" else int(v) for v in args.steps_per_execution.split(",")]
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    if args.memory:
        memory(args)
    else:
        speed(args)


if __name__ == "__main__":
    main()
