"""What the U-Net's edge margin costs and gains: the same predictions (made as the workflow
makes them, benchmarks.generality.model_prediction) picked with several margins, scored over
the whole field, on the real EMPIAR-10017 micrographs (CryoPPP labels, none closer than one
diameter to the edge) and on the raw renderings of the synthetic grid of
benchmarks/generality.py (truth up to the edge). The synthetic truth is scored two ways:
"all", every centre inside the micrograph (particles cut by the edge included), and "whole",
only particles lying whole inside the micrograph (centres at least a radius from the edge), as
a simulator that keeps its particles inside the field would count them.

    .venv/bin/python benchmarks/edge_margin.py      # ~4 min on 2 cores
    .venv/bin/python benchmarks/edge_margin.py --grid small_px --tag small_px
    .venv/bin/python benchmarks/edge_margin.py --real-only --real-fold 0 --model CV0_MODEL

Writes benchmarks/results/edge_margin[_TAG].md.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import pandas as pd
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.generality import (  # noqa: E402
    CACHE,
    GRIDS,
    REAL_TEST,
    add_real_arguments,
    model_prediction,
    test_cases,
)
from benchmarks.tables import markdown  # noqa: E402
from cryopick.checkpoint import load_model  # noqa: E402
from cryopick.inference import picks_from_prediction  # noqa: E402
from cryopick.io import read_coordinates  # noqa: E402
from cryopick.metrics import score_micrograph, summarise, within_edge  # noqa: E402
from cryopick.volumes import ALL_VOLUME_KINDS  # noqa: E402

MODEL = ROOT / "models" / "unet_general.pt"
MARGINS = (0.5, 0.75, 1.0, 1.1, 1.2)
# synthetic truth windows: (name, margin from the edge in diameters)
TRUTH_WINDOWS = (("all", 0.0), ("whole", 0.5))


def margin_rows(
    model,
    checkpoint: dict,
    margins: tuple[float, ...],
    grid: str = "main",
    real_fold: int | None = None,
    synthetic: bool = True,
) -> pd.DataFrame:
    """One row per test micrograph, margin and truth window, at the model's stored
    threshold (the real micrographs of ``real_fold`` only, when given)."""
    picking, rows = checkpoint["picking"], []
    workdir = CACHE / "work"
    workdir.mkdir(parents=True, exist_ok=True)
    for name, micrograph, denoised, truth_path, d_px, shape, about in test_cases(
        tuple(ALL_VOLUME_KINDS), real_fold, synthetic, grid
    ):
        if about["rendering"] != "raw" and about["test"].startswith("synthetic"):
            continue
        prediction, frame = model_prediction(model, checkpoint, micrograph, denoised, d_px, workdir)
        truth = read_coordinates(truth_path)
        for margin in margins:
            picks = picks_from_prediction(
                prediction,
                frame,
                d_px / frame.scale,
                picking["threshold"],
                picking["min_distance"],
                margin,
            )
            windows = (("labels", 0.0),) if about["test"] == REAL_TEST else TRUTH_WINDOWS
            for window, truth_margin in windows:
                kept = within_edge(truth, shape, truth_margin * d_px)
                score = score_micrograph(name, picks, kept, d_px, shape).row()
                rows.append(
                    {"test": about["test"], "snr": about["snr"], "truth": window}
                    | {"margin": margin, **score}
                )
    return pd.DataFrame(rows)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", type=Path, default=MODEL)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--grid", choices=tuple(GRIDS), default="main")
    parser.add_argument("--tag", default="")
    add_real_arguments(parser)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    model, checkpoint = load_model(args.model, device="cpu")
    rows = margin_rows(model, checkpoint, MARGINS, args.grid, args.real_fold, not args.real_only)
    table = []
    keys = ["test", "snr", "truth", "margin"]
    for (test, snr, truth, margin), group in rows.groupby(keys, dropna=False):
        s = summarise(group)
        table.append(
            {"test": test, "snr": snr, "truth": truth, "edge margin (d)": margin}
            | {"micrographs": len(group)}
            | {k: s[k] for k in ("precision", "recall", "f1")}
        )
    scope = "real micrographs only" if args.real_only else f"grid {args.grid}"
    if args.real_fold is not None:
        scope = f"real fold {args.real_fold}, {scope}"
    text = (
        f"# The U-Net's edge margin (benchmarks/edge_margin.py, {args.model.name}, {scope})\n\n"
        f"Stored threshold {checkpoint['picking']['threshold']}, tuned edge margin "
        f"{checkpoint['picking']['edge_margin']} d; pooled, whole field, matching within 0.5 d."
        "\n\n" + markdown(pd.DataFrame(table)) + "\n"
    )
    suffix = f"_{args.tag}" if args.tag else ""
    out = ROOT / "benchmarks" / "results" / f"edge_margin{suffix}.md"
    out.write_text(text)
    print(text)


if __name__ == "__main__":
    main()
