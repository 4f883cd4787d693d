"""2D classification of the final picks with RELION: label-free evidence that picks are particles.

Without ground truth a cryo-EM user checks picks the way they would check anyone's: extract the
picked particles and compute reference-free class averages. Sharp, centred averages holding most
of the particles say the picks are particles; featureless noise or ice averages say they are not.
This module runs that check cheaply (a seeded sample of a few hundred picks, small rescaled
boxes, few classes and iterations, one thread) so that the HTML report can show it.

RELION's conventions: after extraction particles are white on a black background, so dark
cryo-EM particles are extracted with ``--invert_contrast``; cryopick's ``invert=True`` (particles
already bright) extracts them as they are. No CTF correction: cryopick has no CTF parameters.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd

from cryopick.io import (
    InputError,
    atomic_path,
    read_coordinates,
    read_micrograph,
    write_mrc,
    write_relion_micrographs_star,
    write_star,
)
from cryopick.settings import config_values

# Fewer particles per class than this give averages that are mostly noise: K is reduced so that
# every class can hold this many on average, and fewer particles than this in all is an error.
MIN_PARTICLES_PER_CLASS = 10


@dataclass(frozen=True)
class Classify2DSettings:
    """How much 2D classification to do; the defaults classify 300 particles in about a minute
    on one core (64-pixel boxes, 6 classes, 10 iterations)."""

    max_particles: int = 300  # a seeded sample of the picks, spread over micrographs
    classes: int = 6  # K; reduced when there are too few particles for it
    iterations: int = 10
    box_pixels: int = 64  # the extracted box is rescaled (down) to this many pixels
    box_factor: float = 1.5  # extraction box = box_factor x particle diameter
    seed: int = 0  # sampling and relion_refine --random_seed (0: RELION keeps the order)
    threads: int = 1  # relion_refine --j

    def __post_init__(self) -> None:
        for name in ("max_particles", "classes", "iterations", "box_pixels", "threads"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise InputError(
                    f"report.classification.{name}: must be a positive integer, got {value!r}"
                )
        if self.box_pixels < 16 or self.box_pixels % 2:
            raise InputError(
                f"report.classification.box_pixels: must be an even number of at least 16, got "
                f"{self.box_pixels}"
            )
        if not self.box_factor >= 1.0:
            raise InputError(
                f"report.classification.box_factor: must be at least 1, got {self.box_factor}"
            )
        if isinstance(self.seed, bool) or not isinstance(self.seed, int) or self.seed < 0:
            # RELION takes a negative seed as "seed from the clock": not reproducible
            raise InputError(
                f"report.classification.seed: must be an integer >= 0, got {self.seed!r}"
            )

    @classmethod
    def from_config(cls, section: dict) -> "Classify2DSettings":
        """The settings in a config section; an ``enabled`` key (the on/off switch) is ignored."""
        return cls(
            **config_values(cls, section or {}, "report.classification", accepted=("enabled",))
        )


@dataclass
class ClassAverages:
    """RELION's class averages (particles white, RELION's convention) and their populations."""

    images: np.ndarray  # (K, box, box) float32
    particles: list[int]  # particles per class (rlnClassNumber of the last iteration)
    distribution: list[float]  # rlnClassDistribution per class (RELION's soft weights)
    n_particles: int  # particles classified (sum of ``particles``)
    n_picks: int  # picks before sampling
    pixel_size: float  # A per pixel of the averages
    seconds: float  # wall time of RELION (extraction and classification)

    @property
    def classes(self) -> int:
        return len(self.particles)


# ----------------------------------------------------------------------------------------------
# sampling and geometry
# ----------------------------------------------------------------------------------------------


def sample_picks(counts: dict[str, int], max_particles: int, seed: int) -> dict[str, np.ndarray]:
    """Which picks of each micrograph to classify (sorted row indices): all of them when there
    are at most ``max_particles``, else a seeded sample with each micrograph's share
    proportional to its picks (largest remainders), so that no micrograph dominates by chance
    and the same inputs always classify the same particles."""
    names = sorted(name for name, n in counts.items() if n > 0)
    total = sum(counts[name] for name in names)
    rng = np.random.default_rng(seed)
    if total <= max_particles:
        return {name: np.arange(counts[name]) for name in names}
    exact = np.array([counts[name] * max_particles / total for name in names])
    quota = np.floor(exact).astype(int)
    short = max_particles - int(quota.sum())
    order = np.lexsort((np.arange(len(names)), -(exact - quota)))  # largest remainder first
    quota[order[:short]] += 1
    return {
        name: np.sort(rng.choice(counts[name], size=int(k), replace=False))
        for name, k in zip(names, quota)
        if k > 0
    }


def box_sizes(
    pixel_size: float, diameter_angstrom: float, settings: Classify2DSettings
) -> tuple[int, int]:
    """(extraction box in micrograph pixels, box after rescaling): both even, as RELION needs;
    a box already smaller than ``box_pixels`` is not scaled up (that adds cost, not detail)."""
    diameter_px = diameter_angstrom / pixel_size
    extract = max(2 * int(round(settings.box_factor * diameter_px / 2)), 16)
    return extract, min(extract, settings.box_pixels)


# ----------------------------------------------------------------------------------------------
# RELION
# ----------------------------------------------------------------------------------------------


def _relion(command: list[str], workdir: Path, threads: int, what: str) -> None:
    """Run one RELION program in ``workdir``; a failure is an InputError with RELION's last
    words (its errors go to stderr, its progress to stdout)."""
    if shutil.which(command[0]) is None:
        raise InputError(
            f"classify2d: {command[0]} not found on PATH (install RELION, e.g. the Debian "
            f"package relion, or set report.classify2d: false)"
        )
    env = dict(os.environ, OMP_NUM_THREADS=str(threads))
    (workdir / f"{what}.command").write_text(" ".join(command) + "\n")
    result = subprocess.run(command, cwd=workdir, capture_output=True, text=True, env=env)
    (workdir / f"{what}.log").write_text(result.stdout + result.stderr)
    if result.returncode != 0:
        tail = " | ".join(_last_words(result.stderr or result.stdout)) or "no output"
        raise InputError(
            f"classify2d: {command[0]} ({what}) failed with exit status {result.returncode} "
            f"in {workdir}: {tail}"
        )


def _last_words(text: str, n: int = 2) -> list[str]:
    """The last ``n`` distinct lines that say something (RELION frames its errors in lines
    of '=' and a bare 'ERROR:')."""
    words: list[str] = []
    for line in (line.strip() for line in text.splitlines()):
        if re.sub(r"[^A-Za-z0-9]", "", line) not in ("", "ERROR") and line not in words[-1:]:
            words.append(line)
    return words[-n:]


def _read_star(path: Path) -> dict[str, pd.DataFrame]:
    import starfile

    if not path.is_file():
        raise InputError(f"classify2d: RELION did not write {path}")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return starfile.read(path, always_dict=True)


def _particles_table(path: Path) -> pd.DataFrame:
    """The particles block of a RELION 3.1 particles/_data STAR (empty when none)."""
    blocks = _read_star(path)
    for name in ("particles", ""):
        table = blocks.get(name)
        if isinstance(table, pd.DataFrame) and "rlnImageName" in table:
            return table
    return pd.DataFrame({"rlnImageName": pd.Series(dtype=str)})


def _image_pixel_size(path: Path, fallback: float) -> float:
    """rlnImagePixelSize of the (single) optics group that relion_preprocess wrote."""
    optics = _read_star(path).get("optics")
    if isinstance(optics, pd.DataFrame) and "rlnImagePixelSize" in optics and len(optics):
        return float(optics["rlnImagePixelSize"].iloc[0])
    return fallback


def _last_iteration(class_dir: Path) -> int:
    done = sorted(
        int(p.name[len("run_it") : -len("_classes.mrcs")])
        for p in class_dir.glob("run_it*_classes.mrcs")
    )
    if not done:
        raise InputError(f"classify2d: relion_refine wrote no class averages in {class_dir}")
    return done[-1]


def classify_picks(
    micrographs: dict[str, str],
    picks: dict[str, str],
    pixel_size: float,
    diameter_angstrom: float,
    invert: bool,
    workdir: Path,
    settings: Classify2DSettings,
    log: Callable[[str], object] = print,
) -> ClassAverages:
    """Extract a sample of the picks with relion_preprocess and classify them with
    relion_refine (reference-free 2D); the class averages and how many particles each holds.

    ``micrographs`` maps a micrograph name to its file (any format cryopick reads; written to
    ``workdir`` as float32 MRC, which RELION reads), ``picks`` a name to its coordinate STAR.
    ``invert`` is cryopick's: True when particles are bright. Everything RELION writes stays in
    ``workdir`` (its command lines and logs too). K is reduced when there are fewer than
    ``MIN_PARTICLES_PER_CLASS`` particles per class; fewer particles than that in all, or no
    picks, is an InputError.
    """
    import mrcfile

    if pixel_size <= 0 or diameter_angstrom <= 0:
        raise InputError(
            f"classify2d: pixel size ({pixel_size} A) and particle diameter "
            f"({diameter_angstrom} A) must be positive"
        )
    unknown = sorted(set(picks) - set(micrographs))
    if unknown:
        raise InputError(
            f"classify2d: picks for {len(unknown)} micrograph(s) not among the micrographs "
            f"(first: {unknown[0]})"
        )
    coordinates = {name: read_coordinates(path) for name, path in sorted(picks.items())}
    counts = {name: len(table) for name, table in coordinates.items()}
    n_picks = sum(counts.values())
    if n_picks == 0:
        raise InputError(
            "classify2d: no picks to classify "
            + (
                f"({len(picks)} coordinate file(s), all empty)"
                if picks
                else "(no coordinate files)"
            )
        )
    chosen = sample_picks(counts, settings.max_particles, settings.seed)
    extract, box = box_sizes(pixel_size, diameter_angstrom, settings)

    workdir = Path(workdir)
    for stale in ("Micrographs", "Extract", "Class2D"):  # outputs of an earlier run
        shutil.rmtree(workdir / stale, ignore_errors=True)
    (workdir / "particles.star").unlink(missing_ok=True)
    (workdir / "Micrographs").mkdir(parents=True)
    (workdir / "Class2D").mkdir()
    # RELION gets plain names (mic0001...), whatever characters the user's names hold
    relion_names = []
    n_sampled = n_outside = 0
    for i, (name, rows) in enumerate(sorted(chosen.items()), start=1):
        stem = f"Micrographs/mic{i:04d}"
        image = read_micrograph(micrographs[name]).image
        sample = coordinates[name].iloc[rows]
        # relion_preprocess stops at a pick outside the micrograph (boxes that only overlap
        # the edge it extracts)
        inside = sample["x"].between(0, image.shape[1] - 1) & sample["y"].between(
            0, image.shape[0] - 1
        )
        n_outside += int((~inside).sum())
        if not inside.any():
            continue
        write_mrc(workdir / f"{stem}.mrc", image, pixel_size)
        write_star(workdir / f"{stem}_pick.star", sample[inside])
        relion_names.append(f"{stem}.mrc")
        n_sampled += int(inside.sum())
    write_relion_micrographs_star(workdir / "micrographs.star", relion_names, pixel_size)
    log(
        f"classify2d: {n_sampled} of {n_picks} picks from {len(relion_names)} micrograph(s), "
        f"{extract}-pixel boxes rescaled to {box}"
        + (f"; {n_outside} sampled picks outside their micrograph left out" if n_outside else "")
    )

    start = time.perf_counter()
    preprocess = [
        "relion_preprocess",
        "--i", "micrographs.star",
        "--coord_dir", "./",
        "--coord_suffix", "_pick.star",
        "--part_star", "particles.star",
        "--part_dir", "Extract/",
        "--extract",
        "--extract_size", str(extract),
        "--norm",
        "--bg_radius", str(int(round(0.375 * box))),  # RELION's default: 75% of the box
        "--white_dust", "-1",
        "--black_dust", "-1",
    ]  # fmt: skip
    if box != extract:
        preprocess += ["--scale", str(box)]
    if not invert:  # dark particles: RELION wants them white
        preprocess.append("--invert_contrast")
    _relion(preprocess, workdir, settings.threads, "extract")
    n_extracted = len(_particles_table(workdir / "particles.star"))
    if n_extracted < MIN_PARTICLES_PER_CLASS:
        raise InputError(
            f"classify2d: RELION extracted {n_extracted} of {n_sampled} particles; 2D "
            f"classification needs at least {MIN_PARTICLES_PER_CLASS} (see {workdir}/extract.log)"
        )
    classes = min(settings.classes, n_extracted // MIN_PARTICLES_PER_CLASS)
    if classes < settings.classes:
        log(f"classify2d: {n_extracted} particles: {classes} classes instead of {settings.classes}")
    angpix = _image_pixel_size(workdir / "particles.star", pixel_size * extract / box)

    refine = [
        "relion_refine",
        "--i", "particles.star",
        "--o", "Class2D/run",
        "--K", str(classes),
        "--iter", str(settings.iterations),
        "--tau2_fudge", "2",
        "--particle_diameter", f"{diameter_angstrom:.2f}",
        "--zero_mask",
        "--flatten_solvent",
        "--oversampling", "1",
        "--psi_step", "12",  # RELION's GUI: 6 degrees after oversampling
        "--offset_range", "5",  # pixels of the rescaled box
        "--offset_step", "2",
        "--norm",
        "--scale",
        "--pad", "2",
        "--random_seed", str(settings.seed),
        "--j", str(settings.threads),
        "--strict_highres_exp", f"{4 * angpix:.2f}",  # align at half Nyquist: cheap, enough
        "--pool", "3",
        "--dont_combine_weights_via_disc",
        "--preread_images",
    ]  # fmt: skip
    _relion(refine, workdir, settings.threads, "class2d")
    seconds = time.perf_counter() - start

    iteration = _last_iteration(workdir / "Class2D")
    root = workdir / "Class2D" / f"run_it{iteration:03d}"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        images = np.asarray(mrcfile.read(f"{root}_classes.mrcs"), dtype=np.float32)
    if images.ndim == 2:
        images = images[None]
    model = _read_star(Path(f"{root}_model.star")).get("model_classes")
    distribution = (
        [float(v) for v in model["rlnClassDistribution"]]
        if isinstance(model, pd.DataFrame) and "rlnClassDistribution" in model
        else [float("nan")] * len(images)
    )
    assigned = _particles_table(Path(f"{root}_data.star"))["rlnClassNumber"].to_numpy(int)
    particles = np.bincount(assigned - 1, minlength=len(images))[: len(images)]
    log(
        f"classify2d: {len(assigned)} particles in {len(images)} classes "
        f"({', '.join(str(n) for n in sorted(particles, reverse=True))}) in {seconds:.0f} s"
    )
    return ClassAverages(
        images=images,
        particles=[int(n) for n in particles],
        distribution=distribution,
        n_particles=int(len(assigned)),
        n_picks=n_picks,
        pixel_size=angpix,
        seconds=seconds,
    )


# ----------------------------------------------------------------------------------------------
# report
# ----------------------------------------------------------------------------------------------


def population_order(averages: ClassAverages) -> list[int]:
    """Class indices (0-based) from the most to the least populated (ties: lower class)."""
    return sorted(range(averages.classes), key=lambda k: (-averages.particles[k], k))


def class_table(averages: ClassAverages) -> pd.DataFrame:
    """One row per class, most populated first: class (RELION's number, from 1), particles,
    fraction of the particles classified."""
    order = population_order(averages)
    total = max(averages.n_particles, 1)
    return pd.DataFrame(
        {
            "class": [k + 1 for k in order],
            "particles": [averages.particles[k] for k in order],
            "fraction": [round(averages.particles[k] / total, 4) for k in order],
        }
    )


def _display(image: np.ndarray) -> np.ndarray:
    """An average stretched to 0..1 between its 1st and 99th percentiles (flat: mid-grey)."""
    low, high = np.percentile(image, [1, 99])
    if not high > low:
        return np.full(image.shape, 0.5)
    return np.clip((image - low) / (high - low), 0, 1)


def write_class_grid(averages: ClassAverages, png_path: str | os.PathLike) -> None:
    """A PNG of the class averages, most populated first, each stretched on its own and
    labelled with its particle count, so that a reader sees at a glance whether most particles
    went into sharp centred classes."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    order = population_order(averages)
    columns = min(len(order), 6)
    rows = -(-len(order) // columns)
    figure = Figure(figsize=(1.6 * columns, 1.85 * rows + 0.35), dpi=100)
    FigureCanvasAgg(figure)
    total = max(averages.n_particles, 1)
    for slot, k in enumerate(order):
        axes = figure.add_subplot(rows, columns, slot + 1)
        axes.imshow(_display(averages.images[k]), cmap="gray", vmin=0, vmax=1)
        axes.set_xticks([])
        axes.set_yticks([])
        n = averages.particles[k]
        axes.set_xlabel(f"n={n} ({100 * n / total:.0f}%)", fontsize=10)
    figure.suptitle(
        f"2D classes: {averages.n_particles} particles of {averages.n_picks} picks",
        fontsize=10,
    )
    figure.tight_layout()
    with atomic_path(png_path) as tmp:
        figure.savefig(tmp, format="png", facecolor="white")


__all__ = [
    "ClassAverages",
    "Classify2DSettings",
    "class_table",
    "classify_picks",
    "population_order",
    "sample_picks",
    "write_class_grid",
]
