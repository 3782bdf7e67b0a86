"""`cams explain-folder` owns only its outputs (rows "own-explain-folder-*" of docs/bad_inputs.md).

User files are planted in and around the output and input folders (dotfiles under out/maps, a user
predictions.csv, a user .npz where an output goes, same-named images under two folders, names with
commas, quotes, newlines, tabs and non-ASCII); the command runs fresh, again, with other settings,
with --restart, after a killed run, and on Apache Beam's DirectRunner; every user file is
byte-identical afterwards and every output is read back.
"""
import csv
import hashlib
import re
import shutil
import unicodedata
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from cams.core.files import TEMP_PREFIX
from cams.core.outputs import MANIFEST_PREFIX
from cams.core.images import load_image
from cams.distributed import local
from cams_cli import run
from cams_models import conv_gap_dense

DOC = Path(__file__).resolve().parents[1] / "docs" / "bad_inputs.md"
IDS = []
FIRST = {}  # stdout and stderr of the fixture's first run
SIZE = 16
#: images per input folder; the same relative name under both, names differing only in case or in
#: Unicode normalisation, and names a CSV table must quote
GOOD = {
    "A": ["photo.png", "Photo.png", 'b, "quoted".png', "c\nline.png", unicodedata.normalize("NFC", "café.png"),
          "sub/deep.png"],
    "B": ["photo.png", unicodedata.normalize("NFD", "café.png"), 'b, "quoted".png'],
}
BAD = {"A": ["broken.png", "tab\tname.png"]}  # not images: counted as unreadable
#: files of the user's inside the output folder before the first run (relative path: bytes)
USER_IN_OUT = {"maps/.notes.npz": b"mine", "maps/.a.png.k2j4.npz": b"looks like an old temporary file",
               "maps/sub/mine.npz": b"not derived from an input", "notes.md": b"# my notes\n"}


def ids(*names):
    """Register case ids (each is a row of docs/bad_inputs.md) and return them as pytest parameters."""
    IDS.extend(names)
    return list(names)


def snapshot(root: Path, skip=()) -> dict:
    """{relative path: sha256} of every file under `root` but those under the folders `skip`."""
    return {p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in root.rglob("*") if p.is_file() and not any(s in p.parents for s in skip)}


def argv(ws, out, *extra, images=("A", "B"), model="m.keras", methods="gradcam"):
    return ["explain-folder", "--model", ws / model, "--images", *(ws / i for i in images), "--out", out,
            "--methods", methods, "--batch-size", "3", *extra]


def counts_line(total, done, explained, unreadable):
    return f"{total} images: {done} already done, {explained} explained now, {unreadable} unreadable"


def plant(folder: Path, files: dict) -> None:
    for name, data in files.items():
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_bytes(data)


@pytest.fixture(scope="module")
def ws(tmp_path_factory):
    """Two models, the images of GOOD and BAD, a user file in an input folder, and a first run into
    `base` (user files of USER_IN_OUT planted there before it)."""
    root = tmp_path_factory.mktemp("own_folder")
    conv_gap_dense(size=SIZE, softmax=True).save(root / "m.keras")
    conv_gap_dense(size=SIZE, softmax=True).save(root / "m2.keras")  # other (random) weights
    (root / "models").mkdir()
    shutil.copy(root / "m.keras", root / "models" / "m.keras")
    rng = np.random.default_rng(0)
    for folder, names in GOOD.items():
        for name in names:
            (root / folder / name).parent.mkdir(parents=True, exist_ok=True)
            Image.fromarray(rng.integers(0, 255, (SIZE + 3, SIZE, 3), dtype=np.uint8)).save(root / folder / name)
    for folder, names in BAD.items():
        for name in names:
            (root / folder / name).write_bytes(b"\x89PNG not really")
    (root / "A" / ".notes.txt").write_text("the user's")
    plant(root / "base", USER_IN_OUT)
    code, FIRST["stdout"], FIRST["stderr"] = run(*argv(root, root / "base"))
    assert code == 0, FIRST["stderr"]
    return root


