#!/usr/bin/env python
"""Benchmark `cams explain-folder`: Apache Beam's DirectRunner vs the single-process path vs predict, in one run.

On the same generated folder (default 2,000 PNGs) and the same saved model, it times end to end
(model load included, outputs written to fresh folders):

    predict   the cheapest pass over the folder: the same decoding (local.image_stream) + model.predict
    local     cams.distributed.local.explain_folder (what `cams explain-folder` runs without --runner)
    beam      cams.distributed.beam.explain_folder_beam on the DirectRunner with --workers processes

and prints images/s and the ratios the issue sets targets for: beam time / local time (target <= 1.5
on 2 cores) and local images/s / predict images/s for Grad-CAM (target >= 0.8). It also prints
model.predict on images already in memory (no decoding), for reference.

    python scripts/bench_explain_folder.py                    # 2,000 images, Grad-CAM, 2 Beam workers
    python scripts/bench_explain_folder.py --images 200       # quick
"""
from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
from PIL import Image  # noqa: E402

from cams.cli.common import explainers_for  # noqa: E402
from cams.core.images import list_images  # noqa: E402
from cams.core.model_io import load_keras_model  # noqa: E402
from cams.distributed.beam import explain_folder_beam  # noqa: E402
from cams.distributed.local import explain_folder, image_stream  # noqa: E402


def model_for(size: int) -> keras.Model:
    """A small CNN classifier (3 conv blocks, GAP, 10-way softmax) for size x size RGB images."""
    inp = keras.Input((size, size, 3))
    x = inp
    for i, filters in enumerate((16, 32, 64)):
        x = keras.layers.Conv2D(filters, 3, padding="same", activation="relu", name=f"conv{i + 1}")(x)
        x = keras.layers.MaxPooling2D(2)(x) if i < 2 else x
    x = keras.layers.GlobalAveragePooling2D()(x)
    return keras.Model(inp, keras.layers.Dense(10, activation="softmax")(x), name="bench_cnn")


def make_images(folder: Path, n: int, side: int, fmt: str = "png", seed: int = 0) -> None:
    """`n` smooth random RGB images, `side` pixels a side (resized on load), 100 per subfolder."""
    rng = np.random.default_rng(seed)
    for i in range(n):
        small = rng.integers(0, 255, (8, 8, 3), dtype=np.uint8)
        img = Image.fromarray(small).resize((side, side), Image.BILINEAR)
        sub = folder / f"{i // 100:03d}"
        sub.mkdir(parents=True, exist_ok=True)
        img.save(sub / f"{i:05d}.{fmt}", quality=90) if fmt == "jpg" else img.save(sub / f"{i:05d}.{fmt}")


def time_predict(model_path: Path, folder: Path, batch_size: int) -> float:
    """Seconds to load the model, decode every image (explain_folder's image_stream) and model.predict them."""
    t = time.perf_counter()
    model = load_keras_model(model_path)
    _, h, w, c = model.input_shape
    images = image_stream(list_images([folder]), (h, w), c, batch_size=batch_size).map(lambda i, x, why: x)
    model.predict(images, verbose=0)
    return time.perf_counter() - t


def time_local(model_path: Path, folder: Path, out: Path, methods: str, batch_size: int, overlays: bool) -> float:
    """Seconds for the single-process path, model load and explainer construction included."""
    t = time.perf_counter()
    model = load_keras_model(model_path)
    explainers = explainers_for(model, argparse.Namespace(methods=methods, layer=None, lcam=None))
    report = explain_folder(model, [folder], out, explainers, batch_size=batch_size, overlays=overlays, progress=False)
    assert report.explained == len(list_images([folder])), report
    return time.perf_counter() - t


def time_beam(model_path: Path, folder: Path, out: Path, methods: str, batch_size: int, overlays: bool,
              workers: int) -> float:
    """Seconds for the Beam pipeline on the DirectRunner with `workers` processes, start-up included."""
    t = time.perf_counter()
    report = explain_folder_beam(str(model_path), [str(folder)], str(out), methods=methods, batch_size=batch_size,
                                 overlays=overlays, runner="DirectRunner", num_workers=workers)
    assert report.explained == len(list_images([folder])), report
    return time.perf_counter() - t


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--images", type=int, default=2000, help="generated images (default 2000)")
    ap.add_argument("--size", type=int, default=64, help="model input size (default 64)")
    ap.add_argument("--source-size", type=int, default=None,
                    help="generated images' side (default: size + 16; e.g. 512 for photo-sized, decode-bound inputs)")
    ap.add_argument("--format", choices=("png", "jpg"), default="png", help="generated images' format (default png)")
    ap.add_argument("--methods", default="gradcam", help="methods to explain with (default gradcam)")
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--workers", type=int, default=2, help="DirectRunner worker processes (default 2)")
    ap.add_argument("--overlays", action="store_true", help="also write the PNG overlays (default: .npz only)")
    args = ap.parse_args()

    root = Path(tempfile.mkdtemp(prefix="bench_explain_folder_"))
    try:
        keras.utils.set_random_seed(0)
        model_for(args.size).save(root / "m.keras")
        make_images(root / "imgs", args.images, args.source_size or args.size + 16, args.format)
        n = args.images
        mem = np.random.default_rng(1).random((n, args.size, args.size, 3), dtype=np.float32)
        model = load_keras_model(root / "m.keras")
        model.predict(mem[: args.batch_size], verbose=0)
        t = time.perf_counter()
        model.predict(mem, batch_size=args.batch_size, verbose=0)
        t_mem = time.perf_counter() - t
        t_pred = time_predict(root / "m.keras", root / "imgs", args.batch_size)
        t_local = time_local(root / "m.keras", root / "imgs", root / "local", args.methods, args.batch_size,
                             args.overlays)
        t_beam = time_beam(root / "m.keras", root / "imgs", root / "beam", args.methods, args.batch_size,
                           args.overlays, args.workers)
        # the same pipeline again: every output exists, so this is its fixed cost (workers start, import
        # TensorFlow, load the model; files are matched and checked) with nothing to explain
        t0 = time.perf_counter()
        explain_folder_beam(str(root / "m.keras"), [str(root / "imgs")], str(root / "beam"), methods=args.methods,
                            batch_size=args.batch_size, overlays=args.overlays, runner="DirectRunner",
                            num_workers=args.workers)  # the same job (settings) as before, or it is refused
        t_fixed = time.perf_counter() - t0
    finally:
        shutil.rmtree(root, ignore_errors=True)

    side = args.source_size or args.size + 16
    print(f"{n} {args.format.upper()} images {side}x{side} -> model input {args.size}x{args.size}, methods {args.methods}, "
          f"batch {args.batch_size}, overlays {'on' if args.overlays else 'off'}, {os.cpu_count()} CPUs "
          f"(load average {os.getloadavg()[0]:.1f}: other processes share them)")
    for name, secs in (("model.predict, images in memory", t_mem), ("predict: decode + model.predict", t_pred),
                       ("single process (explain_folder)", t_local), (f"Beam DirectRunner, {args.workers} workers", t_beam)):
        print(f"  {name:38s} {n / secs:8.1f} images/s  ({secs:6.2f} s)")
    print(f"  Beam fixed cost (rerun, all done)      {t_fixed:6.2f} s")
    print(f"Beam time / single-process time:          {t_beam / t_local:5.2f}  (target <= 1.5)")
    print(f"  the same without Beam's fixed cost:     {max(t_beam - t_fixed, 0) / t_local:5.2f}")
    print(f"single-process / predict throughput:      {t_pred / t_local:5.2f}  (target >= 0.8)")


if __name__ == "__main__":
    main()
