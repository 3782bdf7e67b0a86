"""The report in a real browser: headless Chromium opens report.html from file:// and the test reads
and drives the page through the DOM (Chrome DevTools protocol, `cams.report.browser`).

Skipped, with the reason, where no Chromium is installed; CI installs Debian's `chromium` (.ci/run)
and sets CAMS_REQUIRE_BROWSER=1, under which a missing browser fails instead.
"""
import json
import os

import numpy as np
import pytest
from PIL import Image

from cams.report.browser import Chromium, find_chromium

MISSING = ("no Chromium on this machine (apt-get install chromium, or set $CHROMIUM): the report's browser test "
           "cannot run")
REQUIRED = os.environ.get("CAMS_REQUIRE_BROWSER") == "1"
pytestmark = pytest.mark.skipif(find_chromium() is None and not REQUIRED, reason=MISSING)
N, METHODS, NAMES = 120, ["gradcam", "gradcam++", "scorecam"], ["cat", "dog", "owl"]


@pytest.fixture(scope="module")
def page(tmp_path_factory):
    """A report of 120 made-up images in 3 classes with 3 methods and a score, open in Chromium."""
    from cams.report import Entry, check_report, write_report
    from cams.viz import overlay

    if find_chromium() is None:
        pytest.fail(MISSING + " (CAMS_REQUIRE_BROWSER=1)")
    out = tmp_path_factory.mktemp("browser")
    rng = np.random.default_rng(0)
    probs = rng.uniform(0.34, 1.0, N).round(6)
    classes = rng.integers(0, 3, N)
    entries = [Entry(f"photos/img{i:03d}.png", int(k), float(p), NAMES[k], {"AD(100%) (gradcam)": float(i % 7)})
               for i, (k, p) in enumerate(zip(classes, probs))]
    yy, xx = np.mgrid[0:32, 0:32] / 31.0

    def pictures(i):
        image = np.stack([xx, yy, np.full_like(xx, (i % 10) / 10)], -1)
        cams = {m: np.exp(-((xx - (j + 1) / 4) ** 2 + (yy - 0.5) ** 2) * 8) for j, m in enumerate(METHODS)}
        return (image * 255).astype(np.uint8), {m: overlay(image, c) for m, c in cams.items()}

    folder = check_report(out)
    path = write_report(folder, entries, pictures, METHODS, {"model": "made-up", "layer": "conv"}, "browser test")
    with Chromium(width=1400, height=1000) as browser:
        browser.open(path.as_uri())
        yield {"browser": browser, "path": path, "out": out, "probs": probs, "classes": classes}


def rows(browser):
    return browser.evaluate("Array.from(document.querySelectorAll('#rows tr')).map(tr => ({file: tr.dataset.file, "
                            "cls: +tr.dataset.class, p: +tr.dataset.probability, methods: Array.from("
                            "tr.querySelectorAll('td[data-method]')).map(td => td.dataset.method)}))")


def choose(browser, element, value):
    browser.evaluate(f"(() => {{ const e = document.getElementById({json.dumps(element)}); "
                     f"e.value = {json.dumps(value)}; e.dispatchEvent(new Event('change')); }})()")


def test_every_image_and_every_method_is_shown_page_by_page(page):
    b = page["browser"]
    headers = b.evaluate("Array.from(document.querySelectorAll('#head th')).map(th => th.textContent)")
    assert headers[-3:] == ["Grad-CAM", "Grad-CAM++", "Score-CAM"] and "AD(100%) (gradcam)" in headers
    seen = []
    for page_number in range(1, 4):  # 50 rows per page: 50, 50, 20
        shown = rows(b)
        assert len(shown) == min(50, N - 50 * (page_number - 1))
        assert all(r["methods"] == METHODS for r in shown)
        seen += [r["file"] for r in shown]
        b.evaluate("document.getElementById('next').click()")
    assert seen == [f"photos/img{i:03d}.png" for i in range(N)]
    choose(b, "page", "1")
    b.evaluate("document.getElementById('page').dispatchEvent(new Event('change'))")
    loaded = b.evaluate("new Promise(r => setTimeout(() => r(Array.from(document.querySelectorAll('#rows img'))"
                        ".slice(0, 8).map(i => i.complete && i.naturalWidth)), 300))")
    assert loaded == [32] * 8  # the first rows' thumbnails are loaded from report_files/


def test_sorting_by_probability_and_filtering_by_class_change_what_is_shown(page):
    b, probs, classes = page["browser"], page["probs"], page["classes"]
    choose(b, "sort", "probability")
    choose(b, "dir", "desc")
    shown = rows(b)
    order = sorted(range(N), key=lambda i: (-probs[i], -i))[:50]
    assert [r["p"] for r in shown] == pytest.approx(sorted(probs, reverse=True)[:50])
    assert {r["file"] for r in shown} == {f"photos/img{i:03d}.png" for i in order}
    choose(b, "class", "1")
    shown = rows(b)
    assert {r["cls"] for r in shown} == {1} and len(shown) == min(50, int((classes == 1).sum()))
    assert [r["p"] for r in shown] == pytest.approx(sorted(probs[classes == 1], reverse=True)[:50])
    assert "class=1" in b.evaluate("location.hash") and "sort=probability" in b.evaluate("location.hash")
    box = "document.querySelector('#methods input[value=\"gradcam++\"]')"
    b.evaluate(f"{box}.checked = false; {box}.dispatchEvent(new Event('change'))")
    assert all(r["methods"] == ["gradcam", "scorecam"] for r in rows(b))  # the method selector hides a column
    b.evaluate(f"{box}.checked = true; {box}.dispatchEvent(new Event('change'))")
    choose(b, "class", "")
    choose(b, "sort", "index")


def test_the_page_makes_no_network_request(page):
    b = page["browser"]
    assert b.requests and b.requests[0] == page["path"].as_uri()
    assert [u for u in b.requests if not u.startswith(("file://", "data:"))] == []
    thumbs = (page["out"] / "report_files").as_uri()
    assert all(u.startswith(thumbs) for u in b.requests[1:])
    b.evaluate("new Promise(r => { addEventListener('hashchange', () => setTimeout(r, 0), {once: true}); "
               "location.hash = 'audit=1'; })")  # the page lists what it loaded and any CSP violation
    audit = json.loads(b.evaluate("document.getElementById('audit').textContent"))
    assert audit["violations"] == [] and audit["rows"] == N


def test_screenshot_shows_the_table(page, tmp_path):
    shot = page["browser"].screenshot(tmp_path / "report.png")
    pixels = np.asarray(Image.open(shot).convert("RGB")).astype(int)
    assert pixels.shape[:2] == (1000, 1400)
    assert pixels.std() > 30  # not a blank page
    colours = {tuple(c) for c in pixels[200:, :].reshape(-1, 3)[::7]}
    assert len(colours) > 500  # thumbnails and overlays, not only text on a flat background
    hot = (pixels[..., 0] > 200) & (pixels[..., 1] < 80) & (pixels[..., 2] < 80)
    assert hot.sum() > 100  # the red centres of the overlays' jet colour map
