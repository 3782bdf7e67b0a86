"""`cams feature-cam`: Feature CAM figures and the paper's two tables for a saved model and images.

Writes into --out: right_classification.md (the paper's Table 2), confidence.md (Table 3),
scores.json (the same numbers), stages.png (Fig. 3: image, saliency map, mask, explanation map)
and top5_grid.png (Fig. 1/5: the base CAMs, the edge map and the combinations). No TensorFlow is
imported at module level (the `cams --help` rule).
"""
from __future__ import annotations

import sys

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


#: the tables and scores feature-cam writes into --out (the figures: feature_cam_tables.FIGURES)
TABLES = {"table 2": "right_classification.md", "table 3": "confidence.md", "scores": "scores.json"}


def _output_folder(args, bases):
    """The OutputFolder of --out, after refusing an --out that overlaps the inputs or holds a user
    file where a result goes (without --overwrite); before the model is loaded."""
    from cams.core.outputs import OutputFolder, check_apart
    from cams.studies.feature_cam_tables import FIGURES

    check_apart(args.out, {"--images": args.images, "--model": [args.model]})
    settings = {"model": str(args.model), "images": list(args.images), "base": bases, "edges": args.edges,
                "layer": args.layer, "k": args.k, "percentile": args.percentile, "seed": args.seed,
                "all_combinations": args.all_combinations}
    folder = OutputFolder(args.out, job="feature-cam", command="cams feature-cam", settings=settings,
                          overwrite=args.overwrite, overwrite_option="--overwrite")
    folder.claim([*TABLES.values(), *FIGURES.values()])
    return folder


def _write(folder, args, ev, x, kept, bases, model) -> dict:
    """Write the tables, scores.json and the figures, each recorded in the folder's manifest."""
    from cams.core import files
    from cams.studies import feature_cam_tables as fce
    from cams.cli.common import class_names

    t2, t3 = fce.right_classification_table(ev), fce.confidence_table(ev)
    written = {"table 2": files.write_text(folder.path(TABLES["table 2"]), t2)}
    folder.record(TABLES["table 2"])
    written["table 3"] = files.write_text(folder.path(TABLES["table 3"]), t3)
    folder.record(TABLES["table 3"])
    written["scores"] = files.write_json(folder.path(TABLES["scores"]), {
        **ev.to_dict(), "model": str(args.model), "files": [str(p) for p in kept]})
    folder.record(TABLES["scores"])
    figure_base = "gradcam++" if "gradcam++" in bases else bases[0]
    figs = fce.save_figures(ev, x, folder.folder, rows=args.rows, figure_base=figure_base,
                            class_names=class_names(model, args))
    folder.record(*fce.FIGURES.values())
    written["Fig. 3 stages"], written["Fig. 1/5 grid"] = figs["stages"], figs["grid"]
    print(t2)
    print(t3)
    return written


def cmd_feature_cam(args) -> int:
    from cams.core.model_graph import resolve_layer
    from cams.methods import feature_cam as fcm
    from cams.studies import feature_cam_tables as fce
    from cams.cli.common import images_for, load_model
    from cams.methods.feature_cam.edges import edge_maps

    bases = _comma_list(args.base, fcm.base_names(), "base")
    combinations = fcm.ALL_COMBINATIONS if args.all_combinations else fcm.TOP_FIVE
    folder = _output_folder(args, bases)
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
    written = _write(folder, args, ev, x, kept, bases, model)
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
    p.add_argument("--out", required=True,
                   help="output folder (new, or one written by feature-cam: its earlier results are replaced; "
                        "a file of yours where a result goes is refused, see --overwrite)")
    p.add_argument("--overwrite", action="store_true",
                   help="replace files in --out named like the results (right_classification.md, confidence.md, "
                        "scores.json, stages.png, top5_grid.png) that feature-cam did not write (default: stop "
                        "and name them)")
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
