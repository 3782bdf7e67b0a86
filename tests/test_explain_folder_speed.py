"""explain-folder's speed structure, checked without timings (rows "explain-folder-maps-*" of docs/bad_inputs.md).

* one backbone pass per batch for the predictions and every gradient / one-pass map (a layer's call is
  counted while the batch function is traced), the maps equal each explainer's own, the probabilities
  equal model.predict's;
* a short last batch is padded: the batch function is traced once (also under XLA, `jit`);
* every --maps-dtype reads back through `cams.distributed.read_maps` as the float32 maps within the
  encoding's step; another --maps-dtype in the same --out is another job (refused without --restart);
  a run manifest written before --maps-dtype existed is a float32 run (resumed with float32, refused
  with the float16 default);
* --maps-layout shards: one .npz per batch, read back as the per-image files are, resumed per shard,
  owned like the per-image files (a user's shard-like file refused, --restart removes only the job's).
"""
import json
from pathlib import Path

import keras
import numpy as np
import pytest
from PIL import Image

from cams.distributed import read_maps
from cams.distributed.local import BatchExplainer, explain_folder
from cams.methods.registry import make_explainer
from cams_cli import run
from cams_models import conv_gap_dense, images

DOC = Path(__file__).resolve().parents[1] / "docs" / "bad_inputs.md"
CASES = ["explain-folder-maps-dtype-unknown", "explain-folder-maps-dtype-changed", "read-maps-not-an-output",
         "explain-folder-maps-layout-unknown", "explain-folder-maps-layout-beam", "explain-folder-maps-layout-changed",
         "explain-folder-shard-user-file", "explain-folder-shard-unreadable", "explain-folder-manifest-before-maps-dtype"]
SHARED = ["gradcam", "gradcam++", "hirescam", "xgradcam", "layercam", "cam", "eigencam"]
SIZE = 16


@pytest.fixture(scope="module")
def counted():
    """A conv -> feat -> GAP -> Dense model whose first layer counts its calls ({"n": calls})."""
    keras.utils.set_random_seed(0)
    model = conv_gap_dense(size=SIZE, classes=3, softmax=True)
    stem, calls = model.get_layer("conv1"), {"n": 0}
    original = stem.call

    def call(*args, **kwargs):
        calls["n"] += 1
        return original(*args, **kwargs)

    stem.call = call
    return model, calls


@pytest.mark.parametrize("methods", [["gradcam"], SHARED])
def test_one_backbone_pass_per_batch(counted, methods):
    model, calls = counted
    explainers = {m: make_explainer(m, model) for m in methods}
    x = images(5, SIZE)
    calls["n"] = 0
    probs, maps = BatchExplainer(model, explainers, batch_size=4)(x)
    assert calls["n"] == 1  # traced once, one pass of the backbone in the graph
    np.testing.assert_allclose(probs, model.predict(x, verbose=0), atol=1e-6)
    for m in methods:  # the shared pass gives each method's own map
        np.testing.assert_allclose(maps[m], explainers[m](x), atol=1e-5, err_msg=m)


@pytest.mark.parametrize("jit", [False, True])
def test_short_batch_does_not_retrace(counted, jit):
    model, _ = counted
    explainers = {"gradcam": make_explainer("gradcam", model), "gradcam++": make_explainer("gradcam++", model)}
    batch = BatchExplainer(model, explainers, batch_size=4, jit=jit)
    x = images(10, SIZE, seed=1)  # 4 + 4 + 2: the last batch is padded
    probs, maps = batch(x)
    assert batch.compiled.experimental_get_tracing_count() == 1
    assert probs.shape == (10, 3) and maps["gradcam"].shape == (10, SIZE, SIZE)
    np.testing.assert_allclose(maps["gradcam"], explainers["gradcam"](x), atol=1e-4)
    np.testing.assert_allclose(maps["gradcam++"], explainers["gradcam++"](x), atol=1e-4)


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    root = tmp_path_factory.mktemp("speed")
    rng = np.random.default_rng(0)
    for i in range(5):
        Image.fromarray(rng.integers(0, 255, (SIZE, SIZE, 3), dtype=np.uint8)).save(root / f"img{i}.png")
    keras.utils.set_random_seed(1)
    model = conv_gap_dense(size=SIZE, classes=3, softmax=True)
    model.save(root / "m.keras")
    return root, model


def explain(root, model, dtype, out, layout="files", overlays=False, restart=False):
    explainers = {m: make_explainer(m, model) for m in ("gradcam", "gradcam++")}
    return explain_folder(model, [root], out, explainers, batch_size=2, overlays=overlays, progress=False,
                          maps_dtype=dtype, maps_layout=layout, restart=restart)


