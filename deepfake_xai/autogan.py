"""AutoGAN simulator: a GAN generator's up-sampling fingerprint, trained with a discriminator as in the paper.

Zhang, Karaman & Chang, "Detecting and Simulating Artifacts in GAN Fake Images", WIFS 2019: a GAN
generator's up-sampling (transposed convolution, or nearest/bilinear up-sampling + convolution)
leaves periodic peaks in the image spectrum. Up-sampling by 2 copies the spectrum X(u, v) of the
low-resolution feature map to X(u mod N/2, v mod N/2), so replicas appear at the half and quarter
Nyquist frequencies unless the following convolutions cancel them exactly, which a learned
generator never does. AutoGAN reproduces this without a target GAN: CycleGAN's generator and
PatchGAN discriminator, with the cycle replaced by a reconstruction, trained on real images I:

    L_G = L_adv(G) + lambda * ||G(I) - I||_1,   L_adv(G) = E[(D(G(I)) - 1)^2]
    L_D = 1/2 (E[(D(I) - 1)^2] + E[D(G(I))^2])

(least-squares GAN loss and lambda = 10, CycleGAN's defaults, on images scaled to [-1, 1]; Adam with
beta_1 = 0.5, CycleGAN's, and a learning rate of 1e-3 instead of its 2e-4, as the simulator trains for
a few epochs on a CPU instead of CycleGAN's 200). The discriminator pushes the
reconstructions towards the real images' sharpness (an L1 loss alone blurs them) and the decoder's
up-sampling leaves its trace. `adversarial=False` trains the generator without the fine band (below)
with the L1 term alone: the reconstructions are then blurred, the ablation that shows what blur alone
gives a detector.

Here the generator is: encoder Conv(3x3, w) -> Conv(4x4, stride 2, 2w) -> Conv(4x4, stride 2, 4w);
decoder two x2 up-samplings (Conv2DTranspose(4x4, stride 2) or UpSampling2D(nearest) + Conv(3x3))
and a Conv(3x3) to RGB with a sigmoid (images in [0, 1]); to that decoder output D(E(I)) it adds the
finest band of a Laplacian pyramid of its input (Burt & Adelson, IEEE Trans. Commun. 1983):

    G(I) = D(E(I)) + (I - g_sigma * I),   g_sigma a fixed Gaussian, sigma = 1.5 px (BAND_SIGMA)

Why: CycleGAN's generator (and AutoGAN's) reaches the real images' sharpness after 200 epochs on a GPU;
in the few CPU epochs here the decoder's output stays blurred (median Laplacian variance of the fakes
0.2-0.4x the real faces' at 128 px), so a detector would see blur rather than the up-sampling trace.
With the fine band passed through, the decoder only has to reconstruct the coarse image g_sigma * I,
which it does in a few epochs, and every pixel of the fake still goes through its two up-samplings,
whose periodic trace (the replicas at multiples of N/4) is what remains to tell the fakes apart. A
plain residual G(I) = I + D(E(I)) is not used: it learns the identity within a few epochs (fakes equal
to their sources, no trace left), and a smaller lambda (1-3) sharpens only by adding checkerboard noise
to faces that are no longer recognisable (SSIM 0.19-0.38); lambda stays CycleGAN's 10. Measured on
600 faces at 128 px, 8 epochs: without the band the fakes' Laplacian variance is 0.36x the real
faces' (PSNR 19.7 dB), with it 1.16x (PSNR 26.3 dB), the spectrum's replica peaks kept.
band_sigma=0 gives the decoder's output alone. The discriminator is CycleGAN's n-layer PatchGAN
(Isola et al., CVPR 2017): Conv(4x4, stride 2) blocks with instance normalisation and LeakyReLU(0.2),
then two Conv(4x4, stride 1), one score per overlapping patch.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Callable

import numpy as np

UPSAMPLINGS = ("transpose", "nearest")
#: the loss weights (CycleGAN's defaults, which AutoGAN's code keeps): lambda of the L1 term, of L_adv
REC_WEIGHT, ADV_WEIGHT = 10.0, 1.0
#: Adam's learning rate and beta_1 for both networks (CycleGAN: 2e-4 over 200 epochs; here a few epochs)
LR, BETA_1 = 1e-3, 0.5
#: sigma (pixels) of the Gaussian that splits off the fine band the generator passes through
BAND_SIGMA = 1.5


def build_generator(size: int = 128, width: int = 16, upsampling: str = "transpose", band_sigma: float = BAND_SIGMA):
    """The AutoGAN generator: (size, size, 3) in [0, 1] -> the same shape in [0, 1].

    Args:
        size: image side (a multiple of 4).
        width: channels of the first convolution (2x and 4x in the down-sampled stages).
        upsampling: "transpose" (Conv2DTranspose 4x4, stride 2) or "nearest" (UpSampling2D + Conv 3x3).
        band_sigma: sigma (pixels) of the fixed Gaussian whose residual, the finest band I - g * I, is
            added to the decoder's output (module docstring); 0: the decoder's output alone.
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
    if band_sigma > 0:
        outputs = layers.Add(name="with_fine_band", dtype="float32")([outputs, _fine_band(inputs, band_sigma)])
    return keras.Model(inputs, outputs, name="autogan_generator")


