"""Training masks from particle coordinates: discs, and discs refined to the visible support.

Real data sets come with centres (and a diameter), not masks. A disc of the labelled diameter
is the usual target (CryoSegNet trains on them) but it marks ice inside the disc of a small or
elongated particle as particle and cuts off large ones; the refined map keeps, around each
centre, the pixels that look like that particle in the denoised micrograph, so that the
network learns the particle's support rather than a disc.

Masks are uint8 with 0 (background) and 255 (particle), the layout of ground-truth mask PNGs.
"""

from __future__ import annotations

import math

import cv2
import numpy as np
from scipy import ndimage


def _as_arrays(x, y, diameter) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    x = np.atleast_1d(np.asarray(x, dtype=np.float64))
    y = np.atleast_1d(np.asarray(y, dtype=np.float64))
    d = np.broadcast_to(np.asarray(diameter, dtype=np.float64), x.shape).copy()
    if x.shape != y.shape:
        raise ValueError(f"x and y differ in length ({len(x)} vs {len(y)})")
    if np.any(~np.isfinite(d)) or np.any(d <= 0):
        raise ValueError("diameters must be finite and > 0")
    return x, y, d


def _window(shape, cx, cy, radius):
    """Slices of an image of ``shape`` around (cx, cy) and the pixel offsets of the window."""
    r = int(math.ceil(radius)) + 1
    ya, yb = max(int(math.floor(cy)) - r, 0), min(int(math.floor(cy)) + r + 2, shape[0])
    xa, xb = max(int(math.floor(cx)) - r, 0), min(int(math.floor(cx)) + r + 2, shape[1])
    if ya >= yb or xa >= xb:
        return None
    dy = np.arange(ya, yb, dtype=np.float64)[:, None] - cy
    dx = np.arange(xa, xb, dtype=np.float64)[None, :] - cx
    return (slice(ya, yb), slice(xa, xb)), dx * dx + dy * dy


def disc_label_map(shape: tuple[int, int], x, y, diameter) -> np.ndarray:
    """Filled discs of ``diameter`` (scalar or one per particle) at (x, y): uint8 0/255.

    A pixel belongs to a disc when its centre lies within diameter / 2 of the particle centre
    (pixel centres at integer coordinates, x = column, y = row).
    """
    x, y, d = _as_arrays(x, y, diameter)
    mask = np.zeros(tuple(int(v) for v in shape), dtype=np.uint8)
    for cx, cy, di in zip(x, y, d):
        where = _window(mask.shape, cx, cy, di / 2)
        if where is None:
            continue
        sl, r2 = where
        mask[sl][r2 <= (di / 2) ** 2] = 255
    return mask


def particle_polarity(image: np.ndarray, x, y, diameter) -> bool:
    """True when particles are darker than their surroundings (cores vs rings around them)."""
    x, y, d = _as_arrays(x, y, diameter)
    core, ring = [], []
    img = np.asarray(image, dtype=np.float32)
    for cx, cy, di in zip(x, y, d):
        where = _window(img.shape, cx, cy, 0.9 * di)
        if where is None:
            continue
        sl, r2 = where
        values = img[sl]
        rad = di / 2
        core.append(values[r2 <= (0.4 * rad) ** 2])
        ring.append(values[(r2 >= (1.2 * rad) ** 2) & (r2 <= (1.8 * rad) ** 2)])
    if not core:
        return True
    return float(np.median(np.concatenate(core))) <= float(np.median(np.concatenate(ring)))


