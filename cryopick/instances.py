"""Picks from a particle *probability* map (U-Net mask head, CRF-refined map): instance
separation of touching particles and a figure of merit per pick.

A thresholded probability map merges particles that touch into one blob, so "one pick per
connected component" under-counts exactly where particles are crowded. Three ways to split
blobs into particles are offered (``separation``), measured in benchmarks/stage_table.py:

- ``components``: one pick per component at its probability-weighted centroid (no
  separation; the reference that shows what separation is worth);
- ``distance``: peaks of the Euclidean distance transform of the mask, at least
  ``min_distance`` diameters apart (classical watershed seeds: one seed per convex lobe);
- ``centre``: peaks of the U-Net centre map *inside* the mask (the network's own per-particle
  centres, gated by the refined mask: a fusion of the two maps).

The figure of merit is the mean particle probability in a disc of a quarter diameter around the
centre (times the centre-map peak for ``centre``): higher means more likely a particle, in
[0, 1], so RELION users can threshold rlnAutopickFigureOfMerit. Picks closer than
``min_distance`` diameters are de-duplicated (best score kept) and centres within
``edge_margin`` diameters of the micrograph edge are dropped.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
import pandas as pd
from scipy import ndimage

from cryopick.denoise import Frame
from cryopick.io import COORDINATE_COLUMNS, InputError
from cryopick.picking import edge_valid_mask, find_peaks, suppress_close
from cryopick.settings import check_choice, config_values

SEPARATIONS = ("centre", "distance", "components")


@dataclass(frozen=True)
class MaskPickSettings:
    """Picking from a probability map; lengths in particle diameters."""

    threshold: float = 0.5  # particle where the probability exceeds this (CRF MAP labelling)
    separation: str = "centre"  # centre | distance | components
    centre_threshold: float = 0.05  # lowest centre-map peak kept (separation: centre)
    min_area: float = 0.15  # components smaller than this x the disc area are noise
    min_distance: float = 0.5  # de-duplication distance between picks
    edge_margin: float = 1.2  # centres closer than this to the micrograph edge are dropped

    @classmethod
    def from_config(cls, config: dict) -> "MaskPickSettings":
        settings = cls(**config_values(cls, config, "crf_picks"))
        check_choice(settings.separation, SEPARATIONS, "crf_picks.separation")
        if not 0 <= settings.threshold < 1:
            raise InputError(f"threshold must lie in [0, 1), got {settings.threshold}")
        return settings


def local_probability(probability: np.ndarray, diameter_px: float) -> np.ndarray:
    """Mean probability in a disc of a quarter diameter around every pixel: the per-pick
    evidence (a single pixel's value is noisy; a whole-particle mean is diluted at the rim)."""
    radius = max(int(round(diameter_px / 4)), 1)
    kernel = np.zeros((2 * radius + 1, 2 * radius + 1), np.float32)
    cv2.circle(kernel, (radius, radius), radius, 1.0, -1)
    kernel /= kernel.sum()
    return cv2.filter2D(
        np.asarray(probability, np.float32), -1, kernel, borderType=cv2.BORDER_REFLECT
    )


def particle_mask(
    probability: np.ndarray, frame: Frame, diameter_px: float, settings: MaskPickSettings
) -> np.ndarray:
    """Thresholded map on the micrograph content without components too small to be one."""
    mask = (np.asarray(probability) > settings.threshold) & frame.content_mask
    labels, n = ndimage.label(mask)
    if n == 0:
        return mask
    areas = np.bincount(labels.ravel(), minlength=n + 1)
    small = areas < settings.min_area * np.pi * (diameter_px / 2) ** 2
    small[0] = True
    return ~small[labels] & mask


def _component_centres(mask: np.ndarray, probability: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    labels, n = ndimage.label(mask)
    if n == 0:
        return np.zeros(0), np.zeros(0)
    centres = ndimage.center_of_mass(probability, labels, np.arange(1, n + 1))
    rows, cols = np.array(centres, dtype=float).reshape(-1, 2).T
    return cols, rows


def picks_from_probability(
    probability: np.ndarray,
    frame: Frame,
    diameter_px: float,
    settings: MaskPickSettings = MaskPickSettings(),
    centre: np.ndarray | None = None,
    exclusion: np.ndarray | None = None,
) -> pd.DataFrame:
    """Picks (file frame, best first) from a probability canvas; ``diameter_px`` in canvas
    pixels, ``centre`` the U-Net centre map (needed for ``separation: centre``)."""
    prob = np.asarray(probability, dtype=np.float32)
    mask = particle_mask(prob, frame, diameter_px, settings)
    valid = edge_valid_mask(frame, settings.edge_margin * diameter_px)
    if exclusion is not None:
        valid &= ~np.asarray(exclusion, dtype=bool)
    local = local_probability(prob, diameter_px)
    min_distance = settings.min_distance * diameter_px
    if settings.separation == "centre":
        if centre is None:
            raise InputError(
                "separation 'centre' needs the U-Net centre map (a model with a centre head)"
            )
        x, y, peak = find_peaks(centre, min_distance, settings.centre_threshold, valid & mask)
        score = np.sqrt(peak * local[y.astype(int), x.astype(int)])
    else:
        if settings.separation == "distance":
            distance = ndimage.distance_transform_edt(mask).astype(np.float32)
            # a light blur makes one peak per lobe instead of a ridge of equal maxima
            distance = cv2.GaussianBlur(distance, (0, 0), max(diameter_px / 12, 0.5))
            x, y, _ = find_peaks(distance, min_distance, 0.1 * diameter_px / 2, valid & mask)
        else:
            x, y = _component_centres(mask, prob)
            inside = valid[
                np.clip(np.rint(y).astype(int), 0, frame.size - 1),
                np.clip(np.rint(x).astype(int), 0, frame.size - 1),
            ]
            x, y = x[inside], y[inside]
        score = local[np.rint(y).astype(int), np.rint(x).astype(int)] if len(x) else np.zeros(0)
        keep = suppress_close(x, y, score, min_distance)
        x, y, score = x[keep], y[keep], score[keep]
    xo, yo = frame.to_original(x, y)
    picks = pd.DataFrame(
        {
            "x": xo,
            "y": yo,
            "score": np.asarray(score, float),
            "diameter": np.full(len(x), diameter_px * frame.scale),
        },
        columns=COORDINATE_COLUMNS,
    )
    return picks.sort_values("score", ascending=False, kind="stable").reset_index(drop=True)


def pick_crf_file(
    refined_path: str,
    maps_path: str,
    denoised_path: str,
    output_path: str,
    diameter_angstrom: float,
    settings: MaskPickSettings,
) -> pd.DataFrame:
    """Picks from one micrograph's CRF-refined probability (the U-Net's centre map for
    ``separation: centre``), written as RELION STAR."""
    from cryopick.denoise import load_denoised
    from cryopick.io import write_star
    from cryopick.probability_maps import load_prediction, load_probability

    maps, frame, _ = load_prediction(maps_path, require=("frame",))
    refined = load_probability(refined_path)
    denoised = load_denoised(denoised_path)
    if refined.shape != (frame.size, frame.size):
        raise InputError(
            f"{refined_path}: CRF map {refined.shape} does not match the U-Net "
            f"canvas {frame.size}^2 of {maps_path}"
        )
    picks = picks_from_probability(
        refined, frame, diameter_angstrom / denoised.pixel_size, settings, centre=maps.get("centre")
    )
    write_star(output_path, picks)
    return picks
