"""Pseudo-atomic 3D densities and their projections.

A volume is a cloud of Gaussian "atoms" of one width. Atoms make projection cheap and exact:
the projection of a sum of 3D Gaussians along z is the sum of 2D Gaussians at the rotated
atoms' (x, y). So a projection at any orientation is a rotation of an (N, 3) array, a bilinear
splat into a small box and one Gaussian blur, with no interpolation of a voxel grid.

Atom weights are in V * A^3 (potential excess over vitreous ice times the volume an atom stands
for), so a projection divided by the pixel area is a projected potential in V * A, which the
caller turns into a phase shift with :func:`cryopick.ctf.interaction_constant`.

Shapes (so that a model does not learn one particle): globular (an ellipsoid with lobes),
elongated (a bent rod of domains), ring (a Cn ring with a hole), oligomer (a Cn or Dn
assembly of an asymmetric subunit), multidomain (an asymmetric chain of unequal domains).
Users' own maps come in through :func:`volume_from_mrc`.
"""

from __future__ import annotations

import math
import os
import warnings
from dataclasses import dataclass

import cv2
import numpy as np
from scipy.spatial.transform import Rotation

from cryopick.io import InputError
from cryopick.synthetic_settings import (  # noqa: F401 (the kinds are named with the settings)
    ALL_VOLUME_KINDS,
    MAX_DIAMETER_A,
    MIN_DIAMETER_A,
    VOLUME_KINDS,
)


@dataclass(frozen=True)
class Volume:
    """Atoms (N, 3) in A about the centre of mass, weights (N,) in V*A^3, one atom width."""

    coords: np.ndarray
    weights: np.ndarray
    sigma: float  # atom standard deviation, A
    kind: str
    diameter: float  # twice the largest atom distance from the centre, A

    @property
    def radius(self) -> float:
        return 0.5 * self.diameter


# ----------------------------------------------------------------------------------------------
# shapes as unions of ellipsoids
# ----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Ellipsoid:
    centre: np.ndarray  # (3,)
    axes: np.ndarray  # (3,) semi-axes
    rotation: np.ndarray  # (3, 3), body to world


def _random_rotation(rng: np.random.Generator) -> np.ndarray:
    return Rotation.random(random_state=rng).as_matrix()


def _ellipsoid(rng, centre, axes) -> _Ellipsoid:
    return _Ellipsoid(np.asarray(centre, float), np.asarray(axes, float), _random_rotation(rng))


def _globular(rng: np.random.Generator) -> list[_Ellipsoid]:
    body = _ellipsoid(rng, (0, 0, 0), (1.0, rng.uniform(0.75, 1.0), rng.uniform(0.65, 0.95)))
    parts = [body]
    for _ in range(int(rng.integers(3, 7))):  # surface lobes
        direction = rng.normal(size=3)
        direction /= np.linalg.norm(direction)
        surface = body.rotation @ (body.axes * (body.rotation.T @ direction))
        r = rng.uniform(0.2, 0.4)
        parts.append(_ellipsoid(rng, surface * (1 - 0.4 * r), (r, r * rng.uniform(0.6, 1), r)))
    return parts


def _elongated(rng: np.random.Generator) -> list[_Ellipsoid]:
    n = int(rng.integers(3, 7))
    width = rng.uniform(0.25, 0.42)
    bend = rng.uniform(-0.35, 0.35)
    t = np.linspace(-1, 1, n)
    parts = []
    for ti in t:
        centre = (ti, bend * (ti * ti - 0.33), 0.05 * rng.normal())
        axes = (1.3 / (n - 1), width * rng.uniform(0.8, 1.2), width * rng.uniform(0.7, 1.0))
        rot = Rotation.from_euler("z", math.atan(2 * bend * ti)).as_matrix()
        parts.append(_Ellipsoid(np.asarray(centre), np.asarray(axes), rot))
    return parts


def _ring(rng: np.random.Generator) -> list[_Ellipsoid]:
    n = int(rng.integers(5, 10))
    ring_radius = 0.68
    sub = ring_radius * math.sin(math.pi / n) * rng.uniform(1.1, 1.35)
    height = rng.uniform(0.25, 0.55)
    parts = []
    for i in range(n):
        angle = 2 * math.pi * i / n
        centre = (ring_radius * math.cos(angle), ring_radius * math.sin(angle), 0.0)
        rot = Rotation.from_euler("z", angle).as_matrix()
        parts.append(_Ellipsoid(np.asarray(centre), np.asarray((sub, sub * 0.9, height)), rot))
    return parts


