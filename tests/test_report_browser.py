"""The HTML report in a real browser: headless Chromium driven through chromedriver's
W3C WebDriver HTTP API (httpx, already a dependency: no selenium, nothing downloaded).

For the quickstart's failed rollout and for a promoted one: the page loads with no
console error and fetches nothing, every check's plot is drawn (its series path has a
length, and its screenshot has the series colour's pixels), the failing check comes
first and is marked (badge, breach line, failure point in red pixels), and the page
prints. Screenshots are kept in the test's tmp folder; set GUARDRAIL_REPORT_SCREENSHOTS
to a folder to keep copies (docs/report.png was made that way).
"""

from __future__ import annotations

import base64
import json
import os
import re
import shutil
import struct
import subprocess
import time
import zlib
from pathlib import Path

import httpx
import pytest
from typer.testing import CliRunner

from guardrail.cli import create_app
from support.debian import ensure

REPO = Path(__file__).resolve().parents[1]
QUICKSTART = REPO / "examples" / "quickstart"
pytestmark = pytest.mark.browser

CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--disable-dev-shm-usage", "--hide-scrollbars", "--window-size=1280,1000"]


# -- a minimal WebDriver client ------------------------------------------------------------


class Browser:
    """One chromedriver process and one Chromium session."""

    def __init__(self, tmp: Path):
        chromium = ensure("chromium", "chromium")
        chromedriver = ensure("chromedriver", "chromium-driver")
        # Port 0: chromedriver takes a free port itself and names it. A port found free
        # beforehand could be taken by another process before chromedriver binds it.
        log = tmp / "chromedriver.log"
        with open(log, "w") as out:
            self.process = subprocess.Popen([chromedriver, "--port=0"], stdout=out, stderr=subprocess.STDOUT)
        try:
            deadline = time.monotonic() + 120
            while not (found := re.search(r"started successfully on port (\d+)", log.read_text())):
                assert self.process.poll() is None, f"chromedriver exited:\n{log.read_text()}"
                assert time.monotonic() < deadline, f"chromedriver did not start:\n{log.read_text()}"
                time.sleep(0.1)
            self.http = httpx.Client(base_url=f"http://127.0.0.1:{found.group(1)}", timeout=120)
            while True:
                try:
                    if self.http.get("/status").json()["value"]["ready"]:
                        break
                except httpx.TransportError:
                    pass
                assert time.monotonic() < deadline, "chromedriver did not start"
                time.sleep(0.1)
            options = {"binary": chromium, "args": CHROMIUM_ARGS + [f"--user-data-dir={tmp / 'profile'}"]}
            capabilities = {"browserName": "chrome", "goog:chromeOptions": options,
                            "goog:loggingPrefs": {"browser": "ALL"}}
            session = self._call("POST", "/session", {"capabilities": {"alwaysMatch": capabilities}})
            self.session = f"/session/{session['sessionId']}"
        except BaseException:  # no chromedriver left running after a failed start
            self.process.kill()
            self.process.wait(timeout=30)
            raise

    def _call(self, method: str, path: str, body: dict | None = None):
        response = self.http.request(method, path, json=body)
        value = response.json()["value"]
        assert response.status_code == 200, value
        return value

    def open(self, path: Path) -> None:
        self._call("POST", f"{self.session}/url", {"url": path.as_uri()})
        self.console()  # start each page with an empty log

    def js(self, script: str, *args):
        return self._call("POST", f"{self.session}/execute/sync", {"script": script, "args": list(args)})

    def console(self) -> list[dict]:
        return self._call("POST", f"{self.session}/se/log", {"type": "browser"})

    def find_all(self, css: str) -> list[dict]:
        return self._call("POST", f"{self.session}/elements", {"using": "css selector", "value": css})

    def element_png(self, element: dict) -> bytes:
        element_id = next(iter(element.values()))
        self.js("arguments[0].scrollIntoView({block: 'center'})", element)
        return base64.b64decode(self._call("GET", f"{self.session}/element/{element_id}/screenshot"))

    def full_page_png(self) -> bytes:
        height = self.js("window.scrollTo(0, 0); return document.documentElement.scrollHeight")
        self._call("POST", f"{self.session}/window/rect", {"width": 1280, "height": min(int(height) + 40, 16000)})
        try:
            return base64.b64decode(self._call("GET", f"{self.session}/screenshot"))
        finally:
            self._call("POST", f"{self.session}/window/rect", {"width": 1280, "height": 1000})

    def pdf(self) -> bytes:
        return base64.b64decode(self._call("POST", f"{self.session}/print",
                                           {"orientation": "landscape", "background": True}))

    def close(self) -> None:
        try:
            self.http.delete(self.session)
        finally:
            self.process.terminate()
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=30)


