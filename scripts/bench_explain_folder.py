#!/usr/bin/env python
"""Benchmark `cams explain-folder` on a real-sized model: fixed cost and marginal cost per image.

The script saves a keras.applications model with random weights (`--model resnet50`: 224 px,
`xception`: 299 px, `small`: a 3-block CNN at 224 px), writes JPEGs of the model's input size, and
times, each in a fresh process (imports, model load, tracing included, as a user runs them):

    forward   the floor: the same decoding (local.image_stream) + a compiled forward pass per batch
    predict   the same decoding + keras `model.predict`
    explain   `python -m cams explain-folder` with 1 method (gradcam) and with 4
              (gradcam,gradcam++,hirescam,layercam)
    beam      the same with `--runner DirectRunner` (only with --beam)

at two folder sizes (`--images 64,256`). With t(n) = fixed + n * marginal, the two runs give each
row's marginal cost per image, (t(n2) - t(n1)) / (n2 - n1), and its fixed cost, t(n1) - n1 * marginal.
It prints a Markdown table and the ratios the targets are set on:

    explain marginal / forward marginal               (target <= 1.25, Grad-CAM)
    predict marginal / explain marginal               (model.predict's throughput share, target >= 1.0)
    explain fixed - predict fixed                     (target <= 3 s)
    4 methods marginal / forward marginal             (target <= 1.5)
    beam time / explain time at the larger size       (target <= 1.3)

The load average before and after is printed: on a shared machine, compare ratios from one run.

    python scripts/bench_explain_folder.py --model resnet50                 # 64 and 256 images
    python scripts/bench_explain_folder.py --model small --images 32,128 --beam
    python scripts/bench_explain_folder.py --model resnet50 --images 64,512 --beam --rounds 2
    python scripts/bench_explain_folder.py --model resnet50 --rows forward,explain1 --explain-args="--maps-layout shards --jit"
"""
from __future__ import annotations

import argparse
import json
import os
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

METHODS_1, METHODS_4 = "gradcam", "gradcam,gradcam++,hirescam,layercam"
SIDES = {"resnet50": 224, "xception": 299, "small": 224}


def build_model(name: str):
    """The benchmark's classifier: a keras.applications model with random weights, or a 3-block CNN."""
    import keras

    keras.utils.set_random_seed(0)
    if name == "resnet50":
        return keras.applications.ResNet50(weights=None)
    if name == "xception":
        return keras.applications.Xception(weights=None)
    inp = keras.Input((SIDES["small"], SIDES["small"], 3))
    x = inp
    for i, filters in enumerate((16, 32, 64)):
        x = keras.layers.Conv2D(filters, 3, padding="same", activation="relu", name=f"conv{i + 1}")(x)
        x = keras.layers.MaxPooling2D(2)(x) if i < 2 else x
    x = keras.layers.GlobalAveragePooling2D()(x)
    return keras.Model(inp, keras.layers.Dense(10, activation="softmax")(x), name="bench_cnn")


def make_images(folder: Path, n: int, side: int, seed: int = 0) -> None:
    """`n` smooth random RGB JPEGs, `side` pixels a side, 100 per subfolder."""
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(seed)
    for i in range(n):
        small = rng.integers(0, 255, (8, 8, 3), dtype=np.uint8)
        sub = folder / f"{i // 100:03d}"
        sub.mkdir(parents=True, exist_ok=True)
        Image.fromarray(small).resize((side, side), Image.BILINEAR).save(sub / f"{i:05d}.jpg", quality=90)


def run_stream(kind: str, model_path: str, folder: str, batch_size: int) -> None:
    """In a fresh process: decode the folder and run the compiled forward pass ('forward') or model.predict."""
    import tensorflow as tf

    from cams.core.images import list_images
    from cams.core.model_io import load_keras_model
    from cams.distributed.local import image_stream

    model = load_keras_model(model_path)
    _, h, w, c = model.input_shape
    images = image_stream(list_images([Path(folder)]), (h, w), c, batch_size=batch_size).map(lambda i, x, why: x)
    if kind == "predict":
        model.predict(images, verbose=0)
        return
    forward = tf.function(lambda x: model(x, training=False), input_signature=[tf.TensorSpec((None, h, w, c))])
    for x in images:
        forward(x).numpy()


