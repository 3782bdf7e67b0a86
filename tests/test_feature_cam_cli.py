"""Feature CAM evaluation (the paper's Tables 2 and 3), figures and the `cams feature-cam` command."""
import json
import re

import numpy as np
import pytest
from PIL import Image

import cams
from cams.methods.feature_cam import edges as cams_edges
from cams.studies import feature_cam_tables as fce
from cams.cli import main
from cams_models import conv_gap_dense, images


@pytest.fixture(scope="module")
def model():
    import keras

    keras.utils.set_random_seed(0)
    return conv_gap_dense(size=24, softmax=True)


def test_evaluate_matches_metrics_and_computes_edges_once(model, monkeypatch):
    x = images(6, 24, seed=3)
    calls = []
    monkeypatch.setitem(cams_edges.EDGE_METHODS, "canny", lambda im: calls.append(1) or cams_edges.canny_edges(im))
    ev = fce.evaluate(model, x, bases=("gradcam", "gradcam++"), edges="canny")
    assert len(calls) == 1  # one edge pass for both bases
    assert ev.n_images == 6 and list(ev.scores) == ["gradcam", "gradcam++"]
    for b in ("gradcam", "gradcam++"):
        res = ev.results[b]
        for key, maps in [("base", res.base), ("add·blend21", res[("blend21", "add")]),
                          ("complement·blend11", res[("blend11", "complement")])]:
            # the library's own explanation-map scorer gives the same numbers
            ref = cams.metrics.explanation_map_scores(model, x, maps, percentile=80)
            assert ev.scores[b][key]["right_classification"] == pytest.approx(ref["right_classification"])
            assert ev.scores[b][key]["confidence"] == pytest.approx(ref["mean_confidence"], rel=1e-5)
            assert ev.original_confidence == pytest.approx(ref["original_confidence"], rel=1e-5)
    np.testing.assert_allclose(ev.results["gradcam"].base, cams.GradCAM(model)(x), atol=1e-6)


def test_tables_are_markdown_with_one_row_per_base(model):
    ev = fce.evaluate(model, images(4, 24), bases=("gradcam", "smoothgradcam++"), edges="canny")
    t2, t3 = fce.right_classification_table(ev), fce.confidence_table(ev)
    rows2 = [r for r in t2.splitlines() if r.startswith("| ")]
    assert rows2[0] == ("| Base CAM | Base CAM | add·feature | add·blend21 | add·blend11 | "
                        "complement·feature | complement·blend11 |")
    assert [r.split(" | ")[0] for r in rows2[1:]] == ["| Grad-CAM", "| Smooth Grad-CAM++"]
    assert "4 images" in t2 and "80th percentile" in t2
    row = [r for r in t3.splitlines() if r.startswith("| Grad-CAM |")][0]
    values = [float(v) for v in re.findall(r"([\d.]+)%", row)]
    s = ev.scores["gradcam"]
    expected = [ev.original_confidence, s["base"]["confidence"]] + [s[k]["confidence"] for k in
                ("add·feature", "add·blend21", "add·blend11", "complement·feature", "complement·blend11")]
    np.testing.assert_allclose(values, expected, atol=0.051)


def test_evaluate_rejects_unknown_base(model):
    with pytest.raises(ValueError, match="base must be one of 'gradcam', 'gradcam\\+\\+', 'smoothgradcam\\+\\+', .*got 'rise'"):
        fce.evaluate(model, images(2, 24), bases=("rise",), edges="canny")


@pytest.fixture(scope="module")
def saved(tmp_path_factory, model):
    root = tmp_path_factory.mktemp("fc_cli")
    model.save(root / "m.keras")
    folder = root / "imgs"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for i in range(5):
        img = np.zeros((30, 30, 3), np.uint8)
        img[5 + i : 20 + i, 6:22] = rng.integers(80, 255, 3, dtype=np.uint8)  # a coloured square
        Image.fromarray(img).save(folder / f"{i}.png")
    (folder / "broken.png").write_bytes(b"not an image")
    return root


