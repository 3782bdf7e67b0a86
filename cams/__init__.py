"""cams: class activation maps and faithfulness metrics for Keras 3 / TensorFlow classifiers."""
from . import files, training, viz

__version__ = "0.1.0"
