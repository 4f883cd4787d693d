"""From score maps to particle coordinates: peak finding, the blob-detector baseline, and the
final clean-up every picking stage shares (edge margin, exclusion mask, de-duplication).

All functions here work on the network canvas (see :class:`cryopick.denoise.Frame`) and return
picks in the micrograph file's pixel frame only at the very end, so there is one unit system.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
import pandas as pd
from scipy import ndimage
from scipy.spatial import cKDTree

from cryopick.denoise import Denoised, Frame, load_denoised
from cryopick.io import COORDINATE_COLUMNS, read_coordinates, write_coordinates, write_star
from cryopick.settings import config_values


def suppress_close(
    x: np.ndarray, y: np.ndarray, score: np.ndarray, min_distance: float
) -> np.ndarray:
    """Greedy non-maximum suppression: indices of points kept, best score first, so that no two
    kept points are closer than ``min_distance``. Ties are broken by position for determinism."""
    n = len(x)
    if n == 0:
        return np.zeros(0, dtype=np.int64)
    order = np.lexsort((x, y, -np.asarray(score)))
    if min_distance <= 0:
        return order
    points = np.column_stack([x, y])
    tree = cKDTree(points)
    suppressed = np.zeros(n, dtype=bool)
    kept = []
    for i in order:
        if suppressed[i]:
            continue
        kept.append(i)
        for j in tree.query_ball_point(points[i], r=min_distance - 1e-9):
            suppressed[j] = True
    return np.asarray(kept, dtype=np.int64)


def find_peaks(
    score: np.ndarray, min_distance: float, threshold: float, valid: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Local maxima of ``score`` above ``threshold``, at least ``min_distance`` apart.

    Candidates are the pixels equal to the maximum of their 3x3 neighbourhood (cheap, keeps
    plateaus); greedy suppression then enforces the distance exactly. Returns (x, y, value).
    """
    score = np.asarray(score, dtype=np.float32)
    local_max = score == ndimage.maximum_filter(score, size=3, mode="nearest")
    candidates = local_max & (score > threshold)
    if valid is not None:
        candidates &= valid
    rows, cols = np.nonzero(candidates)
    values = score[rows, cols]
    keep = suppress_close(cols.astype(float), rows.astype(float), values, min_distance)
    return cols[keep].astype(float), rows[keep].astype(float), values[keep].astype(float)


def edge_valid_mask(frame: Frame, margin: float) -> np.ndarray:
    """Canvas mask of allowed centres: inside the micrograph content and at least ``margin``
    network pixels from its border."""
    valid = np.zeros((frame.size, frame.size), dtype=bool)
    m = int(np.ceil(max(margin, 0)))
    h, w = frame.content_height, frame.content_width
    if h > 2 * m and w > 2 * m:
        valid[m : h - m, m : w - m] = True
    return valid


# ----------------------------------------------------------------------------------------------
# baseline: scale-matched difference of Gaussians
# ----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class BlobSettings:
    """Blob-detector baseline; lengths are in units of the particle diameter."""

    sigma_factor: float = 0.10  # DoG inner sigma = sigma_factor x diameter
    sigma_ratio: float = 1.6  # DoG outer sigma = ratio x inner sigma
    threshold: float = 1.5  # minimum response in units of its robust standard deviation
    min_distance: float = 0.6  # minimum distance between picks
    edge_margin: float = 1.2  # centres closer than this to the micrograph edge are dropped

    @classmethod
    def from_config(cls, config: dict) -> "BlobSettings":
        return cls(**config_values(cls, config, "baseline"))


def blob_response(
    image: np.ndarray, diameter: float, settings: BlobSettings, content: np.ndarray | None = None
) -> np.ndarray:
    """Difference-of-Gaussians response at the scale of ``diameter`` pixels, normalised to robust
    z-scores over the micrograph content, positive at dark blobs (the denoise stage makes
    particles dark whatever their contrast in the input)."""
    img = np.asarray(image, dtype=np.float32)
    sigma = max(settings.sigma_factor * diameter, 0.5)
    inner = cv2.GaussianBlur(img, (0, 0), sigma)
    outer = cv2.GaussianBlur(img, (0, 0), sigma * settings.sigma_ratio)
    response = outer - inner
    values = response[content] if content is not None else response
    median = float(np.median(values))
    mad = float(np.median(np.abs(values - median))) * 1.4826 or 1.0
    return (response - median) / mad