def _symmetry_operators(rng: np.random.Generator) -> list[np.ndarray]:
    if rng.random() < 0.5:  # cyclic
        n = int(rng.integers(2, 8))
        return [Rotation.from_euler("z", 2 * math.pi * i / n).as_matrix() for i in range(n)]
    n = int(rng.integers(2, 5))  # dihedral (beta-galactosidase is D2)
    cyclic = [Rotation.from_euler("z", 2 * math.pi * i / n).as_matrix() for i in range(n)]
    flip = Rotation.from_euler("x", math.pi).as_matrix()
    return cyclic + [flip @ c for c in cyclic]


def _oligomer(rng: np.random.Generator) -> list[_Ellipsoid]:
    operators = _symmetry_operators(rng)
    n = len(operators)
    offset = np.array([rng.uniform(0.35, 0.55), rng.uniform(-0.1, 0.1), rng.uniform(0.15, 0.35)])
    size = rng.uniform(0.3, 0.45) * (4 / max(n, 4)) ** 0.33
    subunit = [_ellipsoid(rng, offset, (size, size * rng.uniform(0.5, 0.9), size * 0.7))]
    for _ in range(int(rng.integers(1, 3))):  # asymmetric extra domains of the subunit
        d = rng.normal(size=3)
        d *= size / np.linalg.norm(d)
        s = size * rng.uniform(0.45, 0.7)
        subunit.append(_ellipsoid(rng, offset + d, (s, s * 0.8, s * 0.7)))
    parts = []
    for op in operators:
        for e in subunit:
            parts.append(_Ellipsoid(op @ e.centre, e.axes, op @ e.rotation))
    return parts


def _clump(
    rng: np.random.Generator,
    root_axes: tuple[float, float, float],
    n_children: tuple[int, int],
    radius: tuple[float, float],
    gap: float,
    third_axis: tuple[float, float],
) -> list[_Ellipsoid]:
    """A root ellipsoid and ``n_children`` (drawn in that range) more, each of a radius drawn in
    ``radius`` and attached in a random direction to a random earlier part, its centre at the
    parent's mean semi-axis plus ``gap`` x its radius."""
    parts = [_ellipsoid(rng, (0, 0, 0), root_axes)]
    for _ in range(int(rng.integers(*n_children))):
        parent = parts[int(rng.integers(len(parts)))]
        d = rng.normal(size=3)
        d /= np.linalg.norm(d)
        r = rng.uniform(*radius)
        reach = float(parent.axes.mean()) + gap * r
        parts.append(
            _ellipsoid(
                rng,
                parent.centre + reach * d,
                (r, r * rng.uniform(0.6, 1.0), r * rng.uniform(*third_axis)),
            )
        )
    return parts


def _multidomain(rng: np.random.Generator) -> list[_Ellipsoid]:
    return _clump(rng, (0.45, 0.35, 0.3), (2, 5), (0.18, 0.4), 0.7, (0.5, 0.9))


def _shell(rng: np.random.Generator) -> list[_Ellipsoid]:
    """A hollow cage: flattened subunits tiling a sphere (ferritin has 24, small capsids 60),
    so that projections show a dense rim around a lighter centre."""
    n = int(rng.choice((12, 24, 32, 60)))
    radius = 0.8
    thickness = rng.uniform(0.12, 0.22)
    # a Fibonacci lattice spreads n points evenly over the sphere
    k = np.arange(n) + 0.5
    polar = np.arccos(1 - 2 * k / n)
    azimuth = math.pi * (1 + math.sqrt(5)) * k
    normals = np.stack(
        [np.sin(polar) * np.cos(azimuth), np.sin(polar) * np.sin(azimuth), np.cos(polar)], axis=1
    )
    half_spacing = radius * math.sqrt(math.pi / n) * rng.uniform(1.05, 1.25)
    parts = []
    for normal in normals:
        # a frame whose third axis is the outward normal: the subunit lies flat on the sphere
        helper = np.array([1.0, 0.0, 0.0]) if abs(normal[0]) < 0.9 else np.array([0.0, 1.0, 0.0])
        first = np.cross(normal, helper)
        first /= np.linalg.norm(first)
        rotation = np.stack([first, np.cross(normal, first), normal], axis=1)
        axes = (half_spacing, half_spacing * rng.uniform(0.8, 1.0), thickness)
        parts.append(_Ellipsoid(radius * normal, np.asarray(axes), rotation))
    return parts


