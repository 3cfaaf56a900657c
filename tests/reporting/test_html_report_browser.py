"""report.html in a real headless browser (Chromium through chromedriver's WebDriver HTTP API,
no Python browser package needed): every image loads, no console errors, the per-class table
sorts on a click, and a screenshot is not blank."""

from __future__ import annotations

import base64
import json
import shutil
import socket
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path

import cv2
import numpy as np
import pytest

from detkit.reporting.report import evaluate_with_report

CHROMEDRIVER = shutil.which("chromedriver")
pytestmark = pytest.mark.skipif(
    CHROMEDRIVER is None or not (shutil.which("chromium") or shutil.which("chromium-browser")),
    reason="needs Chromium and chromedriver (Debian: apt-get install chromium chromium-driver)",
)


class Browser:
    """The few WebDriver calls the test needs, over HTTP to a chromedriver it starts."""

    def __init__(self) -> None:
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        self.driver = subprocess.Popen(
            [CHROMEDRIVER, f"--port={port}"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        self.base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 20
        while True:
            try:
                self.call("GET", "/status")
                break
            except (urllib.error.URLError, ConnectionError):
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)
        options = {"args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--window-size=1280,1600"]}
        capabilities = {
            "browserName": "chrome",
            "goog:chromeOptions": options,
            "goog:loggingPrefs": {"browser": "ALL"},
        }
        self.session = self.call("POST", "/session", {"capabilities": {"alwaysMatch": capabilities}})[
            "sessionId"
        ]

    def call(self, method: str, path: str, body: dict | None = None):
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(
            self.base + path, data=data, method=method, headers={"Content-Type": "application/json"}
        )
        with urllib.request.urlopen(request, timeout=60) as response:
            return json.loads(response.read())["value"]

    def command(self, method: str, path: str, body: dict | None = None):
        return self.call(method, f"/session/{self.session}{path}", body)

    def open(self, page: Path) -> None:
        self.command("POST", "/url", {"url": page.resolve().as_uri()})

    def run(self, script: str):
        return self.command("POST", "/execute/sync", {"script": script, "args": []})

    def console_errors(self) -> list[str]:
        return [
            e["message"]
            for e in self.command("POST", "/se/log", {"type": "browser"})
            if e["level"] == "SEVERE"
        ]

    def click(self, css: str) -> None:
        element = self.command("POST", "/element", {"using": "css selector", "value": css})
        self.command("POST", f"/element/{next(iter(element.values()))}/click", {})

    def screenshot(self) -> np.ndarray:
        png = base64.b64decode(self.command("GET", "/screenshot"))
        return cv2.imdecode(np.frombuffer(png, np.uint8), cv2.IMREAD_COLOR)

    def close(self) -> None:
        try:
            self.command("DELETE", "")
        finally:
            self.driver.terminate()
            self.driver.wait(timeout=20)


@pytest.fixture(scope="module")
def browser():
    opened = Browser()
    yield opened
    opened.close()


@pytest.fixture
def report_dir(make_gt, make_dets, tmp_path) -> Path:
    """An evaluation report with every section but training curves, galleries included."""
    gt = make_gt(
        [
            (1, 1, [0, 0, 100, 100]),
            (1, 2, [200, 200, 300, 300]),
            (2, 3, [50, 50, 150, 120]),
            (2, 1, [300, 40, 340, 90]),
        ],
        names=("cat", "dog", "zebra"),
    )
    dets = make_dets(
        [
            (1, 1, [0, 0, 100, 100], 0.9),
            (1, 1, [200, 200, 300, 300], 0.8),  # a cat on the dog
            (2, 3, [60, 50, 160, 120], 0.7),
            (2, 2, [500, 400, 540, 440], 0.6),  # background
        ]
    )
    rng = np.random.default_rng(0)
    for image_id in (1, 2):
        cv2.imwrite(str(tmp_path / f"{image_id}.jpg"), rng.integers(0, 255, (480, 640, 3), dtype=np.uint8))
    evaluate_with_report(gt, dets, tmp_path / "report", image_dir=tmp_path)
    return tmp_path / "report"


def test_the_console_check_can_fail(browser, tmp_path):
    page = tmp_path / "broken.html"
    page.write_text("<html><body><script>console.error('deliberate')</script></body></html>")
    browser.open(page)
    assert any("deliberate" in message for message in browser.console_errors())


def test_report_renders_in_chromium(browser, report_dir):
    browser.open(report_dir / "report.html")
    images = browser.run(
        "return Array.from(document.images).map(i => [i.getAttribute('src'), i.naturalWidth])"
    )
    sources = [source for source, _ in images]
    assert {"pr_curves.png", "confusion_matrix.png", "errors.png", "errors_classification.jpg"} <= set(
        sources
    )
    assert all(width > 0 for _, width in images), images
    assert browser.console_errors() == []

    column = "return Array.from(document.querySelectorAll('#per-class tbody tr')).map(r => r.cells[{}].textContent)"
    assert browser.run(column.format(0)) == ["cat", "dog", "zebra"]
    browser.click("#per-class thead th:nth-child(6)")  # objects, ascending
    assert browser.run(column.format(5)) == ["1", "1", "2"]
    assert browser.run(column.format(0))[2] == "cat"
    browser.click("#per-class thead th:nth-child(6)")  # objects, descending
    assert browser.run(column.format(5)) == ["2", "1", "1"]
    browser.click("#per-class thead th:nth-child(1)")  # class, ascending
    browser.click("#per-class thead th:nth-child(1)")  # class, descending
    assert browser.run(column.format(0)) == ["zebra", "dog", "cat"]
    assert browser.console_errors() == []

    shot = browser.screenshot()
    assert shot.shape[0] > 500 and shot.shape[1] > 500
    assert shot.std() > 20 and len(np.unique(shot.reshape(-1, 3), axis=0)) > 50  # not one flat colour


def test_comparison_renders_in_chromium(browser, report_dir, tmp_path):
    from detkit.reporting.html_compare import write_comparison_html

    page = write_comparison_html(report_dir, report_dir, tmp_path / "compare.html")
    browser.open(page)
    images = browser.run(
        "return Array.from(document.images).map(i => [i.getAttribute('src'), i.naturalWidth])"
    )
    assert [source for source, _ in images] == ["report/errors.png", "report/errors.png"]
    assert all(width > 0 for _, width in images), images
    assert browser.console_errors() == []
    deltas = browser.run(
        "return Array.from(document.querySelectorAll('#errors tbody tr')).map(r => r.cells[3].textContent)"
    )
    assert deltas == ["+0.00"] * 6  # a run compared with itself
