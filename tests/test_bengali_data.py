"""bengali_xai loaders (Ekush CSVs, NumtaDB folders, synthetic glyph digits), splits and pipelines."""
from __future__ import annotations

import csv
from pathlib import Path

import cv2
import numpy as np
import pytest

from bengali_xai.atlas import ATLAS_PATH, load_atlas
from bengali_xai.data import load_data
from bengali_xai.data_ekush import load_ekush, read_ekush_csv
from bengali_xai.data_numtadb import load_numtadb
from bengali_xai.digits import DigitData, subsample
from bengali_xai.errors import BengaliXAIError
from bengali_xai.pipeline import make_dataset, split_data
from bengali_xai.synthetic import make_synthetic

# ---------------------------------------------------------------- Ekush


def write_ekush(path: Path, n: int = 20, header: bool = True, offset: int = 112, seed: int = 0,
                label_first: bool = False) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    pixels = rng.integers(0, 256, size=(n, 784))
    digits = np.arange(n) % 10
    with open(path, "w", newline="") as fh:
        w = csv.writer(fh)
        names = [f"pixel{i}" for i in range(784)]
        if header:
            w.writerow(["label", *names] if label_first else [*names, "label"])
        for p, d in zip(pixels, digits):
            w.writerow([d + offset, *p] if label_first else [*p, d + offset])
    return pixels, digits


def edit_cell(path: Path, row: int, col: int, value: str) -> None:
    """Set the cell at file row `row` (1-based line) and column `col` (1-based)."""
    lines = path.read_text().splitlines()
    cells = lines[row - 1].split(",")
    cells[col - 1] = value
    lines[row - 1] = ",".join(cells)
    path.write_text("\n".join(lines) + "\n")


def test_ekush_folder_merges_male_and_female_and_maps_labels(tmp_path):
    pm, dm = write_ekush(tmp_path / "maleDigits.csv", n=20, seed=1)
    pf, df = write_ekush(tmp_path / "femaleDigits.csv", n=10, seed=2)
    data = load_ekush(tmp_path)
    assert data.x.shape == (30, 28, 28, 1) and data.x.dtype == np.float32
    assert 0.0 <= data.x.min() and data.x.max() <= 1.0
    np.testing.assert_array_equal(data.y, np.concatenate([dm, df]))
    np.testing.assert_allclose(data.x[0, :, :, 0], pm[0].reshape(28, 28) / 255.0, atol=1e-6)
    np.testing.assert_allclose(data.x[25, :, :, 0], pf[5].reshape(28, 28) / 255.0, atol=1e-6)
    assert data.info["files"] == {"maleDigits.csv": 20, "femaleDigits.csv": 10}


def test_ekush_single_csv_without_header_and_digit_labels(tmp_path):
    p, d = write_ekush(tmp_path / "digits.csv", n=12, header=False, offset=0)
    data = load_data("ekush", tmp_path / "digits.csv")
    np.testing.assert_array_equal(data.y, d)
    np.testing.assert_allclose(data.x[3].ravel(), p[3] / 255.0, atol=1e-6)


def test_ekush_label_column_found_by_name(tmp_path):
    p, d = write_ekush(tmp_path / "maleDigits.csv", n=10, label_first=True)
    px, y = read_ekush_csv(tmp_path / "maleDigits.csv")
    np.testing.assert_array_equal(y, d)
    np.testing.assert_array_equal(px, p)


def test_ekush_wrong_column_count_names_file_and_row(tmp_path):
    f = tmp_path / "maleDigits.csv"
    write_ekush(f, n=6)
    lines = f.read_text().splitlines()
    lines[3] = ",".join(lines[3].split(",")[:-2])  # row 4 loses two cells
    f.write_text("\n".join(lines) + "\n")
    with pytest.raises(BengaliXAIError, match=r"maleDigits\.csv: row 4 has 783 columns, expected 785"):
        load_ekush(tmp_path)


def test_ekush_non_numeric_cell_names_row_and_column(tmp_path):
    f = tmp_path / "femaleDigits.csv"
    write_ekush(f, n=6)
    edit_cell(f, row=3, col=17, value="abc")
    with pytest.raises(BengaliXAIError, match=r"femaleDigits\.csv: row 3, column 17 \('pixel16'\): 'abc' is not a number"):
        load_ekush(f)


