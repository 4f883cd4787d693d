"""Contrast transfer function of a transmission electron microscope (weak-phase approximation).

Conventions (those of RELION and CTFFIND, so that defoci can be compared with theirs):

* defocus is positive for underfocus, in Angstrom; ``defocus_u`` applies along the direction
  ``astigmatism_angle`` (degrees from the x axis, counter-clockwise), ``defocus_v`` across it;
* ``chi(k) = pi * lambda * dz(theta) * k^2 - pi/2 * Cs * lambda^3 * k^4 + phase_shift``;
* ``CTF(k) = -(sqrt(1 - w^2) * sin(chi) + w * cos(chi))`` with amplitude contrast ``w``.

A positive projected potential (protein is denser than ice) therefore comes out *dark* in an
underfocused image: the CTF is negative from k = 0 up to its first zero. Phase flipping
(multiplying by ``sign(CTF)``) keeps that sign convention: the flipped transfer is ``-|CTF|``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import numpy as np
import scipy.fft

ELECTRON_REST_ENERGY_EV = 510_998.95


def electron_wavelength(voltage_kv: float) -> float:
    """Relativistic electron wavelength in Angstrom (0.01969 A at 300 kV)."""
    volts = voltage_kv * 1e3
    return 12.2642598 / math.sqrt(volts * (1.0 + 0.97846914e-6 * volts))


def interaction_constant(voltage_kv: float) -> float:
    """Phase shift per unit projected potential, rad / (V * A) (6.5e-4 at 300 kV)."""
    volts = voltage_kv * 1e3
    wavelength = electron_wavelength(voltage_kv)
    return (2 * math.pi / (wavelength * volts)) * (
        (ELECTRON_REST_ENERGY_EV + volts) / (2 * ELECTRON_REST_ENERGY_EV + volts)
    )


@dataclass(frozen=True)
class CTFParams:
    """Microscope and per-micrograph CTF parameters (lengths in Angstrom unless named)."""

    voltage_kv: float = 300.0
    cs_mm: float = 2.7
    amplitude_contrast: float = 0.1
    defocus_u: float = 20_000.0
    defocus_v: float = 20_000.0
    astigmatism_angle: float = 0.0
    b_factor: float = 0.0
    phase_shift_deg: float = 0.0

    @property
    def wavelength(self) -> float:
        return electron_wavelength(self.voltage_kv)

    def chi(self, k: np.ndarray, theta: np.ndarray | float = 0.0) -> np.ndarray:
        """Aberration phase at spatial frequency ``k`` (1/A) and azimuth ``theta`` (rad)."""
        lam = self.wavelength
        cs = self.cs_mm * 1e7
        mean = 0.5 * (self.defocus_u + self.defocus_v)
        half = 0.5 * (self.defocus_u - self.defocus_v)
        dz = mean + half * np.cos(2.0 * (theta - math.radians(self.astigmatism_angle)))
        k2 = k * k
        return (
            math.pi * lam * dz * k2
            - 0.5 * math.pi * cs * lam**3 * k2 * k2
            + math.radians(self.phase_shift_deg)
        )

    def value(self, k: np.ndarray, theta: np.ndarray | float = 0.0) -> np.ndarray:
        """CTF (without envelope) at frequency ``k`` (1/A) and azimuth ``theta``."""
        w = self.amplitude_contrast
        chi = self.chi(k, theta)
        return -(math.sqrt(1.0 - w * w) * np.sin(chi) + w * np.cos(chi))

    def envelope(self, k: np.ndarray) -> np.ndarray:
        """B-factor envelope exp(-B k^2 / 4) (amplitude, so B is the usual map B-factor)."""
        return np.exp(-0.25 * self.b_factor * k * k)

    def zeros(self, n: int) -> np.ndarray:
        """Frequencies (1/A) of the first ``n`` zeros along the mean defocus (no astigmatism).

        Solves chi(k) + asin(w) = m * pi for m = 1..n, taking the root before spherical
        aberration folds chi back.
        """
        lam = self.wavelength
        cs = self.cs_mm * 1e7
        dz = 0.5 * (self.defocus_u + self.defocus_v)
        alpha = math.asin(self.amplitude_contrast) + math.radians(self.phase_shift_deg)
        a = 0.5 * math.pi * cs * lam**3
        b = math.pi * lam * dz
        out = []
        for m in range(1, n + 1):
            c = m * math.pi - alpha
            if a == 0:
                k2 = c / b
            else:
                disc = b * b - 4 * a * c
                if disc < 0:
                    break
                k2 = (b - math.sqrt(disc)) / (2 * a)
            out.append(math.sqrt(k2))
        return np.asarray(out)


def frequency_grid(shape: tuple[int, int], pixel_size: float) -> tuple[np.ndarray, np.ndarray]:
    """|k| (1/A) and azimuth (rad) on the rfft2 grid of an image of ``shape``, float32."""
    ky = scipy.fft.fftfreq(shape[0], d=pixel_size).astype(np.float32)[:, None]
    kx = scipy.fft.rfftfreq(shape[1], d=pixel_size).astype(np.float32)[None, :]
    k = np.sqrt(kx * kx + ky * ky)
    theta = np.arctan2(ky, kx)
    return k, theta


def ctf_rfft(
    shape: tuple[int, int],
    pixel_size: float,
    params: CTFParams,
    *,
    phase_flipped: bool = False,
    envelope: bool = True,
) -> np.ndarray:
    """CTF times envelope sampled on the rfft2 grid of ``shape`` (float32).

    Computed without azimuth angles or a second trigonometric call (a 4096^2 micrograph has
    8.4 M frequencies): cos(2(theta - a)) = ((kx^2 - ky^2) cos 2a + 2 kx ky sin 2a) / k^2 and
    sqrt(1 - w^2) sin(chi) + w cos(chi) = sin(chi + asin(w)). The k = 0 term is set to 0: a
    uniform phase shift gives no contrast, and mean intensity effects (ice absorption) are
    modelled in real space by the caller.
    """
    ky = scipy.fft.fftfreq(shape[0], d=pixel_size).astype(np.float32)[:, None]
    kx = scipy.fft.rfftfreq(shape[1], d=pixel_size).astype(np.float32)[None, :]
    kx2, ky2 = kx * kx, ky * ky
    k2 = kx2 + ky2
    lam = params.wavelength
    angle = 2 * math.radians(params.astigmatism_angle)
    mean = 0.5 * (params.defocus_u + params.defocus_v)
    half = 0.5 * (params.defocus_u - params.defocus_v)
    # pi lambda dz(theta) k^2 = pi lambda (mean k^2 + half (cos2a (kx^2-ky^2) + sin2a 2 kx ky))
    chi = (kx2 - ky2) * np.float32(math.pi * lam * half * math.cos(angle))
    chi += (kx * ky) * np.float32(2 * math.pi * lam * half * math.sin(angle))
    chi += k2 * np.float32(math.pi * lam * mean)
    chi -= (k2 * k2) * np.float32(0.5 * math.pi * params.cs_mm * 1e7 * lam**3)
    chi += np.float32(math.radians(params.phase_shift_deg) + math.asin(params.amplitude_contrast))
    ctf = np.sin(chi, out=chi)
    if phase_flipped:
        np.abs(ctf, out=ctf)
    np.negative(ctf, out=ctf)
    if envelope and params.b_factor:
        ctf *= np.exp(k2 * np.float32(-0.25 * params.b_factor))
    ctf[0, 0] = 0.0
    return ctf


def radial_power_spectrum(
    image: np.ndarray, pixel_size: float, n_bins: int | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Rotationally averaged power spectrum: bin centres (1/A) and mean |F|^2 per bin.

    The image mean is removed first; bins run from 0 to Nyquist (1 / (2 * pixel_size)).
    """
    image = np.asarray(image, dtype=np.float32)
    spectrum = scipy.fft.rfft2(image - image.mean())
    power = (spectrum.real**2 + spectrum.imag**2).astype(np.float64)
    return radial_average(power, image.shape, pixel_size, n_bins or min(image.shape) // 2)


def radial_average(
    power: np.ndarray, shape: tuple[int, int], pixel_size: float, n_bins: int
) -> tuple[np.ndarray, np.ndarray]:
    """Bin centres (1/A, 0 to Nyquist) and the mean of ``power`` (on the rfft2 grid of an
    image of ``shape``) per bin."""
    k, _ = frequency_grid(shape, pixel_size)
    nyquist = 0.5 / pixel_size
    index = np.floor(k / nyquist * n_bins).astype(np.int64).ravel()
    keep = index < n_bins
    # the rfft half-plane counts columns 1..W/2-1 once although they stand for two
    # frequencies each; the average is unaffected because both halves have equal power
    sums = np.bincount(index[keep], weights=power.ravel()[keep], minlength=n_bins)
    counts = np.bincount(index[keep], minlength=n_bins)
    centres = (np.arange(n_bins) + 0.5) * nyquist / n_bins
    with np.errstate(invalid="ignore", divide="ignore"):
        return centres, sums / np.maximum(counts, 1)


def tile_power_spectrum(
    image: np.ndarray, pixel_size: float, tile: int = 512, most: int = 16
) -> tuple[np.ndarray, np.ndarray]:
    """Rotationally averaged power spectrum of ``image`` averaged over up to ``most`` of its
    tiles of ``tile`` pixels, spread over it (Welch's method: a Hann window per tile, so that
    the edges and the few strong objects of one tile do not swamp the Thon rings): bin
    centres (1/A) and mean power."""
    image = np.asarray(image, dtype=np.float32)
    size = min(tile, *image.shape)
    window = np.outer(np.hanning(size), np.hanning(size)).astype(np.float32)
    corners = [
        (r, c)
        for r in range(0, image.shape[0] - size + 1, size)
        for c in range(0, image.shape[1] - size + 1, size)
    ]
    picked = np.linspace(0, len(corners) - 1, min(most, len(corners))).round().astype(int)
    total = np.zeros((size, size // 2 + 1), np.float64)
    for index in picked:
        r, c = corners[index]
        patch = image[r : r + size, c : c + size]
        spectrum = scipy.fft.rfft2((patch - patch.mean()) * window)
        total += spectrum.real**2 + spectrum.imag**2
    return radial_average(total / len(picked), (size, size), pixel_size, size // 2)


def estimate_defocus(
    image: np.ndarray,
    pixel_size: float,
    defocus_range_um: tuple[float, float] = (0.3, 5.0),
    resolution_range_a: tuple[float, float] = (30.0, 5.0),
    params: CTFParams = CTFParams(),
) -> tuple[float, float]:
    """Mean defocus (A, underfocus positive) of a micrograph from its Thon rings, and how
    well it fits (correlation of the rings with the model's, 0-1): the rotationally averaged
    spectrum, its smooth background removed (a running median in log power), correlated
    with CTF^2 over ``resolution_range_a`` for each defocus in ``defocus_range_um`` (0.01 um
    steps). Astigmatism is averaged away; enough to know how far defocus delocalises a
    lattice's fringes (a few hundred A), not a substitute for CTFFIND."""
    k, power = tile_power_spectrum(image, pixel_size)
    low, high = 1.0 / resolution_range_a[0], min(1.0 / resolution_range_a[1], 0.45 / pixel_size)
    keep = (k >= low) & (k <= high) & np.isfinite(power) & (power > 0)
    if keep.sum() < 16:
        return float("nan"), 0.0
    k, log_power = k[keep], np.log(power[keep])
    width = max(5, (len(k) // 8) | 1)
    padded = np.pad(log_power, width // 2, mode="edge")
    background = np.array([np.median(padded[i : i + width]) for i in range(len(k))])
    rings = log_power - background
    rings = (rings - rings.mean()) / (rings.std() or 1.0)
    best, best_fit = float("nan"), -1.0
    for defocus_um in np.arange(defocus_range_um[0], defocus_range_um[1] + 1e-9, 0.01):
        dz = float(defocus_um) * 1e4
        model = replace(params, defocus_u=dz, defocus_v=dz, astigmatism_angle=0.0).value(k) ** 2
        model -= model.mean()
        norm = float(np.sqrt((model * model).sum()))
        fit = float((rings * model).sum() / (norm * math.sqrt(len(k)))) if norm else -1.0
        if fit > best_fit:
            best, best_fit = dz, fit
    return best, max(best_fit, 0.0)
