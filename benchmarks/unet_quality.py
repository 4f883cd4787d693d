"""Cross-validated picking quality of the U-Net on a labelled real data set (EMPIAR-10017).

Micrographs are split into folds (interleaved by sorted name); for each fold a model is trained
on the other micrographs only (one of them held out of training for validation: epoch
selection and the peak threshold), then the fold's micrographs are predicted and scored. No
score comes from a micrograph the model or its picking settings saw. Beside it, on the same
held-out micrographs: the blob baseline (the workflow's default settings) and, when given,
models trained elsewhere (e.g. on synthetic data only; they never saw any of these micrographs,
so they are scored on all of them).

    python benchmarks/unet_quality.py --minutes 20              # 3 folds, writes the tables
    python benchmarks/unet_quality.py --fold 0 --minutes 8      # one fold, a quick check
    python benchmarks/unet_quality.py --extra-model synthetic=models/unet_synthetic.pt
    python benchmarks/unet_quality.py --tag full27 --no-train ...   # cached folds only

Tables go to benchmarks/results/unet_quality[_TAG].{tsv,md}; checkpoints and denoised canvases
to resources/cache/ (gitignored).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from cryopick.checkpoint import load_model, save_checkpoint  # noqa: E402
from cryopick.denoise import (  # noqa: E402
    DenoiseSettings,
    denoise_image,
    frame_for,
    load_denoised,
    save_denoised,
)
from cryopick.inference import model_scale, picks_from_prediction, predict  # noqa: E402
from cryopick.io import micrograph_name, read_coordinates, read_micrograph  # noqa: E402
from cryopick.metrics import score_micrograph, summarise  # noqa: E402
from cryopick.network_input import input_canvas, input_lowpass  # noqa: E402
from cryopick.picking import BlobSettings, pick_blobs  # noqa: E402
from cryopick.probability_maps import load_prediction, save_prediction  # noqa: E402
from cryopick.training import LabelledMicrograph, TrainingConfig, train, write_history  # noqa: E402

DEFAULT_DATA = ROOT.parent / "shared" / "data" / "empiar10017"
PIXEL_SIZE = 1.77  # A/px of the EMPIAR-10017 JPGs
DIAMETER_PX = 108.0  # labelled diameter in file pixels
# the workflow's blob-baseline defaults (config/schema.yaml on main)
BLOB = BlobSettings(sigma_factor=0.10, threshold=1.5, min_distance=0.6, edge_margin=1.2)


def denoise_all(data: Path, cache: Path, size: int) -> dict[str, Path]:
    """Denoise every micrograph once with the workflow's default chain (cached)."""
    cache.mkdir(parents=True, exist_ok=True)
    out = {}
    settings = DenoiseSettings(size=size)
    for path in sorted((data / "micrographs").iterdir()):
        name = micrograph_name(path)
        target = cache / f"{name}.npz"
        if not target.exists():
            micrograph = read_micrograph(path)
            frame = frame_for(micrograph.image.shape, size)
            save_denoised(
                target,
                denoise_image(micrograph.image, settings, frame),
                frame,
                PIXEL_SIZE * frame.scale,
            )
        out[name] = target
    return out


def micrograph_file(data: Path, name: str) -> Path:
    return next(p for p in (data / "micrographs").iterdir() if micrograph_name(p) == name)


def item(data: Path, name: str, denoised: Path, prefix: str = "") -> LabelledMicrograph:
    return LabelledMicrograph(
        f"{prefix}{name}",
        str(denoised),
        str(data / "coordinates" / f"{name}.csv"),
        DIAMETER_PX,
        micrograph=str(micrograph_file(data, name)),
    )


def synthetic_items(spec: Path, diameter_angstrom: float) -> list[LabelledMicrograph]:
    """RESULTS:DATASET:SET -> training items of a synthetic set the workflow generated."""
    from cryopick.training import labelled_micrograph

    results, dataset, synthetic_set = str(spec).split(":")
    folder = Path(results) / "synthetic" / synthetic_set
    items = []
    for mrc in sorted((folder / "micrographs").glob("*.mrc")):
        name = mrc.stem
        items.append(
            labelled_micrograph(
                f"{dataset}/{name}",
                str(Path(results) / dataset / "denoise" / f"{name}.npz"),
                str(folder / "coordinates" / f"{name}.csv"),
                diameter_angstrom,
                micrograph_path=str(mrc),
            )
        )
    if not items:
        raise SystemExit(f"no synthetic micrographs in {folder}")
    return items


def score(name: str, picks: pd.DataFrame, data: Path) -> dict:
    from PIL import Image

    truth = read_coordinates(data / "coordinates" / f"{name}.csv")
    mask = np.asarray(Image.open(data / "masks" / f"{name}.png")) > 0
    return score_micrograph(name, picks, truth, DIAMETER_PX, mask.shape, mask).row()


