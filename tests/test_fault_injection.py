"""Fault injection: the workflow (Snakemake and its running job) is killed with SIGKILL at
several points of a small run with the U-Net, restarted as the README says (``--unlock``,
then the same command), and every final artifact is compared byte for byte with an
uninterrupted run's."""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest
import yaml

from tests.conftest import (
    REPO,
    SMALL_DENOISE,
    SPARSE_BASELINE,
    local_profile_command,
    make_dataset,
)
from tests.test_interruption import incomplete_outputs

pytestmark = pytest.mark.slow

# what the user keeps: picks in every format, the index, counts and metrics, and every batch
# artifact they were made from (logs, benchmarks and the report's timings are not results)
SKIPPED_PARTS = {"logs", "benchmarks", "report"}


def final_artifacts(workdir: Path) -> dict[str, str]:
    results = workdir / "results"
    return {
        str(p.relative_to(results)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(results.rglob("*"))
        if p.is_file() and not SKIPPED_PARTS & set(p.relative_to(results).parts)
    }


def in_flight(workdir: Path, folder: str) -> bool:
    return any(f"/{folder}/" in p for p in incomplete_outputs(workdir))


KILL_POINTS = {
    "denoise batch in flight": lambda w: in_flight(w, "denoise"),
    "U-Net batch in flight": lambda w: in_flight(w, "unet"),
    "U-Net picks in flight": lambda w: in_flight(w, "unet_picks"),
    "final picks batch in flight": lambda w: in_flight(w, "final_picks"),
}


@pytest.fixture(scope="module")
def small_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("faults")
    dataset = make_dataset(root / "data", n_micrographs=5)
    config = root / "config.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "datasets": {"set": dataset},
                "denoise": SMALL_DENOISE,
                "baseline": SPARSE_BASELINE,
                "batching": {"size": 2},
                "unet": {
                    "enabled": True,
                    "model": str(REPO / "models" / "unet_default.pt"),
                    "device": "cpu",
                    "threads": 1,
                },
                "picks": {"source": "unet", "formats": ["csv", "box"]},
                # the shipped model is not made for these disc images: few picks are expected
                "checks": {"max_empty_fraction": 1.0},
            }
        )
    )
    reference = root / "reference"
    result = subprocess.run(
        local_profile_command(reference, config), capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return root, config, final_artifacts(reference)


@pytest.mark.parametrize("point", list(KILL_POINTS))
def test_a_killed_run_resumed_as_the_readme_says_ends_byte_identical(small_run, point) -> None:
    root, config, reference = small_run
    workdir = root / point.replace(" ", "_")
    cmd = local_profile_command(workdir, config)
    run = subprocess.Popen(
        cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
    )
    deadline = time.monotonic() + 300
    try:
        while time.monotonic() < deadline and run.poll() is None:
            if KILL_POINTS[point](workdir):
                break
            time.sleep(0.02)
        assert run.poll() is None, f"the run finished before {point}"
    finally:
        os.killpg(run.pid, signal.SIGKILL)
        run.wait()
    assert final_artifacts(workdir) != reference  # it was stopped short

    subprocess.run([*cmd, "--unlock"], capture_output=True, check=True, timeout=300)
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert final_artifacts(workdir) == reference
    assert not incomplete_outputs(workdir)
