"""From SAM masks to particle picks: CryoSegNet's "Algorithm 1" with its three defects fixed.

Algorithm 1 keeps masks whose predicted IoU exceeds a threshold, takes the modes m_w, m_h of
the box widths and heights, keeps boxes whose size lies in a window around the modes and
picks the box centres. CryoSegNet's code has three defects, fixed here:

1. Diameter: theirs is the box *diagonal* (sqrt 2 too large for a round particle). Here it is
   the box *side*: the mask's extent, mean (or max) of width and height.
2. Units: their window is ``(m - th/3, m + th)`` with ``m`` in 1024-canvas pixels but ``th``
   derived from the diagonal in full-resolution pixels, so the window widens with the
   micrograph size (about [0.81 m, 1.57 m] for a 4096 px micrograph, [0.65 m, 2.06 m] at
   7676 px). Here everything is network-canvas pixels and the window is a fixed fraction
   of the mode, ``[size_window_low * m, size_window_high * m]`` (defaults 0.8 and 1.6, the
   4096 px window rounded outward); coordinates go to the micrograph frame only at the end,
   through :meth:`Frame.to_original`.
3. Duplicates: theirs writes two extra, randomly jittered picks for masks with predicted
   IoU > 0.99. Here each mask gives one pick, and picks closer than ``min_distance`` times
   the modal particle size are merged, keeping the best figure of merit (SAM often returns
   a particle twice at two granularities that box NMS does not remove).

Box convention: SAM's XYWH box has x, y at the first column/row of the mask and w, h equal
to last minus first, so the mask spans w + 1 columns and the box centre (x + w/2, y + h/2) is
the midpoint of the extreme pixel centres. The figure of merit is predicted IoU times
stability score: both are SAM's own quality estimates in [0, 1], and a mask must be good on
both to rank high.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np
import pandas as pd

from cryopick.denoise import Frame, load_denoised
from cryopick.io import InputError, empty_coordinates, write_star
from cryopick.picking import suppress_close
from cryopick.sam import MaskRecord, load_masks
from cryopick.settings import config_values


@dataclass(frozen=True)
class PostprocessSettings:
    """Thresholds of the fixed Algorithm 1; every one is a config key under ``postprocess``."""

    min_predicted_iou: float = 0.94  # CryoSegNet: keep masks with predicted IoU > 0.94
    size_window_low: float = 0.8  # keep extents >= low * mode (width and height each)
    size_window_high: float = 1.6  # ... and <= high * mode
    diameter_from: str = "mean"  # "mean" or "max" of the box width and height
    min_distance: float = 0.5  # merge picks closer than this times the modal size

    @classmethod
    def from_config(cls, config: dict) -> "PostprocessSettings":
        settings = cls(**config_values(cls, config, "postprocess"))
        if settings.diameter_from not in ("mean", "max"):
            raise InputError(
                f"postprocess.diameter_from must be 'mean' or 'max', got {settings.diameter_from!r}"
            )
        if not 0 < settings.size_window_low <= 1 <= settings.size_window_high:
            raise InputError(
                "postprocess.size_window_low must lie in (0, 1] and size_window_high be >= 1, "
                f"got {settings.size_window_low} and {settings.size_window_high}"
            )
        if settings.min_distance < 0:
            raise InputError(f"postprocess.min_distance must be >= 0, got {settings.min_distance}")
        return settings


def box_mode(values: np.ndarray) -> float:
    """Most frequent integer value; ties go to the candidate nearest the median (deterministic,
    unlike ``statistics.mode``, which returns whichever tied value came first)."""
    values = np.rint(np.asarray(values, dtype=np.float64)).astype(np.int64)
    uniques, counts = np.unique(values, return_counts=True)
    candidates = uniques[counts == counts.max()]
    median = float(np.median(values))
    return float(candidates[np.argmin(np.abs(candidates - median))])


def masks_to_picks(
    records: Sequence[MaskRecord],
    frame: Frame,
    settings: PostprocessSettings = PostprocessSettings(),
) -> tuple[pd.DataFrame, dict[str, Any]]:
    """Picks (x, y, score, diameter in the micrograph file's pixels) from SAM mask records.

    Returns the picks by decreasing score and a dict of counts after each step and the modes,
    for the log and the per-stage metrics.
    """
    stats: dict[str, Any] = {"masks": len(records)}
    if not records:
        return empty_coordinates(), stats | {"after_iou": 0, "after_size": 0, "picks": 0}
    boxes = np.array([r.bbox for r in records], dtype=np.float64).reshape(-1, 4)
    iou = np.array([r.predicted_iou for r in records], dtype=np.float64)
    stability = np.array([r.stability_score for r in records], dtype=np.float64)

    keep = iou > settings.min_predicted_iou
    stats["after_iou"] = int(keep.sum())
    if not keep.any():
        return empty_coordinates(), stats | {"after_size": 0, "picks": 0}
    extent_w = boxes[:, 2] + 1.0  # SAM's w is last - first column
    extent_h = boxes[:, 3] + 1.0
    mode_w = box_mode(extent_w[keep])
    mode_h = box_mode(extent_h[keep])
    stats.update(mode_width=mode_w, mode_height=mode_h)
    lo, hi = settings.size_window_low, settings.size_window_high
    keep &= (extent_w >= lo * mode_w) & (extent_w <= hi * mode_w)
    keep &= (extent_h >= lo * mode_h) & (extent_h <= hi * mode_h)
    # a centre on the canvas padding is not on the micrograph
    cx = boxes[:, 0] + boxes[:, 2] / 2.0
    cy = boxes[:, 1] + boxes[:, 3] / 2.0
    keep &= (cx <= frame.content_width - 0.5) & (cy <= frame.content_height - 0.5)
    stats["after_size"] = int(keep.sum())

    idx = np.flatnonzero(keep)
    if settings.diameter_from == "max":
        diameter = np.maximum(extent_w, extent_h)
    else:
        diameter = 0.5 * (extent_w + extent_h)
    score = iou * stability
    merged = suppress_close(
        cx[idx], cy[idx], score[idx], settings.min_distance * 0.5 * (mode_w + mode_h)
    )
    idx = idx[merged]
    stats["picks"] = len(idx)

    x, y = frame.to_original(cx[idx], cy[idx])
    picks = pd.DataFrame(
        {
            "x": x,
            "y": y,
            "score": score[idx],
            "diameter": diameter[idx] * frame.scale,
        }
    )
    return picks.reset_index(drop=True), stats


def sam_picks_file(
    masks_path: str, denoised_path: str, output_path: str, settings: PostprocessSettings
) -> tuple[pd.DataFrame, dict[str, Any]]:
    """Picks of one micrograph's SAM masks, written as RELION STAR (the frame comes from the
    denoised artifact)."""
    picks, stats = masks_to_picks(
        load_masks(masks_path), load_denoised(denoised_path).frame, settings
    )
    write_star(output_path, picks)
    return picks, stats


def raw_mask_picks(records: Sequence[MaskRecord], frame: Frame) -> pd.DataFrame:
    """One pick per SAM mask at its box centre, nothing filtered or merged (the "sam" row of
    the per-stage metrics: what the postprocessing is measured against); score = predicted
    IoU x stability, as after postprocessing."""
    if not records:
        return empty_coordinates()
    boxes = np.array([r.bbox for r in records], dtype=np.float64).reshape(-1, 4)
    score = np.array([r.predicted_iou * r.stability_score for r in records], dtype=np.float64)
    cx = boxes[:, 0] + boxes[:, 2] / 2.0
    cy = boxes[:, 1] + boxes[:, 3] / 2.0
    inside = (cx <= frame.content_width - 0.5) & (cy <= frame.content_height - 0.5)
    x, y = frame.to_original(cx[inside], cy[inside])
    diameter = 0.5 * (boxes[inside, 2] + boxes[inside, 3] + 2.0) * frame.scale
    picks = pd.DataFrame({"x": x, "y": y, "score": score[inside], "diameter": diameter})
    return picks.sort_values("score", ascending=False, kind="stable").reset_index(drop=True)


def sam_raw_picks_file(masks_path: str, denoised_path: str, output_path: str) -> pd.DataFrame:
    """Unfiltered SAM picks of one micrograph, written as RELION STAR."""
    picks = raw_mask_picks(load_masks(masks_path), load_denoised(denoised_path).frame)
    write_star(output_path, picks)
    return picks
