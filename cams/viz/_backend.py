"""Headless matplotlib for cams.viz: selects the Agg backend before pyplot is first imported.

`cams.viz` imports this module first; the submodules that draw take `plt` from here, so the
backend is set whichever of them is imported first.
"""
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

__all__ = ["plt"]
