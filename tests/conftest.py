"""Shared fixtures: tiny synthetic micrographs with known particle centres, and a runner for
the real Snakemake workflow in a temporary directory."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
SNAKEMAKE = str(Path(sys.executable).with_name("snakemake"))


def final_picks_file(results: Path, name: str, fmt: str = "star") -> Path:
    """A micrograph's published final picks under ``results`` (results/{dataset}):
    picks/{name}.star, or picks_{fmt}/{name}.{fmt} for another format."""
    return results / ("picks" if fmt == "star" else f"picks_{fmt}") / f"{name}.{fmt}"


def final_picks_names(results: Path) -> set[str]:
    """The micrographs with published final picks (a .star) under ``results``."""
    return {p.stem for p in (results / "picks").glob("*.star")}


def disc_micrograph(
    shape=(600, 800), n=25, diameter=40.0, seed=0, noise=0.35, margin=None
) -> tuple[np.ndarray, np.ndarray]:
    """Dark soft-edged discs on a noisy, slightly sloped background; returns (image, centres)
    with centres as (x, y) in pixels, at least 1.2 diameters apart and away from the edge."""
    rng = np.random.default_rng(seed)
    h, w = shape
    margin = diameter if margin is None else margin
    centres: list[tuple[float, float]] = []
    while len(centres) < n:
        x, y = rng.uniform(margin, w - margin), rng.uniform(margin, h - margin)
        if all((x - a) ** 2 + (y - b) ** 2 > (1.2 * diameter) ** 2 for a, b in centres):
            centres.append((x, y))
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    image = 1.0 + 0.1 * xx / w
    for x, y in centres:
        r = np.hypot(xx - x, yy - y)
        image -= 1.0 / (1.0 + np.exp(np.clip((r - diameter / 2) / 1.5, -50, 50)))
    image += rng.normal(0, noise, size=shape)
    return image.astype(np.float32), np.array(centres)


def write_cryoppp(path: Path, centres: np.ndarray, diameter: float) -> None:
    lines = ["X-Coordinate,Y-Coordinate,Diameter"]
    lines += [f"{x:.2f},{y:.2f},{diameter}" for x, y in centres]
    path.write_text("\n".join(lines) + "\n")


def make_dataset(
    root: Path,
    n_micrographs=2,
    shape=(600, 800),
    diameter_px=40.0,
    pixel_size=2.0,
    seed=0,
    fmt="mrc",
) -> dict:
    """A data set of disc micrographs with CryoPPP labels; returns its config entry."""
    from PIL import Image

    from cryopick.io import write_mrc

    (root / "micrographs").mkdir(parents=True, exist_ok=True)
    (root / "labels").mkdir(exist_ok=True)
    for i in range(n_micrographs):
        image, centres = disc_micrograph(shape, diameter=diameter_px, seed=seed + i)
        name = f"mic_{i:03d}"
        if fmt == "mrc":
            write_mrc(root / "micrographs" / f"{name}.mrc", image, pixel_size)
        else:
            scaled = (image - image.min()) / (image.max() - image.min()) * 255
            Image.fromarray(scaled.astype(np.uint8)).save(root / "micrographs" / f"{name}.{fmt}")
        write_cryoppp(root / "labels" / f"{name}.csv", centres, diameter_px)
    return {
        "micrographs": str(root / "micrographs" / f"*.{fmt}"),
        "pixel_size": pixel_size,
        "particle_diameter": diameter_px * pixel_size,
        "ground_truth": str(root / "labels"),
    }


# The shipped U-Net is trained on real EMPIAR-10017 micrographs, not on these tiny disc images;
# tests of the other stages turn it off unless their config says otherwise, and the peer
# pickers of the default config (tests/test_peers.py, test_report_browser.py, test_slurm.py
# run them).
BASELINE_ONLY = {
    "unet": {"enabled": False},
    "picks": {"source": "baseline"},
    "report": {"peers": []},
}


def baseline_only(config: dict) -> dict:
    """``config`` with the U-Net stage off, baseline picks and no peers, for sections it does
    not set."""
    merged = {key: dict(value) for key, value in BASELINE_ONLY.items()}
    for key, value in config.items():
        merged[key] = {**merged[key], **value} if key in merged else value
    return merged


def snakemake_command(workdir: Path, config_path: Path, *extra: str) -> list[str]:
    """The command line of the real workflow with ``config_path`` in ``workdir``."""
    return [
        SNAKEMAKE,
        "-s",
        str(REPO / "Snakefile"),
        "--directory",
        str(workdir),
        "--configfile",
        str(config_path),
        *extra,
    ]


def local_profile_command(workdir: Path, config_path: Path) -> list[str]:
    """The workflow through profiles/local on one core, as the README's local run."""
    return snakemake_command(
        workdir, config_path, "--profile", str(REPO / "profiles" / "local"), "--cores", "1"
    )


def run_workflow(
    workdir: Path, config: dict, *extra: str, check=True, timeout=900
) -> subprocess.CompletedProcess:
    """Run the real workflow with ``config`` in ``workdir`` (outputs under workdir/results);
    the U-Net stage is off unless ``config`` turns it on (``baseline_only``)."""
    workdir.mkdir(parents=True, exist_ok=True)
    config_path = workdir / "config.yaml"
    config_path.write_text(yaml.safe_dump(baseline_only(config)))
    cmd = snakemake_command(workdir, config_path, "--cores", "2", *extra)
    result = subprocess.run(
        cmd,
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, "PYTHONHASHSEED": "0"},
    )
    if check and result.returncode != 0:
        raise AssertionError(
            f"snakemake failed ({result.returncode}):\n{result.stdout[-4000:]}"
            f"\n{result.stderr[-6000:]}"
        )
    return result


SMALL_DENOISE = {"size": 256, "nlm_search": 11, "guided_radius": 8, "clahe_tiles": 8}
# The default baseline is tuned for crowded real micrographs; these test sets are sparse.
SPARSE_BASELINE = {"sigma_factor": 0.25, "threshold": 3.0, "edge_margin": 0.5}


def requires(tool: str, reason: str):
    """Skip when ``tool`` is absent, except in CI (CI=true), where the test must run."""
    import shutil

    present = shutil.which(tool) is not None
    if os.environ.get("CI") == "true":
        return pytest.mark.skipif(False, reason="")
    return pytest.mark.skipif(not present, reason=f"{tool} not installed: {reason}")


@pytest.fixture(scope="session")
def small_dataset(tmp_path_factory) -> dict:
    return make_dataset(tmp_path_factory.mktemp("data"), n_micrographs=2)


@pytest.fixture(scope="session")
def workflow_run(tmp_path_factory, small_dataset):
    """One end-to-end run of the workflow on the small MRC data set, shared by several tests."""
    workdir = tmp_path_factory.mktemp("run")
    config = {
        "datasets": {"small": small_dataset},
        "denoise": SMALL_DENOISE,
        "baseline": SPARSE_BASELINE,
        "picks": {"formats": ["csv", "box"]},
    }
    result = run_workflow(workdir, config)
    return workdir, config, result