def test_ekush_label_out_of_range_names_row_column_and_value(tmp_path):
    f = tmp_path / "maleDigits.csv"
    write_ekush(f, n=6)
    edit_cell(f, row=5, col=785, value="130")
    with pytest.raises(BengaliXAIError, match=r"maleDigits\.csv: row 5, column 785 \('label'\): label 130 is neither 112\.\.121"):
        load_ekush(f)
    edit_cell(f, row=5, col=785, value="10")  # between the two ranges
    with pytest.raises(BengaliXAIError, match=r"row 5, column 785"):
        load_ekush(f)


def test_ekush_pixel_out_of_range(tmp_path):
    f = tmp_path / "maleDigits.csv"
    write_ekush(f, n=4, header=False)
    edit_cell(f, row=2, col=9, value="300")
    with pytest.raises(BengaliXAIError, match=r"row 2, column 9: pixel 300 is outside 0\.\.255"):
        load_ekush(f)


def test_ekush_empty_file_and_header_only(tmp_path):
    f = tmp_path / "maleDigits.csv"
    f.write_text("")
    with pytest.raises(BengaliXAIError, match=r"maleDigits\.csv: the file is empty"):
        load_ekush(tmp_path)
    f.write_text("\n\n")
    with pytest.raises(BengaliXAIError, match=r"maleDigits\.csv: the file is empty"):
        load_ekush(tmp_path)
    f.write_text(",".join([f"pixel{i}" for i in range(784)] + ["label"]) + "\n")
    with pytest.raises(BengaliXAIError, match=r"maleDigits\.csv: the file has a header but no data rows"):
        load_ekush(tmp_path)


def test_ekush_folder_without_csvs(tmp_path):
    (tmp_path / "other.csv").write_text("1,2\n")
    with pytest.raises(BengaliXAIError, match=r"neither maleDigits\.csv nor femaleDigits\.csv found.*other\.csv"):
        load_ekush(tmp_path)
    with pytest.raises(BengaliXAIError, match="needs --data-dir"):
        load_data("ekush", None)


# ---------------------------------------------------------------- NumtaDB


def make_numtadb(root: Path, per_subset: int = 10, subsets=("training-a", "training-b"), csv_inside=False) -> dict:
    """Coloured digit-like PNGs; returns {path: (digit, bgr colour)}."""
    rng = np.random.default_rng(0)
    truth = {}
    for s in subsets:
        folder = root / s
        folder.mkdir(parents=True)
        rows = []
        for i in range(per_subset):
            digit = i % 10
            colour = tuple(int(c) for c in rng.integers(0, 256, 3))
            img = np.full((40 + i, 36, 3), colour, np.uint8)  # varied sizes, resized to 28x28
            name = f"{s[-1]}{i:05d}.png"
            cv2.imwrite(str(folder / name), img)
            rows.append((name, f"orig_{i}.jpg", digit))
            truth[folder / name] = (digit, colour)
        csv_path = (folder if csv_inside else root) / f"{s}.csv"
        with open(csv_path, "w", newline="") as fh:
            w = csv.writer(fh)
            w.writerow(["filename", "original filename", "digit"])
            w.writerows(rows)
    return truth


def test_numtadb_reads_grey_28x28(tmp_path):
    truth = make_numtadb(tmp_path)
    data = load_numtadb(tmp_path, progress=False)
    assert data.x.shape == (20, 28, 28, 1) and data.x.dtype == np.float32
    assert data.name == "numtadb" and data.info["skipped"] == 0
    digit, (b, g, r) = truth[tmp_path / "training-b" / "b00003.png"]
    grey = (0.299 * r + 0.587 * g + 0.114 * b) / 255.0
    assert data.y[13] == digit
    np.testing.assert_allclose(data.x[13], grey, atol=1.5 / 255)


def test_numtadb_csv_inside_folder_and_max_samples(tmp_path):
    make_numtadb(tmp_path, per_subset=30, subsets=("training-c",), csv_inside=True)
    data = load_numtadb(tmp_path, max_samples=20, seed=3, progress=False)
    assert len(data) == 20
    assert np.bincount(data.y, minlength=10).tolist() == [2] * 10  # stratified
    again = load_numtadb(tmp_path, max_samples=20, seed=3, progress=False)
    np.testing.assert_array_equal(data.x, again.x)