def _fine_band(inputs, sigma: float):
    """I - g_sigma * I: the finest band of a Laplacian pyramid (Burt & Adelson, 1983), with a fixed
    (non-trainable) depthwise Gaussian of `sigma` pixels, radius ceil(3 sigma), zero padding."""
    from keras import layers

    r = int(np.ceil(3 * sigma))
    g = np.exp(-np.arange(-r, r + 1) ** 2 / (2 * sigma ** 2))
    kernel = (np.outer(g, g) / g.sum() ** 2)[:, :, None, None] * np.ones((1, 1, 3, 1))
    blur = layers.DepthwiseConv2D(2 * r + 1, padding="same", use_bias=False, trainable=False, name="band_blur",
                                  dtype="float32")
    low = blur(inputs)
    blur.set_weights([kernel.astype(np.float32)])
    return layers.Subtract(name="fine_band")([inputs, low])


def build_discriminator(size: int = 128, width: int = 16, n_layers: int = 3):
    """CycleGAN's PatchGAN discriminator: (size, size, 3) in [0, 1] -> one real/fake score per patch.

    Args:
        size: image side.
        width: channels of the first convolution (doubled at each further stride-2 block, at most 8x).
        n_layers: stride-2 blocks (3: CycleGAN's 70 x 70 patches).
    Returns:
        An uncompiled keras.Model named "autogan_discriminator" with linear scores (LSGAN).
    """
    import keras
    from keras import layers

    inputs = keras.Input((size, size, 3), name="image")
    x = layers.Rescaling(2.0, -1.0, name="to_pm1")(inputs)  # [0, 1] -> [-1, 1], as CycleGAN's images
    x = layers.LeakyReLU(0.2)(layers.Conv2D(width, 4, strides=2, padding="same", name="d0")(x))
    for i in range(1, n_layers + 1):
        x = layers.Conv2D(width * min(2 ** i, 8), 4, strides=2 if i < n_layers else 1, padding="same", use_bias=False,
                          name=f"d{i}")(x)
        x = layers.LeakyReLU(0.2)(layers.GroupNormalization(groups=-1, name=f"d{i}_instance_norm")(x))
    outputs = layers.Conv2D(1, 4, padding="same", name="patch_scores", dtype="float32")(x)
    return keras.Model(inputs, outputs, name="autogan_discriminator")


def _gan_class():
    """The keras.Model subclass that trains generator and discriminator with `fit` (defined lazily,
    so importing this module does not import Keras)."""
    import keras
    import tensorflow as tf

    class AutoGAN(keras.Model):
        """Alternating LSGAN steps (module docstring) in `train_step`; `fit(images)` trains both networks."""

        def __init__(self, generator, discriminator, rec_weight: float = REC_WEIGHT, adv_weight: float = ADV_WEIGHT,
                     **kwargs):
            super().__init__(**kwargs)
            self.generator, self.discriminator = generator, discriminator
            self.rec_weight, self.adv_weight = float(rec_weight), float(adv_weight)
            self.trackers = {k: keras.metrics.Mean(name=k) for k in ("g_loss", "d_loss", "rec_l1", "g_adv")}
            self.built = True  # both networks are built functional models: the weights can be saved and loaded

        def compile(self, g_optimizer, d_optimizer):
            super().compile()
            self.g_optimizer, self.d_optimizer = g_optimizer, d_optimizer
            # built now, so a backup's optimizer states load into them before the first step (Keras'
            # unused default optimizer too, so its saved and rebuilt variables match)
            g_optimizer.build(self.generator.trainable_variables)
            d_optimizer.build(self.discriminator.trainable_variables)
            self.optimizer.build(self.trainable_variables)

        @property
        def metrics(self):
            return list(self.trackers.values())

        def call(self, images, training=False):
            return self.generator(images, training=training)

        def train_step(self, data):
            real = data[0] if isinstance(data, tuple) else data
            with tf.GradientTape() as tape:
                fake = self.generator(real, training=True)
                rec = 2.0 * tf.reduce_mean(tf.abs(fake - real))  # L1 on the [-1, 1] scale
                g_adv = tf.reduce_mean(tf.square(self.discriminator(fake, training=True) - 1.0))
                g_loss = self.adv_weight * g_adv + self.rec_weight * rec
            grads = tape.gradient(g_loss, self.generator.trainable_variables)
            self.g_optimizer.apply_gradients(zip(grads, self.generator.trainable_variables))
            with tf.GradientTape() as tape:
                d_real = self.discriminator(real, training=True)
                d_fake = self.discriminator(tf.stop_gradient(fake), training=True)
                d_loss = 0.5 * (tf.reduce_mean(tf.square(d_real - 1.0)) + tf.reduce_mean(tf.square(d_fake)))
            grads = tape.gradient(d_loss, self.discriminator.trainable_variables)
            self.d_optimizer.apply_gradients(zip(grads, self.discriminator.trainable_variables))
            for key, value in (("g_loss", g_loss), ("d_loss", d_loss), ("rec_l1", rec), ("g_adv", g_adv)):
                self.trackers[key].update_state(value)
            return {k: t.result() for k, t in self.trackers.items()}

    return AutoGAN


