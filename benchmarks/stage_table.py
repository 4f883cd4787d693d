"""Per-stage picking quality and speed: baseline, U-Net, U-Net + CRF (two CRF settings), the
instance-separation variants and the final picks, on (a) EMPIAR-10017 cross-validated and
(b) a synthetic set with exact ground truth.

(a) EMPIAR-10017 (12 real 4096^2 JPGs, CryoPPP labels): the U-Net maps of each micrograph come
from the fold model that never saw it (benchmarks/unet_quality.py's 3 folds, sorted names,
fold = index % 3; checkpoints and their held-out maps are read, never retrained, from
--cv-cache). Picking settings of the new stages are either the fixed defaults or, in the
"tuned" rows, the probability threshold that maximised pooled F1 on the OTHER two folds'
micrographs (their own out-of-fold maps): no micrograph is scored with a model or a threshold
tuned on it.
(b) Synthetic: --synthetic-n micrographs like config demo_synthetic (1024^2, 7.08 A/px,
190 A particles) generated with a seed no model was trained on, scored with the shipped
models/unet_default.pt and models/unet_synthetic.pt, each with its own stored picking
settings; CRF and separation settings are the ones chosen on (a), nothing tuned on (b).

SAM rows cannot be scored: no SAM weights can be had here, and a random-weight SAM's masks
mean nothing. Seconds per micrograph are wall seconds of one process on this shared 2-core CPU
(one thread), the stage's own work; "cumulative" adds the stages it needs.

    .venv/bin/python benchmarks/stage_table.py            # both parts, writes the tables
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.tables import markdown  # noqa: E402
from cryopick.checkpoint import load_model  # noqa: E402
from cryopick.crf import CrfSettings, crf_refine  # noqa: E402
from cryopick.denoise import DenoiseSettings, denoise_file, load_denoised  # noqa: E402
from cryopick.inference import model_input, model_scale, picks_from_prediction, predict  # noqa: E402
from cryopick.instances import MaskPickSettings, picks_from_probability  # noqa: E402
from cryopick.io import read_coordinates  # noqa: E402
from cryopick.metrics import score_micrograph, summarise  # noqa: E402
from cryopick.network_input import input_canvas  # noqa: E402
from cryopick.picking import BlobSettings, FinalSettings, finalize_picks, pick_blobs  # noqa: E402
from cryopick.probability_maps import load_prediction  # noqa: E402
from cryopick.synthetic import SyntheticSettings, micrograph_outputs, write_dataset  # noqa: E402

DATA = ROOT.parent / "shared" / "data" / "empiar10017"
CV_CACHE = ROOT.parent / "wt-unet" / "resources" / "cache"
PIXEL_SIZE = 1.77
DIAMETER_PX = 108.0
BLOB = BlobSettings()  # the workflow's baseline defaults (schema == dataclass, tested)
FINAL = FinalSettings()  # the workflow's final clean-up defaults
CRF_SETTINGS = {
    "Chung & Chou (sdims 10, schan 0.5, compat 1)": CrfSettings(),
    "sdims 5, schan 10, compat 1": CrfSettings(sdims=(5.0, 5.0), schan=10.0),
}
THRESHOLDS = (0.2, 0.3, 0.4, 0.5, 0.6, 0.7)
SEPARATIONS = ("components", "distance", "centre")


class Timer:
    """Wall seconds per named stage, summed over micrographs."""

    def __init__(self):
        self.seconds: dict[str, float] = {}
        self.counts: dict[str, int] = {}

    def run(self, stage: str, fn, *args, **kwargs):
        start = time.perf_counter()
        out = fn(*args, **kwargs)
        self.seconds[stage] = self.seconds.get(stage, 0.0) + time.perf_counter() - start
        self.counts[stage] = self.counts.get(stage, 0) + 1
        return out

    def per_micrograph(self, stage: str) -> float:
        return self.seconds.get(stage, float("nan")) / max(self.counts.get(stage, 0), 1)


def mask_variants(prob, centre, frame, d_px, thresholds=(0.5,)):
    """Picks of every (separation, threshold) from one probability map."""
    out = {}
    for sep in SEPARATIONS:
        for thr in thresholds:
            settings = MaskPickSettings(threshold=thr, separation=sep)
            out[(sep, thr)] = picks_from_probability(prob, frame, d_px, settings, centre=centre)
    return out


def pooled(rows: list[dict]) -> dict:
    return summarise(pd.DataFrame(rows))


def ranked_hits(
    picks: pd.DataFrame, truth: pd.DataFrame, radius: float
) -> tuple[np.ndarray, np.ndarray]:
    """(score, hit) per pick: picks taken best first, each matched to the nearest unmatched
    label within ``radius`` (the detection-AP convention, which rewards a good ranking)."""
    from scipy.spatial import cKDTree

    order = np.argsort(-picks["score"].to_numpy(float), kind="stable")
    xy = picks[["x", "y"]].to_numpy(float)[order]
    t = truth[["x", "y"]].to_numpy(float)
    hits = np.zeros(len(xy), bool)
    if len(t) and len(xy):
        tree, used = cKDTree(t), np.zeros(len(t), bool)
        for i, point in enumerate(xy):
            for j in sorted(
                tree.query_ball_point(point, radius), key=lambda j: np.hypot(*(t[j] - point))
            ):
                if not used[j]:
                    used[j] = hits[i] = True
                    break
    return picks["score"].to_numpy(float)[order], hits


def average_precision(parts: list[tuple[np.ndarray, np.ndarray]], n_truth: int) -> float:
    """Area under the pooled precision-recall curve of picks ranked by figure of merit: 1 when
    every true pick outranks every false one and all particles are found."""
    scores = np.concatenate([p[0] for p in parts]) if parts else np.zeros(0)
    hits = np.concatenate([p[1] for p in parts]) if parts else np.zeros(0, bool)
    hits = hits[np.argsort(-scores, kind="stable")]
    if not hits.any():
        return 0.0
    precision = np.cumsum(hits) / np.arange(1, len(hits) + 1)
    return float((precision * hits).sum() / n_truth)


# ----------------------------------------------------------------------------------------------
# (a) EMPIAR-10017, cross-validated
# ----------------------------------------------------------------------------------------------


def empiar_part(cv_run: str, timer: Timer) -> tuple[pd.DataFrame, list[str]]:
    from PIL import Image

    canvases = {p.stem: p for p in sorted((CV_CACHE / "empiar10017_1024").glob("*.npz"))}
    names = sorted(canvases)
    folds = {n: i % 3 for i, n in enumerate(names)}
    runs = CV_CACHE / cv_run
    picking = {f: load_model(runs / f"fold{f}.pt")[1]["picking"] for f in range(3)}
    # per micrograph: stage/variant -> picks
    picks: dict[str, dict] = {}
    truth, masks = {}, {}
    for name in names:
        fold = folds[name]
        den = load_denoised(canvases[name])
        frame = den.frame
        d_px = DIAMETER_PX / frame.scale
        truth[name] = read_coordinates(DATA / "coordinates" / f"{name}.csv")
        masks[name] = np.asarray(Image.open(DATA / "masks" / f"{name}.png")) > 0
        maps, map_frame, _ = load_prediction(runs / f"fold{fold}_maps" / f"{name}.npz")
        assert map_frame == frame, (name, map_frame, frame)
        p = {"baseline": timer.run("baseline", pick_blobs, den, d_px, BLOB)}
        s = picking[fold]
        p["unet"] = timer.run(
            "unet picks",
            picks_from_prediction,
            maps,
            frame,
            d_px,
            s["threshold"],
            s["min_distance"],
            s["edge_margin"],
        )
        p["final"] = finalize_picks(p["unet"], frame, DIAMETER_PX, FINAL)
        timer.run(
            "mask picks (one setting)",
            picks_from_probability,
            maps["mask"],
            frame,
            d_px,
            MaskPickSettings(),
            centre=maps["centre"],
        )
        for (sep, thr), v in mask_variants(
            maps["mask"], maps["centre"], frame, d_px, THRESHOLDS
        ).items():
            p[("unet mask", sep, thr)] = v
        for crf_name, crf in CRF_SETTINGS.items():
            refined = timer.run(f"crf {crf_name}", crf_refine, maps["mask"], den.image, crf)
            for (sep, thr), v in mask_variants(
                refined, maps["centre"], frame, d_px, THRESHOLDS
            ).items():
                p[(f"unet+crf [{crf_name}]", sep, thr)] = v
        picks[name] = p
        print(f"[empiar] {name} (fold {fold}) done", flush=True)

    memo: dict = {}

    def score(name, pk):
        key = (name, id(pk))
        if key not in memo:
            memo[key] = score_micrograph(
                name, pk, truth[name], DIAMETER_PX, masks[name].shape, masks[name]
            ).row()
        return memo[key]

    def ap(key):
        return average_precision(
            [ranked_hits(picks[n][key], truth[n], 0.5 * DIAMETER_PX) for n in names],
            sum(len(truth[n]) for n in names),
        )

    rows, notes = [], []
    fixed_stages = ["baseline", "unet", "final"]
    for stage in fixed_stages:
        rows.append(
            {
                "stage": stage,
                "settings": "workflow defaults"
                if stage != "unet"
                else "fold model's stored picking settings",
                **pooled([score(n, picks[n][stage]) for n in names]),
                "ap": ap(stage),
            }
        )
    variants = sorted({k[:2] for k in picks[names[0]] if isinstance(k, tuple)})
    chosen: dict[tuple, dict] = {}
    for family, sep in variants:
        # fixed default threshold 0.5
        rows.append(
            {
                "stage": family,
                "settings": f"separation {sep}, threshold 0.5",
                **pooled([score(n, picks[n][(family, sep, 0.5)]) for n in names]),
                "ap": ap((family, sep, 0.5)),
            }
        )
        # threshold tuned on the other folds
        fold_rows, thresholds = [], []
        for fold in range(3):
            others = [n for n in names if folds[n] != fold]
            f1s = {
                thr: pooled([score(n, picks[n][(family, sep, thr)]) for n in others])["f1"]
                for thr in THRESHOLDS
            }
            best = max(THRESHOLDS, key=lambda t: (f1s[t], -abs(t - 0.5)))
            thresholds.append(best)
            fold_rows += [
                score(n, picks[n][(family, sep, best)]) for n in names if folds[n] == fold
            ]
        chosen[(family, sep)] = thresholds
        rows.append(
            {
                "stage": family,
                "settings": f"separation {sep}, threshold tuned on other folds {thresholds}",
                **pooled(fold_rows),
            }
        )
    table = pd.DataFrame(rows)
    notes.append(
        "U-Net fold models: "
        + "; ".join(
            f"fold {f}: threshold {picking[f]['threshold']}, min distance "
            f"{picking[f]['min_distance']}, edge margin {picking[f]['edge_margin']}"
            for f in range(3)
        )
    )
    return table, notes


def time_empiar_front(cv_run: str, timer: Timer, n: int = 2) -> None:
    """Denoise and U-Net inference (4 symmetries, the fold model's setting) of ``n``
    micrographs, for the seconds-per-micrograph column (their outputs are cached already)."""
    import tempfile

    names = sorted(p.stem for p in (CV_CACHE / "empiar10017_1024").glob("*.npz"))[:n]
    model, checkpoint = load_model(CV_CACHE / cv_run / "fold0.pt")
    with tempfile.TemporaryDirectory() as tmp:
        for name in names:
            jpg = DATA / "micrographs" / f"{name}.jpg"
            out = Path(tmp) / f"{name}.npz"
            den = timer.run(
                "denoise", denoise_file, str(jpg), str(out), DenoiseSettings(), PIXEL_SIZE
            )

            def unet(path=jpg, den=den):
                canvas, frame = input_canvas("binned", str(out), str(path))
                scale = model_scale(checkpoint, frame, DIAMETER_PX)
                return predict(
                    model,
                    [canvas],
                    [frame.content_mask],
                    scale=scale,
                    symmetries=int(checkpoint["picking"].get("symmetries", 1)),
                )

            timer.run("unet predict", unet)


# ----------------------------------------------------------------------------------------------
# (b) synthetic
# ----------------------------------------------------------------------------------------------


def synthetic_part(
    n: int, seed: int, crf: CrfSettings, mask_settings: dict[str, MaskPickSettings], timer: Timer
) -> pd.DataFrame:
    settings = SyntheticSettings(height=1024, width=1024, pixel_size=7.08, particle_diameter=190.0)
    folder = ROOT / "resources" / "cache" / f"stage_table_synthetic_{n}_{seed}"
    names = [f"stage{i:03d}" for i in range(n)]
    if not (folder / "parameters.json").exists():
        names = write_dataset(settings, folder, n, seed, name_prefix="stage")
    else:
        names = sorted(p.stem for p in (folder / "micrographs").glob("*.mrc"))
    diameter_px = 190.0 / 7.08
    rows = []
    for model_name in ("unet_default", "unet_synthetic"):
        model, checkpoint = load_model(ROOT / "models" / f"{model_name}.pt")
        s = checkpoint["picking"]
        per_stage: dict[str, list] = {}
        hits: dict[str, list] = {}
        for name in names:
            files = micrograph_outputs(folder, name)
            den_path = folder / "denoised" / f"{name}.npz"
            den_path.parent.mkdir(exist_ok=True)
            if not den_path.exists():
                timer.run(
                    "synthetic denoise",
                    denoise_file,
                    str(files["micrograph"]),
                    str(den_path),
                    DenoiseSettings(),
                    7.08,
                )
            den = load_denoised(den_path)
            frame = den.frame
            d_px = diameter_px / frame.scale
            truth = read_coordinates(files["coordinates"])
            seen = model_input(checkpoint, den_path, files["micrograph"], False, diameter_px)
            maps = timer.run(
                "synthetic unet predict",
                predict,
                model,
                [seen.canvas],
                [frame.content_mask],
                scale=seen.scale,
                symmetries=int(s.get("symmetries", 1)),
            )[0]
            maps = {k: np.round(v * 255) / 255 for k, v in maps.items()}  # the 8-bit artifact
            got = {
                "baseline": pick_blobs(den, d_px, BLOB),
                "unet": picks_from_prediction(
                    maps, frame, d_px, s["threshold"], s["min_distance"], s["edge_margin"]
                ),
            }
            got["final"] = finalize_picks(got["unet"], frame, diameter_px, FINAL)
            refined = timer.run("synthetic crf", crf_refine, maps["mask"], den.image, crf)
            for label, ms in mask_settings.items():
                source = refined if label.startswith("unet+crf") else maps["mask"]
                got[label] = picks_from_probability(source, frame, d_px, ms, centre=maps["centre"])
            for stage, pk in got.items():
                per_stage.setdefault(stage, []).append(
                    score_micrograph(
                        name, pk, truth, diameter_px, (frame.original_height, frame.original_width)
                    ).row()
                )
                hits.setdefault(stage, []).append(ranked_hits(pk, truth, 0.5 * diameter_px))
        for stage, scores in per_stage.items():
            if stage == "baseline" and model_name != "unet_default":
                continue
            summary = pooled(scores)
            rows.append(
                {
                    "model": "-" if stage == "baseline" else model_name,
                    "stage": stage,
                    **summary,
                    "ap": average_precision(hits[stage], summary["n_truth"]),
                }
            )
        print(f"[synthetic] {model_name} done", flush=True)
    return pd.DataFrame(rows)


# ----------------------------------------------------------------------------------------------

COLUMNS = [
    "n_micrographs",
    "n_picks",
    "n_truth",
    "precision",
    "recall",
    "f1",
    "precision_r025",
    "recall_r025",
    "f1_r025",
    "dice",
    "ap",
]


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--cv-run",
        default="unet_cv_full27",
        help="folder under --cv-cache with fold{0,1,2}.pt and fold*_maps/",
    )
    parser.add_argument("--synthetic-n", type=int, default=6)
    parser.add_argument("--synthetic-seed", type=int, default=4017)
    parser.add_argument("--skip-empiar", action="store_true")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    cv2.setNumThreads(1)
    results = ROOT / "benchmarks" / "results"
    results.mkdir(parents=True, exist_ok=True)
    timer = Timer()
    text = [
        "# Per-stage picking quality and speed",
        "",
        "Produced by `.venv/bin/python benchmarks/stage_table.py`. Pick-level P/R/F1 pooled "
        "over micrographs (Hungarian matching within 0.5 and 0.25 x diameter), Dice mean "
        "over micrographs (cryopick.metrics). SAM and SAM + postprocessing: not scored; no "
        "SAM weights can be had here and random-weight SAM masks mean nothing. ap: average "
        "precision of the picks ranked by their figure of merit (area under the pooled "
        "precision-recall curve at 0.5 x diameter, score-greedy matching): how well the "
        "figure of merit sorts particles from false picks; rows without it are tuned rows.",
        "",
    ]
    tables = []
    if not args.skip_empiar:
        time_empiar_front(args.cv_run, timer)
        table, notes = empiar_part(args.cv_run, timer)
        table.insert(0, "data", "empiar10017 (3-fold CV)")
        tables.append(table)
        text += [
            "## (a) EMPIAR-10017, 12 micrographs, 3-fold cross-validation",
            "",
            *notes,
            "",
            markdown(table[["stage", "settings", *COLUMNS]]),
            "",
        ]
    crf_name = next(iter(CRF_SETTINGS))
    mask_settings = {f"unet mask, {sep}": MaskPickSettings(separation=sep) for sep in SEPARATIONS}
    mask_settings.update(
        {
            f"unet+crf [{name}], {sep}": MaskPickSettings(separation=sep)
            for name in (crf_name,)
            for sep in SEPARATIONS
        }
    )
    syn = synthetic_part(
        args.synthetic_n, args.synthetic_seed, CRF_SETTINGS[crf_name], mask_settings, timer
    )
    syn.insert(0, "data", f"synthetic ({args.synthetic_n} x 1024^2, seed {args.synthetic_seed})")
    tables.append(syn.rename(columns={"model": "settings"}))
    text += [
        "## (b) synthetic, exact ground truth (models/unet_default.pt, models/unet_synthetic.pt)",
        "",
        "unet rows: each model's stored picking settings; mask and CRF rows: threshold "
        "0.5 and the default separation settings; nothing tuned on this set.",
        "",
        markdown(syn[["model", "stage", *COLUMNS]]),
        "",
    ]
    speed = pd.DataFrame(
        [
            {
                "stage": k,
                "seconds_per_micrograph": timer.per_micrograph(k),
                "micrographs": timer.counts[k],
            }
            for k in timer.seconds
        ]
    )
    text += [
        "## Seconds per micrograph (this CPU, 1 thread, wall; each stage's own work)",
        "",
        markdown(speed),
        "",
    ]
    out = pd.concat(tables, ignore_index=True)
    out.to_csv(results / "stage_table.tsv", sep="\t", index=False, float_format="%.4f")
    speed.to_csv(results / "stage_table_speed.tsv", sep="\t", index=False, float_format="%.3f")
    (results / "stage_table.md").write_text("\n".join(text))
    print("\n".join(text))


if __name__ == "__main__":
    main()
