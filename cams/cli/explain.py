"""`cams layers`, `cams explain` and `cams explain-folder`."""
from __future__ import annotations

import argparse
import sys

from cams.cli.common import (add_image_options, add_labels_option, add_methods_option, add_target_options, add_unsafe_option,
                              class_names, explainers_for, images_for, load_model, target_for)
from cams.cli.errors import positive_int
from cams.cli.report import add_report_option, check_report_option, write_report_option


BEAM_RUNNERS = ("DirectRunner", "DataflowRunner", "FlinkRunner", "SparkRunner")
EXPLAIN_FOLDER_EXAMPLES = """examples:
  one process (resumes when rerun):
    cams explain-folder --model m.keras --images photos/ --methods gradcam,gradcam++ --out cams_out/

  Apache Beam on this machine, 2 worker processes (pip install "keras-cams[beam]"):
    cams explain-folder --model m.keras --images photos/ --methods gradcam --out cams_out/ \\
        --runner DirectRunner --direct-num-workers 2

  Google Cloud Dataflow (model, images and outputs on Cloud Storage; pip install "keras-cams[beam]"
  apache-beam[gcp] here; the workers install the wheel built by `pip wheel --no-deps -w dist .`):
    cams explain-folder --model gs://BUCKET/m.keras --images gs://BUCKET/photos/ --methods gradcam \\
        --out gs://BUCKET/cams_out/ --runner DataflowRunner -- --project PROJECT --region us-central1 \\
        --temp_location gs://BUCKET/tmp --extra_package dist/keras_cams-0.1.0-py3-none-any.whl
"""


def cmd_layers(args) -> int:
    from cams.core.model_graph import conv_layer_names, iter_layers, resolve_layer
    from cams.core.sublayers import feature_sublayers

    model = load_model(args.model, unsafe=args.unsafe)
    try:
        default = resolve_layer(model)
    except ValueError:
        default = None
    nodes = dict((name, lyr) for name, lyr, _ in iter_layers(model))
    for name in conv_layer_names(model):
        print(name + ("   <- default" if nodes[name] is default else ""))
    for path, lyr, shape in feature_sublayers(model):  # layers inside layers, with their output shapes
        print(f"{path}   {shape}" + ("   <- default" if lyr is default else ""))
    return 0


EXPLAIN_OUTPUTS = ("grid.png", "maps.npz", "predictions.csv")


def _explain_outputs(args):
    """The output folder of `cams explain`, checked before any work: apart from the inputs, and no
    user file where grid.png, maps.npz or predictions.csv go (unless --overwrite)."""
    from cams.core.outputs import OutputFolder, check_apart

    check_apart(args.out, {"--images": args.images, "--model": [args.model], "--labels": [args.labels],
                           "--target-mask": [args.target_mask]})
    settings = {"model": str(args.model), "images": [str(p) for p in args.images], "methods": args.methods,
                "layer": args.layer, "lcam": args.lcam, "target": args.target, "target_mask": args.target_mask}
    out = OutputFolder(args.out, "explain", "cams explain", settings, overwrite=args.overwrite,
                       overwrite_option="--overwrite")
    out.claim(EXPLAIN_OUTPUTS)
    return out


def _write_predictions(out, kept, classes, confidence, names):
    """predictions.csv: file, top-1 class (a segmentation target's category), its name and probability
    (the target's mean probability over its mask), one row per image (csv-quoted)."""
    from cams.core import files

    rows = [(str(p), int(k), names[k] if names else "", f"{confidence[i]:.6f}") for i, (p, k) in enumerate(zip(kept, classes))]
    return files.write_csv(out.path("predictions.csv"), ("file", "class", "name", "probability"), rows)


