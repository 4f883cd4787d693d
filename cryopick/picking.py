"""From score maps to particle coordinates: peak finding, the blob-detector baseline, and the
final clean-up every picking stage shares (edge margin, exclusion mask, de-duplication).

All functions here work on the network canvas (see :class:`cryopick.denoise.Frame`) and return
picks in the micrograph file's pixel frame only at the very end, so there is one unit system.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
from scipy import ndimage, stats
from scipy.spatial import cKDTree

from cryopick.denoise import Denoised, Frame, load_denoised
from cryopick.io import COORDINATE_COLUMNS, read_coordinates, write_coordinates, write_star
from cryopick.settings import config_values

LOGGER = logging.getLogger(__name__)


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
    noise_check: bool = True  # no picks (and a WARNING) where the blobs look like pure noise

    @classmethod
    def from_config(cls, config: dict) -> "BlobSettings":
        return cls(**config_values(cls, config, "baseline"))


# A blob detector finds local maxima in anything, pure noise included. Two label-free signs of
# particles, either one enough: a heavy tail of strong blobs (of the peaks above 2 robust
# standard deviations, at least this fraction above 4; pure noise after denoising: 0.00-0.07,
# the labelled real and synthetic training sets: 0.12-0.90 with one exception, filtered
# renderings, whose strong blobs sit at 2-4), or more strong dark blobs than strong bright ones
# (peaks above 3 of the response and of its negation: noise is symmetric, so each strong peak
# is dark or bright by a coin toss; particles make dark ones significantly more common, hollow
# shells and thick-ice gradients excepted, which the tail catches).
# Measured on held-out data: benchmarks/results/baseline_noise_check.md.
STRONG_TAIL_FRACTION = 0.10
DARK_EXCESS_P_VALUE = 0.01


@dataclass(frozen=True)
class BlobSignal:
    """Label-free evidence that a micrograph's blobs are more than noise."""

    strong_tail_fraction: float  # of the peaks above 2, the fraction above 4
    strong_dark: int  # peaks above 3 of the response (dark blobs)
    strong_bright: int  # peaks above 3 of its negation (bright blobs)

    @property
    def dark_excess_p_value(self) -> float:
        """One-sided binomial p-value of this many dark blobs if dark and bright were equally
        likely, as they are in noise."""
        n = self.strong_dark + self.strong_bright
        return float(stats.binom.sf(self.strong_dark - 1, n, 0.5)) if n else 1.0

    @property
    def looks_like_noise(self) -> bool:
        return (
            self.strong_tail_fraction < STRONG_TAIL_FRACTION
            and self.dark_excess_p_value >= DARK_EXCESS_P_VALUE
        )

    def describe(self) -> str:
        return (
            f"strong-blob tail {self.strong_tail_fraction:.2f} < {STRONG_TAIL_FRACTION}, and "
            f"{self.strong_dark} strong dark against {self.strong_bright} strong bright blobs, "
            f"p = {self.dark_excess_p_value:.2g} >= {DARK_EXCESS_P_VALUE}"
        )


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


def blob_signal(
    response: np.ndarray, valid: np.ndarray, diameter_px: float, settings: BlobSettings
) -> BlobSignal:
    """How the DoG response's peaks differ from those of noise (see the constants above)."""
    distance = settings.min_distance * diameter_px
    _, _, dark = find_peaks(response, distance, 2.0, valid)
    _, _, bright = find_peaks(-response, distance, 3.0, valid)
    tail = float(np.mean(dark > 4.0)) if len(dark) else 0.0
    return BlobSignal(tail, int(np.sum(dark > 3.0)), len(bright))


def pick_blobs(
    denoised: Denoised,
    diameter_px: float,
    settings: BlobSettings,
    exclusion: np.ndarray | None = None,
    name: str = "micrograph",
) -> pd.DataFrame:
    """Baseline picks for one denoised micrograph; ``diameter_px`` in network pixels. No picks,
    with a WARNING naming ``name``, where the noise check finds no sign of particles."""
    frame = denoised.frame
    response = blob_response(denoised.image, diameter_px, settings, frame.content_mask)
    valid = edge_valid_mask(frame, settings.edge_margin * diameter_px)
    if settings.noise_check:
        signal = blob_signal(response, valid, diameter_px, settings)
        if signal.looks_like_noise:
            LOGGER.warning(
                "%s: no baseline picks: its blobs look like pure noise (%s); check "
                "particle_diameter and pixel_size, or set baseline.noise_check: false",
                name,
                signal.describe(),
            )
            return pd.DataFrame(columns=COORDINATE_COLUMNS)
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
    diameter_px = diameter_in_network_pixels(denoised, diameter_angstrom)
    name = Path(denoised_path).stem
    picks = pick_blobs(denoised, diameter_px, settings, name=name)
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
