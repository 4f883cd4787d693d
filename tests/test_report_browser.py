"""The report of the demo run in a real browser: headless Chromium (Debian package chromium)
opens results/report/index.html from disk; every image must load, the score table must hold the
demo's data sets and stages (RELION's LoG picker among them as a peer), the 2D classes must be
there, and the screenshot must show something.

The demo run is the bundled default config (U-Net, both demo data sets) with the peers and the
2D classification on, in a temporary directory."""

from __future__ import annotations

import json
import os
import re
import subprocess
from pathlib import Path

import numpy as np
import pytest
import yaml

from tests.conftest import REPO, requires, snakemake_command

pytestmark = [
    pytest.mark.relion,
    requires("chromium", "Debian package chromium"),
    requires("relion_autopick", "Debian package relion"),
]

# Loads the report in an iframe (file:// pages may read each other with
# --allow-file-access-from-files), waits for every image, and writes what it found as JSON
# into the page, which Chromium's --dump-dom prints.
HARNESS = """<!DOCTYPE html><html><body><pre id="result">pending</pre>
<iframe id="report" src="REPORT" style="width:1400px;height:900px"></iframe>
<script>
const frame = document.getElementById("report");
frame.addEventListener("load", async () => {
  const doc = frame.contentDocument;
  const images = Array.from(doc.images);
  images.forEach(img => { img.loading = "eager"; });
  await Promise.all(images.map(img => img.complete ? null : new Promise(done => {
    img.addEventListener("load", done); img.addEventListener("error", done); })));
  const tables = Array.from(doc.querySelectorAll("#scores table tbody tr")).map(
    row => Array.from(row.cells).map(cell => cell.textContent));
  document.getElementById("result").textContent = JSON.stringify({
    images: images.map(img => [img.getAttribute("src"), img.naturalWidth]),
    rows: tables,
    skipped: Array.from(doc.querySelectorAll(".skipped")).map(p => p.textContent),
    cards: doc.querySelectorAll(".gallery a.card").length,
    circles: doc.querySelectorAll(".gallery a.card circle").length,
    missed: doc.querySelectorAll(".gallery a.card rect").length,
    reproduce: doc.getElementById("reproduce").textContent,
  });
});
</script></body></html>"""


def _chromium(*args: str, timeout: int = 120) -> subprocess.CompletedProcess:
    return subprocess.run(
        ["chromium", "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
    )


@pytest.fixture(scope="module")
def demo_report(tmp_path_factory) -> Path:
    """The report of the demo run (default config, peers and 2D classes on)."""
    workdir = tmp_path_factory.mktemp("demo_report")
    config = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
    for dataset in config["datasets"].values():
        for key in ("micrographs", "ground_truth", "ground_truth_masks"):
            if key in dataset:
                dataset[key] = str(REPO / dataset[key])
    config["report"].update({"peers": ["relion_log", "topaz"], "classify2d": True})
    config_path = workdir / "demo.yaml"
    config_path.write_text(yaml.safe_dump(config))
    result = subprocess.run(
        snakemake_command(workdir, config_path, "--cores", "2"),
        capture_output=True,
        text=True,
        timeout=1800,
        env={**os.environ, "PYTHONHASHSEED": "0"},
    )
    assert result.returncode == 0, result.stderr[-6000:]
    return workdir / "results" / "report" / "index.html"


def test_report_renders_in_chromium(demo_report, tmp_path):
    harness = tmp_path / "harness.html"
    harness.write_text(HARNESS.replace("REPORT", demo_report.as_uri()))
    result = _chromium(
        "--allow-file-access-from-files",
        "--virtual-time-budget=20000",
        "--dump-dom",
        harness.as_uri(),
    )
    found = re.search(r'<pre id="result">(.*?)</pre>', result.stdout, re.S)
    assert found and found.group(1) != "pending", result.stdout[-2000:] + result.stderr[-2000:]
    page = json.loads(
        found.group(1).replace("&amp;", "&").replace("&lt;", "<").replace("&gt;", ">")
    )

    broken = [src for src, width in page["images"] if width == 0]
    assert page["images"] and not broken, f"images that did not load: {broken}"
    sources = [src for src, _ in page["images"]]
    # a gallery card per shown micrograph (3 + 3 in the demo), plots and 2D classes per set
    assert page["cards"] == 6
    assert sum("_classes" in s for s in sources) == 2
    assert sum("precision_recall" in s for s in sources) == 2
    assert page["circles"] > 100 and page["missed"] > 0  # picks drawn; missed labels marked

    stages = {(row[0], row[1]) for row in page["rows"]}
    for dataset in ("demo_empiar10017", "demo_synthetic"):
        for stage in ("baseline", "unet", "final", "relion_log"):
            assert (dataset, stage) in stages, f"{dataset}/{stage} missing from {sorted(stages)}"
    assert all(row[2] == "1" for row in page["rows"] if row[1] == "relion_log")  # a peer
    if not any(row[1] == "topaz" for row in page["rows"]):
        assert any("topaz" in line for line in page["skipped"]), "absent topaz not named"
    assert "sha256" in page["reproduce"] and "snakemake" in page["reproduce"]


def test_report_screenshot_is_not_blank(demo_report, tmp_path):
    from PIL import Image

    shot = tmp_path / "report.png"
    result = _chromium(
        "--window-size=1400,2200",
        "--virtual-time-budget=10000",
        f"--screenshot={shot}",
        demo_report.as_uri(),
    )
    assert shot.is_file(), result.stderr[-2000:]
    pixels = np.asarray(Image.open(shot).convert("L"), float)
    assert pixels.shape == (2200, 1400)
    # mostly not the page background: header, micrographs and plots fill the view
    background = np.median(pixels)
    assert np.mean(np.abs(pixels - background) > 30) > 0.15
    assert pixels.std() > 30
