"""Where no particle may be picked, and what each micrograph is worth.

A class per canvas pixel (the denoise stage's frame): carbon support and its edge, ice
contamination and aggregates, thick ice, the stripe artefacts along micrograph borders
(replicated pixels left by motion correction or by the tools that filtered the file),
crystalline ice, and areas without ice (empty or broken holes, cracks). Measured signals,
not a learned head, so that the stage carries over to specimens and renderings nobody trained
on:

- dark areas: the micrograph smoothed at the particle's scale, in robust standard deviations
  below its own ice level (measured where the particles are, :func:`where_particles_are`;
  in the brighter of two separate levels where too few particles are); sharp-edged ones
  following the arc of a hole are carbon, those far darker than the ice contamination or
  aggregates (edges at half their local depth), the rest thick ice; areas as far above the
  level hold no ice (empty);
- border bands: columns (rows) from each edge in which the image hardly changes along the
  band's stripes and strongly across them;
- crystalline ice: tiles of the full-resolution micrograph whose power spectrum has a spot or
  ring at the hexagonal-ice spacings (3.90, 3.67, 3.44 A) well above its neighbouring
  frequencies, where the pixel size resolves a spacing; within them, the lattice outlined by
  the energy around its spots, folded back from its two defocus ghosts onto the grain with
  the defocus read from the Thon rings (:func:`cryopick.ctf.estimate_defocus`).

:func:`micrograph_quality` turns a map and the micrograph's picks into the verdict row of
``micrographs_quality.tsv``.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import asdict, dataclass
from pathlib import Path

import cv2
import numpy as np

from cryopick.ctf import CTFParams, electron_wavelength, estimate_defocus
from cryopick.denoise import Frame, bin_to_frame, load_denoised
from cryopick.io import InputError, atomic_path, read_coordinates, read_micrograph, write_star
from cryopick.picking import BlobSettings, blob_response, find_peaks
from cryopick.settings import config_values

CLASSES: dict[int, str] = {
    1: "carbon",
    2: "contamination",
    3: "thick_ice",
    4: "border",
    5: "crystalline_ice",
    6: "empty",
}
CODES: dict[str, int] = {name: code for code, name in CLASSES.items()}
ICE_SPACINGS_A = (3.90, 3.67, 3.44)  # hexagonal ice (100), (002), (101)
VERDICTS = ("good", "contaminated", "crystalline_ice", "carbon_dominated", "empty")


@dataclass(frozen=True)
class ExclusionSettings:
    """How areas are found; lengths in particle diameters unless the name says otherwise."""

    smoothing: float = 0.4  # sigma of the smoothing that averages particles away
    background: float = 0.0  # sigma of a slow ice gradient removed before judging darkness
    # (0: none; a removal that slow still eats into large carbon areas)
    dark_z: float = 5.0  # robust standard deviations below the ice level that mark an area
    min_area: float = 2.0  # particle areas: smaller dark spots are particles, not areas
    carbon_fraction: float = 0.03  # of the micrograph: a dark area this large reaching the
    # micrograph's edge is carbon support
    sharp_edge: float = 0.5  # edge sharpness (edge_sharpness) of film and contamination;
    # softer areas are thick ice
    contamination_z: float = 18.0  # an area this dark at its median is contamination (or an
    # aggregate), a shallower one thick ice
    bright_z: float = 5.0  # robust standard deviations above the ice level: no ice there
    border_ratio: float = 3.0  # mean gradient across / along the stripes of a border band
    max_border: float = 0.1  # widest border band, fraction of the side
    ice_tile: int = 512  # file pixels per crystalline-ice tile
    ice_spot: float = 20.0  # peak power at an ice spacing over the peak just beside it
    ice_resolution: float = 0.25  # spatial sigma of the lattice energy, particle diameters
    lattice_ratio: float = 8.0  # lattice energy over that between the spots: crystalline
    lattice_defocus: float = 3.5  # um, largest defocus: how far a lattice's signal moves
    anchor_z: float = 4.0  # blob response (robust z) of a particle that marks ice for the level
    anchor_blobs: int = 10  # fewer such blobs: the ice level from all the usable area
    two_levels: float = 6.0  # without anchoring particles, a field of two levels this many
    # robust spreads of the brighter apart has its ice level from the brighter one
    local_edge: float = 0.5  # diameters: a contaminant's edge where it is half as dark as
    # its darkest within this reach (a pale lobe of a dark contaminant is contaminant too)
    ctf_fit: float = 0.33  # Thon-ring fit (cryopick.ctf.estimate_defocus) from which a
    # lattice's defocus ghosts are folded back onto its grain

    @classmethod
    def from_config(cls, config: dict) -> "ExclusionSettings":
        """The map settings (cryopick.workflow.plan.exclusion_map_settings gives them)."""
        return cls(**config_values(cls, config, "exclusion"))


@dataclass
class ExclusionMap:
    """Class codes (uint8, 0 = usable) on the canvas of ``frame``, and what was measured."""

    codes: np.ndarray
    frame: Frame
    pixel_size: float  # A per canvas pixel
    stats: dict

    def mask(self, classes: tuple[str, ...] | None = None) -> np.ndarray:
        """Where picks are excluded (bool, canvas): pixels of any of ``classes`` (all)."""
        classes = tuple(CLASSES.values()) if classes is None else tuple(classes)
        unknown = set(classes) - set(CODES)
        if unknown:
            raise InputError(f"exclusion classes: unknown {sorted(unknown)}; known: {list(CODES)}")
        return np.isin(self.codes, [CODES[c] for c in classes])

    def fractions(self) -> dict[str, float]:
        """Share of the micrograph's content per class."""
        content = self.codes[: self.frame.content_height, : self.frame.content_width]
        return {name: float(np.mean(content == code)) for code, name in CLASSES.items()}


def save_exclusion(path: str | os.PathLike, exclusion: ExclusionMap) -> None:
    """One compressed .npz per micrograph (the codes compress to a few kB)."""
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as handle:
            np.savez_compressed(
                handle,
                codes=exclusion.codes.astype(np.uint8),
                frame=json.dumps(asdict(exclusion.frame)),
                pixel_size=float(exclusion.pixel_size),
                stats=json.dumps(exclusion.stats),
            )


def load_exclusion(path: str | os.PathLike) -> ExclusionMap:
    with np.load(Path(path), allow_pickle=False) as data:
        return ExclusionMap(
            codes=data["codes"],
            frame=Frame(**json.loads(str(data["frame"]))),
            pixel_size=float(data["pixel_size"]),
            stats=json.loads(str(data["stats"])),
        )


