"""`cams lcam-train` / `cams lcam-eval` on a tiny saved model and folders of PNGs; lcam_eval's table."""
import json
from pathlib import Path

import keras
import numpy as np
import pytest
from PIL import Image

import cams
from cams.studies import lcam_table1 as lcam_eval
from cams.cli import main
from cams.core.images import load_images
from cams_models import conv_gap_dense


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    root = tmp_path_factory.mktemp("lcam_cli")
    keras.utils.set_random_seed(0)
    model = conv_gap_dense(size=16, classes=2, softmax=True)
    model.save(root / "m.keras")
    rng = np.random.default_rng(0)
    for cls in ("real", "fake"):
        folder = root / "imgs" / cls
        folder.mkdir(parents=True)
        for i in range(5):
            Image.fromarray(rng.integers(0, 255, (20, 20, 3), dtype=np.uint8)).save(folder / f"{i}.png")
    return root


def test_train_then_eval_writes_table1(saved, capsys):
    root = saved
    for mode, loss in (("img", "full"), ("fm", "ce")):
        code = main(["lcam-train", "--model", str(root / "m.keras"), "--images", str(root / "imgs"), "--mode", mode,
                     "--loss", loss, "--epochs", "2", "--batch-size", "4", "--labels", "dataset",
                     "--class-names", "real,fake", "--out", str(root / f"{mode}.npz"), "-q"])
        assert code == 0, capsys.readouterr().err
    out = capsys.readouterr().out
    assert "trained L-CAM-Fm* on 10 images at layer 'feat' (2 epochs of 3 steps, 1 replica(s))" in out
    hist = json.loads((root / "img.history.json").read_text())
    assert hist["method"] == "L-CAM-Img" and len(hist["loss"]) == 2 and len(hist["tv"]) == 2
    assert cams.LCAM.read_meta(root / "fm.npz")["settings"]["labels"] == "dataset"
    assert cams.LCAM.read_meta(root / "fm.keras")["settings"]["labels"] == "dataset"  # the .keras beside it
    code = main(["lcam-eval", "--model", str(root / "m.keras"), "--images", str(root / "imgs"),
                 "--lcam", f"{root / 'img.npz'},{root / 'fm.keras'}", "--rise-masks", "16",
                 "--out", str(root / "eval"), "-q"])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    table = (root / "eval" / "table1.md").read_text()
    lines = [ln for ln in table.splitlines() if ln.startswith("| ")]
    assert [ln.split(" | ")[0][2:] for ln in lines[1:]] == [
        "Grad-CAM", "Grad-CAM++", "Score-CAM", "RISE", "L-CAM-Img", "L-CAM-Fm*"]
    assert "on 10 images (RISE 16 masks" in table and "forward pass of the classifier" in table and table.split("\n\n", 1)[1] in captured.out
    rows = json.loads((root / "eval" / "table1.json").read_text())["rows"]
    fw = {r["method"]: r["#FW"] for r in rows}
    assert fw == {"Grad-CAM": 1, "Grad-CAM++": 1, "Score-CAM": 7, "RISE": 17, "L-CAM-Img": 1, "L-CAM-Fm*": 1}
    maps = np.load(root / "eval" / "maps.npz")
    assert maps["L_CAM_Img"].shape == (10, 16, 16) and maps["L_CAM_Fm_ce"].shape == (10, 16, 16)
    # the L-CAM row's AD/IC are those of cams.metrics.ad_ic on the L-CAM's maps
    model = cams.cli.load_model(str(root / "m.keras"))
    x, _, _ = load_images([Path(p) for p in maps["files"]], (16, 16), 3)
    lc = cams.LCAM.load(root / "img.npz", model)
    ref = cams.metrics.ad_ic(model, x, lc(x))
    row = next(r for r in rows if r["method"] == "L-CAM-Img")
    assert row["AD(100%)"] == pytest.approx(ref["AD(100%)"], abs=1e-3) and row["IC(15%)"] == pytest.approx(ref["IC(15%)"])


