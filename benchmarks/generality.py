"""How general a U-Net is: scores on micrographs it never saw, at its own label-free operating
point (the picking settings stored in the model, one symmetry as the workflow runs it).

Test data, none of it in any model's training set:
- real: the 12 EMPIAR-10017 micrographs of ../shared (held out for models trained without
  them; a model trained on some of them is scored on the others with --real-fold, e.g. the
  general recipe with fold 0 left out, benchmarks/configs/general_cv_fold0.yaml);
- synthetic: a grid of fresh 1024^2 micrographs (seeds no training set uses) over every
  specimen type (globular, elongated, ring, oligomer, multidomain, shell), three pixel sizes with
  particles of 100-380 A, Gaussian noise at SNR 0.05 and 0.01, rendered raw; and at SNR 0.05
  also rendered filtered (CryoSegNet's chain, 8-bit), as CryoPPP distributes micrographs;
  with --grid small_px the same over particles small in pixels (90 A at 2 A/px, 150 A at
  3 A/px: 45-50 px across, the issue's other simulator renders 90 A at 2 A/px), seed 9800.
Beside the models, the blob baseline with the workflow's default settings.

Every micrograph is scored twice: over the whole field ("field") and over its interior
("interior": picks and truth at least CRYOPPP_EDGE diameters from the edge, the convention of
the real labels). Synthetic truth reaches the edge; on a 1024^2 field of 84 px particles the
band within one diameter of it holds a third of the particles, which a picker that keeps the
convention never picks.

    python benchmarks/generality.py --tag today --model default=models/unet_default.pt \
        --model general_synthetic=results/unet_training/general_synthetic/model.pt

Leave-one-type-out: train with a corpus overlay that drops one type (models/unet_general.yaml
with volume_kinds edited) and pass it with --kinds TYPE. Writes
benchmarks/results/generality[_TAG].{tsv,md}; the test micrographs are cached under
resources/cache/generality/ (gitignored).
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.tables import markdown  # noqa: E402
from benchmarks.unet_quality import denoise_all  # noqa: E402
from cryopick.checkpoint import load_model  # noqa: E402
from cryopick.denoise import (  # noqa: E402
    DenoiseSettings,
    denoise_image,
    frame_for,
    load_denoised,
    load_frame,
    save_denoised,
)
from cryopick.inference import (  # noqa: E402
    adapt_batchnorm,
    model_input,
    operating_point,
    predict,
    stored_setting_picks,
)
from cryopick.io import (  # noqa: E402
    micrograph_name,
    read_coordinates,
    read_micrograph,
    write_mrc,
    write_relion_micrographs_star,
)
from cryopick.metrics import CRYOPPP_EDGE, score_micrograph, summarise, within_edge  # noqa: E402
from cryopick.picking import BlobSettings, pick_blobs  # noqa: E402
from cryopick.probability_maps import load_prediction, save_prediction  # noqa: E402
from cryopick.synthetic import SyntheticSettings, generate_micrograph  # noqa: E402
from cryopick.volumes import ALL_VOLUME_KINDS  # noqa: E402

REAL = ROOT.parent / "shared" / "data" / "empiar10017"
REAL_PIXEL_SIZE, REAL_DIAMETER_PX = 1.77, 108.0
CACHE = ROOT / "resources" / "cache" / "generality"
REAL_TEST = "EMPIAR-10017 (real, filtered JPG)"  # the real micrographs' test name in every table
# (pixel size A/px, particle diameter A): small, medium and large particles
SCALES = ((1.2, 100.0), (2.5, 200.0), (4.5, 380.0))
SNRS = (0.05, 0.01)
TEST_SEED = 9000  # no training set of models/*.yaml uses seeds at or above 1000


@dataclass(frozen=True)
class Grid:
    """A synthetic test grid: (pixel size A/px, diameter A) scales, seed, cache subfolder, and
    the SNRs (every one rendered raw, the first also filtered)."""

    scales: tuple[tuple[float, float], ...]
    seed: int
    folder: str
    snrs: tuple[float, ...] = SNRS


GRIDS = {
    "main": Grid(SCALES, TEST_SEED, "synthetic"),
    # particles small in pixels (45 and 50 px across), the geometry of the other
    # simulator (90 A at 2 A/px): at one per-pixel SNR they carry less signal per particle
    "small_px": Grid(((2.0, 90.0), (3.0, 150.0)), 9800, "synthetic_small_px"),
    # for designing label-free rules (benchmarks/dataset_threshold.py), never for reporting a
    # model: pixel sizes and diameters none of the other grids use
    "design": Grid(
        ((1.6, 130.0), (2.2, 100.0), (3.5, 160.0), (4.0, 300.0)),
        9900,
        "synthetic_design",
        (0.05, 0.02, 0.01),
    ),
}
BLOB = BlobSettings(sigma_factor=0.10, threshold=1.5, min_distance=0.6, edge_margin=1.2)


def synthetic_cases(kinds: tuple[str, ...], scales=SCALES, snrs=SNRS) -> list[dict]:
    cases = []
    for kind in kinds:
        for pixel_size, diameter in scales:
            for snr in snrs:
                renderings = ("raw", "filtered_8bit") if snr == snrs[0] else ("raw",)
                for rendering in renderings:
                    cases.append(
                        {
                            "kind": kind,
                            "pixel_size": pixel_size,
                            "diameter": diameter,
                            "snr": snr,
                            "rendering": rendering,
                        }
                    )
    return cases


def case_name(case: dict) -> str:
    return (
        f"{case['kind']}_px{case['pixel_size']}_d{case['diameter']:.0f}_snr{case['snr']}"
        f"_{case['rendering']}"
    )


def make_case(
    case: dict,
    index: int,
    seed: int = TEST_SEED,
    folder: Path = CACHE / "synthetic",
    suffix: str = "",
) -> tuple[Path, Path, Path]:
    """(micrograph .mrc, denoised .npz, truth .csv) of one synthetic test micrograph, cached in
    ``folder`` under the case's name plus ``suffix`` (micrograph ``index`` of ``seed``)."""
    name = case_name(case) + suffix
    folder.mkdir(parents=True, exist_ok=True)
    mrc, npz, csv = (folder / f"{name}.mrc", folder / f"{name}.npz", folder / f"{name}.csv")
    if not (mrc.exists() and npz.exists() and csv.exists()):
        # ~15% of the field covered by particles, whatever their size
        field = (1024 * case["pixel_size"]) ** 2
        count = max(8, int(0.15 * field / (np.pi * (case["diameter"] / 2) ** 2)))
        settings = SyntheticSettings(
            height=1024,
            width=1024,
            pixel_size=case["pixel_size"],
            particle_diameter=case["diameter"],
            particles_per_micrograph=count,
            volume_kinds=(case["kind"],),
            noise="snr",
            snr=case["snr"],
            rendering=case["rendering"],
        )
        m = generate_micrograph(settings, index, seed)
        xy = m.coordinates[["x", "y"]].to_numpy(float)
        write_test_micrograph(m.image, case["pixel_size"], xy, mrc, npz, csv)
    return mrc, npz, csv