def _aggregate(rng: np.random.Generator) -> list[_Ellipsoid]:
    """Not a particle: a random-walk clump of many small blobs (protein aggregate)."""
    return _clump(rng, (0.25, 0.2, 0.2), (6, 20), (0.1, 0.25), 0.5, (0.5, 1.0))


_SHAPES = {
    "aggregate": _aggregate,
    "globular": _globular,
    "elongated": _elongated,
    "ring": _ring,
    "oligomer": _oligomer,
    "multidomain": _multidomain,
    "shell": _shell,
}


def _cover_count(points: np.ndarray, parts: list[_Ellipsoid]) -> np.ndarray:
    """How many of the ellipsoids contain each point."""
    count = np.zeros(len(points), dtype=np.int32)
    for e in parts:
        local = (points - e.centre) @ e.rotation / e.axes
        count += np.einsum("ij,ij->i", local, local) <= 1.0
    return count


def _fill(
    rng: np.random.Generator, parts: list[_Ellipsoid], n_atoms: int
) -> tuple[np.ndarray, float]:
    """Sample ``n_atoms`` points uniformly inside the union; return them and its volume.

    Points are drawn from the ellipsoids in proportion to their volumes and kept with
    probability 1 / (number of ellipsoids covering them), which is uniform on the union
    however sparse the union is in its bounding box; the union's volume is the sum of the
    volumes times the mean of that probability.
    """
    volumes = np.array([4 / 3 * math.pi * float(np.prod(e.axes)) for e in parts])
    total = float(volumes.sum())
    points, weights_sum, drawn = [], 0.0, 0
    need = n_atoms
    while need > 0:
        m = max(2 * need, 512)
        which = rng.choice(len(parts), size=m, p=volumes / total)
        ball = rng.normal(size=(m, 3))
        ball *= (rng.random(m) ** (1 / 3) / np.linalg.norm(ball, axis=1))[:, None]
        batch = np.empty((m, 3))
        for i, e in enumerate(parts):
            sel = which == i
            batch[sel] = (ball[sel] * e.axes) @ e.rotation.T + e.centre
        inverse = 1.0 / np.maximum(_cover_count(batch, parts), 1)
        weights_sum += float(inverse.sum())
        drawn += m
        keep = batch[rng.random(m) < inverse]
        points.append(keep[:need])
        need -= len(points[-1])
    return np.concatenate(points), total * weights_sum / drawn


def make_volume(
    rng: np.random.Generator,
    kind: str,
    diameter: float,
    n_atoms: int = 3000,
    contrast_v: float = 2.3,
) -> Volume:
    """A pseudo-atomic volume of ``kind`` whose largest extent is ``diameter`` A.

    Atoms fill the shape uniformly; their width follows the mean atom spacing, so that the
    density is smooth at the scale of that spacing. ``contrast_v`` is the mean potential of the
    particle above the surrounding ice (protein ~7.1 V vs vitreous ice ~4.8 V).
    """
    if kind not in _SHAPES:
        raise InputError(f"unknown volume kind {kind!r} (known: {', '.join(ALL_VOLUME_KINDS)})")
    parts = _SHAPES[kind](rng)
    coords, unit_volume = _fill(rng, parts, n_atoms)
    # density texture: smooth per-atom weight modulation (domains of different density)
    reach = float(np.sqrt((coords**2).sum(axis=1)).max())
    waves = rng.normal(size=(3, 3)) / (0.5 * reach)
    phases = rng.uniform(0, 2 * math.pi, size=3)
    texture = 1.0 + 0.15 * np.sin(coords @ waves.T + phases).sum(axis=1) / math.sqrt(3)
    coords -= np.average(coords, axis=0, weights=texture)  # centre of mass at the origin
    extent = 2.0 * float(np.sqrt((coords**2).sum(axis=1)).max())
    scale = diameter / extent
    coords *= scale
    volume_a3 = unit_volume * scale**3
    weights = contrast_v * (volume_a3 / n_atoms) * texture
    spacing = (volume_a3 / n_atoms) ** (1 / 3)
    return Volume(
        coords=coords.astype(np.float32),
        weights=weights.astype(np.float32),
        sigma=0.55 * spacing,
        kind=kind,
        diameter=float(diameter),
    )


