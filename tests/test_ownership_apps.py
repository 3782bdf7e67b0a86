"""Nothing the user has is lost: the writing commands of `bengali-xai` and `deepfake-xai` (rows "own-*" of
docs/bad_inputs.md).

Each case plants user files (dotfiles, CSV-hostile names, a file or folder where an output goes) in and
around the output and input folders, runs the command fresh, again, and with other settings, and checks
that every user file is byte-identical afterwards, that a file in the way stops the command with one line
(exit 2) before any work, and that the outputs are complete. Mains are called in this process.
"""
from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import keras
import numpy as np
import pytest
from PIL import Image

from cams.core.outputs import MANIFEST_PREFIX

DOC = Path(__file__).resolve().parents[1] / "docs" / "bad_inputs.md"
BENGALI = ["--data", "synthetic", "--max-samples", "100", "--seed", "1"]
#: user files planted around every output: a dotfile, a plain note, a CSV-hostile name
USER_FILES = {".keep": b"dot\n", "notes.txt": b"mine\n", 'a,b "c";d.csv': b"x,\"y\"\n1,2\n"}
DF_COUNTS = {"train": 8, "val": 4, "test": 4}


def df_stem(data: Path) -> str:
    """<dataset>_SimpleNet_Adam: the stem train gives its JSON, checkpoint and backup folder."""
    from deepfake_xai.history_json import run_stem

    return run_stem(data.name, "SimpleNet", "Adam")


# ----------------------------------------------------------------------------- helpers
def run_main(app: str, argv, capsys) -> tuple[int, list[str]]:
    """(exit status, stderr lines) of `bengali-xai` / `deepfake-xai` main() run in this process; what it
    printed on stdout is left in `run_main.stdout`."""
    if app == "bengali":
        from bengali_xai.cli import main
    else:
        from deepfake_xai.cli import main
    capsys.readouterr()
    try:
        rc = main([str(a) for a in argv])
    except SystemExit as exc:
        rc = exc.code
    captured = capsys.readouterr()
    run_main.stdout = captured.out
    return rc, captured.err.strip().splitlines()


def plant(folder: Path, files: dict | None = None) -> dict[Path, bytes]:
    """Write user files into `folder`; returns {path: bytes} to check later with `intact`."""
    folder.mkdir(parents=True, exist_ok=True)
    planted = {}
    for name, data in (files or USER_FILES).items():
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_bytes(data)
        planted[folder / name] = data
    return planted


def intact(planted: dict[Path, bytes]) -> None:
    changed = [str(p) for p, data in planted.items() if not p.is_file() or p.read_bytes() != data]
    assert changed == [], f"user files changed or gone: {changed}"


def refused(rc: int, err: list[str], *fragments, alone: bool = True) -> None:
    """Exit 2 with one error line naming every fragment (`alone`: nothing else on stderr, no progress bar)."""
    assert rc == 2 and err and (len(err) == 1 or not alone), err
    assert "error:" in err[-1], err
    for f in fragments:
        assert str(f) in err[-1], (f, err[-1])


def manifest(folder: Path, job: str) -> dict:
    return json.loads((folder / f"{MANIFEST_PREFIX}{job}.json").read_text(encoding="utf-8"))


def interrupt_after_first_epoch(monkeypatch) -> None:
    """Ctrl-C once the first epoch is backed up (as an interrupted run leaves it)."""
    original = keras.callbacks.BackupAndRestore.on_epoch_end

    def on_epoch_end(self, epoch, logs=None):
        original(self, epoch, logs)
        raise KeyboardInterrupt

    monkeypatch.setattr(keras.callbacks.BackupAndRestore, "on_epoch_end", on_epoch_end)


