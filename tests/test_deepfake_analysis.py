"""deepfake_xai analyses: plots, ROC/DET with AUC, saliency, Grad-CAM, localisation of the planted region."""
from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest

from deepfake_xai.analysis.common import open_analysis
from deepfake_xai.cli import main
from deepfake_xai.make_dataset import generate_dataset
from deepfake_xai.train import TrainConfig, train

COUNTS = {"train": 12, "val": 6, "test": 9}


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    base = tmp_path_factory.mktemp("df_analysis")
    data = base / "data"
    generate_dataset(data, "fakes_dataset", 64, COUNTS, progress=False, log=lambda s: None)
    out = train(TrainConfig(dataset="fakes_dataset", data_root=str(data), image_size=64, epochs=1, batch_size=8,
                            out_dir=str(base / "out"), checkpoint_dir=str(base / "checkpoints"), verbose=0),
                log=lambda s: None)
    return base, out


def _common(base):
    return ["-m", "SimpleNet", "-cpp", str(base / "checkpoints" / "fakes_dataset_SimpleNet_Adam.keras"),
            "-d", "fakes_dataset", "--data-root", str(base / "data"), "--out-dir", str(base / "out")]


def _is_png(path: Path) -> bool:
    return path.is_file() and path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_plot_accuracy_and_loss(trained, capsys):
    base, out = trained
    rc = main(["plot_accuracy_and_loss", "-m", "SimpleNet", "-j", str(out.json_path), "-d", "fakes_dataset",
               "--out-dir", str(base / "out")])
    assert rc == 0
    printed = capsys.readouterr().out
    for what in ("losses_plot", "accuracies_plot"):
        path = base / "out" / "figures" / f"fakes_dataset_SimpleNet_{what}.png"
        assert _is_png(path) and str(path) in printed
    assert main(["plot_accuracy_and_loss", "-j", str(out.json_path), "--run", "5"]) == 2
    assert "holds 1 runs" in capsys.readouterr().err
    assert main(["plot_accuracy_and_loss", "-j", str(base / "nope.json")]) == 2
    assert str(base / "nope.json") in capsys.readouterr().err


def test_numerical_analysis_scores_and_aucs(trained):
    base, _ = trained
    assert main(["numerical_analysis", *_common(base)]) == 0
    res = json.loads((base / "out" / "fakes_dataset_SimpleNet_numerical_analysis.json").read_text())
    assert res["n_test"] == COUNTS["test"] and res["n_real"] + res["n_fake"] == COUNTS["test"]
    assert 0.0 <= res["auc_fake_score"] <= 1.0
    # with two classes the real score is 1 - the fake score, so its ROC (positive = fake) mirrors
    assert res["auc_real_score"] == pytest.approx(1.0 - res["auc_fake_score"], abs=1e-9)
    with open(res["soft_scores"]) as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == COUNTS["test"]
    for r in rows:
        assert float(r["real_score"]) + float(r["fake_score"]) == pytest.approx(1.0, abs=1e-5)
        assert int(r["label"]) == (1 if "/fake/" in r["path"] else 0)
    acc = 100 * np.mean([(float(r["fake_score"]) > float(r["real_score"])) == int(r["label"]) for r in rows])
    assert res["test_accuracy"] == pytest.approx(acc)
    assert _is_png(Path(res["roc_curve"])) and _is_png(Path(res["det_curve"]))


def test_saliency_maps_and_class_means(trained):
    base, _ = trained
    assert main(["saliency_map", *_common(base), "--n-pairs", "4"]) == 0
    figs = base / "out" / "figures"
    assert _is_png(figs / "fakes_dataset_SimpleNet_saliency_maps_and_images_pairs.png")
    assert _is_png(figs / "fakes_dataset_SimpleNet_mean_saliency_maps.png")
    means = np.load(base / "out" / "fakes_dataset_SimpleNet_mean_saliency_maps.npz")
    assert set(means.files) == {"real", "fake"}
    for k in means.files:
        m = means[k]
        assert m.shape == (64, 64) and m.min() >= 0.0 and m.max() <= 1.0 and m.max() > 0.0


