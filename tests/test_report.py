"""`cams report` and `--report`: the page's data agrees with what the run wrote, thumbnails with the
run's overlays, the page is self-contained, and nothing of the user's is replaced."""
import csv
import hashlib
import io
import json
import re
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from cams_models import conv_gap_dense

DOC = Path(__file__).resolve().parents[1] / "docs" / "bad_inputs.md"
CASES = ["report-no-run", "report-user-file", "report-user-thumbs", "report-url-out", "report-scores-no-file",
         "report-run-unfinished"]


def run_cams(argv):
    from cams.cli import main

    return main(argv)


def page_data(html: str) -> dict:
    found = re.search(r'<script type="application/json" id="report-data">(.*?)</script>', html, re.S)
    return json.loads(found.group(1))


def snapshot(root: Path) -> dict:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in root.rglob("*") if p.is_file()}


@pytest.fixture(scope="module")
def ws(tmp_path_factory):
    """A model, 7 images, and one `explain-folder` run (gradcam, gradcam++) of them with a scores.csv."""
    from cams.distributed.local import explain_folder
    from cams.methods import registry

    root = tmp_path_factory.mktemp("report")
    model = conv_gap_dense(size=16, classes=3, softmax=True)
    model.save(root / "m.keras")
    (root / "imgs").mkdir()
    rng = np.random.default_rng(1)
    yy, xx = np.mgrid[0:16, 0:16]
    for i in range(7):  # smooth pictures: a bright blob on a coloured background
        cy, cx = rng.integers(3, 13, 2)
        blob = np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / 12.0)[..., None]
        pixels = 255 * (0.8 * blob + 0.2 * rng.random(3))
        Image.fromarray(pixels.astype(np.uint8)).save(root / "imgs" / f"im{i}.png")
    explainers = registry.build_explainers(model, ["gradcam", "gradcam++"])
    explain_folder(model, [root / "imgs"], root / "ef", explainers, progress=False)
    with open(root / "ef" / "predictions.csv", encoding="utf-8", newline="") as f:
        files = [r["file"] for r in csv.DictReader(f)]
    with open(root / "ef" / "scores.csv", "w", encoding="utf-8", newline="") as f:
        w = csv.writer(f)
        w.writerow(["file", "method", "pointing game", "AD(100%)"])
        for i, name in enumerate(files):
            w.writerow([name, "gradcam", i % 2, 10.0 * i])
    return {"root": root, "model": model, "files": files}


def test_report_shows_every_image_with_the_runs_prediction_and_every_overlay(ws):
    from cams.report import report_for_run

    out = ws["root"] / "ef"
    path = report_for_run(out, labels=["cat", "dog", "owl"])
    data = page_data(path.read_text(encoding="utf-8"))
    with open(out / "predictions.csv", encoding="utf-8", newline="") as f:
        rows = list(csv.DictReader(f))
    assert [r[0] for r in data["rows"]] == [r["file"] for r in rows]
    x = np.stack([np.asarray(Image.open(r["file"]), np.float32) / 255 for r in rows])
    probs = ws["model"].predict(x, verbose=0)  # the model's own softmax output, independently of the run
    assert [r[1] for r in data["rows"]] == list(probs.argmax(1))
    np.testing.assert_allclose([r[3] for r in data["rows"]], probs.max(1), atol=1e-5)
    assert [r[2] for r in data["rows"]] == [["cat", "dog", "owl"][k] for k in probs.argmax(1)]
    assert data["methods"] == ["gradcam", "gradcam++"]
    assert sum(c[2] for c in data["classes"]) == len(rows)
    for i, r in enumerate(rows):  # each thumbnail is the run's overlay PNG (JPEG-compressed)
        for k, method in enumerate(data["methods"], start=1):
            thumb = np.asarray(Image.open(out / "report_files" / "0" / f"{i}.{k}.jpg"), np.float32)
            stem = r["maps"][len("maps/"):-len(".npz")]
            png = np.asarray(Image.open(out / "overlays" / f"{stem}.{method}.png").convert("RGB"), np.float32)
            assert thumb.shape == png.shape and np.abs(thumb - png).mean() < 12
        original = np.asarray(Image.open(out / "report_files" / "0" / f"{i}.0.jpg"), np.float32)
        assert np.abs(original - x[i] * 255).mean() < 12


def test_scores_become_columns_named_by_method(ws):
    from cams.report import report_for_run

    data = page_data(report_for_run(ws["root"] / "ef").read_text(encoding="utf-8"))
    assert data["scores"] == ["pointing game (gradcam)", "AD(100%) (gradcam)"]
    col = data["columns"].index("AD(100%) (gradcam)")
    assert [r[col] for r in data["rows"]] == [10.0 * i for i in range(len(ws["files"]))]


def test_page_is_self_contained(ws):
    from cams.report import report_for_run

    html = report_for_run(ws["root"] / "ef").read_text(encoding="utf-8")
    assert "Content-Security-Policy" in html and "default-src 'self' data: blob: 'unsafe-inline'" in html
    assert re.findall(r"(?:https?:)?//[a-z0-9.-]+\.[a-z]{2,}", html, re.I) == []  # no URL of any server
    assert re.findall(r'<(?:script|link|img)[^>]+(?:src|href)=', html) == []  # scripts and styles are inline
    assert "gradcam++" in html and "Grad-CAM++" in html  # names and titles of the methods
    assert "tensorflow version" in html and "keras version" in html


