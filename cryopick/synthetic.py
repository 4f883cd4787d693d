"""Synthetic micrographs with exact ground truth.

Image formation, in order (weak-phase approximation, lengths in A, phases in rad):

1. Particles: pseudo-atomic volumes (:mod:`cryopick.volumes`) projected at uniformly random
   orientations; their projected potential times the interaction constant is a phase ``phi_p``.
   Each particle's support (its clean projection above ``mask_threshold`` x its peak) gives its
   instance mask; where particles overlap, a pixel belongs to the one with more density there.
2. Specimen background: amorphous ice as a random phase texture whose variance grows with the
   local ice thickness and whose spectrum follows the structure factor of water (low at low
   frequency, a peak at 1/3.7 A); a carbon film region beyond a hole edge (a sharp arc) with a
   stronger texture and a mean phase step; crystalline-ice contaminants (dark domes, some with
   hexagonal lattice fringes at 3.9 / 3.67 / 3.44 A, i.e. spots in the power spectrum); protein
   aggregates (clumps of atoms, not particles). Optionally (each off by default): a linear
   thickness ramp (a wedge of ice), cracks and an empty area where there is no ice at all
   (thickness 0: no optical density, no texture, nothing on them, so they are bright), grains of
   crystalline ice (Voronoi domains whose ice phase carries hexagonal-lattice plane waves), and
   dense aggregates (clumps of touching copies of the data set's own particles).
   Each background class has an exact mask; none holds a particle centre.
3. One CTF (per-micrograph defocus and astigmatism, B-factor envelope) applied to all phases in
   Fourier space: ``contrast = 2 * F^-1[CTF * F(phi)]``.
4. Intensity ``I = T * g * (1 + contrast)`` with the transmission ``T = exp(-t / mean free path)``
   (ice of smoothly varying thickness ``t``, darker contaminants and carbon) and a detector-like
   smooth gain drift ``g``.
5. Noise: shot noise at a dose (the image is then in counts, e-/px), Gaussian noise at a target
   SNR, or none (the image is then the intensity ``I``, whose mean is about 1).

SNR is defined once, here, for both noise models: the variance of the noise-free *particle*
image (``T * g * 2 F^-1[CTF F(phi_p)]``, in image units) over the pixels of the union particle
mask, divided by the noise variance. At a dose ``D`` the noise variance is the expected count.

Randomness: the volume family comes from the data set seed alone; everything else in a
micrograph from ``SeedSequence([seed, 1, index])`` and its noise from ``SeedSequence([seed, 2,
index])``, so a micrograph can be regenerated alone, and switching the noise model leaves the
specimen identical. The optional classes (wedge, cracks, empty area, crystalline ice, dense
aggregates) each draw from a stream of their own, ``SeedSequence([seed, 3..7, index])``, and only
when enabled, so turning them on leaves the rest of the specimen as it was and sets made before
they existed are unchanged. The same settings and seed give byte-identical files.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import scipy.fft
import scipy.ndimage
from scipy.spatial.transform import Rotation

from cryopick.ctf import CTFParams, ctf_rfft, interaction_constant
from cryopick.io import atomic_path, write_mrc, write_star
from cryopick.synthetic_settings import (  # noqa: F401 (re-exported for the renderer's users)
    DATASET_FOLDERS,
    DATASET_KEYS,
    MAX_DIAMETER_A,
    MIN_DIAMETER_A,
    NOISE_MODELS,
    RENDERINGS,
    SyntheticSettings,
    micrograph_index,
    micrograph_outputs,
    synthetic_micrograph_names,
)
from cryopick.volumes import (
    Volume,
    make_volume,
    project,
    random_rotations,
    volume_from_mrc,
)

WATER_POTENTIAL_V = 4.8  # mean inner potential of vitreous ice
WATER_MOLECULES_PER_A3 = 0.0314  # vitreous ice, 0.94 g/cm^3
CARBON_POTENTIAL_V = 10.0
ICE_RING_SPACINGS_A = (3.90, 3.67, 3.44)  # hexagonal ice (100), (002), (101)
# streams of the optional background classes (0: volumes, 1: content, 2: noise)
WEDGE_STREAM, CRACK_STREAM, EMPTY_STREAM, CRYSTAL_STREAM, DENSE_STREAM = 3, 4, 5, 6, 7
EMPTY_WHOLE_FIELD_CHANCE = 0.1  # an empty micrograph is empty all over (off carbon) this often
CRYSTAL_WHOLE_FIELD_CHANCE = 0.2  # crystalline ice covers the whole film this often


@dataclass
class SyntheticMicrograph:
    """One generated micrograph, its ground truth and the parameters drawn for it."""

    image: np.ndarray  # float32 (height, width): counts (dose) or intensity (snr, none)
    pixel_size: float
    particles: pd.DataFrame  # label, x, y, diameter (px), volume, kind, rot, tilt, psi, ...
    instances: np.ndarray  # uint16, 0 = background, k = particles.label == k
    particle_mask: np.ndarray  # bool union of particle supports
    ice_mask: np.ndarray  # bool: ice thicker than thick_ice_threshold x the mean
    contamination_mask: np.ndarray  # bool: crystalline-ice contaminants
    carbon_mask: np.ndarray  # bool: carbon film
    aggregate_mask: np.ndarray  # bool: protein aggregates, sparse and dense
    crack_mask: np.ndarray  # bool: cracks in the ice (no ice there)
    empty_mask: np.ndarray  # bool: an area without ice (broken or unfilled hole)
    crystalline_ice_mask: np.ndarray  # bool: grains of crystalline ice in the film
    ctf: CTFParams
    info: dict = field(default_factory=dict)  # everything drawn for this micrograph
    noise_free: np.ndarray | None = None  # only with keep_components=True
    particle_signal: np.ndarray | None = None  # only with keep_components=True
    particle_phase: np.ndarray | None = None  # clean projections (rad), keep_components only

    @property
    def background_masks(self) -> dict[str, np.ndarray]:
        """Every background class's exact mask by its name in ``ice_masks/{name}.npz``."""
        return {
            "thick_ice": self.ice_mask,
            "contamination": self.contamination_mask,
            "carbon": self.carbon_mask,
            "aggregate": self.aggregate_mask,
            "crack": self.crack_mask,
            "empty": self.empty_mask,
            "crystalline_ice": self.crystalline_ice_mask,
        }

    @property
    def exclusion_mask(self) -> np.ndarray:
        """Where no particle should be picked: the union of every background class."""
        return _union(*self.background_masks.values())

    @property
    def coordinates(self) -> pd.DataFrame:
        """Ground-truth picks (x, y, score, diameter) of particles centred inside the image."""
        inside = self.particles[self.particles["in_image"].astype(bool)]
        return pd.DataFrame(
            {
                "x": inside["x"].to_numpy(float),
                "y": inside["y"].to_numpy(float),
                "score": np.ones(len(inside)),
                "diameter": inside["diameter"].to_numpy(float),
            }
        )


