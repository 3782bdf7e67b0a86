"""Nothing the user has is lost: `cams lcam-train`, `cams lcam-eval`, `cams feature-cam` and
`cams.training.resumable` replace, delete or resume only what they wrote themselves (their run
manifest / run_state.json says so), never overlap their inputs, and count the images they cannot read.

Every case plants user files in and around the output and input folders, runs the command in process
(`cams.cli.main`) and checks each user file byte for byte afterwards. Each case id is a row of
docs/bad_inputs.md.
"""
import csv
import json
import re
from pathlib import Path

import keras
import numpy as np
import pytest
from PIL import Image

import cams
from cams.cli import main
from cams.core.outputs import MANIFEST_PREFIX
from cams.methods.lcam import NpzCheckpoint
from cams.training import resumable
from cams.training.resume import KERAS_STATE, MARKER
from cams_models import conv_gap_dense

ROOT = Path(__file__).resolve().parents[1]
EPOCHS = 2


def one_case(case_id):
    """A test of one case: its id is the pytest param id (and a row of docs/bad_inputs.md)."""
    return pytest.mark.parametrize("case", [pytest.param(case_id, id=case_id)])


@pytest.fixture(scope="module")
def ws(tmp_path_factory):
    """A tiny saved classifier and a folder of 2 x 3 PNGs in class folders."""
    root = tmp_path_factory.mktemp("own")
    keras.utils.set_random_seed(0)
    conv_gap_dense(size=16, classes=2, softmax=True).save(root / "m.keras")
    rng = np.random.default_rng(0)
    for cls in ("real", "fake"):
        (root / "imgs" / cls).mkdir(parents=True)
        for i in range(3):
            Image.fromarray(rng.integers(0, 255, (20, 20, 3), dtype=np.uint8)).save(root / "imgs" / cls / f"{i}.png")
    return root


def _run(argv, capsys):
    code = main([str(a) for a in argv])
    return code, capsys.readouterr()


def _train(ws, out, *extra, epochs=EPOCHS):
    return ["lcam-train", "--model", ws / "m.keras", "--images", ws / "imgs", "--epochs", epochs, "--batch-size", 4,
            "--learning-rate", 0.5, "--out", out, "-q", *extra]


def _plant(files):
    """Write user files {path: bytes} (folders made as needed); returns them for `_unchanged`."""
    for path, data in files.items():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    return dict(files)


def _unchanged(planted):
    for path, data in planted.items():
        assert path.is_file() and path.read_bytes() == data, f"user file {path} changed"


def _around(folder):
    """User files beside any output: a dotfile, a note, an .npz and a folder of theirs."""
    return {folder / ".keep": b"dot", folder / "notes.txt": "ünïcode\n".encode(), folder / "other.npz": b"\x00npz",
            folder / "mine" / "a.csv": b"a,b\n1,2\n"}


def _error(code, cap, command, *parts):
    """The command stopped with exit 2 and one line naming `parts`."""
    assert code == 2, cap.err
    assert "Traceback" not in cap.err and "could not be loaded" not in cap.err
    last = cap.err.strip().splitlines()[-1]
    assert last.startswith(f"cams {command}: error:"), cap.err
    for part in parts:
        assert str(part) in last, last
    return last


def _manifest_files(folder, name):
    """The files of the run manifest in `folder` that lists `name`."""
    for path in folder.glob(f"{MANIFEST_PREFIX}*"):
        files = json.loads(path.read_text(encoding="utf-8"))["files"]
        if name in files:
            return files
    raise AssertionError(f"no run manifest in {folder} lists {name}")


def _complete(out, epochs=EPOCHS, backup=None):
    """lcam-train's outputs are all there, for `epochs` epochs, recorded in the manifest; the backup is gone."""
    meta = cams.LCAM.read_meta(out)
    assert len(meta["history"]["loss"]) == epochs
    with open(out.with_suffix(".csv"), newline="", encoding="utf-8") as f:
        assert len(list(csv.reader(f))) == epochs + 1
    assert len(json.loads(out.with_suffix(".history.json").read_text(encoding="utf-8"))["loss"]) == epochs
    assert {out.name, out.with_suffix(".csv").name, out.with_suffix(".history.json").name} <= set(
        _manifest_files(out.parent, out.name))
    backup = backup or out.with_suffix(".backup")
    assert not backup.exists() or not any(p.name in (MARKER, *KERAS_STATE) for p in backup.iterdir())


