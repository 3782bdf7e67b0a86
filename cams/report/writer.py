"""Write `OUT/report.html` and `OUT/report_files/` as a job of their own (`.cams-run.report.json`).

The page and its thumbnails' folder are this job's files: a rerun replaces them, while a
`report.html` or `report_files` of the user's in their place is refused before any work (unless
`overwrite`). The thumbnails' folder is swapped in whole (`cams.report.thumbs`), then the page is
written atomically (`cams.core.files.write_text`), so an interrupted run leaves the earlier report.
"""
from __future__ import annotations

import shutil
from pathlib import Path
from typing import Mapping, Optional, Sequence

from cams.core import files
from cams.core.outputs import OutputFolder
from cams.report.page import PAGE_SIZE, Entry, page_data, render
from cams.report.runs import read_run
from cams.report.thumbs import Pictures, write_thumbs

REPORT, THUMBS = "report.html", "report_files"
JOB, COMMAND = "report", "cams report"


def check_report(out, overwrite: bool = False, command: str = COMMAND,
                 overwrite_option: Optional[str] = "--overwrite") -> OutputFolder:
    """The report's output folder, checked before any work: no file of the user's where it writes.

    Args:
        out: the folder (the run's --out).
        overwrite: replace a user's report.html / report_files.
        command: the command named in messages.
        overwrite_option: its option that sets `overwrite`.

    Returns:
        The `OutputFolder` of the report job (its manifest not yet written).

    Raises:
        ValueError: a report.html or report_files there that this job did not write.
    """
    folder = OutputFolder(out, JOB, command, option="folder", overwrite=overwrite, overwrite_option=overwrite_option)
    folder.claim([REPORT])
    thumbs = folder.path(THUMBS)
    if (thumbs.exists() or thumbs.is_symlink()) and not (folder.owns(THUMBS) or overwrite):
        hint = f" (or {overwrite_option} to replace it)" if overwrite_option else ""
        raise ValueError(f"{thumbs} exists and was not written by {command}; choose another folder{hint}")
    if thumbs.is_symlink() or thumbs.is_file():
        raise ValueError(f"{thumbs} is not a folder; move it away, the report writes its thumbnails there")
    return folder


def write_report(folder: OutputFolder, entries: Sequence[Entry], pictures: Pictures, methods: Sequence[str],
                 settings: Optional[Mapping[str, object]] = None, title: str = "cams report", thumb: int = 128,
                 page_size: int = PAGE_SIZE, progress: bool = False) -> Path:
    """Write the report of `entries` into `folder` (from `check_report`).

    Args:
        folder: the checked output folder.
        entries: one `Entry` per image, in the run's order.
        pictures: row i -> (image, {method: overlay})
            as uint8 RGB arrays (`cams.report.thumbs.Pictures`).
        methods: the method names, in column order.
        settings: the run's settings shown in the page.
        title: the page's title.
        thumb: the thumbnails' longer side in pixels.
        page_size: rows per page.
        progress: show a progress bar while the thumbnails are written.

    Returns:
        The path of report.html.
    """
    from tqdm import tqdm

    from cams.methods import registry

    if not entries:
        raise ValueError(f"{folder.folder}: the run has no explained image to report")
    folder.settings = dict(folder.settings, methods=",".join(methods), images=len(entries), thumb=int(thumb))
    folder.record(REPORT, THUMBS)  # listed before they are written: a killed run's files are still its own
    for stale in folder.folder.glob(f"{files.TEMP_PREFIX}{THUMBS}.*"):  # left by a killed run
        if stale.is_dir() and not stale.is_symlink():
            shutil.rmtree(stale, ignore_errors=True)
    bar = tqdm(total=len(entries), desc="thumbnails", unit="img", disable=not progress)
    write_thumbs(folder.path(THUMBS), len(entries), pictures, methods, size=int(thumb), progress=bar.update)
    bar.close()
    titles = {m: _title(registry, m) for m in methods}
    data = page_data(entries, methods, titles, THUMBS, page_size)
    html = render(data, dict(settings or {}), title, display=min(int(thumb), 128))
    return files.write_text(folder.path(REPORT), html)


def _title(registry, name: str) -> str:
    try:
        return registry.title(name)
    except (KeyError, ValueError):
        return name


def report_for_run(out, labels: Optional[Sequence[str]] = None, title: Optional[str] = None, thumb: int = 128,
                   overwrite: bool = False, command: str = COMMAND, progress: bool = False) -> Path:
    """Read the explanation run in `out` (`cams.report.runs.read_run`) and write its report there.

    Args:
        out: the --out folder of a `cams explain` or `cams explain-folder` run.
        labels: class names for runs that did not record them.
        title: the page's title (default from the run).
        thumb: the thumbnails' longer side in pixels.
        overwrite: replace a user's report.html / report_files.
        command: the command named in messages.
        progress: show a progress bar.

    Returns:
        The path of `out/report.html`.
    """
    folder = check_report(out, overwrite, command)
    run = read_run(out, labels)
    title = title or f"{run.settings.get('command') or 'cams'}: {Path(out).resolve().name}"
    return write_report(folder, run.entries, run.pictures, run.methods, run.settings, title, thumb, progress=progress)
