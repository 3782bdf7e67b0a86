"""TensorFlow op determinism on and off: the same seed gives the same training on a CPU.

`tf.config.experimental.enable_op_determinism()` makes every op deterministic (and refuses ops that
cannot be, such as unseeded random generators); TensorFlow's public API has no switch back, so the
off switch comes from the same module that implements the on switch. Training turns it on, and off
again when it is done, so explainers run later in the same process may still draw unseeded noise.
"""
from __future__ import annotations


def set_op_determinism(enabled: bool) -> None:
    """Turn TensorFlow op determinism on or off for this process."""
    from tensorflow.python.framework import config as tf_config

    if enabled:
        tf_config.enable_op_determinism()
    else:
        tf_config.disable_op_determinism()
