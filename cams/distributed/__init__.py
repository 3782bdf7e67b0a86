"""Explaining folders of images: one process (`local`) and Apache Beam pipelines (`beam`, optional extra).

`read_maps(out)` reads an explain-folder output folder back: (image file, {predicted, probability,
method: float32 map}) per image, whatever encoding (`--maps-dtype`) the run used.
"""
from cams.distributed.maps import read_maps

__all__ = ["read_maps"]
