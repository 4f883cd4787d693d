"""Probability map files: what U-Net inference writes and the CRF, SAM and picking stages read.

One compressed .npz per micrograph on its denoised canvas: ``probability`` (the ``mask`` head)
and, when the model has that head, ``centre``, each uint8 0..255 for 0..1 (float arrays must
already be probabilities); ``frame`` (json, the canvas's :class:`~cryopick.denoise.Frame`) and
``metadata`` (json: model, device...). A CRF-refined map is such a file too (``probability``,
plus the CRF's ``mask`` labelling and settings), so one reader serves every stage.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict
from pathlib import Path
from typing import Sequence

import numpy as np

from cryopick.denoise import Frame
from cryopick.io import InputError, atomic_path

# array name in the file -> head name in memory
MAP_ARRAYS = {"probability": "mask", "centre": "centre"}


def to_uint8_map(prob: np.ndarray) -> np.ndarray:
    """A probability map as stored: uint8 0..255 for 0..1."""
    return np.clip(np.round(np.asarray(prob, np.float32) * 255.0), 0, 255).astype(np.uint8)


def save_prediction(
    path: str | os.PathLike,
    prediction: dict[str, np.ndarray],
    frame: Frame,
    metadata: dict | None = None,
) -> None:
    """A U-Net map file: ``probability`` (mask head), ``centre`` when the model has that head,
    ``frame`` and ``metadata``."""
    arrays = {"frame": json.dumps(asdict(frame)), "metadata": json.dumps(metadata or {})}
    for name, head in MAP_ARRAYS.items():
        if head in prediction:
            arrays[name] = to_uint8_map(prediction[head])
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as handle:
            np.savez_compressed(handle, **arrays)


def _probability(path: Path, name: str, values: np.ndarray) -> np.ndarray:
    if values.ndim != 2:
        raise InputError(f"{path}: {name} map has shape {values.shape}, expected 2D")
    if values.dtype == np.uint8:
        return values.astype(np.float32) / 255.0
    values = values.astype(np.float32)
    if not np.isfinite(values).all() or values.min() < 0 or values.max() > 1:
        raise InputError(f"{path}: float {name} map must hold values in [0, 1]")
    return values


def load_prediction(
    path: str | os.PathLike, require: Sequence[str] = ()
) -> tuple[dict[str, np.ndarray], Frame | None, dict]:
    """(maps as float32 in [0, 1] keyed by head name, frame, metadata) of a map file.

    ``probability`` is the ``mask`` head. The frame is None and the metadata empty in a file
    without them; the arrays named in ``require`` (e.g. ``probability``, ``frame``) must be
    there. An unreadable or malformed file is an InputError naming it."""
    path = Path(path)
    try:
        with np.load(path, allow_pickle=False) as data:
            for name in require:
                if name not in data:
                    raise InputError(f"{path}: no {name!r} array (found {list(data.keys())})")
            arrays = {name: data[name] for name in MAP_ARRAYS if name in data}
            frame = Frame(**json.loads(str(data["frame"]))) if "frame" in data else None
            metadata = json.loads(str(data["metadata"])) if "metadata" in data else {}
    except InputError:
        raise
    except (OSError, ValueError) as exc:
        raise InputError(f"{path}: not a readable .npz probability map ({exc})") from exc
    maps = {MAP_ARRAYS[name]: _probability(path, name, values) for name, values in arrays.items()}
    return maps, frame, metadata


def load_probability(path: str | os.PathLike) -> np.ndarray:
    """The ``probability`` (mask head) canvas of a U-Net or CRF map file, float32 in [0, 1]."""
    return load_prediction(path, require=("probability",))[0]["mask"]