def test_markdown_table_by_hand():
    row = {"method": "X", "AD(100%)": 1.234, "IC(100%)": 50, "AD(50%)": 2, "IC(50%)": 3, "AD(15%)": 4, "IC(15%)": 5,
           "#FW": 1, "ms/image": 0.26}
    md = lcam_eval.markdown([row]).splitlines()
    assert md[0] == "| Method | AD(100%) | IC(100%) | AD(50%) | IC(50%) | AD(15%) | IC(15%) | #FW | ms/image |"
    assert md[2] == "| X | 1.23 | 50.00 | 2.00 | 3.00 | 4.00 | 5.00 | 1 | 0.3 |"


@pytest.mark.parametrize(
    "argv, message",
    [
        (["lcam-train", "--model", "{m}", "--images", "{d}", "--out", "x.bin"], "--out must be a .npz file"),
        (["lcam-train", "--model", "{m}", "--images", "{d}/real", "--labels", "dataset", "--out", "{r}/a.npz"],
         "expected one subfolder per class"),
        (["lcam-train", "--model", "{m}", "--images", "{d}", "--labels", "dataset", "--class-index", "{m}",
          "--out", "{r}/a.npz"], "not a readable JSON class index"),
        (["lcam-train", "--model", "{m}", "--images", "{d}", "--steps-per-epoch", "0", "--out", "{r}/a.npz"],
         "argument --steps-per-epoch: expected a number >= 1, got 0"),
        (["lcam-train", "--model", "{m}", "--images", "{d}", "--labels", "dataset", "--class-names", "real,other",
          "--out", "{r}/a.npz"], "no parent folder is named after a class"),
        (["lcam-train", "--model", "{m}", "--images", "{d}", "--layer", "nope", "--out", "{r}/a.npz"],
         "no layer named 'nope'"),
        (["lcam-eval", "--model", "{m}", "--images", "{d}", "--lcam", "{r}/missing.npz", "--out", "{r}/e"],
         "missing.npz: no such L-CAM file"),
        (["lcam-eval", "--model", "{m}", "--images", "{d}", "--lcam", "{r}/x.npz", "--methods", "gradcam,lime",
          "--out", "{r}/e"], "unknown method 'lime'"),
        (["lcam-eval", "--model", "{r}/other.keras", "--images", "{d}", "--lcam", "{r}/img.npz", "--out", "{r}/e"],
         "weights differ"),
    ],
)
def test_errors_are_one_readable_line(saved, capsys, argv, message):
    if not (saved / "img.npz").exists():
        main(["lcam-train", "--model", str(saved / "m.keras"), "--images", str(saved / "imgs"), "--epochs", "1",
              "--out", str(saved / "img.npz"), "-q"])
    if not (saved / "other.keras").exists():
        keras.utils.set_random_seed(123)  # same architecture, other weights
        conv_gap_dense(size=16, classes=2, softmax=True, name="other").save(saved / "other.keras")
    capsys.readouterr()
    argv = [a.format(m=saved / "m.keras", d=saved / "imgs", r=saved) for a in argv]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err
    last = err.strip().splitlines()[-1]
    assert message in last and last.startswith(f"cams {argv[0]}: error:")


@pytest.mark.parametrize("command", ["lcam-train", "lcam-eval"])
def test_help_explains_every_option(command, capsys):
    assert main([command, "--help"]) == 0
    out = capsys.readouterr().out
    for option in ("--model", "--images", "--out", "--scale", "--offset", "--layer", "--batch-size"):
        assert option in out
    extra = ("--mode", "--epochs", "--learning-rate", "--labels", "--loss", "--export") if command == "lcam-train" else (
        "--lcam", "--rise-masks", "--methods", "--no-strict")
    for option in extra:
        assert option in out
