"""Training the attention U-Net on denoised canvases with particle labels.

Targets are drawn on the network canvas from the labelled centres: a disc of the labelled
diameter for the ``mask`` head (or a given binary mask) and a Gaussian heat-map (sigma =
``centre_sigma`` x diameter, maximum over particles so that touching particles keep separate
peaks) for the ``centre`` head. Micrographs whose canvas diameter differs from the model's
``diameter_px`` are resampled so that every training image shows particles at one size; inference
does the same (see :mod:`cryopick.inference`).

The checkpoint format and model loading live in :mod:`cryopick.checkpoint`, the preparation
of the network input (shared with inference) in :mod:`cryopick.network_input`.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import time
from dataclasses import asdict, dataclass, field, replace

import cv2
import numpy as np
import torch
import torch.nn.functional as F

from cryopick.checkpoint import (
    ModelError,
    load_model,
    new_checkpoint,
    read_checkpoint,
    save_checkpoint,
)
from cryopick.denoise import Frame, load_frame
from cryopick.device import mixed_precision_choice, resolve_device
from cryopick.inference import picks_from_prediction, predict
from cryopick.io import InputError, atomic_path, file_sha256, read_coordinates, read_micrograph
from cryopick.metrics import match_count, precision_recall_f1
from cryopick.network_input import (
    INPUT_KINDS,
    NEW_MODEL_LOWPASS,
    input_canvas,
    input_lowpass,
    network_image,
    rescale_factor,
    resize_canvas,
)
from cryopick.settings import config_values
from cryopick.unet import Architecture, AttentionUNet, count_parameters

# ----------------------------------------------------------------------------------------------
# settings
# ----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class TrainingConfig:
    """Every training setting; stored in the checkpoint. Lengths in particle diameters unless
    the name says px (network canvas pixels)."""

    input: str = "binned"  # network input: "binned" micrograph, the "denoised" canvas, or the
    # micrograph "normalised" at the particle's scale (normalised_canvas)
    # the "normalised" input's low-pass (diameters); None: the initial model's when
    # fine-tuning, else NEW_MODEL_LOWPASS (resolved by with_input_lowpass)
    input_lowpass: float | None = None
    # few-shot fine-tuning: start from this checkpoint's weights (its architecture, input kind
    # and particle size must match) instead of a random initialisation; None trains from scratch
    initial_model: str | None = None
    base_width: int = 16
    depth: int = 4
    heads: tuple[str, ...] = ("mask", "centre")
    diameter_px: float | None = 27.0  # particle diameter on the model canvas; None: median
    centre_sigma: float = 0.125  # Gaussian sigma of the centre heat-map
    ignore_border: float = 1.0  # no loss this close to the content edge (unlabelled borders)
    crop: int = 128
    batch_size: int = 16
    steps: int = 2000  # optimiser steps; the cosine schedule ends at steps or max_minutes
    steps_per_epoch: int = 100  # validation and checkpointing every this many steps
    max_minutes: float = 120.0
    learning_rate: float = 2e-3
    weight_decay: float = 1e-5
    centre_weight: float = 1.0  # centre-map loss relative to the mask loss
    flips: bool = True  # flips and 90-degree rotations (the 8 symmetries of the square)
    contrast_jitter: float = 0.2  # gain in [1-c, 1+c] and offset in [-c, c] (image std units)
    noise_jitter: float = 0.2  # added white noise with std up to this (image std units)
    blur_jitter: float = 0.0  # Gaussian blur with a random sigma up to this (diameters);
    # for filtered real data, synthetic `rendering: filtered_8bit` transfers far better
    validation_fraction: float = 0.15  # of the micrographs, at least one when there are two
    # draw validation micrographs only from these data sets (item names "dataset/micrograph"),
    # e.g. the real one when synthetic data join the training; empty: from all
    validation_datasets: tuple[str, ...] = ()
    # relative chance of drawing a crop from each micrograph of a data set (default 1), e.g. to
    # keep a few real micrographs from being drowned by a large synthetic corpus
    dataset_weights: dict[str, float] = field(default_factory=dict)
    seed: int = 0
    device: str = "auto"  # auto | cpu | cuda
    # bfloat16 autocast for training steps: "auto" uses it where the device computes bfloat16
    # natively (CUDA with bf16, CPUs with AVX512-BF16 or AMX; 3x faster there, about 20x
    # slower on CPUs without); validation and inference stay float32
    mixed_precision: bool | str = "auto"
    threads: int = 2  # CPU threads for torch
    # picking settings tuned on the validation micrographs (grid; best pooled F1 at 0.5 x d)
    thresholds: tuple[float, ...] = (0.1, 0.15, 0.2, 0.25, 0.3, 0.35, 0.4, 0.45, 0.5, 0.6)
    min_distances: tuple[float, ...] = (0.3, 0.4, 0.5)
    edge_margins: tuple[float, ...] = (1.0, 1.1, 1.2, 1.3)
    symmetries: int = 4  # test-time augmentation the final tuning (and inference) uses

    def __post_init__(self) -> None:
        object.__setattr__(self, "heads", tuple(self.heads))
        object.__setattr__(self, "validation_datasets", tuple(self.validation_datasets))
        for name in ("thresholds", "min_distances", "edge_margins"):
            values = tuple(float(v) for v in getattr(self, name))
            if not values:
                raise InputError(f"unet training setting {name} needs at least one value")
            object.__setattr__(self, name, values)
        if self.input not in INPUT_KINDS:
            raise InputError(
                f"unet training input must be one of {INPUT_KINDS}, got {self.input!r}"
            )
        if self.mixed_precision not in (True, False, "auto"):
            raise InputError(
                f"unet training mixed_precision must be true, false or auto, "
                f"got {self.mixed_precision!r}"
            )
        for name, weight in self.dataset_weights.items():
            if not float(weight) >= 0:
                raise InputError(f"unet training dataset_weights.{name} must be >= 0, got {weight}")
        if self.device not in ("auto", "cpu", "cuda"):
            raise InputError(f"unet training device must be auto, cpu or cuda, got {self.device!r}")
        if self.crop % 2**self.depth:
            raise InputError(
                f"unet training crop {self.crop} must be a multiple of 2**depth = {2**self.depth}"
            )

    @property
    def architecture(self) -> Architecture:
        return Architecture(1, self.base_width, self.depth, self.heads)

    @classmethod
    def from_config(cls, config: dict) -> "TrainingConfig":
        return cls(**config_values(cls, config, "unet training"))

    def to_dict(self) -> dict:
        out = asdict(self)
        out["heads"] = list(self.heads)
        out["validation_datasets"] = list(self.validation_datasets)
        out["dataset_weights"] = dict(self.dataset_weights)
        for name in ("thresholds", "min_distances", "edge_margins"):
            out[name] = list(getattr(self, name))
        return out


def seed_everything(seed: int) -> None:
    np.random.seed(seed)
    torch.manual_seed(seed)


# ----------------------------------------------------------------------------------------------
# data
# ----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class LabelledMicrograph:
    """One training micrograph: its denoised canvas (.npz, which also fixes the frame), the
    micrograph file (the input of "binned" models), labels and labelled diameter."""

    name: str
    denoised: str  # path of the .npz written by the denoise stage
    labels: str  # CryoPPP .csv, RELION .star or EMAN .box
    diameter: float  # labelled particle diameter in pixels of the micrograph file
    mask: str | None = None  # optional binary mask image in the file frame (mask head target)
    micrograph: str | None = None  # the micrograph file itself
    invert: bool = False  # bright particles: invert so the network always sees dark ones


def data_identity(items: list[LabelledMicrograph]) -> dict:
    """sha256 over every training file and labelled diameter, order-independent: the same data
    always gives the same identity, any changed image or label a different one."""
    entries = []
    for item in sorted(items, key=lambda i: i.name):
        entry = {
            "name": item.name,
            "denoised": file_sha256(item.denoised),
            "labels": file_sha256(item.labels),
            "diameter": float(item.diameter),
        }
        if item.mask:
            entry["mask"] = file_sha256(item.mask)
        if item.micrograph:
            entry["micrograph"] = file_sha256(item.micrograph)
            entry["invert"] = bool(item.invert)
        entries.append(entry)
    blob = json.dumps(entries, sort_keys=True).encode()
    return {
        "sha256": hashlib.sha256(blob).hexdigest(),
        "n_micrographs": len(entries),
        "micrographs": [e["name"] for e in entries],
    }


def draw_targets(
    shape: tuple[int, int], x: np.ndarray, y: np.ndarray, diameter_px: float, centre_sigma_px: float
) -> tuple[np.ndarray, np.ndarray]:
    """Disc mask (float 0/1) and Gaussian centre heat-map (max over particles) on a canvas."""
    height, width = shape
    mask = np.zeros(shape, dtype=np.float32)
    centre = np.zeros(shape, dtype=np.float32)
    radius = diameter_px / 2.0
    reach = int(math.ceil(max(radius, 3.0 * centre_sigma_px))) + 1
    for cx, cy in zip(np.asarray(x, float), np.asarray(y, float)):
        x0, x1 = max(int(cx) - reach, 0), min(int(cx) + reach + 1, width)
        y0, y1 = max(int(cy) - reach, 0), min(int(cy) + reach + 1, height)
        if x0 >= x1 or y0 >= y1:
            continue
        yy, xx = np.mgrid[y0:y1, x0:x1]
        d2 = (xx - cx) ** 2 + (yy - cy) ** 2
        np.maximum(mask[y0:y1, x0:x1], (d2 <= radius**2).astype(np.float32), out=mask[y0:y1, x0:x1])
        np.maximum(
            centre[y0:y1, x0:x1],
            np.exp(-d2 / (2.0 * centre_sigma_px**2)).astype(np.float32),
            out=centre[y0:y1, x0:x1],
        )
    return mask, centre


def border_valid(content: np.ndarray, margin_px: float) -> np.ndarray:
    """Content pixels at least ``margin_px`` from the content's edge (where labels exist)."""
    if margin_px <= 0:
        return content.copy()
    padded = np.pad(content.astype(np.uint8), 1)
    distance = cv2.distanceTransform(padded, cv2.DIST_L2, 5)[1:-1, 1:-1]
    return content & (distance >= margin_px)


