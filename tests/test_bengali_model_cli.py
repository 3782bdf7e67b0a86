"""bengali_xai CNN, training, baselines, explanations, export and the `bengali-xai` command line."""
from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from bengali_xai.cli import build_parser, main
from bengali_xai.data_ekush import N_COLUMNS

TINY = ["--data", "synthetic", "--max-samples", "300", "--seed", "1"]


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> Path:
    """A CNN trained for one epoch on 300 synthetic digits through the command line."""
    out = tmp_path_factory.mktemp("train")
    assert main(["train", *TINY, "--epochs", "1", "--batch-size", "64", "--out", str(out)]) == 0
    return out


def test_cnn_is_the_papers_architecture():
    from bengali_xai.model import build_cnn

    m = build_cnn()
    assert [l.name for l in m.layers] == ["conv1", "conv2", "pool", "dropout", "flatten", "dense", "visualized_layer"]
    assert m.get_layer("conv1").filters == 32 and m.get_layer("conv2").filters == 64
    assert m.get_layer("conv2").kernel_size == (3, 3) and m.get_layer("pool").pool_size == (2, 2)
    assert m.get_layer("dropout").rate == 0.25 and m.get_layer("dense").units == 256
    assert m.get_layer("conv2").output.shape[1:] == (24, 24, 64)
    # 320 + 18,496 + 12*12*64*256 + 256 + 2,570
    assert m.count_params() == 320 + 18496 + 12 * 12 * 64 * 256 + 256 + 2570
    assert m.get_layer("visualized_layer").activation.__name__ == "softmax"
    assert m.loss == "categorical_crossentropy" and m.optimizer.__class__.__name__ == "Adam"


def test_train_writes_the_contract_files(trained):
    for name in ("model.keras", "history.json", "metrics.json", "loss.png", "accuracy.png"):
        assert (trained / name).is_file(), name
    metrics = json.loads((trained / "metrics.json").read_text())
    assert 0.0 <= metrics["test_accuracy"] <= 1.0 and metrics["test_loss"] > 0
    assert (metrics["n_train"], metrics["n_val"], metrics["n_test"]) == (180, 60, 60)
    assert metrics["test_set"] == "held-out fonts" and metrics["epochs"] == 1
    history = json.loads((trained / "history.json").read_text())
    assert set(history) >= {"loss", "val_loss", "accuracy", "val_accuracy"}
    assert all(len(v) == 1 for v in history.values())
    import matplotlib.image as mpimg

    assert mpimg.imread(trained / "loss.png").ndim == 3


def test_saved_model_reloads_and_predicts_probabilities(trained):
    import keras

    from bengali_xai.synthetic import make_synthetic

    model = keras.saving.load_model(trained / "model.keras")
    p = model.predict(make_synthetic(20, seed=5).x, verbose=0)
    assert p.shape == (20, 10)
    np.testing.assert_allclose(p.sum(axis=1), 1.0, atol=1e-5)


def test_mixed_precision_training_restores_float32(tmp_path):
    import keras

    assert main(["train", "--data", "synthetic", "--max-samples", "100", "--epochs", "1", "--batch-size", "50",
                 "--mixed-precision", "--out", str(tmp_path)]) == 0
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert metrics["dtype_policy"] in ("mixed_bfloat16", "mixed_float16")
    assert np.isfinite(metrics["test_loss"])
    assert keras.mixed_precision.global_policy().name == "float32"


def test_explain_writes_figures_and_stroke_energy(trained, tmp_path, capsys):
    out = tmp_path / "explain"
    rc = main(["explain", "--model", str(trained / "model.keras"), *TINY,
               "--methods", "gradcam,gradcam++,smoothgradcam++,scorecam", "--n", "4",
               "--energy-samples", "12", "--out", str(out)])
    assert rc == 0
    import matplotlib.image as mpimg

    for name in ("gradcam_triplets.png", "gradcampp_triplets.png", "smoothgradcampp_triplets.png",
                 "scorecam_triplets.png", "methods_grid.png"):
        img = mpimg.imread(out / name)
        assert img.ndim == 3 and img.shape[0] > 100, name
    summary = json.loads((out / "explain.json").read_text())
    assert summary["layer"] == "conv2" and len(summary["true"]) == 4
    assert sorted(summary["true"]) == [0, 1, 2, 3]  # one digit per class, cycling
    for method in ("gradcam", "gradcam++", "smoothgradcam++", "scorecam"):
        e = summary["energy"][method]
        assert 0.0 <= e["energy_on_strokes"] <= 1.0 and 0.0 < e["mask_area"] < 1.0
    printed = capsys.readouterr().out
    assert str(out / "methods_grid.png") in printed