@pytest.fixture
def interrupt_after_first_epoch(monkeypatch):
    """Ctrl-C after the first epoch's checkpoint (the backup then holds one finished epoch)."""
    original = NpzCheckpoint.on_epoch_end

    def stop(self, epoch, logs=None):
        original(self, epoch, logs)
        raise KeyboardInterrupt

    monkeypatch.setattr(NpzCheckpoint, "on_epoch_end", stop)
    return monkeypatch


# ---------------------------------------------------------------- lcam-train: user files in the way
@pytest.mark.parametrize("name, option", [
    pytest.param("l.npz", "--out", id="own-lcam-train-user-npz"),
    pytest.param("l.csv", "--out", id="own-lcam-train-user-csv"),
    pytest.param("l.history.json", "--out", id="own-lcam-train-user-history-json"),
])
def test_lcam_train_refuses_a_user_file_where_it_writes(ws, tmp_path, capsys, name, option):
    planted = _plant({tmp_path / name: b"the user's own", **_around(tmp_path)})
    code, cap = _run(_train(ws, tmp_path / "l.npz"), capsys)
    _error(code, cap, "lcam-train", tmp_path / name, "not written by cams lcam-train", option)
    _unchanged(planted)
    assert not (tmp_path / "l.backup").exists()


@pytest.mark.parametrize("backup, option", [
    pytest.param("mine", "--backup-dir", id="own-lcam-train-backup-dir-user-file"),
    pytest.param("l.backup", "--out", id="own-lcam-train-out-backup-user-folder"),
])
def test_lcam_train_refuses_a_backup_folder_holding_user_files(ws, tmp_path, capsys, backup, option):
    planted = _plant({tmp_path / backup / "notes.txt": b"mine", tmp_path / backup / ".hidden": b"dot"})
    extra = ["--backup-dir", tmp_path / backup] if option == "--backup-dir" else []
    code, cap = _run(_train(ws, tmp_path / "l.npz", *extra), capsys)
    _error(code, cap, "lcam-train", tmp_path / backup, "notes.txt", "--backup-dir")
    _unchanged(planted)
    assert not (tmp_path / "l.npz").exists()


@one_case("own-lcam-train-export-user-folder")
def test_lcam_train_export_folder_of_the_user_is_refused(ws, tmp_path, capsys, case):
    planted = _plant({tmp_path / "sm" / "saved_model.pb": b"the user's SavedModel"})
    code, cap = _run(_train(ws, tmp_path / "l.npz", "--export", tmp_path / "sm"), capsys)
    _error(code, cap, "lcam-train", tmp_path / "sm", "not written by cams lcam-train", "--export")
    _unchanged(planted)