@dataclass
class Example:
    """A micrograph ready for training: normalised image, targets and loss weights, all at the
    model's particle size, plus what validation needs to score picks in the file frame."""

    name: str
    image: np.ndarray  # float32 (H, W)
    targets: np.ndarray  # float32 (n_heads, H, W)
    valid: np.ndarray  # float32 (H, W): 1 where the loss counts
    frame: Frame
    factor: float  # model canvas / denoised canvas
    truth: np.ndarray  # (n, 2) label centres in the file frame
    diameter: float  # labelled diameter in file pixels
    raw: np.ndarray = field(repr=False, default=None)  # the input canvas (before resampling)


def canvas_diameter(item: LabelledMicrograph) -> float:
    """The labelled diameter in the denoised canvas's pixels (reads only the frame)."""
    return item.diameter / load_frame(item.denoised)[0].scale


def load_example(
    item: LabelledMicrograph,
    config: TrainingConfig,
    model_diameter_px: float,
    heads: tuple[str, ...],
) -> Example:
    canvas, frame = input_canvas(
        config.input,
        item.denoised,
        item.micrograph,
        item.invert,
        item.diameter,
        config.input_lowpass,
    )
    diameter_px = item.diameter / frame.scale
    labels = read_coordinates(item.labels)
    truth = labels[["x", "y"]].to_numpy(float)
    factor = rescale_factor(diameter_px, model_diameter_px)
    content = frame.content_mask
    image = network_image(canvas, content, factor)
    content = resize_canvas(content.astype(np.uint8), factor, cv2.INTER_NEAREST).astype(bool)
    xn, yn = frame.to_network(truth[:, 0], truth[:, 1])
    xs, ys = (xn + 0.5) * factor - 0.5, (yn + 0.5) * factor - 0.5
    d_model = diameter_px * factor
    mask, centre = draw_targets(image.shape, xs, ys, d_model, config.centre_sigma * d_model)
    if item.mask:
        file_mask = read_micrograph(item.mask).image > 0
        binned = cv2.resize(
            file_mask.astype(np.float32),
            (frame.content_width, frame.content_height),
            interpolation=cv2.INTER_AREA,
        )
        mask_canvas = np.zeros((frame.size, frame.size), np.float32)
        mask_canvas[: frame.content_height, : frame.content_width] = binned > 0.5
        mask = resize_canvas(mask_canvas, factor, cv2.INTER_NEAREST)
    by_head = {"mask": mask, "centre": centre}
    targets = np.stack([by_head[h] for h in heads]).astype(np.float32)
    valid = border_valid(content, config.ignore_border * d_model).astype(np.float32)
    return Example(
        item.name,
        image.astype(np.float32),
        targets,
        valid,
        frame,
        factor,
        truth,
        item.diameter,
        canvas,
    )


