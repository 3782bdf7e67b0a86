"""`deepfake-xai`: the real/fake face study from the command line.

Subcommands mirror the report's scripts (train_main.py, plot_accuracy_and_loss.py, numerical_analysis.py,
saliency_map.py, grad_cam_analysis.py) with their flags, plus make-dataset, summary, localization,
spectrum, plot-samples and demo. Expected problems (missing folders, bad files, weights that cannot be downloaded) end with
one line on stderr and exit status 2; Ctrl-C during training exits 130 and the same command resumes.
"""
from __future__ import annotations

import argparse
import os
import sys
from typing import Sequence

from cams.cli.common import add_device_options
from cams.cli.errors import nonnegative_int, positive_float, positive_int, unit_float

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

PROG = "deepfake-xai"


def _add_data_args(p: argparse.ArgumentParser, required: bool = True) -> None:
    p.add_argument("-d", "--dataset", required=required, default=None if required else "fakes_dataset",
                   help="data set name under --data-root, or a path to a folder holding "
                        "{train,val,test}/{real,fake}/ (e.g. fakes_dataset)")
    p.add_argument("--data-root", default="data", help="folder that holds the data sets (default: data)")


def _add_analysis_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("-m", "--model", required=True, choices=("SimpleNet", "XceptionBased"),
                   help="model name, used for the default checkpoint and the figure names")
    p.add_argument("-cpp", "-cp", "--checkpoint-path", dest="checkpoint", default=None,
                   help="checkpoint written by train (default: checkpoints/<dataset>_<model>_Adam.keras)")
    _add_data_args(p)
    p.add_argument("--out-dir", default="out",
                   help="results go here, figures under OUT_DIR/figures (default: out); only files this command wrote "
                        "are replaced, and OUT_DIR never overlaps the data set or the checkpoint")
    p.add_argument("-b", "--batch-size", type=positive_int, default=32, help="images per forward/backward pass (default: 32)")


def _add_make_dataset(sub: argparse._SubParsersAction) -> None:
    """`make-dataset` (alias make_dataset): size, split and source options of the planted or synthetic data set."""
    p = sub.add_parser("make-dataset", aliases=["make_dataset"],
                       help="generate the planted-face data set, or (--kind synthetic) the GAN-simulated one",
                       description="Generate an embedded data set. --kind planted (default): real faces "
                       "(procedural, or found in --real-images) and fakes made by planting the face region of "
                       "one image into another with seamless blending; the mask of the planted region is saved "
                       "for each fake. --kind synthetic: real faces and, at 1:1, fakes made by an AutoGAN "
                       "simulator (encoder + GAN-style up-sampling decoder with a PatchGAN discriminator, Zhang "
                       "et al., WIFS 2019) trained here on the real faces; its weights are saved as "
                       "autogan_generator.keras, the fakes' sharpness and PSNR/SSIM in dataset.json.")
    p.add_argument("--kind", choices=("planted", "synthetic"), default="planted",
                   help="planted (fakes_dataset, the default) or synthetic (synthetic_dataset)")
    p.add_argument("--data-root", default="data", help="parent folder of the data set (default: data)")
    p.add_argument("--name", default=None,
                   help="data set folder name (default: fakes_dataset, or synthetic_dataset with --kind synthetic)")
    p.add_argument("--image-size", type=positive_int, default=256, help="side of the square images in pixels (default: 256)")
    p.add_argument("--train", type=positive_int, default=1200, help="images in the train split (default: 1200)")
    p.add_argument("--val", type=positive_int, default=200, help="images in the val split (default: 200)")
    p.add_argument("--test", type=positive_int, default=200, help="images in the test split (default: 200)")
    p.add_argument("--fake-fraction", type=unit_float, default=1 / 3,
                   help="share of fakes in each split (default: 1/3, the report's fake:real = 1:2; --kind synthetic is "
                        "always 1:1)")
    p.add_argument("--seed", type=int, default=0, help="random seed (default: 0)")
    p.add_argument("--real-images", "--source", dest="real_images", default=None, metavar="DIR",
                   help="folder of your own face photos to take real faces from instead of drawing them")
    p.add_argument("--face-box", choices=("haar", "center"), default="haar",
                   help="how faces are found in --real-images: OpenCV's Haar cascade, or 'center' for "
                        "aligned face crops (default: haar)")
    p.add_argument("--overwrite", action="store_true",
                   help="replace a data set this command generated there earlier (its run manifest lists every "
                        "file in it); a folder of your own, or one with files added, is never replaced")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bars")
    g = p.add_argument_group("--kind synthetic")
    g.add_argument("--internal-size", type=positive_int, default=128,
                   help="side at which faces are drawn and the generator runs; images are then resized to "
                        "--image-size (default: 128, fast on a CPU)")
    g.add_argument("--generator-epochs", type=positive_int, default=8, help="generator training epochs (default: 8)")
    g.add_argument("--generator-width", type=positive_int, default=16, help="generator's first-layer channels (default: 16)")
    g.add_argument("--upsampling", choices=("transpose", "nearest"), default="transpose",
                   help="decoder up-sampling: transposed convolution or nearest + conv (default: transpose)")
    g.add_argument("--generator-loss", choices=("gan", "l1"), default="gan",
                   help="gan: PatchGAN discriminator + L1 reconstruction, as the AutoGAN paper, the input's finest "
                        "band passed through (default); l1: the decoder's reconstruction alone, whose fakes are "
                        "blurred (the ablation)")
    g.add_argument("--restart", action="store_true",
                   help="discard an interrupted generator training saved in DATA_ROOT/<name>.autogan-resume and start "
                        "over (without it the same command resumes it)")


