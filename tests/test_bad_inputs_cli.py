"""Bad inputs and faults on the three command lines (rows "cli-*" of docs/bad_inputs.md).

One convention (cams.cli.errors.run_command): bad input -> "prog command: error: <one line>", exit 2;
a failure while running -> one line, exit 1, outputs complete or absent; Ctrl-C -> exit 130; --debug -> traceback.
"""
import errno
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from cams_models import conv_gap_dense

CAMS, BENGALI, DEEPFAKE = "cams", "bengali-xai", "deepfake-xai"  # program names, run as `python -m MAINS[name]`
MAINS = {CAMS: "cams", BENGALI: "bengali_xai.cli", DEEPFAKE: "deepfake_xai.cli"}
DOC = Path(__file__).resolve().parents[1] / "docs" / "bad_inputs.md"


def run_main(prog, argv):
    """(exit status, stderr lines) of the program's main() called in this process."""
    import importlib

    main = importlib.import_module("cams.cli" if prog == "cams" else MAINS[prog]).main
    try:
        return main(argv)
    except SystemExit as exc:  # argparse's own errors
        return exc.code


@pytest.fixture(scope="module")
def ws(tmp_path_factory):
    root = tmp_path_factory.mktemp("bad_cli")
    conv_gap_dense(size=24, softmax=True).save(root / "m.keras")
    (root / "imgs").mkdir()
    rng = np.random.default_rng(0)
    for i in range(3):
        Image.fromarray(rng.integers(0, 255, (24, 24, 3), dtype=np.uint8)).save(root / "imgs" / f"{i}.png")
    (root / "a_file").write_text("x")
    return root


