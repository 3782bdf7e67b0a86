"""Where and how a model runs: tf.distribute strategies by name, the mixed-precision policy per
device, and seeding (for the apps' training and L-CAM's)."""
from __future__ import annotations

import keras
import tensorflow as tf

STRATEGIES = ("default", "mirrored", "multiworker", "tpu")


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


def make_strategy(name: str = "default") -> tf.distribute.Strategy:
    """A tf.distribute strategy: build, compile and fit the model inside `strategy.scope()`.

    default: the current (single-device) strategy; mirrored: synchronous data parallelism over
    all GPUs, or over all logical CPU devices when there is no GPU; multiworker:
    MultiWorkerMirroredStrategy over the machines described by the TF_CONFIG environment variable
    (run the same command on every worker); tpu: TPUStrategy on the
    TPU runtime found by TPUClusterResolver (Colab, Cloud TPU). The batch size stays global.
    """
    if name == "default":
        return tf.distribute.get_strategy()
    if name == "mirrored":
        gpus = tf.config.list_logical_devices("GPU")
        devices = [d.name for d in (gpus or tf.config.list_logical_devices("CPU"))]
        return tf.distribute.MirroredStrategy(devices)
    if name == "multiworker":
        return tf.distribute.MultiWorkerMirroredStrategy()
    if name == "tpu":
        try:
            resolver = tf.distribute.cluster_resolver.TPUClusterResolver()
            tf.config.experimental_connect_to_cluster(resolver)
            tf.tpu.experimental.initialize_tpu_system(resolver)
        except (ValueError, RuntimeError, tf.errors.OpError) as err:
            raise ValueError(
                f"no TPU found ({type(err).__name__}: {err}); run on a TPU runtime "
                "(Colab: Runtime > Change runtime type > TPU) or use --strategy default or mirrored"
            ) from None
        return tf.distribute.TPUStrategy(resolver)
    raise ValueError(f"unknown strategy {name!r}: choose one of {', '.join(STRATEGIES)}")
