"""Explain a large folder of images without holding it in memory, resuming where it stopped.

Images stream through tf.data (decoded in a background thread, `batch_size` at a time); for each
image `<out>/maps/<name>.npz` holds one map per method plus the predicted class and its
probability, `<out>/overlays/<name>.<method>.png` the overlay, and `<out>/predictions.csv` lists
every explained image: its file, its .npz, the class and the probability (written through the csv
module). Every file is written atomically and the .npz last, so an existing .npz means that image
is complete: a rerun of the same job skips it.

Names. `<name>` is the image's path relative to the --images folder holding it (a file named on its
own: its file name). Two images whose names would meet on some file system (equal after Unicode
NFC, casefolding and dropping trailing dots and spaces of each part: `a/photo.png` under two
folders, `Photo.png` beside `photo.png`) both get a short hash of their full path before the suffix
(`photo.3f2a1c9e0b.png`), so each image has its own outputs; the names depend only on the paths,
so a rerun finds them again. predictions.csv says which file went where.

Ownership (nothing the user has is lost). The folder's run manifest `.cams-run.explain-folder.json`
(cams.core.outputs) holds the job's settings: the input folders, methods, layer, L-CAM file hash,
model weights hash, image size, scale, offset, overlays. It lists only the tables it writes
(predictions.csv, unreadable.txt), not the thousands of per-image files: a file under maps/ or
overlays/ is the job's own when the manifest is there and the job derives that name from its inputs.
So, checked before any work:

* no manifest: every derived name that exists is the user's -> ValueError naming it (another --out);
* a manifest with the same settings: derived files are this job's: a rerun resumes, skipping done
  images, and removes only `.cams-tmp-*` files a killed run left (`outputs.remove_temporary`);
* a manifest with other settings: ValueError naming the difference; `restart=True` (--restart)
  first deletes the files the earlier job derived (its settings' inputs, methods and overlays, and
  the tables it recorded) and those this job derives; nothing else in the folder is touched.

Files under maps/ that no input derives (a user's `.notes.npz`), other files in the folder and a
`predictions.csv` not recorded in the manifest are never replaced or deleted. The --out is
refused when it is, is inside or contains an --images input, the --model or the --lcam file.

The naming, the ownership checks (`claim_job`), the per-batch computation (`BatchExplainer`) and the
encoding of one image's outputs (`image_outputs`) are shared with the Apache Beam pipeline in
`cams.distributed.beam`, so both write the same files and either resumes the other's job.
"""
from __future__ import annotations

import csv
import hashlib
import io
import unicodedata
import zipfile
from collections import defaultdict
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Dict, Iterable, List, Mapping, Optional, Sequence, Set, Tuple

import numpy as np
import tensorflow as tf
from PIL import Image
from tqdm import tqdm

from cams import viz
from cams.core import files
from cams.core import model_graph
from cams.core.base import Explainer, compiled
from cams.core.images import list_images, load_image
from cams.core.outputs import OutputFolder, check_apart, check_folder, describe_changes, remove_temporary
from cams.core.mapfiles import (DTYPES, LAYOUTS, SHARD_NAME, check_dtype, check_layout, encode_npz, encode_shard,
                                shard_index, shard_name)
from cams.methods.lcam.fileformat import model_fingerprint


#: threads that encode and write outputs while the model explains the next batch, without and with
#: overlays (`writer_threads`)
WRITER_THREADS = (1, 2)
#: the job's name in its run manifest (.cams-run.explain-folder.json) and the command named in messages
JOB, COMMAND = "explain-folder", "cams explain-folder"
#: the subfolders whose files the job derives from its inputs
SUBFOLDERS = ("maps", "overlays")
PREDICTIONS = "predictions.csv"
PREDICTIONS_HEADER = ("file", "maps", "class", "probability")
#: version of the naming rule (part of the settings: another rule is another job)
NAMING = 1
#: what a run manifest written before a setting existed meant by it (earlier runs: float32 .npz per image)
EARLIER_DEFAULTS = {"maps": "float32", "layout": "files"}