@pytest.mark.parametrize("dtype,step", [("float16", 2.0 ** -11), ("uint8", 1 / 510)])
def test_maps_dtype_round_trips_through_read_maps(folder, tmp_path, dtype, step):
    root, model = folder
    explain(root, model, "float32", tmp_path / "f32")
    report = explain(root, model, dtype, tmp_path / dtype)
    assert report.explained == 5
    exact, coded = dict(read_maps(tmp_path / "f32")), dict(read_maps(tmp_path / dtype))
    assert sorted(exact) == sorted(coded) and len(exact) == 5
    for name, record in exact.items():
        assert coded[name]["predicted"] == record["predicted"]
        for m in ("gradcam", "gradcampp"):
            assert coded[name][m].dtype == np.float32
            np.testing.assert_allclose(coded[name][m], record[m], atol=step + 1e-6, err_msg=f"{name} {m}")
    with np.load(next((tmp_path / dtype / "maps").glob("*.npz"))) as z:  # stored in the chosen dtype
        assert z["gradcam"].dtype == np.dtype(dtype)


def test_maps_dtype_cli(folder, tmp_path):
    root, _ = folder
    out = tmp_path / "out"
    base = ["explain-folder", "--model", root / "m.keras", "--images", root, "--out", out, "--no-overlays",
            "--batch-size", "4"]
    code, _, err = run(*base, "--maps-dtype", "float64")  # explain-folder-maps-dtype-unknown
    assert code == 2 and "--maps-dtype" in err and "uint8" in err
    code, stdout, err = run(*base, "--maps-dtype", "uint8")
    assert code == 0, err
    assert "5 explained now" in stdout and "tracing the model" in err  # the bar says what the first wait is
    code, _, err = run(*base, "--maps-dtype", "float16")  # explain-folder-maps-dtype-changed
    assert code == 2 and "maps" in err and "--restart" in err
    code, stdout, err = run(*base, "--maps-dtype", "float16", "--restart")
    assert code == 0, err
    assert {str(r["gradcam"].dtype) for _, r in read_maps(out)} == {"float32"}


def test_read_maps_needs_an_output_folder(tmp_path):  # read-maps-not-an-output
    with pytest.raises(ValueError, match="predictions.csv"):
        list(read_maps(tmp_path))


def test_every_case_is_in_the_table():
    table = DOC.read_text(encoding="utf-8")
    assert [c for c in CASES if f"`{c}`" not in table] == []


def test_ablation_shares_the_heads_pooling():
    """Ablation-CAM through a GAP head feeds pooled copies to the layers after the pooling: the
    same maps as zeroing each channel of the full map and running the whole head."""
    from cams.methods.ablation import AblationCAM

    keras.utils.set_random_seed(2)
    model = conv_gap_dense(size=SIZE, classes=3)
    pooled, full = AblationCAM(model, batch_size=2), AblationCAM(model, batch_size=2)
    full.pool = full.after_pool = None
    assert pooled.after_pool is not None
    x = images(3, SIZE, seed=3)
    np.testing.assert_allclose(pooled(x), full(x), atol=1e-5)


def test_shards_hold_the_same_maps_as_files(folder, tmp_path):
    root, model = folder
    explain(root, model, "float16", tmp_path / "files")
    report = explain(root, model, "float16", tmp_path / "shards", layout="shards", overlays=True)
    assert report.explained == 5
    shards = sorted((tmp_path / "shards" / "maps" / "shards").glob("*.npz"))
    assert len(shards) == 3 and not list((tmp_path / "shards" / "maps").glob("*.npz"))  # 2 + 2 + 1, no per-image file
    assert len(list((tmp_path / "shards" / "overlays").glob("*.png"))) == 10  # overlays stay per image
    per_image, sharded = dict(read_maps(tmp_path / "files")), dict(read_maps(tmp_path / "shards"))
    assert sorted(per_image) == sorted(sharded) and len(sharded) == 5
    for name, record in per_image.items():
        assert sharded[name]["predicted"] == record["predicted"]
        assert sharded[name]["probability"] == pytest.approx(record["probability"], abs=1e-6)
        for m in ("gradcam", "gradcampp"):
            np.testing.assert_array_equal(sharded[name][m], record[m], err_msg=f"{name} {m}")
    refs = [line.split(",")[1] for line in (tmp_path / "shards" / "predictions.csv").read_text().splitlines()[1:]]
    assert all(r.startswith("maps/shards/") and "#" in r for r in refs)
    with np.load(shards[0]) as z:
        assert z["gradcam"].ndim == 3 and z["gradcam"].dtype == np.float16 and len(z["names"]) == len(z["gradcam"])


