"""`deepfake-xai demo`: the report's command sequence on the generated data set, under one folder."""
from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Callable

from cams.core.files import write_json


def run_demo(out: str | os.PathLike = "runs/demo", image_size: int = 128, counts: dict[str, int] | None = None,
             epochs: int = 5, batch_size: int = 32, lr: float = 1e-3, seed: int = 0,
             log: Callable[[str], None] = print) -> dict:
    """make-dataset -> train SimpleNet -> plot -> numerical analysis -> saliency -> Grad-CAM -> localisation.

    Reuses `<out>/data/fakes_dataset` when it exists.

    Args:
        out: folder that receives the data set, checkpoints, results and figures.
        image_size: image and model input side in pixels.
        counts: images per split (default: the data set generator's).
        epochs: SimpleNet training epochs.
        batch_size: training batch size.
        lr: learning rate (Adam).
        seed: seed of the data set, the training and the Grad-CAM image choice.
        log: where progress lines go.

    Returns:
        The headline numbers, also written to `<out>/demo_summary.json`.
    """
    out = Path(out)
    data_root = out / "data"
    times: dict[str, float] = {}
    t = time.time()
    _make_planted_dataset(data_root, image_size, counts, seed, log)
    times["make_dataset"] = time.time() - t

    t = time.time()
    log("[2/7] train SimpleNet")
    trained = _train_simplenet(out, data_root, image_size, epochs, batch_size, lr, seed, log)
    times["train"] = time.time() - t

    numbers, loc = _analyse_planted(trained, out, data_root, seed, log, times)
    summary = _planted_summary(trained.record, data_root, image_size, epochs, numbers, loc, times)
    path = write_json(out / "demo_summary.json", summary)
    log(f"demo done in {sum(times.values()):.0f} s: test accuracy {numbers['test_accuracy']:.2f}% (best-val "
        f"checkpoint, epoch {summary['best_epoch']}), AUC real {numbers['auc_real_score']:.3f}, AUC fake "
        f"{numbers['auc_fake_score']:.3f}; wrote {path}")
    return summary


def _make_planted_dataset(data_root: Path, image_size: int, counts: dict[str, int] | None, seed: int,
                          log: Callable[[str], None]) -> None:
    """Step 1: generate `<data_root>/fakes_dataset`, or reuse it when it is already there."""
    from .make_dataset import generate_dataset

    if (data_root / "fakes_dataset" / "dataset.json").is_file():
        log(f"[1/7] reusing {data_root / 'fakes_dataset'}")
    else:
        log("[1/7] make-dataset")
        generate_dataset(data_root, "fakes_dataset", image_size, counts, seed=seed, log=log)


def _train_simplenet(out: Path, data_root: Path, image_size: int, epochs: int, batch_size: int, lr: float,
                     seed: int, log: Callable[[str], None]):
    """Step 2: train SimpleNet with Adam on fakes_dataset; returns train()'s result (record, checkpoint)."""
    from .train import TrainConfig, train

    cfg = TrainConfig(dataset="fakes_dataset", model="SimpleNet", lr=lr, batch_size=batch_size, epochs=epochs,
                      optimizer="Adam", data_root=str(data_root), image_size=image_size, seed=seed,
                      out_dir=str(out / "out"), checkpoint_dir=str(out / "checkpoints"), verbose=2)
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