def writer_threads(overlays: bool) -> int:
    """Threads that encode and write while the model runs: 1 without overlays, 2 with.

    Measured on ResNet50 at 224 px (2 cores): one image's float16 .npz costs 0.24 ms to encode, one
    overlay ~9 ms (colouring 2.3 ms, PNG 7 ms; zlib and file writes release the GIL), against ~50 ms
    of model time per image: one thread keeps up with the maps, a second only pays off with overlays,
    and more would take cores from the model.
    """
    return WRITER_THREADS[1] if overlays else WRITER_THREADS[0]


@dataclass
class BatchReport:
    """What a run did: counts and where things went."""

    total: int = 0
    done_before: int = 0
    explained: int = 0
    skipped: List[Tuple[str, str]] = field(default_factory=list)
    out: Optional[Path] = None


# ---------------------------------------------------------------- names
def relative_name(path: str, folders: Sequence[str]) -> str:
    """`path` relative to the first of `folders` that contains it, else its file name ('/'-separated).

    Args:
        path: the image's path or URL, with '/' separators (e.g. `Path.as_posix()`, gs://b/x/y.png).
        folders: the input folders, same form.

    Returns:
        The relative name that places the image's outputs under `maps/` and `overlays/`.
    """
    for folder in folders:
        prefix = folder.rstrip("/") + "/"
        if path.startswith(prefix) and len(path) > len(prefix):
            return path[len(prefix):]
    return path.rstrip("/").rsplit("/", 1)[-1]


def name_key(name: str) -> str:
    """What two output names must not share: the name in Unicode NFC, casefolded, each part without
    trailing dots and spaces (what case-insensitive, normalising and Windows file systems compare)."""
    text = unicodedata.normalize("NFC", name).casefold()
    return "/".join(part.rstrip(". ") for part in text.split("/"))


def distinct_name(name: str, path: str) -> str:
    """`name` with a short hash of the image's full `path` before its suffix: a/photo.png -> a/photo.<hash>.png."""
    digest = hashlib.sha256(path.encode("utf-8")).hexdigest()[:10]
    head, slash, base = name.rpartition("/")
    stem, dot, suffix = base.rpartition(".")
    base = f"{stem}.{digest}.{suffix}" if dot and stem else f"{base}.{digest}"
    return head + slash + base


def output_names(paths: Iterable[str], folders: Sequence[str]) -> Dict[str, str]:
    """{image path: the name of its outputs}, distinct for distinct images (see the module docstring).

    Args:
        paths: the images' full paths or URLs, '/'-separated (`input_key` form).
        folders: the input folders, same form.

    Returns:
        `relative_name` of each path, or `distinct_name` for every path whose name would meet another's.
    """
    names = {p: relative_name(p, folders) for p in paths}
    groups: Dict[str, List[str]] = defaultdict(list)
    for p, name in names.items():
        groups[name_key(name)].append(p)
    for members in groups.values():
        if len(members) > 1:
            names.update({p: distinct_name(names[p], p) for p in members})
    keys = [name_key(n) for n in names.values()]
    if len(set(keys)) < len(keys):
        clash = sorted(p for p, n in names.items() if keys.count(name_key(n)) > 1)
        raise ValueError(f"{clash[0]} and {clash[1]} would still share output names; rename one of them")
    return names


def npz_name(rel: str) -> str:
    """Where an image's maps go, relative to the output folder: maps/<rel>.npz."""
    return f"maps/{rel}.npz"


def overlay_name(rel: str, method: str) -> str:
    """Where an image's overlay for `method` goes: overlays/<rel>.<method>.png."""
    return f"overlays/{rel}.{method}.png"


def derived_names(names: Iterable[str], methods: Sequence[str], overlays: bool, layout: str = "files") -> Set[str]:
    """Every file the job writes under maps/ and overlays/ for images named `names` (the shards of the
    "shards" layout are named by their contents: `open_output` adds those that exist)."""
    found = set()
    for rel in names:
        if layout == "files":
            found.add(npz_name(rel))
        if overlays:
            found.update(overlay_name(rel, m) for m in methods)
    return found


def input_key(item) -> str:
    """An --images, --model or --lcam argument as the job records it: a local path made absolute
    (symlinks resolved), '/'-separated; a URL (gs://...) as given, without a trailing '/'."""
    text = str(item)
    return text.rstrip("/") if "://" in text else Path(text).resolve().as_posix()


