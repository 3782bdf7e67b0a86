"""Rerun the numbers the README quotes over several training seeds; print mean, spread and the machine.

Studies (--studies, comma-separated):
  planted    the face study on the generated fakes_dataset: SimpleNet's test accuracy and fake-score
             AUC (best-validation checkpoint) and the pointing game of Saliency, Grad-CAM and Grad-CAM++
             against the planted-region masks;
  synthetic  the same detector on the AutoGAN synthetic_dataset (accuracy, AUC), plus XceptionBased when
             --xception-size is given (random weights; --xception-weights imagenet, or PATH to an Xception
             no-top .h5, for the report's ImageNet start), and the data set's sharpness: median variance
             of the Laplacian and high-frequency share of the real and the fake test images
             (deepfake_xai.sharpness), the fakes' PSNR/SSIM against their sources, and the contrast of
             the fake - real spectrum at the x4 up-sampling replica frequencies;
  bengali    the digit CNN on the synthetic Bengali digits (held-out-font test accuracy; share of the
             Grad-CAM, Grad-CAM++ and Score-CAM energy on the strokes +2 px of 200 test digits).
Each data set is generated once (data seed 0, as `make-dataset` does by default); only the training
seed changes between runs, and training is deterministic for a seed on a CPU (op determinism), so
the spread is what the choice of seed alone does to a figure.

    python scripts/reproduce_numbers.py                       # 3 seeds, 128 px, planted + synthetic
    python scripts/reproduce_numbers.py --image-size 256      # the report's verbatim size (slower)
    python scripts/reproduce_numbers.py --studies synthetic --train 600 --val 100 --test 100 \
        --xception-size 96 --out runs/reproduce-synthetic      # the synthetic comparison (the demo's set)
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


def _quiet(_msg: str) -> None:
    pass


def _face_run(study: str, model: str, data_root: Path, work: Path, seed: int, a, size: int, epochs: int,
              weights: str | None = None) -> dict:
    from deepfake_xai.analysis.common import open_analysis
    from deepfake_xai.analysis.localization import localization_analysis
    from deepfake_xai.analysis.numerical import numerical_analysis
    from deepfake_xai.train import TrainConfig, train

    name = "fakes_dataset" if study == "planted" else "synthetic_dataset"
    run = work / f"{study}_{model}_seed{seed}"
    cfg = TrainConfig(dataset=name, model=model, lr=1e-3, batch_size=32, epochs=epochs, data_root=str(data_root),
                      image_size=size, weights=weights, seed=seed, out_dir=str(run / "out"),
                      checkpoint_dir=str(run / "checkpoints"), resume=False, verbose=0)
    trained = train(cfg, log=_quiet)
    an = open_analysis(model, name, trained.checkpoint, data_root, run / "out", log=_quiet)
    num = numerical_analysis(an)
    row = {"test_accuracy": num["test_accuracy"], "auc_fake_score": num["auc_fake_score"]}
    if study == "planted":
        loc = localization_analysis(an)
        row.update({f"pointing_game_{m}": v["pointing_game"] for m, v in loc["methods"].items()})
    return row


def _bengali_run(work: Path, seed: int, a) -> dict:
    from bengali_xai.synthetic import make_synthetic
    from bengali_xai.train import train_cnn

    data = make_synthetic(a.bengali_samples, seed=0, progress=False)
    run = work / f"bengali_seed{seed}"
    r = train_cnn(data, run, epochs=a.bengali_epochs, batch_size=250, seed=seed)
    return {"test_accuracy": 100.0 * float(r["test_accuracy"]), **_bengali_energy(data, run / "model.keras")}


def _bengali_energy(data, model_path: Path) -> dict:
    """Share of each CAM's energy on the strokes (+2 px) of the 200 test digits `bengali-xai explain` scores."""
    from bengali_xai.explain import default_layer, load_model, make_explainer, pick_examples, stroke_energy

    model = load_model(model_path)
    idx = pick_examples(data, 200, seed=1)  # explain's default (--seed 0) scores the digits of seed 1
    out = {}
    for name in ("gradcam", "gradcam++", "scorecam"):
        maps = make_explainer(name, model, layer=default_layer(model))(data.x[idx])
        e = stroke_energy(maps, data.x[idx])
        out[f"energy_on_strokes_{name}"] = e["energy_on_strokes"]
    out["stroke_mask_area"] = e["mask_area"]
    return out


