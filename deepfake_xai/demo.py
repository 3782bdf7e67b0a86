"""`deepfake-xai demo`: the report's command sequence on the generated data set, under one folder.

Every output of the sequence is checked before any work: the data set folder (reused when this
command generated it with the same settings, regenerated when it generated it with others, a folder
of the user's refused), the training JSON and checkpoint, each analysis' files and demo_summary.json:
a file of another origin where one goes stops the demo with one line naming it.
"""
from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Callable, Sequence

from cams.core.files import write_json
from cams.core.outputs import OutputFolder

SUMMARY = "demo_summary.json"
PLANTED_ANALYSES = ("plot-accuracy-and-loss", "numerical-analysis", "saliency-map", "grad-cam-analysis",
                    "localization")
SYNTHETIC_ANALYSES = PLANTED_ANALYSES[:-1]


def run_demo(out: str | os.PathLike = "runs/demo", image_size: int = 128, counts: dict[str, int] | None = None,
             epochs: int = 5, batch_size: int = 32, lr: float = 1e-3, seed: int = 0,
             log: Callable[[str], None] = print, restart: bool = False) -> dict:
    """make-dataset -> train SimpleNet -> plot -> numerical analysis -> saliency -> Grad-CAM -> localisation.

    Reuses `<out>/data/fakes_dataset` when this command generated it with the same settings.

    Args:
        out: folder that receives the data set, checkpoints, results and figures.
        image_size: image and model input side in pixels.
        counts: images per split (default: the data set generator's).
        epochs: SimpleNet training epochs.
        batch_size: training batch size.
        lr: learning rate (Adam).
        seed: seed of the data set, the training and the Grad-CAM image choice.
        log: where progress lines go.
        restart: discard an interrupted training run's own backup and start it over.

    Returns:
        The headline numbers, also written to `<out>/demo_summary.json`.
    """
    from .make_dataset import DEFAULT_COUNTS, planted_settings

    out = Path(out)
    data_root = out / "data"
    counts = dict(counts or DEFAULT_COUNTS)
    cfg = _config("SimpleNet", "fakes_dataset", data_root, out, image_size, epochs, batch_size, lr, seed, None,
                  restart)
    reuse = check_demo_outputs(out, data_root / "fakes_dataset",
                               planted_settings(image_size, counts, 1 / 3, seed, None, "haar"), [cfg], PLANTED_ANALYSES)
    times: dict[str, float] = {}
    t = time.time()
    _make_planted_dataset(data_root, image_size, counts, seed, log, reuse)
    times["make_dataset"] = time.time() - t

    t = time.time()
    log("[2/7] train SimpleNet")
    trained = _train(cfg, log)
    times["train"] = time.time() - t

    numbers, loc = _analyse_planted(trained, out, data_root, seed, log, times)
    summary = _planted_summary(trained.record, data_root, image_size, epochs, numbers, loc, times)
    path = _write_summary(out, summary)
    log(f"demo done in {sum(times.values()):.0f} s: test accuracy {numbers['test_accuracy']:.2f}% (best-val "
        f"checkpoint, epoch {summary['best_epoch']}), AUC real {numbers['auc_real_score']:.3f}, AUC fake "
        f"{numbers['auc_fake_score']:.3f}; wrote {path}")
    return summary


def check_demo_outputs(out: Path, dataset: Path, dataset_settings: dict, configs: Sequence,
                       analyses: Sequence[str], extra: Callable[[], None] | None = None) -> bool:
    """Check every output of the demo before any work (see the module docstring).

    Args:
        out: the demo's --out.
        dataset: the data set folder it generates (or reuses).
        dataset_settings: the generator settings it would use.
        configs: the TrainConfig of each model it trains.
        analyses: the analysis commands it runs for each model.
        extra: further checks (the synthetic demo's spectrum and samples figures).

    Returns:
        True when `dataset` is this command's with the same settings, to be reused.

    Raises:
        ValueError, FileExistsError: one line naming the path in the way.
    """
    from .analysis.common import analysis_outputs
    from .make_dataset import check_destination
    from .train import train_outputs

    folder = check_destination(dataset, True, dataset_settings, option="--out")  # overwrite: only its own
    reuse = folder.previous is not None and not folder.changed_settings()
    for cfg in configs:
        train_outputs(cfg, dataset)
        for command in analyses:
            analysis_outputs(cfg.out_dir, command, dataset.name, cfg.model)
    if extra is not None:
        extra()
    _summary_folder(out).claim([SUMMARY])
    return reuse


def _summary_folder(out: Path) -> OutputFolder:
    return OutputFolder(out, "demo", "deepfake-xai demo", option="--out")


def _write_summary(out: Path, summary: dict) -> Path:
    """<out>/demo_summary.json, recorded in the demo's run manifest."""
    folder = _summary_folder(out)
    folder.record(SUMMARY)
    return write_json(folder.path(SUMMARY), summary)