def write_test_micrograph(
    image: np.ndarray, pixel_size: float, truth_xy: np.ndarray, mrc: Path, npz: Path, csv: Path
) -> None:
    """One test micrograph's files: the image as MRC, its truth centres (x, y) as a CryoPPP
    csv, and its canvas denoised by the workflow's default chain."""
    write_mrc(mrc, image.astype(np.float32), pixel_size)
    pd.DataFrame(truth_xy, columns=["X-Coordinate", "Y-Coordinate"]).to_csv(csv, index=False)
    frame = frame_for(image.shape, 1024)
    save_denoised(
        npz, denoise_image(image, DenoiseSettings(), frame), frame, pixel_size * frame.scale
    )


def real_cases(fold: int | None = None) -> list[tuple[str, Path, Path, Path]]:
    """(name, micrograph, denoised canvas, truth) of the EMPIAR-10017 micrographs, denoised
    once with the workflow's default chain (cached)."""
    canvases = denoise_all(REAL, CACHE / "empiar10017", 1024)
    out = []
    for index, path in enumerate(sorted((REAL / "micrographs").iterdir())):
        if fold is not None and index % 3 != fold:  # the folds of benchmarks/unet_quality.py
            continue
        name = micrograph_name(path)
        out.append((name, path, canvases[name], REAL / "coordinates" / f"{name}.csv"))
    return out


DEFAULT_CONFIG = ROOT / "config" / "config.yaml"


