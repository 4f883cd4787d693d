"""Peer pickers: other programs' pickers run on the same micrographs as cryopick's, so that the
report scores them with the same code (cryopick.metrics) instead of quoting numbers from papers.

Two peers:

* ``relion_log``: RELION's Laplacian-of-Gaussian blob picker (``relion_autopick --LoG``), the
  reference-free picker most RELION projects start with.
* ``topaz``: Topaz's pretrained ResNet16 detector (``topaz extract``), used only where a
  ``topaz`` executable exists.

Both return cryopick's coordinate frame (:mod:`cryopick.io`): ``x`` the column and ``y`` the
row of the micrograph *file*, origin top-left, in that file's pixels, with ``score`` the peer's
own figure of merit, so a peer's picks can be compared with labels exactly like cryopick's.

Both run at the peer's own default operating point (RELION's default LoG threshold, Topaz's
default extraction threshold): a peer tuned on the labels it is scored against would not be a
fair comparison, and the score column keeps what is needed to re-threshold afterwards.

Importing this module is cheap (standard library only): ``peer_unavailable`` is called while
Snakemake builds its DAG.
"""

from __future__ import annotations

import math
import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import pandas as pd

PEERS = ("relion_log", "topaz")

RELION_AUTOPICK = "relion_autopick"

# LoG diameter range as fractions of the particle diameter. RELION's documentation asks for
# the smallest and the largest particle size; its GUI's defaults (200 / 250 A) span a factor
# 1.25 and its tutorial uses 150 / 180 A for beta-galactosidase. cryopick has one diameter per
# data set, so it brackets it by +-20%: a particle somewhat smaller or larger than the
# configured size is still detected, and the range stays narrow enough that RELION's
# neighbour exclusion (detected diameter + minimum diameter) does not merge adjacent particles.
LOG_DIAMETER_MIN_FACTOR = 0.8
LOG_DIAMETER_MAX_FACTOR = 1.2

# Topaz's pretrained models see a 71-pixel receptive field (resnet16); its documentation asks
# for micrographs downsampled so that particles fit in it, and in practice a particle about
# 25-30 downsampled pixels across (an earlier cryopick benchmark: 108-pixel particles, -s 4).
TOPAZ_PARTICLE_PIXELS = 27.0
TOPAZ_MODEL = "resnet16_u64"
# Topaz's own default extraction threshold (log-likelihood ratio -6, p >= 0.0025) keeps nearly
# every candidate, for the user to threshold afterwards: as an operating point it would score
# Topaz at precision ~0.1. The peer runs at the classifier's own decision boundary instead,
# score 0 (p >= 0.5), not tuned on any labels; the curve in the report covers scores above it.
TOPAZ_DEFAULT_THRESHOLD = -6.0
TOPAZ_OPERATING_THRESHOLD = 0.0


def peer_unavailable(peer: str, topaz_command: str = "topaz") -> str | None:
    """None when ``peer`` can run here, else one line naming what is missing and how to get it.

    Only looks executables up on PATH (no subprocess, no import): it runs while Snakemake
    builds its DAG, once per workflow invocation.
    """
    if peer == "relion_log":
        if shutil.which(RELION_AUTOPICK) is None:
            return f"{RELION_AUTOPICK} not found on PATH (Debian package relion)"
        return None
    if peer == "topaz":
        if shutil.which(topaz_command) is None:
            return f"{topaz_command} not found on PATH (pip install topaz-em)"
        return None
    raise ValueError(f"unknown peer picker {peer!r} (known: {', '.join(PEERS)})")


def _safe_name(path: str | os.PathLike) -> str:
    """The micrograph's name with only characters that STAR files and RELION take unquoted."""
    from cryopick.io import micrograph_name

    return re.sub(r"[^A-Za-z0-9._-]", "_", micrograph_name(path)) or "micrograph"


def _prepared_mrc(
    micrograph_path: str, pixel_size: float | None, workdir: Path, negate: bool
) -> tuple[Path, float]:
    """The micrograph as a float32 MRC in ``workdir`` (peers cannot read JPG/PNG, and TIFF or
    MRC stacks are reduced to the frame cryopick itself picks), with the same rows and columns
    as the file, so the peer's coordinates are in the file's pixel frame; and its pixel size
    (``pixel_size``, or when None the file header's, as every stage resolves it)."""
    from cryopick.denoise import resolve_pixel_size
    from cryopick.io import read_micrograph, write_mrc

    micrograph = read_micrograph(micrograph_path)
    pixel_size = resolve_pixel_size(pixel_size, micrograph.pixel_size, micrograph_path)
    workdir.mkdir(parents=True, exist_ok=True)
    path = workdir / f"{_safe_name(micrograph_path)}.mrc"
    write_mrc(path, -micrograph.image if negate else micrograph.image, pixel_size)
    return path, pixel_size


