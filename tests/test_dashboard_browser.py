"""A generated dashboard in real headless Chromium: no JS errors, every plot drawn, user text
shown as text (never run), and a screenshot that is not blank.

Needs Debian's ``chromium`` (``.ci/run`` installs it; ``apt-get install chromium``), or a
browser named by ``$NAS_CHROMIUM``. Without one this test FAILS: it is the only check
that the page works in a browser.
"""
from __future__ import annotations

import html
import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from nas.dashboard import render
from tests.test_dashboard import EVIL, make_store

FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--hide-scrollbars", "--virtual-time-budget=20000"]

# Runs first in <head>: records errors, console.error and alert() calls, then after load
# writes what it saw (and what plotly drew) into the DOM for --dump-dom to show.
PROBE = """<script>
window.__errs = []; window.__alerts = 0;
window.addEventListener("error", function (e) { __errs.push("error: " + e.message); });
window.addEventListener("unhandledrejection", function (e) { __errs.push("rejection: " + e.reason); });
window.alert = function () { __alerts++; };
var __ce = console.error;
console.error = function () { __errs.push("console: " + [].join.call(arguments, " ")); __ce.apply(console, arguments); };
window.addEventListener("load", function () { setTimeout(function () {
  var plots = document.querySelectorAll(".js-plotly-plot"), drawn = 0, points = 0;
  plots.forEach(function (p) {
    if (p.querySelector("svg.main-svg")) drawn++;
    points += p.querySelectorAll(".scatterlayer .point").length; });
  var pre = document.createElement("pre"); pre.id = "nas-probe";
  pre.textContent = JSON.stringify({errors: __errs, alerts: __alerts, plots: plots.length,
    drawn: drawn, points: points, divs: document.querySelectorAll("div.plot").length,
    h1: document.querySelector("h1").textContent,
    answers: (document.getElementById("answers") || {}).textContent || "",
    answersFirst: !!document.getElementById("answers") && !!document.querySelector(".js-plotly-plot")
      && !!(document.getElementById("answers").compareDocumentPosition(
        document.querySelector(".js-plotly-plot")) & Node.DOCUMENT_POSITION_FOLLOWING),
    ids: [].map.call(document.querySelectorAll("[id]"), function (e) { return e.id; })
      .filter(function (i) { return !/^fig/.test(i); }),
    sliders: document.querySelectorAll(".rangeslider-container").length,
    remote: performance.getEntriesByType("resource").map(function (r) { return r.name; })
      .filter(function (u) { return !/^(file|data|blob):/.test(u); }),
    h2: [].map.call(document.querySelectorAll("h2"), function (h) { return h.textContent; })});
  document.body.appendChild(pre); }, 1000); });
</script>"""


def chromium() -> str:
    """The browser executable, or a test failure saying how to install one."""
    for name in (os.environ.get("NAS_CHROMIUM"), "chromium", "chromium-browser", "google-chrome"):
        if name and shutil.which(name):
            return shutil.which(name)
    pytest.fail("no Chromium found: install Debian's chromium (apt-get install -y chromium, as "
                ".ci/run does) or set NAS_CHROMIUM to a Chromium/Chrome executable")


def run_browser(args: list[str], tmp_path: Path) -> subprocess.CompletedProcess:
    """Run headless Chromium with a fresh profile under ``tmp_path``."""
    profile = tmp_path / "profile"
    profile.mkdir(exist_ok=True)
    return subprocess.run([chromium(), *FLAGS, f"--user-data-dir={profile}", *args],
                          capture_output=True, text=True, timeout=180)


@pytest.fixture(scope="module")
def page(tmp_path_factory) -> Path:
    """A dashboard comparing two studies, one named like an XSS attempt."""
    from nas import baselines
    from nas.store import TrialStore
    from nas.zoo import build
    d = tmp_path_factory.mktemp("browser")
    db = d / "nas.db"
    make_store(db, "demo", n=10, config={"sampler": "random"})
    make_store(db, EVIL, space="other_space", n=6, seed=1, fail_at=(), running_at=())
    store = TrialStore(db)
    for name, acc, macs in (("mobilenet_v2", 0.6, 1_000_000), ("resnet50", 0.95, 4_000_000_000)):
        baselines.write(store, "demo", {"name": name, "family": name, "seed": 0, "state": "COMPLETE",
                                        "accuracy": acc, "target_macs": macs, "target_params": 10,
                                        "genotype": build(name).to_json()})
    store.close()
    return render(str(db), ["demo", EVIL], d / "dashboard.html")


def test_dashboard_in_headless_chromium(page, tmp_path):
    probed = tmp_path / "probed.html"
    probed.write_text(page.read_text().replace("<head>", "<head>" + PROBE, 1))
    r = run_browser(["--enable-logging=stderr", "--v=0", "--dump-dom", probed.as_uri()], tmp_path)
    m = re.search(r'<pre id="nas-probe">(.*?)</pre>', r.stdout, re.S)
    assert m, f"the page never finished loading; chromium said:\n{r.stderr[-3000:]}"
    seen = json.loads(html.unescape(m.group(1)))
    assert seen["errors"] == [], seen["errors"]
    assert not re.search(r"Uncaught|SyntaxError", r.stderr), r.stderr[-3000:]
    assert seen["remote"] == []                                 # works offline
    assert seen["alerts"] == 0                                  # the study name did not run
    assert seen["divs"] >= 10 and seen["plots"] == seen["divs"] == seen["drawn"]
    assert seen["points"] > 20                                  # markers were drawn
    assert EVIL in seen["h1"]                                   # shown literally, as text
    assert any(EVIL in h for h in seen["h2"]) and "Design spaces compared: error EDFs" in seen["h2"]
    # the answers lead the page, before any chart
    assert seen["h2"][0] == "Answers" and seen["answersFirst"]
    assert "What matters?" in seen["answers"] and "Does it beat the baselines?" in seen["answers"]
    assert "beats the best baseline at <= its MACs (mobilenet_v2" in seen["answers"]
    assert "noise unknown" in seen["answers"] and "BIASED sample" in seen["answers"]
    assert "random sample of the space" in seen["answers"]
    for section in ("effects", "split-edfs", "baselines", "edfs", "zoo"):
        assert section in seen["ids"], section
    assert "Classic nets (zoo)" in seen["h2"]
    assert seen["sliders"] >= 1                                 # resnet50's DAG: whole-net slider


def test_dashboard_screenshot(page, tmp_path):
    from PIL import Image
    shot = Path(os.environ.get("NAS_SCREENSHOT_DIR", tmp_path)) / "dashboard_browser_test.png"
    r = run_browser(["--window-size=1400,3000", f"--screenshot={shot}", page.as_uri()], tmp_path)
    assert shot.is_file(), f"no screenshot written; chromium said:\n{r.stderr[-3000:]}"
    img = Image.open(shot).convert("RGB")
    assert img.size == (1400, 3000)
    colors = img.resize((350, 750)).getcolors(maxcolors=1 << 16)
    assert colors is None or len(colors) > 200, "the screenshot is (nearly) blank"
    # the plots' area is not white: the Pareto plots sit in the first 1400 pixels
    top = img.crop((0, 300, 1400, 1400)).convert("L")
    dark = sum(1 for v in top.getdata() if v < 200)
    assert dark > 5000, f"only {dark} non-white pixels where the Pareto plots should be"