def train_generator(images: np.ndarray, epochs: int = 4, batch_size: int = 16, lr: float = LR,
                    width: int = 16, upsampling: str = "transpose", seed: int = 0, progress: bool = True,
                    adversarial: bool = True, rec_weight: float = REC_WEIGHT, backup_dir=None, restart: bool = False,
                    log: Callable[[str], None] | None = print):
    """Train the simulator on `images` (N, S, S, 3) float32 in [0, 1] -> (generator, history dict).

    With `adversarial` (the AutoGAN paper's training) generator and PatchGAN discriminator are trained
    with the losses of the module docstring; without, the generator alone with the L1 term. Seeded
    (keras.utils.set_random_seed + TensorFlow op determinism): the same images and seed give the same
    weights on a CPU. Keras' progress bar shows the training when `progress`.

    Args:
        images: the real images.
        epochs, batch_size, lr: training length, batch and Adam's learning rate (beta_1 0.5).
        width, upsampling: the generator's (and the discriminator's first) channels; its up-sampling.
        seed: the initialisation and batch order.
        progress: show Keras' progress bar.
        adversarial: train with the discriminator and the fine band (default) or the L1 reconstruction
            of the decoder alone (no fine band: the blurred ablation).
        rec_weight: lambda, the weight of the L1 term next to the adversarial one.
        backup_dir: folder where an interrupted training is saved each epoch and resumed from
            (cams.training.resume); None: not resumable.
        restart: discard a saved training in backup_dir and start over.
        log: where the resume messages go.
    Returns:
        The trained generator and {metric: [value per epoch]} (g_loss, d_loss, rec_l1, g_adv; or loss).
    """
    import keras

    from .determinism import set_op_determinism

    if images.ndim != 4 or images.shape[-1] != 3 or images.shape[1] != images.shape[2]:
        raise ValueError(f"expected square RGB images (N, S, S, 3), got {images.shape}")
    keras.utils.set_random_seed(int(seed))
    set_op_determinism(True)
    try:
        model, generator = _compiled(images.shape[1], width, upsampling, lr, adversarial, rec_weight)
        callbacks, state = [], None
        if backup_dir is not None:
            from cams.training.resume import resumable

            fingerprint = {"images": list(images.shape), "checksum": float(np.asarray(images, np.float64).sum()),
                           "epochs": epochs, "batch_size": batch_size, "lr": lr, "width": width,
                           "upsampling": upsampling, "seed": seed, "adversarial": adversarial,
                           "rec_weight": rec_weight, "band_sigma": BAND_SIGMA if adversarial else 0.0}
            callbacks, state = resumable(backup_dir, epochs, fingerprint=fingerprint, log=log, restart=restart,
                                         hint="move it away or choose another --name")
        hist = model.fit(images, None if adversarial else images, batch_size=batch_size, epochs=epochs, shuffle=True,
                         verbose=1 if progress else 0, callbacks=callbacks)
    finally:  # later unseeded random ops in this process (e.g. explainers' noise) are refused under it
        set_op_determinism(False)
    history = state.history if state is not None else hist.history
    return generator, {k: [float(v) for v in vs] for k, vs in history.items()}


def _compiled(size: int, width: int, upsampling: str, lr: float, adversarial: bool, rec_weight: float):
    """(the compiled model fit trains, the generator inside it)."""
    import keras

    generator = build_generator(size, width, upsampling, BAND_SIGMA if adversarial else 0.0)
    if not adversarial:
        generator.compile(optimizer=keras.optimizers.Adam(lr, beta_1=BETA_1), loss="mean_absolute_error")
        return generator, generator
    gan = _gan_class()(generator, build_discriminator(size, width), rec_weight=rec_weight, name="autogan")
    gan.compile(keras.optimizers.Adam(lr, beta_1=BETA_1), keras.optimizers.Adam(lr, beta_1=BETA_1))
    return gan, generator


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
