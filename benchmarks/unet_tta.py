"""What the U-Net's test-time augmentation buys: the cached cross-validation fold models of
benchmarks/unet_quality.py (never retrained here) scored on their held-out micrographs with
1, 2 and 4 flips/rotations averaged, with the seconds of the forward passes per micrograph.

    python benchmarks/unet_tta.py --tag full27 --threads 1

Picking settings are each fold model's own (tuned with its training symmetries); only the
number of averaged symmetries changes. Writes benchmarks/results/unet_tta.{md,tsv}.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import pandas as pd
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

from unet_quality import DEFAULT_DATA, ROOT, denoise_all, evaluate_model, pooled_table  # noqa: E402


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--tag", default="full27")
    parser.add_argument("--folds", type=int, default=3)
    parser.add_argument("--size", type=int, default=1024)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--symmetries", type=int, nargs="+", default=[1, 2, 4])
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)

    cache = ROOT / "resources" / "cache"
    canvases = denoise_all(args.data, cache / f"empiar10017_{args.size}", args.size)
    names = sorted(canvases)
    runs = cache / f"unet_cv_{args.tag}"
    rows, seconds = [], []
    for symmetries in args.symmetries:
        for fold in range(args.folds):
            held_out = [n for i, n in enumerate(names) if i % args.folds == fold]
            checkpoint = runs / f"fold{fold}.pt"
            if not checkpoint.exists():
                sys.exit(f"{checkpoint}: no cached fold model (run unet_quality.py first)")
            start = time.perf_counter()
            rows += evaluate_model(
                checkpoint,
                held_out,
                canvases,
                args.data,
                f"unet, {symmetries} symmetries",
                fold,
                runs / f"fold{fold}_maps_tta{symmetries}",
                symmetries=symmetries,
            )
            seconds.append(
                {
                    "method": f"unet, {symmetries} symmetries",
                    "seconds": time.perf_counter() - start,
                    "n": len(held_out),
                }
            )
    table = pooled_table(pd.DataFrame(rows))
    table = table[table["fold"] == "pooled"].drop(columns="fold")
    timing = pd.DataFrame(seconds).groupby("method", sort=False).sum()
    table["seconds_per_micrograph"] = [
        timing.loc[m, "seconds"] / timing.loc[m, "n"] for m in table["method"]
    ]
    out = ROOT / "benchmarks" / "results"
    table.to_csv(out / "unet_tta.tsv", sep="\t", index=False, float_format="%.4f")
    text = [
        "# U-Net test-time augmentation, 3-fold CV on EMPIAR-10017 (held-out only)",
        "",
        f"Cached fold models `{runs.name}`; seconds = read + bin + forward passes + "
        f"picks per 4096^2 micrograph, {args.threads} thread(s), shared CPU.",
        "",
        table.to_markdown(index=False, floatfmt=".3f"),
        "",
    ]
    (out / "unet_tta.md").write_text("\n".join(text))
    print("\n".join(text))


if __name__ == "__main__":
    main()
