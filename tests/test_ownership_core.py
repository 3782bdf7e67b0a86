"""Outputs a command owns (cams.core.outputs) and `cams explain` (rows "own-core-*" and "own-explain-*" of
docs/bad_inputs.md): user files planted in and around the folders are byte-identical afterwards."""
import csv
import hashlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from cams.core import files, labels, outputs
from cams_models import conv_gap_dense

DOC = Path(__file__).resolve().parents[1] / "docs" / "bad_inputs.md"


def snapshot(root: Path) -> dict:
    """{relative path: sha256} of every file under root (user files are compared before and after)."""
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest() for p in root.rglob("*") if p.is_file()}


def run_cams(argv):
    from cams.cli import main

    try:
        return main(argv)
    except SystemExit as exc:
        return exc.code


@pytest.fixture(scope="module")
def ws(tmp_path_factory):
    root = tmp_path_factory.mktemp("own")
    conv_gap_dense(size=24, softmax=True).save(root / "m.keras")
    imgs = root / "imgs"
    imgs.mkdir()
    rng = np.random.default_rng(0)
    for name in ("a.png", 'b, "quoted".png', "c\nline.png"):
        Image.fromarray(rng.integers(0, 255, (24, 24, 3), dtype=np.uint8)).save(imgs / name)
    (imgs / ".notes.txt").write_text("mine")
    return root


def explain_argv(ws, out, *extra):
    return ["explain", "--model", str(ws / "m.keras"), "--images", str(ws / "imgs"), "--out", str(out),
            "--methods", "gradcam", *extra]


# ---------------------------------------------------------------- cams.core.outputs
def test_own_core_claim_refuses_a_user_file_and_accepts_its_own(tmp_path):
    (tmp_path / "grid.png").write_bytes(b"user")
    out = outputs.OutputFolder(tmp_path, "job", "cams job", {"a": 1}, overwrite_option="--overwrite")
    with pytest.raises(ValueError, match=r"grid.png exists and was not written by cams job; choose another --out "
                                         r"\(or --overwrite to replace it\)"):
        out.claim(["grid.png"])
    out.claim(["maps.npz"])  # absent: fine
    files.write_text(out.path("maps.npz"), "x")
    out.record("maps.npz")
    again = outputs.OutputFolder(tmp_path, "job", "cams job", {"a": 2})
    again.claim(["maps.npz"])  # written by an earlier run of the same job
    assert again.owns("maps.npz") and not again.owns("grid.png")
    assert again.changed_settings() == ["a"]
    assert outputs.describe_changes(again.previous["settings"], again.settings, ["a"]) == "a: 1 -> 2"
    other = outputs.OutputFolder(tmp_path, "other", "cams other")
    with pytest.raises(ValueError, match="not written by cams other"):
        other.claim(["maps.npz"])  # another job's file is not this job's
    assert (tmp_path / "grid.png").read_bytes() == b"user"


@pytest.mark.parametrize("case,out,inputs,relation", [
    ("own-core-out-is-input", "imgs", {"--images": ["imgs"]}, "is"),
    ("own-core-out-inside-input", "imgs/out", {"--images": ["imgs"]}, "is inside"),
    ("own-core-out-contains-input", ".", {"--images": ["imgs"]}, "contains"),
    ("own-core-out-contains-model", "runs", {"--model": ["runs/m.keras"]}, "contains"),
], ids=lambda v: v if isinstance(v, str) and v.startswith("own-") else None)
def test_own_core_outputs_never_overlap_inputs(tmp_path, monkeypatch, case, out, inputs, relation):
    monkeypatch.chdir(tmp_path)
    option, paths = next(iter(inputs.items()))
    with pytest.raises(ValueError, match=f"--out {out} {relation} {option} {paths[0]}: .*choose an --out outside them"):
        outputs.check_apart(out, inputs)
    outputs.check_apart("elsewhere", inputs)  # apart: no error
    outputs.check_apart("imgs2", {"--images": ["imgs"]})  # a name that only starts alike is apart


def test_own_core_claim_refuses_a_file_where_a_subfolder_goes(tmp_path):
    (tmp_path / "figures").write_text("mine")
    out = outputs.OutputFolder(tmp_path, "job", "cams job")
    with pytest.raises(ValueError, match=r"figures is a file where cams job needs a folder; choose another --out"):
        out.claim(["figures/roc.png"])
    out.claim(["a/b/c.png"])  # absent folders are fine
    assert (tmp_path / "figures").read_text() == "mine"


def test_own_core_out_is_a_file(tmp_path):
    (tmp_path / "f").write_text("mine")
    with pytest.raises(ValueError, match="--out .*f is a file, not a folder"):
        outputs.OutputFolder(tmp_path / "f", "job", "cams job")


