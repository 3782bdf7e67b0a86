"""`bengali-xai`: train, baselines, explain, export and demo for the Bengali digit study."""
from __future__ import annotations

import argparse
import sys
import time
from typing import Sequence

from cams.cli.common import add_device_options
from cams.cli.errors import nonnegative_int, positive_int

from .data import DATASETS
from .errors import BengaliXAIError

DEMO_SAMPLES = 20000
DEMO_EPOCHS = 10
#: the methods `explain` draws by default and the demo always draws
DEFAULT_METHODS = ("gradcam", "gradcam++", "smoothgradcam++", "scorecam")
OUT_HELP = ("output folder (created if missing); files other than this command's own outputs are never replaced: "
            "one in the way stops the command before any work")


def _add_data(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("data")
    g.add_argument("--data", choices=DATASETS, default="synthetic",
                   help="synthetic: digits rendered from the shipped Bengali font glyphs, test set from held-out "
                        "fonts (default, no download); ekush: maleDigits.csv + femaleDigits.csv; numtadb: "
                        "folders training-a..e with their CSVs")
    g.add_argument("--data-dir", metavar="DIR",
                   help="ekush: the folder with the CSVs (or one CSV file); numtadb: the folder holding training-a..e")
    g.add_argument("--max-samples", type=positive_int, metavar="N",
                   help="use at most N images (stratified, seeded); for synthetic, the number generated "
                        "(default 20000); for numtadb, read only N images (the paper took 54908)")
    g.add_argument("--seed", type=int, default=0, help="seed for data generation, splits and training (default 0)")


def _add_restart(p: argparse.ArgumentParser) -> None:
    """--restart: discard an interrupted run's backup instead of resuming it."""
    p.add_argument("--restart", action="store_true",
                   help="start training over: discard the interrupted run saved in OUT/.resume (only the files "
                        "training wrote there). Without it a rerun resumes that run, and stops with one line if "
                        "it was started with other settings")


def _add_train(sub: argparse._SubParsersAction) -> None:
    """`train`: the data options, epochs, batch size and device options of a CNN training run."""
    p = sub.add_parser("train", help="train the paper's CNN (60/20/20 split)",
                       description="Train the paper's CNN on a 60/20/20 split; writes DIR/model.keras, "
                                   "DIR/history.json, DIR/metrics.json, DIR/loss.png and DIR/accuracy.png.")
    _add_data(p)
    p.add_argument("--epochs", type=positive_int, default=25, help="training epochs (default 25, as the paper)")
    p.add_argument("--batch-size", type=positive_int, default=250, help="batch size (default 250, as the paper)")
    p.add_argument("--explain-every", type=nonnegative_int, default=0, metavar="N",
                   help="every N epochs, draw Grad-CAM of 6 fixed test digits into DIR/explain_epochs/ (a PNG per "
                        "epoch, maps.gif at the end) and DIR/tensorboard/ (tensorboard --logdir DIR/tensorboard); "
                        "default 0: off")
    add_device_options(p)
    _add_restart(p)
    p.add_argument("--out", required=True, metavar="DIR", help=OUT_HELP)


def _add_baselines(sub: argparse._SubParsersAction) -> None:
    """`baselines`: the data options, which scikit-learn classifiers to fit and how many images the slow ones see."""
    p = sub.add_parser("baselines", help="the ten scikit-learn classifiers (80/20 split)",
                       description="Fit the paper's ten scikit-learn classifiers on an 80/20 split; writes "
                                   "DIR/baselines.csv (classifier,accuracy,log_loss), DIR/baselines.md, two bar "
                                   "charts and the confusion matrix of the most accurate classifier.")
    _add_data(p)
    p.add_argument("--classifiers", metavar="LIST",
                   help="comma-separated subset, e.g. KNeighborsClassifier,RandomForestClassifier (default: all ten)")
    p.add_argument("--slow-max-train", type=positive_int, metavar="N",
                   help="train SVC, NuSVC and GradientBoosting on at most N images (they scale worst; "
                        "default: all training images)")
    p.add_argument("--out", required=True, metavar="DIR", help=OUT_HELP)


def _add_explain(sub: argparse._SubParsersAction) -> None:
    """`explain`: the model (or ImageNet architecture), methods, digits and layer of the Grad-CAM figures."""
    p = sub.add_parser("explain", help="Grad-CAM family figures for a trained model",
                       description="Explain test digits with Grad-CAM family maps; writes one triplet figure "
                                   "(input | heatmap | overlay) per method, DIR/methods_grid.png and "
                                   "DIR/explain.json (share of map energy on the digit strokes).")
    p.add_argument("--model", metavar="FILE", help="a .keras model written by `bengali-xai train`")
    p.add_argument("--arch", metavar="NAME",
                   help="instead of --model: a keras.applications ImageNet classifier by name (VGG16, ResNet50, "
                        "Xception, MobileNetV2, ...); digits are resized to its input, copied to 3 channels and "
                        "passed through its preprocess_input, and Grad-CAM explains its top-1 ImageNet class "
                        "(the study's Figure 9): DIR/imagenet_gradcam.png, DIR/imagenet_explain.json")
    p.add_argument("--weights", default="imagenet",
                   help="with --arch: imagenet (downloaded by Keras, needs network), none (random) or PATH to "
                        "a local weights file of the full model (default: imagenet)")
    p.add_argument("--input-size", type=positive_int, metavar="PX",
                   help="with --arch: input side (default: the architecture's own, 224 or 299)")
    p.add_argument("--labels", metavar="FILE",
                   help="with --arch: ImageNet class names (one per line, JSON list or Keras' "
                        "imagenet_class_index.json); default: Keras' cached index, else class numbers")
    _add_data(p)
    p.add_argument("--methods", default=",".join(DEFAULT_METHODS),
                   help="comma-separated method names, any that `cams methods` lists except lcam (which needs training); "
                        f"default: {','.join(DEFAULT_METHODS)}")
    p.add_argument("--n", type=positive_int, default=8, help="digits shown in the figures (default 8)")
    p.add_argument("--layer", help="layer to explain (default: conv2, the CNN's last convolution)")
    p.add_argument("--energy-samples", type=nonnegative_int, default=200,
                   help="test digits used for the stroke-energy share (default 200; 0 skips it)")
    p.add_argument("--out", required=True, metavar="DIR", help=OUT_HELP)


def _add_export(sub: argparse._SubParsersAction) -> None:
    """`export`: the .keras model and the SavedModel folder to write."""
    p = sub.add_parser("export", help="export a .keras model as a TensorFlow SavedModel",
                       description="Export a trained .keras model as a TensorFlow SavedModel folder.")
    p.add_argument("--model", required=True, metavar="FILE", help="a .keras model")
    p.add_argument("--out", required=True, metavar="DIR",
                   help="SavedModel folder to write: new, empty, or one this command exported before (replaced)")


def _add_demo(sub: argparse._SubParsersAction) -> None:
    """`demo`: epochs, sample count and seed of the offline synthetic-digit demo."""
    p = sub.add_parser("demo", help="offline demo: train on synthetic digits and draw the Grad-CAM figures",
                       description=f"Generate {DEMO_SAMPLES} synthetic digits, train the CNN for {DEMO_EPOCHS} "
                                   "epochs (test set: held-out fonts), then write the Grad-CAM triplets and the "
                                   "method grid. A few minutes on a laptop CPU.")
    p.add_argument("--epochs", type=positive_int, default=DEMO_EPOCHS, help=f"training epochs (default {DEMO_EPOCHS})")
    p.add_argument("--max-samples", type=positive_int, default=DEMO_SAMPLES, metavar="N",
                   help=f"synthetic digits to generate (default {DEMO_SAMPLES})")
    p.add_argument("--seed", type=int, default=0, help="seed (default 0)")
    _add_restart(p)
    p.add_argument("--out", required=True, metavar="DIR", help=OUT_HELP)


def build_parser() -> argparse.ArgumentParser:
    """The argparse tree of every subcommand, one `_add_<command>` helper each.

    Returns:
        The `bengali-xai` parser; `command` names the chosen subcommand.
    """
    ap = argparse.ArgumentParser(
        prog="bengali-xai",
        description="Bengali handwritten digits: scikit-learn baselines, the paper's CNN and Grad-CAM family figures.",
    )
    sub = ap.add_subparsers(dest="command", metavar="COMMAND", required=True)
    _add_train(sub)
    _add_baselines(sub)
    _add_explain(sub)
    _add_export(sub)
    _add_demo(sub)
    return ap


def _import_tensorflow_quietly() -> None:
    """Import TensorFlow without its C++ start-up chatter (cams.core.quiet), so errors stay one line."""
    from cams.core.quiet import import_tensorflow_quietly

    import_tensorflow_quietly()


def _parse_methods(text: str) -> list[str]:
    """The --methods names, checked against cams' method registry (trained ones excluded)."""
    _import_tensorflow_quietly()  # the registry imports the methods, hence TensorFlow
    from cams.methods import registry

    try:
        return list(dict.fromkeys(registry.parse_methods(text, allowed=explainable_methods())))
    except ValueError as err:
        raise BengaliXAIError(str(err)) from None


def explainable_methods() -> list[str]:
    """Registered methods that need no training (L-CAM needs a trained attention file)."""
    from cams.methods import registry

    return [n for n, m in registry.methods().items() if m.family != "learned"]


def _check_model_file(path: str) -> None:
    from cams.core.model_io import check_model_file

    from .errors import MODEL_HINT

    try:
        check_model_file(path, MODEL_HINT)
    except ValueError as err:
        raise BengaliXAIError(str(err)) from None


def _load(args: argparse.Namespace):
    from .data import load_data

    print(f"loading {args.data} data ...", flush=True)
    extra = {"progress": True} if args.data == "synthetic" else {}
    return load_data(args.data, args.data_dir, max_samples=args.max_samples, seed=args.seed, **extra)


def _print_files(files: dict) -> None:
    for key, path in files.items():
        print(f"  {key:24s} {path}")


def _data_settings(args: argparse.Namespace) -> dict:
    """The data options, as the run manifests keep them."""
    return {"data": args.data, "data_dir": args.data_dir, "max_samples": args.max_samples, "seed": args.seed}


def _data_inputs(args: argparse.Namespace) -> dict:
    """{option: paths} the --out folder must stay apart from."""
    return {"--data-dir": [args.data_dir]}


def cmd_train(args: argparse.Namespace) -> None:
    _import_tensorflow_quietly()
    from .train import train_cnn, train_outputs

    settings = dict(_data_settings(args), epochs=args.epochs, batch_size=args.batch_size,
                    mixed_precision=args.mixed_precision, strategy=args.strategy)
    outputs = train_outputs(args.out, settings, _data_inputs(args))  # before any work
    data = _load(args)
    r = train_cnn(data, args.out, epochs=args.epochs, batch_size=args.batch_size, seed=args.seed,
                  mixed_precision=args.mixed_precision, strategy=args.strategy, restart=args.restart,
                  outputs=outputs, explain_every=args.explain_every)
    print("wrote:")
    _print_files(r["files"])


def cmd_baselines(args: argparse.Namespace) -> None:
    from .outputs import BASELINE_FILES, output_folder

    only = [c.strip() for c in args.classifiers.split(",") if c.strip()] if args.classifiers else None
    settings = dict(_data_settings(args), classifiers=only, slow_max_train=args.slow_max_train)
    outputs = output_folder(args.out, "baselines", settings, BASELINE_FILES, _data_inputs(args))
    data = _load(args)
    _import_tensorflow_quietly()
    from .baselines import run_baselines

    run_baselines(data, args.out, seed=args.seed, only=only, slow_max_train=args.slow_max_train, outputs=outputs)


def cmd_explain(args: argparse.Namespace) -> None:
    if bool(args.model) == bool(args.arch):
        raise BengaliXAIError("give exactly one of --model FILE (a trained digit CNN) and --arch NAME "
                              "(a keras.applications ImageNet classifier)")
    if args.arch:
        cmd_explain_imagenet(args)
        return
    from .outputs import explain_files, output_folder

    methods = _parse_methods(args.methods)  # fail before loading anything
    _check_model_file(args.model)
    settings = dict(_data_settings(args), model=args.model, methods=methods, layer=args.layer, n=args.n,
                    energy_samples=args.energy_samples)
    outputs = output_folder(args.out, "explain", settings, explain_files(methods),
                            dict(_data_inputs(args), **{"--model": [args.model]}))
    data = _load(args)
    _import_tensorflow_quietly()
    from .explain import explain, load_model

    model = load_model(args.model)
    r = explain(model, data, methods, args.out, n=args.n, layer=args.layer, seed=args.seed,
                energy_samples=args.energy_samples, outputs=outputs)
    print("wrote:")
    _print_files(r["files"])


def cmd_explain_imagenet(args: argparse.Namespace) -> None:
    """`explain --arch`: Grad-CAM of an ImageNet classifier for its top-1 class on test digits."""
    from .outputs import IMAGENET_FILES, output_folder

    weights = [] if args.weights in ("imagenet", "none", "None", "") else [args.weights]
    settings = dict(_data_settings(args), arch=args.arch, weights=args.weights, input_size=args.input_size,
                    layer=args.layer, n=args.n, labels=args.labels)
    outputs = output_folder(args.out, "explain", settings, IMAGENET_FILES,
                            dict(_data_inputs(args), **{"--weights": weights, "--labels": [args.labels]}))
    _import_tensorflow_quietly()
    from .explain import explain_imagenet, imagenet_classifier

    model, preprocess = imagenet_classifier(args.arch, args.weights, args.input_size)
    data = _load(args)
    r = explain_imagenet(model, preprocess, data, args.out, n=args.n, layer=args.layer, seed=args.seed,
                         labels=args.labels, outputs=outputs)
    for name, k in zip(r["true"], r["top1_name"]):
        print(f"digit {name}: top-1 {k}")
    print("wrote:")
    _print_files(r["files"])


def cmd_export(args: argparse.Namespace) -> None:
    _check_model_file(args.model)
    _import_tensorflow_quietly()
    from .export import export_savedmodel

    print(f"wrote SavedModel {export_savedmodel(args.model, args.out)}")


def cmd_demo(args: argparse.Namespace) -> None:
    _import_tensorflow_quietly()
    from .explain import explain
    from .outputs import TRAIN_FILES, check_backup_dir, explain_files, output_folder
    from .synthetic import make_synthetic
    from .train import train_cnn

    settings = {"max_samples": args.max_samples, "epochs": args.epochs, "seed": args.seed}
    outputs = output_folder(args.out, "demo", settings, [*TRAIN_FILES, *explain_files(DEFAULT_METHODS)])
    check_backup_dir(outputs)
    t0 = time.time()
    print(f"generating {args.max_samples} synthetic digits ...", flush=True)
    data = make_synthetic(args.max_samples, seed=args.seed, progress=True)
    r = train_cnn(data, args.out, epochs=args.epochs, batch_size=250, seed=args.seed, restart=args.restart,
                  outputs=outputs)
    e = explain(r["model"], data, list(DEFAULT_METHODS), args.out, n=8, seed=args.seed, outputs=outputs)
    g = e["energy"]["gradcam"]
    print(f"\nheld-out-font test accuracy {r['test_accuracy']:.4f} (test loss {r['test_loss']:.4f}); "
          f"Grad-CAM energy on strokes {g['energy_on_strokes']:.3f} (strokes cover {g['mask_area']:.3f}); "
          f"{time.time() - t0:.0f} s in all")
    print("wrote:")
    _print_files({**r["files"], **e["files"]})


COMMANDS = {"train": cmd_train, "baselines": cmd_baselines, "explain": cmd_explain, "export": cmd_export,
            "demo": cmd_demo}


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of `bengali-xai`: the exit status (cams.cli.errors: bad input 2, failure 1, Ctrl-C 130)."""
    from cams.cli.errors import run_command

    return run_command("bengali-xai", build_parser(), argv, run=lambda args: COMMANDS[args.command](args),
                       user_errors=(BengaliXAIError,))


if __name__ == "__main__":
    sys.exit(main())