def cmd_explain(args) -> int:
    import numpy as np
    from tqdm import tqdm

    from cams.core import files
    from cams.core.labels import describe
    from cams.methods import registry
    from cams.metrics import probabilities
    from cams.viz import save_grid

    out = _explain_outputs(args)
    check_report_option(args)
    model = load_model(args.model, unsafe=args.unsafe)
    names = class_names(model, args)
    target = target_for(model, args)
    explainers = explainers_for(model, args)
    x, kept = images_for(model, args)
    maps = {}
    for name, explainer in tqdm(explainers.items(), desc="methods", unit="method"):
        maps[name] = np.concatenate([explainer(x[s : s + args.batch_size], targets=target)
                                     for s in range(0, len(x), args.batch_size)])
    if target is None or isinstance(target, int):
        probs = probabilities(model, x)
        classes, confidence = probs.argmax(1), probs.max(1)
    else:  # a segmentation target: its category, and its mean probability over the mask
        from cams.core.target_batch import evaluate_targets

        classes, confidence = np.full(len(x), target.category), evaluate_targets(model, x, target, probabilities=True)
    labels = [f"{p.name}: {describe(k, names)} ({100 * confidence[i]:.0f}%)" for i, (p, k) in enumerate(zip(kept, classes))]
    rows = args.grid_rows
    grid = save_grid(x[:rows], {registry.title(m): v[:rows] for m, v in maps.items()}, out.path("grid.png"),
                     row_labels=labels[:rows])
    out.record("grid.png")
    npz = files.save_npz(out.path("maps.npz"), files=np.array([str(p) for p in kept]), predicted=classes,
                         **{m.replace("+", "p"): v for m, v in maps.items()})
    out.record("maps.npz")
    csv = _write_predictions(out, kept, classes, confidence, names)
    out.record("predictions.csv")
    print(f"explained {len(x)} images with {', '.join(maps)}")
    print(f"grid:  {grid}")
    print(f"maps:  {npz}")
    print(f"top-1: {csv}")
    write_report_option(args, names)
    return 0


def cmd_explain_folder(args) -> int:
    if args.batch_size < 1:
        raise ValueError(f"--batch-size must be >= 1, got {args.batch_size}")
    if args.runner is not None and args.maps_layout != "files":
        raise ValueError(f"--maps-layout {args.maps_layout} is written by the single-process run only; "
                         f"drop --runner or use --maps-layout files")
    if args.runner is None and (args.direct_num_workers is not None or args.beam_args):
        raise ValueError("--direct-num-workers and pipeline options after -- need --runner (e.g. --runner DirectRunner)")
    check_report_option(args)
    report = _explain_folder_beam(args) if args.runner else _explain_folder_local(args)
    for path, why in report.skipped:
        print(f"skipped {path}: {why}", file=sys.stderr)
    print(f"{report.total} images: {report.done_before} already done, {report.explained} explained now, "
          f"{len(report.skipped)} unreadable")
    print(f"maps:     {report.out}/maps")
    if not args.no_overlays:
        print(f"overlays: {report.out}/overlays")
    print(f"table:    {report.out}/predictions.csv (file, maps, class, probability)")
    if args.runner:
        print(f"unreadable files listed in {report.out}/unreadable.txt")
    write_report_option(args)
    return 0


def _explain_folder_local(args):
    from cams.distributed.local import check_out, explain_folder

    check_out(args.out, args.images, args.model, args.lcam)  # before loading anything
    model = load_model(args.model, unsafe=args.unsafe)
    return explain_folder(
        model, args.images, args.out, explainers_for(model, args),
        size=tuple(args.size) if args.size else None, scale=args.scale, offset=args.offset, batch_size=args.batch_size,
        overlays=not args.no_overlays, layer=args.layer, lcam=args.lcam, restart=args.restart,
        maps_dtype=args.maps_dtype, jit=args.jit, maps_layout=args.maps_layout,
    )


def _explain_folder_beam(args):
    try:
        from cams.distributed.beam import explain_folder_beam
    except ImportError as err:
        if not (err.name or "").startswith("apache_beam"):
            raise
        raise ValueError('--runner needs Apache Beam, the "beam" extra: pip install -e ".[beam]" '
                         '(in a checkout) or pip install "keras-cams[beam]"') from None
    return explain_folder_beam(
        args.model, args.images, args.out, methods=args.methods, layer=args.layer, lcam=args.lcam,
        size=tuple(args.size) if args.size else None, scale=args.scale, offset=args.offset, batch_size=args.batch_size,
        overlays=not args.no_overlays, runner=args.runner, num_workers=args.direct_num_workers,
        pipeline_args=args.beam_args, unsafe=args.unsafe, restart=args.restart, maps_dtype=args.maps_dtype,
        jit=args.jit,
    )


def cmd_methods(args) -> int:
    from cams.methods import registry

    print(registry.markdown_table(), end="")
    return 0