def test_own_core_temporary_files_only(tmp_path):
    (tmp_path / "maps").mkdir()
    (tmp_path / "maps" / ".notes.npz").write_bytes(b"user dotfile")
    (tmp_path / "maps" / ".a.xyz.npz").write_bytes(b"looks like an old temporary name")
    with pytest.raises(RuntimeError):
        with files.atomic_path(tmp_path / "maps" / "a.npz") as tmp:
            tmp.write_bytes(b"half")
            leftover = tmp.name
            raise RuntimeError("killed")
    assert leftover.startswith(files.TEMP_PREFIX)
    (tmp_path / "maps" / f"{files.TEMP_PREFIX}b.123.npz").write_bytes(b"left by a killed run")
    assert outputs.remove_temporary([tmp_path]) == 1
    assert sorted(p.name for p in (tmp_path / "maps").iterdir()) == [".a.xyz.npz", ".notes.npz"]


def test_own_core_csv_round_trip(tmp_path):
    rows = [("a,b.png", 1, 'say "hi"', "0.5"), ("line\nbreak.png", 2, "naïve", "0.25")]
    path = files.write_csv(tmp_path / "t.csv", ("file", "class", "name", "p"), rows)
    with open(path, encoding="utf-8", newline="") as f:
        read = list(csv.reader(f))
    assert read == [["file", "class", "name", "p"]] + [[str(v) for v in r] for r in rows]


def test_own_core_labels_not_utf8(tmp_path):
    (tmp_path / "labels.txt").write_bytes("chat\nchien\nélan\n".encode("latin-1"))
    with pytest.raises(ValueError, match=r"labels.txt: not UTF-8 text \(byte 0xe9 at offset 11\); save the labels file as UTF-8"):
        labels.read_class_names(tmp_path / "labels.txt")
    (tmp_path / "bom.txt").write_bytes("\ufeffcat\ndog\n".encode("utf-8"))
    assert labels.read_class_names(tmp_path / "bom.txt") == ["cat", "dog"]


# ---------------------------------------------------------------- cams explain
def test_own_explain_out_is_the_images_folder(ws, capsys):
    (ws / "imgs" / "grid.png").write_bytes(b"my own picture")
    before = snapshot(ws / "imgs")
    try:
        assert run_cams(explain_argv(ws, ws / "imgs")) == 2
        assert "--out" in capsys.readouterr().err.strip().splitlines()[-1]
        assert run_cams(explain_argv(ws, ws / "imgs" / "out")) == 2
        assert "is inside --images" in capsys.readouterr().err.strip().splitlines()[-1]
        assert snapshot(ws / "imgs") == before
    finally:
        (ws / "imgs" / "grid.png").unlink()


def test_own_explain_user_file_in_the_way_then_fresh_rerun_and_overwrite(ws, tmp_path, capsys):
    out = tmp_path / "o"
    out.mkdir()
    (out / "predictions.csv").write_text("my,own,table\n")
    (out / ".hidden").write_text("mine")
    (out / "notes.md").write_text("mine")
    before = snapshot(out)
    assert run_cams(explain_argv(ws, out)) == 2
    last = capsys.readouterr().err.strip().splitlines()[-1]
    assert "predictions.csv exists and was not written by cams explain; choose another --out (or --overwrite" in last
    assert snapshot(out) == before  # refused before any work: nothing written
    assert run_cams(explain_argv(ws, out, "--overwrite")) == 0
    assert {k: v for k, v in snapshot(out).items() if k in (".hidden", "notes.md")} == {
        k: before[k] for k in (".hidden", "notes.md")}
    assert run_cams(explain_argv(ws, out, "--methods", "eigencam")) == 0  # a rerun replaces its own files
    with np.load(out / "maps.npz") as z:
        assert "eigencam" in z.files and "gradcam" not in z.files
        names = list(z["files"])
    with open(out / "predictions.csv", encoding="utf-8", newline="") as f:
        rows = list(csv.reader(f))
    assert rows[0] == ["file", "class", "name", "probability"]
    assert [r[0] for r in rows[1:]] == names and len(names) == 3  # names with a comma, quotes, a newline


def test_own_explain_out_is_a_file(ws, tmp_path, capsys):
    (tmp_path / "o").write_text("mine")
    assert run_cams(explain_argv(ws, tmp_path / "o")) == 2
    assert "is a file, not a folder" in capsys.readouterr().err.strip().splitlines()[-1]
    assert (tmp_path / "o").read_text() == "mine"


CASES = ["own-core-claim", "own-core-file-where-a-folder-goes", "own-core-out-is-input", "own-core-out-inside-input", "own-core-out-contains-input",
         "own-core-out-contains-model", "own-core-out-is-a-file", "own-core-temporary-files", "own-core-csv",
         "own-core-labels-not-utf8", "own-explain-out-is-images", "own-explain-user-file", "own-explain-out-is-a-file"]


def test_every_case_is_in_the_table():
    table = DOC.read_text(encoding="utf-8")
    assert [c for c in CASES if f"`{c}`" not in table] == []