def split_validation(
    items: list[LabelledMicrograph], fraction: float, seed: int, datasets: tuple[str, ...] = ()
) -> tuple[list[LabelledMicrograph], list[LabelledMicrograph]]:
    """Hold out whole micrographs (seeded), at least one when there are two or more and the
    fraction is positive, so validation never sees a training micrograph. With ``datasets``
    only micrographs of those data sets (name prefix before "/") are candidates, and the
    fraction is of them."""
    items = sorted(items, key=lambda i: i.name)
    candidates = [
        i for i, it in enumerate(items) if not datasets or it.name.split("/", 1)[0] in datasets
    ]
    if datasets and not candidates:
        raise InputError(f"validation_datasets {list(datasets)} match no training micrograph")
    if fraction <= 0 or len(candidates) < 2:
        return items, []
    n_val = min(len(candidates) - 1, max(1, round(fraction * len(candidates))))
    order = np.random.default_rng(seed).permutation(len(candidates))
    val_ids = {candidates[k] for k in order[:n_val].tolist()}
    train = [it for i, it in enumerate(items) if i not in val_ids]
    val = [it for i, it in enumerate(items) if i in val_ids]
    return train, val


def sampling_probabilities(
    items: list[LabelledMicrograph], weights: dict[str, float]
) -> np.ndarray | None:
    """Per-micrograph crop chances from ``dataset_weights`` (data set = the item name's prefix
    before "/"; unnamed data sets weigh 1); None when no weight is set, so that unweighted
    training draws exactly as before. Unknown data set names are an error, not a no-op."""
    if not weights:
        return None
    names = [it.name.split("/", 1)[0] for it in items]
    unknown = sorted(set(weights) - set(names))
    if unknown:
        raise InputError(
            f"unet training dataset_weights name {unknown} that are not among the training "
            f"data sets {sorted(set(names))}"
        )
    p = np.array([float(weights.get(n, 1.0)) for n in names])
    if p.sum() <= 0:
        raise InputError("unet training dataset_weights leave every micrograph at weight 0")
    return p / p.sum()


