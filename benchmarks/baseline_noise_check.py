"""Does the baseline's noise check stop picks on pure noise without costing picks on data?

The blob baseline (difference of Gaussians) finds local maxima in anything. Its noise check
(cryopick.picking.blob_signal) drops a micrograph's picks, with a WARNING, when its blobs show
neither a heavy tail of strong blobs nor more strong dark blobs than bright ones. Its two
constants were set by looking at the workflow's training sets (the generator sets of
models/unet_general.yaml and EMPIAR-10017); this scores it on data they did not see:
- pure Gaussian noise at three pixel sizes and particle diameters, raw and filtered;
- the fresh synthetic grid of benchmarks/generality.py (every specimen type, three scales,
  SNR 0.05 / 0.01, raw and filtered renderings; seeds no training set uses);
- the 12 EMPIAR-10017 micrographs (these did help set the constants: in-sample).

    python benchmarks/baseline_noise_check.py

Writes benchmarks/results/baseline_noise_check.{tsv,md}.
"""

from __future__ import annotations

import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.generality import BLOB, CACHE, test_cases  # noqa: E402
from benchmarks.tables import markdown  # noqa: E402
from cryopick.denoise import (  # noqa: E402
    DenoiseSettings,
    denoise_image,
    frame_for,
    load_denoised,
    save_denoised,  # noqa: E402
)
from cryopick.io import read_coordinates  # noqa: E402
from cryopick.metrics import score_micrograph  # noqa: E402
from cryopick.picking import blob_response, blob_signal, edge_valid_mask, pick_blobs  # noqa: E402
from cryopick.synthetic import render_filtered_8bit  # noqa: E402
from cryopick.volumes import ALL_VOLUME_KINDS  # noqa: E402

OUT = ROOT / "benchmarks" / "results"
NOISE_SCALES = ((7.08, 190.0), (1.77, 190.0), (2.0, 90.0), (4.5, 380.0))


def noise_canvases() -> list[tuple[str, Path, float]]:
    """(name, denoised canvas, diameter in file pixels) of pure-noise micrographs."""
    folder = CACHE / "noise"
    folder.mkdir(parents=True, exist_ok=True)
    out = []
    for index, (pixel_size, diameter) in enumerate(NOISE_SCALES):
        for rendering in ("raw", "filtered_8bit"):
            name = f"noise_px{pixel_size}_d{diameter:.0f}_{rendering}"
            npz = folder / f"{name}.npz"
            if not npz.exists():
                image = np.random.default_rng(7000 + index).standard_normal((1024, 1024))
                if rendering == "filtered_8bit":
                    image = render_filtered_8bit(image.astype(np.float32))
                frame = frame_for(image.shape, 1024)
                canvas = denoise_image(image, DenoiseSettings(), frame)
                save_denoised(npz, canvas, frame, pixel_size * frame.scale)
            out.append((name, npz, diameter / pixel_size))
    return out


def signal_row(denoised: Path, d_px: float) -> dict:
    canvas = load_denoised(denoised)
    diameter = d_px / canvas.frame.scale
    response = blob_response(canvas.image, diameter, BLOB, canvas.frame.content_mask)
    valid = edge_valid_mask(canvas.frame, BLOB.edge_margin * diameter)
    signal = blob_signal(response, valid, diameter, BLOB)
    return {
        "strong_tail": signal.strong_tail_fraction,
        "strong_dark": signal.strong_dark,
        "strong_bright": signal.strong_bright,
        "dark_excess_p": signal.dark_excess_p_value,
        "noise": signal.looks_like_noise,
    }


def main() -> None:
    unchecked = replace(BLOB, noise_check=False)
    rows = []
    for name, npz, d_px in noise_canvases():
        canvas = load_denoised(npz)
        picks = pick_blobs(canvas, d_px / canvas.frame.scale, unchecked)
        rows.append(
            {
                "test": "pure noise",
                "rendering": "raw" if name.endswith("raw") else "filtered_8bit",
                "name": name,
                "picks_unchecked": len(picks),
                "picks_checked": len(
                    pick_blobs(canvas, d_px / canvas.frame.scale, BLOB, name=name)
                ),
                **signal_row(npz, d_px),
            }
        )
    for name, _, npz, truth_path, d_px, shape, about in test_cases(tuple(ALL_VOLUME_KINDS), None):
        canvas = load_denoised(npz)
        truth = read_coordinates(truth_path)
        row = {"test": about["test"], "name": name, "rendering": about["rendering"]}
        for label, settings in (("unchecked", unchecked), ("checked", BLOB)):
            picks = pick_blobs(canvas, d_px / canvas.frame.scale, settings, name=name)
            score = score_micrograph(name, picks, truth, d_px, shape).row()
            row[f"picks_{label}"] = len(picks)
            row[f"tp_{label}"] = score["tp"]
            row["n_truth"] = score["n_truth"]
        rows.append({**row, **signal_row(npz, d_px)})
    table = pd.DataFrame(rows)
    OUT.mkdir(parents=True, exist_ok=True)
    table.to_csv(OUT / "baseline_noise_check.tsv", sep="\t", index=False)
    summary = []
    for (test, rendering), group in table.groupby(["test", table["rendering"].fillna("-")]):
        line = {
            "test": test,
            "rendering": rendering,
            "micrographs": len(group),
            "judged noise": int(group["noise"].sum()),
            "picks without check": int(group["picks_unchecked"].sum()),
        }
        line["picks with check"] = int(group["picks_checked"].sum())
        if test != "pure noise":
            for label in ("unchecked", "checked"):
                tp, n = group[f"tp_{label}"].sum(), group[f"picks_{label}"].sum()
                t = group["n_truth"].sum()
                line[f"F1 {label}"] = round(2 * tp / max(n + t, 1), 3)
        summary.append(line)
    summary = pd.DataFrame(summary)
    (OUT / "baseline_noise_check.md").write_text(
        "# Baseline noise check (benchmarks/baseline_noise_check.py)\n\n" + markdown(summary) + "\n"
    )
    print(summary.to_string(index=False))


if __name__ == "__main__":
    main()
