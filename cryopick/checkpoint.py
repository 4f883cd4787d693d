"""U-Net checkpoints: the file format, and rebuilding the network a file describes.

A checkpoint is a dict saved with ``torch.save`` holding the format and its version, the
architecture, the weights, the training config, the identity of the training data (sha256 over
every image and label), the cryopick version, the tuned picking settings and the validation
metrics. Everything but the weights is JSON-plain, so ``torch.load(weights_only=True)`` reads
every checkpoint. :func:`load_model` rebuilds the network from the checkpoint and refuses a file
that does not match what the caller expects, naming the file. Training writes checkpoints,
inference reads them; neither needs the other for it.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import torch

import cryopick
from cryopick.io import atomic_path
from cryopick.unet import Architecture, AttentionUNet

CHECKPOINT_FORMAT = "cryopick-unet"
CHECKPOINT_VERSION = 1


class ModelError(ValueError):
    """A model file is unusable or does not match what the caller expects; names the file."""


def plain(value):
    """JSON-plain copy (numpy scalars to Python), so ``torch.load(weights_only=True)`` reads
    every checkpoint."""
    return json.loads(
        json.dumps(value, default=lambda v: v.item() if hasattr(v, "item") else str(v))
    )


def new_checkpoint(
    architecture: Architecture, state_dict: dict[str, torch.Tensor], **contents
) -> dict:
    """A checkpoint of the current format: header, architecture, weights, ``contents`` (made
    JSON-plain) and the versions of cryopick and torch that wrote it."""
    checkpoint = {
        "format": CHECKPOINT_FORMAT,
        "format_version": CHECKPOINT_VERSION,
        "architecture": architecture.to_dict(),
        "state_dict": state_dict,
        **contents,
        "cryopick_version": cryopick.__version__,
        "torch_version": str(torch.__version__),
    }
    return {k: (v if k == "state_dict" else plain(v)) for k, v in checkpoint.items()}


def save_checkpoint(path: str | os.PathLike, checkpoint: dict, half: bool = True) -> None:
    """Atomic ``torch.save``; ``half`` stores floating weights as float16 (half the size, a
    difference far below the 8-bit maps inference writes)."""
    checkpoint = dict(checkpoint)
    if half:
        checkpoint["state_dict"] = {
            k: (v.half() if v.is_floating_point() else v)
            for k, v in checkpoint["state_dict"].items()
        }
    with atomic_path(path) as tmp:
        torch.save(checkpoint, tmp)


def read_checkpoint(path: str | os.PathLike) -> dict:
    path = Path(path)
    if not path.is_file():
        raise ModelError(f"{path}: U-Net model file does not exist")
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise ModelError(f"{path}: not a readable cryopick U-Net checkpoint ({exc})") from exc
    if not isinstance(checkpoint, dict) or checkpoint.get("format") != CHECKPOINT_FORMAT:
        raise ModelError(
            f"{path}: not a cryopick U-Net checkpoint (no format {CHECKPOINT_FORMAT!r})"
        )
    if checkpoint.get("format_version", 0) > CHECKPOINT_VERSION:
        raise ModelError(
            f"{path}: checkpoint format {checkpoint['format_version']} is newer than "
            f"this cryopick reads ({CHECKPOINT_VERSION}); update cryopick"
        )
    return checkpoint


def load_model(
    path: str | os.PathLike,
    expected_architecture: Architecture | dict | None = None,
    device: str | torch.device = "cpu",
) -> tuple[AttentionUNet, dict]:
    """Rebuild the network a checkpoint describes and load its weights (eval mode).

    Refuses, naming the file, a checkpoint whose architecture differs from
    ``expected_architecture`` or whose weights do not fit its own declared architecture, so
    weights can never be loaded into the wrong network."""
    path = Path(path)
    checkpoint = read_checkpoint(path)
    try:
        architecture = Architecture.from_dict(checkpoint["architecture"])
    except (KeyError, TypeError, ValueError) as exc:
        raise ModelError(f"{path}: checkpoint has no usable architecture ({exc})") from exc
    if expected_architecture is not None:
        if isinstance(expected_architecture, dict):
            expected_architecture = Architecture.from_dict(expected_architecture)
        if expected_architecture != architecture:
            raise ModelError(
                f"{path}: checkpoint architecture {architecture.to_dict()} differs from the "
                f"expected {expected_architecture.to_dict()}"
            )
    model = AttentionUNet.from_architecture(architecture)
    state = {
        k: (v.float() if v.is_floating_point() else v) for k, v in checkpoint["state_dict"].items()
    }
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        raise ModelError(
            f"{path}: weights do not fit the declared architecture "
            f"{architecture.to_dict()} ({str(exc).splitlines()[0]})"
        ) from exc
    model.to(device).eval()
    return model, checkpoint