# ----------------------------------------------------------------------------------------------
# signals
# ----------------------------------------------------------------------------------------------


def smooth(image: np.ndarray, sigma: float) -> np.ndarray:
    """Gaussian smoothing; a wide one on a downsampled copy (same result to well under a
    percent of the contrast, at a fraction of the cost of a kernel of thousands of pixels)."""
    if sigma <= 6.0:
        return cv2.GaussianBlur(image, (0, 0), sigma)
    factor = sigma / 3.0
    h, w = image.shape
    small = cv2.resize(
        image, (max(1, round(w / factor)), max(1, round(h / factor))), interpolation=cv2.INTER_AREA
    )
    small = cv2.GaussianBlur(small, (0, 0), 3.0)
    return cv2.resize(small, (w, h), interpolation=cv2.INTER_LINEAR)


def robust_spread(values: np.ndarray) -> tuple[float, float]:
    """(median, 1.4826 x median absolute deviation) of ``values``."""
    centre = float(np.median(values))
    return centre, 1.4826 * float(np.median(np.abs(values - centre)))


def ice_level(values: np.ndarray, clip: float = 3.0, rounds: int = 5) -> tuple[float, float]:
    """(level, spread) of the ice: the median and robust spread of the values, recomputed
    without those more than ``clip`` spreads below it. Carbon or thick ice covering a third of
    a micrograph would otherwise pull the level down and widen the spread until it hid
    itself."""
    kept = values
    centre, spread = robust_spread(kept)
    for _ in range(rounds):
        kept = values[values >= centre - clip * spread]
        if kept.size < 0.3 * values.size:
            break
        new = robust_spread(kept)
        if new == (centre, spread):
            break
        centre, spread = new
    return centre, spread


def two_level_split(values: np.ndarray, separation: float, share: float = 0.15) -> float | None:
    """The Otsu threshold between a dark and a bright population of ``values`` when the field
    is clearly two levels (each at least ``share`` of it, the medians ``separation`` robust
    spreads of the bright population apart), else None. Ice (smoothed at the particle scale) is
    one tight level; the dark population may be several (a contaminant's dense core and its
    paler lobes), so only the bright one's spread counts."""
    low, high = np.percentile(values, [0.5, 99.5])
    if high <= low:
        return None
    scaled = np.clip((values - low) / (high - low) * 255, 0, 255).astype(np.uint8)
    threshold, _ = cv2.threshold(scaled.reshape(-1, 1), 0, 255, cv2.THRESH_BINARY + cv2.THRESH_OTSU)
    split = float(low + threshold / 255 * (high - low))
    dark, bright = values[values < split], values[values >= split]
    if min(dark.size, bright.size) < share * values.size:
        return None
    (dark_level, _), (bright_level, bright_spread) = robust_spread(dark), robust_spread(bright)
    if bright_level - dark_level < separation * max(bright_spread, 1e-6):
        return None
    return split


def edge_sharpness(
    region: np.ndarray, gradient: np.ndarray, depth: float, diameter_px: float
) -> float:
    """How abrupt an area's edge is: the median gradient along its boundary, in units of its
    depth per particle diameter (a step smoothed at 0.4 diameters gives about 1: carbon film,
    contamination; a thickness change spread over several diameters well under 0.5)."""
    inner = cv2.erode(region.astype(np.uint8), np.ones((3, 3), np.uint8)).astype(bool)
    boundary = region & ~inner
    if not boundary.any() or depth >= 0:
        return 0.0
    return float(np.median(gradient[boundary]) * diameter_px / abs(depth))


def _fit_circle(xs: np.ndarray, ys: np.ndarray) -> tuple[float, float, float]:
    """Algebraic (Kasa) circle fit, x^2 + y^2 = a x + b y + c: centre and radius."""
    design = np.column_stack([xs, ys, np.ones_like(xs)])
    (a, b, c), *_ = np.linalg.lstsq(design, xs * xs + ys * ys, rcond=None)
    cx, cy = a / 2, b / 2
    return cx, cy, math.sqrt(max(c + cx * cx + cy * cy, 0.0))


def follows_a_hole_edge(region: np.ndarray, box: tuple[int, int, int, int]) -> bool:
    """Whether an area's edge is an arc of a circle at least 0.65 x the micrograph's side in
    radius, as the edge of carbon film round its hole (holes are 1-2 um across, so their
    edges span micrographs); a contaminant's edge curves tighter (at 1 A per pixel the
    largest reach half the side), and merged contaminants follow no single circle.

    The edge is the area's outer boundary away from the micrograph's sides (``box``: top,
    bottom, left, right). The circle is the one through most of it (RANSAC over three-point
    circles, seeded, then refitted to its points): particles crowding the edge, notches and a
    contaminant touching the film leave the hole's arc standing. An edge too short to fit, or
    nearly straight, counts as a film edge."""
    top, bottom, left, right = box
    side = max(bottom - top, right - left)
    contours, _ = cv2.findContours(
        region.astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE
    )  # the outer edge only: holes inside the film (its texture, particles on it) are no edge
    points = np.concatenate([c.reshape(-1, 2) for c in contours]) if contours else np.zeros((0, 2))
    xs, ys = points[:, 0].astype(float), points[:, 1].astype(float)
    away = (ys > top + 2) & (ys < bottom - 3) & (xs > left + 2) & (xs < right - 3)
    xs, ys = xs[away], ys[away]
    if len(xs) < 20:
        return True
    tolerance = max(2.0, 0.01 * side)
    rng = np.random.default_rng(0)
    best = np.zeros(len(xs), bool)
    for _ in range(200):
        pick = rng.choice(len(xs), 3, replace=False)
        cx, cy, radius = _fit_circle(xs[pick], ys[pick])
        if radius > 5 * side:  # three points nearly in line: a straight film edge
            inliers = _line_inliers(xs, ys, pick, tolerance)
        else:
            inliers = np.abs(np.hypot(xs - cx, ys - cy) - radius) <= tolerance
        if inliers.sum() > best.sum():
            best = inliers
    if best.mean() < 0.35:
        return False
    cx, cy, radius = _fit_circle(xs[best], ys[best])
    return bool(radius >= 0.65 * side)


def _line_inliers(xs, ys, pick, tolerance: float) -> np.ndarray:
    """Points within ``tolerance`` of the line through the first and last of ``pick``."""
    x0, y0, x1, y1 = xs[pick[0]], ys[pick[0]], xs[pick[2]], ys[pick[2]]
    length = math.hypot(x1 - x0, y1 - y0)
    if length == 0:
        return np.zeros(len(xs), bool)
    distance = np.abs((x1 - x0) * (y0 - ys) - (x0 - xs) * (y1 - y0)) / length
    return distance <= tolerance


