"""Label-free self-training (cryopick.self_training): the shipped model before and after
fine-tuning on each data set's own confident picks, scored at the model's stored operating
point (one symmetry, as the workflow runs it).

A data set here is 3 micrographs (1024^2) of one specimen type at one pixel size, SNR and
rendering, as a user brings them: the model adapts to those 3 and picks them. Held out (the
default): seed 9200, the 6 specimen types x {raw SNR 0.05, raw SNR 0.01, filtered 8-bit
SNR 0.05}, each at one of the 3 pixel sizes of benchmarks/generality.py (18 data sets).
``--dev``: seed 7000, 6 other data sets, the only ones a setting may be chosen on. ``--real``
adds the 12 EMPIAR-10017 micrographs as one data set (in-sample for the shipped model).
``--real-fold K --model PATH`` adds only fold K of them instead (sorted index % 3, the folds of
benchmarks/unet_quality.py), held out for a model trained without that fold, such as the
general recipe's fold-0 training (benchmarks/configs/filtered_scales.yaml); ``--no-synthetic``
scores the real data set alone.

    python benchmarks/self_training.py [--dev] [--real | --real-fold K] [--model PATH]
        [--no-synthetic] [--tag TAG]

Writes benchmarks/results/self_training[_dev | _TAG].{tsv,md}; micrographs are cached under
resources/cache/self_training/.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import pandas as pd
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks import generality  # noqa: E402
from benchmarks.tables import markdown  # noqa: E402
from cryopick.checkpoint import load_model, save_checkpoint  # noqa: E402
from cryopick.inference import stored_setting_picks  # noqa: E402
from cryopick.io import read_coordinates, read_micrograph  # noqa: E402
from cryopick.metrics import CRYOPPP_EDGE, score_micrograph, within_edge  # noqa: E402
from cryopick.self_training import (  # noqa: E402
    AdaptationMicrograph,
    SelfTrainingSettings,
    confident_share,
    first_pass,
    label_counts,
    self_train,
)
from cryopick.volumes import ALL_VOLUME_KINDS  # noqa: E402

MODEL = ROOT / "models" / "unet_general.pt"
CACHE = ROOT / "resources" / "cache" / "self_training"
HELD_OUT_SEED, DEV_SEED = 9200, 7000
CONDITIONS = ((0.05, "raw"), (0.01, "raw"), (0.05, "filtered_8bit"))
DEV_CELLS = (
    ("elongated", 0, 0.01, "raw"),
    ("ring", 1, 0.01, "raw"),
    ("oligomer", 2, 0.01, "raw"),
    ("globular", 1, 0.05, "filtered_8bit"),
    ("multidomain", 0, 0.05, "filtered_8bit"),
    ("shell", 2, 0.05, "raw"),
)
PER_DATA_SET = 3


def held_out_cells() -> list[tuple[str, int, float, str]]:
    """Every type under every condition, the pixel size turning with both."""
    return [
        (kind, (k + c) % len(generality.SCALES), snr, rendering)
        for k, kind in enumerate(ALL_VOLUME_KINDS)
        for c, (snr, rendering) in enumerate(CONDITIONS)
    ]


def synthetic_data_set(cell, seed: int) -> tuple[str, list[tuple], float]:
    """(name, [(micrograph, denoised, truth)], diameter in file pixels) of one data set."""
    kind, scale, snr, rendering = cell
    pixel_size, diameter = generality.SCALES[scale]
    case = {
        "kind": kind,
        "pixel_size": pixel_size,
        "diameter": diameter,
        "snr": snr,
        "rendering": rendering,
    }
    folder = CACHE / f"seed{seed}"
    files = [
        generality.make_case(case, index, seed, folder, f"_{index}")
        for index in range(PER_DATA_SET)
    ]
    return generality.case_name(case), files, diameter / pixel_size


def real_data_set(fold: int | None = None) -> tuple[str, list[tuple], float]:
    files = [(m, d, t) for _, m, d, t in generality.real_cases(fold)]
    name = "empiar10017" if fold is None else f"empiar10017_fold{fold}"
    return name, files, generality.REAL_DIAMETER_PX


def stored_picks(model, checkpoint: dict, files, d_px: float, workdir: Path) -> list[pd.DataFrame]:
    """Each micrograph's picks as the workflow makes them, at the stored settings."""
    out = []
    for micrograph, denoised, _ in files:
        prediction, frame = generality.model_prediction(
            model, checkpoint, micrograph, denoised, d_px, workdir
        )
        out.append(stored_setting_picks(prediction, frame, d_px, checkpoint["picking"]))
    return out