def total():
    return sum(map(len, GOOD.values())) + sum(map(len, BAD.values()))


def explained():
    return sum(map(len, GOOD.values()))


def rows(out: Path):
    """predictions.csv read back with csv.reader: {file: (maps, class, probability)}."""
    with open(out / "predictions.csv", encoding="utf-8", newline="") as f:
        table = list(csv.reader(f))
    assert table[0] == ["file", "maps", "class", "probability"]
    return {r[0]: tuple(r[1:]) for r in table[1:]}


def input_files(ws, images=("A", "B")):
    """{file as the table names it: Path} of every readable image given."""
    return {(ws / f).resolve().as_posix() + "/" + n: ws / f / n for f in images for n in GOOD[f]}


def check_outputs(ws, out: Path, methods=("gradcam",), images=("A", "B"), overlays=True):
    """Every readable image has its own complete, correct outputs, listed in predictions.csv."""
    from cams.cli.common import load_model
    from cams.methods import registry

    model = load_model(str(ws / "m.keras"))
    explainers = registry.build_explainers(model, ",".join(methods))
    table, given = rows(out), input_files(ws, images)
    assert sorted(table) == sorted(given)
    assert len({local.name_key(maps) for maps, _, _ in table.values()}) == len(table)  # distinct outputs
    for file, (maps, cls, prob) in table.items():
        x = load_image(given[file], (SIZE, SIZE), 3)[None]
        with np.load(out / maps) as z:
            assert sorted(z.files) == sorted([m.replace("+", "p") for m in methods] + ["predicted", "probability"])
            probs = model.predict(x, verbose=0)[0]
            assert int(z["predicted"]) == int(cls) == int(probs.argmax())
            assert float(z["probability"]) == pytest.approx(float(prob), abs=1e-6)
            for m in methods:  # stored as float16 (the default): within half precision's step on [0, 1]
                stored = z[m.replace("+", "p")]
                assert stored.dtype == np.float16 and np.abs(stored - explainers[m](x)[0]).max() <= 2.0 ** -11 + 1e-5, (file, m)
        rel = maps[len("maps/"):-len(".npz")]
        for m in methods:
            assert (out / local.overlay_name(rel, m)).is_file() == overlays
    derived = {local.npz_name(m[len("maps/"):-len(".npz")]) for m, _, _ in table.values()}
    owned = {p.relative_to(out).as_posix() for p in (out / "maps").rglob("*") if p.is_file()} - set(USER_IN_OUT)
    assert owned == derived  # nothing else of the job's under maps/


# ---------------------------------------------------------------- refused before any work
@pytest.mark.parametrize("case, out, images, message", [
    ("own-explain-folder-out-is-images", "A", ("A", "B"), r"--out \S+A is --images \S+A: outputs would mix"),
    ("own-explain-folder-out-inside-images", "A/out", ("A", "B"), r"is inside --images \S+A: "),
    ("own-explain-folder-out-contains-images", ".", ("A", "B"), r"contains --images \S+A: "),
    ("own-explain-folder-out-contains-model", "models", ("A",), r"contains --model \S+models/m.keras: "),
    ("own-explain-folder-out-is-a-file", "A/photo.png", ("B",), r"A/photo.png is a file, not a folder"),
], ids=ids("own-explain-folder-out-is-images", "own-explain-folder-out-inside-images",
           "own-explain-folder-out-contains-images", "own-explain-folder-out-contains-model",
           "own-explain-folder-out-is-a-file"))
