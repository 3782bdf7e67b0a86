"""Glyph atlas: Bengali digits U+09E6..U+09EF rendered from installed fonts, stored in the package.

Building needs Pillow and the fonts (Debian: fonts-beng-extra, fonts-lohit-beng-bengali,
fonts-noto-core); loading needs neither. The atlas is `bengali_xai/assets/glyphs.npz` with
`glyphs` uint8 (F, 10, S, S) white-on-black, `fonts` (F,) names, `families` (F,) design
families (fonts that draw the same digits share one), `files` (F,) source file names.
"""
from __future__ import annotations

import argparse
import glob
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from .errors import BengaliXAIError

DIGITS = [chr(0x09E6 + d) for d in range(10)]
ATLAS_PATH = Path(__file__).with_name("assets") / "glyphs.npz"
DEFAULT_FONT_GLOBS = (
    "/usr/share/fonts/truetype/fonts-beng-extra/*.ttf",
    "/usr/share/fonts/truetype/lohit-bengali/*.ttf",
    "/usr/share/fonts/truetype/lohit-assamese/*.ttf",
    "/usr/share/fonts/truetype/noto/Noto*Bengali*.ttf",
    "/usr/share/fonts/opentype/noto/Noto*Bengali*",
)
# Fonts of one family (weights, UI variants) and fonts whose digit glyphs are identical up to
# rendering noise are one design family; the train/test split of the synthetic data is made by family so no test design is seen in training.
SAME_DESIGN_THRESHOLD = 0.02


@dataclass(frozen=True)
class GlyphAtlas:
    """Rendered digit glyphs: `glyphs` uint8 (F, 10, S, S), one row per font."""

    glyphs: np.ndarray
    fonts: tuple[str, ...]
    families: tuple[str, ...]

    @property
    def size(self) -> int:
        return int(self.glyphs.shape[-1])


def render_font(path: str, size: int = 64, box: int = 48) -> np.ndarray | None:
    """Render the ten digits of one font, each scaled to fit a `box` px square, centred in `size`.

    Returns uint8 (10, size, size) white on black, or None when the font lacks a digit.
    """
    from fontTools.ttLib import TTFont
    from PIL import Image, ImageDraw, ImageFont

    cmap = TTFont(path, fontNumber=0, lazy=True).getBestCmap() or {}
    if not all(ord(c) in cmap for c in DIGITS):
        return None
    font = ImageFont.truetype(path, size=160)
    out = np.zeros((10, size, size), np.uint8)
    for d, ch in enumerate(DIGITS):
        canvas = Image.new("L", (400, 400), 0)
        ImageDraw.Draw(canvas).text((100, 60), ch, fill=255, font=font)
        ink = np.asarray(canvas)
        ys, xs = np.nonzero(ink > 32)
        if len(ys) == 0:
            return None
        crop = ink[ys.min(): ys.max() + 1, xs.min(): xs.max() + 1]
        h, w = crop.shape
        scale = box / max(h, w)
        nh, nw = max(1, round(h * scale)), max(1, round(w * scale))
        img = np.asarray(Image.fromarray(crop).resize((nw, nh), Image.Resampling.LANCZOS))
        top, left = (size - nh) // 2, (size - nw) // 2
        out[d, top: top + nh, left: left + nw] = img
    return out


def font_names(path: str) -> tuple[str, str]:
    """(full name, family name) from the font's name table; the file stem when unreadable.

    The family drops a trailing " UI" (Noto's UI variants draw the same digits).
    """
    from fontTools.ttLib import TTFont

    try:
        table = TTFont(path, fontNumber=0, lazy=True)["name"]
        full = table.getDebugName(4)
        family = table.getDebugName(16) or table.getDebugName(1)
    except Exception:  # a font without a readable name table
        full = family = None
    full = full or Path(path).stem
    family = (family or full).strip().removesuffix(" UI")
    return full, family


