"""Mean log-magnitude Fourier spectra of real and fake images: the GAN fingerprint made visible.

For a grey image g (N x N), S(u, v) = log(|F{g - mean(g)}(u, v)| + eps), centred with fftshift; the
figure shows the mean of S over the real test images, over the fake ones, and fake - real
(Durall, Keuper & Keuper, CVPR 2020; Zhang, Karaman & Chang, WIFS 2019: up-sampling in a GAN
generator leaves peaks at fractions of the sampling frequency and changes the high-frequency decay).
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Callable, Sequence

import cv2
import numpy as np

from cams.core.files import save_figure, write_json
from cams.core.outputs import OutputFolder, check_apart

EPS = 1e-6


def log_spectrum(images: np.ndarray) -> np.ndarray:
    """Mean centred log-magnitude spectrum of (N, H, W[, 3]) images -> (H, W) float64.

    Args:
        images: uint8 or float images; colour is averaged to grey first and each image's mean removed.
    """
    x = np.asarray(images, np.float64)
    if x.ndim == 4:
        x = x.mean(axis=-1)
    if x.ndim != 3 or len(x) == 0:
        raise ValueError(f"expected a non-empty stack of images (N, H, W[, C]), got shape {np.shape(images)}")
    x = x - x.mean(axis=(1, 2), keepdims=True)
    f = np.fft.fftshift(np.fft.fft2(x), axes=(1, 2))
    return np.log(np.abs(f) + EPS).mean(axis=0)


def high_frequency_share(spectrum: np.ndarray, radius: float = 0.5) -> float:
    """Mean log-magnitude outside `radius` x the Nyquist radius minus inside it (higher = more fine detail)."""
    h, w = spectrum.shape
    yy, xx = np.mgrid[0:h, 0:w]
    r = np.hypot((yy - h // 2) / (h / 2), (xx - w // 2) / (w / 2))
    return float(spectrum[r >= radius].mean() - spectrum[r < radius].mean())


def peak_contrast(spectrum: np.ndarray, factor: int = 4) -> float:
    """How much a centred spectrum (or a difference of spectra) stands out at the up-sampling replica
    frequencies: the mean, over the frequencies (a N/factor, b N/factor) other than the DC term (all
    integers a, b; for two x2 up-samplings factor = 4, the replicas of Zhang et al., WIFS 2019), of
    the value there minus the mean of its 8 neighbours (indices wrap around).

    Args:
        spectrum: (N, N) centred (fftshift) log spectrum or difference of two; N a multiple of factor.
        factor: the total up-sampling factor of the generator.
    Returns:
        The mean contrast (> 0: peaks at the replica frequencies).
    """
    h, w = spectrum.shape
    neighbours = sum(np.roll(spectrum, (dy, dx), axis=(0, 1)) for dy in (-1, 0, 1) for dx in (-1, 0, 1)
                     if dy or dx) / 8.0
    contrast = spectrum - neighbours
    ys = (h // 2 + np.arange(-factor, factor + 1) * (h // factor)) % h
    xs = (w // 2 + np.arange(-factor, factor + 1) * (w // factor)) % w
    points = {(int(y), int(x)) for y in ys for x in xs} - {(h // 2, w // 2)}
    return float(np.mean([contrast[p] for p in points]))


def read_images(paths: Sequence[str | os.PathLike]) -> np.ndarray:
    """Read image files as one uint8 RGB stack, all at the first image's size."""
    from .faces import read_rgb

    images = []
    for p in paths:
        im = read_rgb(p)
        if im is None:
            raise ValueError(f"{p}: cannot be decoded as an image; remove it or replace it")
        images.append(im)
    h, w = images[0].shape[:2]  # one size for the spectrum: others are resized to the first one's
    return np.stack([im if im.shape[:2] == (h, w) else cv2.resize(im, (w, h), interpolation=cv2.INTER_AREA)
                     for im in images])