def sample_batch(
    examples: list[Example],
    config: TrainingConfig,
    rng: np.random.Generator,
    diameter_px: float = 27.0,
    sampling: np.ndarray | None = None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Random crops (micrographs drawn evenly, or with the chances ``sampling``) with the 8
    square symmetries, blur, gain/offset and noise jitter."""
    crop = config.crop
    images, targets, valids = [], [], []
    for _ in range(config.batch_size):
        if sampling is None:
            ex = examples[int(rng.integers(len(examples)))]
        else:
            ex = examples[int(rng.choice(len(examples), p=sampling))]
        h, w = ex.image.shape
        img = np.zeros((crop, crop), np.float32)
        tgt = np.zeros((ex.targets.shape[0], crop, crop), np.float32)
        val = np.zeros((crop, crop), np.float32)
        y0 = int(rng.integers(0, max(h - crop, 0) + 1))
        x0 = int(rng.integers(0, max(w - crop, 0) + 1))
        ch, cw = min(crop, h - y0), min(crop, w - x0)
        img[:ch, :cw] = ex.image[y0 : y0 + ch, x0 : x0 + cw]
        tgt[:, :ch, :cw] = ex.targets[:, y0 : y0 + ch, x0 : x0 + cw]
        val[:ch, :cw] = ex.valid[y0 : y0 + ch, x0 : x0 + cw]
        if config.flips:
            k = int(rng.integers(4))
            img, tgt, val = (np.rot90(a, k, axes=(-2, -1)) for a in (img, tgt, val))
            if rng.random() < 0.5:
                img, tgt, val = (a[..., ::-1] for a in (img, tgt, val))
        if config.blur_jitter > 0:
            sigma = rng.uniform(0, config.blur_jitter * diameter_px)
            if sigma > 0.3:
                img = cv2.GaussianBlur(np.ascontiguousarray(img, dtype=np.float32), (0, 0), sigma)
                # as if the whole image had been filtered, then normalised: unit std again
                # (at most 5x gain, so a flat crop's faint texture is not blown up)
                img = img * min(1.0 / max(float(img.std()), 1e-6), 5.0)
        if config.contrast_jitter > 0:
            c = config.contrast_jitter
            img = img * rng.uniform(1 - c, 1 + c) + rng.uniform(-c, c)
        if config.noise_jitter > 0:
            img = img + rng.normal(0, rng.uniform(0, config.noise_jitter), img.shape)
        images.append(np.ascontiguousarray(img, dtype=np.float32))
        targets.append(np.ascontiguousarray(tgt))
        valids.append(np.ascontiguousarray(val))
    return (
        torch.from_numpy(np.stack(images))[:, None],
        torch.from_numpy(np.stack(targets)),
        torch.from_numpy(np.stack(valids))[:, None],
    )


# ----------------------------------------------------------------------------------------------
# loss
# ----------------------------------------------------------------------------------------------


def soft_dice_loss(
    logits: torch.Tensor, target: torch.Tensor, weight: torch.Tensor
) -> torch.Tensor:
    prob = torch.sigmoid(logits) * weight
    target = target * weight
    intersection = (prob * target).sum()
    return 1.0 - (2.0 * intersection + 1.0) / (prob.sum() + target.sum() + 1.0)


def weighted_bce(logits: torch.Tensor, target: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    bce = F.binary_cross_entropy_with_logits(logits, target, reduction="none")
    return (bce * weight).sum() / weight.sum().clamp_min(1.0)


def loss_terms(
    logits: torch.Tensor,
    targets: torch.Tensor,
    valid: torch.Tensor,
    heads: tuple[str, ...],
    centre_weight: float,
) -> dict[str, torch.Tensor]:
    """Mask head: (BCE + Dice) / 2 as CryoSegNet; centre head: BCE on the soft heat-map.
    ``valid`` (N, 1, H, W) zeroes the loss where labels are unknown."""
    terms = {}
    total = logits.new_zeros(())
    for i, head in enumerate(heads):
        lg, tg = logits[:, i : i + 1], targets[:, i : i + 1]
        if head == "mask":
            term = 0.5 * (weighted_bce(lg, tg, valid) + soft_dice_loss(lg, tg, valid))
        else:
            term = centre_weight * weighted_bce(lg, tg, valid)
        terms[head] = term
        total = total + term
    terms["total"] = total
    return terms


# ----------------------------------------------------------------------------------------------
# validation: loss, and the picking threshold that maximises F1 on validation micrographs
# ----------------------------------------------------------------------------------------------


def _full_prediction(model: AttentionUNet, example: Example, device: torch.device) -> np.ndarray:
    with torch.inference_mode():
        x = torch.from_numpy(example.image)[None, None].to(device)
        return model(x)[0].float().cpu().numpy()


def tune_picking(
    predictions: list[dict[str, np.ndarray]],
    examples: list[Example],
    thresholds,
    min_distances,
    edge_margins,
) -> dict:
    """Picking settings with the best pooled F1 at 0.5 x diameter on ``examples`` (a grid);
    ``predictions`` hold probabilities on the denoised canvas. Ties go to the first setting.

    Peaks are found once per (min_distance, edge_margin) at the lowest threshold: greedy
    suppression visits peaks from the highest down, so the peaks kept at a higher threshold are
    exactly those kept at the lowest one that lie above it."""
    thresholds = sorted(thresholds)
    best, rows = None, []
    for edge_margin in edge_margins:
        for min_distance in min_distances:
            counts = np.zeros((len(thresholds), 3), dtype=np.int64)  # tp, picks, truth
            for pred, ex in zip(predictions, examples):
                picks = picks_from_prediction(
                    pred,
                    ex.frame,
                    ex.diameter / ex.frame.scale,
                    thresholds[0],
                    min_distance,
                    edge_margin,
                )
                for k, threshold in enumerate(thresholds):
                    kept = picks[picks["score"] > threshold] if k else picks
                    p = kept[["x", "y"]].to_numpy(float)
                    counts[k] += (
                        match_count(p, ex.truth, 0.5 * ex.diameter),
                        len(p),
                        len(ex.truth),
                    )
            for k, threshold in enumerate(thresholds):
                precision, recall, f1 = precision_recall_f1(*(int(c) for c in counts[k]))
                rows.append(
                    {
                        "threshold": threshold,
                        "min_distance": min_distance,
                        "edge_margin": edge_margin,
                        "precision": precision,
                        "recall": recall,
                        "f1": f1,
                    }
                )
                if best is None or f1 > best["f1"]:
                    best = rows[-1]
    return {"best": best, "grid": rows}


def final_tuning(
    model: AttentionUNet, examples: list[Example], config: TrainingConfig, device: torch.device
) -> dict:
    """Picking settings tuned on maps made exactly as the workflow makes them: inference with
    ``config.symmetries`` and the 8-bit rounding of the map files."""
    predictions = []
    for ex in examples:
        maps = predict(
            model,
            [ex.raw],
            [ex.frame.content_mask],
            batch_size=1,
            scale=ex.factor,
            device=device,
            symmetries=config.symmetries,
        )[0]
        predictions.append({k: np.round(v * 255.0) / 255.0 for k, v in maps.items()})
    return tune_picking(
        predictions, examples, config.thresholds, config.min_distances, config.edge_margins
    )["best"]


def canvas_probabilities(
    logits: np.ndarray, example: Example, heads: tuple[str, ...]
) -> dict[str, np.ndarray]:
    """Head probabilities resampled back to the denoised canvas (what inference produces)."""
    out = {}
    size = example.frame.size
    for i, head in enumerate(heads):
        prob = 1.0 / (1.0 + np.exp(-logits[i]))
        if example.factor != 1.0:
            prob = cv2.resize(prob, (size, size), interpolation=cv2.INTER_LINEAR)
        out[head] = prob.astype(np.float32)
    return out


# ----------------------------------------------------------------------------------------------
# the training loop
# ----------------------------------------------------------------------------------------------


@dataclass
class TrainingResult:
    checkpoint: dict
    history: list[dict]


@dataclass
class TrainingData:
    """The labelled micrographs split and loaded at the model's particle size."""

    diameter_px: float  # particle diameter on the model canvas
    train_items: list[LabelledMicrograph]
    val_items: list[LabelledMicrograph]
    train: list[Example]
    val: list[Example]
    identity: dict  # data_identity of all items
    sampling: np.ndarray | None = None  # chance of each training example per crop; None: even


@dataclass
class EpochFit:
    """What :func:`fit_epoch` did: mean training loss terms (None when time ran out before the
    epoch's end), the step count after it and the last learning rate."""

    terms: dict[str, float] | None
    step: int
    lr: float


def _learning_rate(config: TrainingConfig, step: int, elapsed_s: float) -> float:
    """Cosine decay to zero by whichever comes first: ``steps`` or ``max_minutes``; a short
    linear warm-up avoids early BatchNorm blow-ups at high rates."""
    progress = max(step / config.steps, elapsed_s / (60.0 * config.max_minutes))
    warmup = min(1.0, (step + 1) / min(50.0, max(1.0, config.steps / 10)))
    return config.learning_rate * warmup * 0.5 * (1.0 + math.cos(math.pi * min(progress, 1.0)))


def prepare_data(items: list[LabelledMicrograph], config: TrainingConfig) -> TrainingData:
    """Model diameter (configured, else the median labelled one), validation split, examples."""
    diameter = config.diameter_px or float(np.median([canvas_diameter(i) for i in items]))
    train_items, val_items = split_validation(
        items, config.validation_fraction, config.seed, config.validation_datasets
    )
    train_ex = [load_example(i, config, diameter, config.heads) for i in train_items]
    val_ex = [load_example(i, config, diameter, config.heads) for i in val_items]
    sampling = sampling_probabilities(train_items, config.dataset_weights)
    return TrainingData(
        diameter, train_items, val_items, train_ex, val_ex, data_identity(items), sampling
    )


def freeze_batchnorm(model: AttentionUNet) -> None:
    """BatchNorm layers to eval mode: they normalise with the stored statistics and do not
    update them (call after every ``model.train()``)."""
    for module in model.modules():
        if isinstance(module, torch.nn.modules.batchnorm._BatchNorm):
            module.eval()


def fit_step(
    model: AttentionUNet,
    optimiser: torch.optim.Optimizer,
    batch: tuple[torch.Tensor, torch.Tensor, torch.Tensor],
    config: TrainingConfig,
    device: torch.device,
    lr: float,
    bfloat16: bool = False,
    frozen_batchnorm: bool = False,
) -> dict[str, float]:
    """One optimiser step on ``batch`` (images, targets, valid) at learning rate ``lr``, under
    bfloat16 autocast when ``bfloat16``, with the BatchNorm statistics kept when
    ``frozen_batchnorm``; the loss terms before the step."""
    for group in optimiser.param_groups:
        group["lr"] = lr
    model.train()
    if frozen_batchnorm:
        freeze_batchnorm(model)
    images, targets, valid = (t.to(device) for t in batch)
    images = images.contiguous(memory_format=torch.channels_last)
    with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bfloat16):
        logits = model(images)
    terms = loss_terms(logits.float(), targets, valid, config.heads, config.centre_weight)
    optimiser.zero_grad(set_to_none=True)
    terms["total"].backward()
    optimiser.step()
    return {key: float(value.detach()) for key, value in terms.items()}