# ---------------------------------------------------------------- outputs apart from inputs
@pytest.mark.parametrize("argv, parts", [
    pytest.param(lambda ws, t: _train(ws, ws / "imgs" / "l.npz"), ("--out", "is inside --images"),
                 id="own-lcam-train-out-inside-images"),
    pytest.param(lambda ws, t: _train(ws, t / "l.npz", "--backup-dir", ws / "imgs" / "real"),
                 ("--backup-dir", "is inside --images"), id="own-lcam-train-backup-dir-inside-images"),
    pytest.param(lambda ws, t: _train(ws, t / "l.npz", "--backup-dir", t), ("--backup-dir", "contains --out"),
                 id="own-lcam-train-backup-dir-contains-out"),
    pytest.param(lambda ws, t: _train(ws, t / "dir.npz"), ("--out", "is a folder"), id="own-lcam-train-out-is-a-folder"),
    pytest.param(lambda ws, t: ["lcam-eval", "--model", ws / "m.keras", "--images", ws / "imgs", "--lcam", t / "x.npz",
                                "--out", ws / "imgs"], ("--out", "is --images"), id="own-lcam-eval-out-is-images"),
    pytest.param(lambda ws, t: ["feature-cam", "--model", ws / "m.keras", "--images", ws / "imgs", "--out",
                                ws / "imgs" / "fc"], ("--out", "is inside --images"), id="own-feature-cam-out-inside-images"),
    pytest.param(lambda ws, t: ["feature-cam", "--model", ws / "m.keras", "--images", ws / "imgs" / "real", "--out", ws],
                 ("--out", "contains --images"), id="own-feature-cam-out-contains-inputs"),
    pytest.param(lambda ws, t: ["lcam-eval", "--model", ws / "m.keras", "--images", ws / "imgs", "--lcam", t / "x.npz",
                                "--out", t / "notes.md"], ("--out", "is a file, not a folder"),
                 id="own-lcam-eval-out-is-a-file"),
    pytest.param(lambda ws, t: ["feature-cam", "--model", ws / "m.keras", "--images", ws / "imgs", "--out",
                                t / "notes.md"], ("--out", "is a file, not a folder"), id="own-feature-cam-out-is-a-file"),
])
def test_outputs_never_overlap_inputs(ws, tmp_path, capsys, argv, parts):
    """Refused before the model is loaded; inputs, and a user file named as --out, stay as they were."""
    (tmp_path / "dir.npz").mkdir()
    planted = _plant({tmp_path / "notes.md": b"# mine\n"})
    planted.update(_plant({p: p.read_bytes() for p in ws.rglob("*") if p.is_file()}))
    code, cap = _run(argv(ws, tmp_path), capsys)
    _error(code, cap, argv(ws, tmp_path)[0], *parts)
    _unchanged(planted)
    assert sorted(p for p in [*ws.rglob("*"), *tmp_path.rglob("*")] if p.is_file()) == sorted(planted)


# ---------------------------------------------------------------- lcam-train: runs, reruns, resumes
@one_case("own-lcam-train-rerun-replaces-own-outputs")
def test_lcam_train_fresh_then_rerun_replaces_only_its_own_outputs(ws, tmp_path, capsys, case):
    planted = _plant(_around(tmp_path))
    for run in range(2):
        code, cap = _run(_train(ws, tmp_path / "l.npz"), capsys)
        assert code == 0, cap.err
        _complete(tmp_path / "l.npz")
        _unchanged(planted)


@one_case("own-lcam-train-resume-same-settings")
def test_lcam_train_resumes_the_same_job(ws, tmp_path, capsys, interrupt_after_first_epoch, case):
    planted = _plant(_around(tmp_path))
    code, cap = _run(_train(ws, tmp_path / "l.npz"), capsys)
    assert code == 130, cap.err
    interrupt_after_first_epoch.undo()
    code, cap = _run(_train(ws, tmp_path / "l.npz"), capsys)
    assert code == 0, cap.err
    assert re.search(r"resuming an interrupted run from .*l\.backup: 1 of 2 epochs done", cap.out)
    _complete(tmp_path / "l.npz")
    _unchanged(planted)


@one_case("own-lcam-train-resume-other-settings")
def test_lcam_train_other_settings_stop_until_restart(ws, tmp_path, capsys, interrupt_after_first_epoch, case):
    """A user file put into the backup folder survives --restart."""
    backup = tmp_path / "b"
    code, cap = _run(_train(ws, tmp_path / "l.npz", "--backup-dir", backup), capsys)
    assert code == 130, cap.err
    interrupt_after_first_epoch.undo()
    planted = _plant({**_around(tmp_path), backup / "later.txt": b"put there during the run"})
    saved = {p: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()}
    argv = _train(ws, tmp_path / "l.npz", "--backup-dir", backup, "--mode", "fm", "--learning-rate", 0.1)
    code, cap = _run(argv, capsys)
    _error(code, cap, "lcam-train", backup, "other settings", "learning_rate: 0.5 -> 0.1", "mode: img -> fm",
           "--restart")
    _unchanged(saved)  # nothing written, nothing removed
    code, cap = _run(argv + ["--restart"], capsys)
    assert code == 0, cap.err
    _complete(tmp_path / "l.npz", backup=backup)
    assert cams.LCAM.read_meta(tmp_path / "l.npz")["mode"] == "fm"
    _unchanged(planted)
    assert sorted(p.name for p in backup.iterdir()) == ["later.txt"]  # only the job's own files went


