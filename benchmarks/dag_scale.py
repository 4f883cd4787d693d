"""How the workflow scales to a whole EMPIAR data set on a cluster: DAG-build time, jobs and
cluster submissions of a dry run through profiles/slurm, Snakemake's start-up inside one job,
and the cost of the batch manifest.

    .venv/bin/python benchmarks/dag_scale.py                 # 10,000 micrographs
    .venv/bin/python benchmarks/dag_scale.py --micrographs 20000

Micrographs are empty placeholder files (a dry run never opens them); the workflow and config
are the real defaults (U-Net on, batched). `--unlabelled` leaves out the label folder, as on a
new data set, where stages that cannot be scored need not run. Prints a table and writes it to
benchmarks/results/dag_scale[_N][_unlabelled].tsv.
"""

from __future__ import annotations

import argparse
import math
import os
import re
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from benchmarks.tables import print_and_write_metrics  # noqa: E402
from cryopick.batching import assign_batches, read_manifest, write_manifest  # noqa: E402

SNAKEMAKE = str(Path(sys.executable).with_name("snakemake"))
# CPU seconds of denoise + U-Net + picks of one 4096^2 micrograph on one thread (session 5
# benchmarks/results/unet_speed_general_session5.md, column total_cpu_s)
PICKING_CPU_S = 3.81
# Rules without an action (targets) are finished by Snakemake itself, never submitted.
TARGET_RULES = {"all"}


def make_placeholder_dataset(root: Path, n: int, labelled: bool = True) -> dict:
    """n empty micrographs (and label files); the data set's config entry."""
    (root / "micrographs").mkdir(parents=True)
    (root / "labels").mkdir()
    for i in range(n):
        name = f"FoilHole_{i:08d}_Data"
        (root / "micrographs" / f"{name}.mrc").touch()
        if labelled:
            (root / "labels" / f"{name}.csv").touch()
    entry = {
        "micrographs": str(root / "micrographs" / "*.mrc"),
        "pixel_size": 1.0,
        "particle_diameter": 150.0,
    }
    if labelled:
        entry["ground_truth"] = str(root / "labels")
    return entry


def timed_lines(cmd: list[str], cwd: Path) -> tuple[list[tuple[float, str]], int, dict]:
    """Run ``cmd``; every output line with the seconds since the start, the exit code and
    the process's own usage: CPU seconds (user + system) and peak memory (GB)."""
    start = time.monotonic()
    proc = subprocess.Popen(
        cmd, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, bufsize=1
    )
    lines = [(time.monotonic() - start, line.rstrip("\n")) for line in proc.stdout]
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    lines.append((time.monotonic() - start, ""))
    used = {"cpu": usage.ru_utime + usage.ru_stime, "peak_gb": usage.ru_maxrss / 1024**2}
    return lines, proc.returncode, used


def first_time(lines: list[tuple[float, str]], text: str) -> float:
    return next(t for t, line in lines if text in line)


def count_submissions(lines: list[tuple[float, str]]) -> tuple[Counter, Counter, Counter]:
    """Jobs per rule, cluster submissions per rule/group and jobs per group from a dry run:
    a group job is one submission; a top-level `rule` block is one; `localrule` and target
    rules none."""
    jobs, submissions, in_groups = Counter(), Counter(), Counter()
    group = None
    for _, line in lines:
        if m := re.match(r"^\[.*\] Group job (\S+) ", line):
            group = m.group(1)
            submissions[f"group {group}"] += 1
        elif m := re.match(r"^( *)(local)?rule (\w+):$", line):
            indent, local, rule = m.groups()
            jobs[rule] += 1
            if indent and group:
                in_groups[rule] += 1
            elif not local and rule not in TARGET_RULES:
                group = None
                submissions[rule] += 1
            else:
                group = None
    return jobs, submissions, in_groups