# ----------------------------------------------------------------------------- shared runs
@pytest.fixture(scope="module")
def ws(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("own")


@pytest.fixture(scope="module")
def bx_trained(ws):
    """`bengali-xai train` run fresh into a folder holding user files: (out, planted)."""
    from bengali_xai.cli import main

    out = ws / "bx_train"
    planted = plant(out)
    assert main(["train", *BENGALI, "--epochs", "1", "--batch-size", "50", "--out", str(out)]) == 0
    return out, planted


@pytest.fixture(scope="module")
def df_data(ws) -> Path:
    """A tiny generated planted-face data set under ws/data, with user files beside it."""
    from deepfake_xai.make_dataset import generate_dataset

    plant(ws / "data")
    return generate_dataset(ws / "data", "fakes_dataset", 64, DF_COUNTS, progress=False, log=lambda s: None)


def df_train_args(data: Path, out: Path, ck: Path, *extra) -> list:
    return ["train", "-d", data.name, "--data-root", data.parent, "--image-size", "64", "-e", "1", "-b", "8",
            "--out-dir", out, "--checkpoint-dir", ck, "-v", "0", *extra]


@pytest.fixture(scope="module")
def df_trained(ws, df_data):
    """`deepfake-xai train` run fresh into --out-dir / --checkpoint-dir holding user files."""
    from deepfake_xai.cli import main

    out, ck = ws / "df_out", ws / "df_ck"
    planted = {**plant(out), **plant(ck)}
    assert main([str(a) for a in df_train_args(df_data, out, ck)]) == 0
    return out, ck, planted


def copy_dataset(src: Path, dest: Path) -> Path:
    shutil.copytree(src, dest)
    return dest


# ----------------------------------------------------------------------------- bengali-xai
def bengali_train_user_files(ws, capsys, monkeypatch, request):
    from bengali_xai.outputs import TRAIN_FILES

    out, planted = request.getfixturevalue("bx_trained")
    assert set(TRAIN_FILES) <= set(manifest(out, "train")["files"])
    rc, err = run_main("bengali", ["train", *BENGALI, "--epochs", "1", "--batch-size", "40", "--out", out], capsys)
    assert rc == 0, err  # a rerun with other settings after a finished run: its own files are replaced
    intact(planted)
    assert all((out / name).is_file() for name in TRAIN_FILES)
    assert json.loads((out / "metrics.json").read_text())["batch_size"] == 40


def bengali_train_user_file_in_the_way(ws, capsys, monkeypatch, request):
    out = ws / "bx_way"
    planted = plant(out, {**USER_FILES, "model.keras": b"my own model"})
    rc, err = run_main("bengali", ["train", *BENGALI, "--out", out], capsys)
    refused(rc, err, out / "model.keras", "--out")
    assert "loading" not in run_main.stdout  # refused before the data were loaded
    intact(planted)
    assert not list(out.glob(MANIFEST_PREFIX + "*"))


def bengali_train_other_settings(ws, capsys, monkeypatch, request):
    from bengali_xai.outputs import BACKUP_DIR, TRAIN_FILES

    out = ws / "bx_resume"
    planted = plant(out)
    argv = ["train", *BENGALI, "--epochs", "2", "--batch-size", "50", "--out", out]
    with monkeypatch.context() as m:
        interrupt_after_first_epoch(m)
        rc, err = run_main("bengali", argv, capsys)
    assert rc == 130 and (out / BACKUP_DIR).is_dir()
    rc, err = run_main("bengali", [*argv[:-4], "--batch-size", "40", "--out", out], capsys)
    refused(rc, err, out / BACKUP_DIR, "--restart", alone=False)  # after the digits were generated, before training
    assert "could not be loaded" not in err[-1]
    rc, err = run_main("bengali", [*argv[:-4], "--batch-size", "40", "--restart", "--out", out], capsys)
    assert rc == 0, err
    intact(planted)
    assert all((out / name).is_file() for name in TRAIN_FILES) and not (out / BACKUP_DIR).exists()


def bengali_train_user_backup_folder(ws, capsys, monkeypatch, request):
    from bengali_xai.outputs import BACKUP_DIR

    out = ws / "bx_backup"
    planted = plant(out / BACKUP_DIR)
    rc, err = run_main("bengali", ["train", *BENGALI, "--out", out], capsys)
    refused(rc, err, out / BACKUP_DIR, "--out")
    rc, err = run_main("bengali", ["train", *BENGALI, "--restart", "--out", out], capsys)
    refused(rc, err, out / BACKUP_DIR, "--out")  # --restart removes only what training wrote: still refused
    intact(planted)


def bengali_out_inside_data_dir(ws, capsys, monkeypatch, request):
    data = ws / "bx_ekush"
    planted = plant(data, {"maleDigits.csv": b"1,2\n"})
    for out in (data, data / "results"):
        rc, err = run_main("bengali", ["baselines", "--data", "ekush", "--data-dir", data, "--out", out], capsys)
        refused(rc, err, "--data-dir", data, "--out")
    intact(planted)
    assert not (data / "results").exists()


def bengali_out_is_a_file(ws, capsys, monkeypatch, request):
    out = ws / "bx_file.json"
    planted = plant(ws, {out.name: b"[1, 2]"})
    rc, err = run_main("bengali", ["train", *BENGALI, "--out", out], capsys)
    refused(rc, err, out)
    intact(planted)


def bengali_baselines_csv(ws, capsys, monkeypatch, request):
    from bengali_xai.outputs import BASELINE_FILES

    out = ws / "bx_base"
    planted = plant(out)
    for only in ("KNeighborsClassifier,GaussianNB", "GaussianNB"):  # fresh, then other settings
        rc, err = run_main("bengali", ["baselines", *BENGALI, "--classifiers", only, "--out", out], capsys)
        assert rc == 0, err
        with open(out / "baselines.csv", encoding="utf-8", newline="") as fh:
            rows = list(csv.reader(fh))
        assert [r[0] for r in rows[1:]] == only.split(",") and all(len(r) == len(rows[0]) for r in rows)
    intact(planted)
    assert set(BASELINE_FILES) <= set(manifest(out, "baselines")["files"])


def bengali_baselines_user_figure(ws, capsys, monkeypatch, request):
    out = ws / "bx_base_way"
    planted = plant(out, {**USER_FILES, "confusion_matrix.png": b"my figure"})
    rc, err = run_main("bengali", ["baselines", *BENGALI, "--out", out], capsys)
    refused(rc, err, out / "confusion_matrix.png", "--out")
    intact(planted)


def bengali_explain_user_json(ws, capsys, monkeypatch, request):
    from bengali_xai.outputs import explain_files

    model = request.getfixturevalue("bx_trained")[0] / "model.keras"
    out = ws / "bx_explain"
    planted = plant(out, {**USER_FILES, "explain.json": b"{}"})
    argv = ["explain", "--model", model, *BENGALI, "--methods", "gradcam", "--n", "2", "--energy-samples", "0"]
    rc, err = run_main("bengali", [*argv, "--out", out], capsys)
    refused(rc, err, out / "explain.json", "--out")
    (out / "explain.json").unlink()
    del planted[out / "explain.json"]
    for _ in range(2):  # fresh and rerun
        rc, err = run_main("bengali", [*argv, "--out", out], capsys)
        assert rc == 0, err
    intact(planted)
    assert all((out / name).is_file() for name in explain_files(["gradcam"]))


def bengali_explain_out_contains_model(ws, capsys, monkeypatch, request):
    out = request.getfixturevalue("bx_trained")[0]
    rc, err = run_main("bengali", ["explain", "--model", out / "model.keras", *BENGALI, "--out", out], capsys)
    refused(rc, err, "--model", "--out")


def bengali_export_user_folder(ws, capsys, monkeypatch, request):
    model = request.getfixturevalue("bx_trained")[0] / "model.keras"
    out = ws / "bx_export"
    planted = plant(out)
    rc, err = run_main("bengali", ["export", "--model", model, "--out", out], capsys)
    refused(rc, err, out, "--out")
    intact(planted)


def bengali_ekush_not_utf8(ws, capsys, monkeypatch, request):
    data = ws / "bx_latin1"
    planted = plant(data, {"maleDigits.csv": "caf\u00e9,label\n".encode("latin-1") + b"0,112\n"})
    rc, err = run_main("bengali", ["baselines", "--data", "ekush", "--data-dir", data, "--out", ws / "bx_l1"], capsys)
    refused(rc, err, data / "maleDigits.csv", "UTF-8")
    intact(planted)


def bengali_numtadb_not_utf8(ws, capsys, monkeypatch, request):
    data = ws / "bx_numta_latin1"
    planted = plant(data, {"training-a/x.png": b"", "training-a.csv": "filename,digit\n\u00e9.png,1\n".encode("latin-1")})
    rc, err = run_main("bengali", ["baselines", "--data", "numtadb", "--data-dir", data, "--out", ws / "bx_n1"], capsys)
    refused(rc, err, data / "training-a.csv", "UTF-8")
    intact(planted)


def bengali_numtadb_no_usable_image(ws, capsys, monkeypatch, request):
    from bengali_xai.data_numtadb import READABLE

    data = ws / "bx_numta_bad"
    rows = "".join(f"{i}.png,{i % 10}\n" for i in range(12))
    files = {f"training-a/{i}.png": b"not an image" for i in range(10)}  # and 2 listed files missing
    planted = plant(data, {**files, "training-a.csv": ("filename,digit\n" + rows).encode()})
    rc, err = run_main("bengali", ["baselines", "--data", "numtadb", "--data-dir", data, "--out", ws / "bx_n2"], capsys)
    refused(rc, err, "none of the 12 listed images", "2 missing", "10 not a readable image", READABLE, alone=False)
    intact(planted)


def bengali_demo_user_file(ws, capsys, monkeypatch, request):
    out = ws / "bx_demo"
    planted = plant(out, {**USER_FILES, "methods_grid.png": b"mine"})
    rc, err = run_main("bengali", ["demo", "--max-samples", "100", "--epochs", "1", "--out", out], capsys)
    refused(rc, err, out / "methods_grid.png", "--out")
    assert "generating" not in run_main.stdout  # before any digit was generated
    intact(planted)


# ----------------------------------------------------------------------------- deepfake-xai make-dataset
MAKE = ["make-dataset", "--image-size", "40", "--train", "4", "--val", "2", "--test", "2", "-q"]


def deepfake_make_dataset_user_folder(ws, capsys, monkeypatch, request):
    root = ws / "df_make_user"
    planted = {**plant(root), **plant(root / "fakes_dataset", {"train/real/me.jpg": b"my photo", ".x": b"1"})}
    for extra in ([], ["--overwrite"]):
        rc, err = run_main("deepfake", [*MAKE, "--data-root", root, *extra], capsys)
        refused(rc, err, root / "fakes_dataset", "was not generated")
    intact(planted)


def deepfake_make_dataset_rerun(ws, capsys, monkeypatch, request):
    root = ws / "df_make"
    planted = plant(root)
    argv = [*MAKE, "--data-root", root]
    assert run_main("deepfake", argv, capsys)[0] == 0
    dest = root / "fakes_dataset"
    rc, err = run_main("deepfake", argv, capsys)
    refused(rc, err, dest, "--overwrite")
    rc, err = run_main("deepfake", [*argv, "--overwrite", "--seed", "5"], capsys)  # its own data set, other settings
    assert rc == 0, err
    assert manifest(dest, "make-dataset")["settings"]["seed"] == 5
    planted.update(plant(dest / "train" / "real", {"mine.jpg": b"added by me"}))
    rc, err = run_main("deepfake", [*argv, "--overwrite"], capsys)
    refused(rc, err, dest / "train" / "real" / "mine.jpg", "--name")
    intact(planted)
    assert sorted(p.name for p in root.iterdir()) == sorted([*USER_FILES, "fakes_dataset"])  # no temporary left


def deepfake_make_dataset_inside_real_images(ws, capsys, monkeypatch, request):
    photos = ws / "df_photos"
    planted = plant(photos)
    for kind in ("planted", "synthetic"):
        rc, err = run_main("deepfake", [*MAKE, "--kind", kind, "--data-root", photos, "--real-images", photos], capsys)
        refused(rc, err, "--real-images", photos)
    intact(planted)
    assert sorted(p.name for p in photos.iterdir()) == sorted(USER_FILES)


# ----------------------------------------------------------------------------- deepfake-xai train
def deepfake_train_user_files(ws, capsys, monkeypatch, request):
    from deepfake_xai.history_json import read_runs

    out, ck, planted = request.getfixturevalue("df_trained")
    data = request.getfixturevalue("df_data")
    rc, err = run_main("deepfake", df_train_args(data, out, ck, "-lr", "0.002"), capsys)  # other settings
    assert rc == 0, err
    intact(planted)
    stem = df_stem(data)
    assert len(read_runs(out / f"{stem}.json")) == 2  # the run was added to the job's own JSON
    kept = manifest(ck, f"train.{stem}")["files"]
    assert len(kept) == 2 and all((ck / name).is_file() for name in kept)  # latest + the earlier one, renamed


def deepfake_train_user_json(ws, capsys, monkeypatch, request):
    data = request.getfixturevalue("df_data")
    out, ck = ws / "df_way_out", ws / "df_way_ck"
    stem = df_stem(data)
    planted = {**plant(out, {**USER_FILES, f"{stem}.json": b"[]\n"}), **plant(ck)}
    rc, err = run_main("deepfake", df_train_args(data, out, ck), capsys)
    refused(rc, err, out / f"{stem}.json", "--out-dir")
    planted.update(plant(ck, {f"{stem}.keras": b"my checkpoint"}))
    rc, err = run_main("deepfake", df_train_args(data, ws / "df_way_out2", ck), capsys)
    refused(rc, err, ck / f"{stem}.keras", "--checkpoint-dir")
    intact(planted)


def deepfake_train_user_backup_folder(ws, capsys, monkeypatch, request):
    data = request.getfixturevalue("df_data")
    ck = ws / "df_backup_ck"
    backup = ck / f"{df_stem(data)}.resume"
    planted = plant(backup)
    for extra in ([], ["--restart"]):
        rc, err = run_main("deepfake", df_train_args(data, ws / "df_backup_out", ck, *extra), capsys)
        refused(rc, err, backup, "--checkpoint-dir")
    intact(planted)


def deepfake_train_other_settings(ws, capsys, monkeypatch, request):
    data = request.getfixturevalue("df_data")
    out, ck = ws / "df_resume_out", ws / "df_resume_ck"
    planted = {**plant(out), **plant(ck)}
    argv = df_train_args(data, out, ck, "-e", "2")
    with monkeypatch.context() as m:
        interrupt_after_first_epoch(m)
        assert run_main("deepfake", argv, capsys)[0] == 130
    backup = ck / f"{df_stem(data)}.resume"
    rc, err = run_main("deepfake", [*argv, "-lr", "0.002"], capsys)
    refused(rc, err, backup, "--restart")
    assert "could not be loaded" not in err[0]
    rc, err = run_main("deepfake", [*argv, "-lr", "0.002", "--restart"], capsys)
    assert rc == 0, err
    intact(planted)
    assert not backup.exists()


def deepfake_train_out_inside_dataset(ws, capsys, monkeypatch, request):
    data = request.getfixturevalue("df_data")
    for option in ("--out-dir", "--checkpoint-dir"):
        argv = df_train_args(data, ws / "df_x_out", ws / "df_x_ck")
        argv[argv.index(option) + 1] = data / "results"
        rc, err = run_main("deepfake", argv, capsys)
        refused(rc, err, option, "--dataset")
    assert not (data / "results").exists()


def deepfake_train_no_usable_image(ws, capsys, monkeypatch, request):
    from deepfake_xai.data import READABLE

    data = request.getfixturevalue("df_data")
    bad = copy_dataset(data, ws / "df_tif" / "fakes_dataset")
    for p in (bad / "train" / "fake").iterdir():
        p.unlink()
    rc, err = run_main("deepfake", df_train_args(bad, ws / "df_tif_out", ws / "df_tif_ck"), capsys)
    refused(rc, err, bad / "train" / "fake", "empty", READABLE)
    for i in range(3):
        Image.fromarray(np.zeros((64, 64, 3), np.uint8)).save(bad / "train" / "fake" / f"{i}.tif")
    rc, err = run_main("deepfake", df_train_args(bad, ws / "df_tif_out", ws / "df_tif_ck"), capsys)
    refused(rc, err, bad / "train" / "fake", "3 .tif", READABLE)


# ----------------------------------------------------------------------------- deepfake-xai analyses
ANALYSES = {"numerical-analysis": [], "saliency-map": ["--n-pairs", "2"], "grad-cam-analysis": ["--seed", "0"],
            "localization": []}


def analysis_args(command, data, ck, out) -> list:
    return [command, "-m", "SimpleNet", "-cpp", ck / f"{df_stem(data)}.keras", "-d", data.name,
            "--data-root", data.parent, "--out-dir", out, "-b", "4", *ANALYSES[command]]


def deepfake_analyses_user_files(ws, capsys, monkeypatch, request):
    from deepfake_xai.analysis.common import output_names

    data, (_, ck, _) = request.getfixturevalue("df_data"), request.getfixturevalue("df_trained")
    out = ws / "df_an"
    planted = {**plant(out), **plant(out / "figures")}
    for command in ANALYSES:
        for _ in range(2):  # fresh and rerun
            rc, err = run_main("deepfake", analysis_args(command, data, ck, out), capsys)
            assert rc == 0, (command, err)
        names = output_names(command, data.name, "SimpleNet")
        assert all((out / n).is_file() for n in names) and set(names) <= set(manifest(out, command)["files"])
    intact(planted)


def deepfake_analysis_user_figure(ws, capsys, monkeypatch, request):
    from deepfake_xai.analysis.common import output_names

    data, (_, ck, _) = request.getfixturevalue("df_data"), request.getfixturevalue("df_trained")
    out = ws / "df_an_way"
    for command in ANALYSES:
        name = output_names(command, data.name, "SimpleNet")[0]
        planted = plant(out, {**USER_FILES, name: b"mine"})
        rc, err = run_main("deepfake", analysis_args(command, data, ck, out), capsys)
        refused(rc, err, out / name, "--out-dir")
        assert "loaded" not in run_main.stdout  # before the checkpoint was loaded
        intact(planted)


def deepfake_analysis_out_overlaps_inputs(ws, capsys, monkeypatch, request):
    data, (_, ck, _) = request.getfixturevalue("df_data"), request.getfixturevalue("df_trained")
    for out, option in ((ck, "--checkpoint-path"), (data / "test", "--dataset"), (data.parent, "--dataset")):
        rc, err = run_main("deepfake", analysis_args("numerical-analysis", data, ck, out), capsys)
        refused(rc, err, "--out-dir", option)


@pytest.fixture(scope="module")
def df_hostile(ws, df_data, df_trained):
    """numerical-analysis on a copy of the data set whose test images have CSV-hostile names and a broken
    file: (exit status, data set, --out-dir, stderr)."""
    import contextlib
    import io

    from deepfake_xai.cli import main

    data = copy_dataset(df_data, ws / "df_hostile" / "hostile")
    for i, p in enumerate(sorted((data / "test" / "real").glob("*.jpg"))):
        p.rename(p.with_name(f'r{i},x "q";\u00e9.jpg'))
    (data / "test" / "real" / "broken.jpg").write_bytes(b"not a jpeg")
    out = ws / "df_hostile_out"
    ck = df_trained[1] / f"{df_stem(df_data)}.keras"
    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        rc = main(["numerical-analysis", "-m", "SimpleNet", "-cpp", str(ck), "-d", str(data), "--out-dir", str(out)])
    return rc, data, out, err.getvalue()


def deepfake_soft_scores_csv_hostile_names(ws, capsys, monkeypatch, request):
    from deepfake_xai.analysis.common import output_names
    from deepfake_xai.data import list_split

    rc, data, out, err = request.getfixturevalue("df_hostile")
    assert rc == 0, err
    scores = next(n for n in output_names("numerical-analysis", data.name, "SimpleNet") if n.endswith(".csv"))
    with open(out / scores, encoding="utf-8", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert sorted(r["path"] for r in rows) == sorted(list_split(data, "test").paths)


def deepfake_partial_drop_counted(ws, capsys, monkeypatch, request):
    from deepfake_xai import data as ddata

    rc, data, _, err = request.getfixturevalue("df_hostile")
    assert rc == 0, err
    files = ddata.list_split(data, "test")
    total = len(files.paths) + len(files.skipped)
    assert f"left out {len(files.skipped)} of {total} files" in err and str(data / "test" / "real" / "broken.jpg") in err


def deepfake_plot_spectrum_samples(ws, capsys, monkeypatch, request):
    from deepfake_xai.analysis.common import output_names
    from deepfake_xai.samples import FIGURE
    from deepfake_xai.spectrum import outputs_of

    data, (out_json, _, _) = request.getfixturevalue("df_data"), request.getfixturevalue("df_trained")
    runs = {"plot-accuracy-and-loss": (["-j", out_json / f"{df_stem(data)}.json"],
                                       output_names("plot-accuracy-and-loss", data.name, "SimpleNet")),
            "spectrum": (["-d", data.name, "--data-root", data.parent, "--limit", "2"], outputs_of(data.name, "test")),
            "plot-samples": (["-d", data.name, "--data-root", data.parent, "-n", "1"], [FIGURE])}
    for command, (argv, names) in runs.items():
        out = ws / f"df_{command}"
        planted = {**plant(out), **plant(out / "figures", {**USER_FILES, Path(names[0]).name: b"mine"})}
        rc, err = run_main("deepfake", [command, *argv, "--out-dir", out], capsys)
        refused(rc, err, out / names[0], "--out-dir")
        (out / names[0]).unlink()
        del planted[out / names[0]]
        for _ in range(2):
            rc, err = run_main("deepfake", [command, *argv, "--out-dir", out], capsys)
            assert rc == 0, (command, err)
        assert all((out / n).is_file() for n in names)
        intact(planted)


def deepfake_history_json_not_utf8(ws, capsys, monkeypatch, request):
    bad = ws / "df_latin1.json"
    planted = plant(ws, {bad.name: '[{"model": "caf\u00e9"}]'.encode("latin-1")})
    rc, err = run_main("deepfake", ["plot-accuracy-and-loss", "-j", bad, "--out-dir", ws / "df_l1"], capsys)
    refused(rc, err, bad, "UTF-8")
    intact(planted)


def deepfake_demo_user_folder(ws, capsys, monkeypatch, request):
    out = ws / "df_demo"
    planted = plant(out / "data" / "fakes_dataset")
    rc, err = run_main("deepfake", ["demo", "--out", out, "--train", "4", "--val", "2", "--test", "2"], capsys)
    refused(rc, err, out / "data" / "fakes_dataset", "--out")
    planted.update(plant(out, {"demo_summary.json": b"{}"}))
    shutil.rmtree(out / "data")
    planted = {p: b for p, b in planted.items() if p.exists()}
    rc, err = run_main("deepfake", ["demo", "--out", out, "--train", "4", "--val", "2", "--test", "2"], capsys)
    refused(rc, err, out / "demo_summary.json", "--out")
    intact(planted)
    assert not (out / "data").exists()  # nothing generated


CASES = {
    "own-bengali-train-user-files": bengali_train_user_files,
    "own-bengali-train-user-file-in-the-way": bengali_train_user_file_in_the_way,
    "own-bengali-train-other-settings": bengali_train_other_settings,
    "own-bengali-train-user-backup-folder": bengali_train_user_backup_folder,
    "own-bengali-out-inside-data-dir": bengali_out_inside_data_dir,
    "own-bengali-out-is-a-file": bengali_out_is_a_file,
    "own-bengali-baselines-csv": bengali_baselines_csv,
    "own-bengali-baselines-user-figure": bengali_baselines_user_figure,
    "own-bengali-explain-user-json": bengali_explain_user_json,
    "own-bengali-explain-out-contains-model": bengali_explain_out_contains_model,
    "own-bengali-export-user-folder": bengali_export_user_folder,
    "own-bengali-ekush-not-utf8": bengali_ekush_not_utf8,
    "own-bengali-numtadb-not-utf8": bengali_numtadb_not_utf8,
    "own-bengali-numtadb-no-usable-image": bengali_numtadb_no_usable_image,
    "own-bengali-demo-user-file": bengali_demo_user_file,
    "own-deepfake-make-dataset-user-folder": deepfake_make_dataset_user_folder,
    "own-deepfake-make-dataset-rerun": deepfake_make_dataset_rerun,
    "own-deepfake-make-dataset-inside-real-images": deepfake_make_dataset_inside_real_images,
    "own-deepfake-train-user-files": deepfake_train_user_files,
    "own-deepfake-train-user-json": deepfake_train_user_json,
    "own-deepfake-train-user-backup-folder": deepfake_train_user_backup_folder,
    "own-deepfake-train-other-settings": deepfake_train_other_settings,
    "own-deepfake-train-out-inside-dataset": deepfake_train_out_inside_dataset,
    "own-deepfake-train-no-usable-image": deepfake_train_no_usable_image,
    "own-deepfake-analyses-user-files": deepfake_analyses_user_files,
    "own-deepfake-analysis-user-figure": deepfake_analysis_user_figure,
    "own-deepfake-analysis-out-overlaps-inputs": deepfake_analysis_out_overlaps_inputs,
    "own-deepfake-soft-scores-csv-hostile-names": deepfake_soft_scores_csv_hostile_names,
    "own-deepfake-partial-drop-counted": deepfake_partial_drop_counted,
    "own-deepfake-plot-spectrum-samples": deepfake_plot_spectrum_samples,
    "own-deepfake-history-json-not-utf8": deepfake_history_json_not_utf8,
    "own-deepfake-demo-user-folder": deepfake_demo_user_folder,
}


@pytest.mark.parametrize("case", list(CASES), ids=list(CASES))
def test_ownership(case, ws, capsys, monkeypatch, request):
    CASES[case](ws, capsys, monkeypatch, request)


def test_every_case_is_in_the_table():
    table = DOC.read_text(encoding="utf-8")
    assert [c for c in CASES if f"`{c}`" not in table] == []
