"""Figures: overlays, heatmaps, grids, triplets and training history."""
import numpy as np
import pytest
from PIL import Image

from cams import viz
from cams.core import files


def test_overlay_and_heatmap_values():
    img = np.zeros((8, 8), np.float32)  # grey, float [0, 1]
    cam = np.zeros((4, 4), np.float32)
    cam[0, 0] = 1.0
    hm = viz.heatmap(cam, size=(8, 8))
    assert hm.shape == (8, 8, 3) and hm.dtype == np.uint8
    out = viz.overlay(img, cam, alpha=1.0)
    np.testing.assert_array_equal(out, hm)
    half = viz.overlay(np.full((8, 8, 3), 255, np.uint8), cam, alpha=0.5)
    np.testing.assert_array_equal(half, np.rint(0.5 * 255 + 0.5 * hm.astype(float)).astype(np.uint8))
    with pytest.raises(ValueError, match="alpha"):
        viz.overlay(img, cam, alpha=2)
    with pytest.raises(ValueError, match="shape"):
        viz.heatmap(np.zeros((2, 2, 2, 2)))


def test_grid_and_triplets_are_written(tmp_path):
    imgs = np.random.default_rng(0).random((3, 16, 16, 3)).astype(np.float32)
    maps = {"a": np.random.default_rng(1).random((3, 16, 16)), "b": np.zeros((3, 16, 16))}
    p = viz.save_grid(imgs, maps, tmp_path / "grid.png", row_labels=["x", "y", "z"])
    assert Image.open(p).size[0] > Image.open(p).size[1]  # 3 columns wider than... 3 rows of 3 cells
    p2 = viz.save_triplets(imgs, maps["a"], tmp_path / "sub" / "tri.png")
    assert p2.exists() and Image.open(p2).size[0] > 0
    with pytest.raises(ValueError, match="has 2 maps for 3 images"):
        viz.save_grid(imgs, {"a": maps["a"][:2]}, tmp_path / "bad.png")
    assert not (tmp_path / "bad.png").exists()


def test_plot_history_and_atomic_json(tmp_path):
    hist = {"loss": [1.0, 0.5], "val_loss": [1.1, 0.7], "accuracy": [0.5, 0.8]}
    p = viz.plot_history(hist, tmp_path / "hist.png", title="run")
    assert p.exists()
    with pytest.raises(ValueError, match="no loss or accuracy"):
        viz.plot_history({"lr": [0.1]}, tmp_path / "x.png")
    j = files.write_json(tmp_path / "m.json", {"a": np.float32(0.5), "b": np.arange(2)})
    assert j.read_text().count("0.5") == 1
    assert sorted(q.name for q in tmp_path.iterdir()) == ["hist.png", "m.json"]  # no temp files left


def test_atomic_files_get_umask_permissions(tmp_path):
    import os

    mask = os.umask(0o022)
    try:
        p = files.write_text(tmp_path / "a.txt", "x")
    finally:
        os.umask(mask)
    assert (p.stat().st_mode & 0o777) == 0o644