def timed(cmd, env=None) -> float:
    """Wall seconds of a command run to completion (its output shown only when it fails)."""
    t = time.perf_counter()
    done = subprocess.run(cmd, capture_output=True, text=True, env=env)
    secs = time.perf_counter() - t
    if done.returncode:
        sys.exit(f"{' '.join(map(str, cmd))} failed ({done.returncode}):\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}")
    return secs


#: --rows names -> row names
ROWS = {"forward": "forward", "predict": "predict", "explain1": "explain, 1 method", "explain4": "explain, 4 methods",
        "jit": "explain, 1 method, --jit", "beam": "beam DirectRunner, 1 method"}


def row_kinds(args) -> list:
    """The rows to time, in order (--rows, or all but beam unless --beam)."""
    if args.rows:
        unknown = [r for r in args.rows.split(",") if r not in ROWS]
        if unknown:
            sys.exit(f"--rows: unknown row {unknown[0]!r}; choose from {', '.join(ROWS)}")
        return [ROWS[r] for r in ROWS if r in args.rows.split(",")]
    return [ROWS[r] for r in ("forward", "predict", "explain1", "explain4")] + ([ROWS["beam"]] if args.beam else [])


def rows_for(args, root: Path, model_path: Path, n: int, kind: str) -> dict:
    """{row name: seconds} of one row (`row_kinds`) for one folder size, in a fresh process."""
    folder = root / f"imgs{n}"
    me = [sys.executable, os.path.abspath(__file__), "--stream"]
    explain = [sys.executable, "-m", "cams", "explain-folder", "--model", str(model_path), "--images", str(folder),
               "--batch-size", str(args.batch_size), *([] if args.overlays else ["--no-overlays"]),
               *shlex.split(args.explain_args)]
    if kind in ("forward", "predict"):
        return {kind: timed(me + [kind, str(model_path), str(folder), str(args.batch_size)])}
    methods = METHODS_4 if "4 methods" in kind else METHODS_1
    out = root / f"{kind.split()[0].strip(',')}-{methods.count(',') + 1}-{n}"
    beam = ["--runner", "DirectRunner", *shlex.split(args.beam_args)] if kind.startswith("beam") else []
    jit = ["--jit"] if kind.endswith("--jit") and "--jit" not in args.explain_args else []
    out = Path(str(out) + "-jit" * bool(jit))
    shutil.rmtree(out, ignore_errors=True)  # every round explains from scratch (a rerun would resume)
    return {kind: timed(explain + ["--methods", methods, "--out", str(out), *beam, *jit])}


def table(sizes, results: dict) -> str:
    """The Markdown table: per row, seconds at each size, fixed seconds and marginal ms per image."""
    n1, n2 = sizes
    lines = [f"| run | {n1} images (s) | {n2} images (s) | fixed (s) | marginal (ms/image) | images/s (marginal) |",
             "|---|---:|---:|---:|---:|---:|"]
    for name in results[n1]:
        t1, t2 = results[n1][name], results[n2][name]
        marginal = (t2 - t1) / (n2 - n1)
        lines.append(f"| {name} | {t1:.1f} | {t2:.1f} | {t1 - n1 * marginal:.1f} | {1000 * marginal:.1f} | "
                     f"{1 / marginal if marginal > 0 else float('inf'):.1f} |")
    return "\n".join(lines)