def list_local(inputs: Sequence) -> Tuple[Dict[str, Path], List[str]]:
    """The images under local `inputs`, each once, keyed as the job names them.

    Args:
        inputs: image files and/or folders (--images).

    Returns:
        ({image path in `input_key` form: its Path}, the input folders in that form). An image under a
        folder is that folder's key + '/' + its path below it (what Beam's file matching gives); an
        image reached twice (nested --images) is listed once.

    Raises:
        ValueError: as `list_images` (a missing input, no image at all).
    """
    roots = [Path(p) for p in inputs]
    folders = [(r, input_key(r)) for r in roots if r.is_dir()]
    found: Dict[str, Path] = {}
    for p in list_images(roots):
        key = next((f"{k}/{p.relative_to(r).as_posix()}" for r, k in folders if p.is_relative_to(r)), None)
        found.setdefault(key or input_key(p), p)
    return found, [k for _, k in folders]


# ---------------------------------------------------------------- the job and its output folder
def file_digest(path) -> Optional[str]:
    """The first 16 hex digits of the sha256 of a local file's bytes (None for None)."""
    if path is None:
        return None
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()[:16]


def job_settings(model, inputs: Sequence, methods: Sequence[str], shape: Sequence[int], scale: float, offset: float,
                 overlays: bool, layer: Optional[str] = None, lcam_digest: Optional[str] = None,
                 maps_dtype: str = DTYPES[0], maps_layout: str = LAYOUTS[0]) -> dict:
    """What the outputs depend on, recorded in the run manifest: a rerun with other settings is another job.

    Args:
        model: the Keras classifier (its weights are hashed: `model_fingerprint`).
        inputs: the --images arguments; methods: the method names; shape: (H, W, channels) decoded.
        scale: as `explain_folder`.
        offset: as `explain_folder`.
        overlays: as `explain_folder`.
        layer: as `explain_folder`.
        lcam_digest: hash of the L-CAM file, or None.
        maps_dtype: the maps' encoding, recorded as "maps"; maps_layout: "files" or "shards", recorded
            as "layout" (`cams.core.mapfiles`; a manifest without them meant `EARLIER_DEFAULTS`).

    Returns:
        A JSON-able dict ({"images", "methods", "layer", "lcam", "model", "size", "scale", "offset",
        "overlays", "naming", "maps", "layout"}).
    """
    if len({m.replace("+", "p") for m in methods}) < len(methods):
        raise ValueError(f"methods {', '.join(methods)} would share a map name in the .npz files ('+' is written 'p')")
    settings = {"images": [input_key(p) for p in inputs], "methods": ",".join(methods), "layer": layer,
                "lcam": lcam_digest, "model": model_fingerprint(model)[:16], "size": "x".join(map(str, shape)),
                "scale": float(scale), "offset": float(offset), "overlays": bool(overlays), "naming": NAMING,
                "maps": check_dtype(maps_dtype), "layout": check_layout(maps_layout)}
    return settings


def with_earlier_defaults(folder: OutputFolder) -> OutputFolder:
    """`folder` with its earlier manifest's settings completed by `EARLIER_DEFAULTS` (settings it predates)."""
    if folder.previous and isinstance(folder.previous.get("settings"), dict):
        folder.previous["settings"] = {**EARLIER_DEFAULTS, **folder.previous["settings"]}
    return folder


def check_out(out, inputs: Sequence, model=None, lcam=None) -> None:
    """Refuse, before any work, an --out that is a file or that is, is inside or contains an input.

    Args:
        out: the output folder (a local path or a URL); inputs: the --images arguments;
        model: the --model path; lcam: the --lcam path (None when not given).

    Raises:
        ValueError: one line naming both paths and the fix.
    """
    given = {"--images": [str(p) for p in inputs], "--model": [model], "--lcam": [lcam]}
    if "://" not in str(out):
        check_folder(out)
        check_apart(out, given)
        return
    target = str(out).rstrip("/") + "/"
    for option, paths in given.items():
        for raw in (str(p) for p in paths if p is not None and "://" in str(p)):
            source = raw.rstrip("/") + "/"
            if target.startswith(source) or source.startswith(target):
                relation = "is" if target == source else ("is inside" if target.startswith(source) else "contains")
                raise ValueError(f"--out {out} {relation} {option} {raw}: outputs would mix with the inputs; "
                                 f"choose an --out outside them")