def test_saliency_mean_equals_mean_of_per_image_maps(trained):
    base, _ = trained
    from deepfake_xai.analysis.saliency import compute_gradient_saliency_maps, saliency_analysis

    an = open_analysis("SimpleNet", "fakes_dataset", base / "checkpoints" / "fakes_dataset_SimpleNet_Adam.keras",
                       base / "data", base / "out2", log=lambda s: None)
    res = saliency_analysis(an, n_pairs=2, batch_size=4)
    x, y, _ = an.load_split_arrays("test")
    maps = compute_gradient_saliency_maps(an.model, x, y)
    assert maps.shape == (len(y), 64, 64) and maps.dtype == np.float32
    np.testing.assert_allclose(res["mean"]["fake"], maps[y == 1].mean(axis=0), atol=1e-5)
    assert res["counts"] == {"real": int((y == 0).sum()), "fake": int((y == 1).sum())}


def test_grad_cam_real_and_fake(trained, capsys):
    base, _ = trained
    assert main(["grad_cam_analysis", *_common(base), "--seed", "1"]) == 0
    printed = capsys.readouterr().out
    assert "conv3" in printed
    for name in ("real", "fake"):
        assert _is_png(base / "out" / "figures" / f"fakes_dataset_SimpleNet_grad_cam_{name}.png")


def test_localization_against_ground_truth(trained):
    base, _ = trained
    assert main(["localization", *_common(base)]) == 0
    res = json.loads((base / "out" / "fakes_dataset_SimpleNet_localization.json").read_text())
    assert res["n_fakes"] == round(COUNTS["test"] / 3)
    assert set(res["methods"]) == {"saliency", "gradcam", "gradcam++"}
    for row in res["methods"].values():
        assert 0.0 <= row["pointing_game"] <= 1.0 and 0.0 <= row["energy_in_mask"] <= 1.0
        # pointing game counts whole images
        assert abs(row["pointing_game"] * res["n_fakes"] - round(row["pointing_game"] * res["n_fakes"])) < 1e-6
    assert 0.02 < res["chance"] < 0.4
    assert _is_png(Path(res["figure"]))


def test_localization_needs_masks_and_missing_checkpoint_is_clear(trained, tmp_path, capsys):
    import shutil

    base, _ = trained
    data = tmp_path / "data"
    shutil.copytree(base / "data" / "fakes_dataset", data / "fakes_dataset")
    shutil.rmtree(data / "fakes_dataset" / "masks")
    args = _common(base)
    args[args.index("--data-root") + 1] = str(data)
    assert main(["localization", *args]) == 2
    assert "make-dataset" in capsys.readouterr().err
    rc = main(["numerical_analysis", "-m", "SimpleNet", "-d", "fakes_dataset", "--data-root", str(base / "data"),
               "-cpp", str(tmp_path / "missing.keras")])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1 and str(tmp_path / "missing.keras") in err[0]


def test_grad_cam_on_xception_finds_the_last_conv_in_the_nested_base(trained, tmp_path, capsys):
    import cams
    from cams.training import save_model_atomic
    from deepfake_xai.models import xception_based

    base, _ = trained
    ckpt = save_model_atomic(xception_based(71, weights=None), tmp_path / "x.keras")
    rc = main(["grad_cam_analysis", "-m", "XceptionBased", "-cpp", str(ckpt), "-d", "fakes_dataset",
               "--data-root", str(base / "data"), "--out-dir", str(tmp_path / "out"), "--seed", "0"])
    assert rc == 0, capsys.readouterr().err
    assert "Xception's last conv" in capsys.readouterr().out
    for name in ("real", "fake"):
        assert _is_png(tmp_path / "out" / "figures" / f"fakes_dataset_XceptionBased_grad_cam_{name}.png")
    model = open_analysis("XceptionBased", "fakes_dataset", ckpt, base / "data", tmp_path / "o2",
                          log=lambda s: None).model
    x = np.random.default_rng(0).uniform(-1, 1, (2, 71, 71, 3)).astype(np.float32)
    maps = cams.GradCAM(model)(x, targets=[0, 1])
    assert maps.shape == (2, 71, 71) and maps.min() >= 0 and maps.max() <= 1