def _build_data(study: str, data_root: Path, a) -> None:
    counts = {"train": a.train, "val": a.val, "test": a.test}
    if study == "planted" and not (data_root / "fakes_dataset" / "dataset.json").is_file():
        from deepfake_xai.make_dataset import generate_dataset

        generate_dataset(data_root, "fakes_dataset", a.image_size, counts, seed=0, progress=False, log=_quiet)
    if study == "synthetic":
        from deepfake_xai.make_dataset import check_destination
        from deepfake_xai.synthetic_dataset import generate_synthetic_dataset, synthetic_settings

        internal = min(128, a.image_size - a.image_size % 4)
        folder = check_destination(data_root / "synthetic_dataset", True,
                                   synthetic_settings(a.image_size, counts, 0, None, "haar", internal))
        if folder.previous is None or folder.changed_settings():  # reused only when made with these settings
            generate_synthetic_dataset(data_root, "synthetic_dataset", a.image_size, counts, seed=0,
                                       internal_size=internal, overwrite=True, progress=False, log=_quiet)


def synthetic_figures(dataset: Path) -> dict:
    """Sharpness of the real and fake test images, the fakes' PSNR/SSIM (dataset.json) and the spectrum's
    contrast at the x4 up-sampling replicas (fake - real, and real half vs half as the yardstick)."""
    from deepfake_xai.sharpness import split_sharpness
    from deepfake_xai.spectrum import log_spectrum, peak_contrast, read_images

    info = json.loads((dataset / "dataset.json").read_text())
    real = read_images(sorted((dataset / "test" / "real").glob("*.png")))
    fake = read_images(sorted((dataset / "test" / "fake").glob("*.png")))
    half = len(real) // 2
    return {"sharpness_test": split_sharpness(dataset, "test"),
            "fidelity_test": info.get("fidelity_at_internal_size", {}).get("test"),
            "peak_contrast_fake_vs_real": peak_contrast(log_spectrum(fake) - log_spectrum(real)),
            "peak_contrast_real_half_vs_half": peak_contrast(log_spectrum(real[:half]) - log_spectrum(real[half:])),
            "generator_training": info.get("generator_training")}


def machine() -> str:
    """CPU model, core count, OS and library versions, for the record."""
    import keras
    import tensorflow as tf

    cpu = platform.processor() or "unknown CPU"
    try:
        cpu = next(l.split(":", 1)[1].strip() for l in Path("/proc/cpuinfo").read_text().splitlines()
                   if l.startswith("model name"))
    except (OSError, StopIteration):
        pass
    gpu = "GPU" if tf.config.list_physical_devices("GPU") else "no GPU"
    return (f"{cpu}, {os.cpu_count()} cores, {gpu}; {platform.system()} {platform.release()}; Python "
            f"{platform.python_version()}, TensorFlow {tf.__version__}, Keras {keras.__version__}")


def summarise(rows: list[dict]) -> dict:
    """{metric: {mean, std (sample, ddof=1), min, max, values}} over the seeds' rows."""
    out = {}
    for key in rows[0]:
        v = np.array([r[key] for r in rows], np.float64)
        out[key] = {"mean": float(v.mean()), "std": float(v.std(ddof=1)) if len(v) > 1 else 0.0,
                    "min": float(v.min()), "max": float(v.max()), "values": [float(x) for x in v]}
    return out


