"""What Snakemake and SLURM cost per micrograph in a real cluster run, beside the picking.

Runs the workflow with its default stages (denoise, U-Net on the CPU, U-Net picks, final picks)
through profiles/slurm on the throw-away single-node cluster of .ci/slurm/start.sh (real
slurmctld, slurmd, slurmdbd) over a few thousand tiny micrographs made here, whose picking
costs almost nothing, so that what is left is orchestration. Per job: the wall time and the
CPU time SLURM accounted (sacct Elapsed, whole seconds, and TotalCPU of every process of the
job, gathered by jobacct_gather/linux) against the job's own work (Snakemake's benchmark
file: the script's wall and CPU seconds); beside it the CPU of the main Snakemake process
(the submitting one, for the whole run). The difference per micrograph is the orchestration
overhead, in wall and in CPU seconds, compared with the CPU picking work of a real 4096^2
micrograph.

    .venv/bin/python benchmarks/slurm_overhead.py --micrographs 2048   # needs root + the
                                                                        # SLURM Debian packages

Jobs run at most ``--jobs`` at a time (default 2: this machine's cores), so that elapsed time
is not inflated by jobs waiting for a core. Writes benchmarks/results/slurm_overhead.tsv.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "tests"))

from slurm_cluster import START, STOP, read_env_file  # noqa: E402

from benchmarks.dag_scale import PICKING_CPU_S  # noqa: E402
from benchmarks.tables import print_and_write_metrics  # noqa: E402
from cryopick.io import write_mrc  # noqa: E402
from tests.conftest import disc_micrograph  # noqa: E402

SNAKEMAKE = str(Path(sys.executable).with_name("snakemake"))
OUT = REPO / "benchmarks" / "results" / "slurm_overhead.tsv"


def make_micrographs(folder: Path, n: int) -> dict:
    """n tiny micrographs (256 x 256, a few discs each, varied by seed); the data set entry."""
    folder.mkdir(parents=True)
    for i in range(n):
        image, _ = disc_micrograph((256, 256), n=6, diameter=20.0, seed=i)
        write_mrc(folder / f"FoilHole_{i:08d}_Data.mrc", image, 4.0)
    return {"micrographs": str(folder / "*.mrc"), "pixel_size": 4.0, "particle_diameter": 80.0}


def filled_profile(env: dict, folder: Path) -> Path:
    """profiles/slurm with its placeholders filled in for the throw-away cluster."""
    text = (REPO / "profiles" / "slurm" / "config.yaml").read_text()
    text = (
        text.replace("YOUR_ACCOUNT", env["CRYOPICK_SLURM_ACCOUNT"])
        .replace("YOUR_CPU_PARTITION", env["CRYOPICK_SLURM_CPU_PARTITION"])
        .replace("YOUR_GPU_PARTITION", env["CRYOPICK_SLURM_GPU_PARTITION"])
    )
    (folder / "slurm").mkdir(parents=True)
    (folder / "slurm" / "config.yaml").write_text(text)
    return folder / "slurm"


def elapsed_seconds(value: str) -> int:
    """sacct's Elapsed ([D-]HH:MM:SS) in seconds."""
    days, _, clock = value.rpartition("-")
    h, m, s = (int(x) for x in clock.split(":"))
    return int(days or 0) * 86400 + h * 3600 + m * 60 + s


def cpu_seconds(value: str) -> float:
    """sacct's TotalCPU ([[D-]HH:]MM:SS.mmm) in seconds."""
    days, _, clock = value.rpartition("-")
    parts = [float(x) for x in clock.split(":")]
    while len(parts) < 3:
        parts.insert(0, 0.0)
    h, m, s = parts
    return int(days or 0) * 86400 + h * 3600 + m * 60 + s