def claim_job(folder: OutputFolder, derived: Set[str], existing: Set[str], tables: Sequence[str],
              restart: bool = False, earlier: Callable[[], Set[str]] = set) -> Set[str]:
    """Check the output folder for this job before any work (see the module docstring).

    Args:
        folder: the job's `OutputFolder`, its manifest read (`folder.previous`).
        derived: the names this run derives from its inputs (`derived_names`).
        existing: the files under maps/ and overlays/ now (names relative to the folder).
        tables: the files the job writes at the top of the folder (predictions.csv, ...).
        restart: delete this job's own earlier outputs and start over (--restart).
        earlier: () -> the names the earlier run derived from its inputs; called only for `restart`.

    Returns:
        The names of this job's own files to delete before the run (empty unless `restart`); the
        folder's file list is emptied for them.

    Raises:
        ValueError: a user file where the job writes, or an earlier run with other settings.
    """
    if folder.previous is None:  # not this job's folder: any file in the way is the user's
        folder.claim(sorted(derived & existing) + list(tables))
        return set()
    changed = folder.changed_settings()
    if changed and not restart:
        before = folder.previous.get("settings", {})
        raise ValueError(f"{folder.option} {folder.folder} holds a {folder.command} run with other settings "
                         f"({describe_changes(before, folder.settings, changed)}); choose another {folder.option}, "
                         f"or add --restart to delete that run's outputs and start over")
    folder.claim(tables)
    if not restart:
        return set()
    own = ((derived | earlier()) & existing) | set(folder.files)
    folder.files = []
    return own


def earlier_outputs(settings: Mapping, lister: Callable[[List[str]], Tuple[Iterable[str], List[str]]]) -> Set[str]:
    """The names an earlier run with `settings` (its manifest's) derived from its inputs as they are now.

    Args:
        settings: the earlier run's `job_settings`.
        lister: input arguments -> (image paths, input folders), as `list_local` (paths only) lists them;
            inputs that are gone or hold no image give nothing.

    Returns:
        The names under maps/ and overlays/ (`derived_names`) of the images those inputs hold now.
    """
    try:
        paths, folders = lister(list(settings.get("images", [])))
    except (ValueError, OSError):
        return set()
    methods = [m for m in str(settings.get("methods", "")).split(",") if m]
    return derived_names(output_names(paths, folders).values(), methods, bool(settings.get("overlays")),
                         str(settings.get("layout", "files")))


def _list_local_keys(inputs: List[str]) -> Tuple[Iterable[str], List[str]]:
    found, folders = list_local([p for p in inputs if Path(p).exists()] or inputs)
    return list(found), folders


def existing_outputs(out) -> Set[str]:
    """The files under <out>/maps and <out>/overlays.

    Args:
        out: the local output folder.

    Returns:
        Their names relative to `out`, '/'-separated (user files there included).
    """
    found = set()
    for sub in SUBFOLDERS:
        base = Path(out, sub)
        if base.is_dir():
            found.update(p.relative_to(out).as_posix() for p in base.rglob("*") if p.is_file() or p.is_symlink())
    return found


def open_output(out, settings: Mapping, derived: Set[str], restart: bool = False,
                tables: Sequence[str] = (PREDICTIONS,)) -> Tuple[OutputFolder, Set[str]]:
    """The local output folder, checked (`claim_job`) and marked as this job's before any work.

    Deletes, for `restart`, this job's own earlier outputs, and in a folder of this job the temporary
    files a killed run left (`.cams-tmp-*` under maps/ and overlays/, beside the tables and the manifest).

    Args:
        out: the local output folder; settings: `job_settings`; derived: `derived_names` of this run;
        restart: as `explain_folder`; tables: the files the job writes at the top of the folder.

    Returns:
        (the `OutputFolder`, its manifest saved; the derived files that exist now).
    """
    folder = with_earlier_defaults(OutputFolder(out, JOB, COMMAND, settings))
    existing = existing_outputs(out)
    if "shards" in (settings.get("layout"), ((folder.previous or {}).get("settings") or {}).get("layout")):
        derived = derived | {name for name in existing if SHARD_NAME.match(name)}
    doomed = claim_job(folder, derived, existing, tables, restart,
                       lambda: earlier_outputs(folder.previous.get("settings") or {}, _list_local_keys))
    for name in sorted(doomed):
        folder.path(name).unlink(missing_ok=True)
    if folder.previous is not None:
        remove_temporary([folder.path(sub) for sub in SUBFOLDERS])
        for name in (*tables, folder.manifest_path.name):
            for tmp in folder.folder.glob(f"{files.TEMP_PREFIX}{Path(name).stem}.*"):
                tmp.unlink(missing_ok=True)
    folder.save()
    return folder, (existing & derived) - doomed


