"""Explain a large folder of images without holding it in memory, resuming where it stopped.

Images stream through tf.data (decoded in a background thread, `batch_size` at a time); for each
image `<out>/maps/<relative path>.npz` holds one map per method plus the predicted class and its
probability, and `<out>/overlays/<relative path>.<method>.png` the overlay. Every file is written
atomically and the .npz last, so an existing .npz means that image is complete: a rerun skips it.

The naming (`relative_name`, `npz_name`, `overlay_name`), the per-batch computation
(`BatchExplainer`) and the encoding of one image's outputs (`image_outputs`) are shared with the
Apache Beam pipeline in `cams.distributed.beam`, so both write the same files.
"""
from __future__ import annotations

import io
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Mapping, Optional, Sequence, Tuple

import numpy as np
import tensorflow as tf
from PIL import Image
from tqdm import tqdm

from cams import viz
from cams.core import files
from cams.core import model_graph
from cams.core.base import Explainer, compiled
from cams.core.images import list_images, load_image


#: threads that encode and write outputs while the model explains the next batch (zlib, PNG and file
#: writes release the GIL)
WRITER_THREADS = 2


@dataclass
class BatchReport:
    """What a run did: counts and where things went."""

    total: int = 0
    done_before: int = 0
    explained: int = 0
    skipped: List[Tuple[str, str]] = field(default_factory=list)
    out: Optional[Path] = None


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


def npz_name(rel: str) -> str:
    """Where an image's maps go, relative to the output folder: maps/<rel>.npz."""
    return f"maps/{rel}.npz"


def overlay_name(rel: str, method: str) -> str:
    """Where an image's overlay for `method` goes: overlays/<rel>.<method>.png."""
    return f"overlays/{rel}.{method}.png"


def image_size(model, size: Optional[Tuple[int, int]]) -> Tuple[int, int, int]:
    """(H, W, channels) the images are decoded to: the model's input size, or `size` for any-size models."""
    _, h, w, c = model_graph.input_shape(model)
    if h is None or w is None:
        if size is None:
            raise ValueError("the model accepts any image size: pass size=(H, W) (--size H W)")
        h, w = size
    return int(h), int(w), int(c)


class BatchExplainer:
    """softmax probabilities and every method's maps for a batch of images, in one compiled call where possible.

    Explainers whose `explain_tensor` is what their `__call__` computes (`exportable`, as served by
    `cams.export`) are traced together with softmax(logits) into one tf.function per model, so TF
    runs them in one graph (on a small CNN with Grad-CAM: about 1.5x faster than a `predict`-like
    probability pass plus the explainer's own call); the others are called as usual.

    Args:
        model: the Keras classifier; explainers: {method name: explainer built for `model`};
        batch_size: images per compiled call.
    """

    def __init__(self, model, explainers: Mapping[str, object], batch_size: int = 16):
        self.batch_size = int(batch_size)
        self.explainers = dict(explainers)
        fused = {n: e for n, e in self.explainers.items() if isinstance(e, Explainer) and e.exportable}
        logits = model_graph.logits_function(model)

        def run(x):
            top1 = -tf.ones(tf.shape(x)[:1], tf.int32)
            return tf.nn.softmax(logits(x), axis=-1), {n: e.explain_tensor(x, top1) for n, e in fused.items()}

        _, h, w, c = model_graph.input_shape(model)
        self.fused = list(fused)
        self.compiled = compiled(run, [tf.TensorSpec((None, h, w, c), tf.float32)])

    def __call__(self, x: np.ndarray):
        """(probabilities (N, K) float32, {method: (N, H, W) float32 maps in [0, 1]}) for images `x`."""
        x = np.asarray(x, np.float32)
        probs, maps = [], {n: [] for n in self.fused}
        for s in range(0, len(x), self.batch_size):
            p, m = self.compiled(tf.constant(x[s : s + self.batch_size]))
            probs.append(p.numpy())
            for n in self.fused:
                maps[n].append(m[n].numpy())
        out = {n: np.concatenate(maps[n]) if n in maps else e(x) for n, e in self.explainers.items()}
        return np.concatenate(probs), out


