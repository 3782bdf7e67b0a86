"""The `cams` command line on a saved tiny model and a folder of PNGs."""
import numpy as np
import pytest
from PIL import Image

from cams.cli import main
from cams_models import conv_gap_dense


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    root = tmp_path_factory.mktemp("cli")
    model = conv_gap_dense(size=24, softmax=True)
    model.save(root / "m.keras")
    folder = root / "imgs"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for i in range(3):
        Image.fromarray(rng.integers(0, 255, (30, 40, 3), dtype=np.uint8)).save(folder / f"{i}.png")
    (folder / "broken.png").write_bytes(b"not an image")
    return root


def test_layers_lists_candidates_and_default(saved, capsys):
    assert main(["layers", "--model", str(saved / "m.keras")]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out == ["conv1", "feat   <- default"]


def test_explain_writes_grid_and_maps_and_skips_broken_files(saved, capsys):
    out = saved / "out"
    code = main(["explain", "--model", str(saved / "m.keras"), "--images", str(saved / "imgs"),
                 "--methods", "gradcam,gradcam++,saliency", "--out", str(out)])
    captured = capsys.readouterr()
    assert code == 0
    assert "skipped" in captured.err and "broken.png" in captured.err
    data = np.load(out / "maps.npz")
    assert data["gradcam"].shape == (3, 24, 24) and data["gradcampp"].shape == (3, 24, 24)
    assert data["gradcam"].min() >= 0 and data["gradcam"].max() <= 1
    assert (out / "grid.png").stat().st_size > 0


@pytest.mark.parametrize(
    "argv, message",
    [
        (["explain", "--model", "missing.keras", "--images", "{d}", "--out", "o"], "missing.keras: no such model file"),
        (["explain", "--model", "{m}", "--images", "{d}", "--methods", "gradcam,foo", "--out", "o"], "unknown method 'foo'"),
        (["explain", "--model", "{m}", "--images", "nowhere", "--out", "o"], "nowhere: no such file or folder"),
        (["explain", "--model", "{m}", "--images", "{d}", "--layer", "nope", "--out", "o"], "no layer named 'nope'"),
    ],
)
def test_errors_are_one_readable_line(saved, capsys, argv, message):
    argv = [a.format(m=saved / "m.keras", d=saved / "imgs") for a in argv]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err
    last = err.strip().splitlines()[-1]
    assert message in last and last.startswith("cams explain: error:")


def test_explain_folder_streams_resumes_and_skips_broken_files(saved, tmp_path, capsys):
    src = tmp_path / "src"
    (src / "a").mkdir(parents=True)
    (src / "b").mkdir()
    rng = np.random.default_rng(1)
    for i in range(5):
        Image.fromarray(rng.integers(0, 255, (24, 24, 3), dtype=np.uint8)).save(src / ("a" if i < 3 else "b") / f"{i}.png")
    (src / "b" / "bad.jpg").write_bytes(b"\x00garbage")
    out = tmp_path / "out"
    argv = ["explain-folder", "--model", str(saved / "m.keras"), "--images", str(src),
            "--methods", "gradcam,gradcam++", "--batch-size", "2", "--out", str(out)]
    assert main(argv) == 0
    first = capsys.readouterr()
    assert "6 images: 0 already done, 5 explained now, 1 unreadable" in first.out
    assert "bad.jpg" in first.err
    npzs = sorted(p.relative_to(out / "maps").as_posix() for p in (out / "maps").rglob("*.npz"))
    assert npzs == ["a/0.png.npz", "a/1.png.npz", "a/2.png.npz", "b/3.png.npz", "b/4.png.npz"]
    data = np.load(out / "maps" / "a" / "1.png.npz")
    assert data["gradcam"].shape == (24, 24) and data["gradcampp"].shape == (24, 24)
    assert 0 <= int(data["predicted"]) < 4 and 0 < float(data["probability"]) <= 1
    assert (out / "overlays" / "b" / "4.png.gradcam++.png").exists()
    # an interrupted run: one image's result is missing; the rerun only explains that one
    (out / "maps" / "b" / "3.png.npz").unlink()
    (out / "maps" / "b" / ".cams-tmp-3.png.k2j4.npz").write_bytes(b"PK\x03")  # what a run killed mid-write leaves
    before = (out / "maps" / "a" / "0.png.npz").stat().st_mtime_ns
    assert main(argv) == 0
    assert "6 images: 4 already done, 1 explained now, 1 unreadable" in capsys.readouterr().out
    assert (out / "maps" / "b" / "3.png.npz").exists() and not (out / "maps" / "b" / ".cams-tmp-3.png.k2j4.npz").exists()
    assert (out / "maps" / "a" / "0.png.npz").stat().st_mtime_ns == before
