"""Training helpers shared by both apps: seeding and mixed precision."""
from __future__ import annotations

import keras
import tensorflow as tf


def set_seed(seed: int | None) -> None:
    """Seed Python, NumPy and TensorFlow (keras.utils.set_random_seed); None leaves them alone."""
    if seed is not None:
        keras.utils.set_random_seed(int(seed))


def has_gpu() -> bool:
    """True when TensorFlow sees at least one GPU."""
    return bool(tf.config.list_physical_devices("GPU"))


def set_mixed_precision(enabled: bool) -> str:
    """Set the global Keras dtype policy and return its name.

    mixed_float16 on a GPU, mixed_bfloat16 elsewhere (CPU/TPU), float32 when disabled.
    Models built afterwards must keep their output layer in float32 (dtype="float32").
    """
    name = ("mixed_float16" if has_gpu() else "mixed_bfloat16") if enabled else "float32"
    keras.mixed_precision.set_global_policy(name)
    return name
