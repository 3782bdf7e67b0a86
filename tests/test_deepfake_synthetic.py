"""The synthetic half of the face study: AutoGAN simulator, synthetic data set, spectrum and samples figures."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from deepfake_xai.autogan import build_generator, synthesize, to_float, to_uint8, train_generator
from deepfake_xai.faces import draw_face, read_rgb
from deepfake_xai.spectrum import high_frequency_share, log_spectrum
from deepfake_xai.synthetic_dataset import fidelity, generate_synthetic_dataset

TINY = dict(image_size=48, counts={"train": 16, "val": 6, "test": 10}, internal_size=32, generator_epochs=2,
            width=4, progress=False, log=lambda s: None)


def _files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*.png"))}


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory):
    root = tmp_path_factory.mktemp("synthetic") / "data"
    return generate_synthetic_dataset(root, "synthetic_dataset", seed=3, **TINY)


def test_synthetic_dataset_is_one_to_one_with_generator_saved(synthetic):
    for split, n in TINY["counts"].items():
        real = sorted((synthetic / split / "real").glob("*.png"))
        fake = sorted((synthetic / split / "fake").glob("*.png"))
        assert len(real) == len(fake) == n // 2
        assert read_rgb(fake[0]).shape == (48, 48, 3)
    info = json.loads((synthetic / "dataset.json").read_text())
    assert info["kind"] == "synthetic" and info["internal_size"] == 32
    assert len(info["generator_loss"]) == 2
    assert set(info["generator_history"]) == {"g_loss", "d_loss", "rec_l1", "g_adv"}
    sharp = info["sharpness"]["test"]
    assert sharp["real"]["images"] == sharp["fake"]["images"] == 5
    assert sharp["laplacian_variance_ratio"] == pytest.approx(
        sharp["fake"]["laplacian_variance"] / sharp["real"]["laplacian_variance"])
    import keras

    gen = keras.models.load_model(synthetic / "autogan_generator.keras", compile=False)
    assert gen.input_shape == (None, 32, 32, 3) and gen.name == "autogan_generator"


def test_synthetic_dataset_is_reproducible_for_a_seed(synthetic, tmp_path):
    again = generate_synthetic_dataset(tmp_path, "synthetic_dataset", seed=3, **TINY)
    assert _files(again) == _files(synthetic)
    other = generate_synthetic_dataset(tmp_path, "other", seed=4, **TINY)
    assert _files(other) != _files(synthetic)


def test_fakes_are_close_to_their_source_faces():
    rng = np.random.default_rng(0)
    faces = np.stack([draw_face(rng, 32)[0] for _ in range(48)])
    model, hist = train_generator(to_float(faces), epochs=15, batch_size=8, lr=2e-3, width=8, seed=0, progress=False,
                                  adversarial=False)  # the L1 ablation: its reconstructions converge fastest
    assert hist["loss"][-1] < hist["loss"][0]
    fakes = to_uint8(synthesize(model, to_float(faces)))
    own = fidelity(faces, fakes)
    shuffled = fidelity(np.roll(faces, 1, axis=0), fakes)  # each fake against another face
    print(f"\nAutoGAN 32 px after 15 epochs: PSNR {own['psnr_db']:.1f} dB, SSIM {own['ssim']:.3f} "
          f"(against other faces: {shuffled['psnr_db']:.1f} dB, {shuffled['ssim']:.3f})")
    assert own["psnr_db"] > shuffled["psnr_db"] + 3.0
    assert own["ssim"] > shuffled["ssim"]
    from skimage.metrics import peak_signal_noise_ratio, structural_similarity  # the reference (dev extra)

    assert own["psnr_db"] == pytest.approx(np.mean([peak_signal_noise_ratio(a, b, data_range=255)
                                                    for a, b in zip(faces, fakes)]), rel=1e-5)
    assert own["ssim"] == pytest.approx(np.mean([  # Wang et al.'s Gaussian window, as tf.image.ssim
        structural_similarity(a, b, data_range=255, channel_axis=-1, gaussian_weights=True, sigma=1.5,
                              use_sample_covariance=False) for a, b in zip(faces, fakes)]), abs=1e-5)


@pytest.mark.parametrize("upsampling", ["transpose", "nearest"])
def test_generator_shapes_and_range(upsampling):
    gen = build_generator(16, width=2, upsampling=upsampling)
    out = synthesize(gen, np.random.default_rng(0).random((2, 16, 16, 3)))
    assert out.shape == (2, 16, 16, 3) and out.min() >= 0.0 and out.max() <= 1.0
    kinds = {type(layer).__name__ for layer in gen.layers}
    assert ("Conv2DTranspose" in kinds) == (upsampling == "transpose")
    assert ("UpSampling2D" in kinds) == (upsampling == "nearest")


def test_generator_rejects_bad_settings():
    with pytest.raises(ValueError, match="upsampling"):
        build_generator(16, upsampling="bicubic")
    with pytest.raises(ValueError, match="multiple of 4"):
        build_generator(30)


def test_log_spectrum_of_a_cosine_peaks_at_its_frequency():
    n, k = 32, 5
    x = np.cos(2 * np.pi * k * np.arange(n) / n)[None, :].repeat(n, axis=0)
    s = log_spectrum(x[None])
    peaks = {tuple(p) for p in np.argwhere(s > s.max() - 1e-6)}
    assert peaks == {(n // 2, n // 2 + k), (n // 2, n // 2 - k)}
    flat = np.zeros((1, n, n))
    assert high_frequency_share(log_spectrum(flat + np.random.default_rng(0).normal(size=(1, n, n)))) > \
        high_frequency_share(log_spectrum(np.cumsum(np.cumsum(np.random.default_rng(0).normal(size=(1, n, n)),
                                                               axis=1), axis=2)))


def _cli(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "deepfake_xai.cli", *args], capture_output=True, text=True,
                          cwd=cwd, timeout=600)


def test_spectrum_reports_the_fake_real_difference(synthetic, tmp_path):
    """The spectrum command's figures are the mean log spectra of the split's stored images. (Whether
    the fakes stand out at the up-sampling replicas is checked at the generator's own size below: 5
    images per class, resized from 32 to 48 px, are too few and move the replica frequencies.)"""
    from deepfake_xai.cli import main
    from deepfake_xai.spectrum import peak_contrast, read_images

    assert main(["spectrum", "-d", str(synthetic), "--out-dir", str(tmp_path)]) == 0
    res = json.loads((tmp_path / "synthetic_dataset_test_spectrum.json").read_text())
    assert (tmp_path / "figures" / "synthetic_dataset_test_spectrum.png").is_file()
    assert res["real"] == res["fake"] == 5
    real, fake = (log_spectrum(read_images(sorted((synthetic / "test" / c).glob("*.png")))) for c in ("real", "fake"))
    assert res["mean_abs_diff_fake_vs_real"] == pytest.approx(np.abs(fake - real).mean())
    assert res["upsampling_peak_contrast_fake_vs_real"] == pytest.approx(peak_contrast(fake - real))


def test_generator_output_peaks_at_the_upsampling_replicas(synthetic):
    """At the generator's own size (no resize moving the frequencies), the fakes' spectrum minus the
    reals' stands out at the (a N/4, b N/4) replicas of its two x2 up-samplings."""
    from deepfake_xai.autogan import load_generator
    from deepfake_xai.spectrum import peak_contrast

    rng = np.random.default_rng(7)
    faces = np.stack([draw_face(rng, 32, sensor_noise=False)[0] for _ in range(48)])
    fakes = to_uint8(synthesize(load_generator(synthetic / "autogan_generator.keras"), to_float(faces[24:])))
    real_half = peak_contrast(log_spectrum(faces[:12]) - log_spectrum(faces[12:24]))
    fake_real = peak_contrast(log_spectrum(fakes) - log_spectrum(faces[:24]))
    print(f"\npeak contrast at the x4 replicas: fake - real {fake_real:.3f}, real half vs half {real_half:.3f}")
    assert fake_real > real_half + 0.1