def test_stroke_energy_definition():
    from bengali_xai.explain import stroke_energy, stroke_masks

    img = np.zeros((1, 28, 28, 1), np.float32)
    img[0, 10:18, 13:15] = 1.0  # a vertical stroke, 8 x 2 pixels
    mask = stroke_masks(img, dilation=2)
    assert mask.shape == (1, 28, 28)
    assert mask[0, 10:18, 11:17].all() and not mask[0, 10:18, 17:].any() and not mask[0, :8].any()
    np.testing.assert_array_equal(stroke_masks(1.0 - img, dilation=2), mask)  # dark ink on white
    on_stroke = mask.astype(np.float32)
    assert stroke_energy(on_stroke, img)["energy_on_strokes"] == pytest.approx(1.0)
    uniform = np.ones((1, 28, 28), np.float32)
    e = stroke_energy(uniform, img)
    assert e["energy_on_strokes"] == pytest.approx(mask.mean()) == pytest.approx(e["mask_area"])


def test_export_savedmodel_matches_keras(trained, tmp_path):
    import keras
    import tensorflow as tf

    from bengali_xai.synthetic import make_synthetic

    out = tmp_path / "sm"
    assert main(["export", "--model", str(trained / "model.keras"), "--out", str(out)]) == 0
    assert (out / "saved_model.pb").is_file()
    x = make_synthetic(20, seed=3).x[:4]
    loaded = tf.saved_model.load(str(out))  # keep a reference: its variables die with it
    served = loaded.serve(tf.constant(x))
    model = keras.saving.load_model(trained / "model.keras")
    np.testing.assert_allclose(served["predictions"].numpy(), model.predict(x, verbose=0), atol=1e-5)
    import cams

    np.testing.assert_allclose(served["map"].numpy(), cams.GradCAM(model)(x), atol=1e-4)
    assert main(["export", "--model", str(trained / "model.keras"), "--out", str(out)]) == 0  # replaces it


def test_baselines_all_ten_write_table_charts_and_confusion_matrix(tmp_path, capsys):
    rc = main(["baselines", "--data", "synthetic", "--max-samples", "100", "--slow-max-train", "40",
               "--out", str(tmp_path)])
    assert rc == 0
    with open(tmp_path / "baselines.csv") as fh:
        rows = list(csv.DictReader(fh))
    assert list(rows[0]) == ["classifier", "accuracy", "log_loss"]
    assert [r["classifier"] for r in rows] == [
        "KNeighborsClassifier", "SVC", "NuSVC", "DecisionTreeClassifier", "RandomForestClassifier",
        "AdaBoostClassifier", "GradientBoostingClassifier", "GaussianNB", "LinearDiscriminantAnalysis",
        "QuadraticDiscriminantAnalysis"]
    for r in rows:
        assert 0.0 <= float(r["accuracy"]) <= 1.0 and float(r["log_loss"]) > 0.0
    md = (tmp_path / "baselines.md").read_text()
    assert "| Classifier | Accuracy (%) | Log loss |" in md and md.count("\n| ") == 11
    assert "| SVC |" in md and "| 40 |" in md and "| 80 |" in md  # slow ones capped, others on all 80
    for name in ("baselines_accuracy.png", "baselines_log_loss.png", "confusion_matrix.png"):
        assert (tmp_path / name).stat().st_size > 1000
    out = capsys.readouterr().out
    assert "[1/10] KNeighborsClassifier" in out and "[10/10] QuadraticDiscriminantAnalysis" in out


def test_baselines_slow_cap_and_subset(tmp_path):
    from bengali_xai.baselines import run_baselines
    from bengali_xai.synthetic import make_synthetic

    data = make_synthetic(200, seed=0)
    rows = run_baselines(data, tmp_path, only=["KNeighborsClassifier", "NuSVC"], slow_max_train=50)
    assert [r["n_train"] for r in rows] == [160, 50]
    knn = rows[0]
    # KNN k=10 (the paper's setting): probabilities are multiples of 1/10
    from sklearn.neighbors import KNeighborsClassifier

    assert knn["accuracy"] == pytest.approx(
        KNeighborsClassifier(10).fit(data.x[~data.heldout].reshape(160, -1), data.y[~data.heldout])
        .score(data.x[data.heldout].reshape(40, -1), data.y[data.heldout]))


