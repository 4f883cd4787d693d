"""The report's parts without a browser: which micrographs the gallery shows, what a card
draws, the preview images, the reproducibility facts and the report options from the config.
(tests/test_report_browser.py renders the demo run's report in Chromium.)"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from cryopick.io import file_sha256
from cryopick.previews import EXCLUDED_TINT, preview_image
from cryopick.provenance import git_commit, rebuild_command
from cryopick.report_gallery import Drawing, GalleryItem, card_html, gallery_sample
from cryopick.workflow.plan import report_options
from tests.conftest import REPO


def _counts(n: int, flags: dict[int, str]) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "micrograph": [f"m{i:03d}" for i in range(n)],
            "n_picks": [0 if i in flags else 100 for i in range(n)],
            "flag": [flags.get(i, "") for i in range(n)],
        }
    )


def test_gallery_shows_every_warned_and_failed_micrograph_and_a_spread_sample():
    counts = _counts(200, {5: "no picks", 150: "few picks"})
    items = gallery_sample(counts, {"bad": "unreadable"}, size=4, max_flagged=10)
    names = [item.name for item in items]
    assert names[:3] == ["bad", "m005", "m150"]  # warned and failed first
    assert items[0].error == "unreadable" and items[1].reason == "no picks"
    sampled = names[3:]
    assert len(sampled) == 4 and sampled[0] == "m000" and sampled[-1] == "m199"
    assert len(set(names)) == len(names)
    # a set that is mostly warned about shows at most max_flagged of those
    many = gallery_sample(_counts(100, {i: "no picks" for i in range(90)}), {}, 4, max_flagged=8)
    assert sum(item.reason != "" for item in many) == 8
    # verdicts of the exclusion stage count as warnings
    verdicts = gallery_sample(_counts(10, {}), {}, 2, 10, warnings={"m004": "crystalline_ice"})
    assert verdicts[0] == GalleryItem("m004", "crystalline_ice")


def test_a_card_marks_matched_false_and_missed_picks():
    picks = pd.DataFrame(
        {"x": [100.0, 300.0, 900.0], "y": [100.0, 300.0, 50.0], "score": [0.9, 0.5, 0.2]}
    )
    truth = pd.DataFrame({"x": [104.0, 296.0, 600.0], "y": [100.0, 300.0, 600.0]})
    drawing = Drawing(1000, 800, picks, diameter=60.0, truth=truth)
    assert drawing.matched.tolist() == [True, True, False]
    assert drawing.missed.tolist() == [[600.0, 600.0]]
    assert drawing.counts["precision"] == pytest.approx(2 / 3)
    svg = drawing.svg()
    assert svg.count("<circle") == 3 and svg.count("stroke-dasharray") == 1  # the false pick
    assert svg.count("<rect") == 1 and 'viewBox="0 0 1000 800"' in svg
    html = card_html(GalleryItem("m1", "few picks"), "view_m1", "assets/m1.jpg", drawing)
    assert 'href="#view_m1"' in html and 'id="view_m1"' in html and "few picks" in html
    failed = card_html(GalleryItem("m2", "failed", "m2.mrc: not an MRC file"), "v", None, None)
    assert "not an MRC file" in failed and "<img" not in failed
    # without labels every pick is drawn solid
    assert "stroke-dasharray" not in Drawing(1000, 800, picks, 60.0).svg()


def test_preview_keeps_the_aspect_ratio_and_shades_excluded_areas():
    canvas = np.full((1024, 1024), 100, np.uint8)
    preview = preview_image(canvas, (512, 1024), size=256)  # a 1:2 micrograph on its canvas
    assert preview.shape == (128, 256) and preview.dtype == np.uint8
    excluded = np.zeros((1024, 1024), bool)
    excluded[:, :512] = True
    shaded = preview_image(canvas, (512, 1024), 256, excluded)
    assert shaded.shape == (128, 256, 3)
    left, right = shaded[:, :100].mean(axis=(0, 1)), shaded[:, 156:].mean(axis=(0, 1))
    assert right.tolist() == [100, 100, 100]
    assert left[0] > 100 and left[0] - left[2] > 50 and EXCLUDED_TINT[0] > EXCLUDED_TINT[2]
    assert preview_image(canvas, (100, 80), 256).shape == (100, 80)  # never scaled up


def test_reproducibility_facts(tmp_path):
    assert len(git_commit(REPO).split()[0]) == 40
    assert git_commit(tmp_path) == "not a git checkout"
    model = tmp_path / "m.pt"
    model.write_bytes(b"abc")
    assert file_sha256(model).startswith("ba7816bf")
    command = rebuild_command(
        "/r/Snakefile", "/w", ["/w/my data.yaml"], "results/report/index.html"
    )
    assert command == (
        "snakemake -s /r/Snakefile --directory /w --cores 1 --configfile '/w/my data.yaml' "
        "--forcerun report results/report/index.html"
    )


def test_report_options_name_the_skipped_peers():
    config = {
        "report": {
            "title": "t",
            "gallery_size": 3,
            "gallery_flagged": 5,
            "peers": ["topaz"],
            "topaz_command": "no-such-topaz",
            "classify2d": False,
        },
        "unet": {"enabled": False},
        "sam": {"checkpoint": None},
    }
    options = report_options(config)
    assert options["peers"] == ["topaz"] and "no-such-topaz" in options["skipped_peers"]["topaz"]