def ratios(sizes, results: dict) -> str:
    """The target ratios as Markdown lines."""
    n1, n2 = sizes

    def marginal(name):
        return (results[n2][name] - results[n1][name]) / (n2 - n1)

    def fixed(name):
        return results[n1][name] - n1 * marginal(name)

    have = set(results[n2])
    one, four, beam = ROWS["explain1"], ROWS["explain4"], ROWS["beam"]
    checks = [({"forward", one}, lambda: f"- explain (Grad-CAM) marginal / forward marginal: "
                                         f"{marginal(one) / marginal('forward'):.2f} (target <= 1.25)"),
              ({"predict", one}, lambda: f"- model.predict throughput share (predict marginal / explain marginal): "
                                         f"{marginal('predict') / marginal(one):.2f} (target >= 1.0)"),
              ({"predict", one}, lambda: f"- explain fixed - predict fixed: {fixed(one) - fixed('predict'):+.1f} s "
                                         f"(target <= +3 s)"),
              ({"forward", four}, lambda: f"- explain (4 methods) marginal / forward marginal: "
                                          f"{marginal(four) / marginal('forward'):.2f} (target <= 1.5)"),
              ({"forward", ROWS["jit"]}, lambda: f"- explain (Grad-CAM) with XLA (--jit) marginal / forward marginal: "
                                                 f"{marginal(ROWS['jit']) / marginal('forward'):.2f}"),
              ({beam, one}, lambda: f"- beam / single process at {n2} images: "
                                    f"{results[n2][beam] / results[n2][one]:.2f} (target <= 1.3)")]
    return "\n".join(line() for need, line in checks if need <= have)


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--stream":
        kind, model_path, folder, batch = sys.argv[2:6]
        sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the checkout's cams
        run_stream(kind, model_path, folder, int(batch))
        return
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", choices=sorted(SIDES), default="resnet50", help="model (random weights; default resnet50)")
    ap.add_argument("--images", default="64,256", help="the two folder sizes, n1,n2 (default 64,256)")
    ap.add_argument("--batch-size", type=int, default=16, help="images per batch (default 16)")
    ap.add_argument("--overlays", action="store_true", help="explain-folder also writes PNG overlays (default: --no-overlays)")
    ap.add_argument("--beam", action="store_true", help="also time the Beam DirectRunner (needs apache-beam)")
    ap.add_argument("--beam-args", default="", help="extra explain-folder options for the Beam rows, e.g. '--direct-num-workers 2'")
    ap.add_argument("--rows", default="", help=f"comma list of the rows to time ({', '.join(ROWS)}); default: all "
                    "but beam (beam with --beam)")
    ap.add_argument("--rounds", type=int, default=1, help="run every row this many times, alternating, and keep the "
                    "fastest (other load on a shared machine only slows a run down; default 1)")
    ap.add_argument("--explain-args", default="", help="extra explain-folder options, e.g. '--maps-dtype float16 --jit'")
    args = ap.parse_args()
    sizes = sorted(int(s) for s in args.images.split(","))
    if len(sizes) != 2 or sizes[0] < 1 or sizes[0] == sizes[1]:
        sys.exit(f"--images must be two different sizes n1,n2, got {args.images!r}")

    root = Path(tempfile.mkdtemp(prefix="bench_explain_folder_"))
    try:
        model_path = root / "m.keras"
        build_model(args.model).save(model_path)
        for n in sizes:
            make_images(root / f"imgs{n}", n, SIDES[args.model])
        load = os.getloadavg()[0]
        results = {n: {} for n in sizes}
        for _ in range(args.rounds):  # rounds alternate the rows; the fastest of each is kept
            for kind in row_kinds(args):  # each row at both sizes back to back: both see about the same load
                for n in sizes:
                    for name, secs in rows_for(args, root, model_path, n, kind).items():
                        results[n][name] = min(secs, results[n].get(name, secs))
    finally:
        shutil.rmtree(root, ignore_errors=True)
    side = SIDES[args.model]
    print(f"{args.model} (random weights), {side} px JPEGs, batch {args.batch_size}, best of {args.rounds} round(s), overlays "
          f"{'on' if args.overlays else 'off'}, extra options {args.explain_args or 'none'}; {os.cpu_count()} CPUs, "
          f"load average {load:.1f} before, {os.getloadavg()[0]:.1f} after (other processes share the CPUs)\n")
    print(table(sizes, results))
    print()
    print(ratios(sizes, results))
    print(json.dumps({"sizes": sizes, "seconds": results}))


if __name__ == "__main__":
    main()