def test_shards_resume_and_restart(folder, tmp_path):
    root, model = folder
    out = tmp_path / "out"
    explain(root, model, "uint8", out, layout="shards")
    shards = sorted((out / "maps" / "shards").glob("*.npz"))
    lost = 0
    for shard in shards[:2]:
        with np.load(shard) as z:
            lost += len(z["names"])
    shards[0].unlink()  # as if killed before that batch was written
    (out / "predictions.csv").unlink()
    shards[1].write_bytes(b"not a zip")  # explain-folder-shard-unreadable: its images are explained again
    report = explain(root, model, "uint8", out, layout="shards")
    assert report.done_before == 5 - lost and report.explained == lost
    assert len(dict(read_maps(out))) == 5
    (out / "maps" / "notes.npz").write_bytes(b"mine")
    with pytest.raises(ValueError, match="--restart"):  # explain-folder-maps-layout-changed
        explain(root, model, "uint8", out)
    explain(root, model, "uint8", out, restart=True)
    assert not list((out / "maps" / "shards").glob("*.npz")) and (out / "maps" / "notes.npz").read_bytes() == b"mine"
    assert len(dict(read_maps(out))) == 5


def test_shard_like_user_file_is_refused(folder, tmp_path):  # explain-folder-shard-user-file
    root, model = folder
    out = tmp_path / "out"
    mine = out / "maps" / "shards" / "0123456789abcdef.npz"
    mine.parent.mkdir(parents=True)
    mine.write_bytes(b"a user's file")
    with pytest.raises(ValueError, match="0123456789abcdef.npz"):
        explain(root, model, "float16", out, layout="shards")
    assert mine.read_bytes() == b"a user's file"


def test_manifest_before_maps_dtype_is_a_float32_run(folder, tmp_path):  # explain-folder-manifest-before-maps-dtype
    root, model = folder
    out = tmp_path / "out"
    explain(root, model, "float32", out)
    manifest = next(out.glob(".cams-run.*.json"))
    data = json.loads(manifest.read_text())
    for key in ("maps", "layout"):  # as a run of an earlier version wrote it
        del data["settings"][key]
    manifest.write_text(json.dumps(data))
    assert explain(root, model, "float32", out).done_before == 5  # resumed: the same job
    with pytest.raises(ValueError, match="maps: float32 -> float16"):
        explain(root, model, "float16", out)


def test_maps_layout_cli(folder, tmp_path):
    root, _ = folder
    base = ["explain-folder", "--model", root / "m.keras", "--images", root, "--out", tmp_path / "out", "--no-overlays"]
    code, _, err = run(*base, "--maps-layout", "zip")  # explain-folder-maps-layout-unknown
    assert code == 2 and "--maps-layout" in err and "shards" in err
    code, _, err = run(*base, "--maps-layout", "shards", "--runner", "DirectRunner")  # explain-folder-maps-layout-beam
    assert code == 2 and "--maps-layout shards" in err and "--runner" in err
    assert not (tmp_path / "out").exists()
    code, stdout, err = run(*base, "--maps-layout", "shards", "--batch-size", "4")
    assert code == 0, err
    assert len(list((tmp_path / "out" / "maps" / "shards").glob("*.npz"))) == 2


RANDOM = {"smoothgradcam++", "sscam", "iscam", "rise"}  # sampled noise or masks: maps differ call to call


def test_every_method_runs_under_xla(counted):
    """`--jit` (XLA) on every registered method that needs no trained file or attention layers: maps of
    the right shape in [0, 1], equal to the graph's without XLA for the deterministic ones."""
    from cams.methods import registry

    model, _ = counted
    x = images(5, SIZE, seed=2)
    for name in registry.methods():
        method = registry.get(name)
        if method.trained_file or name in ("rollout", "gradattention"):
            continue
        plain = BatchExplainer(model, {name: make_explainer(name, model)}, batch_size=4)(x)[1][name]
        xla = BatchExplainer(model, {name: make_explainer(name, model)}, batch_size=4, jit=True)(x)[1][name]
        assert xla.shape == (5, SIZE, SIZE) and np.isfinite(xla).all() and xla.min() >= 0 and xla.max() <= 1, name
        if name not in RANDOM:
            np.testing.assert_allclose(xla, plain, atol=1e-4, err_msg=name)
