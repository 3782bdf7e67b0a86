"""What each `bengali-xai` command writes into its --out folder, and the checks that run before any work.

Every command keeps a run manifest in its folder (`cams.core.outputs.OutputFolder`, one per job:
`.cams-run.train.json`, `.cams-run.baselines.json`, ...). A rerun replaces only files that manifest
lists; any other file where an output goes stops the command with one line naming it, before data
is loaded or a model trained. --out never overlaps an input (--data-dir, --model, --labels, --weights).
"""
from __future__ import annotations

import os
from typing import Any, Iterable, Mapping, Sequence

from cams.core.outputs import OutputFolder, check_apart

PROG = "bengali-xai"
#: what `train` writes (and `demo`, which also writes explain_files(DEFAULT_METHODS))
TRAIN_FILES = ("model.keras", "history.json", "metrics.json", "loss.png", "accuracy.png")
#: keras.callbacks.BackupAndRestore's folder inside --out while a training run is unfinished
BACKUP_DIR = ".resume"
BASELINE_FILES = ("baselines.csv", "baselines.md", "baselines_accuracy.png", "baselines_log_loss.png",
                  "confusion_matrix.png")
IMAGENET_FILES = ("imagenet_gradcam.png", "imagenet_explain.json")


def triplet_name(method: str) -> str:
    """The file name of one method's input | heatmap | overlay figure ("gradcam++" -> gradcampp_triplets.png)."""
    return method.replace("+", "p") + "_triplets.png"


def explain_files(methods: Iterable[str]) -> list[str]:
    """What `explain` writes for `methods`: one triplet figure each, methods_grid.png, explain.json."""
    return [triplet_name(m) for m in methods] + ["methods_grid.png", "explain.json"]


def output_folder(out: str | os.PathLike, job: str, settings: Mapping[str, Any], names: Sequence[str],
                  inputs: Mapping[str, Iterable] | None = None) -> OutputFolder:
    """The checked output folder of one job, before any work.

    Args:
        out: the --out folder.
        job: the command ("train", "baselines", "explain", "demo"), naming its manifest.
        settings: what the outputs depend on, kept in the manifest.
        names: the files the job will write there.
        inputs: {option: paths} that --out must stay apart from (see cams.core.outputs.check_apart).

    Returns:
        The OutputFolder to `record` each written file in.

    Raises:
        ValueError: one line: --out overlaps an input, is a file, or a file of another origin is in the way.
    """
    if inputs:
        check_apart(out, inputs)
    folder = OutputFolder(out, job, f"{PROG} {job}", settings)
    folder.claim(names)
    return folder


def check_backup_dir(folder: OutputFolder) -> None:
    """Refuse, before any work, a `.resume` folder in --out that holds files no training run wrote."""
    from cams.training.resume import check_backup

    check_backup(folder.path(BACKUP_DIR), hint="choose another --out")


def record(folder: OutputFolder, files: Mapping[str, Any]) -> None:
    """Add written files (paths inside `folder`) to its manifest, in one write.

    Args:
        folder: the job's OutputFolder.
        files: {key: path} as the writers return them.
    """
    from pathlib import Path

    base = Path(os.path.abspath(folder.folder))
    folder.record(*(Path(os.path.abspath(p)).relative_to(base).as_posix() for p in files.values()))