def _run(saved, capsys, *extra, out="out"):
    argv = ["feature-cam", "--model", str(saved / "m.keras"), "--images", str(saved / "imgs"),
            "--out", str(saved / out), *extra]
    code = main(argv)
    return code, capsys.readouterr()


def test_command_writes_tables_json_and_figures(saved, capsys):
    code, cap = _run(saved, capsys, "--base", "gradcam,gradcam++", "--rows", "3")
    assert code == 0, cap.err
    out = saved / "out"
    assert "broken.png" in cap.err and "skipped" in cap.err
    t2 = (out / "right_classification.md").read_text()
    t3 = (out / "confidence.md").read_text()
    assert t2 in cap.out and t3 in cap.out
    assert "5 images, HED edges" in t2
    scores = json.loads((out / "scores.json").read_text())
    assert scores["n_images"] == 5 and set(scores["scores"]) == {"gradcam", "gradcam++"}
    assert len(scores["files"]) == 5 and len(scores["combinations"]) == 5
    for b in scores["scores"].values():
        for s in b.values():
            assert 0 <= s["right_classification"] <= 100 and 0 <= s["confidence"] <= 100
    for name in ("stages.png", "top5_grid.png"):
        img = np.asarray(Image.open(out / name))
        assert img.ndim == 3 and img.shape[0] > 100 and img.std() > 0
        assert str(out / name) in cap.out
    # 3 rows x 2 maps in the stages figure: taller than wide
    stages = Image.open(out / "stages.png")
    assert stages.size[1] > stages.size[0]


def test_command_all_combinations_with_canny(saved, capsys):
    code, cap = _run(saved, capsys, "--edges", "canny", "--base", "gradcam", "--all-combinations", "-q",
                     "--limit", "3", "--scale", str(1 / 127.5), "--offset", "-1", out="all")
    assert code == 0, cap.err
    scores = json.loads((saved / "all" / "scores.json").read_text())
    # the model saw pixels in [-1, 1]: --scale then --offset
    from cams.core.images import list_images, load_images

    x, _, _ = load_images(list_images([saved / "imgs"])[:3], (24, 24), 3, scale=1 / 127.5)
    p = cams.metrics.probabilities(cams.cli.load_model(str(saved / "m.keras")), x - 1.0)
    assert scores["original_confidence"] == pytest.approx(100 * p.max(axis=1).mean(), rel=1e-4)
    assert scores["edges"] == "canny" and scores["n_images"] == 3  # --limit 3 of the sorted files
    assert len(scores["scores"]["gradcam"]) == 10  # base + 9 combinations
    assert "multiply·blend21" in (saved / "all" / "right_classification.md").read_text()
    assert "edge maps" not in cap.err  # --quiet


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--base", "gradcam,scorecam"], "unknown base 'scorecam'; choose from gradcam, gradcam++, smoothgradcam++"),
        (["--limit", "0"], "argument --limit: expected a number >= 1, got 0"),
        (["--percentile", "100"], "argument --percentile: expected a percentile between 0 and 100 (exclusive), got 100"),
        (["--layer", "nope"], "no layer named 'nope'"),
    ],
)
def test_errors_are_one_readable_line(saved, capsys, extra, message):
    code, cap = _run(saved, capsys, "--edges", "canny", *extra, out="err")
    assert code == 2
    assert "Traceback" not in cap.err
    last = cap.err.strip().splitlines()[-1]
    assert last.startswith("cams feature-cam: error:") and message in last


def test_missing_model_and_images_are_one_line(saved, capsys):
    # --out outside --images (an --out inside them is refused first: tests/test_ownership_lcam_feature_cam.py)
    assert main(["feature-cam", "--model", "missing.keras", "--images", ".", "--out", str(saved / "o")]) == 2
    assert capsys.readouterr().err.strip() == (
        "cams feature-cam: error: missing.keras: no such model file (expected a .keras file saved with model.save)")
    assert main(["feature-cam", "--model", str(saved / "m.keras"), "--images", "nowhere", "--out", str(saved / "o")]) == 2
    assert capsys.readouterr().err.strip().endswith("nowhere: no such file or folder")