def configured_picking() -> dict:
    """config/config.yaml's unet.threshold / min_distance / edge_margin (None where unset)."""
    unet = yaml.safe_load(DEFAULT_CONFIG.read_text()).get("unet") or {}
    return {key: unet.get(key) for key in ("threshold", "min_distance", "edge_margin")}


def default_picking(checkpoint: dict) -> dict:
    """A model's picking settings as the default config runs them: the configured ones where
    set, the model's tuned ones elsewhere (cryopick.inference.operating_point, as the pick_unet
    rule does)."""
    return operating_point(checkpoint["picking"], **configured_picking())


THRESHOLDS = (0.05, 0.1, 0.15, 0.2, 0.25, 0.3, 0.4, 0.5, 0.6)


def model_prediction(
    model,
    checkpoint: dict,
    micrograph: Path,
    denoised: Path,
    diameter_file_px: float,
    workdir: Path,
    adapt_norm: bool = False,
):
    """The U-Net's maps as the workflow makes them: the model's input, one symmetry, through
    the 8-bit map file; (prediction, frame). ``adapt_norm``: the model's BatchNorm statistics
    measured on this micrograph first."""
    seen = model_input(checkpoint, denoised, micrograph, False, diameter_file_px)
    content = [seen.frame.content_mask]
    if adapt_norm:
        model = adapt_batchnorm(model, [seen.canvas], content, seen.scale)
    prediction = predict(model, [seen.canvas], content, scale=seen.scale, symmetries=1)[0]
    path = workdir / "map.npz"
    save_prediction(path, prediction, seen.frame)
    prediction, frame, _ = load_prediction(path)
    return prediction, frame


def model_picks(
    model,
    checkpoint: dict,
    micrograph: Path,
    denoised: Path,
    diameter_file_px: float,
    workdir: Path,
    adapt_norm: bool = False,
) -> dict[str, pd.DataFrame]:
    """Picks as the workflow makes them (:func:`model_prediction`), at the default config's
    operating point (:func:`default_picking`: the model's stored threshold, labelled "stored");
    and at every threshold of THRESHOLDS with its other settings, to see how far the stored
    operating point is from the best one."""
    prediction, frame = model_prediction(
        model, checkpoint, micrograph, denoised, diameter_file_px, workdir, adapt_norm
    )
    picking = default_picking(checkpoint)
    thresholds = {"stored": picking["threshold"], **{f"{t:g}": t for t in THRESHOLDS}}
    return {
        label: stored_setting_picks(prediction, frame, diameter_file_px, picking, t)
        for label, t in thresholds.items()
    }


def blob_picks(denoised: Path, diameter_file_px: float) -> dict[str, pd.DataFrame]:
    canvas = load_denoised(denoised)
    return {"stored": pick_blobs(canvas, diameter_file_px / canvas.frame.scale, BLOB)}


def relion_log_picks(
    micrograph: Path, diameter_file_px: float, pixel_size: float
) -> dict[str, pd.DataFrame]:
    """RELION 3.1's Laplacian-of-Gaussian picker at its default threshold, with the diameter
    range 0.8-1.2 x the particle diameter, as a user who knows only the diameter runs it."""
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        (tmp / "Micrographs").mkdir()
        image = read_micrograph(micrograph).image
        write_mrc(tmp / "Micrographs" / "m.mrc", image, pixel_size)
        write_relion_micrographs_star(tmp / "mics.star", ["Micrographs/m.mrc"], pixel_size)
        diameter = diameter_file_px * pixel_size
        subprocess.run(
            [
                "relion_autopick",
                "--i",
                "mics.star",
                "--odir",
                "LoG/",
                "--pickname",
                "autopick",
                "--LoG",
                "--LoG_diam_min",
                f"{0.8 * diameter:.1f}",
                "--LoG_diam_max",
                f"{1.2 * diameter:.1f}",
                "--shrink",
                "0",
                "--lowpass",
                "20",
                "--LoG_adjust_threshold",
                "0",
            ],
            cwd=tmp,
            check=True,
            capture_output=True,
        )
        picks = read_coordinates(tmp / "LoG" / "Micrographs" / "m_autopick.star")
    return {"stored": picks}


