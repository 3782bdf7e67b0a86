"""`cams explain-folder --runner DirectRunner`: the Apache Beam pipeline writes what the single-process path writes."""
import csv
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import apache_beam as beam
import numpy as np
import pytest
from PIL import Image

import cams
from cams.cli import main
from cams.distributed import beam as cams_beam
from cams.distributed import local
from cams_models import conv_gap_dense

METHODS = "gradcam,gradcam++,scorecam,lcam"
CORRUPT = ["b/broken.png", "c/cut.jpg", "c/empty.jpg"]


@pytest.fixture(scope="module")
def job(tmp_path_factory):
    """A tiny saved model, an (untrained) L-CAM file for it, 40 images in three folders and 3 corrupt files."""
    root = tmp_path_factory.mktemp("beam")
    model = conv_gap_dense(size=16, softmax=True)
    model.save(root / "m.keras")
    cams.LCAM(model, seed=0).save(root / "lcam.npz")
    rng = np.random.default_rng(0)
    for i in range(40):
        folder = root / "imgs" / "abc"[i % 3] / ("deep" if i % 5 == 0 else "")
        folder.mkdir(parents=True, exist_ok=True)
        Image.fromarray(rng.integers(0, 255, (20 + i % 7, 18, 3), dtype=np.uint8)).save(folder / f"{i:02d}.png")
    (root / "imgs" / CORRUPT[0]).write_bytes(b"\x89PNG but not really")
    jpeg = root / "whole.jpg"
    Image.fromarray(rng.integers(0, 255, (20, 20, 3), dtype=np.uint8)).save(jpeg)
    (root / "imgs" / CORRUPT[1]).write_bytes(jpeg.read_bytes()[:-200])  # a JPEG cut short
    (root / "imgs" / CORRUPT[2]).write_bytes(b"")
    return root


def argv(job, out, *extra):
    return ["explain-folder", "--model", str(job / "m.keras"), "--images", str(job / "imgs"), "--methods", METHODS,
            "--lcam", str(job / "lcam.npz"), "--batch-size", "8", "--out", str(out), *extra]


def outputs(out: Path):
    """The per-image files (maps/, overlays/): the tables and the run manifest are checked on their own."""
    return sorted(p.relative_to(out).as_posix() for sub in ("maps", "overlays") for p in (out / sub).rglob("*")
                  if p.is_file())


def test_beam_outputs_equal_single_process_outputs(job, tmp_path, capsys):
    assert main(argv(job, tmp_path / "local")) == 0
    first = capsys.readouterr()
    assert "43 images: 0 already done, 40 explained now, 3 unreadable" in first.out
    assert main(argv(job, tmp_path / "beam", "--runner", "DirectRunner")) == 0
    captured = capsys.readouterr()
    assert "43 images: 0 already done, 40 explained now, 3 unreadable" in captured.out
    skipped = sorted(line for line in captured.err.splitlines() if line.startswith("skipped "))  # file: reason
    assert len(skipped) == 3 and skipped == sorted(line for line in first.err.splitlines() if line.startswith("skipped "))
    names = outputs(tmp_path / "local")
    assert len(names) == 40 * 5 and "maps/a/deep/15.png.npz" in names and "overlays/b/01.png.lcam.png" in names
    assert outputs(tmp_path / "beam") == names
    for name in (n for n in names if n.endswith(".npz")):
        a, b = np.load(tmp_path / "local" / name), np.load(tmp_path / "beam" / name)
        assert sorted(a.files) == sorted(b.files) == ["gradcam", "gradcampp", "lcam", "predicted", "probability", "scorecam"]
        assert int(a["predicted"]) == int(b["predicted"])
        assert float(b["probability"]) == pytest.approx(float(a["probability"]), abs=1e-5)
        for m in ("gradcam", "gradcampp", "scorecam", "lcam"):
            assert a[m].shape == (16, 16) and np.abs(a[m] - b[m]).max() <= 1e-5, (name, m)
    listed = (tmp_path / "beam" / "unreadable.txt").read_text().splitlines()
    assert sorted(line.split("\t")[0] for line in listed) == [(job / "imgs" / c).resolve().as_posix() for c in CORRUPT]
    tables = [list(csv.reader(open(tmp_path / run / "predictions.csv", encoding="utf-8", newline="")))
              for run in ("local", "beam")]
    assert [r[:3] for r in tables[0]] == [r[:3] for r in tables[1]] and len(tables[0]) == 1 + 40
    assert sorted(r[1] for r in tables[0][1:]) == sorted(n for n in names if n.endswith(".npz"))


def run_pipeline(job, out, num_workers=None):
    """Run the pipeline as the CLI does and return (counters, outputs' mtimes)."""
    model, _ = cams_beam.build_explainers(cams_beam.FolderJob(model=str(job / "m.keras"), out=str(out)))
    spec = cams_beam.FolderJob(model=str(job / "m.keras"), out=str(out), methods="gradcam,gradcam++", batch_size=8,
                               shape=local.image_size(model, None))
    p = beam.Pipeline(options=cams_beam.pipeline_options("DirectRunner", num_workers))
    cams_beam.build_pipeline(p, spec, [str(job / "imgs")])
    result = p.run()
    result.wait_until_finish()
    return cams_beam.counters(result), {n: (out / n).stat().st_mtime_ns for n in outputs(out)}


