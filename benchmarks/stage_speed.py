"""Speed and peak memory of the SAM, postprocessing and dense-CRF stages on this machine.

Each case runs in a fresh Python process so that its peak resident memory (ru_maxrss) is its
own. Cases:

- ``nms``: cryopick's pure-torch batched NMS on N random boxes (SAM: up to 3 x points^2).
- ``sam_tiny``: the random-weight tiny SAM (cryopick.sam.build_tiny_sam) through the real
  automatic mask generator, thresholds off, on a disc probability map of the given canvas size.
  Its image encoder is negligible, so this times everything around the model: prompt batches,
  mask upsampling to the canvas, stability scores, NMS and RLE encoding.
- ``sam_vit``: a full-size SAM (vit_b/vit_l/vit_h) with *random* weights built from
  segment_anything's classes: the image-encoder forward pass and one prompt batch, plus the
  weights' memory. No checkpoint is needed, nothing is downloaded; the numbers are the model's
  cost, not its masks.
- ``postprocess``: fixed Algorithm 1 on M hand-made disc masks.
- ``crf``: dense CRF (Chung & Chou's setting) on a canvas of the given size.

    python benchmarks/stage_speed.py                 # default cases (a few minutes on 2 cores)
    python benchmarks/stage_speed.py --vit vit_b vit_h --crf-sizes 1024 2048 4096
    python benchmarks/stage_speed.py --crf-quality   # CRF settings on the bundled real data

Writes benchmarks/results/stage_speed.tsv and prints the table. ``--crf-quality`` instead
checks CRF settings on the bundled EMPIAR-10017 demo micrographs (denoised by cryopick) with
stand-in U-Net maps made from the label masks (blurred, or dilated then blurred: an imprecise
U-Net), reporting the mean IoU with the label masks before and after the CRF; it writes
benchmarks/results/crf_settings.tsv. The labels are discs, so this measures what the pixel
metrics will see, not how well the CRF follows true particle outlines.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def disc_map(size: int, n: int, radius: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:size, :size]
    prob = np.zeros((size, size), np.float32)
    for cy, cx in rng.uniform(radius, size - radius, size=(n, 2)):
        prob[(yy - cy) ** 2 + (xx - cx) ** 2 <= radius**2] = 1
    return prob


def case_nms(n: int) -> dict:
    import torch

    from cryopick.torch_ops import batched_nms

    g = torch.Generator().manual_seed(0)
    xy = torch.rand(n, 2, generator=g) * 1000
    boxes = torch.cat([xy, xy + 10 + torch.rand(n, 2, generator=g) * 40], 1)
    scores = torch.rand(n, generator=g)
    start = time.perf_counter()
    kept = batched_nms(boxes, scores, torch.zeros(n, dtype=torch.int64), 0.7)
    return {"seconds": time.perf_counter() - start, "detail": f"{len(kept)} of {n} kept"}


def case_sam_tiny(size: int, points: int, threads: int) -> dict:
    import torch

    from cryopick import sam

    torch.set_num_threads(threads)
    settings = sam.SamSettings(
        model_type="tiny", points_per_side=points, pred_iou_thresh=0.0, stability_score_thresh=0.0
    )
    generator = sam.make_generator(sam.build_tiny_sam(0), settings)
    image = sam.sam_input_from_probability(disc_map(size, 40, max(3, size // 60)))
    start = time.perf_counter()
    records = sam.generate_masks(generator, image)
    return {
        "seconds": time.perf_counter() - start,
        "detail": f"{size}^2 canvas, {points}^2 prompts, {len(records)} masks",
    }


def case_sam_vit(model_type: str, threads: int) -> dict:
    import torch

    from cryopick import sam

    torch.set_num_threads(threads)
    torch.manual_seed(0)
    sa = sam.segment_anything()
    start = time.perf_counter()
    model = sa.sam_model_registry[model_type]().eval()
    build_s = time.perf_counter() - start
    predictor = sa.SamPredictor(model)
    image = sam.sam_input_from_probability(disc_map(1024, 40, 17))
    start = time.perf_counter()
    with torch.no_grad():
        predictor.set_image(image)
    encode_s = time.perf_counter() - start
    points = torch.rand(64, 1, 2) * 1024
    start = time.perf_counter()
    with torch.no_grad():
        predictor.predict_torch(
            predictor.transform.apply_coords_torch(points, (1024, 1024)),
            torch.ones(64, 1),
            multimask_output=True,
        )
    batch_s = time.perf_counter() - start
    params = sum(p.numel() for p in model.parameters())
    return {
        "seconds": encode_s,
        "detail": f"encoder forward at 1024^2 (random weights, {params / 1e6:.0f} M "
        f"parameters); build {build_s:.1f} s; one 64-prompt decoder batch "
        f"{batch_s:.2f} s",
    }


def case_postprocess(masks: int) -> dict:
    from cryopick.denoise import frame_for
    from cryopick.postprocess import masks_to_picks
    from cryopick.sam import MaskRecord

    rng = np.random.default_rng(0)
    records = []
    for _ in range(masks):
        x, y = rng.uniform(20, 1000, 2)
        w, h = rng.normal(27, 2, 2).round()
        records.append(
            MaskRecord(
                bbox=(float(x), float(y), float(w), float(h)),
                area=0,
                predicted_iou=float(rng.uniform(0.9, 1)),
                stability_score=float(rng.uniform(0.9, 1)),
                point=(x, y),
                counts=(),
                size=(1024, 1024),
            )
        )
    start = time.perf_counter()
    picks, _ = masks_to_picks(records, frame_for((4096, 4096), 1024))
    return {"seconds": time.perf_counter() - start, "detail": f"{masks} masks -> {len(picks)}"}


def case_crf(size: int) -> dict:
    from cryopick.crf import CrfSettings, crf_refine

    prob = disc_map(size, 60, max(3, size // 60))
    rng = np.random.default_rng(1)
    image = np.clip(150 - 60 * prob + rng.normal(0, 10, prob.shape), 0, 255).astype(np.uint8)
    start = time.perf_counter()
    crf_refine(np.clip(prob * 0.8 + 0.1, 0, 1), image, CrfSettings())
    return {
        "seconds": time.perf_counter() - start,
        "detail": f"{size}^2, Chung & Chou (sdims 10, schan 0.5, compat 1, 10 iterations)",
    }


CASES = {
    "nms": case_nms,
    "sam_tiny": case_sam_tiny,
    "sam_vit": case_sam_vit,
    "postprocess": case_postprocess,
    "crf": case_crf,
}


def crf_quality(out: Path) -> None:
    """Mean IoU with the label discs of stand-in U-Net maps before and after the CRF."""
    import itertools

    import cv2

    from cryopick.crf import CrfSettings, crf_refine
    from cryopick.denoise import DenoiseSettings, denoise_image, frame_for
    from cryopick.io import read_micrograph

    demo = ROOT / "data/demo/empiar10017"
    settings = {"none": None}
    for schan, compat in itertools.product([0.5, 10.0], [1.0, 3.0]):
        settings[f"schan {schan:g}, compat {compat:g}"] = CrfSettings(schan=schan, compat=compat)
    scores: dict[tuple[str, str], list[float]] = {}
    seconds = []
    for path in sorted((demo / "micrographs").glob("*.jpg")):
        image = read_micrograph(path).image
        frame = frame_for(image.shape, 1024)
        denoised = denoise_image(image, DenoiseSettings(), frame)
        label = cv2.imread(str(demo / "masks" / f"{path.stem}.png"), cv2.IMREAD_GRAYSCALE)
        truth = (
            cv2.resize(
                label, (frame.content_width, frame.content_height), interpolation=cv2.INTER_NEAREST
            )
            > 127
        )
        truth = np.pad(truth, ((0, 1024 - truth.shape[0]), (0, 1024 - truth.shape[1])))
        disc = truth.astype(np.float32)
        maps = {
            "blurred": cv2.GaussianBlur(disc, (0, 0), 4),
            "too wide": cv2.GaussianBlur(cv2.dilate(disc, np.ones((7, 7))), (0, 0), 4),
        }
        for (map_name, prob), (name, setting) in itertools.product(maps.items(), settings.items()):
            start = time.perf_counter()
            refined = prob if setting is None else crf_refine(prob, denoised, setting)
            if setting is not None:
                seconds.append(time.perf_counter() - start)
            mask = refined > 0.5
            scores.setdefault((map_name, name), []).append(
                float((mask & truth).sum() / (mask | truth).sum())
            )
    lines = ["stand_in_map\tcrf\tmean_iou\tmicrographs"]
    lines += [f"{m}\t{n}\t{np.mean(v):.3f}\t{len(v)}" for (m, n), v in scores.items()]
    text = "\n".join(lines) + "\n"
    print(text + f"mean CRF time at 1024^2: {np.mean(seconds):.2f} s")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(
        "# CRF settings on EMPIAR-10017 demo micrographs, stand-in U-Net maps from "
        "the label masks (benchmarks/stage_speed.py --crf-quality)\n" + text
    )
    print(f"written to {out}")


def run_case(name: str, args: list) -> dict:
    """Run one case in a fresh interpreter; returns its result plus its peak memory."""
    proc = subprocess.run(
        [sys.executable, __file__, "--case", name, "--case-args", json.dumps(args)],
        capture_output=True,
        text=True,
    )
    if proc.returncode != 0:
        return {
            "seconds": float("nan"),
            "detail": "failed: " + proc.stderr.strip()[-300:],
            "peak_mb": float("nan"),
        }
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--case", help=argparse.SUPPRESS)
    parser.add_argument("--case-args", help=argparse.SUPPRESS)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument(
        "--vit",
        nargs="*",
        default=["vit_b"],
        help="full-size SAM encoders to time with random weights",
    )
    parser.add_argument("--crf-sizes", nargs="*", type=int, default=[512, 1024, 2048])
    parser.add_argument(
        "--crf-quality",
        action="store_true",
        help="check CRF settings on the bundled real data instead",
    )
    parser.add_argument("--out", default=str(ROOT / "benchmarks/results/stage_speed.tsv"))
    args = parser.parse_args()

    if args.crf_quality:
        crf_quality(ROOT / "benchmarks/results/crf_settings.tsv")
        return

    if args.case:  # child process
        result = CASES[args.case](*json.loads(args.case_args))
        result["peak_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        print(json.dumps(result))
        return

    plan = [
        ("nms", [1000]),
        ("nms", [3072]),
        ("sam_tiny", [256, 8, args.threads]),
        ("sam_tiny", [1024, 8, args.threads]),
        ("sam_tiny", [1024, 32, args.threads]),
    ]
    plan += [("sam_vit", [m, args.threads]) for m in args.vit]
    plan += [("postprocess", [2000])]
    plan += [("crf", [s]) for s in args.crf_sizes]
    rows = []
    for name, case_args in plan:
        result = run_case(name, case_args)
        rows.append((name, result["seconds"], result["peak_mb"], result["detail"]))
        print(
            f"{name:12s} {result['seconds']:8.2f} s {result['peak_mb']:8.0f} MB  "
            f"{result['detail']}",
            flush=True,
        )

    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    load = ", ".join(f"{v:.1f}" for v in os.getloadavg())
    header = (
        f"# cryopick stage speed; {platform.processor() or platform.machine()}, "
        f"{os.cpu_count()} CPUs (load average at the end {load}), "
        f"{args.threads} torch threads, python {platform.python_version()}; "
        "peak_mb = peak resident memory of the case's own process (includes imports)\n"
    )
    lines = ["case\tseconds\tpeak_mb\tdetail"]
    lines += [f"{n}\t{s:.3f}\t{m:.0f}\t{d}" for n, s, m, d in rows]
    out.write_text(header + "\n".join(lines) + "\n")
    print(f"\nwritten to {out}")


if __name__ == "__main__":
    main()