def evaluate_model(
    checkpoint_path: Path,
    names: list[str],
    canvases: dict[str, Path],
    data: Path,
    method: str,
    fold,
    workdir: Path,
    threshold=None,
    symmetries: int | None = None,
) -> list[dict]:
    """Predict ``names`` with one model as the workflow does (its input canvas, batched, its
    test-time augmentation), round-trip the maps through the 8-bit .npz the workflow writes,
    pick with the model's tuned settings, score."""
    model, checkpoint = load_model(checkpoint_path)
    picking = dict(checkpoint["picking"])
    if threshold is not None:
        picking["threshold"] = threshold
    if symmetries is not None:
        picking["symmetries"] = symmetries
    kind = checkpoint.get("input", "denoised")
    inputs = [
        input_canvas(
            kind,
            canvases[n],
            micrograph_file(data, n),
            False,
            DIAMETER_PX,
            input_lowpass(checkpoint),
        )
        for n in names
    ]
    scale = model_scale(checkpoint, inputs[0][1], DIAMETER_PX)
    maps = predict(
        model,
        [c for c, _ in inputs],
        [f.content_mask for _, f in inputs],
        batch_size=4,
        scale=scale,
        symmetries=int(picking.get("symmetries", 1)),
    )
    rows = []
    for name, (_, frame), pred in zip(names, inputs, maps):
        path = workdir / f"{name}.npz"
        save_prediction(path, pred, frame)
        pred, frame, _ = load_prediction(path)
        picks = picks_from_prediction(
            pred,
            frame,
            DIAMETER_PX / frame.scale,
            picking["threshold"],
            picking["min_distance"],
            picking["edge_margin"],
        )
        rows.append({"method": method, "fold": fold, **score(name, picks, data)})
    return rows


def calibrated_rows(
    method: str, workdir: Path, names: list[str], folds: int, data: Path, canvases: dict[str, Path]
) -> list[dict]:
    """A model trained elsewhere, its peak threshold re-tuned per fold on that fold's training
    micrographs (real labels), scored on the fold's held-out ones: what a user gets who labels
    a few micrographs to calibrate one number, without retraining."""
    from cryopick.training import TrainingConfig, load_example, tune_picking

    config = TrainingConfig(input="denoised")  # the maps exist; only labels and frames matter
    examples = {
        n: load_example(item(data, n, canvases[n]), config, DIAMETER_PX / 4, ("mask", "centre"))
        for n in names
    }
    maps = {n: load_prediction(workdir / f"{n}.npz")[0] for n in names}
    rows = []
    for fold in range(folds):
        held_out = [n for i, n in enumerate(names) if i % folds == fold]
        training = [n for n in names if n not in held_out]
        best = tune_picking(
            [maps[n] for n in training],
            [examples[n] for n in training],
            config.thresholds + (0.02, 0.05),
            config.min_distances,
            config.edge_margins,
        )["best"]
        for name in held_out:
            ex = examples[name]
            picks = picks_from_prediction(
                maps[name],
                ex.frame,
                DIAMETER_PX / ex.frame.scale,
                best["threshold"],
                best["min_distance"],
                best["edge_margin"],
            )
            rows.append(
                {
                    "method": f"{method}, threshold tuned on training folds",
                    "fold": fold,
                    **score(name, picks, data),
                }
            )
    return rows


def evaluate_blob(names: list[str], canvases: dict[str, Path], data: Path, fold) -> list[dict]:
    rows = []
    for name in names:
        den = load_denoised(canvases[name])
        picks = pick_blobs(den, DIAMETER_PX / den.frame.scale, BLOB)
        rows.append({"method": "blob baseline", "fold": fold, **score(name, picks, data)})
    return rows


def pooled_table(rows: pd.DataFrame) -> pd.DataFrame:
    out = []
    for (method, fold), group in rows.groupby(["method", "fold"], sort=False):
        out.append({"method": method, "fold": fold, **summarise(group)})
    for method, group in rows.groupby("method", sort=False):
        out.append({"method": method, "fold": "pooled", **summarise(group)})
    return pd.DataFrame(out)


