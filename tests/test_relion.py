"""A real client: RELION's relion_preprocess extracts particles at the pipeline's own picks.

RELION exits 0 when it extracts nothing, so the test counts particles instead of trusting the
exit code, and checks that the average particle is centred (dark core, as the data's
particles are dark, with the dark blob's centroid in the middle of the box)."""

import os
import subprocess

import mrcfile
import numpy as np
import pytest

from cryopick.io import read_coordinates, write_relion_micrographs_star
from tests.conftest import final_picks_file, final_picks_names, requires

pytestmark = [pytest.mark.relion, requires("relion_preprocess", "Debian package relion")]


def test_relion_extracts_every_pick_centred(workflow_run, small_dataset, tmp_path):
    workdir, _, _ = workflow_run
    results = workdir / "results" / "small"
    mic_dir = os.path.dirname(small_dataset["micrographs"])
    names = sorted(final_picks_names(results))
    (tmp_path / "Micrographs").mkdir()
    (tmp_path / "coords" / "Micrographs").mkdir(parents=True)
    lines = []
    n_picks = 0
    for name in names:
        os.symlink(os.path.join(mic_dir, f"{name}.mrc"), tmp_path / "Micrographs" / f"{name}.mrc")
        star = final_picks_file(results, name)
        (tmp_path / "coords" / "Micrographs" / f"{name}_pick.star").write_text(star.read_text())
        n_picks += len(read_coordinates(star))
        lines.append(f"Micrographs/{name}.mrc")
    write_relion_micrographs_star(tmp_path / "mics.star", lines, small_dataset["pixel_size"])
    box = 64
    result = subprocess.run(
        [
            "relion_preprocess",
            "--i",
            "mics.star",
            "--coord_dir",
            "coords/",
            "--coord_suffix",
            "_pick.star",
            "--part_star",
            "particles.star",
            "--part_dir",
            "Extract/",
            "--extract",
            "--extract_size",
            str(box),
            "--norm",
            "--bg_radius",
            "25",
            "--white_dust",
            "-1",
            "--black_dust",
            "-1",
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    particles = (tmp_path / "particles.star").read_text()
    assert n_picks > 0 and particles.count("@Extract/") == n_picks
    stack = np.concatenate(
        [mrcfile.read(p) for p in sorted((tmp_path / "Extract").rglob("*.mrcs"))]
    )
    assert len(stack) == n_picks
    mean = stack.mean(axis=0)
    yy, xx = np.mgrid[0:box, 0:box]
    r = np.hypot(xx - box / 2, yy - box / 2)
    assert mean[r < 8].mean() < mean[(r > 24) & (r < 30)].mean() - 0.3  # dark particles
    weight = np.clip(mean[(r > 24) & (r < 30)].mean() - mean, 0, None) * (r < 20)
    cy, cx = (weight * yy).sum() / weight.sum(), (weight * xx).sum() / weight.sum()
    assert abs(cx - box / 2) < 1.0 and abs(cy - box / 2) < 1.0
