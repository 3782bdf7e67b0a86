"""`cams lcam-train` and `cams lcam-eval`: train L-CAM on a folder of images, print the paper's Table 1.

No TensorFlow import at module level (so `cams --help` stays fast); see cams.cli.COMMAND_MODULES.
"""
from __future__ import annotations

from pathlib import Path

from cams.cli.errors import positive_float, positive_int


#: the RecordHistory file lcam-train keeps in its backup folder (with Keras' state and run_state.json)
HISTORY = "lcam_history.json"
#: what lcam-eval writes into --out
EVAL_FILES = ("table1.md", "table1.json", "maps.npz", "grid.png")


def steps_per_execution(text: str):
    """argparse type of --steps-per-execution: "auto" or a whole number >= 1."""
    import argparse

    if text == "auto":
        return text
    try:
        value = int(text)
    except ValueError:
        value = None
    if value is None or value < 1:
        raise argparse.ArgumentTypeError(f"expected 'auto' or a whole number >= 1, got {text!r}")
    return value


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


def _training_files(args):
    """(paths, labels, classes) of the usable image files of --images, after --max-images; files the
    decoder cannot read are counted on stderr (none usable: a ValueError)."""
    import sys

    import numpy as np

    from cams.methods.lcam import data

    classes = _class_list(args) if args.labels == "dataset" else None
    paths, labels = data.list_files(args.images, classes)
    if args.max_images is not None and args.max_images < len(paths):
        keep = np.sort(np.random.default_rng(args.seed).permutation(len(paths))[: args.max_images])
        paths, labels = paths[keep], labels[keep]
    found = len(paths)
    paths, labels, dropped = data.usable_files(paths, labels)
    if dropped:
        print(f"skipped {len(dropped)} of {found} image files that training cannot read (e.g. {dropped[0].decode()}); "
              f"it reads {', '.join(data.READABLE)} files", file=sys.stderr)
    return paths, labels, classes


def _training_stream(model, args, paths, labels, classes):
    """The tf.data stream of (images, labels) batches of `paths` for `model`."""
    from cams.core.model_graph import num_classes
    from cams.distributed.local import image_size
    from cams.methods.lcam import data

    if classes is not None and len(classes) > num_classes(model):
        raise ValueError(f"{len(classes)} classes in the class list, more than the model's {num_classes(model)} outputs")
    h, w, c = image_size(model, args.size)
    return data.image_dataset(paths, labels, (h, w), c, args.batch_size, scale=args.scale, offset=args.offset,
                              crop=not args.no_crop, seed=args.seed)


def _train_paths(args):
    """(--out, backup folder), refused before any work when they overlap the inputs or each other."""
    from cams.core.outputs import check_apart

    out = Path(args.out)
    if out.suffix != ".npz":
        raise ValueError(f"--out must be a .npz file, got {out}")
    if out.is_dir():
        raise ValueError(f"--out {out} is a folder; choose a .npz file name")
    backup = Path(args.backup_dir) if args.backup_dir else out.with_suffix(".backup")
    inputs = {"--images": args.images, "--model": [args.model], "--class-index": [args.class_index]}
    check_apart(out, inputs)
    check_apart(backup, {**inputs, "--out": [out]}, "--backup-dir")
    if args.export:
        check_apart(args.export, {**inputs, "--out": [out], "--backup-dir": [backup]}, "--export")
    if args.tensorboard:
        check_apart(args.tensorboard, {**inputs, "--backup-dir": [backup], "--export": [args.export]}, "--tensorboard")
    return out, backup


def _backup_hint(args) -> str:
    if args.backup_dir:
        return "choose another --backup-dir (a new or empty folder)"
    return "move them away, or choose another --out or a --backup-dir"


def _claim_outputs(out: Path, backup: Path, args):
    """The OutputFolder of --out's folder, after refusing a user file where lcam-train writes
    (<out>.npz/.keras/.csv/.history.json, --export, the backup folder); the export's name in the manifest."""
    import os

    from cams.core.outputs import OutputFolder
    from cams.training.resume import check_backup

    outs = OutputFolder(out.parent, job=f"lcam-train.{out.name}", command="cams lcam-train")
    outs.claim([out.name, out.with_suffix(".keras").name, out.with_suffix(".csv").name,
                out.with_suffix(".history.json").name])
    export = None
    if args.export:
        path = Path(args.export)
        export = os.path.relpath(path.absolute(), out.parent.absolute())
        if path.exists() and not path.is_dir():
            raise ValueError(f"--export {path} is a file; choose a new or empty folder for the SavedModel")
        if path.is_dir() and any(path.iterdir()) and not outs.owns(export):
            raise ValueError(f"--export {path} exists and was not written by cams lcam-train for --out {out}; "
                             "choose a new or empty --export folder")
    check_backup(backup, (HISTORY,), _backup_hint(args))
    return outs, export


