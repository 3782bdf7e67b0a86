"""Import TensorFlow without its C++ start-up chatter (for command lines).

TensorFlow 2.21 writes oneDNN/CUDA notices to file descriptor 2 before its logging is set up,
ignoring TF_CPP_MIN_LOG_LEVEL. `import_tensorflow_quietly()` points fd 2 at /dev/null during
the import only; Python exceptions raised by the import still propagate normally.
"""
from __future__ import annotations

import os
import sys


def import_tensorflow_quietly() -> None:
    """Import tensorflow (and keras) once, hiding native start-up messages on stderr."""
    if "tensorflow" in sys.modules:
        return
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    sys.stderr.flush()
    saved = os.dup(2)
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 2)
        import keras  # noqa: F401  (imports tensorflow)
        import tensorflow  # noqa: F401
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)