def test_cases(
    kinds: tuple[str, ...], fold: int | None, synthetic: bool = True, grid: str = "main"
):
    """Every test micrograph (the synthetic ones of ``grid``): (name, micrograph, denoised,
    truth file, diameter in file pixels, shape, what describes it in the table)."""
    for name, micrograph, denoised, truth in real_cases(fold):
        shape = read_micrograph(micrograph).image.shape
        about = {
            "test": REAL_TEST,
            "kind": "beta-galactosidase",
            "pixel_size": REAL_PIXEL_SIZE,
            "snr": np.nan,
            "rendering": "filtered_8bit",
        }
        yield name, micrograph, denoised, truth, REAL_DIAMETER_PX, shape, about
    spec = GRIDS[grid]
    cases = synthetic_cases(kinds, spec.scales, spec.snrs) if synthetic else []
    for index, case in enumerate(cases):
        micrograph, denoised, truth = make_case(case, index, spec.seed, CACHE / spec.folder)
        d_px = case["diameter"] / case["pixel_size"]
        about = {"test": "synthetic (fresh seeds)", **case}
        yield case_name(case), micrograph, denoised, truth, d_px, (1024, 1024), about


def evaluate(
    pickers: dict,
    kinds: tuple[str, ...],
    workdir: Path,
    fold: int | None = None,
    synthetic: bool = True,
    grid: str = "main",
) -> pd.DataFrame:
    """One row per test micrograph, picker, threshold label ("stored" or a grid value) and
    window ("field" or "interior")."""
    rows = []
    cases = test_cases(kinds, fold, synthetic, grid)
    for name, micrograph, denoised, truth_path, d_px, shape, about in cases:
        truth = read_coordinates(truth_path)
        for method, pick in pickers.items():
            for threshold, picks in pick(micrograph, denoised, d_px, workdir).items():
                for window, margin in (("field", 0.0), ("interior", CRYOPPP_EDGE * d_px)):
                    score = score_micrograph(
                        name,
                        within_edge(picks, shape, margin),
                        within_edge(truth, shape, margin),
                        d_px,
                        shape,
                    ).row()
                    rows.append(
                        {"method": method, "threshold": threshold, "window": window} | about | score
                    )
    return pd.DataFrame(rows)


def pooled(rows: pd.DataFrame, by: list[str]) -> pd.DataFrame:
    out = []
    for key, group in rows.groupby(by, sort=False, dropna=False):
        key = key if isinstance(key, tuple) else (key,)
        s = summarise(group)
        out.append(
            {
                **dict(zip(by, key)),
                "micrographs": len(group),
                "precision": s["precision"],
                "recall": s["recall"],
                "f1": s["f1"],
                "f1_r025": s["f1_r025"],
            }
        )
    return pd.DataFrame(out)


def operating_points(rows: pd.DataFrame, by: list[str]) -> pd.DataFrame:
    """Per group and model: F1 at the stored threshold, the best threshold of THRESHOLDS and
    its F1 (chosen with the labels, so an upper bound no user gets), and the gap."""
    out = []
    models = rows[rows["threshold"] != "stored"]["method"].unique()
    for key, group in rows[rows["method"].isin(models)].groupby(
        by + ["method"], sort=False, dropna=False
    ):
        stored = summarise(group[group["threshold"] == "stored"])["f1"]
        grid = {
            t: summarise(g)["f1"]
            for t, g in group[group["threshold"] != "stored"].groupby("threshold")
        }
        best = max(grid, key=grid.get)
        out.append(
            {
                **dict(zip(by + ["method"], key)),
                "f1_stored": stored,
                "best_threshold": best,
                "f1_best": grid[best],
                "gap": grid[best] - stored,
            }
        )
    return pd.DataFrame(out)


def synthetic_tables(rows: pd.DataFrame) -> dict[str, pd.DataFrame]:
    """The synthetic grid's tables: by SNR and rendering, pixel size, specimen type."""
    return {
        "synthetic, by SNR and rendering": pooled(
            rows[rows["test"] != rows["test"].iloc[0]], ["snr", "rendering", "method"]
        ),
        "synthetic, by pixel size (raw)": pooled(
            rows[(rows["rendering"] == "raw") & rows["snr"].notna()], ["pixel_size", "method"]
        ),
        "synthetic, by specimen type (raw, SNR 0.05)": pooled(
            rows[(rows["rendering"] == "raw") & (rows["snr"] == SNRS[0])], ["kind", "method"]
        ),
    }


