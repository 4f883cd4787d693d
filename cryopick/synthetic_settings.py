"""The synthetic generator's settings and names: what the workflow needs at DAG build.

Every cluster job parses the workflow first (issue 15), so the settings' checks and the set's
names live here, apart from the renderer in :mod:`cryopick.synthetic` and its NumPy, SciPy and
OpenCV imports.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from cryopick.io import InputError
from cryopick.settings import config_values

# the volume shapes cryopick.volumes builds. The default mix of a synthetic set (kept as it was
# so that existing sets stay identical):
VOLUME_KINDS = ("globular", "elongated", "ring", "oligomer", "multidomain")
# every kind a set may ask for: the default mix plus hollow shells and cages (ferritin, capsids)
ALL_VOLUME_KINDS = VOLUME_KINDS + ("shell",)
MIN_DIAMETER_A = 60.0
MAX_DIAMETER_A = 500.0

NOISE_MODELS = ("dose", "snr", "none")
RENDERINGS = ("raw", "filtered_8bit")
A2_PER_UM2 = 1e8
# keys of a config section that describe a data set, not the physics
DATASET_KEYS = frozenset({"n_micrographs", "seed", "name_prefix", "description"})


@dataclass(frozen=True)
class SyntheticSettings:
    """Every physical parameter of the generator; lengths in A unless the name says otherwise."""

    # geometry
    height: int = 4096
    width: int = 4096
    pixel_size: float = 1.77
    # particles
    particles_per_micrograph: int = 300
    particle_count_spread: float = 0.2  # count drawn uniformly within +-spread of the mean
    particle_diameter: float = 190.0  # largest extent of the volumes, A
    diameter_spread: float = 0.15  # relative spread of volume diameters (clipped to 60..500 A)
    volume_kinds: tuple[str, ...] = VOLUME_KINDS
    n_volumes: int = 5  # size of the family of volumes shared by the data set
    volume_files: tuple[str, ...] = ()  # users' MRC maps; when given, used instead of shapes
    volume_file_threshold: float = 0.05  # support of a user map: fraction of its maximum
    atoms_per_volume: int = 3000
    protein_contrast: float = 2.3  # potential of protein above vitreous ice, V
    min_distance: float = 0.7  # closest centres, in units of the mean of two diameters
    clustering: float = 0.5  # 0: uniform placement; 1: strong clusters and gaps
    empty_fraction: float = 0.1  # fraction of the area left without particles
    edge_particles: bool = True  # particles may be cut by the micrograph edge
    mask_threshold: float = 0.1  # support of a projection: fraction of its peak
    # optics
    voltage: float = 300.0  # kV
    spherical_aberration: float = 2.7  # mm
    amplitude_contrast: float = 0.1
    defocus_range: tuple[float, float] = (1.0, 3.0)  # um, underfocus positive
    astigmatism: float = 0.05  # um, largest |defocus_u - defocus_v| / 2
    b_factor: float = 60.0  # A^2
    phase_flipped: bool = False  # micrographs as after phase flipping (CTF -> -|CTF|)
    particles_dark: bool = True  # False inverts the contrast (particles light)
    # specimen background
    ice_thickness_range: tuple[float, float] = (300.0, 700.0)  # mean per micrograph, A
    ice_gradient: float = 0.05  # relative amplitude of smooth thickness variation
    ice_mean_free_path: float = 3500.0  # inelastic mean free path at 300 kV, A
    ice_texture: float = 1.0  # amorphous-ice phase texture, x the physical estimate
    thick_ice_probability: float = 0.15  # chance of a patch of much thicker ice
    thick_ice_threshold: float = 1.4  # thicker than this x the mean: masked, no particles
    contaminants_per_um2: float = 1.0  # crystalline-ice contaminants (Poisson mean)
    contaminant_size_range: tuple[float, float] = (200.0, 1000.0)  # diameter, A
    crystalline_fraction: float = 0.5  # contaminants showing lattice spots
    carbon_probability: float = 0.3  # chance that a micrograph shows a carbon edge
    carbon_fraction_range: tuple[float, float] = (0.05, 0.35)  # area covered by carbon
    carbon_thickness: float = 150.0  # A
    aggregates_per_um2: float = 2.0  # protein aggregates (Poisson mean)
    # more exclusion classes (issue 11); all off by default so that existing sets stay identical
    crack_probability: float = 0.0  # chance of one to three cracks in the ice (bright lines)
    crack_width_range: tuple[float, float] = (20.0, 150.0)  # crack width, A
    empty_probability: float = 0.0  # chance of an area with no ice (a broken or unfilled hole)
    empty_area_range: tuple[float, float] = (0.1, 0.6)  # fraction of the field left empty
    crystalline_ice_probability: float = 0.0  # chance of grains of crystalline ice in the film
    crystalline_ice_strength: float = 0.3  # lattice wave amplitude / amorphous texture sigma
    ice_wedge: float = 0.0  # linear thickness ramp: t_mean x (1 -+ ice_wedge / 2) at the corners
    dense_aggregates_per_um2: float = 0.0  # clumps of touching particles (Poisson mean)
    # noise
    noise: str = "dose"  # dose | snr | none
    dose: float = 40.0  # e-/A^2
    snr: float = 0.1
    exact_poisson_below: float = 30.0  # Poisson draws below this mean count, else Gaussian
    drift: float = 0.003  # relative amplitude of the smooth detector gain drift
    # output: raw detector counts, or as the EMPIAR/CryoPPP JPGs are distributed: the
    # denoising chain (Gaussian, non-local means, Wiener, CLAHE, guided filter) run at full
    # resolution, then 8-bit (cryopick.denoise with the canvas at the micrograph's size)
    rendering: str = "raw"  # raw | filtered_8bit

    def __post_init__(self) -> None:
        for name in (
            "defocus_range",
            "ice_thickness_range",
            "contaminant_size_range",
            "carbon_fraction_range",
            "crack_width_range",
            "empty_area_range",
            "volume_kinds",
            "volume_files",
        ):
            object.__setattr__(self, name, tuple(getattr(self, name)))
        problems = []
        if self.height < 64 or self.width < 64:
            problems.append(f"height/width must be >= 64 (got {self.height}x{self.width})")
        if not self.pixel_size > 0:
            problems.append(f"pixel_size must be > 0 (got {self.pixel_size})")
        if self.rendering not in RENDERINGS:
            problems.append(f"rendering must be one of {RENDERINGS} (got {self.rendering!r})")
        if self.noise not in NOISE_MODELS:
            problems.append(f"noise must be one of {NOISE_MODELS} (got {self.noise!r})")
        if not 0 < self.snr:
            problems.append(f"snr must be > 0 (got {self.snr})")
        if not 0 < self.dose:
            problems.append(f"dose must be > 0 (got {self.dose})")
        if self.particles_per_micrograph < 0:
            problems.append("particles_per_micrograph must be >= 0")
        if not MIN_DIAMETER_A <= self.particle_diameter <= MAX_DIAMETER_A and not self.volume_files:
            problems.append(
                f"particle_diameter must lie in {MIN_DIAMETER_A:g}..{MAX_DIAMETER_A:g}"
                f" A (got {self.particle_diameter})"
            )
        unknown = set(self.volume_kinds) - set(ALL_VOLUME_KINDS)
        if unknown or not self.volume_kinds:
            problems.append(
                f"volume_kinds must be a non-empty subset of {ALL_VOLUME_KINDS} "
                f"(got {list(self.volume_kinds)})"
            )
        for name in (
            "defocus_range",
            "ice_thickness_range",
            "contaminant_size_range",
            "carbon_fraction_range",
            "crack_width_range",
            "empty_area_range",
        ):
            lo_hi = getattr(self, name)
            if len(lo_hi) != 2 or not 0 <= lo_hi[0] <= lo_hi[1]:
                problems.append(
                    f"{name} must be [low, high] with 0 <= low <= high (got {list(lo_hi)})"
                )
        for name in ("crack_probability", "empty_probability", "crystalline_ice_probability"):
            if not 0 <= getattr(self, name) <= 1:
                problems.append(f"{name} must lie in [0, 1] (got {getattr(self, name)})")
        if not all(v > 0 for v in self.crack_width_range):
            problems.append(f"crack_width_range must be > 0 (got {list(self.crack_width_range)})")
        if not all(v <= 1 for v in self.empty_area_range):
            problems.append(
                f"empty_area_range must lie in [0, 1] (got {list(self.empty_area_range)})"
            )
        if not 0 <= self.ice_wedge <= 2:
            problems.append(f"ice_wedge must lie in [0, 2] (got {self.ice_wedge})")
        if self.crystalline_ice_strength < 0 or self.dense_aggregates_per_um2 < 0:
            problems.append("crystalline_ice_strength and dense_aggregates_per_um2 must be >= 0")
        if not 0 <= self.amplitude_contrast < 1:
            problems.append("amplitude_contrast must lie in [0, 1)")
        if self.n_volumes < 1 or self.atoms_per_volume < 10:
            problems.append("n_volumes must be >= 1 and atoms_per_volume >= 10")
        if not 0 < self.mask_threshold < 1:
            problems.append("mask_threshold must lie in (0, 1)")
        for path in self.volume_files:
            if not Path(path).is_file():
                problems.append(f"volume file {path} does not exist")
        if problems:
            raise InputError("synthetic settings: " + "; ".join(problems))

    @classmethod
    def from_config(cls, config: dict) -> "SyntheticSettings":
        """Settings from a config mapping; data-set keys (seed, n_micrographs...) are ignored,
        unknown keys refused."""
        return cls(**config_values(cls, config, "synthetic", accepted=DATASET_KEYS))

    @property
    def area_um2(self) -> float:
        return self.height * self.width * self.pixel_size**2 / A2_PER_UM2


def synthetic_micrograph_names(prefix: str, n: int) -> list[str]:
    """Names of a synthetic set, known from the config alone (before any file exists)."""
    return [f"{prefix}_{i:04d}" for i in range(int(n))]


def micrograph_index(name: str, prefix: str) -> int:
    """Inverse of :func:`synthetic_micrograph_names` for one name."""
    head, _, tail = name.rpartition("_")
    if head != prefix or not tail.isdigit():
        raise InputError(f"{name!r} is not a synthetic micrograph name with prefix {prefix!r}")
    return int(tail)


DATASET_FOLDERS = (
    "micrographs",
    "coordinates",
    "coordinates_star",
    "masks",
    "instances",
    "ice_masks",
    "particles",
    "parameters",
)


def micrograph_outputs(out_dir: str | os.PathLike, name: str) -> dict[str, Path]:
    """Every file :func:`cryopick.synthetic.write_micrograph` writes for ``name`` (what a
    workflow rule declares)."""
    out = Path(out_dir)
    return {
        "micrograph": out / "micrographs" / f"{name}.mrc",
        "coordinates": out / "coordinates" / f"{name}.csv",
        "coordinates_star": out / "coordinates_star" / f"{name}.star",
        "mask": out / "masks" / f"{name}.png",
        "instances": out / "instances" / f"{name}.png",
        "exclusion": out / "ice_masks" / f"{name}.png",
        "exclusion_classes": out / "ice_masks" / f"{name}.npz",
        "particles": out / "particles" / f"{name}.tsv",
        "parameters": out / "parameters" / f"{name}.json",
    }