EXPLAIN = ["explain", "--model", "{m}", "--images", "{imgs}", "--out", "{tmp}/o"]
FEATURE = ["feature-cam", "--model", "{m}", "--images", "{imgs}", "--out", "{tmp}/o"]
ANALYSIS = ["-m", "SimpleNet", "-d", "{tmp}/nodata", "--out-dir", "{tmp}/o"]
CASES = {
    # id: (prog, argv, exit status, message regex on the last stderr line)
    "cli-cams-batch-size-0": (CAMS, EXPLAIN + ["--batch-size", "0"], 2, r"--batch-size: expected a number >= 1, got 0"),
    "cli-cams-batch-size-negative": (CAMS, EXPLAIN + ["--batch-size", "-3"], 2, r"expected a number >= 1, got -3"),
    "cli-cams-batch-size-text": (CAMS, EXPLAIN + ["--batch-size", "many"], 2, r"expected a whole number, got 'many'"),
    "cli-cams-limit-0": (CAMS, EXPLAIN + ["--limit", "0"], 2, r"--limit: expected a number >= 1, got 0"),
    "cli-cams-grid-rows-0": (CAMS, EXPLAIN + ["--grid-rows", "0"], 2, r"--grid-rows: expected a number >= 1"),
    "cli-cams-size-0": (CAMS, EXPLAIN + ["--size", "0", "24"], 2, r"--size: expected a number >= 1, got 0"),
    "cli-cams-scale-nan": (CAMS, EXPLAIN + ["--scale", "nan"], 2, r"--scale: expected a finite number, got 'nan'"),
    "cli-cams-folder-batch-size-0": (CAMS, ["explain-folder", "--model", "{m}", "--images", "{imgs}", "--out", "{tmp}/o",
                                              "--batch-size", "0"], 2, r"--batch-size: expected a number >= 1"),
    "cli-feature-percentile-0": (CAMS, FEATURE + ["--percentile", "0"], 2, r"--percentile: expected a percentile between 0 and 100"),
    "cli-feature-percentile-100": (CAMS, FEATURE + ["--percentile", "100"], 2, r"expected a percentile between 0 and 100"),
    "cli-feature-percentile-nan": (CAMS, FEATURE + ["--percentile", "nan"], 2, r"expected a finite number, got 'nan'"),
    "cli-feature-k-nan": (CAMS, FEATURE + ["--k", "nan"], 2, r"--k: expected a finite number"),
    "cli-feature-k-negative": (CAMS, FEATURE + ["--k", "-1"], 2, r"--k: expected a number between 0 and 1, got -1"),
    "cli-lcam-epochs-0": (CAMS, ["lcam-train", "--model", "{m}", "--images", "{imgs}", "--out", "{tmp}/l.npz", "--epochs", "0"],
                          2, r"--epochs: expected a number >= 1, got 0"),
    "cli-lcam-rise-masks-0": (CAMS, ["lcam-eval", "--model", "{m}", "--images", "{imgs}", "--lcam", "x.npz", "--out",
                                       "{tmp}/o", "--rise-masks", "0"], 2, r"--rise-masks: expected a number >= 1"),
    "cli-bengali-epochs-0": (BENGALI, ["train", "--epochs", "0", "--out", "{tmp}/o"], 2, r"expected a number >= 1, got 0"),
    "cli-bengali-n-0": (BENGALI, ["explain", "--model", "{m}", "--n", "0", "--out", "{tmp}/o"], 2, r"--n: expected a number >= 1"),
    "cli-bengali-energy-negative": (BENGALI, ["explain", "--model", "{m}", "--energy-samples", "-1", "--out", "{tmp}/o"],
                                    2, r"--energy-samples: expected a number >= 0, got -1"),
    "cli-deepfake-batch-size-0": (DEEPFAKE, ["numerical-analysis", *ANALYSIS, "-b", "0"], 2, r"--batch-size: expected a number >= 1"),
    "cli-deepfake-lr-nan": (DEEPFAKE, ["train", "-d", "x", "-lr", "nan"], 2, r"--lr: expected a finite number"),
    "cli-deepfake-n-pairs-0": (DEEPFAKE, ["saliency-map", *ANALYSIS, "--n-pairs", "0"], 2, r"--n-pairs: expected a number >= 1"),
    "cli-deepfake-tolerance-negative": (DEEPFAKE, ["localization", *ANALYSIS, "--tolerance", "-2"], 2,
                                        r"--tolerance: expected a number >= 0"),
    "cli-deepfake-missing-split": (DEEPFAKE, ["summary", "-d", "{tmp}/halfdata"], 2, r"halfdata.*val"),
    # output paths: the same check and message on all three command lines
    "cli-cams-out-is-a-file": (CAMS, ["explain", "--model", "{m}", "--images", "{imgs}", "--out", "{a_file}"], 2,
                               r"cams explain: error: --out .*a_file: .*a_file is a file, not a folder; choose another path"),
    "cli-cams-out-under-a-file": (CAMS, ["explain", "--model", "{m}", "--images", "{imgs}", "--out", "{a_file}/sub"], 2,
                                  r"--out .*a_file/sub: .*a_file is a file, not a folder"),
    "cli-bengali-out-is-a-file": (BENGALI, ["train", "--out", "{a_file}"], 2,
                                  r"bengali-xai train: error: --out .*a_file: .*is a file, not a folder"),
    "cli-deepfake-out-is-a-file": (DEEPFAKE, ["numerical-analysis", "-m", "SimpleNet", "-d", "x", "--out-dir", "{a_file}"],
                                   2, r"deepfake-xai numerical-analysis: error: --out-dir .*a_file: .*is a file, not a folder"),
    "cli-cams-out-unwritable": (CAMS, ["explain", "--model", "{m}", "--images", "{imgs}", "--out", "/proc/cams-out"], 2,
                                r"--out /proc/cams-out: cannot write in /proc \(.*\); choose a writable folder"),
    "cli-bengali-out-unwritable": (BENGALI, ["train", "--out", "/proc/cams-out"], 2, r"cannot write in /proc"),
    "cli-deepfake-out-unwritable": (DEEPFAKE, ["train", "-d", "x", "--checkpoint-dir", "/proc/ck"], 2,
                                    r"--checkpoint-dir /proc/ck: cannot write in /proc"),
    # data
    "cli-bengali-csv-missing-column": (BENGALI, ["train", "--data", "ekush", "--data-dir", "{tmp}/ekush_short",
                                                       "--out", "{tmp}/o"], 2, r"row 1 has 784 columns, expected 785"),
    "cli-bengali-csv-label-out-of-range": (BENGALI, ["train", "--data", "ekush", "--data-dir", "{tmp}/ekush_label",
                                                           "--out", "{tmp}/o"], 2, r"label.*12"),
    "cli-bengali-numtadb-no-dir": (BENGALI, ["train", "--data", "numtadb", "--out", "{tmp}/o"], 2, r"--data numtadb needs --data-dir"),
}