def score_rows(name: str, files, picks: list[pd.DataFrame], d_px: float, method: str) -> list:
    rows = []
    for (micrograph, _, truth_path), p in zip(files, picks):
        shape = read_micrograph(micrograph).image.shape
        truth = read_coordinates(truth_path)
        for window, margin in (("field", 0.0), ("interior", CRYOPPP_EDGE * d_px)):
            score = score_micrograph(
                Path(micrograph).stem,
                within_edge(p, shape, margin),
                within_edge(truth, shape, margin),
                d_px,
                shape,
            ).row()
            rows.append({"data_set": name, "method": method, "window": window} | score)
    return rows


def adaptation_items(files, d_px: float) -> list[AdaptationMicrograph]:
    """A data set's micrographs as self-training reads them."""
    return [AdaptationMicrograph(Path(m).stem, str(d), str(m), d_px) for m, d, _ in files]


def evaluate(
    data_sets, settings: SelfTrainingSettings, workdir: Path, model_path: Path = MODEL, log=print
) -> pd.DataFrame:
    model, checkpoint = load_model(model_path)
    model = model.float().eval()
    rows = []
    for name, files, d_px in data_sets:
        start = time.monotonic()
        rows += score_rows(
            name, files, stored_picks(model, checkpoint, files, d_px, workdir), d_px, "general"
        )
        adapted = self_train(
            str(model_path), adaptation_items(files, d_px), settings, workdir / name, "cpu", 2, log
        )
        path = workdir / f"{name}.pt"
        save_checkpoint(path, adapted)
        tuned, tuned_checkpoint = load_model(path)
        tuned = tuned.float().eval()
        picks = stored_picks(tuned, tuned_checkpoint, files, d_px, workdir)
        counts = {
            key: tuned_checkpoint["data"].get("self_training", {}).get(key, 0)
            for key in ("pseudo_particles", "undecided")
        }
        rows += [row | counts for row in score_rows(name, files, picks, d_px, "self-trained")]
        log(f"{name}: {time.monotonic() - start:.0f} s")
    return pd.DataFrame(rows)


def first_pass_counts(data_sets, settings: SelfTrainingSettings, model_path: Path) -> pd.DataFrame:
    """Per data set, what its first pass would adapt on (no fine-tuning): pseudo-particles,
    undecided peaks and the confident share that unet.self_training.min_confident_share reads."""
    model, checkpoint = load_model(model_path)
    model = model.float().eval()
    rows = []
    for name, files, d_px in data_sets:
        labels = first_pass(model, checkpoint, adaptation_items(files, d_px), settings)
        particles, undecided = label_counts(labels)
        rows.append(
            {
                "data_set": name,
                "pseudo_particles": particles,
                "undecided": undecided,
                "confident_share": confident_share(particles, undecided),
            }
        )
    return pd.DataFrame(rows)


def guarded(rows: pd.DataFrame, counts: pd.DataFrame, share: float) -> pd.DataFrame:
    """``rows`` plus the guarded method: a data set whose first pass has fewer than ``share``
    of its peaks confident keeps the shipped model (what self_train does with
    min_confident_share), every other one its self-trained scores."""
    skipped = set(counts.loc[counts["confident_share"] < share, "data_set"])
    general = rows[(rows["method"] == "general") & rows["data_set"].isin(skipped)]
    adapted = rows[(rows["method"] == "self-trained") & ~rows["data_set"].isin(skipped)]
    guard = pd.concat([adapted, general]).assign(method=f"self-trained, guard {share:g}")
    return pd.concat([rows, guard], ignore_index=True)


def write_guard_table(out: Path, share: float) -> None:
    """``out``_guard.md: the scores of ``out``.tsv with the guard ``share`` applied from the
    first passes of ``out``_first_pass.tsv."""
    counts = pd.read_csv(f"{out}_first_pass.tsv", sep="\t")
    rows = guarded(pd.read_csv(out.with_suffix(".tsv"), sep="\t"), counts, share)
    rows["condition"] = rows["data_set"].map(condition)
    synthetic = rows[~rows["data_set"].str.startswith("empiar10017")]
    text = [
        f"# Self-training with min_confident_share {share:g} (from {out.name}.tsv and "
        f"{out.name}_first_pass.tsv)",
        "",
        markdown(generality.pooled(rows, ["condition", "window", "method"])),
        "",
        "## all synthetic",
        "",
        markdown(generality.pooled(synthetic, ["window", "method"])),
        "",
        "## the first pass of each data set",
        "",
        markdown(counts),
    ]
    Path(f"{out}_guard.md").write_text("\n".join(text) + "\n")
    print("\n".join(text))