@one_case("own-lcam-train-restart-without-backup")
def test_lcam_train_restart_then_finished_run_removes_its_backup_folder(ws, tmp_path, capsys, case):
    """--restart with nothing saved is a fresh run."""
    code, cap = _run(_train(ws, tmp_path / "l.npz", "--restart", epochs=1), capsys)
    assert code == 0, cap.err
    _complete(tmp_path / "l.npz", epochs=1)
    assert not (tmp_path / "l.backup").exists()


# ---------------------------------------------------------------- lcam-train: images it cannot use
@pytest.mark.parametrize("files, parts", [
    pytest.param({}, ("no image files in", "found 0 file(s)"), id="own-lcam-train-empty-folder"),
    pytest.param({"a.png": b"not a png", "b.tif": b"II*\x00", "c.jpg": b""},
                 ("none of the 3 image file(s) found can be read", "JPEG, PNG"), id="own-lcam-train-no-usable-images"),
    pytest.param({"notes.txt": b"x"}, ("no image files in", "found 1 file(s)"), id="own-lcam-train-no-image-suffix"),
])
def test_lcam_train_with_no_usable_image_stops_with_one_line(ws, tmp_path, capsys, files, parts):
    folder = tmp_path / "imgs"
    folder.mkdir()
    planted = _plant({folder / name: data for name, data in files.items()})
    argv = _train(ws, tmp_path / "l.npz")
    argv[argv.index("--images") + 1] = folder
    code, cap = _run(argv, capsys)
    _error(code, cap, "lcam-train", *parts)
    _unchanged(planted)
    assert not (tmp_path / "l.npz").exists()


@one_case("own-lcam-train-some-unreadable")
def test_lcam_train_counts_the_files_it_skips(ws, tmp_path, capsys, case):
    folder = tmp_path / "imgs"
    good = sorted((ws / "imgs").rglob("*.png"))
    _plant({folder / p.parent.name / p.name: p.read_bytes() for p in good})
    planted = _plant({folder / "real" / "broken.png": b"not an image", folder / "fake" / "scan.tif": b"II*\x00"})
    argv = _train(ws, tmp_path / "l.npz", epochs=1)
    argv[argv.index("--images") + 1] = folder
    code, cap = _run(argv, capsys)
    assert code == 0, cap.err
    assert f"skipped 2 of {len(good) + 2} image files that training cannot read" in cap.err
    assert f"on {len(good)} images" in cap.out
    _complete(tmp_path / "l.npz", epochs=1)
    _unchanged(planted)


# ---------------------------------------------------------------- lcam-eval and feature-cam tables
@pytest.fixture(scope="module")
def lcam_file(ws, tmp_path_factory):
    out = tmp_path_factory.mktemp("lcam") / "l.npz"
    assert main([str(a) for a in _train(ws, out, epochs=1)]) == 0
    return out


def _eval(ws, lcam_file, out, *extra):
    return ["lcam-eval", "--model", ws / "m.keras", "--images", ws / "imgs", "--lcam", lcam_file, "--methods",
            "gradcam", "--rise-masks", 8, "--grid-rows", 2, "--out", out, "-q", *extra]


def _feature(ws, out, *extra):
    return ["feature-cam", "--model", ws / "m.keras", "--images", ws / "imgs", "--edges", "canny", "--base",
            "gradcam", "--rows", 2, "--out", out, "-q", *extra]


