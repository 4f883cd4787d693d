"""The SLURM path against a real single-node cluster (see tests/slurm_cluster.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from slurm_cluster import SlurmCluster, slurm_cluster  # noqa: F401  (fixture)

pytestmark = pytest.mark.slurm


def test_gpu_job_runs_and_is_accounted_with_gres_gpu(slurm_cluster: SlurmCluster, tmp_path: Path) -> None:
    """A --gres=gpu:1 job runs on the fake GPU and sacct records gres/gpu in its TRES."""
    out = tmp_path / "visible.txt"
    jobid = slurm_cluster.sbatch(
        "-p", slurm_cluster.gpu_partition, "--gres=gpu:1", "--mem", "100", "-t", "1",
        "-o", str(tmp_path / "%j.log"),
        "--wrap", f"echo $CUDA_VISIBLE_DEVICES > {out}",
        cwd=tmp_path,
    )
    row = slurm_cluster.wait(jobid)
    assert row["State"] == "COMPLETED", row
    assert "gres/gpu=1" in row["AllocTRES"], row
    # SLURM bound the fake device to the job, as it would a real one.
    assert out.read_text().strip() == "0"