def _train_and_analyse(model: str, data_root: Path, out: Path, image_size: int, epochs: int, batch_size: int,
                       lr: float, seed: int, weights: str | None, log: Callable[[str], None]) -> dict:
    """train_main.py -> plot_accuracy_and_loss.py -> numerical_analysis.py -> saliency_map.py ->
    grad_cam_analysis.py for one model on the synthetic data set; returns its headline numbers."""
    from .analysis.common import open_analysis
    from .analysis.gradcam import grad_cam_analysis
    from .analysis.numerical import numerical_analysis
    from .analysis.plots import plot_accuracy_and_loss
    from .analysis.saliency import saliency_analysis
    from .train import TrainConfig, train

    name = "synthetic_dataset"
    t = time.time()
    cfg = TrainConfig(dataset=name, model=model, lr=lr, batch_size=batch_size, epochs=epochs, optimizer="Adam",
                      data_root=str(data_root), image_size=image_size, weights=weights, seed=seed,
                      out_dir=str(out / "out"), checkpoint_dir=str(out / "checkpoints"), verbose=2)
    trained = train(cfg, log=log)
    plot_accuracy_and_loss(trained.json_path, model, name, out / "out", log=log)
    an = open_analysis(model, name, trained.checkpoint, data_root, out / "out", log=log)
    numbers = numerical_analysis(an)
    saliency_analysis(an)
    grad_cam_analysis(an, seed=seed)
    rec = trained.record
    best = rec["best_epoch"]
    return {"image_size": image_size, "epochs": epochs, "weights": cfg.resolved_weights(), "best_epoch": best,
            "test_acc_at_best_epoch": rec["test_acc"][best - 1], "checkpoint_test_accuracy": numbers["test_accuracy"],
            "auc_fake_score": numbers["auc_fake_score"], "seconds": time.time() - t}


def run_synthetic_demo(out: str | os.PathLike = "runs/demo-synthetic", image_size: int = 128,
                       counts: dict[str, int] | None = None, epochs: int = 5, batch_size: int = 32,
                       lr: float = 1e-3, seed: int = 0, xception_weights: str = "none", xception_size: int = 96,
                       xception_epochs: int = 2, log: Callable[[str], None] = print) -> dict:
    """The synthetic half: make-dataset --kind synthetic -> spectrum -> plot-samples -> SimpleNet (train,
    plots, ROC/DET, saliency, Grad-CAM) -> XceptionBased (the same; skipped with xception_weights="skip").

    Reuses `<out>/data/synthetic_dataset` when it exists. Writes `<out>/demo_summary.json`
    (accuracy and fake-score AUC of each model next to the report's 50% and 98.4%) and returns it.
    """
    from .samples import plot_samples
    from .spectrum import spectrum_analysis
    from .synthetic_dataset import generate_synthetic_dataset

    out = Path(out)
    data_root = out / "data"
    t0 = time.time()
    if (data_root / "synthetic_dataset" / "dataset.json").is_file():
        log(f"[1/5] reusing {data_root / 'synthetic_dataset'}")
    else:
        log("[1/5] make-dataset --kind synthetic")
        generate_synthetic_dataset(data_root, "synthetic_dataset", image_size, counts, seed=seed,
                                   internal_size=min(128, image_size - image_size % 4), log=log)
    log("[2/5] spectrum and samples figures")
    spectrum = spectrum_analysis("synthetic_dataset", data_root, "test", out / "out", log=log)
    plot_samples(data_root, None, 4, "train", out / "out", seed, log=log)
    log("[3/5] SimpleNet")
    models = {"SimpleNet": _train_and_analyse("SimpleNet", data_root, out, image_size, epochs, batch_size, lr,
                                              seed, None, log)}
    if xception_weights != "skip":
        log(f"[4/5] XceptionBased (--weights {xception_weights}, {xception_size} px, {xception_epochs} epochs)")
        models["XceptionBased"] = _train_and_analyse("XceptionBased", data_root, out, xception_size,
                                                     xception_epochs, batch_size, lr, seed, xception_weights, log)
    summary = {"data_set": str(data_root / "synthetic_dataset"), "counts": counts, "models": models,
               "report": {"SimpleNet": "50% (every image called real)", "XceptionBased": "98.4% (ImageNet weights)"},
               "spectrum": {k: spectrum[k] for k in ("mean_abs_diff_fake_vs_real", "mean_abs_diff_real_half_vs_half",
                                                     "high_frequency_real", "high_frequency_fake")},
               "seconds": time.time() - t0}
    path = write_json(out / "demo_summary.json", summary)
    log("[5/5] " + "; ".join(f"{m}: test accuracy {v['checkpoint_test_accuracy']:.1f}%, AUC {v['auc_fake_score']:.3f}"
                             for m, v in models.items()) + f" (report: 50% / 98.4%); {summary['seconds']:.0f} s; "
        f"wrote {path}")
    return summary
