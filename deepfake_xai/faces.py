"""Face sources for the generated data set: procedural faces and faces found in the user's photos.

A face is described by `FaceRegion`, the rotated ellipse that covers the inner face (brows, eyes,
nose, mouth). That ellipse is what `make_dataset.plant_face` cuts out of a donor and plants into a
target, and it becomes the ground-truth mask of the fake.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

import cv2
import numpy as np

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff")


class FaceDetectorUnavailable(RuntimeError):
    """The installed OpenCV has no Haar cascade face detector."""


@dataclass(frozen=True)
class FaceRegion:
    """Rotated ellipse around the inner face: centre (cx, cy), semi-axes (ax, ay), angle in degrees."""

    cx: float
    cy: float
    ax: float
    ay: float
    angle: float = 0.0

    def mask(self, size: tuple[int, int]) -> np.ndarray:
        """Filled ellipse as a uint8 mask (H, W) with values 0/255."""
        m = np.zeros(size, np.uint8)
        cv2.ellipse(m, (int(round(self.cx)), int(round(self.cy))),
                    (max(1, int(round(self.ax))), max(1, int(round(self.ay)))),
                    self.angle, 0, 360, 255, -1, cv2.LINE_8)
        return m

    @classmethod
    def from_box(cls, x: float, y: float, w: float, h: float) -> "FaceRegion":
        """Inner-face ellipse for a face detector box (x, y, w, h): brows to chin, cheek to cheek."""
        return cls(x + w / 2.0, y + h * 0.55, w * 0.36, h * 0.42, 0.0)


# ---------------------------------------------------------------------------------------------
# procedural faces
# ---------------------------------------------------------------------------------------------

_SKIN = np.array([[255, 224, 196], [241, 194, 160], [224, 172, 135], [198, 134, 96],
                  [161, 102, 68], [120, 78, 52], [88, 57, 39]], np.float32)
_HAIR = np.array([[20, 16, 14], [60, 40, 28], [110, 72, 40], [180, 140, 90], [140, 60, 30],
                  [200, 200, 200], [90, 90, 95]], np.float32)
_IRIS = np.array([[70, 45, 25], [40, 90, 140], [60, 110, 60], [110, 80, 40], [30, 30, 30]], np.float32)


def _smooth_noise(rng: np.random.Generator, size: int, cells: int, channels: int = 1) -> np.ndarray:
    """Low-frequency noise in [-1, 1]: random values on a cells x cells grid, bicubically upsampled."""
    small = rng.uniform(-1, 1, (cells, cells, channels)).astype(np.float32)
    big = cv2.resize(small, (size, size), interpolation=cv2.INTER_CUBIC)
    return big.reshape(size, size, channels)


def _background(rng: np.random.Generator, s: int) -> np.ndarray:
    base = rng.uniform(30, 230, 3).astype(np.float32)
    other = rng.uniform(30, 230, 3).astype(np.float32)
    yy, xx = np.mgrid[0:s, 0:s].astype(np.float32) / s
    theta = rng.uniform(0, 2 * np.pi)
    t = (np.cos(theta) * xx + np.sin(theta) * yy)
    t = (t - t.min()) / (t.max() - t.min() + 1e-6)
    img = base * (1 - t[..., None]) + other * t[..., None]
    img += 35 * _smooth_noise(rng, s, int(rng.integers(3, 9)), 3)
    for _ in range(int(rng.integers(2, 7))):  # furniture, windows, posters
        colour = tuple(float(c) for c in rng.uniform(20, 240, 3))
        x0, y0 = rng.integers(0, s, 2)
        w, h = rng.integers(s // 10, s // 2, 2)
        if rng.random() < 0.5:
            cv2.rectangle(img, (int(x0), int(y0)), (int(x0 + w), int(y0 + h)), colour, -1, cv2.LINE_AA)
        else:
            cv2.circle(img, (int(x0), int(y0)), int(w // 2), colour, -1, cv2.LINE_AA)
    img = cv2.GaussianBlur(img, (0, 0), s / 80.0)
    return img


@dataclass(frozen=True)
class _Head:
    """A drawn head: centre (cx, cy), semi-axes a (half width) and b (half height), tilt ang in degrees."""

    cx: float
    cy: float
    a: float
    b: float
    ang: float

    @property
    def rad(self) -> float:
        """The tilt in radians."""
        return np.deg2rad(self.ang)

    def pt(self, u: float, v: float) -> tuple[int, int]:
        """Head coordinates (u along the face width, v down the face) -> pixel."""
        rad = self.rad
        x = self.cx + u * self.a * np.cos(rad) - v * self.b * np.sin(rad)
        y = self.cy + u * self.a * np.sin(rad) + v * self.b * np.cos(rad)
        return int(round(x)), int(round(y))


@dataclass(frozen=True)
class _Eyes:
    """Where the eyes were drawn (head coordinates u, v; width in pixels) and the brow line thickness."""

    u: float
    v: float
    width: float
    brow_t: int


def _colour(col) -> tuple[float, float, float]:
    """An RGB colour clipped to [0, 255], as the float tuple OpenCV draws with."""
    return tuple(float(v) for v in np.clip(col, 0, 255))


def add_sensor_noise(img: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A camera's trace on a float32 RGB image: Gaussian noise of a random standard deviation in
    [1, 4] grey levels, then a Gaussian blur of sigma = side / 300 (the optics). Returns float32."""
    img = img + rng.normal(0, rng.uniform(1, 4), img.shape).astype(np.float32)
    return cv2.GaussianBlur(img, (0, 0), img.shape[0] / 300.0)