def dark_areas(
    canvas: np.ndarray,
    content: np.ndarray,
    diameter_px: float,
    settings: ExclusionSettings,
    level_from: np.ndarray | None = None,
    anchored: bool = True,
) -> tuple[np.ndarray, dict]:
    """Class codes of carbon, contamination and thick ice (0 elsewhere) on ``canvas`` (float,
    particles dark), and the darkness measured.

    The smoothed image minus its slow gradient is compared with its median in robust standard
    deviations of the same image (its median absolute deviation: robust while less than half
    the micrograph is excluded), floored by what the pixels' noise alone gives at this scale
    (the smoothing of a shuffled copy), so that a flat, clean field is not cut into areas.
    ``level_from``: where the ice level may be measured (default: all the content);
    ``anchored``: whether that is where particles are (:func:`where_particles_are`)."""
    fill = float(np.median(canvas[content]))
    image = np.where(content, canvas, fill).astype(np.float32)
    sigma = max(settings.smoothing * diameter_px, 1.0)
    level = smooth(image, sigma)
    if settings.background > 0:  # 0: no gradient removed
        level -= smooth(image, max(settings.background * diameter_px, 2.0))
    reference = content if level_from is None else content & level_from
    if reference.sum() < 0.1 * content.sum():  # too little left to say what the ice is
        reference = content
    if not anchored:  # no particles say where the ice is: a field of two levels (a
        # contaminant or carbon over most of it) has its ice in the brighter one
        split = two_level_split(level[reference], settings.two_levels)
        if split is not None:
            reference = reference & (level >= split)
    centre, spread = ice_level(level[reference])
    rng = np.random.default_rng(0)
    shuffled = image.copy()
    shuffled[content] = rng.permutation(shuffled[content])
    noise = float(np.std(smooth(shuffled, sigma)[content]))
    unit = max(spread, noise, 1e-6)
    z = (level - centre) / unit
    z[~content] = 0.0
    gradient = (
        np.hypot(cv2.Sobel(z, cv2.CV_32F, 1, 0, ksize=3), cv2.Sobel(z, cv2.CV_32F, 0, 1, ksize=3))
        / 8.0
    )
    dark = (z < -settings.dark_z) & content
    codes = np.zeros(canvas.shape, np.uint8)
    count, labels, boxes, _ = cv2.connectedComponentsWithStats(dark.astype(np.uint8), 8)
    particle_area = math.pi * (diameter_px / 2) ** 2
    content_area = float(content.sum())
    rows, cols = np.nonzero(content.any(1))[0], np.nonzero(content.any(0))[0]
    top, bottom = int(rows.min()), int(rows.max()) + 1
    left, right = int(cols.min()), int(cols.max()) + 1
    areas = []
    for label in range(1, count):
        x, y, bw, bh, area = (int(v) for v in boxes[label])
        if area < settings.min_area * particle_area:
            continue
        region = labels == label
        # a deep area's edge where it is half as dark as its inside: the smoothing spreads a
        # step over a particle's width, and the edge of a hole is where particles crowd
        depth = float(np.median(z[region]))
        whole = region.copy()
        region &= z < min(-settings.dark_z, 0.5 * depth)
        area = int(region.sum())
        if area < settings.min_area * particle_area:
            continue
        darkest = float(z[region].min())
        touches_edge = x <= left + 1 or y <= top + 1 or x + bw >= right - 1 or y + bh >= bottom - 1
        sharpness = edge_sharpness(region, gradient, depth, diameter_px)
        large = area >= settings.carbon_fraction * content_area
        if (
            sharpness >= settings.sharp_edge
            and touches_edge
            and large
            and follows_a_hole_edge(region, (top, bottom, left, right))
        ):
            name = "carbon"
        else:  # contaminants are crystals and lumps far thicker than the ice around them
            name = "contamination" if depth <= -settings.contamination_z else "thick_ice"
            region = whole & _half_local_depth(z, whole, settings, diameter_px)
        codes[region] = CODES[name]
        areas.append(
            {
                "class": name,
                "area": area / content_area,
                "darkest_z": darkest,
                "edge_sharpness": sharpness,
            }
        )
    codes, bright = _bright_areas(codes, z, content, particle_area, settings)
    return codes, {"dark_unit": unit, "dark_areas": areas + bright}


def _half_local_depth(
    z: np.ndarray, region: np.ndarray, settings: ExclusionSettings, diameter_px: float
) -> np.ndarray:
    """Where an area is at least half as dark as its darkest within ``local_edge`` diameters:
    a contaminant's edge at half its local depth, so that a pale lobe of a dense contaminant
    keeps its own edge instead of being cut at half the dense part's depth."""
    radius = max(1, int(round(settings.local_edge * diameter_px)))
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * radius + 1, 2 * radius + 1))
    darkest = cv2.erode(np.where(region, z, 0).astype(np.float32), kernel)
    return z < np.minimum(-settings.dark_z, 0.5 * darkest)


def _bright_areas(codes, z, content, particle_area: float, settings: ExclusionSettings):
    """Areas well above the ice level: no ice at all (an empty or broken hole, a crack), so
    nothing to pick. Marked "empty" where no dark area is; edges at half height as above."""
    bright = (z > settings.bright_z) & content & (codes == 0)
    count, labels, _, _ = cv2.connectedComponentsWithStats(bright.astype(np.uint8), 8)
    content_area = float(content.sum())
    found = []
    for label in range(1, count):
        region = labels == label
        if region.sum() < settings.min_area * particle_area:
            continue
        height = float(np.median(z[region]))
        region &= z > max(settings.bright_z, 0.5 * height)
        if region.sum() < settings.min_area * particle_area:
            continue
        codes[region] = CODES["empty"]
        found.append(
            {
                "class": "empty",
                "area": float(region.sum()) / content_area,
                "brightest_z": float(z[region].max()),
            }
        )
    return codes, found


def border_bands(image: np.ndarray, settings: ExclusionSettings) -> dict[str, int]:
    """Width in file pixels of the stripe band along each edge ("left", "right", "top",
    "bottom"): the run of columns (rows) from the edge whose mean gradient across the stripes
    is ``border_ratio`` x that along them."""
    image = np.asarray(image, np.float32)
    h, w = image.shape
    out = {}
    for edge in ("left", "right", "top", "bottom"):
        horizontal = edge in ("left", "right")  # stripes of a left/right band run along x
        depth = max(2, int(settings.max_border * (w if horizontal else h)))
        band = {
            "left": image[:, :depth],
            "right": image[:, ::-1][:, :depth],
            "top": image[:depth, :].T,
            "bottom": image[::-1, :][:depth, :].T,
        }[edge]
        # band: rows = along the edge, columns = away from it; stripes run away from the edge
        along = np.abs(np.diff(band, axis=1)).mean(axis=0)  # along the stripes
        across = np.abs(np.diff(band, axis=0)).mean(axis=0)[:-1]  # from stripe to stripe
        ratio = across / np.maximum(along, 1e-6)
        out[edge] = _striped_run(ratio >= settings.border_ratio)
    return out