def _make_planted_dataset(data_root: Path, image_size: int, counts: dict[str, int], seed: int,
                          log: Callable[[str], None], reuse: bool) -> None:
    """Step 1: generate `<data_root>/fakes_dataset` (replacing one generated with other settings), or reuse it."""
    from .make_dataset import generate_dataset

    if reuse:
        log(f"[1/7] reusing {data_root / 'fakes_dataset'}")
    else:
        log("[1/7] make-dataset")
        generate_dataset(data_root, "fakes_dataset", image_size, counts, seed=seed, overwrite=True, log=log)


def _config(model: str, dataset: str, data_root: Path, out: Path, image_size: int, epochs: int, batch_size: int,
            lr: float, seed: int, weights: str | None, restart: bool):
    """The TrainConfig of one model of the demo (Adam; JSON under out/out, checkpoints under out/checkpoints)."""
    from .train import TrainConfig

    return TrainConfig(dataset=dataset, model=model, lr=lr, batch_size=batch_size, epochs=epochs, optimizer="Adam",
                       data_root=str(data_root), image_size=image_size, weights=weights, seed=seed,
                       out_dir=str(out / "out"), checkpoint_dir=str(out / "checkpoints"), verbose=2, restart=restart)


def _train(cfg, log: Callable[[str], None]):
    """Train one model; returns train()'s result (record, checkpoint)."""
    from .train import train

    return train(cfg, log=log)


def _analyse_planted(trained, out: Path, data_root: Path, seed: int, log: Callable[[str], None],
                     times: dict[str, float]) -> tuple[dict, dict]:
    """Steps 3-7 on the trained SimpleNet; adds their timings to `times`.

    Returns the numerical analysis' numbers and the localisation results.
    """
    from .analysis.common import open_analysis
    from .analysis.gradcam import grad_cam_analysis
    from .analysis.localization import localization_analysis
    from .analysis.numerical import numerical_analysis
    from .analysis.plots import plot_accuracy_and_loss
    from .analysis.saliency import saliency_analysis

    t = time.time()
    log("[3/7] plot_accuracy_and_loss")
    plot_accuracy_and_loss(trained.json_path, "SimpleNet", "fakes_dataset", out / "out", log=log)
    an = open_analysis("SimpleNet", "fakes_dataset", trained.checkpoint, data_root, out / "out", log=log)
    log("[4/7] numerical_analysis")
    numbers = numerical_analysis(an)
    times["plot_and_numerical"] = time.time() - t
    t = time.time()
    log("[5/7] saliency_map")
    saliency_analysis(an)
    log("[6/7] grad_cam_analysis")
    grad_cam_analysis(an, seed=seed)
    times["saliency_and_gradcam"] = time.time() - t
    t = time.time()
    log("[7/7] localization")
    loc = localization_analysis(an)
    times["localization"] = time.time() - t
    return numbers, loc


def _planted_summary(rec: dict, data_root: Path, image_size: int, epochs: int, numbers: dict, loc: dict,
                     times: dict[str, float]) -> dict:
    """The demo_summary.json of the planted demo: training record at the best epoch, AUCs, localisation."""
    best = rec["best_epoch"]
    return {
        "data_set": str(data_root / "fakes_dataset"), "image_size": image_size, "counts": rec["counts"],
        "epochs": epochs, "best_epoch": best, "val_acc_at_best": rec["val_acc"][best - 1],
        "test_acc_at_best_epoch": rec["test_acc"][best - 1], "test_acc_last_epoch": rec["test_acc"][-1],
        "checkpoint_test_accuracy": numbers["test_accuracy"],
        "auc_real_score": numbers["auc_real_score"], "auc_fake_score": numbers["auc_fake_score"],
        "localization": loc["methods"], "localization_chance": loc["chance"], "seconds": times,
    }


def _train_and_analyse(cfg, log: Callable[[str], None]) -> dict:
    """train_main.py -> plot_accuracy_and_loss.py -> numerical_analysis.py -> saliency_map.py ->
    grad_cam_analysis.py for one model on the synthetic data set; returns its headline numbers."""
    from .analysis.common import open_analysis
    from .analysis.gradcam import grad_cam_analysis
    from .analysis.numerical import numerical_analysis
    from .analysis.plots import plot_accuracy_and_loss
    from .analysis.saliency import saliency_analysis

    t = time.time()
    trained = _train(cfg, log)
    out_dir = Path(cfg.out_dir)
    plot_accuracy_and_loss(trained.json_path, cfg.model, cfg.dataset, out_dir, log=log)
    an = open_analysis(cfg.model, cfg.dataset, trained.checkpoint, cfg.data_root, out_dir, log=log)
    numbers = numerical_analysis(an)
    saliency_analysis(an)
    grad_cam_analysis(an, seed=cfg.seed)
    rec = trained.record
    best = rec["best_epoch"]
    return {"image_size": cfg.image_size, "epochs": cfg.epochs, "weights": cfg.resolved_weights(), "best_epoch": best,
            "test_acc_at_best_epoch": rec["test_acc"][best - 1], "checkpoint_test_accuracy": numbers["test_accuracy"],
            "auc_fake_score": numbers["auc_fake_score"], "seconds": time.time() - t}