def _add_spectrum(sub: argparse._SubParsersAction) -> None:
    """`spectrum`: the data set, split and image limit of the Fourier spectrum figure."""
    p = sub.add_parser("spectrum", help="mean log-magnitude Fourier spectrum of real vs fake images",
                       description="Mean centred log-magnitude spectrum of the real and the fake images of one "
                       "split and their difference: OUT_DIR/figures/<dataset>_<split>_spectrum.png and "
                       "OUT_DIR/<dataset>_<split>_spectrum.json.")
    _add_data_args(p)
    p.add_argument("--split", choices=("train", "val", "test"), default="test", help="split (default: test)")
    p.add_argument("--limit", type=positive_int, default=None, help="at most this many images per class")
    p.add_argument("--out-dir", default="out", help="figure under OUT_DIR/figures (default: out)")


def _add_plot_samples(sub: argparse._SubParsersAction) -> None:
    """`plot-samples` (alias plot_samples_of_faces_dataset): the data sets and samples of Figure 1."""
    p = sub.add_parser("plot-samples", aliases=["plot_samples_of_faces_dataset"],
                       help="real and fake samples of each data set (plot_samples_of_faces_dataset.py)",
                       description="Figure 1: a row of real and a row of fake samples for each data set under "
                       "--data-root (or those named with -d): OUT_DIR/figures/samples_of_faces_dataset.png.")
    p.add_argument("-d", "--dataset", action="append", default=None,
                   help="data set name or path (repeatable; default: every data set under --data-root)")
    p.add_argument("--data-root", default="data", help="folder that holds the data sets (default: data)")
    p.add_argument("--split", choices=("train", "val", "test"), default="train", help="split (default: train)")
    p.add_argument("-n", "--n", type=positive_int, default=4, help="samples per class and data set (default: 4)")
    p.add_argument("--seed", type=int, default=0, help="which images are shown (default: 0)")
    p.add_argument("--out-dir", default="out", help="figure under OUT_DIR/figures (default: out)")


def _add_summary(sub: argparse._SubParsersAction) -> None:
    """`summary`: the data set to count, and whether to decode every file."""
    p = sub.add_parser("summary", help="count images per split and class, fake:real proportion",
                       description="Counts of real and fake images per split and the fake:real proportion.")
    _add_data_args(p)
    p.add_argument("--check", action="store_true", help="also decode every file and count unreadable ones")


