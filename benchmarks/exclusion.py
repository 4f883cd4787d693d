"""What the exclusion stage (cryopick/exclusion.py) is worth, on data it was not tuned on.

Synthetic: fresh micrographs with carbon, contamination, thick ice and aggregates (seeds no
training or tuning set uses, three pixel sizes, raw and filtered renderings), plus the families
of FAMILIES: crystalline contamination and crystalline-ice grains at 1 A/px, empty (broken)
holes with cracks, an ice wedge with dense aggregates; with the generator's exact masks:
mask IoU per class, the share of the shipped U-Net's false picks that fall on an obstacle
and how many of those exclusion removes, the share of true particles it loses, the distance of
the found carbon edge from the true one, F1 before and after.

Real: the 12 EMPIAR-10017 micrographs with the hand-drawn masks of
tests/data/empiar10017_exclusion (carbon, contamination, border stripes; README there): picks
removed inside the drawn areas and outside them, labelled particles lost, precision and F1
before and after. The stage's defaults were set on the training seeds of models/unet_general.yaml
and never on these.

    .venv/bin/python benchmarks/exclusion.py            # ~5 min on 2 cores
    .venv/bin/python benchmarks/exclusion.py --dev      # the development cases, for tuning
    .venv/bin/python benchmarks/exclusion.py --dev --dev-seed 6000   # more of them (6500 too)
    .venv/bin/python benchmarks/exclusion.py --seed 9700 --no-real   # a second held-out set

Writes benchmarks/results/exclusion.md and .tsv (per micrograph). ``--dev`` scores the same
families at DEV_SEED (never the held-out seeds) without the real micrographs and writes
benchmarks/results/exclusion_dev.*: that is the set a setting of the stage may be chosen on.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.generality import CACHE, blob_picks, model_picks, real_cases  # noqa: E402
from benchmarks.tables import markdown  # noqa: E402
from cryopick.checkpoint import load_model  # noqa: E402
from cryopick.denoise import DenoiseSettings, denoise_image, frame_for, save_denoised  # noqa: E402
from cryopick.exclusion import (  # noqa: E402
    CLASSES,
    ExclusionSettings,
    excluded_picks,
    exclusion_map,
    mask_at,
    mask_on_canvas,
    populated_areas,
)
from cryopick.io import read_coordinates, write_mrc  # noqa: E402
from cryopick.metrics import match_count, precision_recall_f1  # noqa: E402
from cryopick.settings import load_schema  # noqa: E402
from cryopick.synthetic import SyntheticSettings, generate_micrograph  # noqa: E402
from cryopick.workflow.plan import exclusion_filter_settings  # noqa: E402

MODEL = ROOT / "models" / "unet_general.pt"
HAND_MASKS = ROOT / "tests" / "data" / "empiar10017_exclusion"
OUT = ROOT / "benchmarks" / "results" / "exclusion"
# the pick filter's release of areas the picks fill, at the config's default
POPULATED = load_schema(str(ROOT / "config" / "schema.yaml"))["properties"]["exclusion"][
    "properties"
]["populated"]["default"]
SEED = 9500  # no training set (seeds < 1000) or generality test case (9000) uses it
DEV_SEED = 5000  # the development cases: settings of the stage are chosen here, never at SEED
DEV_SEEDS = (5000, 6000, 6500)  # every development seed used so far (--dev --dev-seed)
HELD_OUT_SEEDS = (SEED, 9700)  # scored with the settings chosen on DEV_SEEDS (--seed)
# pixel size (A), particle diameter (A), rendering
SCALES = (
    (1.5, 120.0, "raw"),
    (2.5, 200.0, "raw"),
    (4.0, 320.0, "raw"),
    (2.0, 170.0, "filtered_8bit"),
)
TRUTH_CLASSES = {  # generator mask -> exclusion class
    "carbon": "carbon",
    "contamination": "contamination",
    "thick_ice": "thick_ice",
    "aggregate": "contamination",
    "crack": "empty",
    "empty": "empty",
    "crystalline_ice": "crystalline_ice",
}
# the obstacles of the removal target: >= 90 % of the false picks on them removed
TARGET_MASKS = ("carbon", "contamination", "crystalline_ice")
# families of cases beyond the plain scales: name prefix, seed offset, pixel size (A), diameter
# (A), generator settings. The last three need the generator's optional classes.
FAMILIES = {
    "xtal": (
        100,
        1.0,
        100.0,
        {  # crystalline contaminants, spacings resolved at 1 A/px
            "carbon_probability": 0.0,
            "contaminants_per_um2": 300.0,
            "crystalline_fraction": 1.0,
            "thick_ice_probability": 0.0,
            "aggregates_per_um2": 0.0,
        },
    ),
    "film": (
        200,
        1.0,
        100.0,
        {  # grains of crystalline ice in the film
            "carbon_probability": 0.0,
            "contaminants_per_um2": 0.0,
            "thick_ice_probability": 0.0,
            "aggregates_per_um2": 0.0,
            "crystalline_ice_probability": 1.0,
        },
    ),
    "holes": (
        300,
        2.0,
        170.0,
        {  # an empty (broken) hole area and cracks
            "carbon_probability": 0.3,
            "contaminants_per_um2": 0.0,
            "thick_ice_probability": 0.0,
            "aggregates_per_um2": 0.0,
            "empty_probability": 1.0,
            "crack_probability": 1.0,
        },
    ),
    "wedge": (
        400,
        2.5,
        200.0,
        {  # a thickness wedge and dense aggregates of particles
            "carbon_probability": 0.0,
            "contaminants_per_um2": 0.0,
            "thick_ice_probability": 0.0,
            "aggregates_per_um2": 0.0,
            "ice_wedge": 1.2,
            "dense_aggregates_per_um2": 20.0,
        },
    ),
}
PLAIN = {
    "carbon_probability": 0.6,
    "contaminants_per_um2": 6.0,
    "crystalline_fraction": 0.5,
    "thick_ice_probability": 0.4,
    "aggregates_per_um2": 3.0,
}


def synthetic_cases(per_scale: int, seed: int = SEED) -> list[dict]:
    cases = []
    for pixel_size, diameter, rendering in SCALES:
        for index in range(per_scale):
            cases.append(
                {
                    "pixel_size": pixel_size,
                    "diameter": diameter,
                    "rendering": rendering,
                    "index": index,
                    "family": "",
                    "seed": seed,
                    "extra": PLAIN,
                }
            )
    for family, (offset, pixel_size, diameter, extra) in FAMILIES.items():
        for index in range(per_scale):
            cases.append(
                {
                    "pixel_size": pixel_size,
                    "diameter": diameter,
                    "rendering": "raw",
                    "index": index,
                    "family": family,
                    "seed": seed + offset,
                    "extra": extra,
                }
            )
    return cases


def make_case(case: dict, folder: Path):
    """Micrograph file, denoised canvas, truth picks and exact masks of one case (cached)."""
    family = f"{case['family']}_" if case["family"] else ""
    name = f"px{case['pixel_size']}_{case['rendering']}_{family}{case['index']}"
    mrc, npz = folder / f"{name}.mrc", folder / f"{name}.npz"
    masks_path, truth_path = folder / f"{name}_masks.npz", folder / f"{name}.csv"
    if not all(p.exists() for p in (mrc, npz, masks_path, truth_path)):
        field = (1024 * case["pixel_size"]) ** 2
        count = max(8, int(0.25 * field / (np.pi * (case["diameter"] / 2) ** 2)))
        settings = SyntheticSettings(
            height=1024,
            width=1024,
            pixel_size=case["pixel_size"],
            particle_diameter=case["diameter"],
            particles_per_micrograph=count,
            dose=30,
            rendering=case["rendering"],
            **case["extra"],
        )
        m = generate_micrograph(settings, case["index"], case["seed"])
        write_mrc(mrc, m.image.astype(np.float32), case["pixel_size"])
        m.coordinates[["x", "y"]].to_csv(
            truth_path, index=False, header=["X-Coordinate", "Y-Coordinate"]
        )
        frame = frame_for(m.image.shape, 1024)
        save_denoised(
            npz,
            denoise_image(m.image, DenoiseSettings(), frame),
            frame,
            case["pixel_size"] * frame.scale,
        )
        np.savez_compressed(masks_path, **m.background_masks)
    return name, mrc, npz, truth_path, masks_path


def released(picker: str) -> float:
    """The filter's ``populated`` for a picker's picks, as the workflow sets it for the matching
    picks.source (the blob baseline picks on anything dark: its picks cannot vouch for an area)."""
    source = "unet" if picker == "unet" else "baseline"
    section = {"enabled": True, "action": "drop", "dilation": 0.0, "classes": []}
    config = {"exclusion": {**section, "populated": POPULATED}, "picks": {"source": source}}
    return exclusion_filter_settings(config)["populated"]


def excluding(exclusion, xy: np.ndarray, populated: float) -> np.ndarray:
    """Where the filter excludes picks ``xy`` (canvas): the map less the areas they fill."""
    mask = exclusion.mask()
    return mask & ~populated_areas(mask, xy, exclusion, populated)


def iou(a: np.ndarray, b: np.ndarray) -> float:
    union = (a | b).sum()
    return float((a & b).sum() / union) if union else float("nan")


def edge_distance(truth: np.ndarray, found: np.ndarray, diameter_px: float) -> float:
    """Median distance (particle diameters) from the true carbon edge to the found one."""
    kernel = np.ones((3, 3), np.uint8)
    true_edge = truth.astype(np.uint8) - cv2.erode(truth.astype(np.uint8), kernel)
    found_edge = found.astype(np.uint8) - cv2.erode(found.astype(np.uint8), kernel)
    if not true_edge.any() or not found_edge.any():
        return float("nan")
    distance = cv2.distanceTransform((1 - found_edge).astype(np.uint8), cv2.DIST_L2, 5)
    return float(np.median(distance[true_edge > 0]) / diameter_px)


def score(picks: np.ndarray, truth: np.ndarray, radius: float) -> tuple[int, int, int]:
    return match_count(picks, truth, radius), len(picks), len(truth)


def false_picks(picks: np.ndarray, truth: np.ndarray, radius: float) -> np.ndarray:
    """Picks with no label within ``radius`` (nearest neighbour; for shares of false picks)."""
    if len(picks) == 0:
        return np.zeros(0, bool)
    if len(truth) == 0:
        return np.ones(len(picks), bool)
    d = np.sqrt(((picks[:, None, :] - truth[None, :, :]) ** 2).sum(-1)).min(1)
    return d > radius


def synthetic_rows(
    model,
    checkpoint,
    settings: ExclusionSettings,
    per_scale: int,
    workdir,
    dev_seed=None,
    seed: int = SEED,
):
    """Rows of the held-out cases at ``seed``, or of the development cases at ``dev_seed``."""
    if dev_seed is not None:
        suffix = "" if dev_seed == DEV_SEED else f"_{dev_seed}"
        folder = CACHE / f"exclusion_dev{suffix}"
    else:
        folder = CACHE / ("exclusion" if seed == SEED else f"exclusion_{seed}")
    folder.mkdir(parents=True, exist_ok=True)
    rows = []
    for case in synthetic_cases(per_scale, seed if dev_seed is None else dev_seed):
        name, mrc, npz, truth_path, masks_path = make_case(case, folder)
        d_file = case["diameter"] / case["pixel_size"]
        truth = read_coordinates(truth_path)[["x", "y"]].to_numpy(float)
        start = time.process_time()
        exclusion = exclusion_map(str(mrc), str(npz), case["diameter"], settings)
        seconds = time.process_time() - start
        for picker, picks in pickers(model, checkpoint, mrc, npz, d_file, workdir).items():
            row = synthetic_row(case, name, picker, picks, truth, exclusion, masks_path, d_file)
            rows.append(shown({**row, "seconds": seconds}))
    return rows


def shown(row: dict) -> dict:
    """``row``, printed as it comes."""
    print({k: round(v, 3) if isinstance(v, float) else v for k, v in row.items()})
    return row


def pickers(model, checkpoint, micrograph, denoised, d_file, workdir) -> dict:
    """The shipped U-Net's picks at its stored operating point and the blob baseline's (which
    picks on anything dark, so shows what exclusion removes when there is something to remove)."""
    return {
        "unet": model_picks(model, checkpoint, micrograph, denoised, d_file, workdir)["stored"],
        "blob baseline": blob_picks(denoised, d_file)["stored"],
    }


def synthetic_row(case, name, picker, picks, truth, exclusion, masks_path, d_file) -> dict:
    xy = picks[["x", "y"]].to_numpy(float)
    frame = exclusion.frame
    with np.load(masks_path) as data:
        exact = {k: mask_on_canvas(data[k], frame) for k in data.files}
    obstacles = np.zeros_like(exact["carbon"])
    for mask in exact.values():
        obstacles |= mask
    dropped = excluded_picks(xy, exclusion, d_file, 0.0, populated=released(picker))
    wrong = false_picks(xy, truth, 0.5 * d_file)
    on_obstacle = wrong & mask_at(obstacles, xy, frame)
    target = np.zeros_like(obstacles)
    for key in TARGET_MASKS:
        if key in exact:
            target |= exact[key]
    on_target = wrong & mask_at(target, xy, frame)
    lost = mask_at(excluding(exclusion, xy, released(picker)), truth, frame)
    before = score(xy, truth, 0.5 * d_file)
    after = score(xy[~dropped], truth, 0.5 * d_file)
    row = {
        "set": "synthetic",
        "picker": picker,
        "micrograph": name,
        "rendering": case["rendering"],
        "family": case["family"] or "plain",
        "pixel_size": case["pixel_size"],
        "obstacle_fraction": float(obstacles.mean()),
        "false_picks": int(wrong.sum()),
        "false_on_obstacles": int(on_obstacle.sum()),
        "false_on_obstacles_removed": int((on_obstacle & dropped).sum()),
        "false_on_target": int(on_target.sum()),
        "false_on_target_removed": int((on_target & dropped).sum()),
        "picks_removed": int(dropped.sum()),
        "true_picks_removed": int((dropped & ~wrong).sum()),
        "particles": len(truth),
        "particles_lost": int(lost.sum()),
        "particles_in_map": int(mask_at(exclusion.mask(), truth, frame).sum()),
        "f1_before": precision_recall_f1(*before)[2],
        "f1_after": precision_recall_f1(*after)[2],
        "precision_before": precision_recall_f1(*before)[0],
        "precision_after": precision_recall_f1(*after)[0],
    }
    for cls in sorted(set(TRUTH_CLASSES.values())):
        truth = np.zeros_like(obstacles)
        for key in exact:
            if TRUTH_CLASSES[key] == cls and (key != "aggregate" or cls != "contamination"):
                truth |= exact[key]
        if truth.any():
            row[f"iou_{cls}"] = iou(exclusion.mask((cls,)), truth)
    if exact["carbon"].any():
        row["carbon_edge_d"] = edge_distance(
            exact["carbon"], exclusion.mask(("carbon",)), d_file / frame.scale
        )
    found_dark = exclusion.mask(("carbon", "contamination", "thick_ice"))
    dark_truth = obstacles.copy()
    for key in ("crack", "empty", "crystalline_ice"):
        if key in exact:
            dark_truth &= ~exact[key]
    row["iou_all_dark"] = iou(found_dark, dark_truth) if dark_truth.any() else float("nan")
    row["iou_all"] = iou(exclusion.mask(), obstacles) if obstacles.any() else float("nan")
    if case["family"] == "xtal":
        row["iou_crystalline"] = iou(
            exclusion.mask(("crystalline_ice", "contamination")), exact["contamination"]
        )
    return row


def real_rows(model, checkpoint, settings: ExclusionSettings, workdir):
    rows = []
    d_file = 108.0
    for name, micrograph, denoised, truth_path in real_cases():
        truth = read_coordinates(truth_path)[["x", "y"]].to_numpy(float)
        start = time.process_time()
        exclusion = exclusion_map(str(micrograph), str(denoised), d_file * 1.77, settings)
        seconds = time.process_time() - start
        for picker, picks in pickers(
            model, checkpoint, micrograph, denoised, d_file, workdir
        ).items():
            row = real_row(name, picker, picks, truth, exclusion, d_file)
            rows.append(shown({**row, "seconds": seconds}))
    return rows


def real_row(name, picker, picks, truth, exclusion, d_file) -> dict:
    xy = picks[["x", "y"]].to_numpy(float)
    frame = exclusion.frame
    hand = cv2.imread(str(HAND_MASKS / f"{name}.png"), cv2.IMREAD_UNCHANGED)
    hand_canvas = np.zeros((frame.size, frame.size), np.uint8)
    hand_canvas[: frame.content_height, : frame.content_width] = cv2.resize(
        hand, (frame.content_width, frame.content_height), interpolation=cv2.INTER_NEAREST
    )
    drawn = hand_canvas > 0
    dropped = excluded_picks(xy, exclusion, d_file, 0.0, populated=released(picker))
    inside = mask_at(drawn, xy, frame)
    before = score(xy, truth, 0.5 * d_file)
    after = score(xy[~dropped], truth, 0.5 * d_file)
    row = {
        "set": "empiar10017",
        "picker": picker,
        "micrograph": name,
        "drawn_fraction": float(drawn.mean()),
        "found_fraction": float(exclusion.mask().mean()),
        "iou_carbon": iou(exclusion.mask(("carbon",)), hand_canvas == 1)
        if (hand_canvas == 1).any()
        else float("nan"),
        "iou_border": iou(exclusion.mask(("border",)), hand_canvas == 3),
        "picks": len(xy),
        "picks_inside_drawn": int(inside.sum()),
        "removed_inside_drawn": int((dropped & inside).sum()),
        "removed_outside_drawn": int((dropped & ~inside).sum()),
        "particles": len(truth),
        "particles_lost": int(
            mask_at(excluding(exclusion, xy, released(picker)), truth, frame).sum()
        ),
        "particles_in_map": int(mask_at(exclusion.mask(), truth, frame).sum()),
        "particles_in_drawn_carbon": int(mask_at(hand_canvas == 1, truth, frame).sum()),
        "precision_before": precision_recall_f1(*before)[0],
        "precision_after": precision_recall_f1(*after)[0],
        "f1_before": precision_recall_f1(*before)[2],
        "f1_after": precision_recall_f1(*after)[2],
    }
    return row


def share(part, whole, digits: int = 1) -> str:
    return f"{part / max(whole, 1):.{digits}%}"


def pooled_table(rows: pd.DataFrame) -> pd.DataFrame:
    out = []
    for (label, picker), group in rows.groupby(["set", "picker"], sort=False):
        entry = {"set": f"{label}, {picker}", "micrographs": len(group)}
        if label == "synthetic":
            false_obstacle = int(group["false_on_obstacles"].sum())
            entry.update(
                {
                    "false picks on obstacles": (
                        f"{false_obstacle} of {int(group['false_picks'].sum())}"
                    ),
                    "of those removed": share(
                        group["false_on_obstacles_removed"].sum(), false_obstacle
                    ),
                    "false picks on carbon, contamination, crystalline ice": str(
                        int(group["false_on_target"].sum())
                    ),
                    "of those removed (target >= 90 %)": share(
                        group["false_on_target_removed"].sum(), group["false_on_target"].sum()
                    ),
                    "true particles lost": share(
                        group["particles_lost"].sum(), group["particles"].sum(), 2
                    ),
                    **{
                        f"IoU {cls.replace('_', ' ')}": f"{group[f'iou_{cls}'].mean():.2f}"
                        for cls in sorted(set(TRUTH_CLASSES.values()))
                        if f"iou_{cls}" in group
                    },
                    "IoU all dark areas": f"{group['iou_all_dark'].mean():.2f}",
                    "IoU all classes": f"{group['iou_all'].mean():.2f}",
                    "carbon edge, median (d)": (
                        f"{group['carbon_edge_d'].median():.2f}" if "carbon_edge_d" in group else ""
                    ),
                }
            )
        else:
            inside = int(group["picks_inside_drawn"].sum())
            entry.update(
                {
                    "picks inside drawn areas": f"{inside} of {int(group['picks'].sum())}",
                    "of those removed": share(group["removed_inside_drawn"].sum(), inside),
                    "removed outside drawn areas": str(int(group["removed_outside_drawn"].sum())),
                    "labelled particles lost": share(
                        group["particles_lost"].sum(), group["particles"].sum(), 2
                    ),
                    "IoU carbon": f"{group['iou_carbon'].mean():.2f}",
                    "IoU border": f"{group['iou_border'].mean():.2f}",
                }
            )
        entry["precision before -> after"] = (
            f"{group['precision_before'].mean():.3f} -> {group['precision_after'].mean():.3f}"
        )
        entry["F1 before -> after"] = (
            f"{group['f1_before'].mean():.3f} -> {group['f1_after'].mean():.3f}"
        )
        entry["CPU s per micrograph"] = f"{group['seconds'].mean():.2f}"
        out.append(entry)
    return pd.DataFrame(out)


def family_table(rows: pd.DataFrame) -> pd.DataFrame:
    """The synthetic rows of the blob baseline (it picks on anything, so every family has
    false picks to remove) per family of cases."""
    synthetic = rows[(rows["set"] == "synthetic") & (rows["picker"] == "blob baseline")]
    out = []
    for family, group in synthetic.groupby("family", sort=False):
        on = group["false_on_obstacles"].sum()
        out.append(
            {
                "family": family,
                "micrographs": len(group),
                "false picks on obstacles": int(on),
                "of those removed": share(group["false_on_obstacles_removed"].sum(), on),
                "on carbon, contamination, crystalline ice": int(group["false_on_target"].sum()),
                "of those removed (target >= 90 %)": share(
                    group["false_on_target_removed"].sum(), group["false_on_target"].sum()
                ),
                "true particles lost": share(
                    group["particles_lost"].sum(), group["particles"].sum(), 2
                ),
                "IoU all classes": f"{group['iou_all'].mean():.2f}",
            }
        )
    return pd.DataFrame(out)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--per-scale", type=int, default=3, help="synthetic micrographs per case")
    parser.add_argument("--no-real", action="store_true")
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument(
        "--dev", action="store_true", help="the development seeds (no real micrographs)"
    )
    parser.add_argument(
        "--dev-seed", type=int, default=DEV_SEED, help="with --dev: the seed (never SEED)"
    )
    parser.add_argument(
        "--seed",
        type=int,
        default=SEED,
        help=f"a held-out seed other than {SEED} (never a development one), written to"
        " exclusion_SEED.*",
    )
    args = parser.parse_args(argv)
    if args.dev_seed in HELD_OUT_SEEDS:
        parser.error(f"--dev-seed {args.dev_seed} is a held-out seed")
    if args.seed in DEV_SEEDS:
        parser.error(f"--seed {args.seed} is a development seed")
    suffix = "" if args.dev_seed == DEV_SEED else f"_{args.dev_seed}"
    held_out = "" if args.seed == SEED else f"_{args.seed}"
    args.out = args.out or OUT.with_name(OUT.name + (f"_dev{suffix}" if args.dev else held_out))
    model, checkpoint = load_model(MODEL)
    settings = ExclusionSettings()
    with tempfile.TemporaryDirectory() as tmp:
        dev_seed = args.dev_seed if args.dev else None
        rows = synthetic_rows(
            model, checkpoint, settings, args.per_scale, Path(tmp), dev_seed, args.seed
        )
        if not (args.no_real or args.dev):
            rows += real_rows(model, checkpoint, settings, Path(tmp))
    table = pd.DataFrame(rows)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    table.to_csv(args.out.with_suffix(".tsv"), sep="\t", index=False, float_format="%.4f")
    summary = pooled_table(table).T.reset_index()
    summary.columns = ["measure", *[str(c) for c in summary.iloc[0, 1:]]]
    summary = summary.iloc[1:].fillna("")  # a measure one set does not have: blank
    text = (
        f"# Exclusion stage, {'development cases' if args.dev else 'held out'} "
        f"(benchmarks/exclusion.py{' --dev' if args.dev else ''}"
        f"{f' --dev-seed {args.dev_seed}' if suffix and args.dev else ''}"
        f"{f' --seed {args.seed}' if held_out and not args.dev else ''})\n\n"
        f"Settings: the defaults of cryopick.exclusion.ExclusionSettings ({settings}); picks of"
        f" {MODEL.name} at its stored operating point; per-micrograph rows in exclusion.tsv.\n\n"
        + markdown(summary)
        + "\n"
    )
    text += "\n## Synthetic, per family (blob baseline picks)\n\n" + markdown(family_table(table))
    text += "\n"
    args.out.with_suffix(".md").write_text(text)
    print(text)
    assert set(CLASSES.values()) >= set(TRUTH_CLASSES.values())


if __name__ == "__main__":
    main()
