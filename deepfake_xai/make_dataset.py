"""Generate the embedded planted-face data set (the report's definition of a fake, made offline).

Layout written (the folder layout the trainer reads, plus masks outside the class folders so any
folder-based loader still sees exactly two classes):

    <out>/<name>/{train,val,test}/{real,fake}/<id>.jpg
    <out>/<name>/masks/{train,val,test}/<id>.png     ground truth of the planted region of fake/<id>.jpg
    <out>/<name>/dataset.json                        generator settings and counts

A fake plants the inner-face region of a donor image into a target image with Poisson (seamless)
blending, after aligning the donor face to the target face with a similarity transform. Real and
fake images then go through the same random JPEG compression and noise, so the only trace left is
the planted region itself.
"""
from __future__ import annotations

import os
import shutil
import sys
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterator, Sequence

import cv2
import numpy as np

from cams.core.files import TEMP_PREFIX, write_json
from cams.cli.errors import check_output_path
from cams.core.outputs import OutputFolder, check_apart

from .faces import FaceRegion, center_face_detector, draw_face, faces_from_folder, haar_face_detector

SPLITS = ("train", "val", "test")
DEFAULT_COUNTS = {"train": 1200, "val": 200, "test": 200}


def plant_face(target: np.ndarray, target_face: FaceRegion, donor: np.ndarray, donor_face: FaceRegion,
               rng: np.random.Generator, resample: float | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Plant the donor's face region into the target with seamless blending -> (fake, mask 0/255).

    The donor is aligned to the target face by a similarity transform and passed through
    `resample` x its resolution (default: random in [0.35, 0.75]; 1 = none), the typical trace of a
    face swap; Poisson blending then hides the seam and matches the colours."""
    h, w = target.shape[:2]
    # similarity transform that takes the donor face ellipse onto the target face ellipse
    scale = float(np.sqrt((target_face.ax * target_face.ay) / (donor_face.ax * donor_face.ay)))
    m = cv2.getRotationMatrix2D((donor_face.cx, donor_face.cy), donor_face.angle - target_face.angle, scale)
    m[:, 2] += (target_face.cx - donor_face.cx, target_face.cy - donor_face.cy)
    warped = cv2.warpAffine(donor, m, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT_101)
    if resample is None:
        resample = rng.uniform(0.35, 0.75)
    if resample < 1.0:  # the planted face passes through a lower resolution, as a face-swap output does
        small = cv2.resize(warped, (max(4, int(w * resample)), max(4, int(h * resample))),
                           interpolation=cv2.INTER_AREA)
        warped = cv2.resize(small, (w, h), interpolation=cv2.INTER_LINEAR)
    shrink = rng.uniform(0.9, 1.05)
    region = FaceRegion(target_face.cx, target_face.cy, target_face.ax * shrink, target_face.ay * shrink,
                        target_face.angle)
    mask = region.mask((h, w))
    mask[:2], mask[-2:], mask[:, :2], mask[:, -2:] = 0, 0, 0, 0  # seamlessClone needs a border
    ys, xs = np.nonzero(mask)
    x0, x1, y0, y1 = xs.min(), xs.max(), ys.min(), ys.max()
    center = (int((x0 + x1 + 1) // 2), int((y0 + y1 + 1) // 2))
    mode = cv2.NORMAL_CLONE if rng.random() < 0.7 else cv2.MIXED_CLONE
    cloned = cv2.seamlessClone(warped, target, mask.copy(), center, mode)  # it writes into the mask
    # OpenCV solves the Poisson equation over the whole bounding box, which also shifts pixels
    # outside the ellipse; composite back with a feathered alpha that is zero outside the mask so the
    # mask is exactly the set of pixels that changed.
    inner = cv2.erode(mask, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (5, 5)))
    alpha = cv2.GaussianBlur(inner.astype(np.float32) / 255.0, (0, 0), 1.5) * (mask > 0)
    fake = alpha[..., None] * cloned.astype(np.float32) + (1 - alpha[..., None]) * target.astype(np.float32)
    fake = np.clip(np.rint(fake), 0, 255).astype(np.uint8)
    return fake, mask


def degrade(image: np.ndarray, rng: np.random.Generator, jpeg_quality: tuple[int, int] = (70, 95)) -> bytes:
    """Same post-processing for real and fake: mild blur/noise, then JPEG; returns the encoded bytes."""
    img = image.astype(np.float32)
    if rng.random() < 0.5:
        img = cv2.GaussianBlur(img, (0, 0), rng.uniform(0.3, 0.9))
    img += rng.normal(0, rng.uniform(0.5, 3.0), img.shape)
    img = np.clip(np.rint(img), 0, 255).astype(np.uint8)
    q = int(rng.integers(jpeg_quality[0], jpeg_quality[1] + 1))
    ok, buf = cv2.imencode(".jpg", cv2.cvtColor(img, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, q])
    if not ok:
        raise RuntimeError("JPEG encoding failed")
    return buf.tobytes()


def _split_counts(total: int, fake_fraction: float) -> tuple[int, int]:
    n_fake = int(round(total * fake_fraction))
    return total - n_fake, n_fake


def procedural_source(size: int, seed: int, sensor_noise: bool = True) -> Callable[[], tuple[np.ndarray, FaceRegion]]:
    """A seeded endless source of procedural faces: draw() -> (uint8 RGB size x size, face region);
    `sensor_noise=False` draws them without the camera's noise and blur (faces.draw_face)."""
    rng = np.random.default_rng(seed)
    return lambda: draw_face(rng, size, sensor_noise)


def folder_source(faces: Sequence[tuple[np.ndarray, FaceRegion, Path]], seed: int
                   ) -> Callable[[], tuple[np.ndarray, FaceRegion]]:
    """Cycle through the user's face crops with small random jitter (flip, brightness)."""
    rng = np.random.default_rng(seed)

    def draw() -> tuple[np.ndarray, FaceRegion]:
        img, face, _ = faces[int(rng.integers(len(faces)))]
        img = img.astype(np.float32) * rng.uniform(0.85, 1.15)
        img = np.clip(img, 0, 255).astype(np.uint8)
        if rng.random() < 0.5:
            w = img.shape[1]
            img = img[:, ::-1].copy()
            face = FaceRegion(w - 1 - face.cx, face.cy, face.ax, face.ay, -face.angle)
        return img, face

    return draw


def split_sources(image_size: int, counts: dict[str, int], seed: int = 0,
                  real_images: str | os.PathLike | None = None, face_box: str = "haar",
                  log: Callable[[str], None] = print, sensor_noise: bool = True
                  ) -> tuple[dict[str, Callable[[], tuple[np.ndarray, FaceRegion]]], str]:
    """One face source per split -> ({split: draw()}, origin), draw() giving (uint8 RGB face, region).

    Procedural faces (seeded per split) when `real_images` is None; else the faces found in that
    folder (face_box "haar": OpenCV's Haar cascade, "center": aligned crops), the photos divided
    between the splits in proportion to `counts` so no photo appears in two splits.
    `sensor_noise=False` draws procedural faces without the camera's noise (faces.draw_face).
    """
    sources: dict[str, Callable[[], tuple[np.ndarray, FaceRegion]]] = {}
    if real_images is None:
        for i, split in enumerate(SPLITS):
            sources[split] = procedural_source(image_size, seed * 1000 + i, sensor_noise)
        return sources, "procedural"
    detector = center_face_detector if face_box == "center" else haar_face_detector()
    faces, skipped = faces_from_folder(real_images, image_size, detector)
    for path, why in skipped:
        log(f"skipped {path}: {why}")
    if len(faces) < 2 * len(SPLITS):
        raise ValueError(f"found faces in only {len(faces)} images of {real_images}; need at least "
                         f"{2 * len(SPLITS)} (two per split) to keep the splits apart")
    order = np.random.default_rng(seed).permutation(len(faces))
    total = sum(counts.values())
    start = 0
    for i, split in enumerate(SPLITS):
        n = max(2, int(round(len(faces) * counts[split] / total))) if i < len(SPLITS) - 1 else None
        chunk = order[start:start + n] if n else order[start:]
        start += len(chunk)
        sources[split] = folder_source([faces[j] for j in chunk], seed * 1000 + i)
    return sources, str(real_images)


def iter_progress(n: int, desc: str, show: bool) -> Iterator[int]:
    """range(n), with a tqdm progress bar on stderr when `show`."""
    if not show:
        return iter(range(n))
    from tqdm import tqdm

    return iter(tqdm(range(n), desc=desc, unit="img", leave=False, file=sys.stderr))


def check_counts(counts: dict[str, int]) -> None:
    """Refuse split counts that do not name exactly train, val and test with at least 2 images each.

    Args:
        counts: images per split.
    """
    if set(counts) != set(SPLITS) or any(int(v) < 2 for v in counts.values()):
        raise ValueError(f"counts must give at least 2 images for each of {SPLITS}, got {counts}")


#: the job and command named in a generated data set's run manifest (cams.core.outputs)
JOB, COMMAND = "make-dataset", "deepfake-xai make-dataset"


def check_destination(dest: Path, overwrite: bool, settings: dict | None = None,
                      inputs: dict | None = None, option: str = "--name or --data-root") -> OutputFolder:
    """Refuse, before any work, a destination this command may not write.

    `dest` may be new or empty; a folder with anything in it is replaced only when it holds a data
    set this command generated (its run manifest), with `overwrite`, and nothing but what that run
    wrote. A user's folder is never replaced, --overwrite or not.

    Args:
        dest: the data set folder about to be written.
        overwrite: whether a data set generated earlier may be replaced.
        settings: the generator settings, kept in the new data set's manifest.
        inputs: {option: paths} the data set must stay apart from (e.g. {"--real-images": [folder]}).
        option: the option(s) that choose another destination, for the messages.

    Returns:
        The OutputFolder of `dest` (its `previous` is the earlier data set's manifest, if any).

    Raises:
        ValueError, FileExistsError: one line naming the path in the way and the fix.
    """
    check_apart(dest, inputs or {}, "--data-root/--name")
    check_output_path(str(dest.parent), "--data-root")  # a folder (or none yet) that can be written
    folder = OutputFolder(dest, JOB, COMMAND, settings, option="--name")
    if not (dest.is_dir() and any(dest.iterdir())):
        return folder
    if folder.previous is None:
        raise ValueError(f"{dest} exists and was not generated by {COMMAND}; choose another {option} "
                         f"(a folder of your own is never replaced)")
    if not overwrite:
        raise FileExistsError(f"{dest} already holds a data set generated earlier: pass --overwrite to replace it, "
                              f"or --name to write another data set")
    check_only_generated(folder, option)
    return folder


def check_only_generated(folder: OutputFolder, option: str = "--name") -> None:
    """Refuse to replace a generated data set that also holds something its run did not write.

    Args:
        folder: the data set's OutputFolder.
        option: the option(s) that choose another destination, for the message.

    Raises:
        ValueError: naming the first such file or folder (and how many there are).
    """
    owned = set(folder.files) | {folder.manifest_path.name}
    parents = {p.rsplit("/", i)[0] for p in folder.files for i in range(1, p.count("/") + 1)}
    others = [rel for rel, is_dir in _entries(folder.folder)
              if rel not in owned and not (is_dir and rel in parents)]
    if others:
        more = f" (and {len(others) - 1} more)" if len(others) > 1 else ""
        raise ValueError(f"{folder.folder / others[0]}{more} was not written by {COMMAND}: move it out of "
                         f"{folder.folder} before replacing the data set, or choose another {option}")


def _entries(root: Path) -> Iterator[tuple[str, bool]]:
    """(path relative to root, is a real folder) of everything under root; links are not followed."""
    for dirpath, dirnames, filenames in os.walk(root):
        base = Path(dirpath).relative_to(root)
        for name in dirnames:
            yield (base / name).as_posix(), not (Path(dirpath) / name).is_symlink()
        for name in filenames:
            yield (base / name).as_posix(), False


def write_manifest(folder: Path, settings: dict) -> None:
    """The run manifest of a freshly generated data set in `folder`, listing every file in it.

    Args:
        folder: the (staged) data set folder.
        settings: the generator settings.
    """
    out = OutputFolder(folder, JOB, COMMAND, settings)
    out.record(*sorted(rel for rel, is_dir in _entries(folder) if not is_dir and rel != out.manifest_path.name))


@contextmanager
def staged_folder(dest: Path, prefix: str, check: Callable[[], None] | None = None) -> Iterator[Path]:
    """A temporary folder beside `dest` that replaces `dest` when the block ends without an error.

    On an error (or Ctrl-C) the temporary folder is removed and `dest` is left as it was, so a
    half-written data set never appears under its name.

    Args:
        dest: the folder to write.
        prefix: name prefix of the temporary folder (after cams' TEMP_PREFIX, which no user file has).
        check: called just before an existing `dest` is replaced (e.g. `check_only_generated`), so
            what was added to it meanwhile is refused, not deleted.

    Yields:
        The temporary folder to write into.
    """
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f"{TEMP_PREFIX}{prefix}", dir=dest.parent))
    try:
        yield tmp
        if dest.exists():
            if check is not None:
                check()
            shutil.rmtree(dest)
        os.replace(tmp, dest)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