def add_real_arguments(parser: argparse.ArgumentParser) -> None:
    """--real-fold and --real-only, for every script that scores the real micrographs."""
    parser.add_argument(
        "--real-fold",
        type=int,
        choices=(0, 1, 2),
        help="score only this fold of the real micrographs (sorted index %% 3), the one a "
        "cross-validated model left out",
    )
    parser.add_argument(
        "--real-only", action="store_true", help="the real micrographs only (no synthetic grid)"
    )


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", action="append", default=[], metavar="NAME=PATH")
    parser.add_argument("--kinds", nargs="+", default=list(ALL_VOLUME_KINDS))
    parser.add_argument("--tag", default="")
    add_real_arguments(parser)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument(
        "--grid",
        choices=tuple(GRIDS),
        default="main",
        help="the synthetic test grid: main (80-84 px particles at 1.2-4.5 A/px, seed 9000) or "
        "small_px (45-50 px, seed 9800); design (seed 9900) is for designing label-free rules "
        "(benchmarks/dataset_threshold.py), not for reporting a model",
    )
    parser.add_argument(
        "--adapt-norm",
        action="store_true",
        help="also score each model with its BatchNorm statistics measured on each test "
        "micrograph (NAME+adabn)",
    )
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    pickers = {"blob baseline": lambda m, d, px, w: blob_picks(d, px)}
    if shutil.which("relion_autopick"):
        pickers["RELION 3.1 LoG"] = lambda m, d, px, w: relion_log_picks(m, px, load_frame(d)[1])
    else:
        print("relion_autopick not found (apt-get install relion): RELION LoG left out")
    for spec in args.model:
        name, path = spec.split("=", 1)
        model, checkpoint = load_model(path, device="cpu")
        pickers[name] = lambda m, d, px, w, model=model, checkpoint=checkpoint: model_picks(
            model, checkpoint, m, d, px, w
        )
        if args.adapt_norm:
            pickers[f"{name}+adabn"] = lambda m, d, px, w, model=model, checkpoint=checkpoint: (
                model_picks(model, checkpoint, m, d, px, w, adapt_norm=True)
            )
        print(
            f"{name}: {path}, input {checkpoint.get('input')}, picking "
            f"{default_picking(checkpoint)} (default config over the tuned "
            f"{checkpoint['picking']}), trained on {checkpoint['data']['n_micrographs']} "
            f"micrographs"
        )
    workdir = CACHE / "work"
    workdir.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    rows = evaluate(
        pickers, tuple(args.kinds), workdir, args.real_fold, not args.real_only, args.grid
    )
    suffix = f"_{args.tag}" if args.tag else ""
    out = ROOT / "benchmarks" / "results"
    out.mkdir(parents=True, exist_ok=True)
    rows.to_csv(out / f"generality{suffix}_per_micrograph.tsv", sep="\t", index=False)
    interior = rows[rows["window"] == "interior"]
    rows = rows[rows["window"] == "field"]
    points = operating_points(rows, ["test", "rendering", "snr"])
    rows, interior = (
        rows[rows["threshold"] == "stored"],
        interior[interior["threshold"] == "stored"],
    )
    tables = {"by test set": pooled(rows, ["test", "method"])}
    if not args.real_only:
        tables.update(synthetic_tables(rows))
        tables.update(
            {
                f"interior ({CRYOPPP_EDGE:g} d from the edge): {title}": table
                for title, table in synthetic_tables(interior).items()
            }
        )
    tables["label-free operating point: stored threshold vs the best one in hindsight"] = points
    text = [
        f"# Generality (benchmarks/generality.py{' --tag ' + args.tag if args.tag else ''}"
        f"{' --grid ' + args.grid if args.grid != 'main' else ''})",
        "",
        f"{time.perf_counter() - start:.0f} s. Pooled one-to-one matching within 0.5 x "
        "diameter (f1) and 0.25 x diameter (f1_r025); each model at the default config's "
        "operating point (config/config.yaml's unet settings over the model's tuned ones: "
        f"{configured_picking()}, None = tuned), 1 symmetry.",
        "",
    ]
    for title, table in tables.items():
        text += [f"## {title}", "", markdown(table), ""]
        print(f"\n{title}\n{table.to_string(index=False)}")
    (out / f"generality{suffix}.md").write_text("\n".join(text))


if __name__ == "__main__":
    main()