def fit_epoch(
    model: AttentionUNet,
    optimiser: torch.optim.Optimizer,
    data: TrainingData,
    config: TrainingConfig,
    rng: np.random.Generator,
    device: torch.device,
    step: int,
    start: float,
    bfloat16: bool = False,
) -> EpochFit:
    """Optimiser steps from ``step`` to the epoch's end: the next multiple of
    ``steps_per_epoch``, the last step, or ``max_minutes`` after ``start`` (monotonic clock).
    Time that has run out before a step ends the epoch without terms."""
    limit_s = 60.0 * config.max_minutes
    running: dict[str, float] = {}
    n = 0
    lr = 0.0
    while step < config.steps:
        elapsed = time.monotonic() - start
        if elapsed >= limit_s:
            return EpochFit(None, step, lr)
        lr = _learning_rate(config, step, elapsed)
        batch = sample_batch(data.train, config, rng, data.diameter_px, data.sampling)
        terms = fit_step(model, optimiser, batch, config, device, lr, bfloat16)
        step += 1
        for key, value in terms.items():
            running[key] = running.get(key, 0.0) + value
        n += 1
        out_of_time = time.monotonic() - start >= limit_s
        if step % config.steps_per_epoch == 0 or step == config.steps or out_of_time:
            break
    return EpochFit({k: v / n for k, v in running.items()}, step, lr)


