"""`cams lcam-train` and `cams lcam-eval`: train L-CAM on a folder of images, print the paper's Table 1.

No TensorFlow import at module level (so `cams --help` stays fast); see cams.cli.COMMAND_MODULES.
"""
from __future__ import annotations

from pathlib import Path

from cams.cli.errors import positive_float, positive_int


def _class_list(args):
    """Class folder names in class order: --class-index JSON, --class-names, or DIR's subfolders."""
    from cams.methods.lcam import data

    if args.class_index:
        return data.read_class_index(args.class_index)
    if args.class_names:
        names = [n.strip() for n in args.class_names.split(",") if n.strip()]
        if len(names) < 2:
            raise ValueError("--class-names needs at least two comma-separated folder names, e.g. real,fake")
        return names
    return data.class_folders(args.images)


def _training_stream(model, args):
    """(tf.data stream of (images, labels) batches, number of files) for --images."""
    import numpy as np

    from cams.core.model_graph import num_classes
    from cams.distributed.local import image_size
    from cams.methods.lcam import data

    classes = _class_list(args) if args.labels == "dataset" else None
    paths, labels = data.list_files(args.images, classes)
    if classes is not None and len(classes) > num_classes(model):
        raise ValueError(f"{len(classes)} classes in the class list, more than the model's {num_classes(model)} outputs")
    if args.max_images is not None and args.max_images < len(paths):
        keep = np.sort(np.random.default_rng(args.seed).permutation(len(paths))[: args.max_images])
        paths, labels = paths[keep], labels[keep]
    h, w, c = image_size(model, args.size)
    stream = data.image_dataset(paths, labels, (h, w), c, args.batch_size, scale=args.scale, offset=args.offset,
                                crop=not args.no_crop, seed=args.seed)
    return stream, len(paths)


def _callbacks(out: Path, args):
    """BackupAndRestore (resume), the .npz checkpoint each epoch, CSVLogger, optional TensorBoard."""
    import keras

    from cams.methods.lcam import NpzCheckpoint

    backup = Path(args.backup_dir) if args.backup_dir else out.with_suffix(".backup")
    csv = out.with_suffix(".csv")
    if not backup.exists() and csv.exists():
        csv.unlink()  # a fresh run: the log of an earlier finished run is replaced
    cbs = [keras.callbacks.BackupAndRestore(str(backup)), keras.callbacks.CSVLogger(str(csv), append=True),
           NpzCheckpoint(out)]
    if args.tensorboard:
        cbs.append(keras.callbacks.TensorBoard(args.tensorboard))
    return cbs, backup


