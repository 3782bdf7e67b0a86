#!/usr/bin/env python
"""Size and opening time of `cams report` pages: 1,000 images x 4 methods, and a page of 20,000 rows.

Builds the report of a made-up run with `cams.report.write_report` (no model: the pictures are
224x224 crops of scikit-image's photographs and smooth maps drawn over them with `cams.viz.overlay`,
so the JPEG thumbnails weigh what real ones do), then opens it from file:// in headless Chromium
(`cams.report.browser`, the DevTools protocol) and reads the browser's own paint timing
(`first-contentful-paint`, from the start of the navigation) and the time to the load event.
Prints the time to build, the size on disk (page + thumbnails) and the medians of --reps openings.

    python scripts/bench_report.py                 # 1,000 x 4 plus the 20,000-row page
    python scripts/bench_report.py --images 200 --big 0
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np  # noqa: E402

METHODS = ("gradcam", "gradcam++", "scorecam", "layercam")


def made_up_run(n: int):
    """Entries and a pictures function for `n` images: crops of three photographs, blob-shaped maps."""
    from skimage import data, transform

    from cams.report import Entry
    from cams.viz import overlay

    photos = [transform.resize(p, (320, 320), anti_aliasing=True) for p in (data.astronaut(), data.chelsea(),
                                                                             data.coffee())]
    rng = np.random.default_rng(0)
    probs, classes = rng.uniform(0.3, 1.0, n), rng.integers(0, 10, n)
    entries = [Entry(f"photos/{i:05d}.jpg", int(k), float(p), f"class {k}", {"AD(100%) (gradcam)": float(rng.random())})
               for i, (k, p) in enumerate(zip(classes, probs))]
    yy, xx = np.mgrid[0:224, 0:224] / 223.0

    def pictures(i):
        r = np.random.default_rng(i)
        y0, x0 = r.integers(0, 96, 2)
        image = photos[i % 3][y0:y0 + 224, x0:x0 + 224]
        maps = {}
        for m in METHODS:
            cy, cx = r.uniform(0.2, 0.8, 2)
            maps[m] = overlay(image, np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) * r.uniform(5, 20)))
        return (image * 255).astype(np.uint8), maps

    return entries, pictures


def folder_size(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


#: the first contentful paint's time in ms from the start of the navigation, once the browser has painted
FCP = ("new Promise(done => new PerformanceObserver(list => { "
       "const e = list.getEntriesByName('first-contentful-paint'); if (e.length) done(e[0].startTime); })"
       ".observe({type: 'paint', buffered: true}))")


def open_times(page: Path, reps: int):
    """Medians over `reps` fresh browsers of (first contentful paint, load event) in seconds."""
    from cams.report.browser import Chromium

    paints, loads = [], []
    for _ in range(reps):
        with Chromium() as browser:
            loads.append(browser.open(page.as_uri()))
            fcp = browser.evaluate(FCP)
            paints.append((fcp or float("nan")) / 1000)
            shown = browser.evaluate("document.querySelectorAll('#rows tr').length")
    return statistics.median(paints), statistics.median(loads), shown


def main(argv=None) -> int:
    from cams.report import check_report, write_report
    from cams.report.browser import find_chromium
    from cams.report.page import page_data, render

    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--images", type=int, default=1000)
    ap.add_argument("--big", type=int, default=20000, help="rows of the second page (no thumbnails); 0 skips it")
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--out", default=None, help="folder for the reports (default: a temporary one)")
    ap.add_argument("--reuse", action="store_true", help="time the report already in --out/run instead of building it")
    args = ap.parse_args(argv)
    if not find_chromium():
        print("no Chromium found (apt-get install chromium): cannot time the page", file=sys.stderr)
        return 1
    root = Path(args.out or tempfile.mkdtemp(prefix="bench-report-"))
    start = time.perf_counter()
    if args.reuse:
        page, built = root / "run" / "report.html", float("nan")
    else:
        entries, pictures = made_up_run(args.images)
        page = write_report(check_report(root / "run"), entries, pictures, METHODS, {"model": "made-up"}, "bench")
        built = time.perf_counter() - start
    size = folder_size(root / "run")
    fcp, load, shown = open_times(page, args.reps)
    print(f"{args.images} images x {len(METHODS)} methods: built in {built:.1f} s; {size / 1e6:.1f} MB on disk "
          f"(page {page.stat().st_size / 1e6:.2f} MB, {len(list((root / 'run' / 'report_files').rglob('*.jpg')))} "
          f"thumbnails); first contentful paint {fcp:.2f} s, load event {load:.2f} s (median of {args.reps}), "
          f"{shown} rows on the first page")
    if args.big:
        big, _ = made_up_run(args.big)
        html = render(page_data(big, METHODS, {}, "report_files"), {"model": "made-up"}, "bench, big")
        path = root / "big" / "report.html"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(html, encoding="utf-8")
        fcp, load, shown = open_times(path, args.reps)
        print(f"{args.big} rows (page only, {path.stat().st_size / 1e6:.1f} MB): first contentful paint {fcp:.2f} s, "
              f"load event {load:.2f} s (median of {args.reps}), {shown} rows on the first page")
    print(f"reports in {root}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