def manifest_cost(n: int, batch_size: int) -> dict[str, float]:
    """Seconds to assign, write and re-read the manifest of n micrographs, and to add 50."""
    names = [f"FoilHole_{i:08d}_Data" for i in range(n)]
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "batches.tsv"
        t0 = time.perf_counter()
        assignment = assign_batches({}, names, batch_size)
        write_manifest(path, assignment)
        t1 = time.perf_counter()
        again = assign_batches(read_manifest(path), names, batch_size)
        changed = write_manifest(path, again)
        t2 = time.perf_counter()
        grown = assign_batches(
            read_manifest(path), names + [f"new_{i}" for i in range(50)], batch_size
        )
        write_manifest(path, grown)
        t3 = time.perf_counter()
    assert not changed
    return {"first": t1 - t0, "unchanged": t2 - t1, "add50": t3 - t2}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--micrographs", type=int, default=10_000)
    parser.add_argument(
        "--batch-size",
        type=int,
        default=yaml.safe_load((REPO / "config" / "config.yaml").read_text())["batching"]["size"],
        help="micrographs per batch (default: the workflow's default config)",
    )
    parser.add_argument(
        "--unlabelled",
        action="store_true",
        help="no ground truth (a new data set): only scorable stages run",
    )
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    n, batch_size = args.micrographs, args.batch_size
    if args.out is None:
        suffix = ("" if n == 10_000 else f"_{n}") + ("_unlabelled" if args.unlabelled else "")
        args.out = REPO / f"benchmarks/results/dag_scale{suffix}.tsv"

    rows: list[tuple[str, str]] = []
    with tempfile.TemporaryDirectory(prefix="dag_scale_") as tmp:
        tmp = Path(tmp)
        dataset = make_placeholder_dataset(tmp / "data", n, labelled=not args.unlabelled)
        config = tmp / "config.yaml"
        config.write_text(
            yaml.safe_dump({"datasets": {"big": dataset}, "batching": {"size": batch_size}})
        )
        snakefile = REPO / "Snakefile"
        work = tmp / "work"
        base = [
            SNAKEMAKE,
            "-s",
            str(snakefile),
            "--directory",
            str(work),
            "--configfile",
            str(config),
            "--profile",
            str(REPO / "profiles/slurm"),
        ]

        lines, code, dry_usage = timed_lines([*base, "-n"], REPO)
        if code != 0:
            sys.exit("\n".join(line for _, line in lines[-40:]))
        parsed = first_time(lines, "Building DAG of jobs")
        dag = first_time(lines, "Job stats:")
        total = lines[-1][0]
        jobs, submissions, in_groups = count_submissions(lines)

        # What every cluster job pays before its own work: Snakemake parses the workflow
        # (listing all micrographs, building the batches) and a DAG for its target job.
        startup_lines, code, startup = timed_lines(
            [
                *base,
                "-n",
                "--target-jobs",
                "denoise:dataset=big,batch=00000",
                "--allowed-rules",
                "denoise",
                "--executor",
                "dryrun",
            ],
            REPO,
        )
        if code != 0:
            sys.exit("\n".join(line for _, line in startup_lines[-40:]))
        job_startup = startup_lines[-1][0]

    cost = manifest_cost(20_000, batch_size)
    bound = math.ceil(n / batch_size)
    gpu_subs = submissions.get("unet_predict", 0)
    n_submissions = sum(submissions.values())
    # what a real run pays Snakemake beyond the picking: the main process (its DAG build, as
    # in the dry run) and one start-up per submitted job; against the CPU picking work of a
    # 4096^2 micrograph (denoise + U-Net + picks, 1 thread: models/README.md)
    orchestration = (dry_usage["cpu"] + n_submissions * startup["cpu"]) / n
    rows += [
        ("machine load average (1 min) at the end", f"{os.getloadavg()[0]:.1f}"),
        ("micrographs", str(n)),
        ("batch size", str(batch_size)),
        ("labelled", "no" if args.unlabelled else "yes"),
        ("dry run: parse + list micrographs + batches (s)", f"{parsed:.1f}"),
        ("dry run: DAG built (s)", f"{dag:.1f}"),
        ("dry run: total incl. job listing (s)", f"{total:.1f}"),
        ("dry run: CPU (s)", f"{dry_usage['cpu']:.1f}"),
        ("dry run: peak memory (GB)", f"{dry_usage['peak_gb']:.2f}"),
        ("jobs in the DAG", str(sum(jobs.values()))),
        ("cluster submissions", str(n_submissions)),
        ("submissions per batch of micrographs", f"{n_submissions / bound:.2f}"),
        ("batched GPU stage submissions (unet_predict)", str(gpu_subs)),
        ("ceil(N / batch size)", str(bound)),
        ("GPU stage within bound", "yes" if gpu_subs <= bound else "NO"),
        ("Snakemake start-up of one job, dry (s)", f"{job_startup:.1f}"),
        ("Snakemake start-up of one job, CPU (s)", f"{startup['cpu']:.1f}"),
        ("Snakemake start-up of one job, peak memory (GB)", f"{startup['peak_gb']:.2f}"),
        ("orchestration CPU per micrograph (s)", f"{orchestration:.3f}"),
        ("picking CPU per 4096^2 micrograph, 1 thread (s)", f"{PICKING_CPU_S:.1f}"),
        ("orchestration / picking CPU", f"{orchestration / PICKING_CPU_S:.1%}"),
        ("manifest, 20,000 names, first write (ms)", f"{cost['first'] * 1000:.0f}"),
        ("manifest, 20,000 names, unchanged re-read (ms)", f"{cost['unchanged'] * 1000:.0f}"),
        ("manifest, 20,000 + 50 new (ms)", f"{cost['add50'] * 1000:.0f}"),
    ]
    for rule, count in sorted(jobs.items()):
        rows.append((f"jobs: {rule}", str(count)))
    for what, count in sorted(submissions.items()):
        rows.append((f"submissions: {what}", str(count)))

    print_and_write_metrics(rows, args.out)


if __name__ == "__main__":
    main()
