"""deepfake_xai data: the generated planted-face set, folder pipelines, bad files, missing folders."""
from __future__ import annotations

import json

import cv2
import numpy as np
import pytest

from deepfake_xai import data as ddata
from deepfake_xai.cli import main
from deepfake_xai.faces import FaceDetectorUnavailable, draw_face, faces_from_folder, haar_face_detector
from deepfake_xai.make_dataset import generate_dataset, plant_face

COUNTS = {"train": 12, "val": 6, "test": 6}


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    root = tmp_path_factory.mktemp("df_data")
    return generate_dataset(root, "fakes_dataset", 64, COUNTS, progress=False, log=lambda s: None)


def test_generated_layout_counts_and_masks(tiny):
    meta = json.loads((tiny / "dataset.json").read_text())
    for split, total in COUNTS.items():
        reals = sorted((tiny / split / "real").glob("*.jpg"))
        fakes = sorted((tiny / split / "fake").glob("*.jpg"))
        assert len(reals) + len(fakes) == total
        assert len(fakes) == round(total / 3)
        assert meta["counts"][split] == {"real": len(reals), "fake": len(fakes)}
        for f in fakes:
            img = cv2.imread(str(f))
            assert img.shape == (64, 64, 3)
            mask = cv2.imread(str(ddata.mask_path(tiny, split, f)), cv2.IMREAD_GRAYSCALE)
            assert mask.shape == (64, 64)
            assert set(np.unique(mask)) <= {0, 255}
            assert 0.02 < (mask > 0).mean() < 0.4  # the inner face, not the whole image
        # masks live outside the class folders: a folder loader still sees exactly two classes
        assert sorted(p.name for p in (tiny / split).iterdir()) == ["fake", "real"]


def test_plant_face_changes_only_the_masked_region():
    rng = np.random.default_rng(3)
    target, tface = draw_face(rng, 96)
    donor, dface = draw_face(rng, 96)
    fake, mask = plant_face(target, tface, donor, dface, rng)
    diff = np.abs(fake.astype(int) - target.astype(int)).max(axis=-1)
    assert diff[mask == 0].max() == 0
    assert diff[mask > 0].mean() > 1.0
    assert fake.shape == target.shape and fake.dtype == np.uint8


def test_summary_counts_and_fake_to_real(tiny, capsys):
    s = ddata.summarize(tiny)
    assert s["test"]["real"] == len(list((tiny / "test" / "real").iterdir()))
    assert s["test"]["fake"] == len(list((tiny / "test" / "fake").iterdir()))
    assert s["test"]["fake_to_real"] == ddata.fake_to_real(s["test"]["fake"], s["test"]["real"])
    assert ddata.fake_to_real(700, 1400) == "1:2"   # the report's test split (700 fake, 1400 real)
    assert ddata.fake_to_real(552, 551) == "1:1.00"  # Q15: not exactly 1:1
    assert s["test"]["fake_percent"] == pytest.approx(100 * s["test"]["fake"] / s["test"]["total"])
    assert main(["summary", "-d", str(tiny)]) == 0
    out = capsys.readouterr().out
    assert "fake:real" in out and "test" in out


def test_pipeline_shapes_ranges_and_labels(tiny):
    ds, files = ddata.load_split(tiny, "train", 48, 5, training=True, seed=1)
    n, labels = 0, []
    for x, y in ds:
        assert x.shape[1:] == (48, 48, 3)
        assert float(x.numpy().min()) >= -1.0 and float(x.numpy().max()) <= 1.0
        labels += list(y.numpy())
        n += len(y)
    assert n == len(files.paths) == COUNTS["train"]
    assert sorted(labels) == sorted(files.labels)
    assert files.count(1) == len(list((tiny / "train" / "fake").iterdir()))
    # val/test keep file order: real (0) first, then fake (1)
    ds, files = ddata.load_split(tiny, "test", 40, 4, with_paths=True)
    got = [(p.decode(), int(y)) for _, ys, ps in ds.as_numpy_iterator() for y, p in zip(ys, ps)]
    assert got == list(zip(files.paths, files.labels))
    assert all(("/fake/" in p) == (y == 1) for p, y in got)