def _settings(args, out: Path, model, paths, labels, steps: int) -> dict:
    """What a resumed run must share with the saved one (mode, layer, model, loss, rates, images, ...)."""
    import hashlib

    from cams.core.model_graph import resolve_layer
    from cams.methods.lcam.fileformat import model_fingerprint

    images = hashlib.sha256(b"\n".join(paths.tolist()) + labels.tobytes()).hexdigest()[:16]
    return {"out": str(out.absolute()), "model": model_fingerprint(model)[:16], "mode": args.mode,
            "layer": resolve_layer(model, args.layer).name, "loss": args.loss, "learning_rate": args.learning_rate,
            "lr_decay": args.lr_decay, "batch_size": args.batch_size, "epochs": args.epochs,
            "steps_per_epoch": steps, "labels": args.labels, "images": f"{len(paths)} files, sha256 {images}",
            "seed": args.seed, "size": args.size, "scale": args.scale, "offset": args.offset, "crop": not args.no_crop}


def _callbacks(out: Path, backup: Path, settings: dict, args):
    """resumable's RunState and BackupAndRestore, CSVLogger, the .npz checkpoint each epoch, optional
    TensorBoard; (callbacks, resumed: whether an interrupted run continues)."""
    import keras

    from cams.methods.lcam import NpzCheckpoint
    from cams.training.resume import resumable

    cbs, state = resumable(backup, args.epochs, fingerprint=settings, restart=args.restart, own_files=(HISTORY,),
                           hint=_backup_hint(args), log=lambda m: print(m, flush=True))
    csv = out.with_suffix(".csv")
    if not state.history and csv.exists():
        csv.unlink()  # a fresh run: this job's earlier log (_claim_outputs refused any other file) is replaced
    cbs += [keras.callbacks.CSVLogger(str(csv), append=True), NpzCheckpoint(out)]
    if args.tensorboard:
        cbs.append(keras.callbacks.TensorBoard(args.tensorboard))
    return cbs