def image_outputs(rel: str, image: np.ndarray, maps: Mapping[str, np.ndarray], probs: np.ndarray,
                  overlays: bool = True) -> Dict[str, bytes]:
    """One image's files, encoded: {name relative to the output folder: bytes}, the .npz last.

    The .npz holds `predicted` (argmax of `probs`), `probability` (its value) and one (H, W) map per
    method ('+' in a name becomes 'p': gradcam++ -> gradcampp); overlays are PNGs of `viz.overlay`.
    """
    out: Dict[str, bytes] = {}
    if overlays:
        for name, m in maps.items():
            buf = io.BytesIO()
            Image.fromarray(viz.overlay(image, m)).save(buf, format="PNG")
            out[overlay_name(rel, name)] = buf.getvalue()
    buf = io.BytesIO()
    np.savez_compressed(buf, predicted=np.int64(probs.argmax()), probability=np.float32(probs.max()),
                        **{name.replace("+", "p"): m for name, m in maps.items()})
    out[npz_name(rel)] = buf.getvalue()
    return out


def remove_partial_files(out: str | Path) -> int:
    """Delete the temporary files a killed run left in <out>/maps and <out>/overlays (the '.name.*' of
    `files.atomic_path`); returns how many. Only for a run that has `out` to itself."""
    stale = [p for sub in ("maps", "overlays") for p in Path(out, sub).rglob(".*") if p.is_file()]
    for p in stale:
        p.unlink(missing_ok=True)
    return len(stale)


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
) -> BatchReport:
    """Explain every image under `inputs` with each explainer in `explainers` (name -> explainer).

    Args:
        model: the Keras classifier the explainers were built for.
        inputs: image files and/or folders (searched recursively).
        out: output folder (maps/ and overlays/ go under it).
        explainers: {method name: explainer}, e.g. from `cams.methods.registry.make_explainer`.
        size: (H, W) for models that accept any size.
        scale, offset: pixel (0..255) * scale + offset is what the model sees.
        batch_size: images per batch.
        overlays: also write the PNG overlays.
        progress: show a progress bar.

    Returns:
        A `BatchReport`: images found, already done before this run, explained now, unreadable.
    """
    h, w, c = image_size(model, size)
    explain_batch = BatchExplainer(model, explainers, batch_size)
    roots = [Path(p) for p in inputs]
    paths = list_images(roots)
    out = Path(out)
    folders = [r.resolve().as_posix() for r in roots if r.is_dir()]
    rel = {p: relative_name(p.resolve().as_posix(), folders) for p in paths}
    remove_partial_files(out)
    todo = [p for p in paths if not (out / npz_name(rel[p])).exists()]
    report = BatchReport(total=len(paths), done_before=len(paths) - len(todo), out=out)
    bar = tqdm(total=len(todo), desc="explaining", unit="img", disable=not progress)
    with ThreadPoolExecutor(max_workers=WRITER_THREADS) as writers:  # encode and write while the next batch runs
        pending: List[Future] = []
        for idx, x, why in image_stream(todo, (h, w), c, scale, offset, batch_size):
            idx, x, why = idx.numpy(), x.numpy(), why.numpy()
            ok = why == b""
            for i, reason in zip(idx[~ok], why[~ok]):
                report.skipped.append((str(todo[i]), reason.decode("utf-8")))
            idx, x = idx[ok], x[ok]
            if len(x):
                probs, maps = explain_batch(x)
                names = [rel[todo[i]] for i in idx]
                pending.append(writers.submit(_write_batch, out, names, x, maps, probs, overlays))
            while len(pending) > WRITER_THREADS:  # bounded memory: at most this many batches wait
                report.explained += pending.pop(0).result()
            bar.update(len(idx) + int((~ok).sum()))
        for done in pending:
            report.explained += done.result()
    bar.close()
    return report


def _write_batch(out: Path, names: Sequence[str], images: np.ndarray, maps: Mapping[str, np.ndarray],
                 probs: np.ndarray, overlays: bool) -> int:
    """Encode and write each image's outputs (`image_outputs`, .npz last); the number written."""
    for j, name in enumerate(names):
        write_local(out, image_outputs(name, images[j], {m: v[j] for m, v in maps.items()}, probs[j], overlays))
    return len(names)
