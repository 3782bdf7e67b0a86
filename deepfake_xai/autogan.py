"""AutoGAN-style GAN simulator: the up-sampling fingerprint of GAN generators, trained in minutes on a CPU.

Zhang, Karaman & Chang, "Detecting and Simulating Artifacts in GAN Fake Images", WIFS 2019: a GAN
generator's up-sampling (transposed convolution, or nearest/bilinear up-sampling + convolution)
leaves periodic peaks in the image spectrum. Up-sampling by 2 copies the spectrum X(u, v) of the
low-resolution feature map to X(u mod N/2, v mod N/2), so replicas appear at the half and quarter
Nyquist frequencies unless the following convolutions cancel them exactly, which a learned
generator never does. AutoGAN reproduces this without a GAN: an encoder plus a GAN-style decoder,
trained only to reconstruct the real images (L1 loss), outputs images that look like their
source to a person but carry the decoder's spectral fingerprint.

Here: encoder Conv(3x3, w) -> Conv(4x4, stride 2, 2w) -> Conv(4x4, stride 2, 4w); decoder two
x2 up-samplings (Conv2DTranspose(4x4, stride 2) or UpSampling2D(nearest) + Conv(3x3)) and a
Conv(3x3) to RGB with a sigmoid. Images in [0, 1].
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np

UPSAMPLINGS = ("transpose", "nearest")


def build_generator(size: int = 128, width: int = 16, upsampling: str = "transpose"):
    """The AutoGAN simulator: (size, size, 3) in [0, 1] -> the same shape in [0, 1].

    Args:
        size: image side (a multiple of 4).
        width: channels of the first convolution (2x and 4x in the down-sampled stages).
        upsampling: "transpose" (Conv2DTranspose 4x4, stride 2) or "nearest" (UpSampling2D + Conv 3x3).
    Returns:
        An uncompiled keras.Model named "autogan_generator".
    """
    import keras
    from keras import layers

    if upsampling not in UPSAMPLINGS:
        raise ValueError(f"unknown --upsampling {upsampling!r}: choose one of {', '.join(UPSAMPLINGS)}")
    if size < 16 or size % 4:
        raise ValueError(f"the generator's image side must be a multiple of 4 and at least 16, got {size}")
    inputs = keras.Input((size, size, 3), name="image")
    x = layers.Conv2D(width, 3, padding="same", activation="relu", name="enc1")(inputs)
    x = layers.Conv2D(2 * width, 4, strides=2, padding="same", activation="relu", name="enc2")(x)
    x = layers.Conv2D(4 * width, 4, strides=2, padding="same", activation="relu", name="enc3")(x)
    for i, filters in enumerate((2 * width, width), start=1):
        if upsampling == "transpose":
            x = layers.Conv2DTranspose(filters, 4, strides=2, padding="same", activation="relu", name=f"up{i}")(x)
        else:
            x = layers.UpSampling2D(2, interpolation="nearest", name=f"up{i}")(x)
            x = layers.Conv2D(filters, 3, padding="same", activation="relu", name=f"up{i}_conv")(x)
    outputs = layers.Conv2D(3, 3, padding="same", activation="sigmoid", name="to_rgb", dtype="float32")(x)
    return keras.Model(inputs, outputs, name="autogan_generator")


def train_generator(images: np.ndarray, epochs: int = 4, batch_size: int = 16, lr: float = 2e-3,
                    width: int = 16, upsampling: str = "transpose", seed: int = 0, progress: bool = True):
    """Train the simulator to reconstruct `images` (N, S, S, 3) float32 in [0, 1] with an L1 loss.

    Seeded (keras.utils.set_random_seed + TensorFlow op determinism), so the same images and seed give
    the same weights on a CPU. Keras' progress bar shows the training when `progress`.
    Returns (model, history dict).
    """
    import keras

    from .determinism import set_op_determinism

    if images.ndim != 4 or images.shape[-1] != 3 or images.shape[1] != images.shape[2]:
        raise ValueError(f"expected square RGB images (N, S, S, 3), got {images.shape}")
    keras.utils.set_random_seed(int(seed))
    set_op_determinism(True)
    model = build_generator(images.shape[1], width, upsampling)
    model.compile(optimizer=keras.optimizers.Adam(lr), loss="mean_absolute_error")
    try:
        hist = model.fit(images, images, batch_size=batch_size, epochs=epochs, shuffle=True,
                         verbose=1 if progress else 0)
    finally:  # later unseeded random ops in this process (e.g. explainers' noise) are refused under it
        set_op_determinism(False)
    return model, {k: [float(v) for v in vs] for k, vs in hist.history.items()}


def synthesize(model, images: np.ndarray, batch_size: int = 32) -> np.ndarray:
    """The generator's reconstructions of `images` (float [0, 1]) as float32 in [0, 1]."""
    out = model.predict(np.asarray(images, np.float32), batch_size=batch_size, verbose=0)
    return np.clip(out, 0.0, 1.0).astype(np.float32)


def save_generator(model, folder: str | os.PathLike) -> Path:
    """Write the generator as `<folder>/autogan_generator.keras` (atomically) and return the path."""
    from cams.core.files import atomic_path

    path = Path(folder) / "autogan_generator.keras"
    with atomic_path(path, suffix=".keras") as tmp:
        model.save(tmp)
    return path


def load_generator(path: str | os.PathLike):
    """Load a generator saved by `save_generator`."""
    from cams.core.model_io import load_keras_model

    return load_keras_model(path, "build it with `deepfake-xai make-dataset --kind synthetic`")


def to_float(images: np.ndarray) -> np.ndarray:
    """uint8 RGB -> float32 in [0, 1]."""
    return np.asarray(images, np.float32) / 255.0


def to_uint8(images: np.ndarray) -> np.ndarray:
    """float in [0, 1] -> uint8 RGB (rounded)."""
    return np.clip(np.rint(np.asarray(images) * 255.0), 0, 255).astype(np.uint8)