def add_commands(sub) -> None:
    """Add `methods`, `layers`, `explain` and `explain-folder` to the `cams` command line."""
    p = sub.add_parser("methods", help="list every explanation method: name, paper, formula and cost")
    p.set_defaults(func=cmd_methods)
    p = sub.add_parser("layers", help="list the layers a CAM can use (4-D outputs), nested models included, then "
                       "the layers inside layers (4-D or token outputs) with their output shapes")
    p.add_argument("--model", required=True, help="path to a .keras model")
    add_unsafe_option(p)
    p.set_defaults(func=cmd_layers)

    p = sub.add_parser("explain", help="explain images with one or more methods; writes grid.png, maps.npz and predictions.csv")
    add_image_options(p)
    add_methods_option(p, default="gradcam,gradcam++")
    add_labels_option(p)
    p.add_argument("--out", required=True,
                   help="output folder: grid.png, maps.npz, predictions.csv (a rerun replaces its own files; "
                        "a file of yours in their place is refused)")
    p.add_argument("--overwrite", action="store_true",
                   help="replace files named grid.png, maps.npz or predictions.csv in --out that cams did not write")
    p.add_argument("--batch-size", type=positive_int, default=16, help="images per batch (default 16)")
    p.add_argument("--grid-rows", type=positive_int, default=8, help="images shown in grid.png (default 8)")
    add_target_options(p)
    add_report_option(p)
    p.set_defaults(func=cmd_explain)

    p = sub.add_parser(
        "explain-folder",
        help="explain a large folder image by image (streamed, resumable): one .npz and PNG overlays per image",
        description="Streams every image under --images through the model and writes OUT/maps/<path>.npz "
        "(one map per method, predicted class, probability), OUT/overlays/<path>.<method>.png "
        "and OUT/predictions.csv (file, maps, class, probability). Images whose .npz exists are skipped, so "
        "rerunning the same job after an interruption resumes; files of yours in OUT are never replaced "
        "(one in the way is refused), and a rerun with other settings stops unless --restart. "
        "With --runner the same job runs as an Apache Beam pipeline (the beam extra) on that runner.",
        epilog=EXPLAIN_FOLDER_EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_image_options(p, limit=False)
    add_methods_option(p, default="gradcam")
    p.add_argument("--out", required=True,
                   help="output folder, outside the inputs (its run manifest .cams-run.explain-folder.json "
                        "records the job)")
    p.add_argument("--restart", action="store_true",
                   help="delete this job's own earlier outputs in --out (never other files) and start over; "
                        "needed to rerun into the same --out with other settings")
    p.add_argument("--batch-size", type=positive_int, default=16, help="images per batch (default 16)")
    p.add_argument("--no-overlays", action="store_true", help="write only the .npz maps")
    p.add_argument("--maps-dtype", choices=("float16", "uint8", "float32"), default="float16",
                   help="the maps' encoding in the .npz files: float16 (default; error <= 2^-11), uint8 (q = round(255 m) "
                        "with maps_scale; half the size) or float32 (exact, zlib-compressed, ~28x slower to write); "
                        "cams.distributed.read_maps(OUT) reads any back as float32")
    p.add_argument("--maps-layout", choices=("files", "shards"), default="files",
                   help="files: maps/<image>.npz per image (default); shards: maps/shards/<digest>.npz per batch "
                        "(predictions.csv points at <shard>#<row>; fewer files for large folders; one process only)")
    p.add_argument("--jit", action="store_true",
                   help="compile the batch function with XLA (jit_compile; opt-in): adds a few seconds of compilation, "
                        "often faster on large folders (ResNet50 on 2 CPU cores: 1.06x a forward pass per image, "
                        "1.1-1.9x without)")
    add_report_option(p)
    p.add_argument("--runner", choices=BEAM_RUNNERS, default=None,
                   help="run as an Apache Beam pipeline on this runner (needs the beam extra); default: one process")
    p.add_argument("--direct-num-workers", type=positive_int, default=None, metavar="N",
                   help="DirectRunner worker processes (N > 1: multi_processing mode)")
    p.add_argument("beam_args", nargs="*", metavar="-- BEAM_OPTION",
                   help="other Beam pipeline options, after --, e.g. -- --project P --region R --temp_location gs://B/tmp")
    p.set_defaults(func=cmd_explain_folder)
