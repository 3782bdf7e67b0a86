"""Outputs a command owns: nothing the user has is replaced, deleted or mistaken for a result.

Every command that writes keeps a run manifest in its output folder,
`<folder>/.cams-run.<job>.json` = {"command", "settings", "files": [paths relative to the folder]},
and writes it again (atomically) after each file it adds. From it a rerun knows which files are its
own: an earlier run of the same job may be replaced or resumed, anything else is the user's. The
checks run before any work starts and raise one-line ValueErrors (exit 2 on the command lines):

    out = OutputFolder("runs/x", job="explain", command="cams explain", settings={...})
    check_apart(out.folder, {"--images": images, "--model": [model]})   # --out never overlaps an input
    out.claim(["grid.png", "maps.npz"])                                  # refuses a user file in the way
    files.save_npz(out.path("maps.npz"), ...); out.record("maps.npz")

Temporary files of `cams.core.files.atomic_path` start with `TEMP_PREFIX`, a name no user file has;
`remove_temporary` deletes only those.
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Dict, Iterable, List, Mapping, Optional, Sequence

from cams.core.files import TEMP_PREFIX, write_json

MANIFEST_PREFIX = ".cams-run."
MANIFEST_VERSION = 1


def _resolved(path) -> Path:
    return Path(os.path.abspath(os.path.expanduser(str(path))))


def check_apart(out, inputs: Mapping[str, Iterable], out_option: str = "--out") -> None:
    """Refuse an output that is, is inside, or contains one of the inputs.

    Args:
        out: the output folder or file.
        inputs: {option name: input paths}, e.g. {"--images": ["photos/"], "--model": ["m.keras"]}.
        out_option: the option that named `out`, for the message.

    Raises:
        ValueError: one line naming both paths and the fix.
    """
    target = _resolved(out)
    for option, paths in inputs.items():
        for raw in paths:
            if raw is None or "://" in str(raw):
                continue
            source = _resolved(raw)
            if target == source or source in target.parents or target in source.parents:
                relation = "is" if target == source else ("is inside" if source in target.parents else "contains")
                raise ValueError(f"{out_option} {out} {relation} {option} {raw}: outputs would mix with the inputs; "
                                 f"choose an {out_option} outside them")


def check_folder(folder, option: str = "--out") -> Path:
    """`folder` as a Path; a ValueError when it exists as a file (refused before any work)."""
    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        raise ValueError(f"{option} {folder} is a file, not a folder; choose a folder (new or empty) for the outputs")
    return folder


class OutputFolder:
    """The files one job writes into one folder, recorded in its manifest.

    Args:
        folder: the output folder (created when the first file is recorded).
        job: a short name of the job, part of the manifest's file name ("explain", "lcam-train.model").
        command: the command line's name, for messages and the manifest ("cams explain").
        settings: what the outputs depend on (JSON-able): methods, layer, model fingerprint, sizes, ...
        option: the option that named the folder, for messages.
        overwrite: replace user files in the way instead of refusing them.
        overwrite_option: the command's option that sets `overwrite` ("--overwrite"), named in the
            refusal; None when the command has none.
    """

    def __init__(self, folder, job: str, command: str, settings: Optional[Mapping[str, Any]] = None,
                 option: str = "--out", overwrite: bool = False, overwrite_option: Optional[str] = None):
        self.folder = check_folder(folder, option)
        self.job, self.command, self.option, self.overwrite = job, command, option, overwrite
        self.overwrite_option = overwrite_option
        self.settings = json.loads(json.dumps(dict(settings or {}), default=str))
        self.manifest_path = self.folder / f"{MANIFEST_PREFIX}{job}.json"
        self.previous = self._read_manifest()
        self.files: List[str] = list(self.previous.get("files", [])) if self.previous else []

    def _read_manifest(self) -> Optional[dict]:
        if not self.manifest_path.is_file():
            return None
        try:
            data = json.loads(self.manifest_path.read_text(encoding="utf-8"))
        except (ValueError, UnicodeDecodeError):
            raise ValueError(f"{self.manifest_path} is not a readable run manifest; move it away or choose another "
                             f"{self.option}") from None
        if not isinstance(data, dict) or not isinstance(data.get("files"), list):
            raise ValueError(f"{self.manifest_path} is not a run manifest of {self.command}; move it away or choose "
                             f"another {self.option}")
        return data

    def owns(self, name: str) -> bool:
        """True when `name` (relative to the folder) was written by an earlier run of this job."""
        return str(name) in self.files

    def changed_settings(self) -> List[str]:
        """Keys whose value differs from the earlier run's (empty when there was none, or all agree)."""
        if not self.previous:
            return []
        before = self.previous.get("settings", {})
        return sorted(k for k in set(before) | set(self.settings) if before.get(k) != self.settings.get(k))

    def claim(self, names: Iterable[str]) -> None:
        """Refuse, before any work, when a file to be written exists and is not this job's."""
        for name in names:
            path = self.folder / name
            for parent in reversed(Path(name).parents[:-1]):  # a/b/c.png: a, then a/b
                if (self.folder / parent).is_file():
                    raise ValueError(f"{self.folder / parent} is a file where {self.command} needs a folder; "
                                     f"choose another {self.option}")
            if not (path.exists() or path.is_symlink()) or self.owns(str(name)) or self.overwrite:
                if path.is_dir() and not path.is_symlink():
                    raise ValueError(f"{path} is a folder where {self.command} writes a file; "
                                     f"choose another {self.option}")
                continue
            hint = f" (or {self.overwrite_option} to replace it)" if self.overwrite_option else ""
            raise ValueError(f"{path} exists and was not written by {self.command}; choose another {self.option}{hint}")

    def path(self, name: str) -> Path:
        """The path of output `name` inside the folder."""
        return self.folder / name

    def record(self, *names: str) -> None:
        """Add written files to the manifest and write it atomically."""
        for name in names:
            if str(name) not in self.files:
                self.files.append(str(name))
        self.save()

    def save(self) -> Path:
        """Write the manifest now (also with no file yet: it marks the folder as this job's)."""
        return write_json(self.manifest_path, {"version": MANIFEST_VERSION, "command": self.command,
                                               "settings": self.settings, "files": self.files})


def remove_temporary(folders: Sequence) -> int:
    """Delete the temporary files an interrupted writer left (names starting with TEMP_PREFIX) under
    `folders`, recursively; user files are never touched. Returns how many were removed."""
    removed = 0
    for folder in folders:
        for path in Path(folder).rglob(f"{TEMP_PREFIX}*"):
            if path.is_file() and not path.is_symlink():
                path.unlink()
                removed += 1
    return removed


def describe_changes(before: Dict[str, Any], after: Dict[str, Any], keys: Iterable[str]) -> str:
    """'methods: gradcam -> gradcam,scorecam; layer: None -> conv2' for a message."""
    return "; ".join(f"{k}: {before.get(k)} -> {after.get(k)}" for k in keys)