def condition(name: str) -> str:
    if name == "empiar10017":
        return "EMPIAR-10017 (in-sample)"
    if name.startswith("empiar10017_fold"):
        return f"EMPIAR-10017 fold {name[-1]} (held out)"
    snr = name.split("_snr")[1].split("_")[0]
    return f"{'filtered 8-bit' if 'filtered' in name else 'raw'}, SNR {snr}"


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--dev", action="store_true", help="development data sets (seed 7000)")
    parser.add_argument("--real", action="store_true", help="add EMPIAR-10017 as a data set")
    parser.add_argument(
        "--real-fold",
        type=int,
        choices=(0, 1, 2),
        default=None,
        help="add only this fold of EMPIAR-10017 (held out for --model)",
    )
    parser.add_argument("--no-synthetic", action="store_true", help="score the real data only")
    parser.add_argument("--model", type=Path, default=MODEL, help="the model to adapt")
    parser.add_argument("--tag", default=None, help="results suffix (default: _dev or none)")
    parser.add_argument(
        "--guard-table",
        type=float,
        metavar="SHARE",
        help="from the written .tsv and _first_pass.tsv: the scores with min_confident_share "
        "SHARE applied (writes ..._guard.md)",
    )
    parser.add_argument(
        "--first-pass-only",
        action="store_true",
        help="only count what each data set would adapt on (writes ..._first_pass.tsv)",
    )
    parser.add_argument("--confident", type=float, default=None)
    parser.add_argument("--steps", type=int, default=None)
    args = parser.parse_args(argv)
    torch.set_num_threads(2)
    settings = SelfTrainingSettings()
    if args.confident is not None:
        settings = replace(settings, confident=args.confident)
    if args.steps is not None:
        settings = replace(settings, steps=args.steps)
    seed, cells = (DEV_SEED, DEV_CELLS) if args.dev else (HELD_OUT_SEED, held_out_cells())
    data_sets = [] if args.no_synthetic else [synthetic_data_set(cell, seed) for cell in cells]
    if args.real or args.real_fold is not None:
        data_sets.append(real_data_set(args.real_fold))
    tag = f"_{args.tag}" if args.tag else ("_dev" if args.dev else "")
    out = ROOT / "benchmarks" / "results" / f"self_training{tag}"
    if args.first_pass_only:
        counts = first_pass_counts(data_sets, settings, args.model)
        counts.to_csv(f"{out}_first_pass.tsv", sep="\t", index=False)
        print(counts.to_string(index=False))
        return
    if args.guard_table is not None:
        write_guard_table(out, args.guard_table)
        return
    with tempfile.TemporaryDirectory() as tmp:
        rows = evaluate(data_sets, settings, Path(tmp), args.model)
    rows["condition"] = rows["data_set"].map(condition)
    rows.to_csv(out.with_suffix(".tsv"), sep="\t", index=False)
    what = "development" if args.dev else "held out"
    what = "real micrographs only" if args.no_synthetic else f"{what}, seed {seed}"
    sections = [
        f"# Self-training ({what}; model {args.model}; {settings})",
        "",
        "Pooled over micrographs at 0.5 d, the shipped model's stored operating point.",
    ]
    adapted = rows[(rows["method"] == "self-trained") & (rows["window"] == "interior")]
    counts = adapted.groupby("data_set", sort=False)[["pseudo_particles", "undecided"]].first()
    sections += [
        "",
        "## What each data set adapted on (its micrographs' peaks >= confident / undecided)",
        "",
        markdown(counts.astype(int).reset_index()),
    ]
    for title, by in (
        ("by condition", ["condition", "window", "method"]),
        ("all synthetic", ["window", "method"]),
        ("by data set (interior)", ["data_set", "method"]),
    ):
        synthetic = ~rows["data_set"].str.startswith("empiar10017")
        table = rows[synthetic] if title == "all synthetic" else rows
        if table.empty:
            continue
        if title.startswith("by data set"):
            table = table[table["window"] == "interior"]
        sections += ["", f"## {title}", "", markdown(generality.pooled(table, by))]
    out.with_suffix(".md").write_text("\n".join(sections) + "\n")
    print("\n".join(sections))


if __name__ == "__main__":
    main()