def evaluate_model(
    model: AttentionUNet, examples: list[Example], config: TrainingConfig, device: torch.device
) -> dict[str, float]:
    """Validation: the loss terms (``val_<term>``, mean over ``examples``) and, for a model with
    a centre head, the picking settings of the best pooled F1 on the grid (``val_f1``,
    ``val_threshold``, ``val_min_distance``, ``val_edge_margin``)."""
    heads = config.heads
    model.eval()
    val_terms: dict[str, float] = {}
    preds = []
    for ex in examples:
        logits = _full_prediction(model, ex, device)
        terms = loss_terms(
            torch.from_numpy(logits)[None],
            torch.from_numpy(ex.targets)[None],
            torch.from_numpy(ex.valid)[None, None],
            heads,
            config.centre_weight,
        )
        for key, value in terms.items():
            val_terms[key] = val_terms.get(key, 0.0) + float(value) / len(examples)
        if "centre" in heads:
            preds.append(canvas_probabilities(logits, ex, heads))
    row = {f"val_{k}": v for k, v in val_terms.items()}
    if preds:
        tuned = tune_picking(
            preds, examples, config.thresholds, config.min_distances, config.edge_margins
        )["best"]
        row.update(
            {
                "val_f1": tuned["f1"],
                "val_threshold": tuned["threshold"],
                "val_min_distance": tuned["min_distance"],
                "val_edge_margin": tuned["edge_margin"],
            }
        )
    return row


def epoch_score(row: dict) -> float:
    """What picks the best epoch (higher is better): validation F1, else minus the validation
    loss, else minus the training loss."""
    if "val_f1" in row:
        return row["val_f1"]
    if "val_total" in row:
        return -row["val_total"]
    return -row["train_total"]


def _weights(model: AttentionUNet) -> dict[str, torch.Tensor]:
    return {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}


