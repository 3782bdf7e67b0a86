"""Figures shared by the library and both apps, one module per role.

- `cams.viz.colors`: colour for maps as uint8 RGB arrays (`heatmap`, `overlay`); `to_uint8_rgb`
  (image -> uint8 RGB) lives in `cams.core.images` and is re-exported here.
- `cams.viz.figures`: saliency figures saved to disk (`save_grid`, `save_triplets`).
- `cams.viz.history`: training curves (`plot_history`).

All functions take numpy arrays; images may be float in [0, 1], float in [0, 255] or uint8,
grey (H, W) / (H, W, 1) or RGB (H, W, 3). Figures are written atomically (see `cams.core.files`).
Importing `cams.viz` (or any of its modules) selects matplotlib's headless Agg backend
(`cams.viz._backend`) before pyplot is loaded.
"""
from cams.viz import _backend  # noqa: F401  (first: Agg before pyplot)
from cams.core.images import to_uint8_rgb
from cams.viz.colors import heatmap, overlay
from cams.viz.figures import save_grid, save_triplets
from cams.viz.history import plot_history

__all__ = ["heatmap", "overlay", "plot_history", "save_grid", "save_triplets", "to_uint8_rgb"]
