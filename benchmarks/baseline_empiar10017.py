"""Baseline blob picker vs RELION 3.1's LoG picker on the EMPIAR-10017 development set.

    .venv/bin/python benchmarks/baseline_empiar10017.py [--data ../shared/data/empiar10017]

Scores every picker with cryopick.metrics (Hungarian matching within 0.5 and 0.25 x diameter,
pooled P/R/F1, mean Dice) and times it per micrograph. RELION runs on MRC copies of the JPGs
(`relion_autopick --LoG`, diameters 90-150 px, --shrink 0 --lowpass 20, thresholds 0 and 1).
``--grid`` also sweeps the baseline's settings (in-sample: a tuning aid, not a held-out score).
Writes benchmarks/results/baseline_empiar10017.{tsv,md}.
"""

from __future__ import annotations

import argparse
import itertools
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd
import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from cryopick.datasets import list_micrographs  # noqa: E402
from cryopick.denoise import Denoised, DenoiseSettings, denoise_image, frame_for  # noqa: E402
from cryopick.io import read_coordinates, read_micrograph, write_mrc, write_relion_micrographs_star  # noqa: E402
from cryopick.metrics import score_micrograph, summarise  # noqa: E402
from cryopick.picking import BlobSettings, pick_blobs  # noqa: E402

PIXEL_SIZE = 1.77
DIAMETER_PX = 108.0


def score(name_to_picks: dict, truth: dict, shapes: dict) -> dict:
    rows = [
        score_micrograph(n, p, truth[n], DIAMETER_PX, shapes[n]).row()
        for n, p in name_to_picks.items()
    ]
    return summarise(pd.DataFrame(rows))


def run_relion_log(micrographs: dict, images: dict, thresholds) -> dict:
    out = {}
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        (tmp / "Micrographs").mkdir()
        for name, image in images.items():
            write_mrc(tmp / "Micrographs" / f"{name}.mrc", image, PIXEL_SIZE)
        write_relion_micrographs_star(
            tmp / "mics.star", [f"Micrographs/{name}.mrc" for name in images], PIXEL_SIZE
        )
        for threshold in thresholds:
            odir = f"LoG_{threshold}/"
            start = time.perf_counter()
            subprocess.run(
                [
                    "relion_autopick",
                    "--i",
                    "mics.star",
                    "--odir",
                    odir,
                    "--pickname",
                    "autopick",
                    "--LoG",
                    "--LoG_diam_min",
                    f"{90 * PIXEL_SIZE}",
                    "--LoG_diam_max",
                    f"{150 * PIXEL_SIZE}",
                    "--shrink",
                    "0",
                    "--lowpass",
                    "20",
                    "--LoG_adjust_threshold",
                    str(threshold),
                ],
                cwd=tmp,
                check=True,
                capture_output=True,
            )
            seconds = (time.perf_counter() - start) / len(images)
            picks = {
                n: read_coordinates(tmp / odir / "Micrographs" / f"{n}_autopick.star")
                for n in images
            }
            out[threshold] = (picks, seconds)
    return out


GRID = {
    "sigma_factor": [0.08, 0.1, 0.12],
    "threshold": [1.0, 1.5, 2.0, 2.5],
    "min_distance": [0.5, 0.6],
    "edge_margin": [1.0, 1.2],
}