def test_numtadb_unreadable_images_are_skipped_and_counted(tmp_path, capsys):
    make_numtadb(tmp_path)
    broken = tmp_path / "training-a" / "a00002.png"
    broken.write_bytes(b"not a png at all")
    (tmp_path / "training-b" / "b00004.png").unlink()
    data = load_numtadb(tmp_path, progress=False)
    out = capsys.readouterr().out
    assert len(data) == 18 and data.info["skipped"] == 2
    assert f"cannot read image {broken}; skipped" in out
    assert "b00004.png" in out
    assert "skipped 2 unreadable image(s) of 20" in out


def test_numtadb_malformed_csvs(tmp_path):
    make_numtadb(tmp_path, subsets=("training-a",))
    f = tmp_path / "training-a.csv"
    lines = f.read_text().splitlines()
    lines[4] = lines[4].rsplit(",", 1)[0] + ",12"
    f.write_text("\n".join(lines) + "\n")
    with pytest.raises(BengaliXAIError, match=r"training-a\.csv: row 5, column 3 \('digit'\): '12' is not a digit 0\.\.9"):
        load_numtadb(tmp_path, progress=False)
    f.write_text("filename,label\na00000.png,1\n")
    with pytest.raises(BengaliXAIError, match=r"training-a\.csv: no 'digit' column \(columns: filename, label\)"):
        load_numtadb(tmp_path, progress=False)
    f.write_text("")
    with pytest.raises(BengaliXAIError, match=r"training-a\.csv: the file is empty"):
        load_numtadb(tmp_path, progress=False)
    f.write_text("filename,digit\n")
    with pytest.raises(BengaliXAIError, match=r"training-a\.csv: the file has a header but no data rows"):
        load_numtadb(tmp_path, progress=False)
    f.unlink()
    with pytest.raises(BengaliXAIError, match=r"training-a: found the image folder but no training-a\.csv"):
        load_numtadb(tmp_path, progress=False)


def test_numtadb_missing_layout(tmp_path):
    with pytest.raises(BengaliXAIError, match=r"none of the NumtaDB folders training-a"):
        load_numtadb(tmp_path, progress=False)
    with pytest.raises(BengaliXAIError, match="no such folder"):
        load_numtadb(tmp_path / "absent", progress=False)


def test_numtadb_all_images_unreadable(tmp_path):
    make_numtadb(tmp_path, per_subset=3, subsets=("training-e",))
    for p in (tmp_path / "training-e").glob("*.png"):
        p.write_bytes(b"")
    with pytest.raises(BengaliXAIError, match="none of the 3 listed images could be read"):
        load_numtadb(tmp_path, progress=False)


# ---------------------------------------------------------------- synthetic


def test_atlas_ships_in_package_and_is_small():
    atlas = load_atlas()
    assert ATLAS_PATH.stat().st_size < 2 * 1024 * 1024
    assert atlas.glyphs.dtype == np.uint8 and atlas.glyphs.shape[1] == 10
    assert len(atlas.fonts) == len(atlas.glyphs) >= 6 and len(set(atlas.families)) >= 4
    # every glyph has ink and a black border (white on black)
    assert (atlas.glyphs.reshape(len(atlas.fonts), 10, -1).max(axis=2) > 200).all()
    assert atlas.glyphs[:, :, 0, :].max() == 0


def test_synthetic_is_deterministic_balanced_and_holds_out_fonts():
    a = make_synthetic(200, seed=7)
    b = make_synthetic(200, seed=7)
    c = make_synthetic(200, seed=8)
    np.testing.assert_array_equal(a.x, b.x)
    np.testing.assert_array_equal(a.y, b.y)
    assert not np.array_equal(a.x, c.x)
    assert a.x.shape == (200, 28, 28, 1) and a.x.dtype == np.float32
    assert 0.0 <= a.x.min() and a.x.max() <= 1.0
    assert np.bincount(a.y, minlength=10).tolist() == [20] * 10
    assert a.heldout.sum() == 40 and np.bincount(a.y[a.heldout], minlength=10).tolist() == [4] * 10
    assert not set(a.info["train_fonts"]) & set(a.info["test_fonts"])
    # white digit on a dark background: the border is darker than the centre
    assert a.x[:, :3].mean() < 0.1 < a.x[:, 10:18, 10:18].mean()


