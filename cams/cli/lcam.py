"""`cams lcam-train` and `cams lcam-eval`: train L-CAM on a folder of images, print the paper's Table 1.

No TensorFlow import at module level (so `cams --help` stays fast); see cams.cli.COMMAND_MODULES.
"""
from __future__ import annotations

from pathlib import Path


def _folder_labels(paths, class_names: str):
    """Class index of each image: the nearest parent folder whose name is in `class_names`."""
    import numpy as np

    names = [n.strip() for n in class_names.split(",") if n.strip()]
    if len(names) < 2:
        raise ValueError("--class-names needs at least two comma-separated folder names, e.g. real,fake")
    labels = []
    for p in paths:
        found = next((names.index(part) for part in reversed(Path(p).parent.parts) if part in names), None)
        if found is None:
            raise ValueError(f"{p}: no parent folder is named after a class ({', '.join(names)})")
        labels.append(found)
    return np.asarray(labels, np.int64)


def cmd_train(args) -> int:
    import cams
    from cams.cli.common import images_for, load_model
    from cams.core.files import write_json

    out = Path(args.out)
    if out.suffix != ".npz":
        raise ValueError(f"--out must be a .npz file, got {out}")
    if args.labels == "dataset" and not args.class_names:
        raise ValueError("--labels dataset needs --class-names (the folder names of the classes, in class order)")
    model = load_model(args.model)
    x, kept = images_for(model, args)
    data = (x, _folder_labels(kept, args.class_names)) if args.labels == "dataset" else x
    if args.labels == "dataset" and int(data[1].max()) >= cams.model_graph.num_classes(model):
        raise ValueError(f"--class-names has more classes than the model's {cams.model_graph.num_classes(model)} outputs")
    lcam = cams.LCAM.train(
        model, data, mode=args.mode, layer=args.layer, epochs=args.epochs, learning_rate=args.learning_rate,
        labels=args.labels, loss=args.loss, batch_size=args.batch_size, lr_decay=args.lr_decay, seed=args.seed,
        verbose=not args.quiet,
    )
    lcam.save(out)
    hist = write_json(out.with_suffix(".history.json"), {"method": lcam.name, "images": len(x), **lcam.history})
    print(f"trained {lcam.name} on {len(x)} images at layer {lcam.layer_name!r} ({args.epochs} epochs)")
    print(f"L-CAM:    {out}")
    print(f"history:  {hist}")
    if args.export:
        print(f"SavedModel: {lcam.export_savedmodel(args.export)}")
    return 0


def cmd_eval(args) -> int:
    import numpy as np

    import cams
    from cams.studies import lcam_table1 as lcam_eval
    from cams.cli.common import images_for, load_model
    from cams.core.files import save_npz, write_json, write_text

    files = [f.strip() for item in args.lcam for f in item.split(",") if f.strip()]
    methods = [m.strip().lower() for m in args.methods.split(",") if m.strip()]
    unknown = [m for m in methods if m not in lcam_eval.BASELINES]
    if unknown:
        raise ValueError(f"unknown method {unknown[0]!r}; choose from {', '.join(lcam_eval.BASELINES)}")
    if args.rise_masks < 1:
        raise ValueError(f"--rise-masks must be >= 1, got {args.rise_masks}")
    model = load_model(args.model)
    lcams = [cams.LCAM.load(f, model, strict=not args.no_strict) for f in files]
    x, kept = images_for(model, args)
    rows, maps = lcam_eval.table1(
        model, x, lcams, methods=methods, layer=args.layer, rise_masks=args.rise_masks,
        scorecam_max_channels=args.scorecam_max_channels, batch_size=args.batch_size, seed=args.seed,
        verbose=not args.quiet,
    )
    fw_ms = lcam_eval.forward_ms(model, x, args.batch_size)
    title = (f"Table 1 for {Path(args.model).name} on {len(x)} images "
             f"(RISE {args.rise_masks} masks; AD lower is better, IC higher is better; "
             f"one compiled forward pass of the classifier: {fw_ms:.2f} ms/image)")
    table = lcam_eval.markdown(rows)
    out = Path(args.out)
    md = write_text(out / "table1.md", f"{title}\n\n{table}")
    js = write_json(out / "table1.json", {"model": str(args.model), "images": len(x), "rise_masks": args.rise_masks,
                                          "lcam": files, "forward_ms_per_image": fw_ms, "rows": rows})
    npz = save_npz(out / "maps.npz", files=np.array([str(p) for p in kept]),
                   **{name.replace("*", "_ce").replace("+", "p").replace("-", "_"): m for name, m in maps.items()})
    n = min(args.grid_rows, len(x))
    grid = cams.viz.save_grid(x[:n], {name: m[:n] for name, m in maps.items()}, out / "grid.png",
                              row_labels=[p.name for p in kept[:n]])
    print(title)
    print()
    print(table)
    print(f"table: {md}\njson:  {js}\nmaps:  {npz}\ngrid:  {grid}")
    return 0


