"""How sharp images are: variance of the Laplacian and the share of spectral energy at high frequencies.

For a grey image g (the ITU-R BT.601 luma of RGB, as cv2.cvtColor), two per-image statistics:

* variance of the Laplacian (Pech-Pacheco et al., ICPR 2000): Var[(K * g)] with the 4-neighbour
  kernel K = [[0, 1, 0], [1, -4, 1], [0, 1, 0]] (cv2.Laplacian, ksize=1, borders reflected), in
  (grey level)^2; a blurred image has a small one;
* high-frequency share: with G = F{g - mean(g)} (DFT) and frequencies (u, v) in cycles per pixel,
  the share of the spectral amplitude beyond a quarter of the sampling frequency along either axis,
  sum |G| over max(|u|, |v|) > f_c divided by sum |G| over all (u, v) != 0, f_c = 1/4 (half the
  Nyquist frequency); `power=True` gives the same share of the energy |G|^2, which weighs the few
  strong low frequencies of a face far more.

A set of images is summarised by the median of each statistic; `compare` gives fake / real ratios.
"""
from __future__ import annotations

import os
from pathlib import Path

import cv2
import numpy as np

#: the cut-off of the high-frequency share, in cycles per pixel (a quarter of the sampling frequency)
CUTOFF = 0.25


def grey(images: np.ndarray) -> np.ndarray:
    """(N, H, W, 3) RGB or (N, H, W) images -> (N, H, W) float64 luma in the images' own scale."""
    x = np.asarray(images)
    if x.ndim == 4 and x.shape[-1] == 3:
        return np.stack([cv2.cvtColor(np.asarray(im, np.float32), cv2.COLOR_RGB2GRAY) for im in x]).astype(np.float64)
    if x.ndim == 3:
        return x.astype(np.float64)
    raise ValueError(f"expected images (N, H, W) or (N, H, W, 3), got shape {x.shape}")


def laplacian_variance(images: np.ndarray) -> np.ndarray:
    """Variance of the 4-neighbour Laplacian of each image (see the module docstring) -> (N,) float64.

    Args:
        images: (N, H, W[, 3]) images; uint8 images give the usual (grey level)^2 figures.
    """
    g = grey(images)
    return np.array([cv2.Laplacian(im, cv2.CV_64F, ksize=1).var() for im in g])


def high_frequency_share(images: np.ndarray, cutoff: float = CUTOFF, power: bool = False) -> np.ndarray:
    """Share of each image's spectral amplitude (energy with `power`) beyond `cutoff` cycles per pixel
    along either axis (module docstring) -> (N,) float64 in [0, 1].

    Args:
        images: (N, H, W[, 3]) images.
        cutoff: the frequency, in cycles per pixel (0 < cutoff < 0.5).
        power: weigh the frequencies by |G|^2 instead of |G|.
    """
    g = grey(images)
    g = g - g.mean(axis=(1, 2), keepdims=True)
    mag = np.abs(np.fft.fft2(g)) ** (2 if power else 1)
    u = np.abs(np.fft.fftfreq(g.shape[1]))[:, None]
    v = np.abs(np.fft.fftfreq(g.shape[2]))[None, :]
    r = np.maximum(u, v)
    total = mag[:, r > 0].sum(axis=1)
    return np.where(total > 0, mag[:, r > cutoff].sum(axis=1) / np.maximum(total, 1e-300), 0.0)


def sharpness(images: np.ndarray) -> dict[str, float]:
    """Median Laplacian variance and median high-frequency shares (amplitude, power) of a set of images.

    Returns:
        {"laplacian_variance", "high_frequency_share", "high_frequency_power_share": medians, "images": N}.
    """
    return {"laplacian_variance": float(np.median(laplacian_variance(images))),
            "high_frequency_share": float(np.median(high_frequency_share(images))),
            "high_frequency_power_share": float(np.median(high_frequency_share(images, power=True))),
            "images": int(len(images))}


def compare(real: np.ndarray, fake: np.ndarray) -> dict:
    """Sharpness of the real and the fake images and the fake / real ratio of each median.

    Returns:
        {"real": sharpness(real), "fake": sharpness(fake), "laplacian_variance_ratio": fake / real,
        "high_frequency_share_ratio": fake / real}.
    """
    r, f = sharpness(real), sharpness(fake)
    return {"real": r, "fake": f,
            "laplacian_variance_ratio": f["laplacian_variance"] / max(r["laplacian_variance"], 1e-12),
            "high_frequency_share_ratio": f["high_frequency_share"] / max(r["high_frequency_share"], 1e-12)}


def split_sharpness(dataset: str | os.PathLike, split: str = "test") -> dict:
    """`compare` on the real and fake images of one split of a data set folder ({split}/{real,fake}/*)."""
    from .data import list_split
    from .spectrum import read_images

    files = list_split(Path(dataset), split)
    paths = {c: [p for p, y in zip(files.paths, files.labels) if y == k] for k, c in enumerate(("real", "fake"))}
    if not paths["real"] or not paths["fake"]:
        raise ValueError(f"{Path(dataset) / split} needs both real and fake images to compare their sharpness")
    return compare(read_images(paths["real"]), read_images(paths["fake"]))


def describe(result: dict) -> str:
    """One line: the medians of real and fake and their ratios."""
    r, f = result["real"], result["fake"]
    return (f"sharpness (median) real vs fake: Laplacian variance {r['laplacian_variance']:.0f} vs "
            f"{f['laplacian_variance']:.0f} (x{result['laplacian_variance_ratio']:.2f}), high-frequency share "
            f"{r['high_frequency_share']:.3f} vs {f['high_frequency_share']:.3f} "
            f"(x{result['high_frequency_share_ratio']:.2f})")
