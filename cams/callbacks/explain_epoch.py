"""`ExplainEpoch`: watch a model's explanations evolve while it trains (a Keras callback).

At the end of every `every`-th epoch the callback explains the same fixed images with each method
(the explainers are built once for the model and reused: they read the model's current weights;
they are rebuilt only when the callback is given another model), then

* with `log_dir`: writes the grid as a TensorBoard image summary (`tf.summary.image`, step = the
  epoch number, 1-based as Keras prints it), viewable with `tensorboard --logdir LOG_DIR`
  (the `tensorboard` extra);
* with `out`: writes `out/epoch_0003.png` for epoch 3, and when training ends `out/maps.gif`,
  an animation of every logged epoch's grid.

Its cost is one explanation pass per logged epoch (each method once over the images) plus the
drawing; `calls` counts the passes. The maps are computed in float32 under a mixed-precision policy
and read the variables of a model trained under any `tf.distribute` strategy.

Nothing of the user's is replaced: `out` keeps a run manifest (`.cams-run.explain-epoch.json`,
`cams.core.outputs`); an `epoch_*.png` or `maps.gif` there that it did not write is refused when
the callback is made, before training starts.
"""
from __future__ import annotations

from pathlib import Path
from typing import Dict, Optional, Sequence

import keras
import numpy as np

from cams.callbacks.grid import explanation_grid, save_animation, save_png
from cams.core import model_graph
from cams.core.inputs import Targets, check_count, check_images, check_targets
from cams.core.outputs import OutputFolder
from cams.methods import registry

JOB, COMMAND = "explain-epoch", "ExplainEpoch"
ANIMATION = "maps.gif"


def epoch_file(epoch: int) -> str:
    """The PNG of (1-based) `epoch` under `out`: epoch_0003.png."""
    return f"epoch_{epoch:04d}.png"


class ExplainEpoch(keras.callbacks.Callback):
    """Explain fixed images at the end of every `every`-th epoch; log the grid to TensorBoard and/or PNGs.

    Args:
        images: (N, H, W, C) float images as the model takes them (a few: each is one grid row).
        methods: registered method names (`cams methods`), e.g. ("gradcam", "scorecam").
        targets: None (each image's top-1 class at that epoch), an int, or N ints.
        log_dir: TensorBoard log folder for the image summaries (None: none).
        out: folder for the per-epoch PNGs and the final GIF (None: none).
        every: explain after epochs every, 2 * every, ... (1-based).
        layer: the feature layer of the methods that take one (None: each method's default).
        cell: the side of one grid cell in pixels.
        name: the TensorBoard summary's tag.
        **options: further options for every explainer (e.g. batch_size); `seed` defaults to 0 so that
            noisy methods (RISE, SmoothGrad-CAM++, ...) draw the same noise every epoch and the grids
            differ only by what the model learned (it also keeps TF's op determinism satisfied).

    Raises:
        ValueError: no `log_dir` nor `out`, `every` < 1, an unknown method, images that are not
            (N, H, W, C) finite numbers, or a user file in `out` where the callback writes.
    """

    def __init__(self, images, methods: Sequence[str] = ("gradcam",), targets: Targets = None,
                 log_dir: Optional[str] = None, out: Optional[str] = None, every: int = 1,
                 layer: Optional[str] = None, cell: int = 96, name: str = "explanations", **options):
        super().__init__()
        if log_dir is None and out is None:
            raise ValueError("ExplainEpoch needs log_dir (TensorBoard) or out (PNG files), or both")
        self.every = check_count(every, "every")
        self.methods = registry.parse_methods(methods if isinstance(methods, str) else ",".join(methods))
        self.images = check_images(images, (None, None, None, None), "ExplainEpoch images")
        self.targets, self.layer, self.cell, self.name = targets, layer, int(cell), name
        self.options = {"seed": 0, **options}
        self.log_dir = None if log_dir is None else Path(log_dir)
        self.folder = None if out is None else self._claim(out)
        self.calls = self.builds = 0
        self.maps: Dict[str, np.ndarray] = {}
        self._explainers: Dict[str, object] = {}
        self._built_for = None
        self._writer = None

    def _claim(self, out) -> OutputFolder:
        settings = {"methods": ",".join(self.methods), "layer": self.layer, "images": list(self.images.shape)}
        folder = OutputFolder(out, JOB, COMMAND, settings, option="out")
        existing = [p.name for p in folder.folder.glob("epoch_*.png")] if folder.folder.is_dir() else []
        folder.claim(sorted(existing) + [ANIMATION])
        return folder

    def explainers(self) -> Dict[str, object]:
        """{method: explainer} for the current model, built on first use and again only for another model."""
        if self._built_for is not self.model:
            check_images(self.images, model_graph.input_shape(self.model), "ExplainEpoch images")
            self._checked_targets = check_targets(self.targets, len(self.images), model_graph.num_classes(self.model))
            self._explainers = registry.build_explainers(self.model, self.methods, layer=self.layer, **self.options)
            self._built_for = self.model
            self.builds += 1
        return self._explainers

    def on_train_begin(self, logs=None):
        self.explainers()
        if self.log_dir is not None and self._writer is None:
            import tensorflow as tf

            self._writer = tf.summary.create_file_writer(str(self.log_dir))
        if self.folder is not None:
            self._drop_stale_frames()
            self.folder.save()

    def _drop_stale_frames(self) -> None:
        """Delete this job's own PNGs of an earlier run with other settings, or of epochs this run will not reach."""
        changed = bool(self.folder.changed_settings())
        last = int((self.params or {}).get("epochs") or 0)
        for name in [n for n in self.folder.files if n.startswith("epoch_")]:
            if changed or (last and int(name[6:10]) > last):
                self.folder.path(name).unlink(missing_ok=True)
                self.folder.files.remove(name)

    def on_epoch_end(self, epoch, logs=None):
        if (epoch + 1) % self.every:
            return
        self.log(epoch + 1)

    def log(self, epoch: int) -> np.ndarray:
        """Explain the images now and write the grid for (1-based) `epoch`; the grid as uint8 RGB."""
        targets = None if self.targets is None else self._checked_targets
        explainers = self.explainers()
        self.maps = {m: np.asarray(e(self.images, targets=targets)) for m, e in explainers.items()}
        self.calls += 1
        grid = explanation_grid(self.images, self.maps, {m: registry.title(m) for m in self.maps}, f"epoch {epoch}",
                                self.cell)
        if self._writer is not None:
            import tensorflow as tf

            with self._writer.as_default():
                tf.summary.image(self.name, grid[None], step=epoch)
            self._writer.flush()
        if self.folder is not None:
            save_png(grid, self.folder.path(epoch_file(epoch)))
            self.folder.record(epoch_file(epoch))
        return grid

    def on_train_end(self, logs=None):
        if self.folder is not None:
            frames = sorted(n for n in self.folder.files if n.startswith("epoch_") and self.folder.path(n).is_file())
            if frames:
                save_animation([self.folder.path(n) for n in frames], self.folder.path(ANIMATION))
                self.folder.record(ANIMATION)
        if self._writer is not None:
            self._writer.flush()
