"""The report page: one row of data per image, rendered with Jinja2 into a self-contained HTML file."""
from __future__ import annotations

import datetime
import math
import platform
from collections import Counter
from dataclasses import dataclass, field
from importlib import metadata
from typing import Dict, List, Mapping, Optional, Sequence

#: rows per page unless the URL asks for another size
PAGE_SIZE = 50
#: the fixed columns of a row, before the per-image scores
COLUMNS = ("file", "class", "name", "probability")


@dataclass
class Entry:
    """One explained image as the report lists it.

    Args:
        file: the image's path (shown and searched).
        predicted: the predicted (top-1) class.
        probability: its softmax probability (None when the run did not record it).
        name: the class's name ("" when unknown).
        scores: per-image scores, e.g. {"pointing game (gradcam)": 1.0, "AD(100%) (gradcam)": 12.5}.
    """

    file: str
    predicted: int
    probability: Optional[float]
    name: str = ""
    scores: Dict[str, float] = field(default_factory=dict)


def versions() -> Dict[str, str]:
    """{package: installed version} of cams, keras, tensorflow and Python (without importing them)."""
    found = {"python": platform.python_version()}
    for key, dist in (("cams", "keras-cams"), ("keras", "keras"), ("tensorflow", "tensorflow")):
        try:
            found[key] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            found[key] = "not installed"
    return found


def _number(value, digits: Optional[int] = None) -> Optional[float]:
    """`value` as a float (rounded to `digits`), or None when it is missing or not finite (JSON has no NaN)."""
    try:
        value = float(value)
    except (TypeError, ValueError):
        return None
    if not math.isfinite(value):
        return None
    return round(value, digits) if digits is not None else value


def page_data(entries: Sequence[Entry], methods: Sequence[str], titles: Mapping[str, str], thumbs: str,
              page_size: int = PAGE_SIZE) -> dict:
    """What the page's script reads (embedded as JSON): columns, rows, classes, methods and scores.

    Row i's thumbnails are `<thumbs>/<i // 1000>/<i>.<k>.jpg`, k = 0 for the image and k = 1.. for
    `methods` in order (`cams.report.thumbs.thumb_name`).
    """
    scores: List[str] = list(dict.fromkeys(k for e in entries for k in e.scores))
    rows = [[e.file, int(e.predicted), e.name, _number(e.probability, 6)]
            + [_number(e.scores.get(s)) for s in scores] for e in entries]
    counts = Counter((int(e.predicted), e.name) for e in entries)
    classes = [[k, name, n] for (k, name), n in sorted(counts.items())]
    return {"columns": [*COLUMNS, *scores], "rows": rows, "classes": classes, "methods": list(methods),
            "titles": dict(titles), "scores": scores, "thumbs": thumbs, "page_size": int(page_size)}


def render(data: dict, settings: Mapping[str, object], title: str, display: int = 96) -> str:
    """The report's HTML: the Jinja2 template `templates/report.html.j2` (CSS and JS inlined) with `data`.

    Args:
        data: `page_data`.
        settings: the run's settings shown in the page (model, layer, methods, ...).
        title: the page's title.
        display: the thumbnails' size on screen in CSS pixels.
    """
    import jinja2

    env = jinja2.Environment(loader=jinja2.PackageLoader("cams.report", "templates"),
                             autoescape=jinja2.select_autoescape(("html", "j2")), keep_trailing_newline=True)
    created = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    return env.get_template("report.html.j2").render(
        data=data, settings={str(k): _shown(v) for k, v in settings.items()}, versions=versions(), title=title,
        methods=data["methods"], titles=data["titles"], count=len(data["rows"]), created=created, display=int(display))


def _shown(value) -> str:
    if isinstance(value, (list, tuple)):
        return ", ".join(map(str, value))
    return "" if value is None else str(value)