def print_table(info: dict, a) -> None:
    """The date, machine, settings and one line per study, model and metric."""
    print(f"\n{info['date']} on {info['machine']}")
    print(f"seeds {info['seeds']}; faces {a.image_size} px, {a.train}/{a.val}/{a.test} images, {a.epochs} epochs; "
          f"{info['seconds']:.0f} s in all")
    print(f"{'study':<10} {'model':<14} {'metric':<26} {'mean':>8} {'std':>7} {'min':>8} {'max':>8}")
    for study, models in info["results"].items():
        for model, metrics in models.items():
            for key, s in metrics.items():
                print(f"{study:<10} {model:<14} {key:<26} {s['mean']:>8.3f} {s['std']:>7.3f} {s['min']:>8.3f} "
                      f"{s['max']:>8.3f}")
    syn = info.get("data_sets", {}).get("synthetic")
    if syn:
        from deepfake_xai.sharpness import describe

        fid = syn["fidelity_test"] or {}
        print(f"synthetic test split, {describe(syn['sharpness_test'])}")
        print(f"fakes vs their source faces: PSNR {fid.get('psnr_db', float('nan')):.1f} dB, SSIM "
              f"{fid.get('ssim', float('nan')):.3f}; spectrum contrast at the x4 up-sampling replicas: fake - real "
              f"{syn['peak_contrast_fake_vs_real']:.3f}, real half vs half "
              f"{syn['peak_contrast_real_half_vs_half']:.3f}")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seeds", default="0,1,2", help="training seeds (default: 0,1,2)")
    ap.add_argument("--studies", default="planted,synthetic", help="planted,synthetic,bengali (default: the first two)")
    ap.add_argument("--image-size", type=int, default=128, help="face image and model side (default: 128)")
    ap.add_argument("--train", type=int, default=1200, help="face train images (default: 1200)")
    ap.add_argument("--val", type=int, default=200, help="face val images (default: 200)")
    ap.add_argument("--test", type=int, default=200, help="face test images (default: 200)")
    ap.add_argument("-e", "--epochs", type=int, default=5, help="SimpleNet epochs (default: 5, the report's)")
    ap.add_argument("--xception-size", type=int, default=0,
                    help="also train XceptionBased (random weights) on the synthetic set at this side (>= 71); "
                         "0 = skip (default)")
    ap.add_argument("--xception-epochs", type=int, default=2, help="XceptionBased epochs (default: 2)")
    ap.add_argument("--xception-weights", default="none",
                    help="XceptionBased backbone: none (random, default), imagenet (Keras' download) or PATH to an "
                         "Xception no-top .h5 (the report's ImageNet start without a download)")
    ap.add_argument("--bengali-samples", type=int, default=20000, help="synthetic digits (default: 20000)")
    ap.add_argument("--bengali-epochs", type=int, default=10, help="digit CNN epochs (default: 10, the demo's)")
    ap.add_argument("--out", default="runs/reproduce", help="work folder; results in OUT/reproduce.json")
    a = ap.parse_args(argv)
    seeds = [int(s) for s in a.seeds.split(",") if s.strip()]
    studies = [s.strip() for s in a.studies.split(",") if s.strip()]
    unknown = set(studies) - {"planted", "synthetic", "bengali"}
    if unknown or not seeds:
        ap.error(f"unknown --studies {sorted(unknown)}" if unknown else "--seeds needs at least one seed")
    work = Path(a.out)
    data_root = work / "data"
    started = datetime.now(timezone.utc)
    t0 = time.time()
    results = {}
    for study in studies:
        if study != "bengali":
            _build_data(study, data_root, a)
        runs = {"SimpleNet": []} if study != "bengali" else {"DigitCNN": []}
        if study == "synthetic" and a.xception_size:
            runs["XceptionBased"] = []
        for seed in seeds:
            for model in runs:
                t = time.time()
                if study == "bengali":
                    row = _bengali_run(work, seed, a)
                elif model == "XceptionBased":
                    row = _face_run(study, model, data_root, work, seed, a, a.xception_size, a.xception_epochs,
                                    weights=a.xception_weights)
                else:
                    row = _face_run(study, model, data_root, work, seed, a, a.image_size, a.epochs)
                runs[model].append(row)
                print(f"{study} {model} seed {seed}: " + ", ".join(f"{k} {v:.3f}" for k, v in row.items())
                      + f" ({time.time() - t:.0f} s)", flush=True)
        results[study] = {m: summarise(rows) for m, rows in runs.items()}
    figures = {"synthetic": synthetic_figures(data_root / "synthetic_dataset")} if "synthetic" in studies else {}
    info = {"date": started.isoformat(timespec="seconds"), "machine": machine(), "seeds": seeds,
            "settings": {k: v for k, v in vars(a).items() if k not in ("out",)}, "seconds": time.time() - t0,
            "results": results, "data_sets": figures}
    work.mkdir(parents=True, exist_ok=True)
    (work / "reproduce.json").write_text(json.dumps(info, indent=2))
    print_table(info, a)
    print(f"wrote {work / 'reproduce.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