def test_corrupt_files_are_counted_and_a_rerun_recomputes_only_deleted_outputs(job, tmp_path):
    out = tmp_path / "out"
    counts, first = run_pipeline(job, out)
    assert counts == {"images": 43, "already_done": 0, "unreadable": 3, "explained": 40}
    npzs = sorted(n for n in first if n.endswith(".npz"))
    deleted = npzs[::2]
    saved = {n: dict(np.load(out / n)) for n in deleted}
    for n in deleted:
        (out / n).unlink()
    counts, second = run_pipeline(job, out, num_workers=2)  # and the multi-process DirectRunner
    assert counts == {"images": 43, "already_done": 20, "unreadable": 3, "explained": 20}
    assert sorted(second) == sorted(first)
    rels = [n[len("maps/"):-len(".npz")] for n in deleted]
    rewritten = set(deleted) | {local.overlay_name(r, m) for r in rels for m in ("gradcam", "gradcam++")}
    assert {n for n in first if second[n] != first[n]} == rewritten
    for n in deleted:
        again = np.load(out / n)
        assert np.abs(again["gradcam"] - saved[n]["gradcam"]).max() <= 1e-5
        assert int(again["predicted"]) == int(saved[n]["predicted"])
    assert len((out / "unreadable.txt").read_text().splitlines()) == 3


def test_runner_without_the_beam_extra_is_a_one_line_error_and_the_local_path_still_works(job, tmp_path):
    script = textwrap.dedent(f"""
        import sys
        sys.modules["apache_beam"] = None  # as if the beam extra were not installed
        from cams.cli import main
        args = {argv(job, tmp_path / "o")!r}
        print("local", main(args))
        print("beam", main(args + ["--runner", "DirectRunner"]))
    """)
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert "local 0" in done.stdout and "beam 2" in done.stdout
    last = done.stderr.strip().splitlines()[-1]
    assert last.startswith("cams explain-folder: error: --runner needs Apache Beam") and 'pip install -e ".[beam]"' in last
    assert 'pip install "keras-cams[beam]"' in last and "Traceback" not in done.stderr
    assert len(list((tmp_path / "o" / "maps").rglob("*.npz"))) == 40


@pytest.mark.parametrize("extra, message", [
    (["--direct-num-workers", "2"], "--direct-num-workers and pipeline options after -- need --runner"),
    (["--runner", "SparkRunner", "--direct-num-workers", "2"], "needs --runner DirectRunner, got 2"),
    # plain apache-beam (the dev extra) has no gs:// file system: apache-beam[gcp] adds it
    (["--runner", "DirectRunner", "--images", "gs://bucket/photos/"],
     "gs://bucket/photos/: cannot read it through Beam's file systems (Unable to get filesystem"),
])
def test_beam_option_errors_are_one_line(job, tmp_path, capsys, extra, message):
    try:
        code = main(argv(job, tmp_path / "o", *extra))
    except SystemExit as exit_:  # argparse's own errors
        code = exit_.code
    assert code == 2
    last = capsys.readouterr().err.strip().splitlines()[-1]
    assert last.startswith("cams explain-folder: error:") and message in last


def test_batch_explainer_returns_each_explainers_own_maps_and_the_probabilities(job):
    """explain-folder's one compiled call per batch gives every registered method's own maps (within 1e-5)."""
    from cams.methods import registry

    model = cams.cli.load_model(str(job / "m.keras"))
    explainers = {}
    for name, method in registry.methods().items():
        if method.attention:  # rollout and gradient-weighted attention read transformers; this model is a CNN
            continue
        options = dict(method.quick, path=str(job / "lcam.npz")) if method.trained_file else dict(method.quick)
        explainers[name] = registry.make_explainer(name, model, **options)
    x = np.random.default_rng(3).random((5, 16, 16, 3), dtype=np.float32)
    probs, maps = local.BatchExplainer(model, explainers, batch_size=2)(x)
    assert np.abs(probs - cams.metrics.probabilities(model, x)).max() <= 1e-6
    assert list(maps) == list(explainers)
    reproducible = []
    for name, explainer in explainers.items():
        own = explainer(x)
        assert maps[name].shape == own.shape == (5, 16, 16) and 0 <= maps[name].min() <= maps[name].max() <= 1, name
        if np.array_equal(own, explainer(x)):  # methods that draw unseeded noise differ from call to call
            assert np.abs(maps[name] - own).max() <= 1e-5, name
            reproducible.append(name)
    assert {"gradcam", "gradcam++", "hirescam", "xgradcam", "saliency", "lcam", "scorecam"} <= set(reproducible)


def test_in_process_runner_loads_the_model_once_and_sends_full_batches(job, tmp_path, monkeypatch):
    """The DirectRunner's in-process worker reuses the model and explainers built before the pipeline
    (one load, not two), a model file changed in between is loaded afresh, and the batches are full."""
    import cams.core.model_io as model_io

    loads, sizes = [], []
    load, run_inference = model_io.load_keras_model, cams_beam.ExplainersHandler.run_inference
    monkeypatch.setattr(model_io, "load_keras_model", lambda *a, **k: loads.append(a[0]) or load(*a, **k))
    monkeypatch.setattr(cams_beam.ExplainersHandler, "run_inference",
                        lambda self, batch, model, args=None: sizes.append(len(batch)) or run_inference(self, batch, model, args))
    report = cams_beam.explain_folder_beam(str(job / "m.keras"), [str(job / "imgs")], str(tmp_path / "out"),
                                           batch_size=8, overlays=False)
    assert report.explained == 40 and len(loads) == 1
    assert sum(sizes) == 40 and sizes.count(8) >= 4, sizes  # 5 full batches of 8 (a bundle's end may split one)
    assert cams_beam._BUILT == {}  # nothing kept after the run
    copy = tmp_path / "m.keras"
    copy.write_bytes((job / "m.keras").read_bytes())
    key = cams_beam._built_key(cams_beam.FolderJob(model=str(copy), out="o"))
    os.utime(copy, ns=(1, 1))  # the file rewritten since: another key, so never the old model
    assert cams_beam._built_key(cams_beam.FolderJob(model=str(copy), out="o")) != key