def _fill(argv, ws, tmp):
    return [a.format(m=ws / "m.keras", imgs=ws / "imgs", tmp=tmp, a_file=ws / "a_file") for a in argv]


def _data(tmp):
    from bengali_xai.data_ekush import N_COLUMNS
    from test_bengali_data import write_ekush

    (tmp / "ekush_short").mkdir()
    (tmp / "ekush_short" / "maleDigits.csv").write_text(",".join(["1"] * (N_COLUMNS - 1)) + "\n")
    (tmp / "ekush_label").mkdir()
    write_ekush(tmp / "ekush_label" / "maleDigits.csv", n=20, seed=1)
    rows = (tmp / "ekush_label" / "maleDigits.csv").read_text().splitlines()
    rows[-1] = ",".join(rows[-1].split(",")[:-1] + ["12"])
    (tmp / "ekush_label" / "maleDigits.csv").write_text("\n".join(rows) + "\n")
    for split in ("train", "test"):
        for cls in ("real", "fake"):
            (tmp / "halfdata" / split / cls).mkdir(parents=True)


@pytest.mark.parametrize("case", list(CASES))
def test_bad_cli_input_is_one_line(ws, tmp_path, capsys, case):
    prog, argv, status, message = CASES[case]
    _data(tmp_path)
    capsys.readouterr()
    assert run_main(prog, _fill(argv, ws, tmp_path)) == status
    err = capsys.readouterr().err
    assert "Traceback" not in err
    last = err.strip().splitlines()[-1]
    assert re.search(message, last), last
    assert not (tmp_path / "o").exists()  # nothing written


def test_full_disk_is_one_line_exit_1_and_no_half_written_file(ws, tmp_path, capsys, monkeypatch):
    """cli-full-disk: the .npz writer fails half way (ENOSPC): exit 1, one line, maps.npz absent, no temp file."""
    def full_disk(file, **arrays):
        Path(file).write_bytes(b"PK\x03\x04 half")
        raise OSError(errno.ENOSPC, "No space left on device", str(file))

    monkeypatch.setattr(np, "savez_compressed", full_disk)
    out = tmp_path / "o"
    assert run_main(CAMS, _fill(EXPLAIN, ws, tmp_path)) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert re.fullmatch(r"cams explain: error: No space left on device \(.*\); outputs already written are complete "
                        r"\(--debug shows the traceback\)", err[-1]), err[-1]
    assert (out / "grid.png").is_file() and not (out / "maps.npz").exists()
    assert [p.name for p in out.iterdir() if p.name.startswith(".cams-tmp-")] == []  # the run manifest stays


@pytest.mark.parametrize("prog, argv, target", [
    (CAMS, EXPLAIN, "cams.cli.explain.cmd_explain"),
    (BENGALI, ["train", "--out", "{tmp}/o"], "bengali_xai.cli.cmd_train"),
    (DEEPFAKE, ["summary", "-d", "x"], "deepfake_xai.cli._cmd_summary"),
], ids=[CAMS, BENGALI, DEEPFAKE])
def test_ctrl_c_exits_130_and_debug_shows_the_traceback(ws, tmp_path, capsys, monkeypatch, prog, argv, target):
    """cli-ctrl-c / cli-debug / cli-runtime-error: the same on the three command lines."""
    module, name = target.rsplit(".", 1)

    def interrupted(args):
        raise KeyboardInterrupt

    def broken(args):
        raise RuntimeError("something broke\nsecond line")

    import importlib

    mod = importlib.import_module(module)
    argv = _fill(argv, ws, tmp_path)
    if prog != "cams":
        monkeypatch.setitem(mod.COMMANDS, argv[0], interrupted)
    else:
        monkeypatch.setattr(mod, name, interrupted)
    assert run_main(prog, argv) == 130
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"{prog} {argv[0]}: interrupted; run the same command again")
    if prog != "cams":
        monkeypatch.setitem(mod.COMMANDS, argv[0], broken)
    else:
        monkeypatch.setattr(mod, name, broken)
    assert run_main(prog, argv) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"{prog} {argv[0]}: error: RuntimeError: something broke second line (--debug shows the traceback)"]
    with pytest.raises(RuntimeError, match="something broke"):
        run_main(prog, argv + ["--debug"])