def planted_settings(image_size: int, counts: dict[str, int], fake_fraction: float, seed: int,
                     real_images, face_box: str) -> dict:
    """What a planted data set depends on (its manifest's settings; the demo reuses a set with the same)."""
    return {"kind": "planted", "image_size": image_size, "counts": dict(counts), "fake_fraction": fake_fraction,
            "seed": seed, "real_images": None if real_images is None else str(real_images), "face_box": face_box}


def generate_dataset(
    out_root: str | os.PathLike = "data",
    name: str = "fakes_dataset",
    image_size: int = 256,
    counts: dict[str, int] | None = None,
    fake_fraction: float = 1 / 3,
    seed: int = 0,
    real_images: str | os.PathLike | None = None,
    face_box: str = "haar",
    overwrite: bool = False,
    progress: bool = True,
    log: Callable[[str], None] = print,
) -> Path:
    """Write the planted-face data set to `<out_root>/<name>`.

    Split sources never overlap: with real_images the photos themselves are divided between the splits.

    Args:
        out_root: parent folder of the data set.
        name: data set folder name.
        image_size: side of the square images in pixels (at least 32).
        counts: total images per split (default train 1200, val 200, test 200).
        fake_fraction: share of fakes in each split, strictly between 0 and 1.
        seed: seed of the faces, the planting and the post-processing.
        real_images: a folder of photos to take faces from instead of procedural faces.
        face_box: how faces are found in real_images: "haar" (OpenCV's Haar cascade) or "center"
            (aligned face crops).
        overwrite: replace a data set this command generated there earlier (never a folder of the user's).
        progress: show tqdm progress bars on stderr.
        log: where progress lines go.

    Returns:
        The data set folder.
    """
    counts = dict(counts or DEFAULT_COUNTS)
    check_counts(counts)
    if not 0.0 < fake_fraction < 1.0:
        raise ValueError(f"--fake-fraction must be between 0 and 1 (exclusive), got {fake_fraction}")
    if image_size < 32:
        raise ValueError(f"--image-size must be at least 32, got {image_size}")
    dest = Path(out_root) / name
    settings = planted_settings(image_size, counts, fake_fraction, seed, real_images, face_box)
    folder = check_destination(dest, overwrite, settings, {"--real-images": [real_images]})

    sources, origin = split_sources(image_size, counts, seed, real_images, face_box, log)

    with staged_folder(dest, f"{name}.", lambda: check_only_generated(folder)) as tmp:
        summary = {}
        for i, split in enumerate(SPLITS):
            rng = np.random.default_rng(seed * 7919 + i)
            summary[split] = _write_planted_split(tmp, split, sources[split], int(counts[split]), fake_fraction,
                                                  rng, progress)
            log(f"{split}: {summary[split]['real']} real, {summary[split]['fake']} fake")
        write_json(tmp / "dataset.json", {
            "generator": "deepfake_xai.make_dataset", "image_size": image_size, "seed": seed,
            "fake_fraction": fake_fraction, "real_source": origin, "counts": summary,
            "layout": "{split}/{real,fake}/<id>.jpg; masks/{split}/<id>.png = planted region of fake/<id>.jpg",
        })
        write_manifest(tmp, settings)
    return dest


def _write_planted_split(folder: Path, split: str, draw: Callable[[], tuple[np.ndarray, FaceRegion]], total: int,
                         fake_fraction: float, rng: np.random.Generator, progress: bool) -> dict[str, int]:
    """Write one split's real JPEGs, planted fakes and their masks under `folder`; returns the counts.

    Faces come from `draw` and every other random choice from `rng`, reals first, then fakes.
    """
    n_real, n_fake = _split_counts(total, fake_fraction)
    for sub in (f"{split}/real", f"{split}/fake", f"masks/{split}"):
        (folder / sub).mkdir(parents=True, exist_ok=True)
    for k in iter_progress(n_real, f"{split} real", progress):
        img, _ = draw()
        (folder / split / "real" / f"{k:05d}.jpg").write_bytes(degrade(img, rng))
    for k in iter_progress(n_fake, f"{split} fake", progress):
        target, target_face = draw()
        donor, donor_face = draw()
        fake, mask = plant_face(target, target_face, donor, donor_face, rng)
        (folder / split / "fake" / f"{k:05d}.jpg").write_bytes(degrade(fake, rng))
        cv2.imwrite(str(folder / "masks" / split / f"{k:05d}.png"), mask)
    return {"real": n_real, "fake": n_fake}
