"""Names of the explanation methods on the command line (no TensorFlow import)."""
from __future__ import annotations

from typing import Sequence

from cams import METHOD_NAMES, METHOD_TITLES

from .errors import BengaliXAIError

#: command-line name -> (display name, cams class name), from cams' own tables
METHODS = {name: (METHOD_TITLES[name], METHOD_NAMES[name]) for name in ("gradcam", "gradcam++", "smoothgradcam++", "scorecam")}


def parse_methods(text: str | Sequence[str]) -> list[str]:
    """'gradcam,scorecam' -> ['gradcam', 'scorecam'], checking each name."""
    names = [m.strip().lower() for m in (text.split(",") if isinstance(text, str) else text) if m.strip()]
    bad = [m for m in names if m not in METHODS]
    if not names:
        raise BengaliXAIError(f"no method given; choose from {', '.join(METHODS)}")
    if bad:
        raise BengaliXAIError(f"unknown method(s) {', '.join(bad)}; choose from {', '.join(METHODS)}")
    return list(dict.fromkeys(names))