def _striped_run(striped: np.ndarray, share: float = 0.6) -> int:
    """Width of the border band: the widest run from the edge, ending on a striped column, of
    which at least ``share`` is striped (the outermost pixels are often a ramp, not stripes)."""
    striped = np.asarray(striped, bool)
    if not striped.any():
        return 0
    fraction = np.cumsum(striped) / np.arange(1, len(striped) + 1)
    ends = np.nonzero(striped & (fraction >= share))[0]
    width = int(ends.max()) + 1 if len(ends) else 0
    return width if width >= 2 else 0


def _border_codes(bands: dict[str, int], frame: Frame) -> np.ndarray:
    """The border bands (file pixels) as a canvas mask."""
    mask = np.zeros((frame.size, frame.size), bool)
    ch, cw = frame.content_height, frame.content_width
    left = math.ceil(bands["left"] / frame.scale_x)
    right = math.ceil(bands["right"] / frame.scale_x)
    top = math.ceil(bands["top"] / frame.scale_y)
    bottom = math.ceil(bands["bottom"] / frame.scale_y)
    mask[:ch, :left] = True
    mask[:ch, max(cw - right, 0) : cw] = True
    mask[:top, :cw] = True
    mask[max(ch - bottom, 0) : ch, :cw] = True
    return mask


def _ice_rings(size: int, pixel_size: float, spacings: list[float]):
    """Frequencies (cycles per A) of a ``size`` x ``size`` rfft2 and, per spacing, the ring
    within 1.2 % of it and the annuli of the same width just inside and outside it.

    Not searched: the two axes (detector rows and columns, replicated border stripes put lines
    there) and multiples of 1/8 cycle per pixel on both axes (JPEG's 8 x 8 blocks; some fall on
    the ice rings at 1.77 A per pixel)."""
    freq = np.fft.fftfreq(size)  # cycles per pixel
    fy, fx = np.meshgrid(freq, np.fft.rfftfreq(size), indexing="ij")
    radius = np.hypot(fx, fy) / pixel_size
    step = 1.0 / size
    off_axes = (np.abs(fx) > 2.5 * step) & (np.abs(fy) > 2.5 * step)
    off_grid = off_axes & (
        (np.abs(fx * 8 - np.round(fx * 8)) > 1.5 * step * 8)
        | (np.abs(fy * 8 - np.round(fy * 8)) > 1.5 * step * 8)
    )
    rings = []
    for d in spacings:
        f0, df = 1.0 / d, 0.012 / d
        ring = (np.abs(radius - f0) <= df) & off_grid
        inner = (np.abs(radius - (f0 - 3 * df)) <= df) & off_grid
        outer = (np.abs(radius - (f0 + 3 * df)) <= df) & (radius < 0.5 / pixel_size) & off_grid
        rings.append((ring, inner, outer))
    return (fy, fx), rings


def resolved_spacings(pixel_size: float) -> list[float]:
    """The hexagonal-ice spacings a pixel size resolves (below 97 % of Nyquist)."""
    return [d for d in ICE_SPACINGS_A if 1.0 / d < 0.97 * 0.5 / pixel_size]


def _tile_power(image: np.ndarray, r: int, c: int, size: int, window: np.ndarray) -> np.ndarray:
    patch = np.asarray(image[r * size : (r + 1) * size, c * size : (c + 1) * size], np.float32)
    patch = (patch - patch.mean()) * window
    return np.abs(np.fft.rfft2(patch)) ** 2


def _ring_reference(power: np.ndarray, inner, outer) -> float:
    """The strongest power in the annuli just inside and outside a ring (never 0)."""
    reference = max(float(power[inner].max()), float(power[outer].max()) if outer.any() else 0.0)
    return max(reference, 1e-12)


def _ring_ratio(power: np.ndarray, ring, inner, outer) -> float:
    return float(power[ring].max()) / _ring_reference(power, inner, outer)