def picking_settings(
    model: AttentionUNet,
    best_state: dict[str, torch.Tensor],
    data: TrainingData,
    config: TrainingConfig,
    device: torch.device,
    inherited: dict | None = None,
) -> dict:
    """The checkpoint's picking settings: tuned on the validation micrographs with the best
    weights (loaded into ``model``) when there are some and a centre head; else those of the
    model fine-tuning started from (``inherited``: a single labelled micrograph leaves none
    to validate on), else defaults."""
    picking = {
        "threshold": 0.5,
        "min_distance": config.min_distances[0],
        "edge_margin": config.edge_margins[0],
        "symmetries": config.symmetries,
        "tuned_on": [],
    }
    for key in ("threshold", "min_distance", "edge_margin"):
        if inherited and key in inherited:
            picking[key] = inherited[key]
    if data.val and "centre" in config.heads:
        model.load_state_dict(best_state)
        final = final_tuning(model, data.val, config, device)
        picking.update({k: final[k] for k in ("threshold", "min_distance", "edge_margin")})
        picking.update(
            tuned_on=[i.name for i in data.val_items],
            validation_f1=final["f1"],
            validation_precision=final["precision"],
            validation_recall=final["recall"],
        )
    return picking


def training_checkpoint(
    config: TrainingConfig,
    state: dict[str, torch.Tensor],
    data: TrainingData,
    picking: dict,
    metrics: dict,
    origin: dict | None = None,
) -> dict:
    """The checkpoint of a training run (see :mod:`cryopick.checkpoint`); ``origin`` says what
    a fine-tuned model started from (see :func:`initial_network`)."""
    return new_checkpoint(
        config.architecture,
        state,
        config=config.to_dict(),
        data={
            **data.identity,
            "validation": [i.name for i in data.val_items],
            **(origin or {}),
        },
        diameter_px=data.diameter_px,
        input=config.input,
        input_lowpass=config.input_lowpass,
        normalisation="per-image z-score over the content (cryopick.network_input.normalise_image)",
        picking=picking,
        metrics=metrics,
    )


def with_input_lowpass(config: TrainingConfig) -> TrainingConfig:
    """``config`` with its input low-pass decided: as given; else, when fine-tuning, the initial
    model's (so that a few labelled micrographs need no setting to match it); else the one
    new models are trained with."""
    if config.input_lowpass is not None:
        return config
    if config.initial_model:
        lowpass = input_lowpass(read_checkpoint(config.initial_model))
    else:
        lowpass = NEW_MODEL_LOWPASS
    return replace(config, input_lowpass=lowpass)


def initial_network(
    config: TrainingConfig, data: TrainingData, log=print
) -> tuple[AttentionUNet, dict]:
    """A fresh network, or the weights of ``config.initial_model`` for fine-tuning, with what it
    started from for the new checkpoint (file and data sha256; {} from scratch). A model that
    expects another architecture, input or particle size is refused, naming the file."""
    if not config.initial_model:
        return AttentionUNet.from_architecture(config.architecture), {}
    model, checkpoint = load_model(config.initial_model, config.architecture)
    given = {
        "input": checkpoint.get("input", "denoised"),
        "input_lowpass": input_lowpass(checkpoint),
        "diameter_px": float(checkpoint.get("diameter_px") or 0.0),
    }
    wanted = {
        "input": config.input,
        "input_lowpass": float(config.input_lowpass),
        "diameter_px": float(data.diameter_px),
    }
    for key, value in given.items():
        if value != wanted[key]:
            raise ModelError(
                f"{config.initial_model}: unet.train.initial_model has {key} "
                f"{value!r}, the training config {wanted[key]!r}; set "
                f"unet.train.{key} to the model's value"
            )
    log(
        f"fine-tuning from {config.initial_model} (data sha256 {checkpoint['data']['sha256'][:12]})"
    )
    origin = {
        "initial_model": {
            "path": str(config.initial_model),
            "sha256": file_sha256(config.initial_model),
            "data_sha256": checkpoint["data"]["sha256"],
            "picking": checkpoint.get("picking", {}),
        }
    }
    return model.train(), origin


def _log_row(row: dict) -> str:
    return "  ".join(f"{k} {v:.4g}" if isinstance(v, float) else f"{k} {v}" for k, v in row.items())


