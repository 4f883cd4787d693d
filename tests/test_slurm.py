"""The SLURM path against a real single-node cluster (tests/slurm_cluster.py): a GPU job on
the fake GPU, the workflow end to end through profiles/slurm, and the profile's GPU rules
submitted with a GPU request that sacct records."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
import yaml
from slurm_cluster import SlurmCluster, slurm_cluster  # noqa: F401  (fixture)

from tests.conftest import final_picks_file

pytestmark = pytest.mark.slurm

REPO = Path(__file__).resolve().parents[1]
SNAKEMAKE = str(Path(sys.executable).with_name("snakemake"))
PLACEHOLDERS = ("YOUR_ACCOUNT", "YOUR_CPU_PARTITION", "YOUR_GPU_PARTITION")
GPU_RULES = ("unet_predict", "sam_masks", "train_unet")


def ci_profile(cluster: SlurmCluster, folder: Path) -> Path:
    """profiles/slurm with only its placeholders filled in for the CI cluster."""
    text = (REPO / "profiles" / "slurm" / "config.yaml").read_text()
    for placeholder in PLACEHOLDERS:
        assert placeholder in text, f"profile lost its {placeholder} placeholder"
    text = (
        text.replace("YOUR_ACCOUNT", cluster.account)
        .replace("YOUR_CPU_PARTITION", cluster.cpu_partition)
        .replace("YOUR_GPU_PARTITION", cluster.gpu_partition)
    )
    profile = folder / "slurm"
    profile.mkdir(parents=True)
    (profile / "config.yaml").write_text(text)
    return profile


def user_workflow_directory(cluster: SlurmCluster, folder: Path) -> Path:
    """The workflow directory as a user has it after filling in profiles/slurm: the
    repository's files (linked) and its ``slurm`` link to the profile, so that the command
    users type, ``snakemake --profile slurm``, runs from it unchanged."""
    link = os.readlink(REPO / "slurm")
    assert link == "profiles/slurm", link
    folder.mkdir()
    skipped = {".git", ".venv", ".snakemake", "results", "resources", "profiles", "slurm"}
    for entry in REPO.iterdir():
        if entry.name not in skipped:
            (folder / entry.name).symlink_to(entry)
    ci_profile(cluster, folder / "profiles")
    (folder / "slurm").symlink_to(link)
    return folder


def run_snakemake(
    cluster: SlurmCluster,
    workdir: Path,
    profile: Path | str,
    *args: str,
    snakefile: Path | None = REPO / "Snakefile",
    cwd: Path = REPO,
) -> subprocess.CompletedProcess:
    """snakemake through the profile (a path, or a bare name looked up from ``cwd``); the first
    status check after 2 s instead of 40 s keeps the test short (the only setting changed from
    the profile)."""
    cmd = [
        SNAKEMAKE,
        *(["-s", str(snakefile)] if snakefile else []),
        "--directory",
        str(workdir),
        "--profile",
        str(profile),
        "--slurm-init-seconds-before-status-checks",
        "2",
        *args,
    ]
    result = subprocess.run(
        cmd, cwd=cwd, env=cluster.env, capture_output=True, text=True, timeout=900
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-6000:]
    return result


def sacct_start(cluster: SlurmCluster) -> str:
    """Now, in sacct's -S format, a second early so that jobs submitted next are included."""
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime(time.time() - 1))


def jobs_of_run(cluster: SlurmCluster, start: str) -> pd.DataFrame:
    rows = cluster.jobs_since(start, "JobID,JobName,Partition,Comment,State,AllocTRES")
    table = pd.DataFrame(rows)
    return table[table["JobName"].str.startswith("cryopick_")]


def test_gpu_job_runs_and_is_accounted_with_gres_gpu(
    slurm_cluster: SlurmCluster, tmp_path: Path
) -> None:
    """A --gres=gpu:1 job runs on the fake GPU and sacct records gres/gpu in its TRES."""
    out = tmp_path / "visible.txt"
    jobid = slurm_cluster.sbatch(
        "-p",
        slurm_cluster.gpu_partition,
        "--gres=gpu:1",
        "--mem",
        "100",
        "-t",
        "1",
        "-o",
        str(tmp_path / "%j.log"),
        "--wrap",
        f"echo $CUDA_VISIBLE_DEVICES > {out}",
        cwd=tmp_path,
    )
    row = slurm_cluster.wait(jobid)
    assert row["State"] == "COMPLETED", row
    assert "gres/gpu=1" in row["AllocTRES"], row
    # SLURM bound the fake device to the job, as it would a real one.
    assert out.read_text().strip() == "0"