# ---------------------------------------------------------------- computing and writing
def image_size(model, size: Optional[Tuple[int, int]]) -> Tuple[int, int, int]:
    """(H, W, channels) the images are decoded to: the model's input size, or `size` for any-size models."""
    _, h, w, c = model_graph.input_shape(model)
    if h is None or w is None:
        if size is None:
            raise ValueError("the model accepts any image size: pass size=(H, W) (--size H W)")
        h, w = size
    return int(h), int(w), int(c)


class BatchExplainer:
    """softmax probabilities and every method's maps for a batch of images, from one forward pass.

    Explainers on the same feature layer whose maps come from a shared pass (`cams.methods.shared`:
    Grad-CAM, Grad-CAM++, HiResCAM, XGrad-CAM, Layer-CAM, CAM, Eigen-CAM) run one forward pass and
    one tape per batch, and the probabilities are softmax of that pass's logits; other `exportable`
    explainers (`explain_tensor` is what their `__call__` computes) are traced into the same
    tf.function; the rest are called as usual. Each call pads the batch to `batch_size` images (copies
    of the last image, dropped from the results), so the function has one input shape and is traced
    (and, with `jit`, compiled by XLA) once.

    Args:
        model: the Keras classifier; explainers: {method name: explainer built for `model`};
        batch_size: images per compiled call; jit: compile the batch function with XLA (`jit_compile`).
    """

    def __init__(self, model, explainers: Mapping[str, object], batch_size: int = 16, jit: bool = False):
        from cams.methods.shared import pass_groups, shared_maps

        self.batch_size = int(batch_size)
        self.explainers = dict(explainers)
        fused = {n: e for n, e in self.explainers.items() if isinstance(e, Explainer) and e.exportable}
        sharing = {n: e for g in pass_groups(fused) for n, e in g.items()}
        alone = {n: e for n, e in fused.items() if n not in sharing}
        logits_of = model_graph.logits_function(model)

        def run(x):
            top1 = -tf.ones(tf.shape(x)[:1], tf.int32)
            logits, maps = shared_maps(sharing, x, top1)
            maps.update({n: e.explain_tensor(x, top1) for n, e in alone.items()})
            return tf.nn.softmax(tf.cast(logits_of(x) if logits is None else logits, tf.float32), axis=-1), maps

        _, h, w, c = model_graph.input_shape(model)
        self.fused = list(fused)
        self.compiled = compiled(run, [tf.TensorSpec((self.batch_size, h, w, c), tf.float32)], jit_compile=jit)

    def __call__(self, x: np.ndarray):
        """(probabilities (N, K) float32, {method: (N, H, W) float32 maps in [0, 1]}) for images `x`."""
        x = np.asarray(x, np.float32)
        probs, maps = [], {n: [] for n in self.fused}
        for s in range(0, len(x), self.batch_size):
            chunk = x[s : s + self.batch_size]
            n = len(chunk)
            if n < self.batch_size:  # one input shape: no retrace (nor XLA recompile) for a short batch
                chunk = np.concatenate([chunk, np.repeat(chunk[-1:], self.batch_size - n, axis=0)])
            p, m = self.compiled(tf.constant(chunk))
            probs.append(p.numpy()[:n])
            for name in self.fused:
                maps[name].append(m[name].numpy()[:n])
        out = {n: np.concatenate(maps[n]) if n in maps else e(x) for n, e in self.explainers.items()}
        return np.concatenate(probs), out


def map_key(method: str) -> str:
    """A method's key in the .npz files: '+' written 'p' (gradcam++ -> gradcampp)."""
    return method.replace("+", "p")