def test_synthetic_rejects_bad_sizes_and_families():
    with pytest.raises(BengaliXAIError, match="at least 20"):
        make_synthetic(5)
    with pytest.raises(BengaliXAIError, match="unknown font families"):
        make_synthetic(100, test_families=("Comic Sans",))


# ---------------------------------------------------------------- splits, pipelines


def test_split_60_20_20_is_stratified_and_disjoint():
    rng = np.random.default_rng(0)
    data = DigitData(rng.random((500, 28, 28, 1), dtype=np.float32), np.arange(500) % 10, "t")
    s = split_data(data, val=0.2, test=0.2, seed=1)
    assert (len(s.train), len(s.val), len(s.test)) == (300, 100, 100)
    assert len(np.intersect1d(s.train, s.val)) == len(np.intersect1d(s.train, s.test)) == 0
    assert np.bincount(data.y[s.test]).tolist() == [10] * 10
    s2 = split_data(data, val=0.0, test=0.2, seed=1)
    assert (len(s2.train), len(s2.val), len(s2.test)) == (400, 0, 100)
    np.testing.assert_array_equal(split_data(data, seed=1).test, s.test)


def test_split_uses_heldout_fonts_as_test_set():
    data = make_synthetic(100, seed=0)
    s = split_data(data, val=0.2, test=0.2, seed=0)
    np.testing.assert_array_equal(s.test, np.flatnonzero(data.heldout))
    assert not data.heldout[s.train].any() and not data.heldout[s.val].any()
    assert (len(s.train), len(s.val)) == (60, 20)


def test_subsample_is_stratified():
    data = make_synthetic(200, seed=0)
    sub = subsample(data, 50, seed=0)
    assert len(sub) == 50 and np.bincount(sub.y).tolist() == [5] * 10
    with pytest.raises(BengaliXAIError, match="at least 10"):
        load_data("synthetic", max_samples=5)


def test_make_dataset_batches_one_hot():
    data = make_synthetic(60, seed=0)
    ds = make_dataset(data.x, data.y, batch_size=16, shuffle=True, seed=0)
    batches = list(ds)
    assert [int(b[0].shape[0]) for b in batches] == [16, 16, 16, 12]
    x0, y0 = batches[0]
    assert tuple(x0.shape[1:]) == (28, 28, 1) and tuple(y0.shape) == (16, 10)
    assert np.allclose(y0.numpy().sum(axis=1), 1.0)
    labels = np.concatenate([b[1].numpy().argmax(axis=1) for b in batches])
    assert sorted(labels.tolist()) == sorted(data.y.tolist())


# ---------------------------------------------------------------- TFDS builders


def test_tfds_builders_read_the_manual_dir(tmp_path):
    import tensorflow_datasets as tfds

    from bengali_xai.tfds_builders import EkushDigits, NumtadbDigits

    (tmp_path / "ekush").mkdir()
    pixels, digits = write_ekush(tmp_path / "ekush" / "femaleDigits.csv", n=30)
    builder = EkushDigits(data_dir=str(tmp_path / "tfds"))
    builder.download_and_prepare(download_config=tfds.download.DownloadConfig(manual_dir=str(tmp_path / "ekush")))
    pairs = list(tfds.as_numpy(builder.as_dataset(split="train", as_supervised=True)))
    assert len(pairs) == 30 and pairs[0][0].shape == (28, 28, 1) and pairs[0][0].dtype == np.uint8
    expected = {(pixels[i].astype(np.uint8).tobytes(), int(digits[i])) for i in range(30)}
    assert {(x[..., 0].tobytes(), int(y)) for x, y in pairs} == expected

    truth = make_numtadb(tmp_path / "numta", per_subset=10, subsets=("training-b",))
    builder = NumtadbDigits(data_dir=str(tmp_path / "tfds"))
    builder.download_and_prepare(download_config=tfds.download.DownloadConfig(manual_dir=str(tmp_path / "numta")))
    labels = sorted(int(y) for _, y in tfds.as_numpy(builder.as_dataset(split="train", as_supervised=True)))
    assert labels == sorted(d for d, _ in truth.values())