# ----------------------------------------------------------------------------------------------
# seeds and names
# ----------------------------------------------------------------------------------------------


def _rng(seed: int, stream: int, index: int | None = None) -> np.random.Generator:
    key = [int(seed), stream] + ([] if index is None else [int(index)])
    return np.random.default_rng(np.random.SeedSequence(key))


def _union(*masks: np.ndarray) -> np.ndarray:
    out = masks[0].copy()
    for mask in masks[1:]:
        out |= mask
    return out


# ----------------------------------------------------------------------------------------------
# building blocks
# ----------------------------------------------------------------------------------------------


def volume_family(settings: SyntheticSettings, seed: int) -> list[Volume]:
    """The data set's volumes: users' maps, or ``n_volumes`` shapes cycling through the kinds."""
    if settings.volume_files:
        return [
            volume_from_mrc(
                p,
                threshold=settings.volume_file_threshold,
                max_atoms=max(settings.atoms_per_volume, 10),
                contrast_v=settings.protein_contrast,
            )
            for p in settings.volume_files
        ]
    rng = _rng(seed, 0)
    out = []
    for i in range(settings.n_volumes):
        kind = settings.volume_kinds[i % len(settings.volume_kinds)]
        d = settings.particle_diameter * (1 + settings.diameter_spread * rng.uniform(-1, 1))
        d = float(np.clip(d, MIN_DIAMETER_A, MAX_DIAMETER_A))
        out.append(make_volume(rng, kind, d, settings.atoms_per_volume, settings.protein_contrast))
    return out


