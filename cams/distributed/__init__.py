"""Explaining folders of images: one process (`local`) and Apache Beam pipelines (`beam`, optional extra)."""