def _add_train(sub: argparse._SubParsersAction) -> None:
    """`train` (alias train_main): model, optimiser, input, device and checkpoint options of a training run."""
    p = sub.add_parser("train", aliases=["train_main"], help="train SimpleNet or XceptionBased (train_main.py)",
                       description="Train a detector; per-epoch train/val/test loss and accuracy are appended "
                       "to OUT_DIR/<dataset>_<model>_<optimizer>.json, the best-validation model is kept in "
                       "CHECKPOINT_DIR/<dataset>_<model>_<optimizer>.keras. An interrupted run resumes when the "
                       "same command is run again.")
    _add_data_args(p)
    p.add_argument("-m", "--model", default="SimpleNet", choices=("SimpleNet", "XceptionBased"),
                   help="model (default: SimpleNet)")
    p.add_argument("-lr", "--lr", type=positive_float, default=1e-3, help="learning rate (default: 0.001)")
    p.add_argument("-b", "--batch-size", type=int, default=32, help="batch size (default: 32)")
    p.add_argument("-e", "--epochs", type=int, default=5, help="number of epochs (default: 5)")
    p.add_argument("-o", "--optimizer", default="Adam", choices=("Adam", "SGD"), help="optimizer (default: Adam)")
    p.add_argument("--momentum", type=unit_float, default=0.9, help="SGD momentum (default: 0.9)")
    p.add_argument("--image-size", type=positive_int, default=256,
                   help="model input side; images are resized to it (default: 256; SimpleNet >= 50, "
                        "XceptionBased >= 71)")
    p.add_argument("--weights", default=None,
                   help="imagenet | none | PATH (XceptionBased: an Xception no-top .h5; SimpleNet: a "
                        ".weights.h5/.keras of the model). Default: imagenet for XceptionBased, none for SimpleNet")
    add_device_options(p, batch_option="-b")
    p.add_argument("--seed", type=int, default=0, help="random seed (default: 0)")
    p.add_argument("--out-dir", default="out",
                   help="where the JSON history goes (default: out); a JSON of that name not written by train is "
                        "never changed: the run stops before training")
    p.add_argument("--checkpoint-dir", default="checkpoints",
                   help="where checkpoints go (default: checkpoints); a checkpoint of that name not written by "
                        "train is never replaced: the run stops before training")
    p.add_argument("--restart", "--no-resume", dest="restart", action="store_true",
                   help="start over: discard the interrupted run saved in CHECKPOINT_DIR/<dataset>_<model>_<optimizer>"
                        ".resume (only the files training wrote there). Without it a rerun resumes that run, and "
                        "stops with one line if it was started with other settings")
    p.add_argument("-v", "--verbose", type=int, choices=(0, 1, 2), default=None,
                   help="Keras output: 0 silent, 1 progress bar, 2 one line per epoch (default: auto)")
    p.add_argument("--explain-every", type=nonnegative_int, default=0, metavar="N",
                   help="every N epochs, Grad-CAM of 4 fixed test images into OUT_DIR/<dataset>_<model>_<optimizer>"
                        ".explain/ (a PNG per epoch, maps.gif at the end) and .tensorboard/ beside it (default 0: off)")


def _add_plot_accuracy_and_loss(sub: argparse._SubParsersAction) -> None:
    """`plot-accuracy-and-loss` (alias plot_accuracy_and_loss): the training JSON and figure names."""
    p = sub.add_parser("plot-accuracy-and-loss", aliases=["plot_accuracy_and_loss"],
                       help="loss and accuracy figures of a run (plot_accuracy_and_loss.py)",
                       description="Plot train/val/test loss and accuracy per epoch from a training JSON.")
    p.add_argument("-m", "--model", default=None, help="model name for the figure names (default: from the JSON)")
    p.add_argument("-j", "--json", required=True, help="training JSON, e.g. out/fakes_dataset_SimpleNet_Adam.json")
    p.add_argument("-d", "--dataset", default=None, help="data set name for the figure names (default: from the JSON)")
    p.add_argument("--run", type=int, default=-1, help="which run of the JSON list (default: -1, the latest)")
    p.add_argument("--out-dir", default="out", help="figures go under OUT_DIR/figures (default: out)")