def register(subparsers) -> None:
    """Add `lcam-train` and `lcam-eval` to the `cams` command line."""
    from cams.cli.common import add_image_options

    p = subparsers.add_parser(
        "lcam-train",
        help="train L-CAM-Img or L-CAM-Fm (a learned attention explainer) on a frozen classifier",
        description="Train the L-CAM attention mechanism (one 1x1 conv) on a frozen classifier with the "
                    "paper's loss and SGD schedule; writes the .npz for `cams lcam-eval` / cams.LCAM.load and "
                    "<out>.history.json with the per-epoch loss terms.",
    )
    add_image_options(p)
    p.add_argument("--mode", choices=("img", "fm"), default="img",
                   help="img: L-CAM-Img (mask multiplies the input image, second frozen pass); "
                        "fm: L-CAM-Fm (mask multiplies the feature maps). Default img")
    p.add_argument("--out", required=True, help="output .npz file (the classifier is not stored in it)")
    p.add_argument("--layer", default=None, help="feature layer (default: the last layer with a 4-D output; see `cams layers`)")
    p.add_argument("--epochs", type=int, default=8, help="training epochs (default 8, as the official VGG-16 script)")
    p.add_argument("--learning-rate", type=float, default=0.01, help="initial SGD learning rate (default 0.01)")
    p.add_argument("--lr-decay", type=float, default=0.75, help="learning rate factor per epoch (default 0.75)")
    p.add_argument("--batch-size", type=int, default=64, help="images per step (default 64)")
    p.add_argument("--labels", choices=("model", "dataset"), default="model",
                   help="model: the classifier's top-1 predictions (paper's model-truth labels, default); "
                        "dataset: from the image folders, see --class-names")
    p.add_argument("--class-names", default=None,
                   help="comma list of class folder names in class-index order (e.g. real,fake); "
                        "with --labels dataset, an image's class is its nearest parent folder in this list")
    p.add_argument("--loss", choices=("full", "ce"), default="full",
                   help="full: 1.5 CE + 2 area + 0.01 TV (paper); ce: cross-entropy only (the starred ablation)")
    p.add_argument("--seed", type=int, default=0, help="seed of the attention weights' initialisation (default 0)")
    p.add_argument("--export", default=None, metavar="DIR",
                   help="also write a SavedModel whose serving signature returns probabilities and the map")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar or per-epoch lines")
    p.set_defaults(func=cmd_train)

    p = subparsers.add_parser(
        "lcam-eval",
        help="the L-CAM paper's Table 1: AD/IC at 100/50/15%% for Grad-CAM, Grad-CAM++, Score-CAM, RISE and L-CAM",
        description="Explain the images with Grad-CAM, Grad-CAM++, Score-CAM, RISE and each trained L-CAM; print "
                    "and write the Markdown Table 1 (AD and IC at 100/50/15%%, forward passes per explanation, "
                    "measured ms per image), table1.json, maps.npz and grid.png.",
    )
    add_image_options(p)
    p.add_argument("--lcam", required=True, nargs="+",
                   help="L-CAM .npz files from `cams lcam-train` (comma- or space-separated), trained on --model")
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--methods", default=",".join(("gradcam", "gradcam++", "scorecam", "rise")),
                   help="baselines, comma list of gradcam, gradcam++, scorecam, rise (default: all four)")
    p.add_argument("--layer", default=None,
                   help="feature layer of Grad-CAM, Grad-CAM++ and Score-CAM (default: the L-CAMs' layer)")
    p.add_argument("--rise-masks", type=int, default=4000, help="RISE masks per image (default 4000, as the paper)")
    p.add_argument("--scorecam-max-channels", type=int, default=None,
                   help="Score-CAM scores only this many channels of highest variance (default: all)")
    p.add_argument("--batch-size", type=int, default=16, help="images per explainer call (default 16)")
    p.add_argument("--seed", type=int, default=0, help="RISE mask seed (default 0)")
    p.add_argument("--grid-rows", type=int, default=6, help="images shown in grid.png (default 6)")
    p.add_argument("--no-strict", action="store_true",
                   help="accept a classifier whose weights differ from the one the L-CAM was trained on")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress output")
    p.set_defaults(func=cmd_eval)