def test_explain_report_flag_and_cams_report_agree(ws, tmp_path, capsys):
    root = ws["root"]
    argv = ["explain", "--model", str(root / "m.keras"), "--images", str(root / "imgs"), "--methods", "gradcam",
            "--out", str(tmp_path / "ex"), "--report"]
    assert run_cams(argv) == 0
    assert "report:" in capsys.readouterr().out
    first = page_data((tmp_path / "ex" / "report.html").read_text(encoding="utf-8"))
    with np.load(tmp_path / "ex" / "maps.npz") as z:
        assert [r[0] for r in first["rows"]] == list(z["files"])
        assert [r[1] for r in first["rows"]] == list(z["predicted"])
    assert len(list((tmp_path / "ex" / "report_files").rglob("*.jpg"))) == 2 * 7
    assert run_cams(["report", str(tmp_path / "ex"), "--title", "again"]) == 0  # a rerun replaces its own report
    again = (tmp_path / "ex" / "report.html").read_text(encoding="utf-8")
    assert "<title>again</title>" in again and page_data(again)["rows"] == first["rows"]
    assert not [p for p in (tmp_path / "ex").iterdir() if p.name.startswith(".cams-tmp-")]


def test_evaluate_report_shows_each_methods_per_image_scores(ws, tmp_path, capsys):
    out = tmp_path / "ev"
    argv = ["evaluate", "--model", str(ws["root"] / "m.keras"), "--images", str(ws["root"] / "imgs"),
            "--methods", "gradcam,gradcam++", "--metrics", "sparseness,complexity", "--out", str(out), "--report"]
    assert run_cams(argv) == 0
    data = page_data((out / "report.html").read_text(encoding="utf-8"))
    with open(out / "per_image.csv", encoding="utf-8", newline="") as f:
        rows = list(csv.DictReader(f))
    assert data["methods"] == ["gradcam", "gradcam++"] and len(data["rows"]) == 7
    for method in data["methods"]:
        col = data["columns"].index(f"sparseness ({method})")
        expected = {r["file"]: float(r["sparseness"]) for r in rows if r["method"] == method}
        assert {r[0]: r[col] for r in data["rows"]} == pytest.approx(expected)
    assert {r[3] for r in data["rows"]} == {None}  # evaluate records no probability: none is made up
    assert len(list((out / "report_files").rglob("*.jpg"))) == 3 * 7


def test_report_no_run(tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    assert run_cams(["report", str(tmp_path / "empty")]) == 2
    assert "holds no cams explain, explain-folder or evaluate run" in capsys.readouterr().err


def test_report_user_file_and_thumbs_are_refused_before_any_work(ws, tmp_path, capsys):
    import shutil

    out = tmp_path / "ef"
    shutil.copytree(ws["root"] / "ef", out)
    for name in ("report.html", ".cams-run.report.json"):
        (out / name).unlink(missing_ok=True)
    shutil.rmtree(out / "report_files", ignore_errors=True)
    (out / "report.html").write_text("<p>my notes</p>")
    before = snapshot(out)
    assert run_cams(["report", str(out)]) == 2
    assert "report.html exists and was not written by cams report; choose another" in capsys.readouterr().err
    assert snapshot(out) == before
    (out / "report.html").unlink()
    (out / "report_files").mkdir()
    (out / "report_files" / "mine.txt").write_text("mine")
    assert run_cams(["report", str(out)]) == 2
    assert "report_files exists and was not written by cams report" in capsys.readouterr().err
    assert (out / "report_files" / "mine.txt").read_text() == "mine"
    assert run_cams(["report", str(out), "--overwrite"]) == 0
    assert (out / "report.html").is_file() and not (out / "report_files" / "mine.txt").exists()


def test_report_url_out(ws, capsys):
    argv = ["explain-folder", "--model", str(ws["root"] / "m.keras"), "--images", str(ws["root"] / "imgs"),
            "--out", "gs://bucket/out", "--report"]
    assert run_cams(argv) == 2
    assert "--report writes into a local folder" in capsys.readouterr().err


def test_report_scores_no_file(ws, tmp_path, capsys):
    import shutil

    out = tmp_path / "ef"
    shutil.copytree(ws["root"] / "ef", out)
    (out / "scores.csv").write_text("image,AD\na.png,1\n")
    assert run_cams(["report", str(out)]) == 2
    assert "scores.csv: no 'file' column" in capsys.readouterr().err


def test_report_run_unfinished(ws, tmp_path, capsys):
    import shutil

    out = tmp_path / "ex"
    out.mkdir()
    shutil.copy(ws["root"] / "ef" / ".cams-run.explain-folder.json", out)
    assert run_cams(["report", str(out)]) == 2
    assert "predictions.csv is missing: the run did not finish" in capsys.readouterr().err


def test_every_case_is_in_the_table():
    table = DOC.read_text(encoding="utf-8")
    assert [c for c in CASES if f"`{c}`" not in table] == []