def overlay_outputs(rel: str, image: np.ndarray, maps: Mapping[str, np.ndarray]) -> Dict[str, bytes]:
    """One image's overlays, PNGs of `viz.overlay`: {overlays/<rel>.<method>.png: bytes}."""
    out: Dict[str, bytes] = {}
    for name, m in maps.items():
        buf = io.BytesIO()
        Image.fromarray(viz.overlay(image, m)).save(buf, format="PNG")
        out[overlay_name(rel, name)] = buf.getvalue()
    return out


def image_outputs(rel: str, image: np.ndarray, maps: Mapping[str, np.ndarray], probs: np.ndarray,
                  overlays: bool = True, maps_dtype: str = DTYPES[0]) -> Dict[str, bytes]:
    """One image's files, encoded: {name relative to the output folder: bytes}, the .npz last.

    The .npz holds `predicted` (argmax of `probs`), `probability` (its value) and one (H, W) map per
    method (`map_key`) encoded as `maps_dtype` (`cams.core.mapfiles.encode_npz`; `read_maps` decodes
    any); overlays are PNGs of `viz.overlay`.
    """
    out = overlay_outputs(rel, image, maps) if overlays else {}
    out[npz_name(rel)] = encode_npz({map_key(name): m for name, m in maps.items()}, maps_dtype,
                                    predicted=np.int64(probs.argmax()), probability=np.float32(probs.max()))
    return out


def batch_outputs(rels: Sequence[str], images: np.ndarray, maps: Mapping[str, np.ndarray], probs: np.ndarray,
                  overlays: bool, maps_dtype: str) -> Tuple[Dict[str, bytes], str]:
    """A batch's files in the "shards" layout: (every image's overlays, then its shard last; the shard's name).

    Args:
        rels: the images' output names; images: (N, H, W, C); maps: {method: (N, H, W)}; probs: (N, K).
        overlays: also the PNG overlays; maps_dtype: as `image_outputs`.
    """
    out: Dict[str, bytes] = {}
    if overlays:
        for j, rel in enumerate(rels):
            out.update(overlay_outputs(rel, images[j], {m: v[j] for m, v in maps.items()}))
    shard = shard_name(rels)
    out[shard] = encode_shard(rels, {map_key(m): v for m, v in maps.items()}, probs, maps_dtype)
    return out, shard


def write_local(out: str | Path, outputs: Mapping[str, bytes]) -> None:
    """Write `image_outputs` under the local folder `out`, each file atomically, in order (.npz last)."""
    for name, data in outputs.items():
        path = Path(out) / name
        with files.atomic_path(path, suffix=path.suffix) as tmp:
            tmp.write_bytes(data)


def image_stream(paths: Sequence[Path], size: Tuple[int, int], channels: int, scale: float = 1 / 255.0,
                 offset: float = 0.0, batch_size: int = 16) -> tf.data.Dataset:
    """tf.data batches (index, image, why) of `paths` decoded by `load_image`, in order, in parallel threads.

    `why` is b"" for a decoded image; an unreadable file comes back with a zero image and the reason
    (b"not a readable image", b"truncated JPEG ..."). OpenCV releases the GIL while it decodes and
    resizes, so the threads (tf.data AUTOTUNE) decode several files at once.
    """
    h, w = int(size[0]), int(size[1])
    names = [str(p) for p in paths]

    def load(i):
        name = names[int(i)]
        try:
            return load_image(Path(name), (h, w), channels, scale, offset), b""
        except ValueError as err:
            return np.zeros((h, w, channels), np.float32), str(err).removeprefix(name + ": ").encode("utf-8")

    def decode(i):
        image, why = tf.numpy_function(load, [i], (tf.float32, tf.string), stateful=False)
        return tf.cast(i, tf.int32), tf.ensure_shape(image, (h, w, channels)), tf.ensure_shape(why, ())

    ds = tf.data.Dataset.range(len(names)).map(decode, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    return ds.batch(batch_size).prefetch(2)


def prediction_row(path: str, rel: str, predicted, probability, ref: Optional[str] = None) -> Tuple[str, str, int, str]:
    """One row of predictions.csv: (image file, its maps (`ref`, by default its .npz), the predicted class,
    its probability to 6 decimals)."""
    return path, ref or npz_name(rel), int(predicted), f"{float(probability):.6f}"


def read_prediction(path: str, rel: str, source) -> tuple:
    """The predictions.csv row of an image explained before, read from its .npz.

    Args:
        path: the image file (`input_key` form); rel: its output name; source: the .npz's path or a
            binary file object holding it.

    Returns:
        `prediction_row`, with class and probability empty when the .npz cannot be read.
    """
    try:
        with np.load(source) as z:
            return prediction_row(path, rel, z["predicted"], z["probability"])
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile):
        return path, npz_name(rel), "", ""


