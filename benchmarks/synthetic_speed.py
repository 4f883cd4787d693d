"""Seconds per synthetic micrograph on one core, and peak memory per job.

    .venv/bin/python benchmarks/synthetic_speed.py [--repeats 3]

Each micrograph is generated (and, separately timed, written with all its ground truth) in a
fresh process pinned to one CPU with every thread pool at one thread, so the peak resident
memory reported is that of one workflow job. Cases: the issue's target (4096^2, 300 particles,
shot noise), the same at a target SNR, a crowded 4096^2 micrograph with every kind of
background, and the default demo set (1024^2). Target: <= 5 s per 4096^2 micrograph and
< 2 GB per job. Writes benchmarks/results/synthetic_speed.{tsv,md}.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "benchmarks" / "results"

CASES = {
    "4096 / 300 particles / dose": dict(particles_per_micrograph=300, particle_count_spread=0.0),
    "4096 / 300 particles / snr 0.1": dict(
        particles_per_micrograph=300, particle_count_spread=0.0, noise="snr", snr=0.1
    ),
    "4096 / 800 particles / all backgrounds": dict(
        particles_per_micrograph=800,
        particle_count_spread=0.0,
        carbon_probability=1.0,
        thick_ice_probability=1.0,
        contaminants_per_um2=8.0,
        aggregates_per_um2=6.0,
    ),
    "1024 demo (7.08 A/px)": dict(
        height=1024,
        width=1024,
        pixel_size=7.08,
        particles_per_micrograph=300,
        particle_count_spread=0.0,
    ),
}


def worker(case: str, index: int, out_dir: str) -> None:
    """One job: generate micrograph ``index`` of ``case`` on one core, then write it."""
    import resource
    import time

    import cv2

    cv2.setNumThreads(1)
    sys.path.insert(0, str(REPO))
    from cryopick.synthetic import (
        SyntheticSettings,
        generate_micrograph,
        volume_family,
        write_micrograph_files,
    )

    settings = SyntheticSettings(**CASES[case])
    start = time.process_time()
    volumes = volume_family(settings, 0)
    family_s = time.process_time() - start
    wall, cpu = time.perf_counter(), time.process_time()
    m = generate_micrograph(settings, index, 0, volumes=volumes)
    generate_wall = time.perf_counter() - wall
    generate_cpu = time.process_time() - cpu
    wall = time.perf_counter()
    write_micrograph_files(m, out_dir, f"bench_{index:04d}")
    write_wall = time.perf_counter() - wall
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(
        json.dumps(
            {
                "family_s": family_s,
                "generate_cpu_s": generate_cpu,
                "generate_wall_s": generate_wall,
                "write_wall_s": write_wall,
                "peak_mb": peak_mb,
                "particles": int(m.info["particles_placed"]),
                "shape": list(m.image.shape),
            }
        )
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3, help="micrographs per case")
    parser.add_argument("--cpu", type=int, default=0, help="CPU to pin the jobs to")
    parser.add_argument(
        "--worker", nargs=3, metavar=("CASE", "INDEX", "OUT"), help=argparse.SUPPRESS
    )
    args = parser.parse_args()
    if args.worker:
        worker(args.worker[0], int(args.worker[1]), args.worker[2])
        return
    env = dict(os.environ, OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1", MKL_NUM_THREADS="1")
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for case in CASES:
            for index in range(args.repeats):
                command = [
                    "taskset",
                    "-c",
                    str(args.cpu),
                    sys.executable,
                    __file__,
                    "--worker",
                    case,
                    str(index),
                    tmp,
                ]
                done = subprocess.run(command, env=env, check=True, capture_output=True, text=True)
                result = json.loads(done.stdout.strip().splitlines()[-1])
                rows.append({"case": case, "index": index, **result})
                print(
                    f"{case:40s} #{index}: generate {result['generate_cpu_s']:.2f} s CPU "
                    f"({result['generate_wall_s']:.2f} s wall), write "
                    f"{result['write_wall_s']:.2f} s, peak {result['peak_mb']:.0f} MB, "
                    f"{result['particles']} particles",
                    flush=True,
                )
    load = os.getloadavg()[0]

    def median(values):
        values = sorted(values)
        return values[len(values) // 2]

    summary = []
    for case in CASES:
        sel = [r for r in rows if r["case"] == case]
        summary.append(
            {
                "case": case,
                "micrographs": len(sel),
                "generate_cpu_s_median": median(r["generate_cpu_s"] for r in sel),
                "generate_cpu_s_max": max(r["generate_cpu_s"] for r in sel),
                "generate_wall_s_median": median(r["generate_wall_s"] for r in sel),
                "write_wall_s_median": median(r["write_wall_s"] for r in sel),
                "volume_family_cpu_s": median(r["family_s"] for r in sel),
                "peak_mb_max": max(r["peak_mb"] for r in sel),
            }
        )
    RESULTS.mkdir(parents=True, exist_ok=True)
    header = list(summary[0])
    with open(RESULTS / "synthetic_speed.tsv", "w") as handle:
        handle.write("\t".join(header) + "\n")
        for row in summary:
            handle.write(
                "\t".join(f"{v:.3f}" if isinstance(v, float) else str(v) for v in row.values())
                + "\n"
            )
    lines = [
        "# Synthetic micrograph generation speed (one core)",
        "",
        f"Machine: {platform.machine()}, {os.cpu_count()} CPUs shared with other jobs (load "
        f"average {load:.1f} at the end). Each micrograph is generated in a fresh process "
        "pinned to one CPU with one thread everywhere (a workflow job: first call, FFT plans "
        f"not cached); medians over {args.repeats} micrographs. CPU seconds are the cost on "
        "one core; wall seconds also count waiting for the shared CPU.",
        "`generate` is `generate_micrograph` (image, instance labels and every mask); `write` "
        "writes the MRC, CSV, STAR, PNG masks, instance labels, particle table and JSON. Peak "
        "memory is the job's maximum resident set size.",
        "",
        "| case | micrographs | generate CPU s (median) | max | generate wall s | "
        "write wall s | volumes CPU s | peak MB |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in summary:
        lines.append(
            f"| {r['case']} | {r['micrographs']} | {r['generate_cpu_s_median']:.2f} | "
            f"{r['generate_cpu_s_max']:.2f} | {r['generate_wall_s_median']:.2f} | "
            f"{r['write_wall_s_median']:.2f} | {r['volume_family_cpu_s']:.2f} | "
            f"{r['peak_mb_max']:.0f} |"
        )
    lines += [
        "",
        "Target (issue 3): <= 5 s per 4096^2 micrograph with 300 particles on one "
        "core; < 2 GB per job.",
        "",
    ]
    (RESULTS / "synthetic_speed.md").write_text("\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