def test_an_out_overlapping_the_inputs_is_refused_and_nothing_changes(ws, case, out, images, message):
    model = "models/m.keras" if "model" in case else "m.keras"
    before = snapshot(ws, skip=[ws / "base"])
    code, _, err = run(*argv(ws, ws / out, images=images, model=model))
    assert code == 2 and len(err.strip().splitlines()) == 1, err
    assert err.startswith("cams explain-folder: error: ") and re.search(message, err), err
    assert snapshot(ws, skip=[ws / "base"]) == before and not (ws / "A" / "out").exists()


@pytest.mark.parametrize("case", ids("own-explain-folder-user-npz", "own-explain-folder-user-predictions"))
def test_a_user_file_where_an_output_goes_is_refused_before_any_work(ws, tmp_path, case):
    found, folders = local.list_local([ws / "A", ws / "B"])
    some = sorted(local.output_names(found, folders).values())[0]
    user = local.npz_name(some) if case.endswith("npz") else "predictions.csv"
    plant(tmp_path / "o", {user: b"the user's", **USER_IN_OUT})
    before = snapshot(tmp_path)
    code, _, err = run(*argv(ws, tmp_path / "o"))
    assert code == 2 and len(err.strip().splitlines()) == 1, err
    assert f"{tmp_path / 'o' / user} exists and was not written by cams explain-folder; choose another --out" in err
    assert snapshot(tmp_path) == before  # no manifest, no output: nothing written


# ---------------------------------------------------------------- fresh, rerun, distinct names
@pytest.mark.parametrize("case", ids("own-explain-folder-user-dotfiles"))
def test_a_fresh_run_keeps_the_user_files_in_and_around_its_folder(ws, case):
    out = ws / "base"  # the fixture's run, with USER_IN_OUT planted before it
    assert {n: (out / n).read_bytes() for n in USER_IN_OUT} == USER_IN_OUT
    assert (ws / "A" / ".notes.txt").read_text() == "the user's"


@pytest.mark.parametrize("case", ids("own-explain-folder-same-names"))
def test_a_fresh_run_gives_every_image_its_own_complete_outputs(ws, case):
    check_outputs(ws, ws / "base")
    assert counts_line(total(), 0, explained(), total() - explained()) in FIRST["stdout"]


@pytest.mark.parametrize("case", ids("own-explain-folder-csv-names"))
def test_predictions_csv_reads_back_every_name_as_written(ws, case):
    table = rows(ws / "base")
    assert sorted(table) == sorted(input_files(ws))  # commas, quotes, a newline, non-ASCII: the same strings
    assert all((ws / "base" / maps).is_file() and 0 < float(p) <= 1 for maps, _, p in table.values())


@pytest.mark.parametrize("case", ids("own-explain-folder-unreadable-counted"))
def test_unreadable_images_are_counted_and_listed(ws, case):
    assert f", {sum(map(len, BAD.values()))} unreadable" in FIRST["stdout"]
    for folder, names in BAD.items():
        for name in names:
            assert f"skipped {ws / folder / name}: not a readable image" in FIRST["stderr"]


@pytest.mark.parametrize("case", ids("own-explain-folder-rerun"))
def test_a_rerun_of_the_same_job_resumes_and_changes_nothing(ws, tmp_path, case):
    out = tmp_path / "o"
    shutil.copytree(ws / "base", out)
    before = snapshot(out)
    code, stdout, err = run(*argv(ws, out))
    assert code == 0, err
    assert counts_line(total(), explained(), 0, total() - explained()) in stdout
    for name in sorted(BAD["A"]):
        assert f"skipped {ws / 'A' / name}: not a readable image" in err
    assert snapshot(out) == before  # the same bytes everywhere, the table and the manifest included