def tune_and_cross_validate(denoised: dict, truth: dict, shapes: dict, out: Path) -> list[dict]:
    """Sweep GRID; score each setting per micrograph once, then (a) the in-sample best and
    (b) 2-fold cross-validation: tune on one half of the micrographs, score the other half."""
    names = sorted(denoised)
    per_setting = []
    for values in itertools.product(*GRID.values()):
        setting = dict(zip(GRID, values))
        blob = BlobSettings(**setting)
        per = pd.DataFrame(
            [
                score_micrograph(
                    n,
                    pick_blobs(d, DIAMETER_PX / d.frame.scale, blob),
                    truth[n],
                    DIAMETER_PX,
                    shapes[n],
                ).row()
                for n, d in denoised.items()
            ]
        )
        per_setting.append((setting, per))
    grid = pd.DataFrame([{**s, **summarise(per)} for s, per in per_setting])
    grid = grid.sort_values("f1", ascending=False)
    print(grid.head(8).to_string(index=False, float_format=lambda v: f"{v:.3f}"))
    grid.to_csv(out / "baseline_grid_empiar10017.tsv", sep="\t", index=False)
    halves = [names[0::2], names[1::2]]
    held_out = []
    for train, test in (halves, halves[::-1]):
        best = max(
            per_setting, key=lambda sp: summarise(sp[1][sp[1]["micrograph"].isin(train)])["f1"]
        )
        print(f"tuned on {len(train)} micrographs: {best[0]}")
        held_out.append(best[1][best[1]["micrograph"].isin(test)])
    best_setting = grid.iloc[0][list(GRID)].to_dict()
    return [
        {
            "picker": "cryopick baseline (DoG)",
            "setting": f"in-sample best {best_setting}",
            **grid.iloc[0][[c for c in grid.columns if c not in GRID]].to_dict(),
            "seconds_per_micrograph": float("nan"),
        },
        {
            "picker": "cryopick baseline (DoG)",
            "setting": "2-fold CV of the tuning (held out)",
            **summarise(pd.concat(held_out)),
            "seconds_per_micrograph": float("nan"),
        },
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--data", default=str(REPO.parent / "shared/data/empiar10017"))
    parser.add_argument("--out", default=str(REPO / "benchmarks/results"))
    parser.add_argument("--grid", action="store_true")
    args = parser.parse_args()
    data = Path(args.data)
    config = yaml.safe_load((REPO / "config/config.yaml").read_text())
    denoise_settings = DenoiseSettings.from_config(config["denoise"])
    blob = BlobSettings.from_config(config["baseline"])

    micrographs = list_micrographs(str(data / "micrographs/*.jpg"))
    truth, shapes, images, denoised = {}, {}, {}, {}
    timings = {"read": 0.0, "denoise": 0.0, "pick": 0.0}
    picks = {}
    for name, path in micrographs.items():
        t0 = time.perf_counter()
        image = read_micrograph(path).image
        t1 = time.perf_counter()
        frame = frame_for(image.shape, denoise_settings.size)
        canvas = denoise_image(image, denoise_settings, frame)
        t2 = time.perf_counter()
        denoised[name] = Denoised(canvas, frame, PIXEL_SIZE * frame.scale)
        picks[name] = pick_blobs(denoised[name], DIAMETER_PX / frame.scale, blob)
        t3 = time.perf_counter()
        timings["read"] += t1 - t0
        timings["denoise"] += t2 - t1
        timings["pick"] += t3 - t2
        images[name], shapes[name] = image, image.shape
        truth[name] = read_coordinates(data / "coordinates" / f"{name}.csv")
    n = len(micrographs)
    rows = [
        {
            "picker": "cryopick baseline (DoG)",
            "setting": "config/config.yaml",
            **score(picks, truth, shapes),
            "seconds_per_micrograph": sum(timings.values()) / n,
        }
    ]
    print(
        f"baseline seconds per micrograph: read {timings['read'] / n:.2f}, "
        f"denoise {timings['denoise'] / n:.2f}, pick {timings['pick'] / n:.2f}"
    )

    if shutil.which("relion_autopick"):
        for threshold, (log_picks, seconds) in run_relion_log(micrographs, images, (0, 1)).items():
            rows.append(
                {
                    "picker": "RELION 3.1 LoG",
                    "setting": f"threshold {threshold}",
                    **score(log_picks, truth, shapes),
                    "seconds_per_micrograph": seconds,
                }
            )
    else:
        print("relion_autopick not found: RELION rows left out")

    if args.grid:
        rows += tune_and_cross_validate(denoised, truth, shapes, Path(args.out))

    table = pd.DataFrame(rows)
    columns = [
        "picker",
        "setting",
        "n_picks",
        "n_truth",
        "precision",
        "recall",
        "f1",
        "precision_r025",
        "recall_r025",
        "f1_r025",
        "dice",
        "seconds_per_micrograph",
    ]
    table = table[columns]
    print(table.to_string(index=False, float_format=lambda v: f"{v:.3f}"))
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    table.to_csv(out / "baseline_empiar10017.tsv", sep="\t", index=False, float_format="%.4f")
    (out / "baseline_empiar10017.md").write_text(
        f"EMPIAR-10017 development set ({n} micrographs, {int(table['n_truth'].iloc[0])} labels); "
        "pooled scores, Hungarian matching within 0.5 x diameter (P/R/F1) and 0.25 x diameter "
        "(*_r025).\n\n" + table.to_markdown(index=False, floatfmt=".3f") + "\n"
    )


if __name__ == "__main__":
    main()