def test_peak_contrast_finds_a_period_four_pattern():
    from deepfake_xai.spectrum import peak_contrast

    rng = np.random.default_rng(0)
    noise = rng.normal(size=(32, 32, 32))
    grid = np.arange(32) % 4 == 0
    checker = noise + 3.0 * (grid[:, None] & grid[None, :])  # a period-4 grid: its spectrum is the (a N/4, b N/4)
    assert peak_contrast(log_spectrum(checker) - log_spectrum(noise)) > 1.0
    assert abs(peak_contrast(log_spectrum(noise[:16]) - log_spectrum(noise[16:]))) < 0.2


def test_make_dataset_synthetic_cli_and_samples_figure(tmp_path):
    from deepfake_xai.make_dataset import generate_dataset

    root = tmp_path / "data"
    r = _cli("make-dataset", "--kind", "synthetic", "--data-root", str(root), "--image-size", "40",
             "--internal-size", "32", "--train", "8", "--val", "4", "--test", "4", "--generator-epochs", "1",
             "--generator-width", "4", "-q")
    assert r.returncode == 0, r.stderr
    assert (root / "synthetic_dataset" / "autogan_generator.keras").is_file()
    out = tmp_path / "out"
    from deepfake_xai.cli import main

    assert main(["plot-samples", "--data-root", str(root), "--out-dir", str(out), "-n", "2"]) == 0
    from PIL import Image

    one = Image.open(out / "figures" / "samples_of_faces_dataset.png").size
    generate_dataset(root, "fakes_dataset", 40, {"train": 6, "val": 3, "test": 3}, progress=False, log=lambda s: None)
    script = Path(__file__).resolve().parents[1] / "scripts" / "plot_samples_of_faces_dataset.py"
    r = subprocess.run([sys.executable, str(script), "--data-root", str(root), "--out-dir", str(out), "-n", "2"],
                       capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr
    assert "fakes_dataset, synthetic_dataset" in r.stdout
    two = Image.open(out / "figures" / "samples_of_faces_dataset.png").size
    assert two[0] == one[0] and two[1] == pytest.approx(2 * one[1], rel=0.1)  # one row per data set


def test_samples_figure_shows_real_and_fake_at_full_resolution(synthetic, tmp_path):
    from deepfake_xai.samples import pick_samples, plot_samples

    path = plot_samples(synthetic.parent, None, 2, "test", tmp_path, seed=1, log=lambda s: None)
    fig = read_rgb(path).astype(np.float64)
    picked = pick_samples(synthetic, "test", 2, seed=1)
    shown = [read_rgb(p) for p in picked["real"] + picked["fake"]]  # one row: real, real, fake, fake
    size, gap, title = 48, 4, 30
    assert fig.shape[:2] == (gap + size + title + gap, 4 * (size + gap) + gap)
    for k, img in enumerate(shown):  # each image drawn pixel for pixel where the row puts it
        left, top = gap + k * (size + gap), gap + title
        assert np.abs(fig[top:top + size, left:left + size] - img).mean() < 2.0


def test_plot_samples_without_data_is_one_line(tmp_path, capsys):
    from deepfake_xai.cli import main

    assert main(["plot-samples", "--data-root", str(tmp_path), "--out-dir", str(tmp_path / "out")]) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and "make-dataset" in lines[0] and "plot-samples: error:" in lines[0]


def test_synthetic_dataset_from_a_face_folder(tmp_path):
    import cv2

    folder = tmp_path / "faces"
    folder.mkdir()
    rng = np.random.default_rng(1)
    for i in range(9):
        cv2.imwrite(str(folder / f"{i}.png"), draw_face(rng, 40)[0][..., ::-1])
    (folder / "notes.txt").write_text("not an image")
    logs = []
    root = generate_synthetic_dataset(tmp_path / "data", "mine", source=folder, face_box="center",
                                      **dict(TINY, log=logs.append))
    info = json.loads((root / "dataset.json").read_text())
    assert info["real_source"] == str(folder)
    assert any("notes.txt" in line for line in logs)
    assert len(list((root / "test" / "fake").glob("*.png"))) == 5