@pytest.mark.parametrize("case, extra, key", [
    ("own-explain-folder-changed-methods", dict(methods="gradcam,gradcam++"), "methods: gradcam -> gradcam,gradcam++"),
    ("own-explain-folder-changed-layer", dict(extra=("--layer", "conv1")), "layer: None -> conv1"),
    ("own-explain-folder-changed-scale", dict(extra=("--scale", "1")), "scale: "),
    ("own-explain-folder-changed-overlays", dict(extra=("--no-overlays",)), "overlays: True -> False"),
    ("own-explain-folder-changed-model", dict(model="m2.keras"), "model: "),
    ("own-explain-folder-changed-images", dict(images=("A",)), "images: "),
], ids=ids("own-explain-folder-changed-methods", "own-explain-folder-changed-layer", "own-explain-folder-changed-scale",
           "own-explain-folder-changed-overlays", "own-explain-folder-changed-model",
           "own-explain-folder-changed-images"))
def test_a_rerun_with_other_settings_stops_and_names_the_difference(ws, tmp_path, case, extra, key):
    out = tmp_path / "o"
    shutil.copytree(ws / "base", out)
    before = snapshot(out)
    code, _, err = run(*argv(ws, out, *extra.pop("extra", ()), **extra))
    assert code == 2 and len(err.strip().splitlines()) == 1, err
    assert f"holds a cams explain-folder run with other settings ({key}" in err
    assert "choose another --out, or add --restart" in err
    assert snapshot(out) == before


@pytest.mark.parametrize("case", ids("own-explain-folder-restart"))
def test_restart_deletes_only_the_jobs_own_outputs_and_starts_over(ws, tmp_path, case):
    out = tmp_path / "o"
    shutil.copytree(ws / "base", out)
    code, stdout, err = run(*argv(ws, out, "--restart", images=("A",), methods="gradcam,gradcam++"))
    assert code == 0, err
    good_a = len(GOOD["A"])
    assert counts_line(good_a + len(BAD["A"]), 0, good_a, len(BAD["A"])) in stdout
    assert {n: (out / n).read_bytes() for n in USER_IN_OUT} == USER_IN_OUT
    check_outputs(ws, out, methods=("gradcam", "gradcam++"), images=("A",))
    derived = {m[len("maps/"):-len(".npz")] for m, _, _ in rows(out).values()}
    overlays = {p.relative_to(out).as_posix() for p in (out / "overlays").rglob("*") if p.is_file()}
    assert overlays == {local.overlay_name(r, m) for r in derived for m in ("gradcam", "gradcam++")}


@pytest.mark.parametrize("case", ids("own-explain-folder-killed"))
def test_a_killed_runs_temporary_files_go_and_its_missing_outputs_are_made(ws, tmp_path, case):
    out = tmp_path / "o"
    shutil.copytree(ws / "base", out)
    lost = sorted(m for m, _, _ in rows(out).values())[-1]
    (out / lost).unlink()
    temps = [f"maps/{TEMP_PREFIX}x.png.abc123.npz", f"overlays/{TEMP_PREFIX}y.png.gradcam.q1.png",
             f"{TEMP_PREFIX}predictions.z9.csv"]
    plant(out, {t: b"PK\x03" for t in temps})
    code, stdout, err = run(*argv(ws, out))
    assert code == 0, err
    assert counts_line(total(), explained() - 1, 1, total() - explained()) in stdout
    assert [t for t in temps if (out / t).exists()] == []
    assert {n: (out / n).read_bytes() for n in USER_IN_OUT} == USER_IN_OUT
    check_outputs(ws, out)


# ---------------------------------------------------------------- Apache Beam (DirectRunner)
@pytest.mark.parametrize("case", ids("own-explain-folder-beam-same-names", "own-explain-folder-beam-unreadable-names"))
def test_beam_writes_the_same_distinct_outputs_and_lists_unreadable_files_intact(ws, tmp_path, case):
    pytest.importorskip("apache_beam")
    from cams.distributed import beam as cams_beam

    out = tmp_path / "o"
    plant(out, USER_IN_OUT)
    code, stdout, err = run(*argv(ws, out, "--runner", "DirectRunner"))
    assert code == 0, err
    assert counts_line(total(), 0, explained(), total() - explained()) in stdout
    assert {n: (out / n).read_bytes() for n in USER_IN_OUT} == USER_IN_OUT
    check_outputs(ws, out)
    assert {f: r[:2] for f, r in rows(out).items()} == {f: r[:2] for f, r in rows(ws / "base").items()}
    listed = cams_beam.read_unreadable(str(out))
    assert sorted(f for f, _ in listed) == sorted((ws / "A").resolve().as_posix() + "/" + n for n in BAD["A"])