def cmd_train(args) -> int:
    from cams.cli.common import load_model
    from cams.core.distribute import make_strategy
    from cams.core.files import write_json
    from cams.methods.lcam import LCAM

    out = Path(args.out)
    if out.suffix != ".npz":
        raise ValueError(f"--out must be a .npz file, got {out}")
    strategy = make_strategy(args.strategy)
    with strategy.scope():  # a TPU needs the classifier's variables on its devices
        model = load_model(args.model, unsafe=args.unsafe)
    stream, n = _training_stream(model, args)
    steps = args.steps_per_epoch or -(-n // args.batch_size)
    callbacks, backup = _callbacks(out, args)
    lcam = LCAM.train(
        model, stream, mode=args.mode, layer=args.layer, epochs=args.epochs, learning_rate=args.learning_rate,
        labels=args.labels, loss=args.loss, batch_size=args.batch_size, lr_decay=args.lr_decay, seed=args.seed,
        verbose=0 if args.quiet else 1, strategy=strategy, callbacks=callbacks, steps_per_epoch=steps,
        history_path=backup / "lcam_history.json", steps_per_execution=args.steps_per_execution,
    )
    lcam.save(out)
    hist = write_json(out.with_suffix(".history.json"), {"method": lcam.name, "images": n, **lcam.history})
    print(f"trained {lcam.name} on {n} images at layer {lcam.layer_name!r} ({args.epochs} epochs of {steps} steps, "
          f"{strategy.num_replicas_in_sync} replica(s))")
    print(f"L-CAM:    {out}")
    print(f"history:  {hist}")
    print(f"log:      {out.with_suffix('.csv')}")
    if args.export:
        from cams.export import export_savedmodel

        print(f"SavedModel: {export_savedmodel(model, args.export, explain=lcam)}")
    return 0


def cmd_eval(args) -> int:
    import numpy as np

    from cams.methods import registry
    from cams.methods.lcam import LCAM
    from cams.studies import lcam_table1 as lcam_eval
    from cams.viz import save_grid
    from cams.cli.common import images_for, load_model
    from cams.core.files import save_npz, write_json, write_text

    files = [f.strip() for item in args.lcam for f in item.split(",") if f.strip()]
    methods = registry.parse_methods(args.methods, allowed=lcam_eval.baseline_names())
    model = load_model(args.model, unsafe=args.unsafe)
    lcams = [LCAM.load(f, model, strict=not args.no_strict) for f in files]
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
    grid = save_grid(x[:n], {name: m[:n] for name, m in maps.items()}, out / "grid.png",
                              row_labels=[p.name for p in kept[:n]])
    print(title)
    print()
    print(table)
    print(f"table: {md}\njson:  {js}\nmaps:  {npz}\ngrid:  {grid}")
    return 0


def add_commands(subparsers) -> None:
    """Add `lcam-train` and `lcam-eval` to the `cams` command line."""
    _add_train(subparsers)
    _add_eval(subparsers)


def _add_train(subparsers) -> None:
    from cams.cli.common import add_image_options

    STRATEGIES = ("default", "mirrored", "multiworker", "tpu")  # cams.core.distribute.STRATEGIES, without importing TF

    p = subparsers.add_parser(
        "lcam-train",
        help="train L-CAM-Img or L-CAM-Fm (a learned attention explainer) on a frozen classifier",
        description="Train the L-CAM attention mechanism (one 1x1 conv) on a frozen classifier with the "
                    "paper's loss and SGD schedule; writes the .npz for `cams lcam-eval` / cams.LCAM.load and "
                    "<out>.history.json with the per-epoch loss terms.",
    )
    add_image_options(p, limit=False)
    p.add_argument("--mode", choices=("img", "fm"), default="img",
                   help="img: L-CAM-Img (mask multiplies the input image, second frozen pass); "
                        "fm: L-CAM-Fm (mask multiplies the feature maps). Default img")
    p.add_argument("--out", required=True,
                   help="output .npz file (the classifier is not stored in it); rewritten after every epoch")
    p.add_argument("--layer", default=None, help="feature layer (default: the last layer with a 4-D output; see `cams layers`)")
    p.add_argument("--epochs", type=positive_int, default=8, help="training epochs (default 8, as the official VGG-16 script)")
    p.add_argument("--learning-rate", type=positive_float, default=0.01, help="initial SGD learning rate (default 0.01)")
    p.add_argument("--lr-decay", type=positive_float, default=0.75, help="learning rate factor per epoch (default 0.75)")
    p.add_argument("--batch-size", type=positive_int, default=64, help="images per step over all replicas (default 64)")
    p.add_argument("--steps-per-epoch", type=positive_int, default=None,
                   help="steps per epoch (default: one pass over the images, ceil(N / batch size))")
    p.add_argument("--steps-per-execution", type=positive_int, default=1,
                   help="training steps per compiled call (default 1; e.g. 8 when a step takes milliseconds)")
    p.add_argument("--max-images", type=positive_int, default=None,
                   help="train on this many images drawn at random (with --seed) from --images (default: all)")
    p.add_argument("--labels", choices=("model", "dataset"), default="model",
                   help="model: the classifier's top-1 predictions (paper's model-truth labels, default); "
                        "dataset: the class folder of each image, see --class-index / --class-names")
    p.add_argument("--class-index", default=None, metavar="JSON",
                   help="class order for --labels dataset: Keras' imagenet_class_index.json "
                        "({\"0\": [\"n01440764\", \"tench\"], ...}) or a JSON list of folder names "
                        "(default: the sorted subfolders of --images)")
    p.add_argument("--class-names", default=None,
                   help="class order as a comma list of folder names (e.g. real,fake); an image's class is its "
                        "nearest parent folder in the list")
    p.add_argument("--no-crop", action="store_true",
                   help="resize the whole image to the input size (default: shorter side to 256/224 of the input, "
                        "then a central crop, as the paper's ImageNet evaluation)")
    p.add_argument("--loss", choices=("full", "ce"), default="full",
                   help="full: 1.5 CE + 2 area + 0.01 TV (paper); ce: cross-entropy only (the starred ablation)")
    p.add_argument("--strategy", choices=STRATEGIES, default="default",
                   help="tf.distribute strategy: default (one device), mirrored (all GPUs), multiworker "
                        "(TF_CONFIG machines), tpu (default: default)")
    p.add_argument("--backup-dir", default=None, metavar="DIR",
                   help="BackupAndRestore folder (default <out>.backup): after an interruption, rerun the same "
                        "command to continue from the last finished epoch; removed when training ends")
    p.add_argument("--tensorboard", default=None, metavar="DIR", help="also write TensorBoard logs there")
    p.add_argument("--seed", type=int, default=0,
                   help="seed of the attention weights' initialisation, the image order and --max-images (default 0)")
    p.add_argument("--export", default=None, metavar="DIR",
                   help="also write a SavedModel whose serving signature returns probabilities and the map")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_train)


def _add_eval(subparsers) -> None:
    from cams.cli.common import add_image_options
    from cams.studies.lcam_table1 import BASELINES

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
    p.add_argument("--methods", default=",".join(BASELINES),
                   help=f"baselines, a comma list of registered methods that need no training (default: the paper's "
                        f"{', '.join(BASELINES)}; `cams methods` lists them)")
    p.add_argument("--layer", default=None,
                   help="feature layer of Grad-CAM, Grad-CAM++ and Score-CAM (default: the L-CAMs' layer)")
    p.add_argument("--rise-masks", type=positive_int, default=4000, help="RISE masks per image (default 4000, as the paper)")
    p.add_argument("--scorecam-max-channels", type=positive_int, default=None,
                   help="Score-CAM scores only this many channels of highest variance (default: all)")
    p.add_argument("--batch-size", type=positive_int, default=16, help="images per explainer call (default 16)")
    p.add_argument("--seed", type=int, default=0, help="RISE mask seed (default 0)")
    p.add_argument("--grid-rows", type=positive_int, default=6, help="images shown in grid.png (default 6)")
    p.add_argument("--no-strict", action="store_true",
                   help="accept a classifier whose weights differ from the one the L-CAM was trained on")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress output")
    p.set_defaults(func=cmd_eval)