def train(items: list[LabelledMicrograph], config: TrainingConfig, log=print) -> TrainingResult:
    """Train a model on ``items``; returns the checkpoint of the best validation epoch (the last
    epoch when there is no validation micrograph) and the per-epoch history."""
    if not items:
        raise InputError("unet training needs at least one labelled micrograph")
    seed_everything(config.seed)
    torch.set_num_threads(max(1, config.threads))
    device = resolve_device(config.device, "unet.train.device")
    config = with_input_lowpass(config)
    data = prepare_data(items, config)
    model, origin = initial_network(config, data, log)
    model = model.to(device, memory_format=torch.channels_last)
    n_params = count_parameters(model)
    bfloat16, precision = mixed_precision_choice(config.mixed_precision, device)
    log(f"unet training precision: {precision}")
    log(
        f"unet training on {device} ({torch.get_num_threads()} CPU threads): "
        f"{len(data.train)} training / {len(data.val)} validation micrographs, "
        f"{n_params:,} parameters, particle diameter {data.diameter_px:.1f} px on the model "
        f"canvas, data sha256 {data.identity['sha256'][:12]}"
    )
    optimiser = torch.optim.AdamW(
        model.parameters(), lr=config.learning_rate, weight_decay=config.weight_decay
    )
    rng = np.random.default_rng(config.seed)
    history: list[dict] = []
    best_state, best_score, best_metrics = None, -math.inf, {}
    start = time.monotonic()
    step = 0
    stopped_by = "steps"
    while step < config.steps:
        fit = fit_epoch(model, optimiser, data, config, rng, device, step, start, bfloat16)
        step = fit.step
        if fit.terms is None:
            stopped_by = "max_minutes"
            break
        row = {
            "epoch": len(history) + 1,
            "step": step,
            "lr": fit.lr,
            "minutes": (time.monotonic() - start) / 60.0,
        }
        row.update({f"train_{k}": v for k, v in fit.terms.items()})
        if data.val:
            row.update(evaluate_model(model, data.val, config, device))
        history.append(row)
        log(_log_row(row))
        score = epoch_score(row)
        if score >= best_score:
            best_score = score
            best_state = _weights(model)
            best_metrics = dict(row)
    minutes = (time.monotonic() - start) / 60.0
    if best_state is None:
        best_state = _weights(model)
    inherited = origin.get("initial_model", {}).get("picking")
    picking = picking_settings(model, best_state, data, config, device, inherited)
    checkpoint = training_checkpoint(
        config,
        best_state,
        data,
        picking,
        {
            "best_epoch": best_metrics,
            "n_parameters": n_params,
            "steps": step,
            "minutes": minutes,
            "stopped_by": stopped_by,
            "device": str(device),
        },
        origin,
    )
    log(
        f"unet training done: {step} steps in {minutes:.1f} min (stopped by {stopped_by}); "
        f"best epoch {best_metrics.get('epoch')}, picking threshold {picking['threshold']}"
    )
    return TrainingResult(checkpoint, history)


# ----------------------------------------------------------------------------------------------
# training log
# ----------------------------------------------------------------------------------------------


def _loss_columns(table) -> list[str]:
    return [
        c
        for c in table.columns
        if c.startswith(("train_", "val_"))
        and not c.startswith(("val_f1", "val_threshold", "val_min_distance", "val_edge_margin"))
    ]


def write_history(
    history: list[dict], tsv_path: str | os.PathLike, png_path: str | os.PathLike | None = None
) -> None:
    """Per-epoch table (TSV) and loss curves (PNG: training and validation loss per head, and
    validation F1 when there is one)."""
    import pandas as pd

    table = pd.DataFrame(history)
    with atomic_path(tsv_path) as tmp:
        table.to_csv(tmp, sep="\t", index=False, float_format="%.6g")
    if png_path is None:
        return
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    has_f1 = "val_f1" in table
    fig, axes = plt.subplots(
        1, 2 if has_f1 else 1, figsize=(10 if has_f1 else 5.5, 4), squeeze=False
    )
    ax = axes[0, 0]
    for column in _loss_columns(table):
        style = "-" if column.startswith("train_") else "--"
        ax.plot(table["step"], table[column], style, label=column)
    ax.set_xlabel("step")
    ax.set_ylabel("loss")
    ax.set_yscale("log")
    ax.legend(fontsize=7)
    ax.set_title("U-Net loss")
    if has_f1:
        ax = axes[0, 1]
        ax.plot(table["step"], table["val_f1"], "o-")
        ax.set_xlabel("step")
        ax.set_ylabel("validation F1 (0.5 x diameter)")
        ax.set_title("validation picks")
    fig.tight_layout()
    with atomic_path(png_path) as tmp:
        fig.savefig(tmp, format="png", dpi=100)
    plt.close(fig)


# ----------------------------------------------------------------------------------------------
# files: what the workflow's train_unet rule calls
# ----------------------------------------------------------------------------------------------


def labelled_micrograph(
    name: str,
    denoised_path: str,
    labels_path: str,
    diameter_angstrom: float,
    mask_path: str | None = None,
    micrograph_path: str | None = None,
    invert: bool = False,
) -> LabelledMicrograph:
    """A training item whose labelled diameter (file pixels) comes from the data set's
    particle diameter and the pixel size recorded by the denoise stage."""
    _, file_pixel_size = load_frame(denoised_path)
    return LabelledMicrograph(
        name,
        str(denoised_path),
        str(labels_path),
        diameter_angstrom / file_pixel_size,
        mask_path,
        str(micrograph_path) if micrograph_path else None,
        bool(invert),
    )


def train_files(
    items: list[LabelledMicrograph],
    config: TrainingConfig,
    model_path: str,
    history_path: str,
    plot_path: str,
    log=print,
) -> dict:
    """Train, then write the checkpoint, the per-epoch table and the loss curves."""
    result = train(items, config, log)
    save_checkpoint(model_path, result.checkpoint)
    write_history(result.history, history_path, plot_path)
    return result.checkpoint
