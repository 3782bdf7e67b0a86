"""`cams sanity`: the randomisation table, the figures, resuming, and one-line errors."""
import csv
import shutil
import subprocess
import sys
from pathlib import Path

import keras
import numpy as np
import pytest
from PIL import Image

from cams.cli import main
from cams_models import conv_gap_dense

DOC = Path(__file__).resolve().parents[1] / "docs" / "bad_inputs.md"
CASES = ["cli-sanity-unknown-method", "cli-sanity-lcam", "cli-sanity-no-weights", "cli-sanity-unknown-mode",
         "cli-sanity-out-inside-images", "cli-sanity-user-file", "cli-sanity-overwrite", "cli-sanity-changed-settings",
         "cli-sanity-restart", "cli-sanity-resume"]
METHODS = "gradcam,gradinput"
SIZE = 16


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    root = tmp_path_factory.mktemp("sanity_cli")
    keras.utils.set_random_seed(0)
    conv_gap_dense(size=SIZE, softmax=True).save(root / "m.keras")
    inp = keras.Input((SIZE, SIZE, 3))
    keras.Model(inp, keras.layers.Activation("softmax")(keras.layers.GlobalAveragePooling2D()(inp))).save(root / "none.keras")
    folder = root / "imgs"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for i in range(2):
        Image.fromarray(rng.integers(0, 255, (SIZE, SIZE, 3), dtype=np.uint8)).save(folder / f"{i}.png")
    return root


def run(saved, out, *extra, model="m.keras", methods=METHODS):
    return main(["sanity", "--model", str(saved / model), "--images", str(saved / "imgs"), "--methods", methods,
                 "--out", str(out), *extra])


def table(out):
    with open(out / "sanity.csv", encoding="utf-8", newline="") as f:
        return list(csv.reader(f))


@pytest.fixture(scope="module")
def first(saved):
    out = saved / "out"
    assert run(saved, out) == 0
    return out


def test_writes_the_table_from_the_top_and_the_figures(saved, first):
    rows = table(first)
    assert rows[0] == ["method", "step", "layer", "spearman_abs", "spearman", "ssim", "hog"]
    assert [r[:3] for r in rows[1:]] == [[m, str(k), layer] for m in METHODS.split(",")
                                          for k, layer in enumerate(["head", "feat", "conv1"], start=1)]
    for name in ("sanity_curves.png", "sanity_grid.png", "sanity_maps.npz", ".cams-run.sanity.json"):
        assert (first / name).stat().st_size > 0


def test_table_agrees_with_the_library(saved, first):
    from cams.core.images import load_for_model
    from cams.sanity import sanity_check

    model = keras.saving.load_model(saved / "m.keras")
    x, _, _ = load_for_model(model, [str(saved / "imgs")])
    want = sanity_check(model, x, METHODS).table()
    got = table(first)[1:]
    np.testing.assert_allclose([[float(v) for v in r[3:]] for r in got],
                               [[w[k] for k in ("spearman_abs", "spearman", "ssim", "hog")] for w in want], atol=2e-6)


def test_rerun_with_the_same_settings_reuses_every_row(saved, first, capsys):
    before, grid_time = table(first), (first / "sanity_grid.png").stat().st_mtime_ns
    assert run(saved, first) == 0
    out = capsys.readouterr().out
    assert "resuming: 6 of 6" in out and "0 rows computed now, 6 reused" in out
    assert table(first) == before
    assert (first / "sanity_grid.png").stat().st_mtime_ns == grid_time  # nothing new to draw


def test_interrupted_run_resumes_where_it_stopped(saved, first, monkeypatch, capsys):
    import cams.sanity.checks as checks

    real, calls = checks.explain_all, []

    def flaky(*a, **k):
        calls.append(1)
        if len(calls) == 3:  # reference, step 1, then Ctrl-C during step 2
            raise KeyboardInterrupt
        return real(*a, **k)

    out = saved / "interrupted"
    monkeypatch.setattr(checks, "explain_all", flaky)
    assert run(saved, out) == 130
    assert [r[:2] for r in table(out)[1:]] == [["gradcam", "1"], ["gradinput", "1"]]
    monkeypatch.setattr(checks, "explain_all", real)
    capsys.readouterr()
    assert run(saved, out) == 0
    assert "resuming: 2 of 6" in capsys.readouterr().out
    assert table(out) == table(first)


def test_changed_settings_refused_then_restart(saved, first, capsys):
    out = saved / "changed"
    shutil.copytree(first, out)
    assert run(saved, out, "--mode", "independent", methods="gradcam") == 2
    assert "other settings (methods: gradcam,gradinput -> gradcam; mode: cascading -> independent)" in capsys.readouterr().err
    assert run(saved, out, "--mode", "independent", "--restart", methods="gradcam") == 0
    assert "resuming" not in capsys.readouterr().out
    assert {r[0] for r in table(out)[1:]} == {"gradcam"}


def test_user_file_refused_unless_overwrite(saved, capsys):
    out = saved / "users"
    out.mkdir()
    (out / "sanity.csv").write_text("mine\n", encoding="utf-8")
    assert run(saved, out, methods="gradcam") == 2
    assert "sanity.csv exists and was not written by cams sanity" in capsys.readouterr().err
    assert (out / "sanity.csv").read_text(encoding="utf-8") == "mine\n"
    assert run(saved, out, "--overwrite", methods="gradcam") == 0
    assert table(out)[0][0] == "method"


@pytest.mark.parametrize("case, extra, model, methods, message", [
    ("unknown-method", (), "m.keras", "gradcam,nope", "unknown method 'nope'"),
    ("lcam", (), "m.keras", "lcam", "trained on the original model"),
    ("no-weights", (), "none.keras", "saliency", "has no layer with weights"),
])
def test_bad_inputs_one_line(saved, capsys, case, extra, model, methods, message):
    assert run(saved, saved / f"bad-{case}", *extra, model=model, methods=methods) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0] and err[0].startswith("cams sanity: error:")


def test_out_inside_images_refused(saved, capsys):
    assert run(saved, saved / "imgs" / "out") == 2
    assert "outputs would mix with the inputs" in capsys.readouterr().err


def test_unknown_mode_is_a_usage_error(saved, capsys):
    assert run(saved, saved / "bad-mode", "--mode", "sideways") == 2
    assert "argument --mode: invalid choice: 'sideways'" in capsys.readouterr().err
    assert not (saved / "bad-mode").exists()


def test_program_exits_2_with_one_line(saved, tmp_path):
    """As a program: unknown method, exit 2, one line (no traceback), before TensorFlow loads the model."""
    proc = subprocess.run([sys.executable, "-m", "cams", "sanity", "--model", str(saved / "m.keras"), "--images",
                           str(saved / "imgs"), "--out", str(tmp_path / "o"), "--methods", "nope"],
                          capture_output=True, text=True)
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines()[-1].startswith("cams sanity: error: unknown method 'nope'")
    assert not (tmp_path / "o").exists()


def test_every_case_is_in_the_table():
    text = DOC.read_text(encoding="utf-8")
    assert [c for c in CASES if f"`{c}`" not in text] == []
