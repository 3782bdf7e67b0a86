"""`cams evaluate`: the methods x metrics table against a direct computation with the same library
functions, resume, changed settings, --help, and bad inputs (rows "cli-evaluate-*" of docs/bad_inputs.md)."""
import csv
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from cams_models import conv_gap_dense

SIZE, N = 16, 4
DOC = Path(__file__).resolve().parents[1] / "docs" / "bad_inputs.md"
METHODS, METRICS = "gradcam,gradcam++", "ad,pointing,sparseness"


def run_main(argv):
    from cams.cli import main

    return main([str(a) for a in argv])


def _mask(i):
    m = np.zeros((SIZE, SIZE), np.uint8)
    m[i : i + 7, 3 + i : 11] = 255
    return m


@pytest.fixture(scope="module")
def ws(tmp_path_factory):
    root = tmp_path_factory.mktemp("evaluate")
    conv_gap_dense(size=SIZE, softmax=True).save(root / "m.keras")
    rng = np.random.default_rng(0)
    for sub in ("imgs", "masks", "masks_missing", "masks_size", "masks_empty", "masks_dup/sub", "masks_bad"):
        (root / sub).mkdir(parents=True)
    for i in range(N):
        Image.fromarray(rng.integers(0, 255, (SIZE, SIZE, 3), dtype=np.uint8)).save(root / "imgs" / f"a{i}.png")
        for sub in ("masks", "masks_size", "masks_empty", "masks_dup", "masks_bad") + (("masks_missing",) if i else ()):
            Image.fromarray(_mask(i)).save(root / sub / f"a{i}.png")
    Image.fromarray(np.zeros((SIZE + 4, SIZE + 4), np.uint8)).save(root / "masks_size" / "a1.png")
    Image.fromarray(np.zeros((SIZE, SIZE), np.uint8)).save(root / "masks_empty" / "a2.png")
    Image.fromarray(_mask(0)).save(root / "masks_dup" / "sub" / "a0.png")
    (root / "masks_bad" / "a3.png").write_bytes(b"not a png")
    (root / "user").mkdir()
    (root / "user" / "evaluation.csv").write_text("my own table\n")
    return root


def _args(ws, out, *extra, masks="masks", methods=METHODS, metrics=METRICS):
    argv = ["evaluate", "--model", ws / "m.keras", "--images", ws / "imgs", "--methods", methods,
            "--metrics", metrics, "--out", out]
    return argv + (["--masks", ws / masks] if masks else []) + list(extra)