def volume_from_mrc(
    path: str | os.PathLike,
    *,
    threshold: float = 0.05,
    max_atoms: int = 6000,
    contrast_v: float = 2.3,
) -> Volume:
    """Turn a user's density map (MRC, voxel size in the header) into a pseudo-atomic volume.

    Voxels above ``threshold`` x the maximum become atoms weighted by their density, scaled so
    the mean density inside that support equals ``contrast_v``; the map is block-averaged first
    when the support holds more than ``max_atoms`` voxels.
    """
    import mrcfile

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with mrcfile.open(path, mode="r", permissive=True) as mrc:
                data = np.asarray(mrc.data, dtype=np.float32)
                voxel = float(mrc.voxel_size.x)
    except Exception as exc:
        raise InputError(f"{path}: not a readable MRC volume ({exc})") from exc
    if data is None or data.ndim != 3 or min(data.shape) < 4:
        raise InputError(
            f"{path}: expected a 3D density map, got shape {None if data is None else data.shape}"
        )
    if not voxel > 0:
        raise InputError(f"{path}: MRC header has no voxel size")
    if not np.isfinite(data).all() or float(data.max()) <= 0:
        raise InputError(f"{path}: density map has no positive finite density")
    support = data > threshold * float(data.max())
    factor = max(1, math.ceil((int(support.sum()) / max_atoms) ** (1 / 3)))
    if factor > 1:
        crop = [s - s % factor for s in data.shape]
        data = data[: crop[0], : crop[1], : crop[2]]
        data = data.reshape(
            crop[0] // factor, factor, crop[1] // factor, factor, crop[2] // factor, factor
        ).mean(axis=(1, 3, 5))
        voxel *= factor
        support = data > threshold * float(data.max())
    if int(support.sum()) < 4:
        raise InputError(f"{path}: fewer than 4 voxels above {threshold} x max density")
    z, y, x = np.nonzero(support)
    values = data[support]
    coords = np.stack([x, y, z], axis=1).astype(np.float64) * voxel
    coords -= np.average(coords, axis=0, weights=values)
    weights = values / values.mean() * contrast_v * voxel**3
    diameter = 2.0 * float(np.sqrt((coords**2).sum(axis=1)).max()) + voxel
    return Volume(
        coords=coords.astype(np.float32),
        weights=weights.astype(np.float32),
        sigma=0.5 * voxel,
        kind="file",
        diameter=diameter,
    )


def random_rotations(rng: np.random.Generator, n: int) -> Rotation:
    """``n`` rotations uniformly distributed on SO(3) (normalised Gaussian quaternions)."""
    return Rotation.random(n, random_state=rng)


def project(
    volume: Volume, rotation: np.ndarray, pixel_size: float, centre: tuple[float, float]
) -> tuple[np.ndarray, int, int]:
    """Projection along z of the rotated volume, in V*A per pixel, into a box.

    ``rotation`` is a 3x3 matrix applied to the atom coordinates; ``centre`` (x, y) is where
    the volume's centre lands in micrograph pixels. Returns the box and the micrograph column
    and row of its top-left pixel.
    """
    sigma_px = volume.sigma / pixel_size
    half = int(math.ceil(volume.radius / pixel_size + 4 * sigma_px + 2))
    size = 2 * half + 1
    cx, cy = centre
    x0, y0 = int(math.floor(cx)) - half, int(math.floor(cy)) - half
    xy = volume.coords @ rotation[:2].T.astype(np.float32)
    u = xy[:, 0] / pixel_size + (cx - x0)
    v = xy[:, 1] / pixel_size + (cy - y0)
    iu, iv = np.floor(u).astype(np.int64), np.floor(v).astype(np.int64)
    fu, fv = (u - iu).astype(np.float32), (v - iv).astype(np.float32)
    w = volume.weights
    flat = iv * size + iu
    box = np.bincount(flat, w * (1 - fu) * (1 - fv), minlength=size * size)
    box += np.bincount(flat + 1, w * fu * (1 - fv), minlength=size * size)
    box += np.bincount(flat + size, w * (1 - fu) * fv, minlength=size * size)
    box += np.bincount(flat + size + 1, w * fu * fv, minlength=size * size)
    box = box[: size * size].reshape(size, size).astype(np.float32)
    if sigma_px > 0.3:
        box = cv2.GaussianBlur(box, (0, 0), sigma_px, borderType=cv2.BORDER_CONSTANT)
    box /= pixel_size * pixel_size
    return box, x0, y0