def spectrum_figure(real: np.ndarray, fake: np.ndarray, path: str | os.PathLike, title: str = "") -> Path:
    """Save real | fake | fake - real mean log spectra side by side."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    diff = fake - real
    lim = float(np.abs(diff).max()) or 1.0
    fig, axes = plt.subplots(1, 3, figsize=(12, 4.2))
    both = np.concatenate([real.ravel(), fake.ravel()])  # the removed mean leaves a -inf-like DC bin
    lo, hi = float(np.percentile(both, 0.5)), float(both.max())
    for ax, img, name, kw in ((axes[0], real, "real: mean log|F|", dict(cmap="viridis", vmin=lo, vmax=hi)),
                              (axes[1], fake, "fake: mean log|F|", dict(cmap="viridis", vmin=lo, vmax=hi)),
                              (axes[2], diff, "fake - real", dict(cmap="coolwarm", vmin=-lim, vmax=lim))):
        im = ax.imshow(img, **kw)
        ax.set_title(name)
        ax.axis("off")
        fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    out = save_figure(fig, path)
    plt.close(fig)
    return out


def outputs_of(name: str, split: str) -> list[str]:
    """The files `spectrum` writes under --out-dir for data set `name` and `split`."""
    return [f"figures/{name}_{split}_spectrum.png", f"{name}_{split}_spectrum.json"]


def spectrum_outputs(out_dir: str | os.PathLike, root: Path, split: str) -> OutputFolder:
    """The checked --out-dir of `spectrum`, before any work: apart from the data set `root`, and no
    file of another origin where its figure or JSON goes.

    Args:
        out_dir: the --out-dir folder.
        root: the data set folder (it need not exist yet).
        split: the split analysed.

    Returns:
        The OutputFolder (cams.core.outputs) to record the files in.
    """
    check_apart(out_dir, {"--dataset": [root]}, "--out-dir")
    folder = OutputFolder(out_dir, "spectrum", "deepfake-xai spectrum", {"dataset": str(root), "split": split},
                          option="--out-dir")
    folder.claim(outputs_of(root.name, split))
    return folder


def spectrum_analysis(dataset: str | os.PathLike, data_root: str | os.PathLike = "data", split: str = "test",
                      out_dir: str | os.PathLike = "out", limit: int | None = None,
                      log: Callable[[str], None] = print) -> dict:
    """Mean spectra of the real and fake images of one split: figure and JSON under out_dir.

    Writes `<out_dir>/figures/<name>_<split>_spectrum.png` and `<out_dir>/<name>_<split>_spectrum.json`
    (high-frequency statistic of each class, mean |fake - real| and, as a yardstick, the same between
    two halves of the real images). Only files this command wrote earlier are replaced (its run
    manifest in `out_dir`); `out_dir` never overlaps the data set. Returns the JSON dict.
    """
    from .data import list_split, resolve_dataset

    root = resolve_dataset(dataset, data_root)
    name = root.name
    outputs = spectrum_outputs(out_dir, root, split)
    files = list_split(root, split)
    paths = {c: [p for p, y in zip(files.paths, files.labels) if y == k] for k, c in enumerate(("real", "fake"))}
    if not paths["real"] or not paths["fake"]:
        raise ValueError(f"{root / split} needs both real and fake images for a spectrum comparison")
    if limit:
        paths = {c: ps[:limit] for c, ps in paths.items()}
    real_imgs, fake_imgs = read_images(paths["real"]), read_images(paths["fake"])
    real, fake = log_spectrum(real_imgs), log_spectrum(fake_imgs)
    half = len(real_imgs) // 2
    baseline = (float(np.abs(log_spectrum(real_imgs[:half]) - log_spectrum(real_imgs[half:])).mean())
                if half else float("nan"))
    outputs.record(*outputs_of(name, split))
    fig = spectrum_figure(real, fake, Path(out_dir) / "figures" / f"{name}_{split}_spectrum.png",
                          f"{name} {split}: {len(real_imgs)} real, {len(fake_imgs)} fake")
    result = {"dataset": str(root), "split": split, "real": len(real_imgs), "fake": len(fake_imgs),
              "mean_abs_diff_fake_vs_real": float(np.abs(fake - real).mean()),
              "mean_abs_diff_real_half_vs_half": baseline,
              "high_frequency_real": high_frequency_share(real), "high_frequency_fake": high_frequency_share(fake),
              "upsampling_peak_contrast_fake_vs_real": peak_contrast(fake - real),
              "upsampling_peak_contrast_real_half_vs_half": (peak_contrast(
                  log_spectrum(real_imgs[:half]) - log_spectrum(real_imgs[half:])) if half else float("nan")),
              "figure": str(fig)}
    write_json(Path(out_dir) / f"{name}_{split}_spectrum.json", result)
    log(f"mean |log spectrum fake - real| {result['mean_abs_diff_fake_vs_real']:.3f} (real half vs half "
        f"{baseline:.3f}); peaks at the x4 up-sampling replicas, fake - real "
        f"{result['upsampling_peak_contrast_fake_vs_real']:.3f} (real half vs half "
        f"{result['upsampling_peak_contrast_real_half_vs_half']:.3f}); wrote {fig}")
    return result