@pytest.fixture(scope="module")
def first_run(ws):
    """One real command line: `python -m cams evaluate ...` in a fresh process."""
    out = ws / "out"
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    done = subprocess.run([sys.executable, "-m", "cams", *map(str, _args(ws, out))], capture_output=True, text=True,
                          env=env, cwd=Path(__file__).resolve().parents[1], timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    return out, done


def _read_csv(path):
    with open(path, newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def test_the_table_is_the_library_computed_directly(ws, first_run):
    import keras

    from cams.core.images import load_for_model
    from cams.methods import registry
    from cams.metrics import ad_ic, pointing_game, probabilities
    from cams.metrics.catalog import METRICS as CATALOG, mean_ci95
    from cams.metrics.complexity import sparseness

    out, _ = first_run
    model = keras.models.load_model(ws / "m.keras")
    x, kept, _ = load_for_model(model, [ws / "imgs"])
    targets = probabilities(model, x).argmax(1)
    masks = np.stack([_mask(i) > 0 for i in range(N)])
    rows = {(r["method"], r["metric"]): r for r in _read_csv(out / "evaluation.csv")}
    assert len(rows) == 2 * (3 + 1 + 1)
    for method in METHODS.split(","):
        explainer = registry.make_explainer(method, model)
        maps = explainer(x, targets)
        ad = {k: v for k, v in ad_ic(model, x, maps, targets=targets).items() if k.startswith("AD")}
        expected = {**ad, "pointing": pointing_game(maps, masks),
                    "sparseness": float(sparseness(maps).mean())}
        for column, value in expected.items():
            row = rows[method, column]
            assert float(row["mean"]) == pytest.approx(value, rel=1e-5, abs=1e-6), (method, column)
            assert int(row["n_images"]) == N
            metric = "pointing" if column == "pointing" else "sparseness" if column == "sparseness" else "ad"
            assert float(row["forward_passes"]) == explainer.forward_passes() + CATALOG[metric].cost(explainer)
            assert float(row["seconds"]) > 0
    per_image = _read_csv(out / "per_image.csv")
    assert [r["file"] for r in per_image] == [str(p) for p in kept] * 2
    for (method, column), row in rows.items():
        values = [float(r[column]) for r in per_image if r["method"] == method]
        mean, low, high, n = mean_ci95(values)
        assert (float(row["mean"]), float(row["ci95_low"]), float(row["ci95_high"])) == pytest.approx(
            (mean, low, high), rel=1e-6, abs=1e-9)


def test_the_outputs_are_written_and_owned(first_run):
    out, done = first_run
    md = (out / "evaluation.md").read_text(encoding="utf-8")
    assert re.search(r"\| Grad-CAM \| [\d.]+ ± [\d.]+ \|", md) and "| Grad-CAM++ |" in md
    assert "AD(100%) ↓" in md and "pointing ↑" in md and md in done.stdout
    data = json.loads((out / "evaluation.json").read_text(encoding="utf-8"))
    assert data["methods"] == ["gradcam", "gradcam++"] and data["metrics"] == METRICS.split(",")
    assert data["settings"]["seed"] == 0 and data["versions"]["tensorflow"]
    assert (out / "evaluation.png").read_bytes()[:4] == b"\x89PNG"
    manifest = json.loads((out / ".cams-run.evaluate.json").read_text(encoding="utf-8"))
    assert {"evaluation.csv", "evaluation.md", "evaluation.json", "evaluation.png", "per_image.csv",
            "evaluation.progress.json", "maps/gradcam.npz", "maps/gradcam++.npz"} <= set(manifest["files"])
    assert "method x metric" in done.stderr  # the progress bar


def test_rerun_resumes_grows_and_refuses_other_settings(ws, first_run, tmp_path, capsys):
    """cli-evaluate-changed-settings, and resume: done pairs are skipped, new ones computed."""
    out = tmp_path / "o"
    shutil.copytree(first_run[0], out)
    table = (out / "evaluation.csv").read_bytes()
    capsys.readouterr()
    assert run_main(_args(ws, out)) == 0
    assert "resuming: 6 of 6 (method, metric) pairs already done" in capsys.readouterr().out
    assert (out / "evaluation.csv").read_bytes() == table  # nothing recomputed
    assert run_main(_args(ws, out, metrics=METRICS + ",relevance-rank")) == 0
    assert "resuming: 6 of 8 (method, metric) pairs" in capsys.readouterr().out
    assert {r["metric"] for r in _read_csv(out / "evaluation.csv")} >= {"relevance-rank", "AD(100%)"}
    assert run_main(_args(ws, out, "--seed", "1")) == 2
    last = capsys.readouterr().err.strip().splitlines()[-1]
    assert re.fullmatch(r"cams evaluate: error: --out .* holds a cams evaluate run with other settings \(seed: 0 -> 1\); "
                        r"choose another --out, or add --restart to delete that run's outputs and start over", last), last
    (out / "notes.txt").write_text("mine")
    assert run_main(_args(ws, out, "--seed", "1", "--restart")) == 0
    assert "resuming" not in capsys.readouterr().out
    assert (out / "notes.txt").read_text() == "mine"
    assert json.loads((out / "evaluation.json").read_text())["settings"]["seed"] == 1


def test_an_interrupted_run_resumes_where_it_stopped(ws, tmp_path, capsys, monkeypatch):
    """cli-evaluate-interrupted: Ctrl-C after the first pair: exit 130, that pair kept; the rerun skips it."""
    import dataclasses

    from cams.metrics import catalog

    def interrupted(*args):
        raise KeyboardInterrupt

    out, argv = tmp_path / "o", _args(ws, tmp_path / "o", masks=None, methods="gradcam", metrics="sparseness,complexity")
    monkeypatch.setitem(catalog.METRICS, "complexity",
                        dataclasses.replace(catalog.METRICS["complexity"], function=interrupted))
    assert run_main(argv) == 130
    assert "interrupted; run the same command again to resume" in capsys.readouterr().err
    assert list(json.loads((out / "evaluation.progress.json").read_text())["pairs"]) == ["gradcam|sparseness"]
    assert not (out / "evaluation.csv").exists()
    monkeypatch.undo()
    assert run_main(argv) == 0
    assert "resuming: 1 of 2 (method, metric) pairs already done" in capsys.readouterr().out
    assert {r["metric"] for r in _read_csv(out / "evaluation.csv")} == {"sparseness", "complexity"}


def test_all_metrics_without_masks_skip_the_mask_metrics(ws, tmp_path, capsys):
    """cli-evaluate-skipped-mask-metrics: `--metrics all` without --masks runs the others and says so."""
    from cams.metrics import catalog

    out = tmp_path / "o"
    assert run_main(_args(ws, out, "--limit", "2", masks=None, methods="gradcam", metrics="all")) == 0
    text = capsys.readouterr().out
    need = [m.name for m in catalog.METRICS.values() if m.needs_masks]
    assert f"note: --metrics all without --masks: skipped {', '.join(need)}" in text
    columns = {r["metric"] for r in _read_csv(out / "evaluation.csv")}
    assert columns == {c for m in catalog.METRICS.values() if not m.needs_masks for c in m.columns}


def test_one_image_has_no_interval(ws, tmp_path, capsys):
    """cli-evaluate-one-image: a mean over one image has no 95% interval: NaN bounds, '± n/a' in the table."""
    out = tmp_path / "o"
    assert run_main(_args(ws, out, "--limit", "1", masks=None, methods="gradcam", metrics="sparseness")) == 0
    (row,) = _read_csv(out / "evaluation.csv")
    assert row["n_images"] == "1" and row["ci95_low"] == row["ci95_high"] == "nan"
    assert re.search(r"\| Grad-CAM \| [\d.]+ ± n/a \|", (out / "evaluation.md").read_text(encoding="utf-8"))
    assert json.loads((out / "evaluation.json").read_text())["rows"][0]["ci95_low"] is None


def test_masks_are_matched_by_stem_and_resized_like_the_images(tmp_path):
    from cams.cli.evaluate import load_masks

    (tmp_path / "imgs").mkdir()
    (tmp_path / "masks" / "deep").mkdir(parents=True)
    big = np.zeros((32, 32), np.uint8)
    big[8:24, 0:16] = 200
    for name in ("b", "a"):
        Image.fromarray(np.zeros((32, 32, 3), np.uint8)).save(tmp_path / "imgs" / f"{name}.jpg")
    Image.fromarray(big).save(tmp_path / "masks" / "a.png")
    Image.fromarray(np.where(big > 0, 0, 255).astype(np.uint8)).save(tmp_path / "masks" / "deep" / "b.bmp")
    got = load_masks(tmp_path / "masks", [tmp_path / "imgs" / "a.jpg", tmp_path / "imgs" / "b.jpg"], (16, 16))
    expected = np.zeros((16, 16), bool)
    expected[4:12, 0:8] = True
    np.testing.assert_array_equal(got, [expected, ~expected])


def test_methods_all_is_every_method_without_a_trained_file():
    import argparse

    from cams.cli.evaluate import method_names
    from cams.methods import registry

    args = argparse.Namespace(methods="all", lcam=None)
    chosen = method_names(args)
    assert chosen == [n for n, m in registry.methods().items() if not m.trained_file] and "lcam" not in chosen
    assert args.methods == ",".join(chosen)
    assert "lcam" in method_names(argparse.Namespace(methods="all", lcam="x.npz"))
    assert method_names(argparse.Namespace(methods="GradCAM, scorecam,gradcam", lcam=None)) == ["gradcam", "scorecam"]


def test_help_mentions_every_option_and_metric(capsys, monkeypatch):
    from cams.metrics import catalog

    monkeypatch.setenv("COLUMNS", "400")  # no line breaks inside names like max-sensitivity
    assert run_main(["evaluate", "--help"]) == 0
    text = capsys.readouterr().out
    for option in ("--model", "--images", "--masks", "--methods", "--metrics", "--out", "--scale", "--offset", "--size",
                   "--limit", "--labels", "--layer", "--lcam", "--seed", "--batch-size", "--restart", "--unsafe"):
        assert option in text, option
    assert all(name in text for name in catalog.metric_names())


OUT = "{tmp}/o"
CASES = {
    # id: (argv after `evaluate`, message regex on the last stderr line)
    "cli-evaluate-unknown-metric": (["--metrics", "ad,nope"], r"unknown metric 'nope'; choose from all, ad, ic, "),
    "cli-evaluate-no-metric": (["--metrics", ","], r"no metric given; choose from all, ad,"),
    "cli-evaluate-unknown-method": (["--methods", "gradcam,nope"], r"unknown method 'nope'; choose from gradcam,"),
    "cli-evaluate-mask-metric-without-masks": (["--metrics", "ad,pointing"],
                                               r"--metrics pointing needs --masks DIR \(ground-truth masks named like "
                                               r"the images\); add --masks or leave pointing out"),
    "cli-evaluate-masks-not-a-folder": (["--masks", "{ws}/nowhere"], r"--masks .*nowhere: no such folder"),
    "cli-evaluate-mask-missing": (["--masks", "{ws}/masks_missing"],
                                  r"--masks .*masks_missing has no mask for the image .*a0.png \(expected a file named "
                                  r"a0.png or another image suffix\)"),
    "cli-evaluate-mask-size": (["--masks", "{ws}/masks_size"],
                               r"mask .*a1.png is 20x20 but its image .*a1.png is 16x16 \(width x height\); a mask must "
                               r"have its image's size"),
    "cli-evaluate-mask-empty": (["--masks", "{ws}/masks_empty"],
                                r"mask .*a2.png is empty \(no pixel > 0 at the model's input size 16x16\)"),
    "cli-evaluate-mask-duplicate": (["--masks", "{ws}/masks_dup"], r"two masks for the stem 'a0' .*; keep one"),
    "cli-evaluate-mask-unreadable": (["--masks", "{ws}/masks_bad"], r"mask .*a3.png: not a readable image"),
    "cli-evaluate-out-inside-images": (["--out", "{ws}/imgs/o"], r"--out .*imgs/o is inside --images .*imgs: outputs "
                                                                 r"would mix with the inputs"),
    "cli-evaluate-user-file-in-the-way": (["--out", "{ws}/user"], r"user/evaluation.csv exists and was not written by "
                                                                  r"cams evaluate; choose another --out"),
}
OTHER_CASES = ("cli-evaluate-changed-settings", "cli-evaluate-skipped-mask-metrics", "cli-evaluate-one-image",
               "cli-evaluate-interrupted")


@pytest.mark.parametrize("case", list(CASES))
def test_bad_input_is_one_line_and_writes_nothing(ws, tmp_path, capsys, case):
    extra, message = CASES[case]
    argv = ["evaluate", "--model", ws / "m.keras", "--images", ws / "imgs", "--methods", "gradcam", "--metrics", "ad",
            "--out", tmp_path / "o"] + [a.format(ws=ws, tmp=tmp_path) for a in extra]
    assert run_main(argv) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err
    last = err.strip().splitlines()[-1]
    assert last.startswith("cams evaluate: error: ") and re.search(message, last), last
    assert not (tmp_path / "o").exists() and not (ws / "imgs" / "o").exists()
    assert sorted(p.name for p in (ws / "user").iterdir()) == ["evaluation.csv"]


def test_every_case_is_in_the_table():
    table = DOC.read_text(encoding="utf-8")
    assert [c for c in [*CASES, *OTHER_CASES] if f"`{c}`" not in table] == []