def run_synthetic_demo(out: str | os.PathLike = "runs/demo-synthetic", image_size: int = 128,
                       counts: dict[str, int] | None = None, epochs: int = 5, batch_size: int = 32,
                       lr: float = 1e-3, seed: int = 0, xception_weights: str = "none", xception_size: int = 96,
                       xception_epochs: int = 2, log: Callable[[str], None] = print, restart: bool = False) -> dict:
    """The synthetic half: make-dataset --kind synthetic -> spectrum -> plot-samples -> SimpleNet (train,
    plots, ROC/DET, saliency, Grad-CAM) -> XceptionBased (the same; skipped with xception_weights="skip").

    Reuses `<out>/data/synthetic_dataset` when this command generated it with the same settings. Writes
    `<out>/demo_summary.json` (accuracy and fake-score AUC of each model next to the report's 50% and
    98.4%) and returns it. `restart` discards interrupted training runs' own backups.
    """
    from .samples import plot_samples
    from .spectrum import spectrum_analysis

    out, t0 = Path(out), time.time()
    data_root = out / "data"
    configs = [_config("SimpleNet", "synthetic_dataset", data_root, out, image_size, epochs, batch_size, lr, seed,
                       None, restart)]
    if xception_weights != "skip":
        configs.append(_config("XceptionBased", "synthetic_dataset", data_root, out, xception_size, xception_epochs,
                               batch_size, lr, seed, xception_weights, restart))
    reuse = _check_synthetic_outputs(out, data_root, image_size, counts, seed, configs)
    _make_synthetic_dataset(data_root, image_size, counts, seed, log, reuse)
    log("[2/5] spectrum and samples figures")
    spectrum = spectrum_analysis("synthetic_dataset", data_root, "test", out / "out", log=log)
    plot_samples(data_root, None, 4, "train", out / "out", seed, log=log)
    models = {}
    for step, cfg in zip(("[3/5] SimpleNet", f"[4/5] XceptionBased (--weights {xception_weights}, {xception_size} "
                                             f"px, {xception_epochs} epochs)"), configs):
        log(step)
        models[cfg.model] = _train_and_analyse(cfg, log)
    summary = {"data_set": str(data_root / "synthetic_dataset"), "counts": counts, "models": models,
               "report": {"SimpleNet": "50% (every image called real)", "XceptionBased": "98.4% (ImageNet weights)"},
               "spectrum": {k: spectrum[k] for k in ("mean_abs_diff_fake_vs_real", "mean_abs_diff_real_half_vs_half",
                                                     "high_frequency_real", "high_frequency_fake",
                                                     "upsampling_peak_contrast_fake_vs_real",
                                                     "upsampling_peak_contrast_real_half_vs_half")},
               "sharpness_test": _test_sharpness(data_root / "synthetic_dataset"), "seconds": time.time() - t0}
    path = _write_summary(out, summary)
    log("[5/5] " + "; ".join(f"{m}: test accuracy {v['checkpoint_test_accuracy']:.1f}%, AUC {v['auc_fake_score']:.3f}"
                             for m, v in models.items()) + f" (report: 50% / 98.4%); {summary['seconds']:.0f} s; "
        f"wrote {path}")
    return summary


def _test_sharpness(dataset: Path) -> dict | None:
    """The test split's real vs fake sharpness that make-dataset recorded in dataset.json (None if absent)."""
    import json

    try:
        return json.loads((dataset / "dataset.json").read_text()).get("sharpness", {}).get("test")
    except (OSError, ValueError):
        return None


def _synthetic_internal_size(image_size: int) -> int:
    return min(128, image_size - image_size % 4)


def _check_synthetic_outputs(out: Path, data_root: Path, image_size: int, counts: dict[str, int] | None, seed: int,
                             configs: list) -> bool:
    """check_demo_outputs for the synthetic half, with its spectrum and samples figures."""
    from .samples import samples_outputs
    from .spectrum import spectrum_outputs
    from .synthetic_dataset import DEFAULT_COUNTS, synthetic_settings

    dataset = data_root / "synthetic_dataset"
    settings = synthetic_settings(image_size, dict(counts or DEFAULT_COUNTS), seed, None, "haar",
                                  _synthetic_internal_size(image_size))

    def figures() -> None:
        spectrum_outputs(out / "out", dataset, "test")
        samples_outputs(out / "out", [dataset])

    return check_demo_outputs(out, dataset, settings, configs, SYNTHETIC_ANALYSES, figures)


def _make_synthetic_dataset(data_root: Path, image_size: int, counts: dict[str, int] | None, seed: int,
                            log: Callable[[str], None], reuse: bool) -> None:
    """Step 1: generate `<data_root>/synthetic_dataset` (replacing one generated with other settings), or reuse it."""
    from .synthetic_dataset import generate_synthetic_dataset

    if reuse:
        log(f"[1/5] reusing {data_root / 'synthetic_dataset'}")
    else:
        log("[1/5] make-dataset --kind synthetic")
        generate_synthetic_dataset(data_root, "synthetic_dataset", image_size, counts, seed=seed,
                                   internal_size=_synthetic_internal_size(image_size), overwrite=True, log=log)
