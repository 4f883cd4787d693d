"""Topaz (the peer picker) on EMPIAR-10017, scored exactly as cryopick's U-Net is.

Two Topaz rows, both on the same 3 folds as benchmarks/unet_quality.py (sorted micrograph
names, fold = index % 3; a fold's 4 micrographs are held out, the other 8 are its training
micrographs):

* pretrained: Topaz's bundled detector (``topaz extract -m resnet16_u64``, or --pretrained
  NAME) on all 12 micrographs; its score threshold is chosen per fold on that fold's 8 training
  micrographs (the threshold that maximises pooled F1 at 0.5 x diameter there), and the fold's
  4 held-out micrographs are scored with it.
* trained: ``topaz train`` per fold on the 8 training micrographs (their labels; resnet8, 32
  units, initialised from Topaz's pretrained resnet8_u32 as Topaz does by default, GE-binomial,
  ``-n`` = mean labelled particles per training micrograph), extracted on the 4 held-out ones,
  threshold chosen on the training micrographs' extractions, held-out scored. On this CPU the
  default schedule (10 epochs x 1000 updates of 256 crops) is far too slow, so the schedule is
  cut to a fixed CPU budget (--epochs x --epoch-size x --minibatch-size; the defaults 4 x 250
  updates of 128 crops = 1000 updates, ~2 updates/s, about 8-10 minutes per fold on one shared
  thread here, 5 % of the crops of Topaz's default schedule) and the last epoch's model is used.
  That makes the trained rows a lower bound on what Topaz reaches with its full schedule.

Steps (each cached under resources/topaz/, so a rerun only scores):
1. JPG -> float32 MRC (cryopick.io; Topaz cannot read JPG), full resolution.
2. ``topaz preprocess -s 4`` (GMM normalisation, 4x downsampling to 7.08 A/px). Why 4: the
   particles are 108 px (191 A) across; Topaz's models see a 71 px receptive field (resnet8,
   resnet16 the same on its pretrained detectors) and Topaz's guidance is a particle diameter
   after downsampling well below it (<= 70 px for resnet8). At 4x the particle is 27 px across
   (radius 13.5 px), inside that window with context, and the picks keep 4 px precision; 8x would
   leave 13.5 px (coarse for touching particles, nearest neighbours 55-95 px full size) and 2x
   (54 px) costs 4x the time and is at the edge of the window.
3. ``topaz extract -d -1 -r 13 -t -6`` (CPU; radius 13 px at 4x = 0.48 x diameter as
   non-maximum suppression, like cryopick's min_distance 0.5; Topaz's default threshold -6
   keeps every candidate with p >= 0.0025 so the threshold can be tuned afterwards).
4. Coordinates x4 back to full-resolution pixels of the JPG (x = column, y = row, origin top
   left), then scored with cryopick.metrics via benchmarks/unet_quality.score: Hungarian matching
   within 0.5 and 0.25 x 108 px, pooled P/R/F1, mean Dice of 108 px discs against the masks.
   A second row per model also tunes an edge margin on the training micrographs (the labels stop
   ~130 px from the edges; cryopick's U-Net tunes the same margin grid, 1.0-1.3 x diameter).

Environment. topaz-em 0.3.20 in its own venv (--topaz, default /work/topaz-venv/bin/topaz) with
torch 2.13.0+cpu. Topaz's CLI imports torchvision (transforms.functional.rotate / hflip / vflip
for training augmentation only); the PyPI torchvision wheel does not import with the CPU torch,
so a stand-in package is put first on PYTHONPATH (--stub, default /work/topaz-stub): hflip/vflip
are torch.flip, rotate reproduces torchvision's tensor path (same inverse affine matrix and
sampling grid, grid_sample nearest, zeros outside, same size; checked against PIL rotate with
NEAREST: identical or ~99% identical pixels, the rest ties at pixel borders). Extraction and
preprocessing do not use it. Each Topaz call gets -j THREADS and OMP/MKL_NUM_THREADS=THREADS.

    python benchmarks/topaz_quality.py                      # everything, cached steps skipped
    python benchmarks/topaz_quality.py --skip-training      # pretrained rows only
    python benchmarks/topaz_quality.py --fold 0             # train / extract only this fold

Tables: benchmarks/results/topaz_quality.{md,tsv} (+ _per_micrograph.tsv).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from unet_quality import DIAMETER_PX, PIXEL_SIZE, markdown, pooled_table, score  # noqa: E402

from cryopick.io import micrograph_name, read_coordinates, read_micrograph, write_mrc  # noqa: E402
from cryopick.metrics import match_count  # noqa: E402

DEFAULT_DATA = ROOT.parent / "shared" / "data" / "empiar10017"
CACHE = ROOT / "resources" / "topaz"
SCALE = 4  # topaz preprocess -s
RADIUS = 13  # extraction radius in downsampled pixels (0.48 x 108 / 4)
EDGE_MARGINS = (0.0, 1.0, 1.1, 1.2, 1.3)  # x diameter; 0 = none


class Topaz:
    def __init__(self, exe: str, stub: Path, threads: int, log: Path):
        self.exe, self.threads, self.log = exe, threads, log
        self.env = {**os.environ, "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)}
        if stub.exists():
            self.env["PYTHONPATH"] = f"{stub}:{self.env.get('PYTHONPATH', '')}"
        self.seconds: dict[str, float] = {}

    def __call__(self, step: str, *args: str) -> None:
        cmd = [self.exe, step, *args]
        start = time.monotonic()
        with open(self.log, "a") as log:
            log.write("$ " + " ".join(cmd) + "\n")
            log.flush()
            subprocess.run(cmd, check=True, env=self.env, stdout=log, stderr=subprocess.STDOUT)
        took = time.monotonic() - start
        self.seconds[step] = self.seconds.get(step, 0.0) + took
        print(
            f"  topaz {step} {' '.join(a for a in args if '/' not in a)[:60]}: {took:.0f} s",
            flush=True,
        )


def preprocess(topaz: Topaz, data: Path, names: list[str]) -> Path:
    raw, pre = CACHE / "mrc", CACHE / f"preprocessed_s{SCALE}"
    raw.mkdir(parents=True, exist_ok=True)
    pre.mkdir(parents=True, exist_ok=True)
    for name in names:
        if (pre / f"{name}.mrc").exists():
            continue
        jpg = next(p for p in (data / "micrographs").iterdir() if micrograph_name(p) == name)
        write_mrc(raw / f"{name}.mrc", read_micrograph(jpg).image, PIXEL_SIZE)
        topaz(
            "preprocess",
            "-s",
            str(SCALE),
            "-d",
            "-1",
            "-t",
            "0",
            "-j",
            str(topaz.threads),
            "-o",
            str(pre),
            str(raw / f"{name}.mrc"),
        )
        (raw / f"{name}.mrc").unlink()  # 64 MB each; only the downsampled image is needed
    return pre


def extract(topaz: Topaz, model: str, pre: Path, names: list[str], outdir: Path) -> dict:
    """Per micrograph (cached): Topaz picks in full-resolution pixels with their scores."""
    outdir.mkdir(parents=True, exist_ok=True)
    picks = {}
    for name in names:
        out = outdir / f"{name}.txt"
        if not out.exists():
            tmp = out.with_suffix(".part")
            topaz(
                "extract",
                "-m",
                model,
                "-r",
                str(RADIUS),
                "-t",
                "-6",
                "-d",
                "-1",
                "-j",
                str(topaz.threads),
                "-o",
                str(tmp),
                str(pre / f"{name}.mrc"),
            )
            tmp.rename(out)
        table = pd.read_csv(out, sep="\t")
        picks[name] = pd.DataFrame(
            {
                "x": table["x_coord"].to_numpy(float) * SCALE,
                "y": table["y_coord"].to_numpy(float) * SCALE,
                "score": table["score"].to_numpy(float),
            }
        )
    return picks


def select(picks: pd.DataFrame, threshold: float, margin: float, shape) -> pd.DataFrame:
    keep = picks["score"] >= threshold
    if margin > 0:
        edge = margin * DIAMETER_PX
        keep &= (
            (picks["x"] >= edge)
            & (picks["x"] <= shape[1] - 1 - edge)
            & (picks["y"] >= edge)
            & (picks["y"] <= shape[0] - 1 - edge)
        )
    return picks[keep]


THRESHOLDS = np.round(np.arange(-6.0, 8.01, 0.25), 2)  # Topaz log-likelihood scores
_MATCHES: dict = {}  # (id(picks), name, threshold, margin) -> (n_picks, true positives)


def _counts(
    picks: pd.DataFrame, truth: np.ndarray, key, threshold: float, margin: float, shape
) -> tuple[int, int]:
    key = (*key, threshold, margin)
    if key not in _MATCHES:
        sel = select(picks, threshold, margin, shape)
        _MATCHES[key] = (
            len(sel),
            match_count(sel[["x", "y"]].to_numpy(), truth, 0.5 * DIAMETER_PX),
        )
    return _MATCHES[key]


def tune(picks: dict, truth: dict, names: list[str], shape, margins, tag: str = "") -> dict:
    """Threshold (grid THRESHOLDS) and edge margin maximising pooled F1 at 0.5 x d over
    ``names``; per-micrograph match counts are memoised (a micrograph trains 2 of 3 folds)."""
    n_truth = sum(len(truth[n]) for n in names)
    best = {"f1": -1.0}
    for margin in margins:
        for threshold in THRESHOLDS:
            n = tp = 0
            for name in names:
                a, b = _counts(
                    picks[name], truth[name], (tag, name), float(threshold), margin, shape
                )
                n += a
                tp += b
            f1 = 2 * tp / (n + n_truth)
            if f1 > best["f1"]:
                best = {"f1": f1, "threshold": float(threshold), "edge_margin": margin}
    return best


def fold_rows(
    method: str,
    picks: dict,
    truth: dict,
    names: list[str],
    folds: int,
    data: Path,
    shape,
    margins,
    only_folds=None,
) -> tuple[list[dict], list[dict]]:
    rows, settings = [], []
    for fold in range(folds):
        if only_folds is not None and fold not in only_folds:
            continue
        held_out = [n for i, n in enumerate(names) if i % folds == fold]
        training = [n for n in names if n not in held_out]
        best = tune(
            picks,
            truth,
            training,
            shape,
            margins,
            tag=method.split(" + ")[0] + (f" fold {fold}" if "trained per fold" in method else ""),
        )
        settings.append({"method": method, "fold": fold, **best})
        for name in held_out:
            sel = select(picks[name], best["threshold"], best["edge_margin"], shape)
            rows.append({"method": method, "fold": fold, **score(name, sel, data)})
    return rows, settings


def write_targets(path: Path, names: list[str], data: Path) -> float:
    """Topaz training targets (downsampled frame) for ``names``; returns mean count."""
    frames = []
    for name in names:
        t = read_coordinates(data / "coordinates" / f"{name}.csv")
        frames.append(
            pd.DataFrame(
                {
                    "image_name": name,
                    "x_coord": np.round(t["x"].to_numpy() / SCALE).astype(int),
                    "y_coord": np.round(t["y"].to_numpy() / SCALE).astype(int),
                }
            )
        )
    table = pd.concat(frames)
    table.to_csv(path, sep="\t", index=False)
    return len(table) / len(names)


def train_fold(
    topaz: Topaz, pre: Path, training: list[str], fold: int, data: Path, args
) -> tuple[Path, dict]:
    """topaz train on the fold's training micrographs (cached); the last epoch's model."""
    folder = CACHE / f"train_s{SCALE}_e{args.epochs}x{args.epoch_size}" / f"fold{fold}"
    folder.mkdir(parents=True, exist_ok=True)
    images = folder / "images.txt"
    pd.DataFrame(
        {"image_name": training, "path": [str(pre / f"{n}.mrc") for n in training]}
    ).to_csv(images, sep="\t", index=False)
    n_expected = write_targets(folder / "targets.txt", training, data)
    last = folder / f"model_epoch{args.epochs}.sav"
    if not last.exists():
        start = time.monotonic()
        topaz(
            "train",
            "--train-images",
            str(images),
            "--train-targets",
            str(folder / "targets.txt"),
            "-n",
            f"{n_expected:.0f}",
            "-r",
            str(args.train_radius),
            "--num-epochs",
            str(args.epochs),
            "--epoch-size",
            str(args.epoch_size),
            "--minibatch-size",
            str(args.minibatch_size),
            "-d",
            "-1",
            "--num-workers",
            "0",
            "-j",
            str(topaz.threads),
            "--save-prefix",
            str(folder / "model"),
            "-o",
            str(folder / "training.tsv"),
        )
        (folder / "train_seconds.txt").write_text(f"{time.monotonic() - start:.1f}\n")
    seconds = folder / "train_seconds.txt"
    info = {
        "fold": fold,
        "epoch": args.epochs,
        "n_expected": round(n_expected),
        "train_minutes": float(seconds.read_text()) / 60 if seconds.exists() else None,
    }
    return last, info


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--topaz", default="/work/topaz-venv/bin/topaz")
    parser.add_argument(
        "--stub",
        type=Path,
        default=ROOT.parent / "topaz-stub",
        help="folder holding the torchvision stand-in package",
    )
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--folds", type=int, default=3)
    parser.add_argument(
        "--fold",
        type=int,
        action="append",
        help="train/extract only these folds (repeatable); default all",
    )
    parser.add_argument("--pretrained", default="resnet16_u64")
    parser.add_argument("--skip-training", action="store_true")
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument(
        "--epoch-size",
        type=int,
        default=250,
        help="parameter updates per epoch (Topaz default 1000)",
    )
    parser.add_argument(
        "--minibatch-size", type=int, default=128, help="crops per update (Topaz default 256)"
    )
    parser.add_argument(
        "--train-radius",
        type=int,
        default=3,
        help="topaz train -r: positive radius around labels (Topaz default 3)",
    )
    args = parser.parse_args(argv)

    CACHE.mkdir(parents=True, exist_ok=True)
    topaz = Topaz(args.topaz, args.stub, args.threads, CACHE / "topaz.log")
    names = sorted(micrograph_name(p) for p in (args.data / "micrographs").iterdir())
    shape = read_micrograph(next((args.data / "micrographs").iterdir())).image.shape
    truth = {
        n: read_coordinates(args.data / "coordinates" / f"{n}.csv")[["x", "y"]].to_numpy(float)
        for n in names
    }
    folds = args.fold if args.fold else list(range(args.folds))

    print("preprocess", flush=True)
    pre = preprocess(topaz, args.data, names)
    print(f"extract, pretrained {args.pretrained}", flush=True)
    start = time.monotonic()
    pretrained = extract(
        topaz, args.pretrained, pre, names, CACHE / f"extract_s{SCALE}_r{RADIUS}_{args.pretrained}"
    )
    pretrained_seconds = time.monotonic() - start
    rows, settings = [], []
    label = f"Topaz pretrained {args.pretrained}"
    for margins, suffix in (((0.0,), ""), (EDGE_MARGINS, " + edge margin")):
        r, s = fold_rows(
            label + suffix, pretrained, truth, names, args.folds, args.data, shape, margins
        )
        rows += r
        settings += s

    trained_info = []
    if not args.skip_training:
        trained = {}
        for fold in folds:
            held_out = [n for i, n in enumerate(names) if i % args.folds == fold]
            training = [n for n in names if n not in held_out]
            print(f"[fold {fold}] topaz train on {len(training)} micrographs", flush=True)
            model, info = train_fold(topaz, pre, training, fold, args.data, args)
            trained_info.append(info)
            # the training micrographs' picks (threshold tuning) and the held-out ones
            fold_picks = extract(
                topaz, str(model), pre, names, model.parent / f"extract_r{RADIUS}_{model.stem}"
            )
            for margins, suffix in (((0.0,), ""), (EDGE_MARGINS, " + edge margin")):
                r, s = fold_rows(
                    f"Topaz trained per fold{suffix}",
                    fold_picks,
                    truth,
                    names,
                    args.folds,
                    args.data,
                    shape,
                    margins,
                    only_folds=[fold],
                )
                rows += r
                settings += s
            trained[fold] = model

    per_micrograph = pd.DataFrame(rows)
    table = pooled_table(per_micrograph)
    results = ROOT / "benchmarks" / "results"
    results.mkdir(parents=True, exist_ok=True)
    per_micrograph.to_csv(
        results / "topaz_quality_per_micrograph.tsv", sep="\t", index=False, float_format="%.4f"
    )
    table.to_csv(results / "topaz_quality.tsv", sep="\t", index=False, float_format="%.4f")
    trained_text = ""
    if trained_info:
        trained_text = (
            f"Training per fold (`topaz train -m resnet8 --units 32 -r {args.train_radius} "
            f"--num-epochs {args.epochs} --epoch-size {args.epoch_size} --minibatch-size "
            f"{args.minibatch_size} -d -1 --num-workers 0 -j {args.threads}`, pretrained "
            f"init on, GE-binomial, -n = mean labels per training micrograph; the last "
            "epoch's model): "
            + "; ".join(
                f"fold {i['fold']}: -n {i['n_expected']}, "
                + (f"{i['train_minutes']:.1f} min" if i["train_minutes"] else "cached")
                for i in trained_info
            )
            + (
                f". Trained folds: {folds} of {args.folds} (pooled row covers only these)."
                if len(folds) < args.folds
                else "."
            )
        )
    text = [
        f"# Topaz on {args.data.name}, scored like cryopick's U-Net "
        f"({args.folds} folds, fold = sorted index % {args.folds})",
        "",
        f"topaz-em 0.3.20, CPU, {args.threads} thread(s); `topaz preprocess -s {SCALE}`; "
        f"`topaz extract -r {RADIUS} -t -6 -d -1`; picks x{SCALE} to full-resolution pixels. "
        "Each fold's score threshold (and, in the '+ edge margin' rows, the edge margin from "
        f"{list(EDGE_MARGINS)} x diameter) maximises pooled F1 at 0.5 x d on the fold's 8 "
        "training micrographs; only its 4 held-out micrographs are scored. Pooled over folds; "
        "P/R/F1 at 0.5 x d and at 0.25 x d (_r025), Dice of 108 px discs.",
        "",
        f"Pretrained extraction: {pretrained_seconds / 60:.1f} min this run (0 = cached).",
        "",
        trained_text,
        "",
        "Settings chosen per fold: "
        + "; ".join(
            f"{s['method']} fold {s['fold']}: threshold {s['threshold']:.2f}, edge margin "
            f"{s['edge_margin']}, training F1 {s['f1']:.3f}"
            for s in settings
        ),
        "",
        markdown(table),
        "",
        "Comparable rows: benchmarks/results/unet_quality_full27.md (cryopick U-Net, same folds) "
        "and benchmarks/results/baseline_empiar10017.md (RELION LoG).",
        "",
    ]
    (results / "topaz_quality.md").write_text("\n".join(text))
    print("\n".join(text))
    (CACHE / "settings.json").write_text(json.dumps(settings, indent=1))


if __name__ == "__main__":
    main()
