"""Open a page in headless Chromium and talk to it over the DevTools protocol (through a pipe, no port).

The report's browser test and `scripts/bench_report.py` use it to load `report.html` from `file://`,
read and change its DOM (`evaluate`), list every request the page made (`requests`) and take a
screenshot. Chromium is started with `--remote-debugging-pipe`: commands go to its file descriptor 3
and replies come from 4, as NUL-terminated JSON messages (the Chrome DevTools Protocol).

    with Chromium() as browser:
        browser.open("file:///tmp/out/report.html")
        rows = browser.evaluate("document.querySelectorAll('#rows tr').length")
        browser.screenshot("shot.png")
"""
from __future__ import annotations

import base64
import json
import os
import select
import shutil
import subprocess
import tempfile
import time
from pathlib import Path
from typing import List, Optional

#: executables tried, in order, by `find_chromium`
NAMES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable", "chrome")


def find_chromium() -> Optional[str]:
    """The path of a Chromium or Chrome executable on the PATH ($CHROMIUM first), or None."""
    given = os.environ.get("CHROMIUM")
    if given and shutil.which(given):
        return shutil.which(given)
    return next((shutil.which(n) for n in NAMES if shutil.which(n)), None)


class Chromium:
    """A headless Chromium with one page, driven over the DevTools protocol.

    Args:
        binary: the executable (default `find_chromium()`).
        width: the window's width in CSS pixels.
        height: the window's height in CSS pixels.
        timeout: seconds to wait for any one reply.
    """

    def __init__(self, binary: Optional[str] = None, width: int = 1280, height: int = 900, timeout: float = 30.0):
        binary = binary or find_chromium()
        if not binary:
            raise RuntimeError("no Chromium found: install it (apt-get install chromium) or set $CHROMIUM")
        self.timeout, self.requests, self._id, self._buffer = timeout, [], 0, b""
        self._events: List[dict] = []
        self._profile = tempfile.mkdtemp(prefix="cams-chromium-")
        to_chrome, self._write = os.pipe()
        self._read, from_chrome = os.pipe()

        def fds():  # the child's fd 3 reads our commands, its fd 4 writes the replies (dup2 makes them inheritable)
            a, b = os.dup(to_chrome), os.dup(from_chrome)
            os.dup2(a, 3)
            os.dup2(b, 4)

        args = [binary, "--headless", "--remote-debugging-pipe", "--disable-gpu", "--no-first-run",
                "--no-default-browser-check", "--disable-extensions", "--disable-background-networking",
                f"--user-data-dir={self._profile}", f"--window-size={width},{height}", "--hide-scrollbars"]
        if hasattr(os, "geteuid") and os.geteuid() == 0:
            args.append("--no-sandbox")  # Chromium refuses to run as root with its sandbox (CI containers)
        self._proc = subprocess.Popen(args + ["about:blank"], preexec_fn=fds, close_fds=False,
                                      stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        os.close(to_chrome)
        os.close(from_chrome)
        target = self.send("Target.createTarget", {"url": "about:blank"})["targetId"]
        self._session = self.send("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
        for domain in ("Page", "Network", "Runtime"):
            self.send(f"{domain}.enable", session=True)
        self.send("Emulation.setDeviceMetricsOverride",
                  {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": False}, session=True)

    def send(self, method: str, params: Optional[dict] = None, session: bool = False) -> dict:
        """Send one DevTools command and return its result (events that arrive meanwhile are kept)."""
        self._id += 1
        message = {"id": self._id, "method": method, "params": params or {}}
        if session:
            message["sessionId"] = self._session
        os.write(self._write, json.dumps(message).encode() + b"\0")
        while True:
            reply = self._next()
            if reply.get("id") == self._id:
                if "error" in reply:
                    raise RuntimeError(f"{method}: {reply['error'].get('message')}")
                return reply.get("result", {})

    def _next(self) -> dict:
        deadline = time.monotonic() + self.timeout
        while b"\0" not in self._buffer:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([self._read], [], [], left)[0]:
                raise TimeoutError(f"Chromium did not answer within {self.timeout} s")
            chunk = os.read(self._read, 1 << 20)
            if not chunk:
                raise RuntimeError("Chromium exited")
            self._buffer += chunk
        raw, self._buffer = self._buffer.split(b"\0", 1)
        message = json.loads(raw)
        if "method" in message:
            self._events.append(message)
            if message["method"] == "Network.requestWillBeSent":
                self.requests.append(message["params"]["request"]["url"])
        return message

    def wait_for(self, event: str) -> dict:
        """Wait for the next DevTools `event` (e.g. "Page.loadEventFired") and return its params."""
        while True:
            for i, e in enumerate(self._events):
                if e["method"] == event:
                    return self._events.pop(i).get("params", {})
            self._next()

    def open(self, url: str) -> float:
        """Load `url` and wait for its load event; the seconds it took."""
        self._events.clear()
        start = time.perf_counter()
        self.send("Page.navigate", {"url": url}, session=True)
        self.wait_for("Page.loadEventFired")
        return time.perf_counter() - start

    def evaluate(self, expression: str):
        """The value of a JavaScript `expression` in the page (promises awaited)."""
        result = self.send("Runtime.evaluate", {"expression": expression, "returnByValue": True,
                                                "awaitPromise": True}, session=True)
        if "exceptionDetails" in result:
            raise RuntimeError(f"{expression[:60]}: {result['exceptionDetails'].get('text')}")
        return result["result"].get("value")

    def screenshot(self, path) -> Path:
        """Save a PNG of the page's viewport to `path`."""
        data = self.send("Page.captureScreenshot", {"format": "png"}, session=True)["data"]
        Path(path).write_bytes(base64.b64decode(data))
        return Path(path)

    def close(self) -> None:
        """Stop the browser and delete its temporary profile."""
        try:
            self.send("Browser.close")
        except (RuntimeError, TimeoutError, OSError):
            pass
        try:
            self._proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self._proc.kill()
            self._proc.wait()
        for fd in (self._read, self._write):
            try:
                os.close(fd)
            except OSError:
                pass
        shutil.rmtree(self._profile, ignore_errors=True)

    def __enter__(self) -> "Chromium":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