def _stderr_tail(text: str, n_lines: int = 3, n_chars: int = 400) -> str:
    """The last lines of a program's output as one line: its ERROR line when it printed one
    (RELION prints a stack trace, then the reason)."""
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    errors = [line for line in lines if "ERROR" in line and line.rstrip(": ") != "ERROR"]
    tail = " | ".join(errors[-1:] if errors else lines[-n_lines:])
    return tail[-n_chars:] if tail else "no error output"


def _quiet_environment() -> dict[str, str]:
    """The environment for a peer: one thread, as every job of the workflow gets one core."""
    return {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}


def relion_log_command(
    micrographs_star: str, pixel_size: float, diameter_angstrom: float, invert: bool
) -> list[str]:
    """The relion_autopick --LoG command line (run in the folder of ``micrographs_star``)."""
    command = [
        RELION_AUTOPICK,
        "--i",
        micrographs_star,
        "--odir",
        "LoG/",
        "--pickname",
        "autopick",
        "--LoG",
        "--LoG_diam_min",
        f"{LOG_DIAMETER_MIN_FACTOR * diameter_angstrom:.1f}",
        "--LoG_diam_max",
        f"{LOG_DIAMETER_MAX_FACTOR * diameter_angstrom:.1f}",
        "--angpix",
        f"{pixel_size}",
    ]
    if invert:  # cryopick's invert: particles bright on a dark background
        command.append("--Log_invert")  # RELION 3.1 spells it with a lower-case g
    return command


def relion_log_picks(
    micrograph_path: str,
    pixel_size: float | None,
    diameter_angstrom: float,
    invert: bool,
    workdir: Path,
    adjust_threshold: float = 0.0,
) -> pd.DataFrame:
    """RELION's LoG picks on one micrograph: columns x, y, score (rlnAutopickFigureOfMerit),
    diameter (NaN: RELION does not write the detected size), in the file's pixel frame.

    ``adjust_threshold`` is RELION's --LoG_adjust_threshold (0, its default: RELION's own
    operating point; positive gives fewer picks). ``pixel_size`` None: the file header's.
    Raises InputError naming the micrograph when it cannot be read or RELION fails.
    """
    from cryopick.io import (
        InputError,
        empty_coordinates,
        read_coordinates,
        write_relion_micrographs_star,
    )

    reason = peer_unavailable("relion_log")
    if reason:
        raise InputError(f"{micrograph_path}: cannot run RELION's LoG picker: {reason}")
    workdir = Path(workdir)
    mrc, pixel_size = _prepared_mrc(micrograph_path, pixel_size, workdir, negate=False)
    star = workdir / f"{mrc.stem}_micrographs.star"
    write_relion_micrographs_star(star, [mrc.name], pixel_size)
    picks_star = workdir / "LoG" / f"{mrc.stem}_autopick.star"
    picks_star.unlink(missing_ok=True)  # never parse a previous run's picks
    command = relion_log_command(star.name, pixel_size, diameter_angstrom, invert)
    if adjust_threshold:
        command += ["--LoG_adjust_threshold", f"{adjust_threshold}"]
    result = subprocess.run(
        command, cwd=workdir, capture_output=True, text=True, env=_quiet_environment()
    )
    # RELION 3.1.3 aborts ("buffer overflow detected") while summarising a run that found no
    # particle, after it has written the (empty) coordinate file: that is zero picks, not a
    # failure.
    found_none = "Total number of particles from 1 micrographs is 0" in result.stdout
    if result.returncode != 0 and not (found_none and picks_star.is_file()):
        raise InputError(
            f"{micrograph_path}: relion_autopick --LoG failed (exit {result.returncode}): "
            f"{_stderr_tail(result.stderr or result.stdout)}"
        )
    if not picks_star.is_file():
        raise InputError(
            f"{micrograph_path}: relion_autopick --LoG wrote no coordinate file {picks_star}: "
            f"{_stderr_tail(result.stderr or result.stdout)}"
        )
    if picks_star.stat().st_size == 0:
        return empty_coordinates()
    return read_coordinates(picks_star)


# ----------------------------------------------------------------------------------------------
# Topaz
# ----------------------------------------------------------------------------------------------