def job_work(results: Path) -> pd.DataFrame:
    """Every job's own work from its Snakemake benchmark file: rule, unit, s, cpu_time."""
    rows = []
    for path in results.glob("*/benchmarks/**/*.tsv"):
        table = pd.read_csv(path, sep="\t")
        rule = path.parent.name if path.parent.name != "benchmarks" else path.stem
        rows.append({"rule": rule, "s": table["s"].iloc[0], "cpu": table["cpu_time"].iloc[0]})
    return pd.DataFrame(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--micrographs", type=int, default=2048)
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="slurm_overhead_") as tmp:
        tmp = Path(tmp)
        state = tmp / "cluster"
        subprocess.run(["bash", str(START), str(state)], check=True, capture_output=True)
        env = read_env_file(state / "env", dict(os.environ))
        try:
            dataset = make_micrographs(tmp / "data", args.micrographs)
            config = tmp / "config.yaml"
            config.write_text(
                yaml.safe_dump(
                    {
                        "datasets": {"tiny": dataset},
                        "denoise": {"size": 256},
                        "unet": {"device": "cpu", "threads": 1},
                        "checks": {"max_empty_fraction": 1.0},
                    }
                )
            )
            profile = filled_profile(env, tmp / "profiles")
            start = time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime(time.time() - 1))
            t0 = time.monotonic()
            proc = subprocess.Popen(
                [
                    SNAKEMAKE,
                    "-s",
                    str(REPO / "Snakefile"),
                    "--directory",
                    str(tmp / "work"),
                    "--configfile",
                    str(config),
                    "--profile",
                    str(profile),
                    "--jobs",
                    str(args.jobs),
                    "--slurm-init-seconds-before-status-checks",
                    "2",
                ],
                cwd=REPO,
                env=env,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
            )
            output = proc.stdout.read()
            _, status, usage = os.wait4(proc.pid, 0)
            wall = time.monotonic() - t0
            if os.waitstatus_to_exitcode(status) != 0:
                sys.exit(output[-4000:])
            main_cpu = usage.ru_utime + usage.ru_stime
            sacct = subprocess.run(
                # Without -X the allocation's own line carries the TotalCPU of all its steps.
                ["sacct", "-n", "-P", "-a", "-S", start, "-o", "JobID,JobName,Elapsed,TotalCPU"],
                env=env,
                capture_output=True,
                text=True,
                check=True,
            ).stdout
            jobs = [
                fields
                for fields in (line.split("|") for line in sacct.splitlines())
                if "." not in fields[0] and fields[1].startswith("cryopick")
            ]
            work = job_work(tmp / "work" / "results")
        finally:
            subprocess.run(["bash", str(STOP), str(state)], capture_output=True)
    n = args.micrographs
    elapsed = sum(elapsed_seconds(j[2]) for j in jobs)
    job_cpu = sum(cpu_seconds(j[3]) for j in jobs)
    own_wall, own_cpu = float(work["s"].sum()), float(work["cpu"].sum())
    per_micrograph = (elapsed - own_wall + main_cpu) / n
    cpu_per_micrograph = (job_cpu - own_cpu + main_cpu) / n
    rows = [
        ("micrographs (256 x 256, tiny work)", str(n)),
        ("jobs run at once", str(args.jobs)),
        ("SLURM jobs", str(len(jobs))),
        ("jobs per rule", ", ".join(f"{r} {c}" for r, c in work["rule"].value_counts().items())),
        ("run wall (s)", f"{wall:.0f}"),
        ("main Snakemake process CPU (s)", f"{main_cpu:.1f}"),
        ("sum of job Elapsed in sacct (s)", str(elapsed)),
        ("sum of job TotalCPU in sacct (s)", f"{job_cpu:.1f}"),
        ("sum of the jobs' own work, wall (s)", f"{own_wall:.1f}"),
        ("sum of the jobs' own work, CPU (s)", f"{own_cpu:.1f}"),
        ("mean orchestration per job, wall (s)", f"{(elapsed - own_wall) / max(len(jobs), 1):.2f}"),
        ("mean orchestration per job, CPU (s)", f"{(job_cpu - own_cpu) / max(len(jobs), 1):.2f}"),
        ("orchestration per micrograph, wall + main CPU (s)", f"{per_micrograph:.3f}"),
        ("orchestration per micrograph, CPU (s)", f"{cpu_per_micrograph:.3f}"),
        ("picking CPU per 4096^2 micrograph, 1 thread (s)", f"{PICKING_CPU_S:.2f}"),
        ("orchestration wall / picking CPU", f"{per_micrograph / PICKING_CPU_S:.1%}"),
        ("orchestration CPU / picking CPU", f"{cpu_per_micrograph / PICKING_CPU_S:.1%}"),
    ]
    print_and_write_metrics(rows, args.out)
    assert np.isfinite(per_micrograph) and job_cpu > 0, "sacct reported no TotalCPU"


if __name__ == "__main__":
    main()
