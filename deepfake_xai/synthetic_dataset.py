"""Generate the "synthetic dataset": real faces and GAN-simulated fakes at 1:1.

Layout written (the layout the trainer reads):

    <out>/<name>/{train,val,test}/{real,fake}/<id>.png
    <out>/<name>/autogan_generator.keras     the generator that made the fakes
    <out>/<name>/dataset.json                settings, counts, the generator's loss, PSNR/SSIM of the fakes

Faces (procedural, or from the user's folder) are drawn at `internal_size` (128 px by default, so the
generator trains in minutes on a CPU). The AutoGAN simulator (deepfake_xai.autogan; Zhang, Karaman &
Chang, WIFS 2019) is trained on the train split's faces with its discriminator and reconstruction
loss; a fake is the generator's output for a face that is not among the real images of its split.
Procedural faces are drawn without the camera's trace; real and fake images then go through the same
camera (faces.add_sensor_noise: Gaussian noise and a slight blur, the trace the planted set's faces
carry), the same resize to `image_size` and are stored losslessly (PNG), so what separates them is the
generator's work (its up-sampling trace, and what blur it leaves), not the noise or the file format.
dataset.json records the sharpness of each split's real and fake images (deepfake_xai.sharpness)
and the fakes' PSNR/SSIM against their source faces.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Callable

import cv2
import numpy as np

from cams.core.files import write_json

from .make_dataset import (DEFAULT_COUNTS, SPLITS, check_counts, check_destination, check_only_generated, split_sources, staged_folder,
                           write_manifest)

#: the simulator's defaults (make-dataset --generator-epochs, --generator-width, --upsampling, --generator-loss)
GENERATOR_EPOCHS, WIDTH, UPSAMPLING, GENERATOR_LOSS = 8, 16, "transpose", "gan"
#: --generator-loss: the AutoGAN paper's adversarial + L1 training, or the L1 reconstruction alone (blurred fakes)
GENERATOR_LOSSES = ("gan", "l1")


def resize_to(images: np.ndarray, size: int) -> np.ndarray:
    """Resize uint8 images (N, s, s, 3) to (N, size, size, 3): bilinear up, area down, none if equal."""
    if images.shape[1] == size:
        return images
    interp = cv2.INTER_LINEAR if size > images.shape[1] else cv2.INTER_AREA
    return np.stack([cv2.resize(im, (size, size), interpolation=interp) for im in images])


def fidelity(sources: np.ndarray, fakes: np.ndarray) -> dict[str, float]:
    """Mean PSNR (dB) and SSIM (Wang et al., 2004: 11x11 Gaussian window, sigma 1.5; TensorFlow's
    tf.image.psnr / tf.image.ssim over RGB) of uint8 fakes against the faces they reconstruct."""
    import tensorflow as tf

    s, f = tf.constant(sources), tf.constant(fakes)
    psnr = tf.image.psnr(s, f, max_val=255).numpy()
    ssim = tf.image.ssim(s, f, max_val=255).numpy()
    return {"psnr_db": float(np.mean(psnr)), "ssim": float(np.mean(ssim)), "images": int(len(psnr))}


def _draw(source: Callable, n: int) -> np.ndarray:
    return np.stack([source()[0] for _ in range(n)]) if n else np.zeros((0, 1, 1, 3), np.uint8)


def write_splits(folder: Path, generator, reals: dict[str, np.ndarray], bases: dict[str, np.ndarray],
                 image_size: int, log: Callable[[str], None] = print, seed: int = 0) -> tuple[dict, dict, dict]:
    """Write each split's real faces and the generator's fakes of `bases`, both through the same camera
    (faces.camera, seeded by `seed` and the split), as PNGs at image_size under folder/{split}/{real,fake}/
    -> (counts per split, PSNR/SSIM of the generator's outputs against their sources at its size,
    sharpness of the stored real and fake images (deepfake_xai.sharpness.compare))."""
    from .autogan import synthesize, to_float, to_uint8
    from .faces import camera
    from .sharpness import compare, describe

    summary, quality, sharp = {}, {}, {}
    for i, split in enumerate(SPLITS):
        fakes = to_uint8(synthesize(generator, to_float(bases[split])))
        quality[split] = fidelity(bases[split], fakes)
        rng = np.random.default_rng(seed * 7919 + 101 + i)
        stored = {"real": resize_to(camera(reals[split], rng), image_size),
                  "fake": resize_to(camera(fakes, rng), image_size)}
        for cls, imgs in stored.items():
            (folder / split / cls).mkdir(parents=True, exist_ok=True)
            for k, im in enumerate(imgs):
                cv2.imwrite(str(folder / split / cls / f"{k:05d}.png"), cv2.cvtColor(im, cv2.COLOR_RGB2BGR))
        sharp[split] = compare(stored["real"], stored["fake"]) if len(fakes) and len(reals[split]) else None
        summary[split] = {"real": len(reals[split]), "fake": len(fakes)}
        log(f"{split}: {summary[split]['real']} real, {summary[split]['fake']} fake; fakes vs their source "
            f"faces: PSNR {quality[split]['psnr_db']:.1f} dB, SSIM {quality[split]['ssim']:.3f}"
            + (f"; {describe(sharp[split])}" if sharp[split] else ""))
    return summary, quality, sharp


def generate_synthetic_dataset(
    out_root: str | os.PathLike = "data",
    name: str = "synthetic_dataset",
    image_size: int = 256,
    counts: dict[str, int] | None = None,
    seed: int = 0,
    source: str | os.PathLike | None = None,
    face_box: str = "haar",
    internal_size: int = 128,
    generator_epochs: int = GENERATOR_EPOCHS,
    width: int = WIDTH,
    upsampling: str = UPSAMPLING,
    overwrite: bool = False,
    progress: bool = True,
    log: Callable[[str], None] = print,
    generator_loss: str = GENERATOR_LOSS,
    restart: bool = False,
) -> Path:
    """Write the 1:1 real / AutoGAN-fake data set to `<out_root>/<name>`.

    Args:
        out_root: parent folder of the data set.
        name: data set folder name.
        image_size: side of the stored square images in pixels (at least 32).
        counts: images per split (default train 1200, val 200, test 200), half real, half fake.
        seed: one seed for the faces, the generator's initialisation and its training order.
        source, face_box: a folder of face photos and how faces are found in it ("haar": OpenCV's
            Haar cascade, "center": aligned crops); default: procedural faces.
        internal_size: side at which faces are drawn and the generator runs (multiple of 4).
        generator_epochs, width, upsampling: the simulator's training epochs, first-layer channels,
            and up-sampling ("transpose" or "nearest"); see deepfake_xai.autogan.
        overwrite: replace a data set this command generated there earlier (never a folder of the user's).
        progress: show the generator's training progress.
        log: where progress lines go.
        generator_loss: "gan" (the AutoGAN paper's discriminator + L1 reconstruction) or "l1" (the
            reconstruction alone, whose fakes are blurred: the ablation).
        restart: discard an interrupted generator training saved in `<out_root>/<name>.autogan-resume`
            and start it over (without it, the same command resumes it).

    Returns:
        The data set folder.
    """
    from .autogan import save_generator

    counts = dict(counts or DEFAULT_COUNTS)
    _check_settings(counts, image_size, generator_epochs, generator_loss)
    dest = Path(out_root) / name
    settings = synthetic_settings(image_size, counts, seed, source, face_box, internal_size, generator_epochs, width,
                                  upsampling, generator_loss)
    folder = check_destination(dest, overwrite, settings, {"--real-images": [source]})
    sources, origin = split_sources(internal_size, counts, seed, source, face_box, log, sensor_noise=False)
    reals, bases = _draw_reals_and_bases(sources, counts)
    backup = Path(out_root) / f"{name}.autogan-resume"
    generator, history = _train_simulator(reals["train"], bases["train"], internal_size, generator_epochs, width,
                                          upsampling, seed, progress, log, generator_loss, backup, restart)
    with staged_folder(dest, f"{name}.", lambda: check_only_generated(folder)) as tmp:
        summary, quality, sharp = write_splits(tmp, generator, reals, bases, image_size, log, seed)
        save_generator(generator, tmp)
        write_json(tmp / "dataset.json", {
            "generator": "deepfake_xai.synthetic_dataset (AutoGAN simulator, Zhang, Karaman & Chang, WIFS 2019)",
            "kind": "synthetic", "image_size": image_size, "internal_size": internal_size, "seed": seed,
            "real_source": origin, "counts": summary, "upsampling": upsampling, "width": width,
            "camera": "both classes: faces.add_sensor_noise (Gaussian noise, sd in [1, 4]; blur sigma side/300)",
            "generator_epochs": generator_epochs, "generator_training": _training_record(generator_loss),
            "generator_loss": history.get("g_loss", history.get("loss")), "generator_history": history,
            "fidelity_at_internal_size": quality, "sharpness": sharp,
            "layout": "{split}/{real,fake}/<id>.png; autogan_generator.keras = the generator of the fakes",
        })
        write_manifest(tmp, settings)
    return dest


def _training_record(generator_loss: str) -> dict:
    """How the simulator was trained, for dataset.json."""
    from .autogan import ADV_WEIGHT, BAND_SIGMA, BETA_1, LR, REC_WEIGHT

    if generator_loss == "l1":
        return {"loss": "L1 reconstruction only", "optimizer": f"Adam(lr={LR}, beta_1={BETA_1})",
                "generator": "decoder output alone"}
    return {"loss": "LSGAN adversarial (PatchGAN discriminator) + lambda * L1 reconstruction", "lambda": REC_WEIGHT,
            "adversarial_weight": ADV_WEIGHT, "optimizer": f"Adam(lr={LR}, beta_1={BETA_1}) for both networks",
            "generator": f"decoder output + fine band I - gaussian(sigma={BAND_SIGMA} px) * I"}


def synthetic_settings(image_size: int, counts: dict[str, int], seed: int, source, face_box: str, internal_size: int,
                       generator_epochs: int = GENERATOR_EPOCHS, width: int = WIDTH,
                       upsampling: str = UPSAMPLING, generator_loss: str = GENERATOR_LOSS) -> dict:
    """What a synthetic data set depends on (its manifest's settings; the demo reuses a set with the same)."""
    from .autogan import BAND_SIGMA

    return {"kind": "synthetic", "image_size": image_size, "counts": dict(counts), "seed": seed,
            "real_images": None if source is None else str(source), "face_box": face_box,
            "internal_size": internal_size, "generator_epochs": generator_epochs, "width": width,
            "upsampling": upsampling, "generator_loss": generator_loss,
            "band_sigma": BAND_SIGMA if generator_loss == "gan" else 0.0}


def _check_settings(counts: dict[str, int], image_size: int, generator_epochs: int,
                    generator_loss: str = GENERATOR_LOSS) -> None:
    """Refuse bad split counts, images under 32 px, fewer than one generator epoch and an unknown
    generator loss, in that order."""
    check_counts(counts)
    if image_size < 32:
        raise ValueError(f"--image-size must be at least 32, got {image_size}")
    if generator_epochs < 1:
        raise ValueError(f"--generator-epochs must be at least 1, got {generator_epochs}")
    if generator_loss not in GENERATOR_LOSSES:
        raise ValueError(f"unknown --generator-loss {generator_loss!r}: choose one of {', '.join(GENERATOR_LOSSES)}")


def _draw_reals_and_bases(sources: dict[str, Callable], counts: dict[str, int]
                          ) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """Per split, the real faces (half the count, rounded down) and then the faces the fakes reconstruct."""
    reals, bases = {}, {}
    for split in SPLITS:
        n_real = int(counts[split]) // 2
        reals[split] = _draw(sources[split], n_real)
        bases[split] = _draw(sources[split], int(counts[split]) - n_real)  # faces the fakes reconstruct
    return reals, bases


def _train_simulator(train_reals: np.ndarray, train_bases: np.ndarray, internal_size: int, epochs: int,
                     width: int, upsampling: str, seed: int, progress: bool, log: Callable[[str], None],
                     generator_loss: str = GENERATOR_LOSS, backup: Path | None = None, restart: bool = False):
    """Train the AutoGAN simulator on all the train split's faces -> (generator, loss history).

    An interrupted training is saved in `backup` after each epoch and resumed by the same call."""
    from .autogan import to_float, train_generator

    train_faces = to_float(np.concatenate([train_reals, train_bases]))
    how = "discriminator + L1" if generator_loss == "gan" else "L1 reconstruction only"
    log(f"training the AutoGAN simulator ({how}, {upsampling} up-sampling, {internal_size}x{internal_size}) on "
        f"{len(train_faces)} train faces for {epochs} epochs" + (f"; resumable from {backup}" if backup else ""))
    return train_generator(train_faces, epochs, width=width, upsampling=upsampling, seed=seed, progress=progress,
                           adversarial=generator_loss == "gan", backup_dir=backup, restart=restart, log=log)