def ice_spot_scores(
    image: np.ndarray, pixel_size: float, tile: int = 512
) -> tuple[np.ndarray, list[float]]:
    """Per tile of ``tile`` file pixels: the strongest power-spectrum peak within 1.2 % of a
    resolvable hexagonal-ice spacing over the strongest in the annuli of the same width just
    inside and outside it (about 1 for amorphous ice and for any smooth or filtered spectrum,
    far above for crystalline ice or lattice-fringed contamination); NaN everywhere when the
    pixel size resolves no spacing. Also the spacings used."""
    spacings = resolved_spacings(pixel_size)
    h, w = image.shape
    rows, cols = max(h // tile, 1), max(w // tile, 1)
    scores = np.full((rows, cols), np.nan, np.float32)
    if not spacings:
        return scores, []
    size = min(tile, h, w)
    _, rings = _ice_rings(size, pixel_size, spacings)
    window = np.outer(np.hanning(size), np.hanning(size)).astype(np.float32)
    for r in range(rows):
        for c in range(cols):
            if (r + 1) * size > h or (c + 1) * size > w:
                continue
            power = _tile_power(image, r, c, size, window)
            scores[r, c] = max(_ring_ratio(power, *ring) for ring in rings)
    return scores, spacings


def _tile_spots(
    power: np.ndarray, frequencies, rings, threshold: float, most: int = 6
) -> list[tuple[float, float]]:
    """The lattice spots of one tile's spectrum (fy, fx in cycles per pixel): ring bins at
    least ``threshold`` x the ring's reference, strongest first, one per 3-bin neighbourhood."""
    fy, fx = frequencies
    candidates = []
    for ring, inner, outer in rings:
        strong = ring & (power >= threshold * _ring_reference(power, inner, outer))
        candidates += [(float(power[i, j]), i, j) for i, j in zip(*np.nonzero(strong))]
    spots: list[tuple[int, int]] = []
    size = power.shape[0]
    for _, i, j in sorted(candidates, reverse=True):
        near = any(min(abs(i - a), size - abs(i - a)) <= 3 and abs(j - b) <= 3 for a, b in spots)
        if not near:
            spots.append((i, j))
        if len(spots) == most:
            break
    return [(float(fy[i, j]), float(fx[i, j])) for i, j in spots]


def _spectrum_at(spectrum: np.ndarray, ky: np.ndarray, kx: np.ndarray, ny: int) -> np.ndarray:
    """Full 2D spectrum values at integer bins (ky, kx) from an rfft2 (conjugate symmetry
    for kx < 0)."""
    negative = kx < 0
    rows = np.where(negative, -ky, ky) % ny
    cols = np.abs(kx)
    values = spectrum[rows, cols]
    return np.where(negative, np.conj(values), values)


def _envelope_energy(
    spectrum: np.ndarray, shape: tuple[int, int], fy: float, fx: float, sigma_f: float
) -> np.ndarray:
    """Energy of the image's component around frequency (fy, fx) (cycles per pixel) under a
    Gaussian band of ``sigma_f``: the squared envelope, sampled on a coarse grid over the whole
    image (the band cropped out of the spectrum and inverse-transformed on its own, so it
    costs a small FFT whatever the micrograph's size)."""
    ny, nx = shape
    half_y = max(2, int(math.ceil(4 * sigma_f * ny)))
    half_x = max(2, int(math.ceil(4 * sigma_f * nx)))
    cy, cx = int(round(fy * ny)), int(round(fx * nx))
    dy = np.arange(-half_y, half_y + 1)
    dx = np.arange(-half_x, half_x + 1)
    ky, kx = np.meshgrid(cy + dy, cx + dx, indexing="ij")
    band = _spectrum_at(spectrum, ky, kx, ny)
    weight = np.exp(
        -0.5 * (((ky / ny - fy) / sigma_f) ** 2 + ((kx / nx - fx) / sigma_f) ** 2)
    ).astype(np.float32)
    envelope = np.fft.ifft2(np.fft.ifftshift(band * weight))
    return (np.abs(envelope) ** 2).astype(np.float32)


def lattice_areas(
    image: np.ndarray,
    pixel_size: float,
    scores: np.ndarray,
    frame: Frame,
    diameter_px: float,
    settings: "ExclusionSettings",
    defocus: float | None = None,
) -> np.ndarray:
    """Where the crystalline tiles' lattice is, on the canvas (bool).

    For each spot of each tile whose score passes ``ice_spot``: the energy of the image around
    that spot against the energy at the same spacing turned 20, 30 and 40 degrees (between the
    spots of a hexagonal lattice: amorphous ice and noise have the same energy there), resolved
    to ``ice_resolution`` particle diameters, passing ``lattice_ratio`` where the lattice has
    at least half its amplitude. Within a tile and its neighbours, a pixel is crystalline
    where three of the tile's spots agree (all, if it has fewer): defocus throws each spot's
    image up to lambda dz / d along that spot's own direction, so the halos of different
    directions hardly overlap beyond the grain (on a development set, seeds 5000+: requiring
    two lost 10 % of the particles beside grains, three 3 %). Particles between contaminants
    and beside a grain stay usable, which a whole tile would not allow.

    With the micrograph's ``defocus`` (A, from its Thon rings), each spot's energy is first
    folded back onto its grain (:func:`_folded`): defocus images a grain's fringes twice,
    shifted by +s and -s along the spot's direction, so without it the mask is the grain's
    ghosts (and the particles beside them) rather than the grain."""
    mask = np.zeros((frame.size, frame.size), bool)
    flagged = np.nan_to_num(scores) >= settings.ice_spot
    if not flagged.any():
        return mask
    tile = settings.ice_tile
    h, w = image.shape
    size = min(tile, h, w)
    frequencies, rings = _ice_rings(size, pixel_size, resolved_spacings(pixel_size))
    window = np.outer(np.hanning(size), np.hanning(size)).astype(np.float32)
    spots: list[tuple[float, float]] = []
    tile_spots: dict[tuple[int, int], list[int]] = {}
    for r, c in zip(*np.nonzero(flagged)):
        power = _tile_power(image, r, c, size, window)
        indices = []
        for spot in _tile_spots(power, frequencies, rings, 0.25 * settings.ice_spot):
            near = [
                i
                for i, (a, b) in enumerate(spots)
                if np.hypot(spot[0] - a, spot[1] - b) <= 2.0 / size
            ]
            if not near:
                spots.append(spot)
                near = [len(spots) - 1]
            if near[0] not in indices:
                indices.append(near[0])
        tile_spots[(int(r), int(c))] = indices
    if not spots:
        return mask
    image = np.asarray(image, np.float32)
    spectrum = np.fft.rfft2(image - image.mean())
    sigma_f = 1.0 / (2 * math.pi * max(settings.ice_resolution * diameter_px, 2.0))
    spot_masks = [
        _spot_mask(spectrum, (h, w), spot, sigma_f, diameter_px, settings.lattice_ratio, shift)
        for spot, shift in zip(spots, _ghost_shifts(spots, defocus, pixel_size))
    ]
    grid_h, grid_w = spot_masks[0].shape
    found = np.zeros((grid_h, grid_w), bool)
    for (r, c), indices in tile_spots.items():
        if not indices:
            continue
        agree = np.sum([spot_masks[i] for i in indices], axis=0) >= min(3, len(indices))
        y0, y1 = int((r - 1) * size * grid_h / h), math.ceil((r + 2) * size * grid_h / h)
        x0, x1 = int((c - 1) * size * grid_w / w), math.ceil((c + 2) * size * grid_w / w)
        y0, x0 = max(y0, 0), max(x0, 0)
        found[y0:y1, x0:x1] |= agree[y0:y1, x0:x1]
    on_canvas = cv2.resize(
        found.astype(np.float32),
        (frame.content_width, frame.content_height),
        interpolation=cv2.INTER_LINEAR,
    )
    mask[: frame.content_height, : frame.content_width] = on_canvas >= 0.5
    return mask


def _ghost_shifts(
    spots: list[tuple[float, float]], defocus: float | None, pixel_size: float
) -> list[tuple[float, float]]:
    """How far (file pixels, y and x) defocus moves each lattice spot's fringes: the gradient
    of the aberration phase over 2 pi, lambda (dz - Cs lambda^2 g^2) g, with the voltage and
    Cs of :class:`cryopick.ctf.CTFParams` (300 kV, 2.7 mm); none without a defocus."""
    if defocus is None:
        return [(0.0, 0.0)] * len(spots)
    optics = CTFParams()
    wavelength, cs = optics.wavelength, optics.cs_mm * 1e7
    shifts = []
    for fy, fx in spots:  # cycles per pixel; g = f / pixel_size cycles per A
        g2 = (fy * fy + fx * fx) / pixel_size**2
        reach = wavelength * (defocus - cs * wavelength**2 * g2) / pixel_size**2
        shifts.append((reach * fy, reach * fx))
    return shifts


def _shifted(grid: np.ndarray, dy: float, dx: float) -> np.ndarray:
    """``grid`` moved by (dy, dx) cells (edges replicated)."""
    matrix = np.float32([[1, 0, dx], [0, 1, dy]])
    size = (grid.shape[1], grid.shape[0])
    return cv2.warpAffine(
        grid, matrix, size, flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE
    )


def _folded(energy: np.ndarray, shift: tuple[float, float]) -> np.ndarray:
    """A spot's energy where both of its defocus ghosts agree (``shift``: cells): a grain at
    x is imaged at x + s and at x - s, so the grain is where the energy at both is high."""
    sy, sx = shift
    if abs(sy) < 0.5 and abs(sx) < 0.5:
        return energy
    return np.minimum(_shifted(energy, -sy, -sx), _shifted(energy, sy, sx))


def _spot_mask(
    spectrum, shape, spot, sigma_f: float, diameter_px, ratio, shift=(0.0, 0.0)
) -> np.ndarray:
    """Where one lattice spot's energy passes ``ratio`` x the energy between the spots and a
    quarter of its energy nearby (half its amplitude), on the envelope's coarse grid; both
    energies folded back by the spot's defocus ``shift`` (file pixels, :func:`_folded`)."""
    fy, fx = spot
    energy = _envelope_energy(spectrum, shape, fy, fx, sigma_f)
    references = []
    for turn in (20.0, 30.0, 40.0):
        a = math.radians(turn)
        ry = fy * math.cos(a) + fx * math.sin(a)
        rx = -fy * math.sin(a) + fx * math.cos(a)
        references.append(_envelope_energy(spectrum, shape, ry, rx, sigma_f))
    reference = cv2.GaussianBlur(np.median(np.stack(references), axis=0), (0, 0), 1.0)
    energy = cv2.GaussianBlur(energy, (0, 0), 1.0)
    cell = shape[0] / energy.shape[0]
    cells = (shift[0] / cell, shift[1] / cell)
    energy, reference = _folded(energy, cells), _folded(reference, cells)
    strong = energy >= ratio * reference
    # the lattice's edge where its amplitude is half that inside (a quarter of the energy),
    # not where the blurred energy first rises above the noise: particles crowd up to it
    reach = max(3, int(round(2 * diameter_px / cell)) | 1)
    inside = cv2.dilate(energy, np.ones((reach, reach), np.uint8))
    return (strong & (energy >= 0.25 * inside)).astype(np.int32)


def lattice_defocus(
    image: np.ndarray, pixel_size: float, scores: np.ndarray, settings: ExclusionSettings
) -> tuple[float | None, float]:
    """The micrograph's defocus (A) and Thon-ring fit where a tile is crystalline (None, 0
    elsewhere: nothing to fold back, so no fit is paid for). Filtered 8-bit files fit below
    0.33 on the development cases (raw detector counts 0.36-0.88)."""
    if not (np.nan_to_num(scores) >= settings.ice_spot).any():
        return None, 0.0
    defocus, fit = estimate_defocus(image, pixel_size)
    return (None, 0.0) if math.isnan(defocus) else (defocus, fit)


def where_particles_are(
    canvas: np.ndarray, content: np.ndarray, diameter_px: float, settings: ExclusionSettings
) -> np.ndarray | None:
    """Canvas pixels within one diameter of a strong dark blob of the particle's size, where
    there are at least ``anchor_blobs`` of them (None otherwise): the ice is where the
    particles are. An empty hole or a contaminant covering more than half a micrograph
    would otherwise set the ice level, so that the ice itself looked like carbon, or the
    spread of two levels hid every area; vacuum and the inside of dense matter hold no
    particles."""
    response = blob_response(canvas, diameter_px, BlobSettings(), content)
    reach = max(3, int(round(diameter_px)) | 1)
    inside = cv2.erode(content.astype(np.uint8), np.ones((reach, reach), np.uint8)).astype(bool)
    xs, ys, _ = find_peaks(response, diameter_px, settings.anchor_z, inside)
    xs, ys = _isolated(canvas, xs, ys, diameter_px)
    if len(xs) < settings.anchor_blobs:
        return None
    near = np.zeros(canvas.shape, np.uint8)
    for x, y in zip(xs, ys):
        cv2.circle(near, (int(x), int(y)), int(round(diameter_px)), 1, -1)
    return near.astype(bool) & content


def _isolated(
    canvas: np.ndarray, xs: np.ndarray, ys: np.ndarray, diameter_px: float
) -> tuple[np.ndarray, np.ndarray]:
    """The blobs darker than at least 7 of 8 points 0.75 diameters around them: particles in
    ice. A blob detector also fires just inside the edge of any large dark area, where half
    the ring lies in the area and is as dark as the blob."""
    image = cv2.GaussianBlur(np.asarray(canvas, np.float32), (0, 0), max(0.15 * diameter_px, 0.5))
    h, w = image.shape
    angles = np.linspace(0, 2 * np.pi, 8, endpoint=False)
    rx = np.clip(np.round(xs[:, None] + 0.75 * diameter_px * np.cos(angles)), 0, w - 1)
    ry = np.clip(np.round(ys[:, None] + 0.75 * diameter_px * np.sin(angles)), 0, h - 1)
    centre = image[ys.astype(int), xs.astype(int)]
    brighter = (image[ry.astype(int), rx.astype(int)] > centre[:, None]).sum(1)
    keep = brighter >= 7
    return xs[keep], ys[keep]


def near_dark_areas(
    dark: np.ndarray, spacings: list[float], canvas_pixel_size: float, settings
) -> np.ndarray:
    """Canvas pixels within the lattice's delocalisation of a dark area: defocus moves a
    spacing d's signal by up to lambda dz / d (about 1.6 nm per micrometre of defocus at
    3.67 A and 300 kV), so lattice energy that close to a contaminant is the contaminant's own
    and the area already excludes it."""
    if not dark.any() or not spacings:
        return np.zeros_like(dark, bool)
    reach_a = electron_wavelength(300.0) * settings.lattice_defocus * 1e4 / min(spacings)
    reach = reach_a / canvas_pixel_size
    distance = cv2.distanceTransform((~dark).astype(np.uint8), cv2.DIST_L2, 5)
    return distance <= reach


# ----------------------------------------------------------------------------------------------
# one micrograph
# ----------------------------------------------------------------------------------------------


def exclusion_map(
    micrograph_path: str,
    denoised_path: str,
    diameter_angstrom: float,
    settings: ExclusionSettings,
    invert: bool = False,
) -> ExclusionMap:
    """The exclusion map of one micrograph on its denoised canvas's frame (``invert``: the
    data set's particles are light, so dense matter is light too)."""
    denoised = load_denoised(denoised_path)
    frame = denoised.frame
    image = read_micrograph(micrograph_path).image
    if image.shape != (frame.original_height, frame.original_width):
        raise InputError(
            f"{micrograph_path}: shape {image.shape} differs from its denoised frame "
            f"({frame.original_height}, {frame.original_width})"
        )
    binned = bin_to_frame(image, frame)
    canvas = -binned if invert else binned  # binning is linear: the same as binning -image
    content = frame.content_mask
    diameter_px = diameter_angstrom / denoised.pixel_size
    # the lattice first: contaminants covering half a micrograph would pull the ice level
    # down, and their lattice (with its defocus halo) says where they are
    file_pixel_size = denoised.original_pixel_size
    scores, spacings = ice_spot_scores(image, file_pixel_size, settings.ice_tile)
    defocus, ctf_fit = lattice_defocus(image, file_pixel_size, scores, settings)
    lattice = lattice_areas(
        image,
        file_pixel_size,
        scores,
        frame,
        diameter_angstrom / file_pixel_size,
        settings,
        defocus if ctf_fit >= settings.ctf_fit else None,
    )
    reference = ~lattice
    particles = where_particles_are(canvas, content, diameter_px, settings)
    anchored = particles is not None and bool((particles & reference).sum() >= 0.1 * content.sum())
    if anchored:
        reference &= particles
    codes, stats = dark_areas(
        canvas, content, diameter_px, settings, level_from=reference, anchored=anchored
    )
    bands = border_bands(image, settings)
    border = _border_codes(bands, frame) & (codes == 0)
    codes[border] = CODES["border"]
    ice = lattice & ~near_dark_areas(codes > 0, spacings, denoised.pixel_size, settings)
    codes[ice] = CODES["crystalline_ice"]
    finite = scores[np.isfinite(scores)]
    stats.update(
        {
            "border_px": bands,
            "ice_spacings_A": spacings,
            "ice_tile_scores": [
                [None if np.isnan(v) else round(float(v), 3) for v in row] for row in scores
            ],
            "ice_score": float(finite.max()) if finite.size else None,
            "ice_tiles": int((finite >= settings.ice_spot).sum()),
            "ice_spot": settings.ice_spot,
            "defocus_A": None if defocus is None else round(defocus, 1),
            "ctf_fit": None if defocus is None else round(ctf_fit, 3),
            "ice_level_anchored": anchored,
            "relative_thickness": relative_thickness(image, binned, codes, frame),
        }
    )
    return ExclusionMap(codes.astype(np.uint8), frame, denoised.pixel_size, stats)


def relative_thickness(
    image: np.ndarray, binned: np.ndarray, codes: np.ndarray, frame: Frame
) -> float | None:
    """Ice thickness of the usable area relative to the thinnest ice of the micrograph, in
    inelastic mean free paths: ln(I_thin / I_median) of the usable pixels, valid only for
    linear detector counts (raw MRC sums; None for 8-bit or filtered files, whose intensities
    are not transmission). Without an energy filter the absolute thickness cannot be
    estimated (that needs the zero-loss fraction), only differences within a micrograph.
    ``binned``: ``image`` on the frame's canvas."""
    if image.min() < 0 or float(np.median(image)) <= 0 or _looks_8bit(image):
        return None
    usable = frame.content_mask & (codes == 0)
    if usable.sum() < 100:
        return None
    values = binned[usable]
    thin, typical = float(np.percentile(values, 98)), float(np.median(values))
    return round(math.log(thin / typical), 4) if typical > 0 else None


def _looks_8bit(image: np.ndarray) -> bool:
    """An image stretched into 8 bits (a filtered JPG): whole numbers in [0, 255] spanning at
    least half that range. Detector counts are whole numbers too, and below 256 per pixel at
    low dose, but shot noise spreads them over about 7 sqrt(mean) < 110 (mean < 205)."""
    sample = image[:: max(1, image.shape[0] // 64), :: max(1, image.shape[1] // 64)]
    whole = bool(sample.min() >= 0 and sample.max() <= 255 and np.all(sample == np.round(sample)))
    return whole and float(sample.max() - sample.min()) >= 128


# ----------------------------------------------------------------------------------------------
# the pick filter
# ----------------------------------------------------------------------------------------------


def mask_on_canvas(mask: np.ndarray, frame: Frame) -> np.ndarray:
    """A mask at the micrograph's resolution (e.g. a generator's or a hand-drawn one) on the
    frame's canvas (nearest neighbour), for comparison with a map."""
    out = np.zeros((frame.size, frame.size), bool)
    content = cv2.resize(
        np.asarray(mask).astype(np.uint8),
        (frame.content_width, frame.content_height),
        interpolation=cv2.INTER_NEAREST,
    )
    out[: frame.content_height, : frame.content_width] = content > 0
    return out


def mask_at(mask: np.ndarray, xy: np.ndarray, frame: Frame) -> np.ndarray:
    """Values of a canvas ``mask`` at points ``xy`` (n, 2) in the micrograph file's pixels."""
    xy = np.asarray(xy, float).reshape(-1, 2)
    col = np.clip(((xy[:, 0] + 0.5) / frame.scale_x - 0.5).round().astype(int), 0, frame.size - 1)
    row = np.clip(((xy[:, 1] + 0.5) / frame.scale_y - 0.5).round().astype(int), 0, frame.size - 1)
    return np.asarray(mask)[row, col]


def populated_areas(
    mask: np.ndarray, xy: np.ndarray, exclusion: ExclusionMap, populated: float
) -> np.ndarray:
    """The connected areas of ``mask`` (canvas) that the picks fill at least ``populated`` x
    as densely as the usable area, with at least 3 picks: an obstacle hides particles, and a
    picker that learned to avoid obstacles (the U-Net) finds them there only where the area
    is in fact ice, e.g. a crowded and therefore darker part of a filtered micrograph. Border
    bands are never released (their stripes are no specimen at all)."""
    released = np.zeros_like(mask, bool)
    if populated <= 0 or len(xy) == 0:
        return released
    frame = exclusion.frame
    usable = (exclusion.codes == 0) & frame.content_mask
    candidates = mask & (exclusion.codes != CODES["border"])
    count, labels = cv2.connectedComponents(candidates.astype(np.uint8), connectivity=8)
    if count <= 1 or not usable.any():
        return released
    label_at = mask_at(labels, xy, frame)
    picks_per_label = np.bincount(label_at, minlength=count)
    area_per_label = np.bincount(labels.ravel(), minlength=count)
    open_density = float(mask_at(usable, xy, frame).sum()) / float(usable.sum())
    for label in range(1, count):
        density = picks_per_label[label] / max(area_per_label[label], 1)
        if picks_per_label[label] >= 3 and density >= populated * open_density:
            released |= labels == label
    return released


def excluded_picks(
    xy: np.ndarray,
    exclusion: ExclusionMap,
    diameter_px: float,
    dilation: float,
    classes: tuple[str, ...] | None = None,
    populated: float = 0.0,
) -> np.ndarray:
    """Which picks (file pixel centres, (n, 2)) lie in the map's area of ``classes`` (all)
    grown by ``dilation`` particle diameters (``diameter_px``: file pixels), less the areas
    the picks themselves fill (:func:`populated_areas`; ``populated`` 0: none released)."""
    xy = np.asarray(xy, float).reshape(-1, 2)
    if len(xy) == 0:
        return np.zeros(0, bool)
    mask = exclusion.mask(classes)
    mask &= ~populated_areas(mask, xy, exclusion, populated)
    mask = mask.astype(np.uint8)
    frame = exclusion.frame
    grow = dilation * diameter_px / frame.scale
    if grow >= 0.5 and mask.any():
        radius = int(math.ceil(grow))
        kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * radius + 1, 2 * radius + 1))
        mask = cv2.dilate(mask, kernel)
    return mask_at(mask, xy, frame).astype(bool)


ACTIONS = ("drop", "flag")


def apply_exclusion(
    picks,
    exclusion: ExclusionMap,
    diameter_px: float,
    dilation: float = 0.0,
    action: str = "drop",
    classes: tuple[str, ...] | None = None,
    populated: float = 0.0,
):
    """``picks`` (x, y, score in file pixels) less those in the excluded area ("drop"), or all
    of them with the figure of merit of those set to 0 and ``excluded`` = 1 ("flag": for users
    who cut on the figure of merit later); and how many were excluded."""
    if action not in ACTIONS:
        raise InputError(f"exclusion.action must be one of {ACTIONS}, got {action!r}")
    xy = picks[["x", "y"]].to_numpy(float)
    inside = excluded_picks(xy, exclusion, diameter_px, dilation, classes, populated)
    if action == "drop":
        return picks[~inside].reset_index(drop=True), int(inside.sum())
    flagged = picks.copy()
    flagged.loc[inside, "score"] = 0.0
    flagged["excluded"] = inside.astype(int)
    return flagged, int(inside.sum())


def exclude_picks_file(
    star_path: str | os.PathLike,
    before_path: str | os.PathLike,
    map_path: str | os.PathLike,
    diameter_angstrom: float,
    dilation: float = 0.0,
    action: str = "drop",
    classes: tuple[str, ...] | None = None,
    populated: float = 0.0,
):
    """Filter a final picks STAR in place by its micrograph's exclusion map, moving the picks
    as they were to ``before_path`` (for the metrics' "final before exclusion" row); the picks
    written and how many were excluded."""
    os.replace(star_path, before_path)
    exclusion = load_exclusion(map_path)
    diameter_px = diameter_angstrom / (exclusion.pixel_size / exclusion.frame.scale)
    kept, excluded = apply_exclusion(
        read_coordinates(before_path), exclusion, diameter_px, dilation, action, classes, populated
    )
    write_star(star_path, kept)
    return kept, excluded


# ----------------------------------------------------------------------------------------------
# the verdict
# ----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class VerdictSettings:
    """Thresholds of the class of a micrograph (config exclusion.verdict)."""

    carbon_dominated: float = 0.5  # carbon share of the micrograph above which it is carbon
    contaminated: float = 0.15  # contamination + thick ice share above which it is contaminated
    crystalline_tiles: float = 0.25  # share of tiles with ice spots above which it is crystalline
    empty_density: float = 0.2  # picks per usable area below this x the data set's median
    empty_area: float = 0.5  # share without ice (empty hole, cracks) above which it is empty

    @classmethod
    def from_config(cls, config: dict) -> "VerdictSettings":
        return cls(**config_values(cls, config, "exclusion.verdict"))


def micrograph_quality(
    micrograph: str, exclusion: ExclusionMap, n_picks: int, pixel_size_file: float
) -> dict:
    """The measured part of a micrograph's verdict row (the class needs the data set's
    densities: :func:`classify_micrographs`)."""
    fractions = exclusion.fractions()
    usable = 1.0 - sum(fractions.values())
    frame = exclusion.frame
    area_um2 = frame.original_height * frame.original_width * pixel_size_file**2 / 1e8
    scores = np.asarray(exclusion.stats.get("ice_tile_scores") or [[]], dtype=float)
    finite = scores[np.isfinite(scores)]
    return {
        "micrograph": micrograph,
        "usable_fraction": round(usable, 4),
        **{f"{name}_fraction": round(value, 4) for name, value in fractions.items()},
        "crystalline_ice_score": exclusion.stats.get("ice_score"),
        "crystalline_tile_fraction": (
            round(float(np.mean(finite >= exclusion.stats.get("ice_spot", 20.0))), 4)
            if finite.size
            else None
        ),
        "relative_ice_thickness": exclusion.stats.get("relative_thickness"),
        "picks": int(n_picks),
        "particles_per_um2": round(n_picks / max(usable * area_um2, 1e-9), 3),
    }


def classify_micrographs(rows: list[dict], settings: VerdictSettings) -> list[dict]:
    """Each row with its ``verdict`` (one of VERDICTS), in order of precedence: carbon
    dominated, crystalline ice, contaminated, empty (density far below the data set's median),
    good."""
    densities = [r["particles_per_um2"] for r in rows if r["usable_fraction"] > 0]
    median = float(np.median(densities)) if densities else 0.0
    out = []
    for row in rows:
        tiles = row.get("crystalline_tile_fraction") or 0.0
        if row["carbon_fraction"] >= settings.carbon_dominated:
            verdict = "carbon_dominated"
        elif tiles >= settings.crystalline_tiles:
            verdict = "crystalline_ice"
        elif row["contamination_fraction"] + row["thick_ice_fraction"] >= settings.contaminated:
            verdict = "contaminated"
        elif (
            row.get("empty_fraction", 0.0) >= settings.empty_area
            or row["particles_per_um2"] < settings.empty_density * median
            or row["picks"] == 0
        ):
            verdict = "empty"
        else:
            verdict = "good"
        out.append({**row, "verdict": verdict})
    return out