def test_every_subcommand_has_help(capsys):
    parser = build_parser()
    for cmd in ("train", "baselines", "explain", "export", "demo"):
        with pytest.raises(SystemExit) as exc:
            parser.parse_args([cmd, "--help"])
        assert exc.value.code == 0
        assert "--out" in capsys.readouterr().out


def run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "bengali_xai.cli", *args], capture_output=True, text=True, timeout=300)


def test_cli_bad_csv_is_one_line_error(tmp_path):
    f = tmp_path / "ekush" / "maleDigits.csv"
    f.parent.mkdir()
    f.write_text(",".join(["1"] * (N_COLUMNS - 1)) + "\n")
    r = run_cli("train", "--data", "ekush", "--data-dir", str(f.parent), "--out", str(tmp_path / "o"))
    assert r.returncode == 2
    lines = r.stderr.strip().splitlines()
    assert lines == [f"bengali-xai train: error: {f}: row 1 has 784 columns, expected 785 (784 pixels + label); "
                     "fix or remove that row"]
    assert not (tmp_path / "o" / "model.keras").exists()


def test_cli_errors_exit_nonzero_with_one_line(tmp_path):
    r = run_cli("explain", "--model", str(tmp_path / "missing.keras"), "--out", str(tmp_path))
    assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1
    assert "missing.keras: no such model file" in r.stderr
    r = run_cli("explain", "--model", "m.keras", "--methods", "gradcam,lime", "--out", str(tmp_path))
    from bengali_xai.cli import explainable_methods

    assert r.returncode == 2 and r.stderr.strip() == (
        f"bengali-xai explain: error: unknown method 'lime'; choose from {', '.join(explainable_methods())}")
    assert "lcam" not in explainable_methods() and "gradcam" in explainable_methods()
    r = run_cli("train", "--data", "numtadb", "--out", str(tmp_path))
    assert r.returncode == 2 and "--data numtadb needs --data-dir" in r.stderr
    r = run_cli("train", "--epochs", "0", "--out", str(tmp_path))
    assert r.returncode == 2 and "expected a number >= 1, got 0" in r.stderr


def test_cli_corrupt_model_file_is_one_line(tmp_path, capsys):
    bad = tmp_path / "model.keras"
    bad.write_bytes(b"garbage")
    assert main(["export", "--model", str(bad), "--out", str(tmp_path / "sm")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"bengali-xai export: error: {bad}: cannot load as a Keras model")
    assert not (tmp_path / "sm").exists()


def test_train_on_ekush_csvs_end_to_end(tmp_path):
    from test_bengali_data import write_ekush

    data = tmp_path / "ekush"  # --out is never inside --data-dir
    data.mkdir()
    write_ekush(data / "maleDigits.csv", n=60, seed=1)
    write_ekush(data / "femaleDigits.csv", n=40, seed=2)
    out = tmp_path / "run"
    assert main(["train", "--data", "ekush", "--data-dir", str(data), "--epochs", "1", "--batch-size", "32",
                 "--out", str(out)]) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert (metrics["n_train"], metrics["n_val"], metrics["n_test"]) == (60, 20, 20)
    assert metrics["test_set"] == "stratified 20%" and metrics["data_info"]["files"]["femaleDigits.csv"] == 40


def test_baselines_on_numtadb_folders(tmp_path):
    from test_bengali_data import make_numtadb

    make_numtadb(tmp_path / "numta", per_subset=30, subsets=("training-a", "training-d"))
    rc = main(["baselines", "--data", "numtadb", "--data-dir", str(tmp_path / "numta"), "--max-samples", "50",
               "--classifiers", "KNeighborsClassifier,GaussianNB", "--out", str(tmp_path / "b")])
    assert rc == 0
    rows = (tmp_path / "b" / "baselines.csv").read_text().splitlines()
    assert rows[0] == "classifier,accuracy,log_loss" and len(rows) == 3
    assert "(40 train / 10 test images)" in (tmp_path / "b" / "baselines.md").read_text()
    assert main(["baselines", "--data", "numtadb", "--data-dir", str(tmp_path / "numta"),
                 "--classifiers", "XGBoost", "--out", str(tmp_path / "b")]) == 2
