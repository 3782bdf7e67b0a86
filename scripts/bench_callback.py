#!/usr/bin/env python
"""What `cams.callbacks.ExplainEpoch` adds to training: epoch times of the Bengali digit CNN with and without it.

Trains `bengali_xai.model.build_cnn` (the paper's CNN) on synthetic digits (batch 250, as the paper)
with ExplainEpoch(every=2) writing PNGs and TensorBoard summaries, so logged and unlogged epochs
alternate within one fit and see the same load on a shared machine; then times one explanation
pass alone (`callback.log`, explainers built and traced), and a fit without the callback for
reference. The first two epochs (tracing) are left out; medians are printed. The claim checked:
a logged epoch costs about one explanation pass (explain + draw + write) more than an unlogged one.

    python scripts/bench_callback.py                       # 2,000 digits, 12 epochs, Grad-CAM of 6 digits
    python scripts/bench_callback.py --methods gradcam,scorecam --images 16
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras  # noqa: E402
import numpy as np  # noqa: E402


class EpochTimes(keras.callbacks.Callback):
    """(wall, CPU) seconds of each epoch, from its start to the end of every callback before this one.

    The process's CPU time (all its threads) hardly depends on what other processes run, so on a
    shared machine it compares the two kinds of epoch better than the wall time does.
    """

    def __init__(self):
        super().__init__()
        self.times = []

    def on_epoch_begin(self, epoch, logs=None):
        self._t = (time.perf_counter(), time.process_time())

    def on_epoch_end(self, epoch, logs=None):
        self.times.append((time.perf_counter() - self._t[0], time.process_time() - self._t[1]))


def fit_epochs(x, y, epochs: int, extra=()):
    """Per-epoch seconds of one fit of a fresh CNN (epoch 1 dropped: tracing), with `extra` callbacks first."""
    from bengali_xai.model import build_cnn

    keras.utils.set_random_seed(0)
    model = build_cnn()
    timer = EpochTimes()
    model.fit(x, y, batch_size=250, epochs=epochs, verbose=0, callbacks=[*extra, timer])
    return timer.times[1:], model


def main(argv=None) -> int:
    from bengali_xai.synthetic import make_synthetic
    from cams.callbacks import ExplainEpoch

    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--samples", type=int, default=2000)
    ap.add_argument("--epochs", type=int, default=12)
    ap.add_argument("--images", type=int, default=6, help="digits explained each logged epoch")
    ap.add_argument("--methods", default="gradcam")
    args = ap.parse_args(argv)
    data = make_synthetic(args.samples, seed=0)
    x, y = data.x.astype("float32"), keras.utils.to_categorical(data.y, 10)
    with tempfile.TemporaryDirectory() as tmp:
        cb = ExplainEpoch(x[: args.images], methods=args.methods.split(","), log_dir=f"{tmp}/tb", out=f"{tmp}/png",
                          layer="conv2", every=2)
        times, _ = fit_epochs(x, y, args.epochs, [cb])
        logged_passes = cb.calls
        passes = []
        for epoch in range(5):  # one explanation pass alone
            start = (time.perf_counter(), time.process_time())
            cb.log(100 + epoch)
            passes.append((time.perf_counter() - start[0], time.process_time() - start[1]))
    times = times[1:]  # epochs 3, 4, ...: logged are the even ones (4, 6, ...)
    logged, unlogged = times[1::2], times[0::2]
    plain = fit_epochs(x, y, args.epochs)[0][1:]
    print(f"digit CNN, {len(x)} images, batch 250, {args.methods} of {args.images} digits every 2nd epoch: "
          f"{logged_passes} explanation passes in {args.epochs} epochs (medians of {len(logged)} logged / "
          f"{len(unlogged)} unlogged epochs, {len(plain)} epochs without the callback)")
    for k, clock in enumerate(("wall", "CPU")):
        lo, un, e, p = (statistics.median(t[k] for t in v) for v in (logged, unlogged, passes, plain))
        print(f"  {clock:4s}: logged epoch {lo:.3f} s, unlogged {un:.3f} s, without the callback {p:.3f} s; "
              f"logged - unlogged = {lo - un:+.3f} s; one explanation pass alone {e:.3f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
