"""Keras callbacks that explain a model while it trains.

- `ExplainEpoch`: at the end of every `every`-th epoch, explain the same fixed images with the chosen
  methods; write the grid (image | one overlay per method) as a TensorBoard image summary and/or a
  PNG per epoch, and at the end an animated GIF of the maps across epochs.
- `cams.callbacks.grid`: the grid and the animation (numpy, OpenCV and Pillow).
"""
from cams.callbacks.explain_epoch import ExplainEpoch

__all__ = ["ExplainEpoch"]