def cmd_train(args) -> int:
    from cams.cli.common import load_model
    from cams.core.distribute import make_strategy
    from cams.core.files import write_json
    from cams.methods.lcam import LCAM

    out, backup = _train_paths(args)
    outs, export = _claim_outputs(out, backup, args)  # user files in the way: refused before the model is loaded
    paths, labels, classes = _training_files(args)
    strategy = make_strategy(args.strategy)
    with strategy.scope():  # a TPU needs the classifier's variables on its devices
        model = load_model(args.model, unsafe=args.unsafe)
    n = len(paths)
    stream = _training_stream(model, args, paths, labels, classes)
    steps = args.steps_per_epoch or -(-n // args.batch_size)
    outs.settings = _settings(args, out, model, paths, labels, steps)
    callbacks = _callbacks(out, backup, outs.settings, args)
    outs.record(out.name, out.with_suffix(".keras").name, out.with_suffix(".csv").name,
                out.with_suffix(".history.json").name)
    lcam = LCAM.train(
        model, stream, mode=args.mode, layer=args.layer, epochs=args.epochs, learning_rate=args.learning_rate,
        labels=args.labels, loss=args.loss, batch_size=args.batch_size, lr_decay=args.lr_decay, seed=args.seed,
        verbose=0 if args.quiet else 1, strategy=strategy, callbacks=callbacks, steps_per_epoch=steps,
        history_path=backup / HISTORY, steps_per_execution=args.steps_per_execution,
    )
    lcam.save(out)
    lcam.save(out.with_suffix(".keras"))  # the same attention as a Keras model; LCAM.load reads either
    hist = write_json(out.with_suffix(".history.json"), {"method": lcam.name, "images": n, **lcam.history})
    print(f"trained {lcam.name} on {n} images at layer {lcam.layer_name!r} ({args.epochs} epochs of {steps} steps, "
          f"{strategy.num_replicas_in_sync} replica(s))")
    print(f"steps per execution: {lcam.settings['steps_per_execution']}"
          + (" (auto)" if args.steps_per_execution == "auto" else ""))
    print(f"L-CAM:    {out} (and {out.with_suffix('.keras').name})")
    print(f"history:  {hist}")
    print(f"log:      {out.with_suffix('.csv')}")
    if args.export:
        from cams.export import export_savedmodel

        outs.record(export)
        print(f"SavedModel: {export_savedmodel(model, args.export, explain=lcam)}")
    return 0


def _eval_folder(args, files):
    """The OutputFolder of lcam-eval's --out, after refusing an --out that overlaps the inputs or holds
    a user file where a result goes (without --overwrite); before the model is loaded."""
    from cams.core.outputs import OutputFolder, check_apart

    check_apart(args.out, {"--images": args.images, "--model": [args.model]})
    settings = {"model": str(args.model), "images": list(args.images), "lcam": files, "methods": args.methods,
                "layer": args.layer, "rise_masks": args.rise_masks, "seed": args.seed}
    folder = OutputFolder(args.out, job="lcam-eval", command="cams lcam-eval", settings=settings,
                          overwrite=args.overwrite, overwrite_option="--overwrite")
    folder.claim(EVAL_FILES)
    return folder


def _write_eval(folder, args, title, table, rows, files, fw_ms, x, kept, maps) -> dict:
    """Write EVAL_FILES into the folder, each recorded in its manifest; {what: path}."""
    import numpy as np

    from cams.core.files import save_npz, write_json, write_text
    from cams.viz import save_grid

    written = {"table": write_text(folder.path("table1.md"), f"{title}\n\n{table}")}
    folder.record("table1.md")
    written["json"] = write_json(folder.path("table1.json"), {
        "model": str(args.model), "images": len(x), "rise_masks": args.rise_masks, "lcam": files,
        "forward_ms_per_image": fw_ms, "rows": rows})
    folder.record("table1.json")
    written["maps"] = save_npz(folder.path("maps.npz"), files=np.array([str(p) for p in kept]), **{
        name.replace("*", "_ce").replace("+", "p").replace("-", "_"): m for name, m in maps.items()})
    folder.record("maps.npz")
    n = min(args.grid_rows, len(x))
    written["grid"] = save_grid(x[:n], {name: m[:n] for name, m in maps.items()}, folder.path("grid.png"),
                                row_labels=[p.name for p in kept[:n]])
    folder.record("grid.png")
    return written


def cmd_eval(args) -> int:
    from cams.methods import registry
    from cams.methods.lcam import LCAM
    from cams.studies import lcam_table1 as lcam_eval
    from cams.cli.common import images_for, load_model

    files = [f.strip() for item in args.lcam for f in item.split(",") if f.strip()]
    methods = registry.parse_methods(args.methods, allowed=lcam_eval.baseline_names())
    folder = _eval_folder(args, files)
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
    written = _write_eval(folder, args, title, table, rows, files, fw_ms, x, kept, maps)
    print(title)
    print()
    print(table)
    print(f"table: {written['table']}\njson:  {written['json']}\nmaps:  {written['maps']}\ngrid:  {written['grid']}")
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
                   help="output .npz file (the classifier is not stored in it), rewritten after every epoch; beside "
                        "it <out>.keras (the same attention as a Keras model, after training), <out>.csv (the epoch log) and "
                        "<out>.history.json. A file of these names that lcam-train "
                        "did not write for this --out is refused")
    p.add_argument("--layer", default=None, help="feature layer (default: the last layer with a 4-D output; see `cams layers`)")
    p.add_argument("--epochs", type=positive_int, default=8, help="training epochs (default 8, as the official VGG-16 script)")
    p.add_argument("--learning-rate", type=positive_float, default=0.01, help="initial SGD learning rate (default 0.01)")
    p.add_argument("--lr-decay", type=positive_float, default=0.75, help="learning rate factor per epoch (default 0.75)")
    p.add_argument("--batch-size", type=positive_int, default=64, help="images per step over all replicas (default 64)")
    p.add_argument("--steps-per-epoch", type=positive_int, default=None,
                   help="steps per epoch (default: one pass over the images, ceil(N / batch size))")
    p.add_argument("--steps-per-execution", type=steps_per_execution, default="auto", metavar="auto|N",
                   help="training steps per compiled call (fewer Python round trips; the same weights). auto "
                        "(default): N = 1, unless one forward pass of the model, timed once, puts a step under "
                        "50 ms: then about 200 ms of steps per call, at most 32, dividing the steps per epoch")
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
    _add_resume_options(p)
    p.add_argument("--tensorboard", default=None, metavar="DIR", help="also write TensorBoard logs there")
    p.add_argument("--seed", type=int, default=0,
                   help="seed of the attention weights' initialisation, the image order and --max-images (default 0)")
    p.add_argument("--export", default=None, metavar="DIR",
                   help="also write a SavedModel whose serving signature returns probabilities and the map "
                        "(a new or empty folder, or the one an earlier run of this job wrote)")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_train)


def _add_resume_options(p) -> None:
    """--backup-dir and --restart of lcam-train."""
    p.add_argument("--backup-dir", default=None, metavar="DIR",
                   help="folder for the state of an unfinished run (default <out>.backup): after an interruption, "
                        "rerun the same command to continue from the last finished epoch. It must be new, empty or "
                        "this job's (a folder holding other files is refused); when training ends only this job's "
                        "files are removed from it, and the folder only if nothing else is left in it")
    p.add_argument("--restart", action="store_true",
                   help="discard the unfinished run saved in the backup folder (needed when its settings differ "
                        "from this command's) and train from the first epoch; only this job's files are removed")


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
                   help="L-CAM .npz or .keras files from `cams lcam-train` (comma- or space-separated), trained on --model")
    p.add_argument("--out", required=True,
                   help="output folder (new, or one written by lcam-eval: its earlier results are replaced; "
                        "a file of yours where a result goes is refused, see --overwrite)")
    p.add_argument("--overwrite", action="store_true",
                   help="replace files in --out named like the results (table1.md, table1.json, maps.npz, "
                        "grid.png) that lcam-eval did not write (default: stop and name them)")
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
