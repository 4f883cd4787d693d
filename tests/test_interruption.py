"""A run killed in the middle (SIGKILL of Snakemake and its jobs) and started again completes
without redoing finished micrographs and without taking a half-written artifact for done."""

from __future__ import annotations

import base64
import hashlib
import os
import signal
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest
import yaml

from tests.conftest import (
    SMALL_DENOISE,
    SPARSE_BASELINE,
    baseline_only,
    final_picks_names,
    local_profile_command,
    make_dataset,
)
from tests.test_incremental import planned_jobs

pytestmark = pytest.mark.slow


def incomplete_outputs(workdir: Path) -> set[str]:
    """Outputs Snakemake has marked as being written (its .snakemake/incomplete records)."""
    folder = workdir / ".snakemake" / "incomplete"
    if not folder.exists():
        return set()
    return {
        base64.urlsafe_b64decode(p.name).decode()
        for p in folder.iterdir()
        if p.is_file() and not p.name.startswith("@") and p.name != "migration_underway"
    }


def digest(path: Path) -> tuple[str, int]:
    return hashlib.sha256(path.read_bytes()).hexdigest(), path.stat().st_mtime_ns


def test_killed_run_resumes_without_redoing_finished_micrographs(tmp_path: Path) -> None:
    """Denoise runs one job per batch (two micrographs here): a finished batch is not redone,
    the batch in flight is redone whole (its directory is not taken for done)."""
    dataset = make_dataset(tmp_path / "data", n_micrographs=5)
    config = tmp_path / "config.yaml"
    config.write_text(
        yaml.safe_dump(
            baseline_only(
                {
                    "datasets": {"set": dataset},
                    "denoise": SMALL_DENOISE,
                    "baseline": SPARSE_BASELINE,
                    "batching": {"size": 2},
                }
            )
        )
    )
    workdir = tmp_path / "work"
    cmd = local_profile_command(workdir, config)
    denoised = workdir / "results" / "set" / "denoise"

    def finished_batches() -> list[Path]:
        in_flight = {
            p for p in incomplete_outputs(workdir) if "/denoise/" in p and "." not in Path(p).name
        }
        return [
            d
            for d in denoised.glob("batch_*")
            if str(d.relative_to(workdir)) not in in_flight and any(d.glob("*.npz"))
        ]

    # Kill Snakemake and its running job at once, while a denoise batch is being written and
    # at least one other batch is finished.
    run = subprocess.Popen(
        cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
    )
    deadline = time.monotonic() + 300
    try:
        while time.monotonic() < deadline and run.poll() is None:
            in_flight = {
                p
                for p in incomplete_outputs(workdir)
                if "/denoise/" in p and "." not in Path(p).name
            }
            if in_flight and finished_batches():
                break
            time.sleep(0.05)
        assert run.poll() is None, "the run finished before it could be interrupted"
    finally:
        os.killpg(run.pid, signal.SIGKILL)
        run.wait()

    in_flight = {
        p for p in incomplete_outputs(workdir) if "/denoise/" in p and "." not in Path(p).name
    }
    assert in_flight, "no job was in flight when the run was killed"
    finished = {p: digest(p) for d in finished_batches() for p in d.glob("*.npz")}
    assert finished
    # What a writer killed mid-way leaves behind: the start of a file where an artifact goes.
    for path in in_flight:
        (workdir / path).mkdir(parents=True, exist_ok=True)
        (workdir / path / "mic_999.npz").write_bytes(b"PK\x03\x04 half of a numpy archive")

    planned = planned_jobs(
        subprocess.run([*cmd, "-n"], capture_output=True, text=True, timeout=300).stdout
    )
    finished_batch_ids = {p.parent.name.removeprefix("batch_") for p in finished}
    in_flight_ids = {Path(p).name.removeprefix("batch_") for p in in_flight}
    assert in_flight_ids <= planned["denoise"]
    assert not finished_batch_ids & planned["denoise"]

    # The killed Snakemake left its lock; a user removes it (as Snakemake's message says) once
    # sure that the run is dead, then starts the same command again.
    subprocess.run([*cmd, "--unlock"], capture_output=True, check=True, timeout=300)
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]

    assert {p: digest(p) for p in finished} == finished  # not redone, not touched
    for path in in_flight:  # rewritten whole: no leftover, every artifact loads
        artifacts = sorted((workdir / path).glob("*.npz"))
        assert artifacts and not (workdir / path / "mic_999.npz").exists()
        for artifact in artifacts:
            with np.load(artifact) as data:
                assert len(data.files) > 0
    names = {p.stem for p in Path(dataset["micrographs"]).parent.glob("*.mrc")}
    assert final_picks_names(workdir / "results/set") == names
    assert not incomplete_outputs(workdir)
