"""Small command-line interface over the package, for use without Snakemake.

    python -m cryopick denoise MIC.mrc OUT.npz [--size 1024] [--pixel-size A] [--invert]
    python -m cryopick pick-baseline OUT.npz PICKS.star --diameter A
    python -m cryopick convert PICKS.star PICKS.box --denoised OUT.npz --diameter A
    python -m cryopick score PICKS_DIR LABELS_DIR --micrographs 'raw/*.mrc' --diameter PX

Outputs are never overwritten unless --overwrite is given.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import pandas as pd

from cryopick.io import InputError


def _refuse_overwrite(path: str, overwrite: bool) -> None:
    if Path(path).exists() and not overwrite:
        raise InputError(f"{path}: exists; pass --overwrite to replace it")


def _denoise(args) -> None:
    from cryopick.denoise import DenoiseSettings, denoise_file

    _refuse_overwrite(args.output, args.overwrite)
    denoised = denoise_file(
        args.micrograph,
        args.output,
        DenoiseSettings(size=args.size),
        pixel_size=args.pixel_size,
        invert=args.invert,
    )
    print(f"{args.output}: {denoised.frame.size}^2 canvas, {denoised.pixel_size:.3f} A/px")


def _pick_baseline(args) -> None:
    from cryopick.picking import BlobSettings, pick_baseline_file

    _refuse_overwrite(args.output, args.overwrite)
    settings = BlobSettings(threshold=args.threshold)
    picks = pick_baseline_file(args.denoised, args.output, settings, args.diameter)
    print(f"{args.output}: {len(picks)} picks")


def _convert(args) -> None:
    from cryopick.picking import convert_picks_file

    _refuse_overwrite(args.output, args.overwrite)
    convert_picks_file(args.picks, args.denoised, args.output, args.diameter)


def _score(args) -> None:
    from cryopick.datasets import list_label_files, list_micrographs
    from cryopick.io import read_coordinates, read_micrograph
    from cryopick.metrics import score_micrograph, summarise

    micrographs = list_micrographs(args.micrographs)
    picks = list_label_files(args.picks)
    labels = list_label_files(args.labels)
    rows = []
    for name, path in micrographs.items():
        if name not in picks or name not in labels:
            print(f"skipped {name}: no picks or no labels", file=sys.stderr)
            continue
        shape = read_micrograph(path).image.shape
        rows.append(
            score_micrograph(
                name,
                read_coordinates(picks[name]),
                read_coordinates(labels[name]),
                args.diameter,
                shape,
            ).row()
        )
    table = pd.DataFrame(rows)
    print(table.to_string(index=False, float_format=lambda v: f"{v:.3f}"))
    print(pd.Series(summarise(table)).to_string())


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="cryopick", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("denoise", help="bin and denoise one micrograph")
    p.add_argument("micrograph")
    p.add_argument("output")
    p.add_argument("--size", type=int, default=1024)
    p.add_argument("--pixel-size", type=float, default=None)
    p.add_argument("--invert", action="store_true", help="particles are bright")
    p.set_defaults(run=_denoise)
    p = sub.add_parser("pick-baseline", help="blob-detector picks on a denoised micrograph")
    p.add_argument("denoised")
    p.add_argument("output")
    p.add_argument("--diameter", type=float, required=True, help="particle diameter in A")
    p.add_argument("--threshold", type=float, default=1.0)
    p.set_defaults(run=_pick_baseline)
    p = sub.add_parser("convert", help="picks to .star, .csv or .box")
    p.add_argument("picks")
    p.add_argument("output")
    p.add_argument("--denoised", required=True)
    p.add_argument("--diameter", type=float, required=True, help="particle diameter in A")
    p.set_defaults(run=_convert)
    p = sub.add_parser("score", help="score a folder of picks against a folder of labels")
    p.add_argument("picks")
    p.add_argument("labels")
    p.add_argument("--micrographs", required=True, help="glob or list file of micrographs")
    p.add_argument("--diameter", type=float, required=True, help="particle diameter in pixels")
    p.set_defaults(run=_score)
    for action in sub.choices.values():
        if action.prog.split()[-1] in ("denoise", "pick-baseline", "convert"):
            action.add_argument("--overwrite", action="store_true")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        args.run(args)
    except InputError as exc:
        print(f"cryopick: error: {exc}", file=sys.stderr)
        return 1
    return 0