@pytest.mark.parametrize("command, user_file", [
    pytest.param("lcam-eval", "table1.md", id="own-lcam-eval-user-table1"),
    pytest.param("feature-cam", "scores.json", id="own-feature-cam-user-scores-json"),
])
def test_tables_refuse_a_user_file_then_overwrite_replaces_only_it(ws, lcam_file, tmp_path, capsys, command, user_file):
    out = tmp_path / "out"
    argv = _eval(ws, lcam_file, out) if command == "lcam-eval" else _feature(ws, out)
    planted = _plant({out / user_file: b"my notes", **_around(out)})
    code, cap = _run(argv, capsys)
    _error(code, cap, command, out / user_file, "--out", "--overwrite")
    assert sorted(p for p in out.rglob("*") if p.is_file()) == sorted(planted)  # nothing written
    code, cap = _run(argv + ["--overwrite"], capsys)
    assert code == 0, cap.err
    del planted[out / user_file]
    _unchanged(planted)
    written = _manifest_files(out, user_file)
    assert user_file in written and all((out / name).is_file() and (out / name).stat().st_size for name in written)
    code, cap = _run(argv, capsys)  # a rerun replaces its own results without --overwrite
    assert code == 0, cap.err
    _unchanged(planted)


@one_case("own-lcam-eval-rerun")
def test_lcam_eval_rerun_keeps_user_files_around(ws, lcam_file, tmp_path, capsys, case):
    out = tmp_path / "out"
    planted = _plant(_around(out))
    for _ in range(2):
        code, cap = _run(_eval(ws, lcam_file, out), capsys)
        assert code == 0, cap.err
        _unchanged(planted)
    rows = json.loads((out / "table1.json").read_text(encoding="utf-8"))["rows"]
    trained = json.loads(lcam_file.with_suffix(".history.json").read_text(encoding="utf-8"))["method"]
    assert [r["method"] for r in rows] == ["Grad-CAM", trained]


# ---------------------------------------------------------------- cams.training.resumable
def _toy_fit(callbacks, epochs, stop_after=None):
    class Stop(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            if stop_after is not None and epoch + 1 == stop_after:
                raise KeyboardInterrupt

    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
    model.compile("sgd", "mse")
    x = np.random.default_rng(0).normal(size=(8, 3)).astype("float32")
    model.fit(x, x[:, :2], epochs=epochs, callbacks=[*callbacks, Stop()], verbose=0)


@one_case("own-resumable-user-file-in-backup")
def test_resumable_refuses_a_folder_with_user_files(tmp_path, case):
    planted = _plant({tmp_path / "b" / "notes.txt": b"mine"})
    with pytest.raises(ValueError, match=r"b holds files this training did not write \(notes.txt\); choose another"):
        resumable(tmp_path / "b", 2, fingerprint={"lr": 1}, log=None)
    _unchanged(planted)


@one_case("own-resumable-other-settings")
def test_resumable_other_settings_raise_and_restart_removes_only_the_jobs_files(tmp_path, case):
    backup = tmp_path / "b"
    callbacks, _ = resumable(backup, 3, fingerprint={"lr": 1}, log=None)
    with pytest.raises(KeyboardInterrupt):
        _toy_fit(callbacks, 3, stop_after=1)
    planted = _plant({backup / "later.txt": b"mine"})
    with pytest.raises(ValueError, match=r"holds an interrupted run with other settings \(lr: 1 -> 2\).*--no-resume"):
        resumable(backup, 3, fingerprint={"lr": 2}, log=None, restart_option="--no-resume")
    logs = []
    callbacks, state = resumable(backup, 3, fingerprint={"lr": 2}, log=logs.append, restart=True)
    _toy_fit(callbacks, 3)
    assert len(state.history["loss"]) == 3 and any("discarded" in m for m in logs)
    _unchanged(planted)
    assert sorted(p.name for p in backup.iterdir()) == ["later.txt"]


# ---------------------------------------------------------------- the table
def _case_ids():
    ids = []
    for name, fn in sorted(globals().items()):
        if not name.startswith("test_") or name == "test_every_case_is_in_the_table":
            continue
        marks = [m for m in getattr(fn, "pytestmark", []) if m.name == "parametrize"]
        ids += [p.id for m in marks for p in m.args[1]]
    return ids


def test_every_case_is_in_the_table():
    ids = _case_ids()
    assert len(ids) == len(set(ids)) and len(ids) >= 20
    table = (ROOT / "docs" / "bad_inputs.md").read_text(encoding="utf-8")
    missing = [i for i in ids if f"`{i}`" not in table]
    assert missing == [], f"add rows to docs/bad_inputs.md for {missing}"
