"""plot_accuracy_and_loss: the loss figure and the accuracy figure of one training run (the report's accuracy and loss figures)."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Callable

from cams.viz import plot_history

from ..history_json import SERIES, best_epoch, pick_run, read_runs
from .common import analysis_outputs, output_names


def plot_accuracy_and_loss(json_path: str | os.PathLike, model: str | None = None, dataset: str | None = None,
                           out_dir: str | os.PathLike = "out", run: int = -1,
                           log: Callable[[str], None] = print) -> dict[str, Path]:
    """Write `<out>/figures/<dataset>_<model>_{losses,accuracies}_plot.png` for run `run` of the JSON.

    Only figures this command wrote earlier are replaced (its run manifest in `out_dir`); another file
    in their place is refused before plotting. Returns {"loss": path, "accuracy": path}; prints the
    best validation epoch and its test accuracy.
    """
    runs = read_runs(json_path)
    rec = pick_run(runs, run, json_path)
    model = model or rec["model"]
    dataset = dataset or rec["dataset"]
    outputs = analysis_outputs(out_dir, "plot-accuracy-and-loss", dataset, model)
    outputs.record(*output_names("plot-accuracy-and-loss", dataset, model))
    if rec.get("model") not in (None, model):
        log(f"warning: run {run} of {json_path} is a {rec['model']} run, not {model}")
    series = {k: rec[k] for k in SERIES}
    title = f"{dataset} / {model} / {rec.get('optimizer', {}).get('name', '')}".rstrip(" /")
    figures = Path(out_dir) / "figures"
    paths = {
        "loss": plot_history({k: v for k, v in series.items() if k.endswith("loss")},
                             figures / f"{dataset}_{model}_losses_plot.png", title=f"{title}: loss"),
        "accuracy": plot_history({k: v for k, v in series.items() if k.endswith("acc")},
                                 figures / f"{dataset}_{model}_accuracies_plot.png",
                                 title=f"{title}: accuracy (%)"),
    }
    b = best_epoch(rec)
    log(f"run {run % len(runs)} of {len(runs)} in {json_path}: {len(rec['val_acc'])} epochs; highest validation "
        f"accuracy {rec['val_acc'][b - 1]:.2f}% at epoch {b}, test accuracy there {rec['test_acc'][b - 1]:.2f}%")
    for p in paths.values():
        log(f"wrote {p}")
    return paths