@pytest.mark.parametrize("case", ids("own-explain-folder-beam-resumes"))
def test_beam_resumes_the_single_process_job(ws, tmp_path, case):
    pytest.importorskip("apache_beam")
    out = tmp_path / "o"
    shutil.copytree(ws / "base", out)
    tables = {"predictions.csv", "unreadable.txt", f"{MANIFEST_PREFIX}{local.JOB}.json"}
    before = snapshot(out)
    code, stdout, err = run(*argv(ws, out, "--runner", "DirectRunner"))
    assert code == 0, err
    assert counts_line(total(), explained(), 0, total() - explained()) in stdout
    after = snapshot(out)
    assert {k: v for k, v in after.items() if k not in tables} == {k: v for k, v in before.items() if k not in tables}
    assert {f: r[:2] for f, r in rows(out).items()} == {f: r[:2] for f, r in rows(ws / "base").items()}


@pytest.mark.parametrize("case, user, extra, message", [
    ("own-explain-folder-beam-user-npz", True, (), "exists and was not written by cams explain-folder"),
    ("own-explain-folder-beam-changed-methods", False, ("--methods", "gradcam++"),
     "other settings (methods: gradcam -> gradcam++)"),
], ids=ids("own-explain-folder-beam-user-npz", "own-explain-folder-beam-changed-methods"))
def test_beam_refuses_what_the_single_process_path_refuses(ws, tmp_path, case, user, extra, message):
    pytest.importorskip("apache_beam")
    out = tmp_path / "o"
    if user:
        found, folders = local.list_local([ws / "A", ws / "B"])
        plant(out, {local.npz_name(sorted(local.output_names(found, folders).values())[0]): b"mine"})
    else:
        shutil.copytree(ws / "base", out)
    before = snapshot(out)
    code, _, err = run(*argv(ws, out, "--runner", "DirectRunner", *extra))
    assert code == 2 and err.strip().splitlines()[-1].startswith("cams explain-folder: error: "), err
    assert message in err and snapshot(out) == before


@pytest.mark.parametrize("case", ids("own-explain-folder-remote-manifest"))
def test_the_manifest_of_a_url_out_goes_through_beams_file_systems(tmp_path, case):
    """RemoteOutputFolder (gs://, s3://) on a local folder, which Beam's FileSystems also reach."""
    pytest.importorskip("apache_beam")
    from cams.distributed.beam import RemoteOutputFolder

    plant(tmp_path, {"predictions.csv": b"mine"})
    folder = RemoteOutputFolder(str(tmp_path), {"methods": "gradcam"})
    with pytest.raises(ValueError, match="predictions.csv exists and was not written by cams explain-folder"):
        local.claim_job(folder, set(), set(), ["predictions.csv"])
    folder.claim(["unreadable.txt"])
    folder.record("unreadable.txt")
    again = RemoteOutputFolder(str(tmp_path), {"methods": "gradcam++"})
    assert again.owns("unreadable.txt") and again.changed_settings() == ["methods"]
    with pytest.raises(ValueError, match=r"other settings \(methods: gradcam -> gradcam\+\+\)"):
        local.claim_job(again, set(), set(), ["unreadable.txt"])
    assert (tmp_path / "predictions.csv").read_bytes() == b"mine"


def test_every_case_is_in_the_table():
    table = DOC.read_text(encoding="utf-8")
    assert [c for c in IDS if f"`{c}`" not in table] == []