def shard_rows(out, existing: Set[str]) -> Dict[str, Tuple[str, int, float]]:
    """{output name: (its reference `maps/shards/<digest>.npz#<row>`, predicted class, probability)} of
    every image in the shards among `existing` (an unreadable shard counts as not written)."""
    found: Dict[str, Tuple[str, int, float]] = {}
    for name in sorted(n for n in existing if SHARD_NAME.match(n)):
        try:
            index = shard_index(Path(out) / name)
        except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile):
            continue
        found.update({rel: (f"{name}#{row}", predicted, probability)
                      for row, (rel, predicted, probability) in enumerate(index)})
    return found


def _earlier_rows(folder: OutputFolder) -> Dict[str, tuple]:
    """{file: row} of the predictions.csv an earlier run of this job wrote (empty when there is none)."""
    path = folder.path(PREDICTIONS)
    if not folder.owns(PREDICTIONS) or not path.is_file():
        return {}
    with open(path, encoding="utf-8", newline="") as f:
        rows = list(csv.reader(f))
    return {r[0]: tuple(r) for r in rows[1:] if len(r) == len(PREDICTIONS_HEADER)}


def explain_folder(
    model,
    inputs: Sequence[str | Path],
    out: str | Path,
    explainers: Dict[str, object],
    size: Optional[Tuple[int, int]] = None,
    scale: float = 1 / 255.0,
    offset: float = 0.0,
    batch_size: int = 16,
    overlays: bool = True,
    progress: bool = True,
    layer: Optional[str] = None,
    lcam: Optional[str | Path] = None,
    restart: bool = False,
    maps_dtype: str = DTYPES[0],
    jit: bool = False,
    maps_layout: str = LAYOUTS[0],
) -> BatchReport:
    """Explain every image under `inputs` with each explainer in `explainers` (name -> explainer).

    Args:
        model: the Keras classifier the explainers were built for.
        inputs: image files and/or folders (searched recursively).
        out: output folder (maps/, overlays/ and predictions.csv go under it; see the module docstring
            for what a rerun does with what is already there).
        explainers: {method name: explainer}, e.g. from `cams.methods.registry.make_explainer`.
        size: (H, W) for models that accept any size.
        scale: pixel (0..255) * scale + offset is what the model sees.
        offset: see `scale`.
        batch_size: images per batch.
        overlays: also write the PNG overlays.
        progress: show a progress bar.
        layer: the --layer the explainers were built with (recorded as a setting).
        lcam: the --lcam file the explainers were built with (recorded as a setting).
        restart: delete this job's own earlier outputs in `out` first (also after a change of settings).
        maps_dtype: the maps' encoding in the .npz files: "float16" (default), "uint8" or "float32"
            (compressed) (`cams.core.mapfiles`; `cams.distributed.read_maps` reads any back as float32).
        jit: compile the batch function with XLA (`BatchExplainer`).
        maps_layout: "files" (one .npz per image, default) or "shards" (one .npz per batch; predictions.csv
            points at `maps/shards/<digest>.npz#<row>`).

    Returns:
        A `BatchReport`: images found, already done before this run, explained now, unreadable.

    Raises:
        ValueError: before any work, for an `out` that overlaps an input, a user file in the way or an
            earlier run with other settings (without `restart`).
    """
    check_out(out, inputs, lcam=lcam)
    shape = image_size(model, size)
    found, folders = list_local(inputs)
    names = output_names(found, folders)
    methods = list(explainers)
    settings = job_settings(model, inputs, methods, shape, scale, offset, overlays, layer, file_digest(lcam),
                            maps_dtype, maps_layout)
    folder, existing = open_output(out, settings, derived_names(names.values(), methods, overlays, maps_layout),
                                   restart)
    in_shards = shard_rows(folder.folder, existing) if maps_layout == "shards" else {}
    done = set(in_shards) if maps_layout == "shards" else {r for r in names.values() if npz_name(r) in existing}
    todo = [k for k in found if names[k] not in done]
    report = BatchReport(total=len(found), done_before=len(found) - len(todo), out=Path(out))
    # shown while the first batch is decoded and the model traced (the first call's wait)
    bar = tqdm(total=len(todo), desc="decoding the first batch, tracing the model", unit="img", disable=not progress)
    explain_batch = BatchExplainer(model, explainers, min(batch_size, max(len(todo), 1)), jit=jit)
    rows = _explain_stream(explain_batch, [found[k] for k in todo], todo, names, folder.folder, shape, scale, offset,
                           (overlays, maps_dtype, maps_layout), bar, report)
    earlier, todo = _earlier_rows(folder), set(todo)
    for k in (k for k in found if k not in todo):
        row = earlier.get(k)
        if names[k] in in_shards:
            rows.append(prediction_row(k, names[k], *in_shards[names[k]][1:], ref=in_shards[names[k]][0]))
        else:
            rows.append(row if row and row[1] == npz_name(names[k]) else
                        read_prediction(k, names[k], folder.path(npz_name(names[k]))))
    files.write_csv(folder.path(PREDICTIONS), PREDICTIONS_HEADER, sorted(rows, key=lambda r: r[0]))
    folder.record(PREDICTIONS)
    return report