def topaz_scale(diameter_px: float) -> int:
    """Topaz's integer downsampling factor: as large as keeps the particle at least
    TOPAZ_PARTICLE_PIXELS across (so between 27 and 54 px, inside resnet16's 71-px field;
    108-px particles get 4, as in the earlier benchmark); 1 for smaller particles."""
    return max(1, math.floor(diameter_px / TOPAZ_PARTICLE_PIXELS))


def topaz_radius(diameter_px: float, scale: int) -> int:
    """Topaz's extraction radius (its non-maximum suppression): the particle radius in
    downsampled pixels, as Topaz's documentation recommends."""
    return max(1, int(round(diameter_px / scale / 2)))


def read_topaz_coordinates(path: str | os.PathLike, scale: float = 1.0) -> pd.DataFrame:
    """Topaz's coordinate table (tab-separated ``image_name x_coord y_coord score``, in the
    pixels of the image Topaz read) as a cryopick frame, coordinates multiplied by ``scale``
    to return to the original file's pixels."""
    import pandas as pd

    from cryopick.io import InputError, _coordinates_frame, empty_coordinates

    path = Path(path)
    try:
        table = pd.read_csv(path, sep="\t")
    except pd.errors.EmptyDataError:
        return empty_coordinates()
    except Exception as exc:
        raise InputError(f"{path}: cannot parse Topaz coordinates ({exc})") from exc
    if not {"x_coord", "y_coord", "score"} <= set(table.columns):
        raise InputError(
            f"{path}: Topaz coordinates need columns x_coord, y_coord, score; found "
            f"{list(table.columns)}"
        )
    if table.empty:
        return empty_coordinates()
    return _coordinates_frame(
        table["x_coord"].to_numpy(float) * scale,
        table["y_coord"].to_numpy(float) * scale,
        table["score"],
    )


def topaz_picks(
    micrograph_path: str,
    pixel_size: float | None,
    diameter_angstrom: float,
    invert: bool,
    workdir: Path,
    topaz_command: str = "topaz",
    threshold: float = TOPAZ_OPERATING_THRESHOLD,
) -> pd.DataFrame:
    """Topaz's pretrained-model picks on one micrograph: columns x, y, score (Topaz's
    log-likelihood ratio), diameter (NaN), in the file's pixel frame.

    ``topaz preprocess`` downsamples (particle 27-54 px across, ``topaz_scale``) with GMM
    normalisation, then ``topaz extract -m resnet16_u64`` picks at ``threshold`` (score 0,
    :data:`TOPAZ_OPERATING_THRESHOLD`). Topaz's models expect dark particles: a
    bright-particle micrograph (``invert``) is negated first. ``pixel_size`` None: the file
    header's.
    Raises InputError naming the micrograph when it cannot be read or Topaz fails.
    """
    from cryopick.io import InputError

    reason = peer_unavailable("topaz", topaz_command)
    if reason:
        raise InputError(f"{micrograph_path}: cannot run Topaz: {reason}")
    workdir = Path(workdir)
    mrc, pixel_size = _prepared_mrc(micrograph_path, pixel_size, workdir / "input", negate=invert)
    diameter_px = diameter_angstrom / pixel_size
    scale = topaz_scale(diameter_px)
    preprocessed = workdir / "preprocessed"
    preprocessed.mkdir(parents=True, exist_ok=True)
    output = workdir / f"{mrc.stem}_topaz.txt"
    output.unlink(missing_ok=True)
    steps = [
        [
            *[topaz_command, "preprocess", "-s", str(scale), "-d", "-1", "-j", "1"],
            *["-o", str(preprocessed), str(mrc)],
        ],
        [
            *[topaz_command, "extract", "-m", TOPAZ_MODEL, "-d", "-1", "-j", "1"],
            *["-r", str(topaz_radius(diameter_px, scale)), "-t", f"{threshold}"],
            *["-o", str(output), str(preprocessed / mrc.name)],
        ],
    ]
    for command in steps:
        result = subprocess.run(
            command, cwd=workdir, capture_output=True, text=True, env=_quiet_environment()
        )
        if result.returncode != 0:
            raise InputError(
                f"{micrograph_path}: topaz {command[1]} failed (exit {result.returncode}): "
                f"{_stderr_tail(result.stderr or result.stdout)}"
            )
    if not output.is_file():
        raise InputError(f"{micrograph_path}: topaz extract wrote no coordinate file {output}")
    return read_topaz_coordinates(output, scale)
