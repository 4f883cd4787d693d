"""Label-free operating points of a U-Net, compared on micrographs it never saw: the threshold
stored in the model (tuned on its validation micrographs), fixed thresholds, and thresholds
adapted per micrograph from the distribution of its peak scores (Otsu on the peak heights, or
a fraction of the 90th percentile, never below the stored one).

Each model's picks are made once at a floor threshold on the test micrographs of
benchmarks/generality.py (greedy suppression makes "picks above t" equal to picking at t), then
cut at every rule's threshold and scored by the workflow's metrics.

    python benchmarks/operating_point.py --tag session5 --real-fold 0 \
        --model general_cv0=results/unet_training/general_cv0/model.pt

Writes benchmarks/results/operating_point[_TAG].md.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.generality import CACHE, REAL_TEST, model_picks, test_cases  # noqa: E402
from benchmarks.tables import markdown  # noqa: E402
from cryopick.checkpoint import load_model  # noqa: E402
from cryopick.io import read_coordinates  # noqa: E402
from cryopick.metrics import score_micrograph, summarise  # noqa: E402
from cryopick.volumes import ALL_VOLUME_KINDS  # noqa: E402

FLOOR = 0.02
FIXED = (0.1, 0.2, 0.25, 0.3, 0.4, 0.5, 0.6)


def otsu_threshold(scores: np.ndarray, low: float = 0.05) -> float | None:
    """The cut of the peak heights above ``low`` that maximises the between-class variance."""
    scores = scores[scores >= low]
    if len(scores) < 10:
        return None
    best, best_t = -1.0, None
    for t in np.linspace(0.06, 0.9, 85):
        below, above = scores[scores < t], scores[scores >= t]
        if len(below) and len(above):
            spread = len(below) * len(above) * (below.mean() - above.mean()) ** 2
            if spread > best:
                best, best_t = spread, float(t)
    return best_t


def rule_thresholds(scores: np.ndarray, stored: float) -> dict[str, float]:
    rules = {"stored": stored, **{f"fixed {t:g}": t for t in FIXED}}
    otsu = otsu_threshold(scores)
    rules["max(stored, Otsu)"] = stored if otsu is None else max(stored, otsu)
    high = scores[scores >= 0.05]
    p90 = float(np.percentile(high, 90)) if len(high) else 0.0
    rules["max(stored, 0.5 x p90)"] = max(stored, 0.5 * p90)
    return rules


def group_of(about: dict) -> str:
    if about["test"].startswith("EMPIAR"):
        return REAL_TEST
    return f"synthetic {about['rendering']}, SNR {about['snr']:g}"


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", action="append", required=True, metavar="NAME=PATH")
    parser.add_argument("--real-fold", type=int, choices=(0, 1, 2))
    parser.add_argument("--tag", default="")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    models = {}
    for spec in args.model:
        name, path = spec.split("=", 1)
        models[name] = load_model(path, device="cpu")
    workdir = CACHE / "work"
    workdir.mkdir(parents=True, exist_ok=True)
    rows = []
    for name, micrograph, denoised, truth_path, d_px, shape, about in test_cases(
        tuple(ALL_VOLUME_KINDS), args.real_fold
    ):
        truth = read_coordinates(truth_path)
        for method, (model, checkpoint) in models.items():
            floor = {**checkpoint, "picking": {**checkpoint["picking"], "threshold": FLOOR}}
            picks = model_picks(model, floor, micrograph, denoised, d_px, workdir)["stored"]
            scores = picks["score"].to_numpy()
            for rule, t in rule_thresholds(scores, checkpoint["picking"]["threshold"]).items():
                kept = picks[picks["score"] >= t]
                score = score_micrograph(name, kept, truth, d_px, shape).row()
                rows.append({"method": method, "test": group_of(about), "rule": rule, **score})
    table = pd.DataFrame(rows)
    pooled = (
        table.groupby(["method", "test", "rule"], sort=False)
        .apply(lambda g: summarise(g)["f1"])
        .unstack("rule")
        .reset_index()
    )
    print(pooled.round(3).to_string(index=False))
    suffix = f"_{args.tag}" if args.tag else ""
    text = [
        "# Label-free operating points (benchmarks/operating_point.py"
        + (f" --tag {args.tag})" if args.tag else ")"),
        "",
        "Pooled F1 at 0.5 x diameter on micrographs no model trained on, per threshold rule.",
        "",
        markdown(pooled),
        "",
    ]
    (ROOT / "benchmarks" / "results" / f"operating_point{suffix}.md").write_text("\n".join(text))


if __name__ == "__main__":
    main()