def _explain_stream(explain_batch: BatchExplainer, paths: Sequence[Path], keys: Sequence[str], names: Mapping[str, str],
                    out: Path, shape: Tuple[int, int, int], scale: float, offset: float, encoding: Tuple[bool, str, str],
                    bar: tqdm, report: BatchReport) -> List[tuple]:
    """Explain and write `paths` (their `keys` and output `names`) with `encoding` (overlays, maps
    dtype, layout), counting on `bar`; counts go to `report`; the predictions.csv rows."""
    h, w, c = shape
    rows: List[tuple] = []
    threads = writer_threads(encoding[0])
    with ThreadPoolExecutor(max_workers=threads) as writers:  # encode and write while the next batch runs
        pending: List[Future] = []
        for idx, x, why in image_stream(paths, (h, w), c, scale, offset, explain_batch.batch_size):
            idx, x, why = idx.numpy(), x.numpy(), why.numpy()
            ok = why == b""
            for i, reason in zip(idx[~ok], why[~ok]):
                report.skipped.append((str(paths[i]), reason.decode("utf-8")))
            idx, x = idx[ok], x[ok]
            if len(x):
                probs, maps = explain_batch(x)
                batch = [(keys[i], names[keys[i]]) for i in idx]
                pending.append(writers.submit(_write_batch, out, batch, x, maps, probs, *encoding))
                bar.set_description("explaining", refresh=False)
            while len(pending) > threads:  # bounded memory: at most this many batches wait
                rows += pending.pop(0).result()
            bar.update(len(idx) + int((~ok).sum()))
        for done in pending:
            rows += done.result()
    bar.close()
    report.explained += len(rows)
    return rows


def _write_batch(out: Path, batch: Sequence[Tuple[str, str]], images: np.ndarray, maps: Mapping[str, np.ndarray],
                 probs: np.ndarray, overlays: bool, maps_dtype: str = DTYPES[0], layout: str = "files") -> List[tuple]:
    """Encode and write each image's outputs (`image_outputs`, .npz last, or the batch's `batch_outputs`,
    shard last); their predictions.csv rows."""
    if layout == "shards":
        outputs, shard = batch_outputs([name for _, name in batch], images, maps, probs, overlays, maps_dtype)
        write_local(out, outputs)
        return [prediction_row(key, name, probs[j].argmax(), probs[j].max(), ref=f"{shard}#{j}")
                for j, (key, name) in enumerate(batch)]
    rows = []
    for j, (key, name) in enumerate(batch):
        write_local(out, image_outputs(name, images[j], {m: v[j] for m, v in maps.items()}, probs[j], overlays,
                                       maps_dtype))
        rows.append(prediction_row(key, name, probs[j].argmax(), probs[j].max()))
    return rows