def _add_numerical_analysis(sub: argparse._SubParsersAction) -> None:
    """`numerical-analysis` (alias numerical_analysis): the shared analysis options only."""
    p = sub.add_parser("numerical-analysis", aliases=["numerical_analysis"],
                       help="soft scores, ROC and DET curves with AUC (numerical_analysis.py)",
                       description="Soft scores of the real and the fake class on the test split; ROC and DET "
                       "curves with AUC for both scores (positive class = fake, as in the report).")
    _add_analysis_args(p)


def _add_saliency_map(sub: argparse._SubParsersAction) -> None:
    """`saliency-map` (alias saliency_map): the shared analysis options and which images are shown."""
    p = sub.add_parser("saliency-map", aliases=["saliency_map"],
                       help="saliency maps and per-class mean saliency maps (saliency_map.py)",
                       description="Gradient saliency maps of test images for their true class, and the mean "
                       "saliency map of each class over the whole test split.")
    _add_analysis_args(p)
    p.add_argument("--n-pairs", type=positive_int, default=8, help="images in the per-image figure (default: 8)")
    p.add_argument("--seed", type=int, default=0, help="which images are shown (default: 0)")


def _add_grad_cam_analysis(sub: argparse._SubParsersAction) -> None:
    """`grad-cam-analysis` (alias grad_cam_analysis): the shared analysis options and the image seed."""
    p = sub.add_parser("grad-cam-analysis", aliases=["grad_cam_analysis"],
                       help="Grad-CAM of a real and a fake image (grad_cam_analysis.py)",
                       description="Grad-CAM at conv3 (SimpleNet) or Xception's last conv for a random real "
                       "and a random fake test image, for their true class.")
    _add_analysis_args(p)
    p.add_argument("--seed", type=int, default=None, help="fix which images are picked (default: random)")


def _add_localization(sub: argparse._SubParsersAction) -> None:
    """`localization`: the shared analysis options and the pointing-game tolerance."""
    p = sub.add_parser("localization", help="pointing game and energy in the planted-region mask",
                       description="For the generated data set (ground-truth masks): pointing game and share "
                       "of map energy inside the planted region, for Saliency, Grad-CAM and Grad-CAM++.")
    _add_analysis_args(p)
    p.add_argument("--tolerance", type=nonnegative_int, default=0, help="pointing-game tolerance in pixels (default: 0)")


