"""Label-free adaptation of a U-Net to one data set: fine-tuning on its own confident picks.

The general model was trained on synthetic specimens and one real data set; on a user's
micrographs its scores separate particles from background less cleanly than on its own
validation data. Its confident peaks are nearly all particles, its faint ones nearly all
background, and the peaks in between are both. Self-training fine-tunes the model on the
first two (pseudo-particles and background) and leaves the loss out near the third, so the
model is not taught that an undecided particle is background.

BatchNorm layers keep the statistics of the model's training data during fine-tuning:
measuring them on the user's micrographs (AdaBN, :func:`cryopick.inference.adapt_batchnorm`)
lost precision everywhere in benchmarks/generality.py --adapt-norm.
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from cryopick.batching import batch_artifact, batch_folder_of
from cryopick.checkpoint import load_model, save_checkpoint
from cryopick.denoise import load_frame
from cryopick.device import resolve_device
from cryopick.inference import model_input, predict, stored_setting_picks
from cryopick.io import InputError, write_star
from cryopick.settings import config_values
from cryopick.training import (
    Example,
    LabelledMicrograph,
    TrainingConfig,
    _learning_rate,
    fit_step,
    initial_network,
    prepare_data,
    sample_batch,
    seed_everything,
    training_checkpoint,
    with_input_lowpass,
)
from cryopick.unet import Architecture, AttentionUNet


@dataclass(frozen=True)
class SelfTrainingSettings:
    """How a model adapts to a data set (config ``unet.self_training``; chosen on development
    micrographs, benchmarks/self_training.py --dev)."""

    enabled: bool = False
    confident: float = 0.5  # peaks at least this high are pseudo-particles
    uncertain: float = 0.1  # peaks from here up to ``confident``: no loss near them
    steps: int = 100  # optimiser steps of fine-tuning
    learning_rate: float = 3e-4
    batch_size: int = 8  # crops per step
    micrographs: int = 20  # at most this many of the data set's micrographs, in order
    seed: int = 0
    # of the first pass's peaks above ``uncertain``, at least this share confident, else no
    # adaptation (dev sets below 0.3 gained -0.005 F1 on average, those above +0.05)
    min_confident_share: float = 0.3

    def __post_init__(self) -> None:
        if not 0.0 <= self.min_confident_share <= 1.0:
            raise InputError(
                "unet.self_training.min_confident_share must be within 0-1, got "
                f"{self.min_confident_share}"
            )
        if not 0.0 < self.uncertain <= self.confident <= 1.0:
            raise InputError(
                "unet.self_training needs 0 < uncertain <= confident <= 1, got "
                f"uncertain {self.uncertain}, confident {self.confident}"
            )
        for name in ("steps", "batch_size", "micrographs"):
            if getattr(self, name) < 1:
                raise InputError(
                    f"unet.self_training.{name} must be >= 1, got {getattr(self, name)}"
                )

    @classmethod
    def from_config(cls, config: dict) -> "SelfTrainingSettings":
        return cls(**config_values(cls, config, "unet.self_training"))


@dataclass(frozen=True)
class AdaptationMicrograph:
    """One of the data set's micrographs, as the U-Net stage reads it."""

    name: str
    denoised: str  # the denoise stage's .npz
    micrograph: str  # the micrograph file
    diameter: float  # particle diameter in file pixels
    invert: bool = False