def pixels(png: bytes) -> tuple[int, int, list[tuple[int, int, int]]]:
    """Decode an 8-bit RGB(A) PNG (what Chromium writes) into RGB tuples."""
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    pos, idat = 8, b""
    while pos < len(png):
        length, kind = struct.unpack(">I4s", png[pos:pos + 8])
        chunk = png[pos + 8:pos + 8 + length]
        if kind == b"IHDR":
            width, height, depth, colour, _, _, interlace = struct.unpack(">IIBBBBB", chunk)
        elif kind == b"IDAT":
            idat += chunk
        pos += 12 + length
    assert depth == 8 and interlace == 0 and colour in (2, 6), (depth, colour, interlace)
    n = 4 if colour == 6 else 3
    raw, stride, previous, out = zlib.decompress(idat), width * n, bytearray(width * n), []
    for y in range(height):
        kind, line = raw[y * (stride + 1)], bytearray(raw[y * (stride + 1) + 1:(y + 1) * (stride + 1)])
        for x in range(stride):
            a = line[x - n] if x >= n else 0
            b, c = previous[x], previous[x - n] if x >= n else 0
            if kind == 1:
                line[x] = (line[x] + a) & 255
            elif kind == 2:
                line[x] = (line[x] + b) & 255
            elif kind == 3:
                line[x] = (line[x] + (a + b) // 2) & 255
            elif kind == 4:
                p = a + b - c
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                line[x] = (line[x] + (a if pa <= pb and pa <= pc else b if pb <= pc else c)) & 255
        out += [tuple(line[i:i + 3]) for i in range(0, stride, n)]
        previous = line
    return width, height, out


def series_blue(rgb: tuple[int, int, int]) -> bool:
    r, g, b = rgb
    return b - r > 60 and b - g > 30  # the series stroke (#1f5fa8) and its antialiasing


def fail_red(rgb: tuple[int, int, int]) -> bool:
    r, g, b = rgb
    return r - g > 90 and r - b > 90  # the failure point, breach line and threshold (#c62828)


# -- fixtures --------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    browser = Browser(tmp_path_factory.mktemp("chromium"))
    yield browser
    browser.close()


@pytest.fixture(scope="module")
def reports(tmp_path_factory) -> dict[str, Path]:
    """The quickstart's failed rollout (report written by `rollout --report`) and a promoted
    one (written afterwards by `guardrail report`), each with its own state folder."""
    out = tmp_path_factory.mktemp("reports")
    runner = CliRunner()
    failed = runner.invoke(create_app(), ["rollout", str(QUICKSTART / "rollout.yaml"), "--state",
                                          str(out / "failed" / "state.db"), "--report", str(out / "failed.html")])
    assert failed.exit_code == 1, failed.output
    promoted = runner.invoke(create_app(), ["rollout", str(QUICKSTART / "rollout-healthy.yaml"), "--state",
                                            str(out / "promoted" / "state.db"), "-o", "json"])
    assert promoted.exit_code == 0, promoted.output
    rollout_id = json.loads(promoted.stdout)["rollout_id"]
    written = runner.invoke(create_app(), ["report", rollout_id, "--state", str(out / "promoted" / "state.db"),
                                           "--html", str(out / "promoted.html")])
    assert written.exit_code == 0, written.output
    return {"failed": out / "failed.html", "promoted": out / "promoted.html"}


def _keep(name: str, png: bytes, folder: Path) -> Path:
    path = folder / name
    path.write_bytes(png)
    if os.environ.get("GUARDRAIL_REPORT_SCREENSHOTS"):
        keep = Path(os.environ["GUARDRAIL_REPORT_SCREENSHOTS"])
        keep.mkdir(parents=True, exist_ok=True)
        shutil.copy(path, keep / name)
    return path


def _load_cleanly(browser: Browser, page: Path) -> None:
    browser.open(page)
    assert browser.js("return document.readyState") == "complete"
    errors = [entry for entry in browser.console() if entry["level"] == "SEVERE"]
    assert errors == [], errors
    # Self-contained: nothing fetched (no CDN, no font, no image), no script on the page.
    assert browser.js("return performance.getEntriesByType('resource').length") == 0
    assert browser.js("return document.scripts.length") == 0


def _assert_every_plot_drawn(browser: Browser, folder: Path, prefix: str) -> list[dict]:
    plots = browser.js("""return [...document.querySelectorAll('svg.plot')].map(svg => {
        const path = svg.querySelector('path.series');
        return {check: svg.dataset.check, region: svg.dataset.region, status: svg.dataset.status,
                length: path ? path.getTotalLength() : 0, width: path ? path.getBBox().width : 0,
                d: path ? path.getAttribute('d').length : 0};
    })""")
    articles = browser.js("return [...document.querySelectorAll('article.check')].map(a => a.dataset.check)")
    assert articles and {p["check"] for p in plots} == set(articles), (articles, plots)
    for plot in plots:
        assert plot["d"] > 10 and plot["length"] > 50 and plot["width"] > 20, plot
    for i, element in enumerate(browser.find_all("svg.plot")):
        width, height, rgb = pixels(browser.element_png(element))
        drawn = sum(map(series_blue, rgb))
        # A 1.6-unit stroke: about 1.5 coloured pixels per unit of path length, antialiasing aside.
        assert width > 300 and height > 100 and drawn > max(40, plots[i]["length"] / 2), (plots[i], width, drawn)
        if i == 0:
            _keep(f"{prefix}-first-plot.png", browser.element_png(element), folder)
    return plots


# -- tests -----------------------------------------------------------------------------------


def test_failed_rollout_report_in_chromium(browser, reports, tmp_path):
    _load_cleanly(browser, reports["failed"])
    assert "Rolled back" in browser.js("return document.querySelector('.headline').textContent")
    plots = _assert_every_plot_drawn(browser, tmp_path, "failed")
    # The failing check comes first, is marked, and its plot shows where it broke.
    first = browser.js("""const a = document.querySelector('article.check');
        return {check: a.dataset.check, status: a.dataset.status, badge: a.querySelector('h3 .badge').textContent,
                evidence: a.querySelector('.evidence') ? a.querySelector('.evidence').textContent : ''}""")
    assert first["check"] == "service-restarts/service-restarts" and first["status"] == "fail", first
    assert first["badge"].lower() == "fail"
    assert "sum(increase(service_restarts_total" in first["evidence"] and "1.5" in first["evidence"]
    assert [p["status"] for p in plots if p["check"] == first["check"]] == ["fail"]
    marker = browser.js("""const svg = document.querySelector('svg.plot[data-status="fail"]');
        const point = svg.querySelector('circle.fail-point'), line = svg.querySelector('line.breach');
        const box = point.getBoundingClientRect();
        return {r: point.getBBox().width, visible: box.width > 0 && box.height > 0, line: !!line,
                title: point.querySelector('title').textContent}""")
    assert marker["visible"] and marker["line"] and marker["r"] >= 8, marker
    assert marker["title"].startswith("failed at")
    [failing_plot] = browser.find_all('svg.plot[data-status="fail"]')
    png = browser.element_png(failing_plot)
    _keep("failed-failing-plot.png", png, tmp_path)
    assert sum(map(fail_red, pixels(png)[2])) > 150
    # The timeline draws the bake, the rollback and the recovery, with the decision marked.
    spans = browser.js("""return [...document.querySelectorAll('svg.timeline rect.span')].map(r =>
        [r.classList[1], r.getBBox().width])""")
    kinds = {kind for kind, width in spans if width > 0}
    assert {"span-bake", "span-deploy", "span-rollback", "span-recovery"} <= kinds, spans
    assert browser.js("return document.querySelectorAll('svg.timeline line.mark-fail').length") >= 1
    assert "INC-" in browser.js("return document.querySelector('#incident').textContent")
    full = _keep("failed.png", browser.full_page_png(), tmp_path)
    assert pixels(full.read_bytes())[1] > 1500


def test_promoted_rollout_report_in_chromium(browser, reports, tmp_path):
    _load_cleanly(browser, reports["promoted"])
    assert "Promoted" in browser.js("return document.querySelector('.headline').textContent")
    plots = _assert_every_plot_drawn(browser, tmp_path, "promoted")
    assert {p["status"] for p in plots} == {"pass"}
    assert {p["region"] for p in plots} == {"r1", "r2", "r3"}
    assert browser.js("return document.querySelectorAll('article.check-fail, circle.fail-point').length") == 0
    assert "No incident" in browser.js("return document.querySelector('#incident').textContent")
    _keep("promoted.png", browser.full_page_png(), tmp_path)


def test_the_report_prints(browser, reports):
    browser.open(reports["failed"])
    pdf = browser.pdf()
    assert pdf.startswith(b"%PDF")
    assert pdf.count(b"/Type /Page") - pdf.count(b"/Type /Pages") >= 2
