"""`cams feature-cam`: Feature CAM figures and the paper's two tables for a saved model and images.

Writes into --out: right_classification.md (the paper's Table 2), confidence.md (Table 3),
scores.json (the same numbers), stages.png (Fig. 3: image, saliency map, mask, explanation map)
and top5_grid.png (Fig. 1/5: the base CAMs, the edge map and the combinations). No TensorFlow is
imported at module level (the `cams --help` rule).
"""
from __future__ import annotations

import sys
from pathlib import Path

from cams.cli.errors import percentile, positive_int, unit_float


def _comma_list(text: str, choices, what: str):
    items = [t.strip().lower() for t in text.split(",") if t.strip()]
    if not items:
        raise ValueError(f"--{what} is empty; choose from {', '.join(choices)}")
    for t in items:
        if t not in choices:
            raise ValueError(f"unknown {what} {t!r}; choose from {', '.join(choices)}")
    return list(dict.fromkeys(items))


def _progress(args, text: str) -> None:
    if not args.quiet:
        print(text, file=sys.stderr, flush=True)


def cmd_feature_cam(args) -> int:
    from cams.core import files
    from cams.core.model_graph import resolve_layer
    from cams.methods import feature_cam as fcm
    from cams.studies import feature_cam_tables as fce
    from cams.cli.common import class_names, images_for, load_model
    from cams.methods.feature_cam.edges import edge_maps

    bases = _comma_list(args.base, fcm.base_names(), "base")
    combinations = fcm.ALL_COMBINATIONS if args.all_combinations else fcm.TOP_FIVE
    model = load_model(args.model, unsafe=args.unsafe)
    x, kept = images_for(model, args)
    if args.layer is not None:
        resolve_layer(model, args.layer)  # a bad name fails here, before the edge detector runs
    _progress(args, f"{len(x)} images: {args.edges} edge maps ...")
    f = edge_maps(x, args.edges)
    _progress(args, f"base CAMs ({', '.join(bases)}), Feature CAM and explanation maps ...")
    ev = fce.evaluate(model, x, bases=bases, edges=args.edges, edge_maps=f, layer=args.layer,
                      combinations=combinations, percentile=args.percentile, k=args.k,
                      batch_size=args.batch_size, seed=args.seed, fill=args.offset)
    out = Path(args.out)
    t2, t3 = fce.right_classification_table(ev), fce.confidence_table(ev)
    written = {
        "table 2": files.write_text(out / "right_classification.md", t2),
        "table 3": files.write_text(out / "confidence.md", t3),
        "scores": files.write_json(out / "scores.json", {**ev.to_dict(), "model": str(args.model), "files": [str(p) for p in kept]}),
    }
    figure_base = "gradcam++" if "gradcam++" in bases else bases[0]
    figs = fce.save_figures(ev, x, out, rows=args.rows, figure_base=figure_base, class_names=class_names(model, args))
    written["Fig. 3 stages"], written["Fig. 1/5 grid"] = figs["stages"], figs["grid"]
    print(t2)
    print(t3)
    for name, path in written.items():
        print(f"{name + ':':16s}{path}")
    return 0


def add_commands(subparsers) -> None:
    p = subparsers.add_parser(
        "feature-cam",
        help="Feature CAM (HED edges + Grad-CAM family): figures and the paper's two tables",
        description="Feature CAM on a saved Keras model and a folder of images: explanation maps "
        "(80th-percentile mask), right classification % and average confidence tables (Markdown) "
        "for each base CAM and the paper's top five combinations, and the Fig. 3 / Fig. 1 figures.",
    )
    from cams.cli.common import add_image_options, add_labels_option

    add_image_options(p)
    add_labels_option(p)
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--base", default="gradcam,gradcam++,smoothgradcam++",
                   help="comma list of base CAMs, any gradient CAM that reads a layer (see `cams methods`); "
                        "default: the paper's gradcam,gradcam++,smoothgradcam++")
    p.add_argument("--edges", choices=("hed", "canny"), default="hed", help="edge detector (default hed)")
    p.add_argument("--all-combinations", action="store_true",
                   help="tables and grid with all nine combinations instead of the paper's top five")
    p.add_argument("--layer", default=None, help="feature layer of the base CAMs (default: the last 4-D layer)")
    p.add_argument("--k", type=unit_float, default=0.25, help="weight of the edge image in the add experiment (default 0.25)")
    p.add_argument("--percentile", type=percentile, default=80, help="explanation-map mask threshold percentile (default 80)")
    p.add_argument("--batch-size", type=positive_int, default=32, help="images per batch (default 32)")
    p.add_argument("--rows", type=positive_int, default=4, help="images shown in the figures (default 4)")
    p.add_argument("--seed", type=int, default=0, help="seed of Smooth Grad-CAM++'s noise (default 0)")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress messages")
    p.set_defaults(func=cmd_feature_cam)