def build_atlas(paths: Sequence[str], size: int = 64, box: int = 48) -> GlyphAtlas:
    """Render every font in `paths` that draws all ten digits; group identical designs."""
    glyphs, fonts, named = [], [], []
    for p in sorted(set(paths)):
        g = render_font(p, size=size, box=box)
        if g is None:
            print(f"skip {p}: does not draw all ten Bengali digits")
            continue
        name, family = font_names(p)
        if name in fonts:
            continue
        glyphs.append(g)
        fonts.append(name)
        named.append(family)
    if len(glyphs) < 3:
        raise BengaliXAIError(
            f"found {len(glyphs)} Bengali fonts, need at least 3; install them with "
            "`apt-get install fonts-beng-extra fonts-lohit-beng-bengali fonts-noto-core`"
        )
    arr = np.stack(glyphs).astype(np.float32) / 255.0
    families: list[str] = []
    for i, fam in enumerate(named):
        for j in range(i):
            if np.abs(arr[i] - arr[j]).mean() < SAME_DESIGN_THRESHOLD:
                fam = families[j]
                break
        families.append(fam)
    return GlyphAtlas(np.stack(glyphs), tuple(fonts), tuple(families))


def save_atlas(atlas: GlyphAtlas, path: str | os.PathLike = ATLAS_PATH) -> Path:
    """Write the atlas as a compressed .npz (atomically)."""
    from cams.core.files import save_npz

    return save_npz(path, glyphs=atlas.glyphs, fonts=np.array(atlas.fonts), families=np.array(atlas.families))


def load_atlas(path: str | os.PathLike = ATLAS_PATH) -> GlyphAtlas:
    """Load the atlas shipped with the package (no font needed)."""
    path = Path(path)
    if not path.is_file():
        raise BengaliXAIError(
            f"glyph atlas {path} is missing; rebuild it with `python scripts/build_bengali_glyph_atlas.py`"
        )
    with np.load(path) as z:
        return GlyphAtlas(z["glyphs"], tuple(str(s) for s in z["fonts"]), tuple(str(s) for s in z["families"]))


def check_atlas_out(out: str | os.PathLike, fonts: Sequence[str], overwrite: bool = False) -> None:
    """Refuse, before rendering, an --out that is a folder, one of the fonts, or an existing file other
    than the package's own atlas (unless `overwrite`).

    Args:
        out: the .npz to write.
        fonts: the font files read.
        overwrite: replace an existing file.

    Raises:
        ValueError: one line naming the path and the fix.
    """
    from cams.core.outputs import check_apart

    check_apart(out, {"FONT": fonts}, "--out")
    path = Path(out)
    if path.is_dir():
        raise ValueError(f"--out {out} is a folder; give the .npz file to write")
    if path.exists() and path.resolve() != ATLAS_PATH.resolve() and not overwrite:
        raise ValueError(f"--out {out} exists and is not the package's atlas; choose another --out (or --overwrite "
                         f"to replace it)")


def main(argv: Sequence[str] | None = None) -> int:
    """Command line of scripts/build_bengali_glyph_atlas.py."""
    ap = argparse.ArgumentParser(description="Rebuild bengali_xai/assets/glyphs.npz from installed Bengali fonts.")
    ap.add_argument("fonts", nargs="*", help="font files (default: the Debian Bengali font folders)")
    ap.add_argument("--out", default=str(ATLAS_PATH), help="output .npz (default: %(default)s)")
    ap.add_argument("--size", type=int, default=64, help="glyph canvas in pixels (default: %(default)s)")
    ap.add_argument("--overwrite", action="store_true",
                    help="replace an existing --out file (the package's own atlas is always replaced)")
    args = ap.parse_args(argv)
    paths = list(args.fonts) or [p for g in DEFAULT_FONT_GLOBS for p in glob.glob(g)]
    try:
        check_atlas_out(args.out, paths, args.overwrite)
    except ValueError as err:
        ap.error(str(err))
    atlas = build_atlas(paths, size=args.size, box=round(args.size * 0.75))
    out = save_atlas(atlas, args.out)
    for f, fam in zip(atlas.fonts, atlas.families):
        print(f"  {f:32s} family: {fam}")
    print(f"wrote {out} ({out.stat().st_size / 1024:.0f} KiB, {len(atlas.fonts)} fonts, "
          f"{len(set(atlas.families))} design families)")
    return 0