def _add_demo(sub: argparse._SubParsersAction) -> None:
    """`demo`: the data set kind, sizes and training options of the whole study in one run."""
    p = sub.add_parser("demo", help="the whole study on the generated data set, in a few minutes on a CPU",
                       description="make-dataset, train SimpleNet, then plot, numerical analysis, saliency, "
                       "Grad-CAM and localisation; everything is written under --out.")
    p.add_argument("--kind", choices=("planted", "synthetic"), default="planted",
                   help="planted: the fakes_dataset half (default); synthetic: make the AutoGAN data set, its "
                        "spectrum and samples figures, train SimpleNet and XceptionBased and run the analyses")
    p.add_argument("--out", default=None,
                   help="output folder (default: runs/demo, or runs/demo-synthetic); its data set is reused when the "
                        "demo made it with the same settings, and any file the demo did not write where an output "
                        "goes stops it before any work")
    p.add_argument("--xception-weights", default="none",
                   help="synthetic: XceptionBased backbone weights, none | imagenet | PATH, or skip (default: none)")
    p.add_argument("--xception-size", type=positive_int, default=96,
                   help="synthetic: XceptionBased input side (default: 96, to fit a CPU; >= 71)")
    p.add_argument("--xception-epochs", type=positive_int, default=2, help="synthetic: XceptionBased epochs (default: 2)")
    p.add_argument("--image-size", type=positive_int, default=128, help="image and model input side (default: 128)")
    p.add_argument("--train", type=positive_int, default=None,
                   help="train images (default: 1200; synthetic 600)")
    p.add_argument("--val", type=positive_int, default=None,
                   help="val images (default: 200; synthetic 100)")
    p.add_argument("--test", type=positive_int, default=None,
                   help="test images (default: 200; synthetic 100)")
    p.add_argument("-e", "--epochs", type=int, default=5, help="epochs (default: 5)")
    p.add_argument("-b", "--batch-size", type=int, default=32, help="batch size (default: 32)")
    p.add_argument("-lr", "--lr", type=positive_float, default=1e-3, help="learning rate (default: 0.001)")
    p.add_argument("--seed", type=int, default=0, help="random seed (default: 0)")
    p.add_argument("--restart", action="store_true",
                   help="start the training runs over: discard interrupted runs saved under OUT/checkpoints (only "
                        "the files training wrote there). Without it a rerun resumes them, and stops with one line "
                        "if they were started with other settings")


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of all subcommands, one `_add_<command>` helper each.

    Returns:
        The `deepfake-xai` parser; `command` names the chosen subcommand.
    """
    parser = argparse.ArgumentParser(prog=PROG, description="Real/fake face detection with SimpleNet and "
                                     "an Xception transfer model, explained with saliency maps and Grad-CAM.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    _add_make_dataset(sub)
    _add_spectrum(sub)
    _add_plot_samples(sub)
    _add_summary(sub)
    _add_train(sub)
    _add_plot_accuracy_and_loss(sub)
    _add_numerical_analysis(sub)
    _add_saliency_map(sub)
    _add_grad_cam_analysis(sub)
    _add_localization(sub)
    _add_demo(sub)
    return parser


def _cmd_make_dataset(a) -> int:
    from .data import format_summary, summarize

    counts = {"train": a.train, "val": a.val, "test": a.test}
    if a.kind == "synthetic":
        from .synthetic_dataset import generate_synthetic_dataset

        dest = generate_synthetic_dataset(a.data_root, a.name or "synthetic_dataset", a.image_size, counts, a.seed,
                                          a.real_images, a.face_box, a.internal_size, a.generator_epochs,
                                          a.generator_width, a.upsampling, a.overwrite, progress=not a.quiet,
                                          generator_loss=a.generator_loss, restart=a.restart)
    else:
        from .make_dataset import generate_dataset

        dest = generate_dataset(a.data_root, a.name or "fakes_dataset", a.image_size, counts, a.fake_fraction,
                                a.seed, a.real_images, a.face_box, a.overwrite, progress=not a.quiet)
    print(format_summary(summarize(dest), str(dest)))
    print(f"wrote {dest}")
    return 0


def _cmd_summary(a) -> int:
    from .data import format_summary, resolve_dataset, summarize

    root = resolve_dataset(a.dataset, a.data_root)
    print(format_summary(summarize(root, check=a.check), str(root)))
    return 0


def _cmd_train(a) -> int:
    from .train import TrainConfig, train

    cfg = TrainConfig(dataset=a.dataset, model=a.model, lr=a.lr, batch_size=a.batch_size, epochs=a.epochs,
                      optimizer=a.optimizer, momentum=a.momentum, data_root=a.data_root, image_size=a.image_size,
                      weights=a.weights, mixed_precision=a.mixed_precision, strategy=a.strategy, seed=a.seed,
                      out_dir=a.out_dir,
                      checkpoint_dir=a.checkpoint_dir, restart=a.restart,
                      verbose="auto" if a.verbose is None else a.verbose, explain_every=a.explain_every)
    train(cfg)
    return 0


def _cmd_plot(a) -> int:
    from .analysis.plots import plot_accuracy_and_loss

    plot_accuracy_and_loss(a.json, a.model, a.dataset, a.out_dir, a.run)
    return 0


def _open(a, command: str):
    """The Analysis of an analysis command: its outputs in --out-dir checked before the checkpoint loads."""
    from .analysis.common import open_analysis

    return open_analysis(a.model, a.dataset, a.checkpoint, a.data_root, a.out_dir, command=command)


def _cmd_numerical(a) -> int:
    from .analysis.numerical import numerical_analysis

    numerical_analysis(_open(a, "numerical-analysis"), a.batch_size)
    return 0


def _cmd_saliency(a) -> int:
    from .analysis.saliency import saliency_analysis

    saliency_analysis(_open(a, "saliency-map"), a.n_pairs, a.batch_size, a.seed)
    return 0


def _cmd_gradcam(a) -> int:
    from .analysis.gradcam import grad_cam_analysis

    grad_cam_analysis(_open(a, "grad-cam-analysis"), a.seed, a.batch_size)
    return 0


def _cmd_localization(a) -> int:
    from .analysis.localization import localization_analysis

    localization_analysis(_open(a, "localization"), a.batch_size, tolerance=a.tolerance)
    return 0


def _cmd_spectrum(a) -> int:
    from .spectrum import spectrum_analysis

    spectrum_analysis(a.dataset, a.data_root, a.split, a.out_dir, a.limit)
    return 0


def _cmd_plot_samples(a) -> int:
    from .samples import plot_samples

    plot_samples(a.data_root, a.dataset, a.n, a.split, a.out_dir, a.seed)
    return 0


def _cmd_demo(a) -> int:
    from .demo import run_demo, run_synthetic_demo

    if a.kind == "synthetic":
        counts = {"train": a.train or 600, "val": a.val or 100, "test": a.test or 100}
        run_synthetic_demo(a.out or "runs/demo-synthetic", a.image_size, counts, a.epochs, a.batch_size, a.lr,
                           a.seed, xception_weights=a.xception_weights, xception_size=a.xception_size,
                           xception_epochs=a.xception_epochs, restart=a.restart)
        return 0
    counts = {"train": a.train or 1200, "val": a.val or 200, "test": a.test or 200}
    run_demo(a.out or "runs/demo", a.image_size, counts, a.epochs, a.batch_size, a.lr, a.seed, restart=a.restart)
    return 0


COMMANDS = {
    "make-dataset": _cmd_make_dataset, "make_dataset": _cmd_make_dataset, "summary": _cmd_summary,
    "train": _cmd_train, "train_main": _cmd_train,
    "plot-accuracy-and-loss": _cmd_plot, "plot_accuracy_and_loss": _cmd_plot,
    "numerical-analysis": _cmd_numerical, "numerical_analysis": _cmd_numerical,
    "saliency-map": _cmd_saliency, "saliency_map": _cmd_saliency,
    "grad-cam-analysis": _cmd_gradcam, "grad_cam_analysis": _cmd_gradcam,
    "localization": _cmd_localization, "demo": _cmd_demo, "spectrum": _cmd_spectrum,
    "plot-samples": _cmd_plot_samples, "plot_samples_of_faces_dataset": _cmd_plot_samples,
}


def _expected_errors() -> tuple[type[BaseException], ...]:
    from .data import DatasetError
    from .faces import FaceDetectorUnavailable
    from .models import WeightsError

    return (DatasetError, WeightsError, FaceDetectorUnavailable, IndexError)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of `deepfake-xai`: the exit status (cams.cli.errors: bad input 2, failure 1, Ctrl-C 130)."""
    from cams.cli.errors import run_command
    from cams.core.quiet import import_tensorflow_quietly

    import_tensorflow_quietly()  # _expected_errors imports TensorFlow: no C++ start-up chatter
    return run_command(PROG, build_parser(), argv, run=lambda args: COMMANDS[args.command](args),
                       user_errors=_expected_errors(),
                       interrupted_hint="run the same command again to resume training from the last completed epoch")


if __name__ == "__main__":
    sys.exit(main())