def camera(images: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """`add_sensor_noise` on each uint8 RGB image of a stack -> uint8 (rounded, clipped)."""
    out = [np.clip(np.rint(add_sensor_noise(im.astype(np.float32), rng)), 0, 255).astype(np.uint8) for im in images]
    return np.stack(out) if out else np.asarray(images)


def draw_face(rng: np.random.Generator, size: int = 256, sensor_noise: bool = True) -> tuple[np.ndarray, FaceRegion]:
    """Draw a random head-and-shoulders portrait and its inner-face region.

    The random draws come in a fixed order (background, palette, head, features, noise), so a
    seeded generator always gives the same face.

    Args:
        rng: the random generator every choice is drawn from.
        size: side of the square image in pixels.
        sensor_noise: end with `add_sensor_noise` (False: the clean drawing, for a data set that
            applies the same camera to its real and fake images afterwards).

    Returns:
        The portrait (uint8 RGB, size x size) and the inner-face ellipse.
    """
    s = int(size)
    img = _background(rng, s)
    skin, hair, cloth = _random_palette(rng)
    head = _random_head(rng, s)
    _draw_head_and_shoulders(img, rng, head, skin, hair, cloth)
    img = _shade_head(img, rng, head, s)
    _draw_hair_top(img, rng, head, hair)
    eyes = _draw_eyes_and_brows(img, rng, head, skin, hair, s)
    _draw_nose_and_mouth(img, rng, head, skin, eyes, s)
    _draw_beard_and_glasses(img, rng, head, hair, eyes)
    if sensor_noise:
        img = add_sensor_noise(img, rng)
    out = np.clip(np.rint(img), 0, 255).astype(np.uint8)
    face = FaceRegion(*head.pt(0, 0.13), head.a * 0.78, head.b * 0.78, head.ang)
    return out, face


def _random_palette(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Skin, hair and clothing colours (RGB float arrays)."""
    skin = _SKIN[rng.integers(len(_SKIN))] * rng.uniform(0.9, 1.08, 3)
    hair = _HAIR[rng.integers(len(_HAIR))] * rng.uniform(0.85, 1.15, 3)
    cloth = rng.uniform(20, 235, 3)
    return skin, hair, cloth


def _random_head(rng: np.random.Generator, s: int) -> _Head:
    """Head position, size, aspect and tilt for an s x s portrait."""
    cx = s * (0.5 + rng.uniform(-0.07, 0.07))
    cy = s * (0.46 + rng.uniform(-0.05, 0.05))
    a = s * rng.uniform(0.19, 0.25)
    b = a * rng.uniform(1.2, 1.38)
    ang = rng.uniform(-12, 12)
    return _Head(cx, cy, a, b, ang)


def _draw_head_and_shoulders(img: np.ndarray, rng: np.random.Generator, head: _Head, skin: np.ndarray,
                             hair: np.ndarray, cloth: np.ndarray) -> None:
    """Long hair (sometimes), shoulders, neck, ears and the bare head, drawn into img in place."""
    cx, cy, a, b, ang = head.cx, head.cy, head.a, head.b, head.ang
    long_hair = rng.random() < 0.45
    if long_hair:  # hair behind the head and down to the shoulders
        cv2.ellipse(img, head.pt(0, 0.35), (int(a * 1.35), int(b * 1.25)), ang, 0, 360, _colour(hair), -1,
                    cv2.LINE_AA)
    cv2.ellipse(img, (int(cx), int(cy + b * 1.9)), (int(a * 2.3), int(b * 0.95)), 0, 180, 360, _colour(cloth), -1,
                cv2.LINE_AA)
    neck_w = int(a * 0.5)
    cv2.rectangle(img, (int(cx - neck_w), int(cy + b * 0.6)), (int(cx + neck_w), int(cy + b * 1.2)),
                  _colour(skin * 0.85), -1, cv2.LINE_AA)
    for side in (-1, 1):  # ears
        cv2.ellipse(img, head.pt(side * 0.97, 0.05), (int(a * 0.16), int(b * 0.17)), ang, 0, 360,
                    _colour(skin * 0.92), -1, cv2.LINE_AA)
    cv2.ellipse(img, (int(cx), int(cy)), (int(a), int(b)), ang, 0, 360, _colour(skin), -1, cv2.LINE_AA)


def _shade_head(img: np.ndarray, rng: np.random.Generator, head: _Head, s: int) -> np.ndarray:
    """Directional light and blotchy skin texture, inside the head only; returns the shaded image."""
    cx, cy, a, b = head.cx, head.cy, head.a, head.b
    inside = np.zeros((s, s), np.float32)
    cv2.ellipse(inside, (int(cx), int(cy)), (int(a), int(b)), head.ang, 0, 360, 1.0, -1, cv2.LINE_AA)
    yy, xx = np.mgrid[0:s, 0:s].astype(np.float32)
    light = rng.uniform(-1, 1, 2)
    shade = 1.0 + 0.18 * ((xx - cx) / a * light[0] + (yy - cy) / b * light[1]) / 2
    shade += 0.06 * _smooth_noise(rng, s, int(rng.integers(6, 14)))[..., 0]
    return img * (1 - inside[..., None]) + img * inside[..., None] * np.clip(shade, 0.6, 1.3)[..., None]


def _draw_hair_top(img: np.ndarray, rng: np.random.Generator, head: _Head, hair: np.ndarray) -> None:
    """Hair on top of the head, hairline between 40% and 60% of the way up the face."""
    hairline = rng.uniform(-0.6, -0.4)
    cv2.ellipse(img, head.pt(0, hairline), (int(head.a * 1.05), int(head.b * (1.1 + hairline))), head.ang, 180, 360,
                _colour(hair), -1, cv2.LINE_AA)


def _draw_eyes_and_brows(img: np.ndarray, rng: np.random.Generator, head: _Head, skin: np.ndarray,
                         hair: np.ndarray, s: int) -> _Eyes:
    """Both eyes (white, iris looking left or right, pupil, lid line) and brows; returns where they are."""
    ang = head.ang
    eye_v = rng.uniform(-0.2, -0.08)
    eye_u = rng.uniform(0.36, 0.46)
    eye_w, eye_h = head.a * rng.uniform(0.17, 0.23), head.b * rng.uniform(0.05, 0.08)
    iris = _IRIS[rng.integers(len(_IRIS))]
    brow_lift = rng.uniform(0.12, 0.2)
    brow_t = max(1, int(s * rng.uniform(0.008, 0.016)))
    for side in (-1, 1):
        ex, ey = head.pt(side * eye_u, eye_v)
        cv2.ellipse(img, (ex, ey), (int(eye_w), int(eye_h)), ang, 0, 360, (240, 240, 235), -1, cv2.LINE_AA)
        r = max(1, int(eye_h * 0.95))
        gx = int(ex + rng.uniform(-0.3, 0.3) * eye_w)
        cv2.circle(img, (gx, ey), r, _colour(iris), -1, cv2.LINE_AA)
        cv2.circle(img, (gx, ey), max(1, r // 2), (10, 10, 10), -1, cv2.LINE_AA)
        cv2.ellipse(img, (ex, ey), (int(eye_w), int(eye_h)), ang, 180, 360, _colour(skin * 0.45),
                    max(1, brow_t // 2), cv2.LINE_AA)
        b0 = head.pt(side * (eye_u - 0.18), eye_v - brow_lift)
        b1 = head.pt(side * (eye_u + 0.2), eye_v - brow_lift + 0.02)
        cv2.line(img, b0, b1, _colour(hair * 0.8), brow_t, cv2.LINE_AA)
    return _Eyes(eye_u, eye_v, eye_w, brow_t)


def _draw_nose_and_mouth(img: np.ndarray, rng: np.random.Generator, head: _Head, skin: np.ndarray, eyes: _Eyes,
                         s: int) -> None:
    """Nose ridge and nostrils below the eyes, then a closed or smiling mouth."""
    a, b, ang, pt = head.a, head.b, head.ang, head.pt
    line_t = max(1, eyes.brow_t // 2)
    nose_v = rng.uniform(0.12, 0.22)
    cv2.line(img, pt(0.02, eyes.v + 0.05), pt(0.06, nose_v), _colour(skin * 0.75), line_t, cv2.LINE_AA)
    for side in (-1, 1):
        cv2.circle(img, pt(side * 0.1, nose_v + 0.02), max(1, int(s * 0.006)), _colour(skin * 0.5), -1, cv2.LINE_AA)
    mouth_v = rng.uniform(0.38, 0.5)
    mw, mh = a * rng.uniform(0.25, 0.38), b * rng.uniform(0.04, 0.1)
    lip = skin * np.array([0.85, 0.55, 0.55]) * rng.uniform(0.85, 1.1)
    smile = rng.uniform(0, 1)
    mx, my = pt(0, mouth_v)
    if smile > 0.5:
        cv2.ellipse(img, (mx, my), (int(mw), int(mh * 1.4)), ang, 0, 180, _colour(lip), -1, cv2.LINE_AA)
    else:
        cv2.ellipse(img, (mx, my), (int(mw), int(mh)), ang, 0, 360, _colour(lip), -1, cv2.LINE_AA)
    cv2.line(img, pt(-mw / a, mouth_v), pt(mw / a, mouth_v), _colour(lip * 0.5), line_t, cv2.LINE_AA)


def _draw_beard_and_glasses(img: np.ndarray, rng: np.random.Generator, head: _Head, hair: np.ndarray,
                            eyes: _Eyes) -> None:
    """A beard (one face in five) and glasses (one in five), drawn independently."""
    if rng.random() < 0.2:  # beard
        cv2.ellipse(img, head.pt(0, 0.55), (int(head.a * 0.7), int(head.b * 0.4)), head.ang, 0, 180, _colour(hair),
                    -1, cv2.LINE_AA)
    if rng.random() < 0.2:  # glasses
        for side in (-1, 1):
            cv2.circle(img, head.pt(side * eyes.u, eyes.v), int(eyes.width * 1.3), (25, 25, 25),
                       max(1, eyes.brow_t // 2), cv2.LINE_AA)


# ---------------------------------------------------------------------------------------------
# faces in the user's photos
# ---------------------------------------------------------------------------------------------

def haar_face_detector(min_size: int = 40) -> Callable[[np.ndarray], list[tuple[int, int, int, int]]]:
    """OpenCV's bundled frontal-face Haar cascade as a function RGB uint8 image -> [(x, y, w, h)].

    Raises FaceDetectorUnavailable with the fix when this OpenCV build has no cascade (OpenCV 5
    moved `CascadeClassifier` out of the main package).
    """
    cascade_cls = getattr(cv2, "CascadeClassifier", None)
    data_dir = getattr(getattr(cv2, "data", None), "haarcascades", None)
    xml = Path(data_dir or "") / "haarcascade_frontalface_default.xml"
    if cascade_cls is None or not data_dir or not xml.is_file():
        raise FaceDetectorUnavailable(
            f"OpenCV {cv2.__version__} has no bundled Haar cascade (cv2.CascadeClassifier / "
            f"cv2.data.haarcascades missing): install OpenCV 4 (pip install 'opencv-python-headless<5') "
            f"to find faces in --real-images, or pass --face-box center for aligned face crops")
    cascade = cascade_cls(str(xml))

    def detect(image: np.ndarray) -> list[tuple[int, int, int, int]]:
        grey = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)
        grey = cv2.equalizeHist(grey)
        found = cascade.detectMultiScale(grey, scaleFactor=1.1, minNeighbors=5, minSize=(min_size, min_size))
        return [tuple(int(v) for v in box) for box in found]

    return detect


def center_face_detector(image: np.ndarray) -> list[tuple[int, int, int, int]]:
    """For aligned face crops: the face is assumed to fill the central 60% of the image."""
    h, w = image.shape[:2]
    return [(int(w * 0.2), int(h * 0.15), int(w * 0.6), int(h * 0.7))]


def read_rgb(path: str | os.PathLike) -> np.ndarray | None:
    """Read an image file as uint8 RGB, or None when it cannot be decoded."""
    data = np.fromfile(str(path), dtype=np.uint8)
    img = cv2.imdecode(data, cv2.IMREAD_COLOR) if data.size else None
    return None if img is None else cv2.cvtColor(img, cv2.COLOR_BGR2RGB)


def crop_face(image: np.ndarray, box: tuple[int, int, int, int], size: int,
              margin: float = 1.0) -> tuple[np.ndarray, FaceRegion]:
    """Square crop around a detected face box (the box plus `margin` x its size around it), resized."""
    x, y, w, h = box
    side = int(max(w, h) * (1 + margin))
    cx, cy = x + w / 2, y + h / 2
    x0, y0 = int(round(cx - side / 2)), int(round(cy - side / 2))
    padded = cv2.copyMakeBorder(image, side, side, side, side, cv2.BORDER_REFLECT_101)
    crop = padded[y0 + side:y0 + 2 * side, x0 + side:x0 + 2 * side]
    scale = size / side
    crop = cv2.resize(crop, (size, size), interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_CUBIC)
    face = FaceRegion.from_box((x - x0) * scale, (y - y0) * scale, w * scale, h * scale)
    return crop, face


def faces_from_folder(
    folder: str | os.PathLike,
    size: int,
    detector: Callable[[np.ndarray], Sequence[tuple[int, int, int, int]]] | None = None,
) -> tuple[list[tuple[np.ndarray, FaceRegion, Path]], list[tuple[Path, str]]]:
    """Find the largest face in every image of `folder` (recursively) and crop it to size x size.

    Returns (faces, skipped): faces as (crop, region, source path); skipped as (path, reason).
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"--real-images folder not found: {folder}")
    detect = detector or haar_face_detector()
    faces, skipped = [], []
    for path in sorted(p for p in folder.rglob("*") if p.is_file() and not p.name.startswith(".")):
        if path.suffix.lower() not in IMAGE_SUFFIXES:
            skipped.append((path, f"not an image (suffix {path.suffix or 'none'})"))
            continue
        img = read_rgb(path)
        if img is None:
            skipped.append((path, "cannot be decoded"))
            continue
        boxes = list(detect(img))
        if not boxes:
            skipped.append((path, "no face found"))
            continue
        box = max(boxes, key=lambda b: b[2] * b[3])
        crop, face = crop_face(img, box, size)
        faces.append((crop, face, path))
    return faces, skipped
