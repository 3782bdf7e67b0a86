"""`cams` command line: list a model's candidate layers, explain a folder of images."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Optional, Sequence


def add_image_options(p, limit: bool = True) -> None:
    """The options `images_for` reads: --model, --images, --scale, --offset, --size (and --limit)."""
    p.add_argument("--model", required=True, help="the classifier: a .keras file (saved with model.save)")
    p.add_argument("--images", required=True, nargs="+", help="image files and/or folders (searched recursively)")
    p.add_argument("--scale", type=float, default=1 / 255.0,
                   help="pixel values (0..255) are multiplied by this (default 1/255; use 1 for models that take 0..255)")
    p.add_argument("--offset", type=float, default=0.0,
                   help="then this is added (default 0; for models that take [-1, 1]: --scale 0.00784313725 --offset -1)")
    p.add_argument("--size", type=int, nargs=2, metavar=("H", "W"), default=None,
                   help="resize images to H W (needed only if the model accepts any size)")
    if limit:
        p.add_argument("--limit", type=int, default=None, help="use at most this many images (the first, in sorted order)")


def images_for(model, args):
    """Load --images for `model` with --scale/--offset/--size/--limit; report skipped files."""
    from cams.images import load_for_model

    x, kept, skipped = load_for_model(model, args.images, scale=args.scale, offset=args.offset,
                                      size=tuple(args.size) if args.size else None, limit=getattr(args, "limit", None))
    for p, why in skipped:
        print(f"skipped {p}: {why}", file=sys.stderr)
    return x, kept


def load_model(path: str):
    from cams.model_io import load_keras_model

    return load_keras_model(path)


def cmd_layers(args) -> int:
    import cams

    model = load_model(args.model)
    names = cams.conv_layer_names(model)
    default = cams.resolve_layer(model).name if names else None
    for name in names:
        print(name + ("   <- default" if name.split("/")[-1] == default else ""))
    return 0


def cmd_explain(args) -> int:
    import numpy as np
    from tqdm import tqdm

    import cams
    model = load_model(args.model)
    explainers = _explainers(model, args.methods, args.layer)
    x, kept = images_for(model, args)
    out = Path(args.out)
    maps = {}
    for name, explainer in tqdm(explainers.items(), desc="methods", unit="method"):
        maps[name] = np.concatenate([explainer(x[s : s + args.batch_size]) for s in range(0, len(x), args.batch_size)])
    probs = cams.metrics.probabilities(model, x)
    labels = [f"{p.name}: class {int(k)} ({100 * probs[i, k]:.0f}%)" for i, (p, k) in enumerate(zip(kept, probs.argmax(1)))]
    grid = cams.viz.save_grid(x[: args.grid_rows], {m: v[: args.grid_rows] for m, v in maps.items()}, out / "grid.png", row_labels=labels[: args.grid_rows])
    npz = cams.files.save_npz(out / "maps.npz", files=np.array([str(p) for p in kept]), predicted=probs.argmax(1), **{m.replace("+", "p"): v for m, v in maps.items()})
    print(f"explained {len(x)} images with {', '.join(maps)}")
    print(f"grid:  {grid}")
    print(f"maps:  {npz}")
    return 0


#: modules that add their own subcommands: each defines `register(subparsers)`, must not import
#: TensorFlow at module level, and sets `func(args) -> int` on its parsers (ValueError = user error)
COMMAND_MODULES = ("cams.cli_feature_cam", "cams.cli_lcam")


def _explainers(model, methods: str, layer):
    import cams

    names = [m.strip().lower() for m in methods.split(",") if m.strip()]
    unknown = [m for m in names if m not in cams.METHOD_NAMES]
    if unknown or not names:
        raise ValueError(f"unknown method {(unknown or [methods])[0]!r}; choose from {', '.join(cams.METHOD_NAMES)}")
    out = {}
    for name in names:
        cls = cams.METHODS[name]
        out[name] = cls(model) if name in ("rise", "saliency") else cls(model, layer=layer)
    return out


def cmd_explain_folder(args) -> int:
    from .batch_explain import explain_folder

    model = load_model(args.model)
    report = explain_folder(
        model, args.images, args.out, _explainers(model, args.methods, args.layer),
        size=tuple(args.size) if args.size else None, scale=args.scale, offset=args.offset, batch_size=args.batch_size,
        overlays=not args.no_overlays,
    )
    for path, why in report.skipped:
        print(f"skipped {path}: {why}", file=sys.stderr)
    print(f"{report.total} images: {report.done_before} already done, {report.explained} explained now, "
          f"{len(report.skipped)} unreadable")
    print(f"maps:     {report.out / 'maps'}")
    if not args.no_overlays:
        print(f"overlays: {report.out / 'overlays'}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    import importlib

    ap = argparse.ArgumentParser(prog="cams", description="Class activation maps for saved Keras models.")
    sub = ap.add_subparsers(dest="command", required=True)
    p = sub.add_parser("layers", help="list the layers a CAM can use (4-D outputs), nested models included")
    p.add_argument("--model", required=True, help="path to a .keras model")
    p.set_defaults(func=cmd_layers)
    p = sub.add_parser("explain", help="explain images with one or more methods; writes grid.png and maps.npz")
    add_image_options(p)
    p.add_argument("--methods", default="gradcam,gradcam++", help="comma list of: gradcam, gradcam++, smoothgradcam++, scorecam, rise, saliency (default: gradcam,gradcam++)")
    p.add_argument("--layer", default=None, help="feature layer name (default: the last layer with a 4-D output; see `cams layers`)")
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--batch-size", type=int, default=16, help="images per batch (default 16)")
    p.add_argument("--grid-rows", type=int, default=8, help="images shown in grid.png (default 8)")
    p.set_defaults(func=cmd_explain)
    p = sub.add_parser(
        "explain-folder",
        help="explain a large folder image by image (streamed, resumable): one .npz and PNG overlays per image",
        description="Streams every image under --images through the model and writes OUT/maps/<path>.npz "
        "(one map per method, predicted class, probability) and OUT/overlays/<path>.<method>.png. "
        "Images whose .npz exists are skipped, so rerunning after an interruption resumes.",
    )
    add_image_options(p, limit=False)
    p.add_argument("--methods", default="gradcam", help="comma list of: gradcam, gradcam++, smoothgradcam++, scorecam, rise, saliency (default: gradcam)")
    p.add_argument("--layer", default=None, help="feature layer name (default: the last layer with a 4-D output)")
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--batch-size", type=int, default=16, help="images per batch (default 16)")
    p.add_argument("--no-overlays", action="store_true", help="write only the .npz maps")
    p.set_defaults(func=cmd_explain_folder)
    for name in COMMAND_MODULES:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as err:
            if err.name != name:
                raise
            continue
        module.register(sub)
    return ap


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    from .quiet import import_tensorflow_quietly

    import_tensorflow_quietly()  # no CUDA/oneDNN chatter on CPU machines
    try:
        return args.func(args)
    except ValueError as err:
        print(f"cams {args.command}: error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