def markdown(table: pd.DataFrame) -> str:
    cols = [
        "method",
        "fold",
        "n_micrographs",
        "n_picks",
        "n_truth",
        "precision",
        "recall",
        "f1",
        "precision_r025",
        "recall_r025",
        "f1_r025",
        "dice",
    ]
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for _, row in table[cols].iterrows():
        lines.append(
            "| " + " | ".join(f"{v:.3f}" if isinstance(v, float) else str(v) for v in row) + " |"
        )
    return "\n".join(lines)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--size", type=int, default=1024, help="denoise canvas size")
    parser.add_argument("--folds", type=int, default=3)
    parser.add_argument(
        "--fold", type=int, action="append", help="run only these folds (repeatable); default all"
    )
    parser.add_argument("--minutes", type=float, default=20.0, help="training time per fold")
    parser.add_argument(
        "--config", default="{}", help="JSON of TrainingConfig overrides, e.g. '{\"crop\": 128}'"
    )
    parser.add_argument("--tag", default="", help="name of this run (tables, cache)")
    parser.add_argument(
        "--retrain", action="store_true", help="train even when the fold's checkpoint exists"
    )
    parser.add_argument(
        "--no-train",
        action="store_true",
        help="only evaluate cached fold checkpoints; stop with an error "
        "instead of training when one is missing or has another config",
    )
    parser.add_argument(
        "--synthetic",
        type=Path,
        default=None,
        help="a workflow results folder of a synthetic data set (with "
        "denoise/ beside synthetic/NAME/): its micrographs join every fold's "
        "training set, e.g. results:synthetic_empiar10017_like:empiar10017_like",
    )
    parser.add_argument(
        "--synthetic-diameter",
        type=float,
        default=190.0,
        help="particle diameter of the synthetic set in A",
    )
    parser.add_argument(
        "--extra-model",
        action="append",
        default=[],
        help="NAME=PATH of a model trained without these micrographs",
    )
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args(argv)

    torch.set_num_threads(args.threads)
    tag = f"_{args.tag}" if args.tag else ""
    cache = ROOT / "resources" / "cache"
    canvases = denoise_all(args.data, cache / f"empiar10017_{args.size}", args.size)
    names = sorted(canvases)
    overrides = json.loads(args.config)
    overrides.setdefault("max_minutes", args.minutes)
    overrides.setdefault("threads", args.threads)
    config = TrainingConfig.from_config(overrides)
    runs = cache / f"unet_cv{tag}"
    runs.mkdir(parents=True, exist_ok=True)
    results = ROOT / "benchmarks" / "results"
    results.mkdir(parents=True, exist_ok=True)

    synthetic = synthetic_items(args.synthetic, args.synthetic_diameter) if args.synthetic else []
    folds = args.fold if args.fold else list(range(args.folds))
    rows: list[dict] = []
    timing = []
    for fold in folds:
        held_out = [n for i, n in enumerate(names) if i % args.folds == fold]
        training = [n for n in names if n not in held_out]
        checkpoint_path = runs / f"fold{fold}.pt"
        # settings added since a checkpoint was written take their defaults
        stale = (
            checkpoint_path.exists()
            and TrainingConfig.from_config(load_model(checkpoint_path)[1]["config"]) != config
        )
        if stale:
            print(f"[fold {fold}] cached checkpoint has another config: retraining", flush=True)
        if args.no_train and (args.retrain or stale or not checkpoint_path.exists()):
            raise SystemExit(
                f"[fold {fold}] --no-train: no usable cached checkpoint {checkpoint_path}"
            )
        if args.retrain or stale or not checkpoint_path.exists():
            with open(runs / f"fold{fold}.log", "w") as log_file:

                def log(message, _f=log_file):
                    print(f"[fold {fold}] {message}", flush=True)
                    _f.write(message + "\n")
                    _f.flush()

                log(f"held out: {held_out}")
                # with synthetic data the real items are named "empiar10017/..." so that
                # validation_datasets can keep validation on real micrographs
                prefix = "empiar10017/" if synthetic else ""
                result = train(
                    [item(args.data, n, canvases[n], prefix) for n in training] + synthetic,
                    config,
                    log,
                )
            save_checkpoint(checkpoint_path, result.checkpoint)
            write_history(
                result.history, runs / f"fold{fold}_history.tsv", runs / f"fold{fold}_loss.png"
            )
        _, checkpoint = load_model(checkpoint_path)
        timing.append(
            {
                "fold": fold,
                **{k: checkpoint["metrics"][k] for k in ("minutes", "steps", "stopped_by")},
                "picking": json.dumps(checkpoint["picking"]),
            }
        )
        start = time.monotonic()
        rows += evaluate_model(
            checkpoint_path, held_out, canvases, args.data, "unet", fold, runs / f"fold{fold}_maps"
        )
        print(
            f"[fold {fold}] predicted {len(held_out)} micrographs in "
            f"{time.monotonic() - start:.1f} s",
            flush=True,
        )
        rows += evaluate_blob(held_out, canvases, args.data, fold)
    for spec in args.extra_model:
        method, path = spec.split("=", 1)
        rows += evaluate_model(
            Path(path), names, canvases, args.data, method, "all", runs / f"{method}_maps"
        )
        rows += calibrated_rows(
            method, runs / f"{method}_maps", names, args.folds, args.data, canvases
        )

    per_micrograph = pd.DataFrame(rows)
    table = pooled_table(per_micrograph)
    per_micrograph.to_csv(
        results / f"unet_quality{tag}_per_micrograph.tsv",
        sep="\t",
        index=False,
        float_format="%.4f",
    )
    table.to_csv(results / f"unet_quality{tag}.tsv", sep="\t", index=False, float_format="%.4f")
    text = [
        f"# U-Net picking quality, {args.folds}-fold cross-validation on {args.data.name}",
        "",
        f"U-Net input: {config.input} canvas at {args.size} px",
        "",
        f"Training config: `{json.dumps(config.to_dict())}`",
        "",
        "Training per fold: "
        + "; ".join(
            f"fold {t['fold']}: {t['minutes']:.1f} min, {t['steps']} steps "
            f"(stopped by {t['stopped_by']}), picking {t['picking']}"
            for t in timing
        ),
        "",
        markdown(table),
        "",
    ]
    (results / f"unet_quality{tag}.md").write_text("\n".join(text))
    print("\n".join(text))


if __name__ == "__main__":
    main()