def refined_label_map(
    denoised: np.ndarray,
    x,
    y,
    diameter,
    *,
    particles_dark: bool | None = None,
    max_radius: float = 1.25,
    core_radius: float = 0.35,
    smoothing: float = 0.06,
    min_contrast: float = 1.0,
    level: float = 0.3,
    area_range: tuple[float, float] = (0.08, 1.8),
) -> np.ndarray:
    """Masks that follow each particle's visible support in a denoised micrograph (0/255).

    For each particle: the image is smoothed (sigma = ``smoothing`` x diameter), turned into a
    "particle-ness" (darkness for dark particles), and thresholded at ``level`` of the way from
    the median of a ring just outside the labelled disc to the median of its core disc (radius
    ``core_radius`` x d/2); a low level because a projection falls off gradually towards its
    edge (half way would cut a sphere's projection at 87% of its radius). Pixels are kept
    within ``max_radius`` x d/2, only where this particle's centre is the nearest one (so
    touching particles do not merge), connected to the centre, holes filled, edges
    opened/closed. Where the particle is not visible (core and ring differ
    by less than ``min_contrast`` robust standard deviations of the ring) or the result is
    implausible (area outside ``area_range`` x the disc area) the disc is used instead.
    ``particles_dark=None`` decides the polarity from the image.
    """
    x, y, d = _as_arrays(x, y, diameter)
    img = np.asarray(denoised, dtype=np.float32)
    shape = img.shape
    mask = np.zeros(shape, dtype=np.uint8)
    if len(x) == 0:
        return mask
    if particles_dark is None:
        particles_dark = particle_polarity(img, x, y, d)
    sigma = max(0.5, smoothing * float(np.median(d)))
    smooth = cv2.GaussianBlur(img, (0, 0), sigma)
    score = -smooth if particles_dark else smooth
    # nearest labelled centre for every pixel (Voronoi cells), centres clipped into the image
    seeds = np.ones(shape, dtype=bool)
    cols = np.clip(np.round(x).astype(int), 0, shape[1] - 1)
    rows = np.clip(np.round(y).astype(int), 0, shape[0] - 1)
    seeds[rows, cols] = False
    _, (near_r, near_c) = ndimage.distance_transform_edt(seeds, return_indices=True)
    owner_at = np.full(shape, -1, dtype=np.int64)
    owner_at[rows, cols] = np.arange(len(x))
    owner = owner_at[near_r, near_c]
    del near_r, near_c
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (3, 3))
    for i, (cx, cy, di) in enumerate(zip(x, y, d)):
        rad = di / 2
        where = _window(shape, cx, cy, 1.6 * rad)
        if where is None:
            continue
        sl, r2 = where
        values = score[sl]
        core = r2 <= (core_radius * rad) ** 2
        seed = r2 <= max(0.15 * rad, 1.0) ** 2
        ring = (r2 >= (1.05 * rad) ** 2) & (r2 <= (1.5 * rad) ** 2)
        disc = r2 <= rad * rad
        mine = owner[sl] == i
        if not core.any() or not ring.any():
            mask[sl][disc & mine] = 255
            continue
        inner = float(np.median(values[core]))
        outer_values = values[ring]
        outer = float(np.median(outer_values))
        spread = 1.4826 * float(np.median(np.abs(outer_values - outer))) or 1e-6
        if inner - outer < min_contrast * spread:  # not visible: keep the label's disc
            mask[sl][disc] = 255
            continue
        threshold = outer + level * (inner - outer)
        keep = (values > threshold) & (r2 <= (max_radius * rad) ** 2) & mine
        keep = cv2.morphologyEx(keep.astype(np.uint8), cv2.MORPH_OPEN, kernel).astype(bool)
        keep |= seed
        labels, _ = ndimage.label(keep)
        centre_labels = np.unique(labels[seed])
        keep = np.isin(labels, centre_labels[centre_labels > 0])
        keep = (
            ndimage.binary_fill_holes(
                cv2.morphologyEx(keep.astype(np.uint8), cv2.MORPH_CLOSE, kernel).astype(bool)
            )
            & mine
        )
        area = float(keep.sum())
        disc_area = float(disc.sum())
        if not area_range[0] * disc_area <= area <= area_range[1] * disc_area:
            keep = disc
        mask[sl][keep] = 255
    return mask


LABEL_METHODS = ("disc", "refined")


def network_label_map(
    image: np.ndarray, frame, x, y, diameter, method: str = "disc", **refine
) -> np.ndarray:
    """A label map on the network canvas of a denoised micrograph (see cryopick.denoise).

    ``x``, ``y`` and ``diameter`` are in pixels of the micrograph file; they are mapped with
    ``frame.to_network`` and ``frame.scale``. Padding outside the micrograph stays 0.
    """
    if method not in LABEL_METHODS:
        raise ValueError(f"label method must be one of {LABEL_METHODS}, got {method!r}")
    x, y, d = _as_arrays(x, y, diameter)
    xn, yn = frame.to_network(x, y)
    dn = d / frame.scale
    if method == "disc":
        mask = disc_label_map(np.shape(image), xn, yn, dn)
    else:
        mask = refined_label_map(image, xn, yn, dn, **refine)
    mask[~frame.content_mask] = 0
    return mask


def label_map_file(
    denoised_path, labels_path, out_path, *, diameter_a: float, method: str = "refined", **refine
) -> dict:
    """Write the label map (PNG, network canvas) of one micrograph; return counts for the log.

    Diameters come from the label file where it has them (CryoPPP Diameter, .box size), else
    from ``diameter_a`` (A) and the micrograph's pixel size.
    """
    from cryopick.denoise import load_denoised
    from cryopick.io import atomic_path, read_coordinates

    denoised = load_denoised(denoised_path)
    fallback_px = diameter_a / denoised.original_pixel_size
    coords = read_coordinates(labels_path, box_size=fallback_px)
    diameter = coords["diameter"].to_numpy(dtype=np.float64)
    diameter = np.where(np.isfinite(diameter) & (diameter > 0), diameter, fallback_px)
    mask = network_label_map(
        denoised.image,
        denoised.frame,
        coords["x"].to_numpy(),
        coords["y"].to_numpy(),
        diameter,
        method=method,
        **refine,
    )
    ok, data = cv2.imencode(".png", mask)
    if not ok:
        raise OSError(f"{out_path}: PNG encoding failed")
    with atomic_path(out_path) as tmp:
        tmp.write_bytes(data.tobytes())
    content = denoised.frame.content_mask
    pixels = int((mask[content] > 0).sum())
    return {"particles": len(coords), "pixels": pixels, "fraction": pixels / int(content.sum())}