def _cams(*args, timeout=300):
    return subprocess.run([sys.executable, "-m", "cams", *map(str, args)], capture_output=True, text=True, timeout=timeout)


def test_the_three_programs_answer_a_bad_out_identically(ws):
    """cli-same-fault: run as programs (sys.executable -m), the same fault gives the same line and exit 2."""
    got = []
    for prog, argv in [(CAMS, ["explain", "--model", ws / "m.keras", "--images", ws / "imgs", "--out", ws / "a_file"]),
                       (BENGALI, ["train", "--out", ws / "a_file"]),
                       (DEEPFAKE, ["demo", "--out", ws / "a_file"])]:
        r = subprocess.run([sys.executable, "-m", MAINS[prog], *map(str, argv)], capture_output=True, text=True, timeout=300)
        lines = r.stderr.strip().splitlines()
        assert r.returncode == 2 and len(lines) == 1, r.stderr
        got.append(lines[0].split(": error: ", 1)[1])
    assert len(set(got)) == 1 and got[0] == f"--out {ws / 'a_file'}: {ws / 'a_file'} is a file, not a folder; choose another path"


def test_explain_folder_killed_with_sigkill_resumes_without_loss(ws, tmp_path):
    """cli-sigkill-explain-folder: SIGKILL mid-run, rerun: every image explained once, no half-written file."""
    folder = tmp_path / "many"
    folder.mkdir()
    rng = np.random.default_rng(1)
    for i in range(60):
        Image.fromarray(rng.integers(0, 255, (24, 24, 3), dtype=np.uint8)).save(folder / f"{i:03d}.png")
    out = tmp_path / "out"
    notes = out / "maps" / ".notes.npz"  # a file of the user's in the output folder: kept as it is
    notes.parent.mkdir(parents=True)
    notes.write_bytes(b"the user's own notes")
    cmd = [sys.executable, "-m", "cams", "explain-folder", "--model", str(ws / "m.keras"), "--images", str(folder),
           "--out", str(out), "--batch-size", "1", "--methods", "gradcam"]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 240
    while time.time() < deadline and len([p for p in out.rglob("*.npz") if not p.name.startswith(".")]) < 3:
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    done_before = {p.name for p in (out / "maps").rglob("*.npz") if not p.name.startswith(".")}
    assert 3 <= len(done_before) < 60, "the run was not killed in the middle"
    for p in (out / "maps").rglob("[!.]*.npz"):  # every file present is complete
        with np.load(p) as z:
            assert z["gradcam"].shape == (24, 24)
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    assert f"60 images: {len(done_before)} already done, {60 - len(done_before)} explained now" in r.stdout
    assert len(list((out / "maps").rglob("[!.]*.npz"))) == 60
    from cams.core.files import TEMP_PREFIX

    assert [p for p in out.rglob(f"{TEMP_PREFIX}*")] == []  # no temporary file left by the killed run
    assert notes.read_bytes() == b"the user's own notes"


def test_every_case_is_in_the_table():
    table = DOC.read_text()
    ids = list(CASES) + ["cli-full-disk", "cli-ctrl-c", "cli-debug", "cli-runtime-error", "cli-same-fault",
                         "cli-sigkill-explain-folder"]
    assert [c for c in ids if f"`{c}`" not in table] == []