def test_corrupt_and_non_image_files_are_reported_and_skipped(tiny, tmp_path, capsys):
    import shutil

    root = tmp_path / "ds"
    shutil.copytree(tiny, root)
    good = next((root / "train" / "fake").glob("*.jpg")).read_bytes()
    (root / "train" / "fake" / "garbage.jpg").write_bytes(b"this is not a jpeg")
    (root / "train" / "fake" / "truncated.jpg").write_bytes(good[: len(good) // 3])
    (root / "train" / "real" / "notes.txt").write_text("hello")
    (root / "train" / "real" / ".DS_Store").write_bytes(b"\0\0")
    ds, files = ddata.load_split(root, "train", 32, 4, training=True)
    err = capsys.readouterr().err
    skipped = {p for p, _ in files.skipped}
    for name in ("fake/garbage.jpg", "fake/truncated.jpg", "real/notes.txt"):
        assert str(root / "train" / name) in skipped
        assert str(root / "train" / name) in err
    assert ".DS_Store" not in err
    assert sum(len(y) for _, y in ds) == COUNTS["train"]  # whole epoch runs, bad files left out


def test_missing_split_or_class_folder_is_a_clear_error(tiny, tmp_path, capsys):
    import shutil

    root = tmp_path / "broken"
    shutil.copytree(tiny, root)
    shutil.rmtree(root / "val" / "fake")
    with pytest.raises(ddata.DatasetError, match="val/fake"):
        ddata.check_layout(root)
    rc = main(["train", "-d", str(root), "-e", "1", "--image-size", "64"])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2
    assert len(err) == 1 and str(root / "val" / "fake") in err[0]
    shutil.rmtree(root / "test")
    with pytest.raises(ddata.DatasetError, match="test"):
        ddata.list_split(root, "test")


def test_unknown_dataset_name_points_to_make_dataset(tmp_path, capsys):
    rc = main(["summary", "-d", "fakes_dataset", "--data-root", str(tmp_path)])
    err = capsys.readouterr().err
    assert rc == 2 and "make-dataset" in err and str(tmp_path / "fakes_dataset") in err


def test_make_dataset_cli_never_overwrites(tiny, capsys):
    rc = main(["make-dataset", "--data-root", str(tiny.parent), "--name", tiny.name, "--image-size", "64", "-q"])
    err = capsys.readouterr().err
    assert rc == 2 and "--overwrite" in err and str(tiny) in err
    assert (tiny / "dataset.json").is_file()


def test_faces_from_folder_reports_bad_files(tmp_path):
    rng = np.random.default_rng(0)
    for i in range(3):
        img, _ = draw_face(rng, 80)
        cv2.imwrite(str(tmp_path / f"p{i}.png"), cv2.cvtColor(img, cv2.COLOR_RGB2BGR))
    (tmp_path / "broken.jpg").write_bytes(b"nope")
    (tmp_path / "readme.txt").write_text("x")
    from deepfake_xai.faces import center_face_detector

    faces, skipped = faces_from_folder(tmp_path, 64, center_face_detector)
    assert len(faces) == 3
    assert all(f[0].shape == (64, 64, 3) for f in faces)
    assert {p.name for p, _ in skipped} == {"broken.jpg", "readme.txt"}
    cx = [f[1].cx for f in faces]
    assert all(16 < c < 48 for c in cx)


def test_haar_detector_missing_names_the_fix(monkeypatch):
    monkeypatch.delattr(cv2, "CascadeClassifier", raising=False)
    with pytest.raises(FaceDetectorUnavailable, match="opencv-python-headless<5"):
        haar_face_detector()


def test_make_dataset_from_a_folder_of_photos(tmp_path):
    photos = tmp_path / "photos"
    photos.mkdir()
    rng = np.random.default_rng(5)
    for i in range(7):
        img, _ = draw_face(rng, 96)
        cv2.imwrite(str(photos / f"person{i}.png"), cv2.cvtColor(img, cv2.COLOR_RGB2BGR))
    (photos / "notes.txt").write_text("not a photo")
    logs = []
    dest = generate_dataset(tmp_path / "data", "mine", 64, {"train": 6, "val": 3, "test": 3}, real_images=photos,
                            face_box="center", progress=False, log=logs.append)
    assert any("notes.txt" in m for m in logs)
    assert json.loads((dest / "dataset.json").read_text())["real_source"] == str(photos)
    assert ddata.summarize(dest)["train"] == {"real": 4, "fake": 2, "total": 6, "fake_percent": pytest.approx(100 / 3),
                                              "fake_to_real": "1:2", "skipped": 0}
    few = tmp_path / "few"
    few.mkdir()
    for p in sorted(photos.glob("*.png"))[:5]:
        (few / p.name).write_bytes(p.read_bytes())
    with pytest.raises(ValueError, match="need at least 6"):
        generate_dataset(tmp_path / "data", "few", 64, real_images=few, face_box="center", progress=False,
                         log=lambda s: None)


def test_haar_detector_finds_the_face_in_a_real_photograph(tmp_path):
    """OpenCV's bundled Haar cascade (OpenCV 4, pinned in setup.cfg) on scikit-image's astronaut:
    the largest detection covers her face (upper middle of the image); the rocket photo has none."""
    import skimage.data

    photos = tmp_path / "photos"
    photos.mkdir()
    cv2.imwrite(str(photos / "astronaut.png"), cv2.cvtColor(skimage.data.astronaut(), cv2.COLOR_RGB2BGR))
    cv2.imwrite(str(photos / "rocket.png"), cv2.cvtColor(skimage.data.rocket(), cv2.COLOR_RGB2BGR))
    faces, skipped = faces_from_folder(photos, 64)
    assert [p.name for _, _, p in faces] == ["astronaut.png"]
    assert [(p.name, why) for p, why in skipped] == [("rocket.png", "no face found")]
    x, y, w, h = max(haar_face_detector()(skimage.data.astronaut()), key=lambda b: b[2] * b[3])
    cx, cy = x + w / 2, y + h / 2
    assert 150 < cx < 300 and 50 < cy < 200 and 60 < w < 200  # the astronaut's face, 512x512 photo
    crop, _, _ = faces[0]
    assert crop.shape == (64, 64, 3)