def pick_blobs(
    denoised: Denoised,
    diameter_px: float,
    settings: BlobSettings,
    exclusion: np.ndarray | None = None,
) -> pd.DataFrame:
    """Baseline picks for one denoised micrograph; ``diameter_px`` in network pixels."""
    frame = denoised.frame
    response = blob_response(denoised.image, diameter_px, settings, frame.content_mask)
    return picks_from_score_map(
        response,
        frame,
        diameter_px,
        threshold=settings.threshold,
        min_distance=settings.min_distance,
        edge_margin=settings.edge_margin,
        exclusion=exclusion,
    )


def picks_from_score_map(
    score: np.ndarray,
    frame: Frame,
    diameter_px: float,
    threshold: float,
    min_distance: float,
    edge_margin: float,
    exclusion: np.ndarray | None = None,
) -> pd.DataFrame:
    """Peaks of any score map (blob response, U-Net centre map, ...) as picks in the file frame.

    ``min_distance`` and ``edge_margin`` are in units of the particle diameter; ``exclusion`` is
    an optional canvas mask (True = no particle may be picked there, e.g. ice or carbon).
    """
    valid = edge_valid_mask(frame, edge_margin * diameter_px)
    if exclusion is not None:
        valid &= ~np.asarray(exclusion, dtype=bool)
    x, y, value = find_peaks(score, min_distance * diameter_px, threshold, valid)
    xo, yo = frame.to_original(x, y)
    return pd.DataFrame(
        {
            "x": xo,
            "y": yo,
            "score": value,
            "diameter": np.full(len(x), diameter_px * frame.scale),
        },
        columns=COORDINATE_COLUMNS,
    )


def diameter_in_network_pixels(denoised: Denoised, diameter_angstrom: float) -> float:
    return diameter_angstrom / denoised.pixel_size


def pick_baseline_file(
    denoised_path: str, output_path: str, settings: BlobSettings, diameter_angstrom: float
) -> pd.DataFrame:
    """Blob-detector picks for one denoised micrograph, written as RELION STAR."""
    denoised = load_denoised(denoised_path)
    picks = pick_blobs(denoised, diameter_in_network_pixels(denoised, diameter_angstrom), settings)
    write_star(output_path, picks)
    return picks


@dataclass(frozen=True)
class FinalSettings:
    """Clean-up applied to the chosen stage's picks; lengths in particle diameters."""

    min_score: float | None = None
    min_distance: float = 0.5
    edge_margin: float = 0.5

    @classmethod
    def from_config(cls, config: dict) -> "FinalSettings":
        # picks.source (which stage's picks these are) travels with the rule's settings
        return cls(**config_values(cls, config, "picks", accepted=("source",)))


def finalize_picks(
    picks: pd.DataFrame, frame: Frame, diameter_px: float, settings: FinalSettings
) -> pd.DataFrame:
    """Score threshold, edge margin and de-duplication in the file's pixel frame; sorted by
    figure of merit (best first) so that users can cut the list at any length."""
    picks = picks.copy()
    if settings.min_score is not None:
        picks = picks[picks["score"] >= settings.min_score]
    margin = settings.edge_margin * diameter_px
    inside = (
        (picks["x"] >= margin - 0.5)
        & (picks["x"] <= frame.original_width - 0.5 - margin)
        & (picks["y"] >= margin - 0.5)
        & (picks["y"] <= frame.original_height - 0.5 - margin)
    )
    picks = picks[inside]
    keep = suppress_close(
        picks["x"].to_numpy(float),
        picks["y"].to_numpy(float),
        picks["score"].to_numpy(float),
        settings.min_distance * diameter_px,
    )
    picks = picks.iloc[keep].reset_index(drop=True)
    picks["diameter"] = diameter_px
    return picks


def finalize_picks_file(
    stage_picks_path: str,
    denoised_path: str,
    output_path: str,
    settings: FinalSettings,
    diameter_angstrom: float,
) -> pd.DataFrame:
    denoised = load_denoised(denoised_path)
    diameter_px = diameter_angstrom / denoised.original_pixel_size
    picks = finalize_picks(
        read_coordinates(stage_picks_path), denoised.frame, diameter_px, settings
    )
    write_star(output_path, picks)
    return picks


def convert_picks_file(
    star_path: str, denoised_path: str, output_path: str, diameter_angstrom: float
) -> None:
    """Final picks in another format (CryoPPP .csv or EMAN .box, box side = diameter)."""
    denoised = load_denoised(denoised_path)
    write_coordinates(
        output_path, read_coordinates(star_path), diameter_angstrom / denoised.original_pixel_size
    )
