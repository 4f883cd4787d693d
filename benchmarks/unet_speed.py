"""Seconds per micrograph for the U-Net picking path on this CPU: read + bin + denoise (the
denoise stage), the U-Net stage (read + bin the micrograph for a "binned" model, forward passes
with --symmetries flips/rotations averaged, 1 as in the workflow's default; the model loaded
once, as a workflow job does) and picks from the centre map.

Each stage is timed per micrograph at 1 and 2 torch threads (OpenCV follows the same setting);
wall-clock and CPU seconds are both reported, since a shared machine inflates wall time. A
Topaz timing (preprocess + extract on the same micrographs) can be given with --topaz-seconds
to print the ratio, or --topaz PATH (a topaz-em 0.3.20 executable) to time Topaz's
`preprocess` (4x downsampling) + `extract` (pretrained resnet16_u64, CPU) on the same micrographs
in the same run, at the same thread counts. Topaz runs with exactly the settings of
benchmarks/topaz_quality.py (``-s 4``, ``-r 13``, ``-t -6``, ``-d -1``; ``-j THREADS`` and
OMP/MKL_NUM_THREADS=THREADS) and with the torchvision stand-in (/work/topaz-stub, see
topaz_quality.py) first on PYTHONPATH. The JPG -> MRC conversion Topaz needs is not timed (a
user of Topaz has MRC files); cryopick's time includes reading the JPG. Topaz's CPU seconds are
the children's user + system time from the process accounting.

Results: benchmarks/results/unet_speed[_TAG].{tsv,md} (medians over the micrographs) and
unet_speed[_TAG]_per_micrograph.tsv.

    python benchmarks/unet_speed.py --model models/unet_default.pt --micrographs 3 \
        --topaz /work/topaz-venv/bin/topaz
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import cv2
import pandas as pd
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from cryopick.checkpoint import load_model  # noqa: E402
from cryopick.denoise import DenoiseSettings, denoise_image, frame_for  # noqa: E402
from cryopick.inference import model_scale, picks_from_prediction, predict  # noqa: E402
from cryopick.io import read_micrograph, write_mrc  # noqa: E402
from cryopick.network_input import binned_canvas, normalised_canvas  # noqa: E402

sys.path.insert(0, str(ROOT / "benchmarks"))
from topaz_quality import RADIUS as TOPAZ_RADIUS  # noqa: E402
from topaz_quality import SCALE as TOPAZ_SCALE

DEFAULT_DATA = ROOT.parent / "shared" / "data" / "empiar10017"
DIAMETER_PX = 108.0


class Clock:
    """Wall and CPU seconds of a block."""

    def __enter__(self):
        self.wall, self.cpu = time.perf_counter(), time.process_time()
        return self

    def __exit__(self, *exc):
        self.wall = time.perf_counter() - self.wall
        self.cpu = time.process_time() - self.cpu
        return False


def run(
    paths: list[Path], model_path: Path, threads: int, symmetries: int | None = None
) -> list[dict]:
    """cryopick's path per micrograph; ``symmetries`` None uses the model's tuning setting."""
    torch.set_num_threads(threads)
    cv2.setNumThreads(threads)
    with Clock() as load:
        model, checkpoint = load_model(model_path)
    picking = checkpoint["picking"]
    rows = []
    for path in paths:
        row = {"threads": threads, "micrograph": path.stem, "model_load_s": load.wall}
        with Clock() as c:
            micrograph = read_micrograph(path)
            frame = frame_for(micrograph.image.shape, 1024)
            canvas = denoise_image(micrograph.image, DenoiseSettings(), frame)
        row.update(read_denoise_s=c.wall, read_denoise_cpu_s=c.cpu)
        scale = model_scale(checkpoint, frame, DIAMETER_PX)
        with Clock() as c:
            if checkpoint.get("input") == "binned":
                canvas = binned_canvas(str(path), frame)
            elif checkpoint.get("input") == "normalised":  # reads the micrograph again
                canvas = normalised_canvas(str(path), frame, DIAMETER_PX / frame.scale)
            prediction = predict(
                model,
                [canvas],
                [frame.content_mask],
                batch_size=1,
                scale=scale,
                symmetries=int(symmetries or picking.get("symmetries", 1)),
            )[0]
        row.update(unet_s=c.wall, unet_cpu_s=c.cpu)
        with Clock() as c:
            picks = picks_from_prediction(
                prediction,
                frame,
                DIAMETER_PX / frame.scale,
                picking["threshold"],
                picking["min_distance"],
                picking["edge_margin"],
            )
        row.update(picks_s=c.wall, picks_cpu_s=c.cpu, n_picks=len(picks))
        row["total_s"] = row["read_denoise_s"] + row["unet_s"] + row["picks_s"]
        row["total_cpu_s"] = row["read_denoise_cpu_s"] + row["unet_cpu_s"] + row["picks_cpu_s"]
        rows.append(row)
        print(row, flush=True)
    return rows


def run_topaz(paths: list[Path], topaz: str, threads: int, workdir: Path) -> list[dict]:
    """Topaz preprocess + extract per micrograph (JPG converted to MRC first, not timed: Topaz
    cannot read JPG). Child CPU seconds come from the process accounting."""
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)}
    stub = ROOT.parent / "topaz-stub"  # torchvision stand-in (Topaz imports it for flips only)
    if stub.exists():
        env["PYTHONPATH"] = f"{stub}:{env.get('PYTHONPATH', '')}"
    rows = []
    for path in paths:
        mrc = workdir / f"{path.stem}.mrc"
        write_mrc(mrc, read_micrograph(path).image, 1.77)
        row = {"threads": threads, "micrograph": path.stem}
        for step, cmd in (
            (
                "topaz_preprocess",
                [
                    topaz,
                    "preprocess",
                    "-s",
                    str(TOPAZ_SCALE),
                    "-d",
                    "-1",
                    "-t",
                    "0",
                    "-j",
                    str(threads),
                    "-o",
                    str(workdir / "pre"),
                    str(mrc),
                ],
            ),
            (
                "topaz_extract",
                [
                    topaz,
                    "extract",
                    "-m",
                    "resnet16_u64",
                    "-r",
                    str(TOPAZ_RADIUS),
                    "-t",
                    "-6",
                    "-x",
                    str(TOPAZ_SCALE),
                    "-d",
                    "-1",
                    "-j",
                    str(threads),
                    "-o",
                    str(workdir / f"{path.stem}.txt"),
                    str(workdir / "pre" / mrc.name),
                ],
            ),
        ):
            before = os.times()
            start = time.perf_counter()
            subprocess.run(cmd, check=True, env=env, capture_output=True)
            after = os.times()
            row[f"{step}_s"] = time.perf_counter() - start
            row[f"{step}_cpu_s"] = (
                after.children_user
                - before.children_user
                + after.children_system
                - before.children_system
            )
        row["topaz_s"] = row["topaz_preprocess_s"] + row["topaz_extract_s"]
        row["topaz_cpu_s"] = row["topaz_preprocess_cpu_s"] + row["topaz_extract_cpu_s"]
        rows.append(row)
        print(row, flush=True)
    return rows


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--model", type=Path, default=ROOT / "models" / "unet_default.pt")
    parser.add_argument("--micrographs", type=int, default=3)
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument(
        "--topaz-seconds",
        type=float,
        default=None,
        help="Topaz preprocess + extract seconds per micrograph, same run",
    )
    parser.add_argument("--topaz", default=None, help="topaz executable to time beside")
    parser.add_argument("--tag", default="")
    parser.add_argument(
        "--symmetries",
        type=int,
        default=1,
        help="test-time augmentation (the workflow default is 1; 0 = the model's tuning setting)",
    )
    args = parser.parse_args(argv)
    paths = sorted((args.data / "micrographs").iterdir())[: args.micrographs]
    rows = []
    topaz_rows = []
    for threads in args.threads:
        # warm-up (allocator, oneDNN kernels), not counted
        run(paths[:1], args.model, threads, args.symmetries or None)
        rows += run(paths, args.model, threads, args.symmetries or None)
        if args.topaz:
            with tempfile.TemporaryDirectory() as tmp:
                topaz_rows += run_topaz(paths, args.topaz, threads, Path(tmp))
    table = pd.DataFrame(rows)
    columns = [
        "read_denoise_s",
        "unet_s",
        "picks_s",
        "total_s",
        "read_denoise_cpu_s",
        "unet_cpu_s",
        "picks_cpu_s",
        "total_cpu_s",
    ]
    if topaz_rows:
        table = table.merge(pd.DataFrame(topaz_rows), on=["threads", "micrograph"])
        columns += [
            "topaz_preprocess_s",
            "topaz_extract_s",
            "topaz_s",
            "topaz_preprocess_cpu_s",
            "topaz_extract_cpu_s",
            "topaz_cpu_s",
        ]
    summary = table.groupby("threads")[columns].median().reset_index()
    summary.insert(1, "n_micrographs", len(paths))
    if topaz_rows:
        summary["fraction_of_topaz"] = summary["total_s"] / summary["topaz_s"]
        summary["cpu_fraction_of_topaz"] = summary["total_cpu_s"] / summary["topaz_cpu_s"]
    elif args.topaz_seconds:
        summary["topaz_s"] = args.topaz_seconds
        summary["fraction_of_topaz"] = summary["total_s"] / args.topaz_seconds
    out = ROOT / "benchmarks" / "results"
    out.mkdir(parents=True, exist_ok=True)
    tag = f"_{args.tag}" if args.tag else ""
    table.to_csv(
        out / f"unet_speed{tag}_per_micrograph.tsv", sep="\t", index=False, float_format="%.3f"
    )
    summary.to_csv(out / f"unet_speed{tag}.tsv", sep="\t", index=False, float_format="%.3f")
    text = summary.to_string(index=False, float_format=lambda v: f"{v:.2f}")
    cols = list(summary.columns)
    md = [
        f"# Seconds per 4096 x 4096 EMPIAR-10017 micrograph, median over {len(paths)} micrographs",
        "",
        f"cryopick: read + bin + denoise, U-Net ({args.model.name}, "
        f"{args.symmetries or 'its tuning'} symmetr{'y' if args.symmetries == 1 else 'ies'} "
        "averaged), picks. Topaz 0.3.20: preprocess -s "
        f"{TOPAZ_SCALE} + extract resnet16_u64 -r {TOPAZ_RADIUS} (CPU, JPG -> MRC not timed). "
        "Same run, same machine (2 shared CPU cores), threads = torch/OpenCV threads for "
        "cryopick and -j / OMP_NUM_THREADS for Topaz. *_s wall seconds, *_cpu_s CPU seconds; "
        "fraction_of_topaz = cryopick / Topaz (wall), cpu_fraction_of_topaz the same in CPU "
        "seconds.",
        "",
        "| " + " | ".join(cols) + " |",
        "|" + "---|" * len(cols),
    ]
    for _, row in summary.iterrows():
        md.append(
            "| "
            + " | ".join(
                str(int(row[c]))
                if c in ("threads", "n_micrographs")
                else f"{row[c]:.3f}"
                if "fraction" in c
                else f"{row[c]:.2f}"
                for c in cols
            )
            + " |"
        )
    (out / f"unet_speed{tag}.md").write_text("\n".join(md) + "\n")
    print(text)


if __name__ == "__main__":
    main()