def split_pseudo_labels(
    picks: pd.DataFrame, confident: float, uncertain: float
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(pseudo-particles, undecided peaks) of picks made at threshold ``uncertain`` or lower:
    score >= ``confident``, and ``uncertain`` <= score < ``confident``."""
    score = picks["score"].to_numpy(float)
    return picks[score >= confident], picks[(score >= uncertain) & (score < confident)]


def ignore_near(example: Example, x: np.ndarray, y: np.ndarray, radius: float) -> None:
    """Zero ``example.valid`` within ``radius`` model pixels of each point (file frame)."""
    if len(x) == 0:
        return
    xn, yn = example.frame.to_network(np.asarray(x, float), np.asarray(y, float))
    xs, ys = (xn + 0.5) * example.factor - 0.5, (yn + 0.5) * example.factor - 0.5
    height, width = example.valid.shape
    reach = int(math.ceil(radius)) + 1
    for cx, cy in zip(xs, ys):
        x0, x1 = max(int(cx) - reach, 0), min(int(cx) + reach + 1, width)
        y0, y1 = max(int(cy) - reach, 0), min(int(cy) + reach + 1, height)
        if x0 >= x1 or y0 >= y1:
            continue
        yy, xx = np.mgrid[y0:y1, x0:x1]
        near = (xx - cx) ** 2 + (yy - cy) ** 2 <= radius**2
        example.valid[y0:y1, x0:x1][near] = 0.0


def first_pass_picks(
    model: AttentionUNet, checkpoint: dict, item: AdaptationMicrograph, threshold: float
) -> pd.DataFrame:
    """The model's picks on one micrograph at ``threshold``, with its other stored settings."""
    seen = model_input(checkpoint, item.denoised, item.micrograph, item.invert, item.diameter)
    prediction = predict(model, [seen.canvas], [seen.frame.content_mask], scale=seen.scale)[0]
    return stored_setting_picks(
        prediction, seen.frame, item.diameter, checkpoint["picking"], threshold
    )


@dataclass(frozen=True)
class PseudoLabels:
    """One micrograph's first pass: its pseudo-particles and its undecided peaks."""

    item: AdaptationMicrograph
    particles: pd.DataFrame
    undecided: pd.DataFrame


def first_pass(
    model: AttentionUNet,
    checkpoint: dict,
    items: list[AdaptationMicrograph],
    settings: SelfTrainingSettings,
) -> list[PseudoLabels]:
    """The model's own picks on each micrograph, split at ``confident`` and ``uncertain``."""
    labels = []
    for item in items:
        picks = first_pass_picks(model, checkpoint, item, settings.uncertain)
        labels.append(
            PseudoLabels(item, *split_pseudo_labels(picks, settings.confident, settings.uncertain))
        )
    return labels


def write_pseudo_labels(label: PseudoLabels, folder: str | Path) -> LabelledMicrograph:
    """Write one micrograph's pseudo-particles as ``folder``/{name}.star, for training and for
    the user to inspect."""
    path = Path(folder) / f"{label.item.name}.star"
    path.parent.mkdir(parents=True, exist_ok=True)
    write_star(path, label.particles)
    item = label.item
    return LabelledMicrograph(
        item.name, item.denoised, str(path), item.diameter, None, item.micrograph, item.invert
    )


def label_counts(labels: list[PseudoLabels]) -> tuple[int, int]:
    """(pseudo-particles, undecided peaks) of a first pass."""
    return sum(len(x.particles) for x in labels), sum(len(x.undecided) for x in labels)


def confident_share(n_particles: int, n_undecided: int) -> float:
    """The share of a first pass's peaks above ``uncertain`` that are confident (0 if none)."""
    return n_particles / max(n_particles + n_undecided, 1)


def skip_reason(n_particles: int, n_undecided: int, settings: SelfTrainingSettings) -> str | None:
    """Why a first pass is too weak to learn from, or None: no confident peak at all, or fewer
    confident than ``min_confident_share`` of the peaks above ``uncertain`` (where the model
    is unsure of most of what it sees, its background labels hold the particles it missed)."""
    if n_particles == 0:
        return "found no confident pick to learn from"
    share = confident_share(n_particles, n_undecided)
    if share < settings.min_confident_share:
        return (
            f"found {share:.0%} of its peaks confident (unet.self_training.min_confident_share "
            f"{settings.min_confident_share:g}): the first pass is too unsure to learn from"
        )
    return None


def self_train(
    model_path: str,
    items: list[AdaptationMicrograph],
    settings: SelfTrainingSettings,
    labels_folder: str | Path,
    device: str = "auto",
    threads: int = 2,
    log=print,
    warn=None,
) -> dict:
    """The checkpoint of ``model_path`` fine-tuned on the pseudo-labels of ``items`` (the first
    ``settings.micrographs``); each micrograph's pseudo-particles are written to
    ``labels_folder``/{name}.star. Picking settings are the model's own."""
    if not items:
        raise InputError("unet.self_training needs at least one micrograph")
    items = items[: settings.micrographs]
    seed_everything(settings.seed)
    torch.set_num_threads(max(1, threads))
    device = resolve_device(device, "unet.device")
    model, checkpoint = load_model(model_path, device=device)
    model = model.float().eval()
    labels = first_pass(model, checkpoint, items, settings)
    labelled = [write_pseudo_labels(label, labels_folder) for label in labels]
    n_particles, n_unsure = label_counts(labels)
    log(
        f"self-training on {len(items)} micrographs: {n_particles} pseudo-particles (score >= "
        f"{settings.confident}), {n_unsure} undecided peaks left out of the loss"
    )
    reason = skip_reason(n_particles, n_unsure, settings)
    if reason:
        (warn or (lambda m: log(f"WARNING: {m}")))(
            f"self-training {reason}; the model is kept unchanged (check particle_diameter, "
            "pixel_size and particle_contrast)"
        )
        return checkpoint
    config = training_config(model_path, checkpoint, settings, device, threads)
    data = prepare_data(labelled, config)
    for example, label in zip(data.train, labels):
        ignore_near(example, label.undecided["x"], label.undecided["y"], 0.5 * data.diameter_px)
    network, origin = initial_network(config, data, log)
    network = network.float()
    state, minutes = fine_tune(network, data, config, device)
    origin["self_training"] = {
        **asdict(settings),
        "pseudo_particles": n_particles,
        "undecided": n_unsure,
    }
    log(f"self-training done: {settings.steps} steps in {minutes:.1f} min")
    return training_checkpoint(
        config,
        state,
        data,
        dict(checkpoint["picking"]),
        {"steps": settings.steps, "minutes": minutes, "device": device.type},
        origin,
    )


def training_config(
    model_path: str,
    checkpoint: dict,
    settings: SelfTrainingSettings,
    device: torch.device,
    threads: int,
) -> TrainingConfig:
    """The fine-tuning run: the model's architecture, input, particle size, crop and targets;
    every micrograph trained on (no validation: there are no labels); float32 (bfloat16 is
    slower on most CPUs)."""
    architecture = Architecture.from_dict(checkpoint["architecture"])
    trained = checkpoint.get("config", {})
    config = TrainingConfig(
        input=checkpoint.get("input", "denoised"),
        base_width=architecture.base_width,
        depth=architecture.depth,
        heads=architecture.heads,
        crop=int(trained.get("crop", 128)),
        centre_sigma=float(trained.get("centre_sigma", 0.125)),
        ignore_border=float(trained.get("ignore_border", 1.0)),
        initial_model=str(model_path),
        diameter_px=float(checkpoint["diameter_px"]),
        steps=settings.steps,
        steps_per_epoch=settings.steps,
        batch_size=settings.batch_size,
        learning_rate=settings.learning_rate,
        validation_fraction=0.0,
        seed=settings.seed,
        device=device.type,
        mixed_precision=False,
        threads=threads,
    )
    return with_input_lowpass(config)


def fine_tune(
    network: AttentionUNet, data, config: TrainingConfig, device: torch.device
) -> tuple[dict, float]:
    """``config.steps`` AdamW steps on the pseudo-labels with BatchNorm statistics frozen;
    (float weights, minutes)."""
    network = network.to(device)
    optimiser = torch.optim.AdamW(
        network.parameters(), lr=config.learning_rate, weight_decay=config.weight_decay
    )
    rng = np.random.default_rng(config.seed)
    start = time.monotonic()
    for step in range(config.steps):
        lr = _learning_rate(config, step, time.monotonic() - start)
        batch = sample_batch(data.train, config, rng, data.diameter_px)
        fit_step(network, optimiser, batch, config, device, lr, frozen_batchnorm=True)
    network.eval()
    state = {k: v.detach().cpu().clone() for k, v in network.state_dict().items()}
    return state, (time.monotonic() - start) / 60.0


def adaptation_items(
    names: list[str],
    micrograph_files: dict[str, str],
    denoised_batches: list[str],
    diameter_angstrom: float,
    invert: bool = False,
    log=print,
) -> list[AdaptationMicrograph]:
    """The micrographs to adapt on, in order: those the denoise stage made a canvas for (a
    micrograph it recorded an error for, or a missing file, is named and left out)."""
    items = []
    for name in names:
        canvases = (batch_artifact(batch_folder_of(b), name) for b in denoised_batches)
        canvas = next((c for c in canvases if c.is_file()), None)
        if canvas is None or name not in micrograph_files:
            log(f"{name}: no denoised canvas or micrograph file; not adapted on")
            continue
        _, file_pixel_size = load_frame(str(canvas))
        items.append(
            AdaptationMicrograph(
                name,
                str(canvas),
                str(micrograph_files[name]),
                diameter_angstrom / file_pixel_size,
                invert,
            )
        )
    return items


def self_train_files(
    model_path: str,
    names: list[str],
    micrograph_files: dict[str, str],
    denoised_batches: list[str],
    diameter_angstrom: float,
    invert: bool,
    settings: SelfTrainingSettings,
    output_model: str,
    labels_folder: str,
    device: str = "auto",
    threads: int = 2,
    log=None,
) -> dict:
    """The workflow's rule: adapt ``model_path`` on ``names`` and save the checkpoint (the
    model unchanged, with a WARNING, when there is nothing confident to learn from)."""
    info = log.info if log is not None else print
    warn = log.warning if log is not None else (lambda m: print(f"WARNING: {m}"))
    items = adaptation_items(
        names, micrograph_files, denoised_batches, diameter_angstrom, invert, warn
    )
    if not items:
        raise InputError(
            f"unet.self_training: none of the {len(names)} micrographs to adapt on has a "
            "denoised canvas (see the denoise stage's errors)"
        )
    checkpoint = self_train(model_path, items, settings, labels_folder, device, threads, info, warn)
    save_checkpoint(output_model, checkpoint)
    return checkpoint