def test_demo_workflow_end_to_end_through_the_slurm_profile(
    slurm_cluster: SlurmCluster, tmp_path: Path
) -> None:
    """The bundled demo data set through profiles/slurm with the default config (shipped U-Net):
    outputs complete, the U-Net batch job went to the GPU partition with a GPU request, every
    other job to the CPU partition without one, one job per batch and stage; run as users type
    it, ``snakemake --profile slurm`` in the workflow directory."""
    demo = yaml.safe_load((REPO / "config" / "config.yaml").read_text())["datasets"][
        "demo_empiar10017"
    ]
    for key in ("micrographs", "ground_truth", "ground_truth_masks"):
        demo[key] = str(REPO / demo[key])
    config = tmp_path / "config.yaml"
    # with RELION's LoG picker as the peer (report.peers), a job of its own per batch
    config.write_text(
        yaml.safe_dump({"datasets": {"demo": demo}, "report": {"peers": ["relion_log"]}})
    )
    workdir = tmp_path / "work"
    workflow = user_workflow_directory(slurm_cluster, tmp_path / "workflow")
    start = sacct_start(slurm_cluster)

    # exactly what users type in the workflow directory (issue 15): the bare profile name
    result = run_snakemake(
        slurm_cluster, workdir, "slurm", "--configfile", str(config), snakefile=None, cwd=workflow
    )
    assert "Using profile slurm" in result.stdout + result.stderr

    names = sorted(p.stem for p in Path(demo["micrographs"]).parent.glob("*.jpg"))
    for name in names:
        star = final_picks_file(workdir / "results/demo", name).read_text()
        assert "rlnCoordinateX" in star and len(star.splitlines()) > 50
    summary = pd.read_csv(workdir / "results/demo/metrics/summary.tsv", sep="\t")
    stages = ["baseline", "unet", "relion_log", "final"]
    assert list(summary["stage"]) == stages and (summary["f1"] > 0.3).all()
    assert "demo" in (workdir / "results/report/index.html").read_text()
    assert (workdir / "results/demo/batches.tsv").read_text().count("\n") == len(names) + 1
    unet_log = (workdir / "results/demo/logs/unet_predict/batch_00000.log").read_text()
    assert "device used: cpu" in unet_log  # the CI GPU is a fake one: torch sees no CUDA

    jobs = jobs_of_run(slurm_cluster, start)
    assert (jobs["State"] == "COMPLETED").all(), jobs
    gpu = jobs["Comment"].str.startswith("rule_unet_predict")
    assert gpu.sum() == 1, jobs  # one batch: 3 micrographs, one job, the model loaded once
    assert (jobs.loc[gpu, "Partition"] == slurm_cluster.gpu_partition).all(), jobs
    assert jobs.loc[gpu, "AllocTRES"].str.contains("gres/gpu=1").all(), jobs
    assert (jobs.loc[~gpu, "Partition"] == slurm_cluster.cpu_partition).all(), jobs
    assert not jobs.loc[~gpu, "AllocTRES"].str.contains("gres/gpu").any(), jobs
    # one batch of 3 micrographs: one job each for denoise, pick_baseline, the U-Net, the LoG
    # peer and the report's previews, one for pick_unet and the final picks together (the
    # profile's batch_picks group: connected jobs of one batch); pick counts, metrics and
    # report: 9.
    assert len(jobs) == 9, jobs


def test_gpu_rules_of_the_profile_are_submitted_with_a_gpu(
    slurm_cluster: SlurmCluster, tmp_path: Path
) -> None:
    """Rules named like the workflow's GPU rules, declaring only portable resources, get the
    GPU partition and one GPU from profiles/slurm; sacct shows gres/gpu for each, and each job
    saw the GPU SLURM bound to it."""
    snakefile = tmp_path / "Snakefile"
    rules = "\n".join(
        f"rule {name}:\n    output: 'gpu/{name}.txt'\n    threads: 1\n"
        f"    resources: mem_mb=100, runtime=5\n"
        f"    shell: 'echo $CUDA_VISIBLE_DEVICES > {{output}}'\n"
        for name in GPU_RULES
    )
    snakefile.write_text(f"rule all:\n    input: {[f'gpu/{n}.txt' for n in GPU_RULES]}\n\n{rules}")
    profile = ci_profile(slurm_cluster, tmp_path / "profiles")
    start = sacct_start(slurm_cluster)

    run_snakemake(slurm_cluster, tmp_path / "work", profile, snakefile=snakefile)

    jobs = jobs_of_run(slurm_cluster, start)
    assert len(jobs) == len(GPU_RULES), jobs
    for name in GPU_RULES:
        job = jobs[jobs["Comment"] == f"rule_{name}"]  # the plugin's comment: rule_<name>
        assert len(job) == 1, jobs
        row = job.iloc[0]
        assert row["State"] == "COMPLETED" and row["Partition"] == slurm_cluster.gpu_partition, row
        assert "gres/gpu=1" in row["AllocTRES"], row
        assert (tmp_path / "work" / "gpu" / f"{name}.txt").read_text().strip() == "0"