def smooth_field(rng: np.random.Generator, shape: tuple[int, int], cells: int) -> np.ndarray:
    """Zero-mean, unit-variance smooth random field over ``shape`` (float32).

    A (cells + 2)^2 grid of normal values, bicubic to at most 256^2 (normalised there, cheap),
    then bilinear to ``shape``; the outer ring of the grid is cropped so edges are not special.
    """
    grid = rng.standard_normal((cells + 2, cells + 2)).astype(np.float32)
    lh, lw = min(shape[0], 256), min(shape[1], 256)
    big = cv2.resize(
        grid, (lw + 2 * lw // cells, lh + 2 * lh // cells), interpolation=cv2.INTER_CUBIC
    )
    oy, ox = lh // cells, lw // cells
    low = big[oy : oy + lh, ox : ox + lw]
    low = (low - float(low.mean())) / (float(low.std()) or 1.0)
    if (lh, lw) == tuple(shape):
        return np.ascontiguousarray(low, dtype=np.float32)
    return cv2.resize(low, (shape[1], shape[0]), interpolation=cv2.INTER_LINEAR)


def water_structure_filter(shape: tuple[int, int], pixel_size: float) -> np.ndarray:
    """sqrt of a model structure factor S(k) of amorphous ice on the rfft grid (float32).

    S is ~0.02 at low frequency (low-density amorphous ice is nearly hyperuniform: the number
    of molecules in a column fluctuates far less than Poisson; liquid water has 0.06), rises at
    the first diffraction peak of amorphous ice at 1/3.7 A (q = 1.7 / A) and tends to 1 beyond.
    Evaluated on a fine radial table and looked up, since it is radial.
    """
    nyquist_diag = math.sqrt(2) * 0.5 / pixel_size
    table_k = np.linspace(0, nyquist_diag, 4097)
    peak = 1 / 3.7
    table = np.sqrt(
        0.02
        + 0.98 / (1 + np.exp(-(table_k - peak) / 0.015))
        + 1.2 * np.exp(-0.5 * ((table_k - peak) / 0.02) ** 2)
    ).astype(np.float32)
    ky = scipy.fft.fftfreq(shape[0], d=pixel_size).astype(np.float32)[:, None]
    kx = scipy.fft.rfftfreq(shape[1], d=pixel_size).astype(np.float32)[None, :]
    index = np.sqrt(kx * kx + ky * ky)
    index *= np.float32(4096 / nyquist_diag)
    index += np.float32(0.5)
    return table[index.astype(np.int32)]


def _disc_grid(shape, cx, cy):
    ys = np.arange(shape[0], dtype=np.float32)[:, None] - np.float32(cy)
    xs = np.arange(shape[1], dtype=np.float32)[None, :] - np.float32(cx)
    return xs, ys


def _carbon(rng, s: SyntheticSettings) -> tuple[np.ndarray, dict]:
    """Carbon beyond the arc of a hole edge; returns the mask and what was drawn."""
    h, w = s.height, s.width
    mask = np.zeros((h, w), dtype=bool)
    if rng.random() >= s.carbon_probability:
        return mask, {"carbon": False}
    fraction = rng.uniform(*s.carbon_fraction_range)
    theta = rng.uniform(0, 2 * math.pi)
    radius = rng.uniform(0.8, 1.5) * max(h, w)
    mask, cx, cy = _beyond_arc((h, w), theta, radius, fraction)
    return mask, {
        "carbon": True,
        "carbon_fraction": float(mask.mean()),
        "hole_centre": [cx, cy],
        "hole_radius_px": radius,
    }


def _beyond_arc(
    shape: tuple[int, int], theta: float, radius: float, fraction: float
) -> tuple[np.ndarray, float, float]:
    """The area outside a circle of ``radius`` (px), on the side ``theta`` points to from the
    field's centre, covering ``fraction`` of the field (as far as the circle allows); the mask
    and the circle's centre."""
    h, w = shape
    ux, uy = math.cos(theta), math.sin(theta)
    # the edge point on the line through the centre along u; choose its offset for `fraction`
    gy, gx = np.mgrid[0:64, 0:64]
    gx = (gx + 0.5) * w / 64
    gy = (gy + 0.5) * h / 64

    def covered(offset):
        cx = w / 2 + ux * (offset - radius)
        cy = h / 2 + uy * (offset - radius)
        return float(((gx - cx) ** 2 + (gy - cy) ** 2 > radius**2).mean())

    lo, hi = -max(h, w), max(h, w)
    for _ in range(40):  # covered() falls as the offset grows
        mid = 0.5 * (lo + hi)
        if covered(mid) > fraction:
            lo = mid
        else:
            hi = mid
    offset = 0.5 * (lo + hi)
    cx = w / 2 + ux * (offset - radius)
    cy = h / 2 + uy * (offset - radius)
    xs, ys = _disc_grid((h, w), cx, cy)
    return xs * xs + ys * ys > np.float32(radius * radius), cx, cy


def _empty_area(rng, s: SyntheticSettings, carbon_mask: np.ndarray) -> tuple[np.ndarray, dict]:
    """An area without ice (a broken or unfilled hole): beyond an arc that faces away from any
    carbon, or now and then the whole field; never on carbon, which lies beside the hole."""
    h, w = s.height, s.width
    if rng.random() >= s.empty_probability:
        return np.zeros((h, w), dtype=bool), {"empty": False}
    whole = bool(rng.random() < EMPTY_WHOLE_FIELD_CHANCE)
    theta = rng.uniform(0, 2 * math.pi)
    jitter = rng.uniform(-0.5, 0.5)
    radius = rng.uniform(0.8, 1.5) * max(h, w)
    fraction = rng.uniform(*s.empty_area_range)
    if whole:
        mask = np.ones((h, w), dtype=bool)
    else:
        if carbon_mask.any():  # the side opposite the carbon's centroid
            rows, cols = carbon_mask.sum(axis=1), carbon_mask.sum(axis=0)
            cy = float(rows @ np.arange(h)) / float(rows.sum())
            cx = float(cols @ np.arange(w)) / float(cols.sum())
            theta = math.atan2(h / 2 - cy, w / 2 - cx) + jitter
        mask = _beyond_arc((h, w), theta, radius, fraction)[0]
    mask &= ~carbon_mask
    return mask, {
        "empty": True,
        "empty_whole_field": whole,
        "empty_area_fraction": float(mask.mean()),
    }


def _cracks(rng, s: SyntheticSettings, carbon_mask: np.ndarray) -> tuple[np.ndarray, dict]:
    """One to three cracks in the ice: walks of 48 straight steps whose heading wanders (slightly
    meandering, jagged at the vertices), widened to a width drawn per crack; never on carbon."""
    h, w, px = s.height, s.width, s.pixel_size
    mask = np.zeros((h, w), dtype=bool)
    if rng.random() >= s.crack_probability:
        return mask, {"cracks": []}
    out = []
    for _ in range(int(rng.integers(1, 4))):
        width = rng.uniform(*s.crack_width_range) / px
        length = rng.uniform(0.3, 1.2) * max(h, w)
        start = (rng.uniform(0, w), rng.uniform(0, h))
        heading = rng.uniform(0, 2 * math.pi) + np.cumsum(rng.normal(0, 0.12, 48))
        steps = length / 48 * np.column_stack([np.cos(heading), np.sin(heading)])
        vertices = np.vstack([start, start + np.cumsum(steps, axis=0)])
        line = np.full((h, w), 255, dtype=np.uint8)
        cv2.polylines(line, [np.round(vertices * 16).astype(np.int32)], False, 0, 1, shift=4)
        distance = cv2.distanceTransform(line, cv2.DIST_L2, cv2.DIST_MASK_PRECISE)
        crack = (distance <= 0.5 * max(width - 1, 0.0)) & ~carbon_mask
        mask |= crack
        out.append(
            {
                "width_A": width * px,
                "length_px": length,
                "start": list(start),
                "fraction": float(crack.mean()),
            }
        )
    return mask, {"cracks": out, "crack_fraction": float(mask.mean())}


def _contaminants(
    rng, s: SyntheticSettings, optical_density: np.ndarray, phase: np.ndarray, mask: np.ndarray
) -> list[dict]:
    """Crystalline-ice contaminants: dark irregular domes, some with hexagonal lattice fringes.

    Adds to ``optical_density`` (transmission exp(-od)), ``phase`` and ``mask`` in place.
    """
    h, w = s.height, s.width
    n = int(rng.poisson(s.contaminants_per_um2 * s.area_um2))
    nyquist = 0.5 / s.pixel_size
    out = []
    for _ in range(n):
        radius = 0.5 * rng.uniform(*s.contaminant_size_range) / s.pixel_size
        cx, cy = rng.uniform(0, w), rng.uniform(0, h)
        harmonics = rng.normal(scale=0.12, size=(4, 2)) / np.arange(1, 5)[:, None] ** 0.5
        crystalline = bool(rng.random() < s.crystalline_fraction)
        od_peak = rng.uniform(0.6, 1.5) if crystalline else rng.uniform(1.0, 3.0)
        half = int(math.ceil(radius * 1.6)) + 2
        x0, y0 = int(cx) - half, int(cy) - half
        xa, xb, ya, yb = (
            max(x0, 0),
            min(x0 + 2 * half + 1, w),
            max(y0, 0),
            min(y0 + 2 * half + 1, h),
        )
        if xa >= xb or ya >= yb:
            continue
        xs = np.arange(xa, xb, dtype=np.float32)[None, :] - np.float32(cx)
        ys = np.arange(ya, yb, dtype=np.float32)[:, None] - np.float32(cy)
        r = np.sqrt(xs * xs + ys * ys)
        angle = np.arctan2(ys, xs)
        edge = np.full_like(r, radius)
        for m, (a, b) in enumerate(harmonics, start=1):
            edge *= 1 + a * np.cos(m * angle) + b * np.sin(m * angle)
        rho = np.clip(r / np.maximum(edge, 1.0), 0, 1)
        dome = np.sqrt(1 - rho * rho).astype(np.float32)
        inside = r < edge
        dome[~inside] = 0
        optical_density[ya:yb, xa:xb] += od_peak * dome
        phase[ya:yb, xa:xb] += 0.5 * dome
        mask[ya:yb, xa:xb] |= inside
        spacings = []
        if crystalline:
            usable = [d for d in ICE_RING_SPACINGS_A if 1 / d < 0.97 * nyquist]
            if usable:
                d = float(usable[int(rng.integers(len(usable)))])
                spacings.append(d)
                base = rng.uniform(0, math.pi / 3)
                fringes = np.zeros_like(dome)
                gx = xs + np.float32(cx)
                gy = ys + np.float32(cy)
                for j in range(3):  # hexagonal: three directions 60 degrees apart -> 6 spots
                    a = base + j * math.pi / 3
                    kx = math.cos(a) / d * s.pixel_size
                    ky = math.sin(a) / d * s.pixel_size
                    fringes += np.cos(2 * math.pi * (kx * gx + ky * gy) + rng.uniform(0, 6.3))
                phase[ya:yb, xa:xb] += 0.15 * fringes * (dome > 0.05)
        out.append(
            {
                "x": cx,
                "y": cy,
                "radius_px": radius,
                "crystalline": crystalline,
                "lattice_spacings_A": spacings,
                "optical_density": od_peak,
            }
        )
    return out


def _paste(target: np.ndarray, box: np.ndarray, x0: int, y0: int):
    """Slices of ``target`` and ``box`` where a box with top-left (x0, y0) overlaps it."""
    h, w = target.shape
    ya, yb = max(y0, 0), min(y0 + box.shape[0], h)
    xa, xb = max(x0, 0), min(x0 + box.shape[1], w)
    if ya >= yb or xa >= xb:
        return None
    return (slice(ya, yb), slice(xa, xb)), (slice(ya - y0, yb - y0), slice(xa - x0, xb - x0))


def _aggregates(
    rng, s: SyntheticSettings, sigma_e: float, phase: np.ndarray, mask: np.ndarray
) -> list[dict]:
    n = int(rng.poisson(s.aggregates_per_um2 * s.area_um2))
    out = []
    for _ in range(n):
        diameter = s.particle_diameter * rng.uniform(1.5, 4.0)
        vol = make_volume(
            rng, "aggregate", diameter, max(s.atoms_per_volume, 2000), s.protein_contrast
        )
        rot = random_rotations(rng, 1).as_matrix()[0]
        cx, cy = rng.uniform(0, s.width), rng.uniform(0, s.height)
        box, x0, y0 = project(vol, rot, s.pixel_size, (cx, cy))
        where = _paste(phase, box, x0, y0)
        if where is None:
            continue
        (dst, src) = where
        phase[dst] += sigma_e * box[src]
        mask[dst] |= box[src] > s.mask_threshold * float(box.max())
        out.append({"x": cx, "y": cy, "diameter_px": diameter / s.pixel_size})
    return out


def _dense_aggregates(
    rng,
    s: SyntheticSettings,
    volumes: list[Volume],
    sigma_e: float,
    phase: np.ndarray,
    mask: np.ndarray,
) -> list[dict]:
    """Clumps of the data set's own particles, 3-10 mean diameters across: about 2 copies per
    particle area at random places in a disc and random orientations, so they touch and overlap
    and look like particles one by one. A clump's mask is the union of its copies' supports with
    the gaps they enclose filled (a centre there would lie inside the clump)."""
    px = s.pixel_size
    n = int(rng.poisson(s.dense_aggregates_per_um2 * s.area_um2))
    diameter = float(np.mean([v.diameter for v in volumes])) / px
    out = []
    for _ in range(n):
        across = rng.uniform(3, 10) * diameter
        cx, cy = rng.uniform(0, s.width), rng.uniform(0, s.height)
        copies = int(round(2.0 * (across / diameter) ** 2))
        r = 0.5 * (across - diameter) * np.sqrt(rng.random(copies))
        a = rng.uniform(0, 2 * math.pi, copies)
        choice = rng.integers(len(volumes), size=copies)
        matrices = random_rotations(rng, copies).as_matrix()
        half = int(math.ceil(across)) + 2
        bx0, by0 = int(cx) - half, int(cy) - half
        clump = np.zeros((2 * half + 1, 2 * half + 1), dtype=bool)
        for i in range(copies):
            centre = (cx + r[i] * math.cos(a[i]), cy + r[i] * math.sin(a[i]))
            box, x0, y0 = project(volumes[choice[i]], matrices[i], px, centre)
            where = _paste(phase, box, x0, y0)
            if where is not None:
                phase[where[0]] += np.float32(sigma_e) * box[where[1]]
            local = _paste(clump, box, x0 - bx0, y0 - by0)
            if local is not None:
                clump[local[0]] |= box[local[1]] > s.mask_threshold * float(box.max())
        where = _paste(mask, clump, bx0, by0)
        if where is not None:
            mask[where[0]] |= scipy.ndimage.binary_fill_holes(clump)[where[1]]
        out.append({"x": cx, "y": cy, "diameter_px": across, "copies": copies})
    return out


def _ice_lattice_waves(rng, pixel_size: float) -> tuple[str, list[tuple[float, float]]]:
    """One grain's lattice: its zone and (spacing A, direction rad) of each plane wave, in a
    random in-plane orientation. Looking down the c axis (basal) hexagonal ice shows (100) at
    3.90 A in three directions 60 degrees apart; with c in the plane (prism) it shows (100), (002)
    at 3.67 A at right angles to it and (101), (10-1) at 3.44 A (a* +- c*, at arccos(3.44/3.90)
    from a*). Waves the pixel size cannot resolve are left out: sampled, they would alias to
    false spacings."""
    d100, d002, d101 = ICE_RING_SPACINGS_A
    base = rng.uniform(0, 2 * math.pi)
    if rng.random() < 0.5:
        zone, waves = "basal", [(d100, base + j * math.pi / 3) for j in range(3)]
    else:
        tilt = math.acos(d101 / d100)
        zone = "prism"
        waves = [(d100, base), (d002, base + math.pi / 2), (d101, base + tilt), (d101, base - tilt)]
    nyquist = 0.5 / pixel_size
    return zone, [(d, a) for d, a in waves if 1 / d < 0.97 * nyquist]


def _crystalline_ice(
    rng, s: SyntheticSettings, sigma_e: float, thickness: np.ndarray, phase: np.ndarray
) -> tuple[np.ndarray, dict]:
    """Grains of crystalline ice in the film: Voronoi domains of 4-12 random seeds, one to three
    of them (or now and then all) crystalline, where there is ice. Each adds its lattice to
    ``phase`` (in place), each wave at crystalline_ice_strength x the local sigma of the
    amorphous texture; returns the mask and what was drawn."""
    h, w = s.height, s.width
    mask = np.zeros((h, w), dtype=bool)
    if rng.random() >= s.crystalline_ice_probability:
        return mask, {"crystalline_ice": []}
    k = int(rng.integers(4, 13))
    seeds = rng.uniform(0, 1, (k, 2)) * (w, h)
    whole = bool(rng.random() < CRYSTAL_WHOLE_FIELD_CHANCE)
    chosen = range(k) if whole else rng.choice(k, int(rng.integers(1, 4)), replace=False)
    nearest = np.zeros((h, w), dtype=np.int8)
    best = np.full((h, w), np.inf, dtype=np.float32)
    for j, (sx, sy) in enumerate(seeds):
        xs, ys = _disc_grid((h, w), sx, sy)
        d2 = xs * xs + ys * ys
        closer = d2 < best
        best[closer] = d2[closer]
        nearest[closer] = j
    del best
    ice_sigma = _ice_sigma(s, sigma_e, thickness)
    out = []
    for j in sorted(int(c) for c in chosen):
        zone, waves = _ice_lattice_waves(rng, s.pixel_size)
        offsets = rng.uniform(0, 2 * math.pi, len(waves))
        grain = (nearest == j) & (thickness > 0)
        mask |= grain
        ys, xs = np.nonzero(grain)
        lattice = np.zeros(len(xs), dtype=np.float32)
        for (d, a), offset in zip(waves, offsets):
            kx, ky = math.cos(a) / d * s.pixel_size, math.sin(a) / d * s.pixel_size
            lattice += np.cos(2 * math.pi * (kx * xs + ky * ys) + offset).astype(np.float32)
        phase[ys, xs] += np.float32(s.crystalline_ice_strength) * ice_sigma[ys, xs] * lattice
        out.append(
            {
                "seed": [float(seeds[j, 0]), float(seeds[j, 1])],
                "zone": zone,
                "lattice_spacings_A": sorted({d for d, _ in waves}, reverse=True),
                "fraction": float(grain.mean()),
            }
        )
    info = {"crystalline_ice": out, "crystalline_ice_whole_field": whole}
    info["crystalline_ice_fraction"] = float(mask.mean())
    return mask, info


def _place_particles(
    rng, s: SyntheticSettings, radii_px: np.ndarray, excluded: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Centres for particles of the given radii: an inhomogeneous process with hard cores.

    Density is a log-normal smooth field (``clustering``) with its lowest ``empty_fraction``
    set to zero, and zero over ``excluded``; centres closer than ``min_distance`` x the mean
    diameter of the pair are rejected, so particles touch and overlap when it is below 1.
    Returns the accepted centres (x, y) and the indices of ``radii_px`` they belong to.
    """
    h, w = s.height, s.width
    margin = float(radii_px.max()) if (s.edge_particles and len(radii_px)) else 0.0
    cell = max(2.0, float(np.median(radii_px)) if len(radii_px) else 8.0)
    gh = int(min(512, math.ceil((h + 2 * margin) / cell)))
    gw = int(min(512, math.ceil((w + 2 * margin) / cell)))
    cells = max(2, int(round(max(h, w) / (8 * 2 * cell))))
    field_ = smooth_field(rng, (gh, gw), min(cells, min(gh, gw)))
    density = np.exp(2.5 * s.clustering * field_).astype(np.float64)
    if s.empty_fraction > 0:
        density[field_ < np.quantile(field_, s.empty_fraction)] = 0.0
    if not density.any():
        density[:] = 1.0
    cdf = np.cumsum(density.ravel())
    cdf /= cdf[-1]
    step_y = (h + 2 * margin) / gh
    step_x = (w + 2 * margin) / gw
    n = len(radii_px)
    xs, ys, owner = [], [], []
    tries = 0
    order = iter(range(n))
    current = next(order, None)
    while current is not None and tries < 60 * n + 1000:
        batch = 256
        picks = np.searchsorted(cdf, rng.random(batch))
        jitter = rng.random((batch, 2))
        for p, (jx, jy) in zip(picks, jitter):
            tries += 1
            gy_, gx_ = divmod(int(p), gw)
            x = (gx_ + jx) * step_x - margin
            y = (gy_ + jy) * step_y - margin
            ix, iy = min(max(round(x), 0), w - 1), min(max(round(y), 0), h - 1)
            if excluded[iy, ix]:
                continue
            r = radii_px[current]
            if xs:
                d2 = (np.asarray(xs) - x) ** 2 + (np.asarray(ys) - y) ** 2
                limit = s.min_distance * (radii_px[owner] + r)
                if np.any(d2 < limit * limit):
                    continue
            xs.append(x)
            ys.append(y)
            owner.append(current)
            current = next(order, None)
            if current is None:
                break
    return np.column_stack([xs, ys]) if xs else np.zeros((0, 2)), np.asarray(owner, dtype=int)


# ----------------------------------------------------------------------------------------------
# the generator
# ----------------------------------------------------------------------------------------------


def _draw_optics(rng: np.random.Generator, s: SyntheticSettings) -> CTFParams:
    """The micrograph's CTF: defocus drawn in ``defocus_range``, astigmatism and its angle."""
    mean_defocus = rng.uniform(*s.defocus_range) * 1e4
    half_astig = rng.uniform(0, s.astigmatism) * 1e4
    return CTFParams(
        voltage_kv=s.voltage,
        cs_mm=s.spherical_aberration,
        amplitude_contrast=s.amplitude_contrast,
        defocus_u=mean_defocus + half_astig,
        defocus_v=mean_defocus - half_astig,
        astigmatism_angle=rng.uniform(0, 180),
        b_factor=s.b_factor,
    )


def _draw_ice(
    rng: np.random.Generator, s: SyntheticSettings, wedge_rng: np.random.Generator
) -> tuple[np.ndarray, float, dict]:
    """Ice thickness (A; a smooth gradient, sometimes a patch of much thicker ice, optionally a
    linear wedge from ``wedge_rng``), its mean and what was drawn."""
    h, w = s.height, s.width
    t_mean = rng.uniform(*s.ice_thickness_range)
    thickness = t_mean * (1 + s.ice_gradient * smooth_field(rng, (h, w), 3))
    thick_patch = bool(rng.random() < s.thick_ice_probability)
    if thick_patch:
        bump = np.clip(smooth_field(rng, (h, w), 4) - 1.0, 0, None)
        thickness += t_mean * rng.uniform(0.8, 1.5) * np.minimum(bump, 1.0)
    info = {"ice_thickness_mean_A": t_mean, "thick_ice_patch": thick_patch}
    if s.ice_wedge > 0:
        theta = wedge_rng.uniform(0, 2 * math.pi)
        ux, uy = math.cos(theta), math.sin(theta)
        xs, ys = _disc_grid((h, w), w / 2, h / 2)
        # -1 .. 1 from the thinnest corner to the thickest one
        along = (xs * np.float32(ux) + ys * np.float32(uy)) / np.float32(
            0.5 * (abs(ux) * w + abs(uy) * h)
        )
        thickness += np.float32(0.5 * s.ice_wedge * t_mean) * along
        info["ice_wedge_direction_deg"] = math.degrees(theta)  # towards thicker ice
    np.maximum(thickness, 0.2 * t_mean, out=thickness)
    return thickness, t_mean, info


def _draw_voids(
    s: SyntheticSettings, seed: int, index: int, carbon_mask: np.ndarray
) -> tuple[np.ndarray, np.ndarray, dict]:
    """Where there is no ice, each from its own stream and only when enabled: the crack and
    empty-area masks and what was drawn."""
    h, w = s.height, s.width
    none = np.zeros((h, w), dtype=bool)
    info: dict = {}
    crack_mask, empty_mask = none, none
    if s.crack_probability > 0:
        crack_mask, drawn = _cracks(_rng(seed, CRACK_STREAM, index), s, carbon_mask)
        info.update(drawn)
    if s.empty_probability > 0:
        empty_mask, drawn = _empty_area(_rng(seed, EMPTY_STREAM, index), s, carbon_mask)
        info.update(drawn)
    return crack_mask, empty_mask, info


def _draw_obstacles(
    rng: np.random.Generator,
    s: SyntheticSettings,
    sigma_e: float,
    optical_density: np.ndarray,
    carbon_mask: np.ndarray,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, dict]:
    """Carbon film's phase, crystalline-ice contaminants and protein aggregates: their masks
    (contamination, aggregates), their deterministic phase and what was drawn. Carbon and
    contaminants also darken ``optical_density`` (in place)."""
    h, w = s.height, s.width
    info: dict = {}
    phase = np.zeros((h, w), dtype=np.float32)
    if carbon_mask.any():
        # the mean phase step of the film (~1 rad) is far from weak; clip it so the linear
        # model gives an edge fringe and a modest darkening, not an artefact
        carbon_phase = min(sigma_e * CARBON_POTENTIAL_V * s.carbon_thickness, 0.3)
        phase[carbon_mask] += np.float32(carbon_phase)
        optical_density[carbon_mask] += np.float32(s.carbon_thickness / 2000.0)
    contamination_mask = np.zeros((h, w), dtype=bool)
    info["contaminants"] = _contaminants(rng, s, optical_density, phase, contamination_mask)
    aggregate_mask = np.zeros((h, w), dtype=bool)
    info["aggregates"] = _aggregates(rng, s, sigma_e, phase, aggregate_mask)
    return contamination_mask, aggregate_mask, phase, info


PARTICLE_COLUMNS = [
    "label",
    "x",
    "y",
    "diameter",
    "volume",
    "kind",
    "rot",
    "tilt",
    "psi",
    "in_image",
]


def _draw_particles(
    rng: np.random.Generator,
    s: SyntheticSettings,
    volumes: list[Volume],
    sigma_e: float,
    excluded: np.ndarray,
    pad: int,
    canvas: tuple[int, int],
) -> tuple[np.ndarray, np.ndarray, pd.DataFrame, dict]:
    """Particles placed outside ``excluded`` and projected at random orientations.

    Returns their phase on the padded FFT ``canvas`` (micrograph at offset ``pad``), the
    instance labels (where particles overlap, a pixel belongs to the one with more density
    there), one row per particle and what was drawn."""
    h, w, px = s.height, s.width, s.pixel_size
    spread = s.particle_count_spread
    n_target = int(round(s.particles_per_micrograph * (1 + spread * rng.uniform(-1, 1))))
    choice = rng.integers(len(volumes), size=n_target)
    radii = np.array([volumes[c].radius / px for c in choice])
    centres, owner = _place_particles(rng, s, radii, excluded)
    rotations = random_rotations(rng, max(len(owner), 1))
    matrices = rotations.as_matrix()[: len(owner)]
    phase = np.zeros(canvas, dtype=np.float32)
    best = np.zeros((h, w), dtype=np.float32)
    instances = np.zeros((h, w), dtype=np.uint16)
    rows = []
    for i, (c, (x, y)) in enumerate(zip(owner, centres)):
        vol = volumes[choice[c]]
        box, x0, y0 = project(vol, matrices[i], px, (float(x), float(y)))
        box *= np.float32(sigma_e)
        where = _paste(best, box, x0, y0)
        label = len(rows) + 1
        if where is None:
            continue
        dst, src = where
        sub = box[src]
        support = sub > s.mask_threshold * float(box.max())
        if not support.any():
            continue
        padded = _paste(phase, box, x0 + pad, y0 + pad)
        phase[padded[0]] += box[padded[1]]
        better = support & (sub > best[dst])
        instances[dst][better] = label
        best[dst][better] = sub[better]
        rot, tilt, psi = Rotation.from_matrix(matrices[i]).as_euler("ZYZ", degrees=True)
        rows.append(
            {
                "label": label,
                "x": float(x),
                "y": float(y),
                "diameter": vol.diameter / px,
                "volume": int(choice[c]),
                "kind": vol.kind,
                "rot": rot,
                "tilt": tilt,
                "psi": psi,
                "in_image": bool(0 <= x <= w - 1 and 0 <= y <= h - 1),
            }
        )
    particles = pd.DataFrame(rows, columns=PARTICLE_COLUMNS)
    if len(particles):
        visible = np.bincount(instances.ravel(), minlength=len(particles) + 1)[1:]
        particles["visible_pixels"] = visible[: len(particles)]
    else:
        particles["visible_pixels"] = pd.Series(dtype=int)
    info = {
        "particles_requested": n_target,
        "particles_placed": int(len(particles)),
        "particles_in_image": int(particles["in_image"].sum()),
    }
    return phase, instances, particles, info


def _ice_texture(
    rng: np.random.Generator,
    s: SyntheticSettings,
    sigma_e: float,
    thickness: np.ndarray,
    carbon_mask: np.ndarray | None,
    pad: int,
    canvas: tuple[int, int],
) -> np.ndarray:
    """Amorphous-ice (and carbon) phase texture on the padded canvas: white noise scaled by
    the local thickness (its water spectrum comes with the CTF)."""
    h, w = s.height, s.width
    ice_sigma = _ice_sigma(s, sigma_e, thickness)
    if carbon_mask is not None:
        ice_sigma[carbon_mask] *= 3.0
    texture = rng.standard_normal(canvas, dtype=np.float32)
    texture *= np.pad(ice_sigma, _pad_width(pad, canvas, h, w), mode="edge")
    return texture


def _ice_sigma(s: SyntheticSettings, sigma_e: float, thickness: np.ndarray) -> np.ndarray:
    """Per-pixel sigma (rad) of the amorphous-ice phase texture: the Poisson fluctuation of the
    number of water molecules in a column (0 where there is no ice)."""
    px = s.pixel_size
    return (
        s.ice_texture
        * sigma_e
        * WATER_POTENTIAL_V
        * np.sqrt(thickness / (WATER_MOLECULES_PER_A3 * px * px)).astype(np.float32)
    )


def _pad_width(pad: int, canvas: tuple[int, int], h: int, w: int):
    """np.pad's widths that put an (h, w) image at offset ``pad`` on ``canvas``."""
    return ((pad, canvas[0] - h - pad), (pad, canvas[1] - w - pad))


def _through_ctf(
    spectrum: np.ndarray, ctf_f: np.ndarray, canvas: tuple[int, int], pad: int, h: int, w: int
) -> np.ndarray:
    """Contrast of a phase given by its ``spectrum`` (consumed) on the padded canvas, cropped
    to the micrograph; ``ctf_f`` is 2 x CTF (the weak-phase approximation)."""
    spectrum *= ctf_f
    return _crop(scipy.fft.irfft2(spectrum, s=canvas), pad, h, w)


def _ctf_filter(s: SyntheticSettings, ctf: CTFParams, canvas: tuple[int, int]) -> np.ndarray:
    """One CTF for everything, on the rfft grid of the padded canvas, times 2: contrast =
    2 * CTF (x) phase in the weak-phase approximation."""
    ctf_f = ctf_rfft(canvas, s.pixel_size, ctf, phase_flipped=s.phase_flipped)
    ctf_f *= 2.0
    return ctf_f


def _background_contrast(
    s: SyntheticSettings,
    texture_spectrum: np.ndarray,
    obstacle_phase: np.ndarray,
    ctf_f: np.ndarray,
    pad: int,
    canvas: tuple[int, int],
) -> np.ndarray:
    """Contrast of the specimen background: the ice texture (its spectrum, consumed) with the
    water structure factor, plus the phase of carbon, contaminants and aggregates."""
    h, w, px = s.height, s.width, s.pixel_size
    texture_spectrum *= water_structure_filter(canvas, px)
    texture_spectrum += scipy.fft.rfft2(
        np.pad(obstacle_phase, _pad_width(pad, canvas, h, w), mode="edge")
    )
    return _through_ctf(texture_spectrum, ctf_f, canvas, pad, h, w)


def _intensity(
    rng: np.random.Generator,
    s: SyntheticSettings,
    background: np.ndarray,
    particle: np.ndarray,
    optical_density: np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:
    """Intensity ``T * g * (1 + contrast)`` with the transmission ``T = exp(-od)`` and a smooth
    gain drift ``g``; returns it and the particle signal in intensity units (both computed in
    place of ``background`` and ``particle``)."""
    transmission = np.exp(-optical_density)
    if s.drift:
        transmission *= 1 + np.float32(s.drift) * smooth_field(rng, (s.height, s.width), 2)
    clean = background
    clean += 1.0
    clean += particle
    clean *= transmission
    particle *= transmission  # the particle signal in intensity units
    return clean, particle


def _add_noise(
    noise_rng: np.random.Generator,
    s: SyntheticSettings,
    clean: np.ndarray,
    particle: np.ndarray,
    particle_mask: np.ndarray,
) -> tuple[np.ndarray, dict]:
    """The recorded image: shot noise at the dose (``clean`` and ``particle`` are scaled to
    counts in place), Gaussian noise at the SNR, or none; and the noise drawn. SNR is the
    particle signal's variance over the particle mask divided by the noise variance."""
    info: dict = {}
    inside = particle_mask if particle_mask.any() else np.ones_like(particle_mask)
    signal_var = float(np.var(particle[inside], dtype=np.float64))
    if s.noise == "dose":
        scale = np.float32(s.dose * s.pixel_size * s.pixel_size)
        clean *= scale
        particle *= scale
        image = _shot_noise(noise_rng, clean, s.exact_poisson_below)
        info["snr_estimate"] = (
            signal_var * float(scale) ** 2 / max(float(clean[inside].mean()), 1e-12)
        )
        info["mean_counts_per_pixel"] = float(clean.mean())
    elif s.noise == "snr":
        noise_sigma = math.sqrt(signal_var / s.snr)
        image = noise_rng.standard_normal((s.height, s.width), dtype=np.float32)
        image *= np.float32(noise_sigma)
        image += clean
        info.update(noise_sigma=noise_sigma, snr_estimate=s.snr)
    else:
        image = clean.copy()
    return image, info


def generate_micrograph(
    settings: SyntheticSettings,
    index: int,
    seed: int,
    *,
    keep_components: bool = False,
    volumes: list[Volume] | None = None,
) -> SyntheticMicrograph:
    """Micrograph ``index`` of the data set with ``seed``; see the module docstring.

    ``volumes`` may pass a precomputed :func:`volume_family` (same settings and seed) to save
    rebuilding it; ``keep_components`` also returns the noise-free image and the particle
    signal (for tests and figures; they cost memory). The phases below draw from one random
    stream in this order, so their order is part of what a seed means; the optional classes
    draw from streams of their own (see the module docstring)."""
    s = settings
    h, w, px = s.height, s.width, s.pixel_size
    rng = _rng(seed, 1, index)
    if volumes is None:
        volumes = volume_family(s, seed)
    sigma_e = interaction_constant(s.voltage)
    info: dict = {
        "index": int(index),
        "seed": int(seed),
        "content_seed_sequence": [int(seed), 1, int(index)],
        "noise_seed_sequence": [int(seed), 2, int(index)],
    }

    ctf = _draw_optics(rng, s)
    thickness, t_mean, drawn = _draw_ice(rng, s, _rng(seed, WEDGE_STREAM, index))
    info.update(drawn)
    carbon_mask, drawn = _carbon(rng, s)
    info.update(drawn)
    crack_mask, empty_mask, drawn = _draw_voids(s, seed, index, carbon_mask)
    info.update(drawn)
    void = crack_mask | empty_mask
    thickness[void] = 0  # no ice: no optical density, no texture
    ice_mask = thickness > s.thick_ice_threshold * t_mean
    info["thick_ice_fraction"] = float(ice_mask.mean())
    optical_density = thickness / np.float32(s.ice_mean_free_path)
    contamination_mask, aggregate_mask, obstacle_phase, drawn = _draw_obstacles(
        rng, s, sigma_e, optical_density, carbon_mask
    )
    info.update(drawn)
    crystalline_ice_mask = np.zeros((h, w), dtype=bool)
    if s.crystalline_ice_probability > 0:
        crystalline_ice_mask, drawn = _crystalline_ice(
            _rng(seed, CRYSTAL_STREAM, index),
            s,
            sigma_e,
            thickness,
            obstacle_phase,
        )
        info.update(drawn)
    if s.dense_aggregates_per_um2 > 0:
        info["dense_aggregates"] = _dense_aggregates(
            _rng(seed, DENSE_STREAM, index), s, volumes, sigma_e, obstacle_phase, aggregate_mask
        )
    if void.any():  # nothing lies on a hole in the ice
        obstacle_phase[void] = 0
        optical_density[void] = 0
        contamination_mask &= ~void
        aggregate_mask &= ~void
    del void
    # the CTF spreads each point over a disc of radius ~ lambda dz k + Cs lambda^3 k^3: render
    # phases on a canvas padded by that much so that nothing wraps round the edges in the FFT
    pad, canvas = _fft_padding(ctf, px, h, w)
    excluded = _union(
        ice_mask,
        contamination_mask,
        carbon_mask,
        aggregate_mask,
        crack_mask,
        empty_mask,
        crystalline_ice_mask,
    )
    particle_phase, instances, particles, drawn = _draw_particles(
        rng, s, volumes, sigma_e, excluded, pad, canvas
    )
    info.update(drawn)
    del excluded
    particle_mask = instances > 0
    # texture, then one CTF for everything, in Fourier space
    ctf_f = _ctf_filter(s, ctf, canvas)
    spectrum = scipy.fft.rfft2(
        _ice_texture(
            rng, s, sigma_e, thickness, carbon_mask if info["carbon"] else None, pad, canvas
        )
    )
    del thickness
    background = _background_contrast(s, spectrum, obstacle_phase, ctf_f, pad, canvas)
    del spectrum, obstacle_phase
    spectrum = scipy.fft.rfft2(particle_phase)
    particle_phase = _crop(particle_phase, pad, h, w) if keep_components else None
    particle = _through_ctf(spectrum, ctf_f, canvas, pad, h, w)
    del spectrum, ctf_f
    clean, particle = _intensity(rng, s, background, particle, optical_density)
    del background, optical_density
    image, drawn = _add_noise(_rng(seed, 2, index), s, clean, particle, particle_mask)
    info.update(drawn)
    if not s.particles_dark:
        image = -image
        clean = -clean
        particle = -particle
    if s.rendering == "filtered_8bit":
        image = render_filtered_8bit(image)
    info.update(ctf=asdict(ctf), rendering=s.rendering)
    return SyntheticMicrograph(
        image=image.astype(np.float32, copy=False),
        pixel_size=px,
        particles=particles,
        instances=instances,
        particle_mask=particle_mask,
        ice_mask=ice_mask,
        contamination_mask=contamination_mask,
        carbon_mask=carbon_mask,
        aggregate_mask=aggregate_mask,
        crack_mask=crack_mask,
        empty_mask=empty_mask,
        crystalline_ice_mask=crystalline_ice_mask,
        ctf=ctf,
        info=info,
        noise_free=clean if keep_components else None,
        particle_signal=particle if keep_components else None,
        particle_phase=particle_phase,
    )


def render_filtered_8bit(image: np.ndarray) -> np.ndarray:
    """The micrograph as CryoPPP distributes real ones: filtered at full resolution, 8-bit.

    Real labelled sets (EMPIAR-10017 in ../shared among them) come as JPGs that went through
    CryoSegNet's denoising chain before anyone saw them; a model trained on raw synthetic
    counts meets a different image there. Values stay 0..255 (float32 for the MRC).
    """
    from cryopick.denoise import DenoiseSettings, denoise_image, frame_for

    size = max(image.shape)
    frame = frame_for(image.shape, size)
    canvas = denoise_image(image, DenoiseSettings(size=size), frame)
    return canvas[: image.shape[0], : image.shape[1]].astype(np.float32)


def _fft_padding(ctf: CTFParams, pixel_size: float, h: int, w: int) -> tuple[int, tuple[int, int]]:
    """Margin (px) covering the CTF's delocalisation at Nyquist, and a fast FFT canvas size."""
    k = 0.5 / pixel_size
    lam = ctf.wavelength
    reach = lam * max(ctf.defocus_u, ctf.defocus_v) * k + ctf.cs_mm * 1e7 * lam**3 * k**3
    pad = min(int(math.ceil(reach / pixel_size)) + 8, max(h, w) // 2)
    canvas = (
        scipy.fft.next_fast_len(h + 2 * pad, real=True),
        scipy.fft.next_fast_len(w + 2 * pad, real=True),
    )
    return pad, canvas


def _crop(image: np.ndarray, pad: int, h: int, w: int) -> np.ndarray:
    return np.ascontiguousarray(image[pad : pad + h, pad : pad + w])


def _shot_noise(rng: np.random.Generator, expected: np.ndarray, exact_below: float) -> np.ndarray:
    """Electron counts: Poisson where few are expected, the Gaussian limit elsewhere.

    For a mean above ~30 the Poisson distribution is Gaussian with variance = mean to well
    within a percent, and drawing it is 8x faster; counts are rounded to integers either way.
    """
    expected = np.maximum(expected, 0)
    counts = rng.standard_normal(expected.shape, dtype=np.float32)
    counts *= np.sqrt(expected)
    counts += expected
    np.rint(counts, out=counts)
    np.maximum(counts, 0, out=counts)
    if float(expected.min()) < exact_below:
        few = expected < exact_below
        counts[few] = rng.poisson(expected[few].astype(np.float64)).astype(np.float32)
    return counts


# ----------------------------------------------------------------------------------------------
# writing a data set
# ----------------------------------------------------------------------------------------------


def _write_png(path: Path, image: np.ndarray) -> None:
    ok, data = cv2.imencode(".png", image)
    if not ok:
        raise OSError(f"{path}: PNG encoding failed")
    with atomic_path(path) as tmp:
        tmp.write_bytes(data.tobytes())


def _json_default(value):
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    raise TypeError(f"not JSON serialisable: {type(value)}")


def _write_json(path: Path, payload: dict) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(payload, indent=1, sort_keys=True, default=_json_default) + "\n")


def write_micrograph(
    settings: SyntheticSettings,
    out_dir: str | os.PathLike,
    name: str,
    index: int,
    seed: int,
    volumes: list[Volume] | None = None,
) -> SyntheticMicrograph:
    """Generate micrograph ``index`` and write all of its files (see micrograph_outputs)."""
    m = generate_micrograph(settings, index, seed, volumes=volumes)
    write_micrograph_files(m, out_dir, name)
    return m


def write_micrograph_files(m: SyntheticMicrograph, out_dir: str | os.PathLike, name: str) -> None:
    """Write a generated micrograph and its ground truth in the data-set layout."""
    paths = micrograph_outputs(out_dir, name)
    write_mrc(paths["micrograph"], m.image, m.pixel_size, label="cryopick synthetic micrograph")
    coords = m.coordinates
    lines = ["X-Coordinate,Y-Coordinate,Diameter"]
    lines += [
        f"{round(x)},{round(y)},{round(d)}"
        for x, y, d in zip(coords["x"], coords["y"], coords["diameter"])
    ]
    with atomic_path(paths["coordinates"]) as tmp:
        tmp.write_text("\n".join(lines) + "\n")
    write_star(paths["coordinates_star"], coords)
    _write_png(paths["mask"], m.particle_mask.astype(np.uint8) * 255)
    _write_png(paths["instances"], m.instances)
    _write_png(paths["exclusion"], m.exclusion_mask.astype(np.uint8) * 255)
    with atomic_path(paths["exclusion_classes"]) as tmp:
        with open(tmp, "wb") as handle:
            np.savez_compressed(handle, **m.background_masks)
    with atomic_path(paths["particles"]) as tmp:
        m.particles.to_csv(tmp, sep="\t", index=False, float_format="%.3f")
    _write_json(paths["parameters"], {"name": name, **m.info})


def dataset_parameters(
    settings: SyntheticSettings, n_micrographs: int, seed: int, name_prefix: str
) -> dict:
    """What parameters.json holds: every setting, the seed and how seeds are derived."""
    from cryopick import __version__

    return {
        "cryopick_version": __version__,
        "settings": asdict(settings),
        "seed": int(seed),
        "n_micrographs": int(n_micrographs),
        "name_prefix": name_prefix,
        "micrographs": synthetic_micrograph_names(name_prefix, n_micrographs),
        "seed_derivation": {
            "volumes": "numpy SeedSequence([seed, 0])",
            "micrograph content": "numpy SeedSequence([seed, 1, index])",
            "micrograph noise": "numpy SeedSequence([seed, 2, index])",
            "ice wedge, cracks, empty area, crystalline ice, dense aggregates": "numpy "
            "SeedSequence([seed, 3..7, index]), each drawn only when enabled",
        },
        "snr_definition": "variance of the noise-free particle image over the union particle "
        "mask / noise variance (expected counts for shot noise)",
    }


def write_parameters(
    settings: SyntheticSettings,
    out_dir: str | os.PathLike,
    n_micrographs: int,
    seed: int,
    name_prefix: str,
) -> Path:
    path = Path(out_dir) / "parameters.json"
    _write_json(path, dataset_parameters(settings, n_micrographs, seed, name_prefix))
    return path


def write_dataset(
    settings: SyntheticSettings,
    out_dir: str | os.PathLike,
    n_micrographs: int,
    seed: int,
    name_prefix: str = "synthetic",
) -> list[str]:
    """A complete synthetic data set in the layout of a real one; returns the names."""
    names = synthetic_micrograph_names(name_prefix, n_micrographs)
    volumes = volume_family(settings, seed)
    for index, name in enumerate(names):
        write_micrograph(settings, out_dir, name, index, seed, volumes=volumes)
    write_parameters(settings, out_dir, n_micrographs, seed, name_prefix)
    return names
