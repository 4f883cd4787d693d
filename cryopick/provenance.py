"""What a reviewer needs to reproduce a report: cryopick's version and git commit, the model
file's sha256, package versions, the machine and device, the resolved config and the command
that rebuilds the report. Cheap to gather (no torch import: the U-Net's device is read from its
jobs' logs).
"""

from __future__ import annotations

import glob
import importlib.metadata
import os
import platform
import re
import shlex
import subprocess

from cryopick.io import file_sha256

PACKAGES = (
    "torch",
    "numpy",
    "scipy",
    "pandas",
    "scikit-image",
    "opencv-contrib-python-headless",
    "mrcfile",
    "starfile",
    "matplotlib",
    "snakemake",
    "snakemake-executor-plugin-slurm",
    "segment-anything",
    "pydensecrf2",
)


def git_commit(repository: str | os.PathLike) -> str:
    """HEAD of the workflow's checkout, '+ local changes' when its tracked files differ; or why
    there is none."""

    def git(*args: str) -> str:
        return subprocess.run(
            ["git", "-C", str(repository), *args],
            capture_output=True,
            text=True,
            timeout=20,
            check=True,
        ).stdout.strip()

    try:
        commit = git("rev-parse", "HEAD")
        dirty = git("status", "--porcelain", "--untracked-files=no")
    except (OSError, subprocess.SubprocessError):
        return "not a git checkout"
    return commit + (" + local changes" if dirty else "")


def package_versions(packages=PACKAGES) -> dict[str, str]:
    versions = {}
    for name in packages:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = "not installed"
    return versions


def machine() -> dict[str, str]:
    """This job's machine: host, OS, Python, CPUs, memory, GPUs (nvidia-smi when present)."""
    memory = ""
    try:
        with open("/proc/meminfo") as handle:
            kib = int(re.search(r"MemTotal:\s+(\d+)", handle.read()).group(1))
        memory = f"{kib / 2**20:.1f} GiB"
    except (OSError, AttributeError):
        pass
    gpus = "none found"
    try:
        result = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True, timeout=10)
        if result.returncode == 0 and result.stdout.strip():
            gpus = "; ".join(result.stdout.strip().splitlines())
    except (OSError, subprocess.SubprocessError):
        pass
    return {
        "host": platform.node(),
        "system": platform.platform(),
        "python": platform.python_version(),
        "cpus": str(os.cpu_count()),
        "memory": memory,
        "gpus": gpus,
    }


def devices_used(log_folders: list[str]) -> str:
    """The devices the U-Net jobs logged ("device used: ..."), e.g. 'cpu' or 'cuda:0'."""
    found = set()
    for folder in log_folders:
        for path in sorted(glob.glob(os.path.join(folder, "*.log")))[:50]:
            try:
                with open(path, errors="replace") as handle:
                    found.update(re.findall(r"device used: (\S+)", handle.read()))
            except OSError:
                continue
    return ", ".join(sorted(found)) or "no U-Net job logged a device"


def rebuild_command(snakefile: str, workdir: str, configfiles: list[str], target: str) -> str:
    """The command line that rebuilds this report from the same inputs (values given with
    --config are in the resolved config the report shows)."""
    words = ["snakemake", "-s", snakefile, "--directory", workdir, "--cores", "1"]
    for path in configfiles:
        words += ["--configfile", path]
    words += ["--forcerun", "report", target]
    return shlex.join(words)


def model_line(path: str) -> str:
    """A checkpoint as the reproducibility block names it: its path and sha256."""
    return f"{path} (sha256 {file_sha256(path)})" if os.path.isfile(path) else f"{path} (missing)"


def provenance(
    repository: str,
    model: str | None,
    command: str,
    log_folders: list[str],
    adapted_models: dict[str, str] | None = None,
) -> dict[str, object]:
    """Everything of the reproducibility block but the config. ``adapted_models`` (data set ->
    checkpoint) names the models that unet.self_training fine-tuned from ``model``, which are
    the ones those data sets' maps come from."""
    from cryopick import __version__

    facts: dict[str, object] = {
        "cryopick": __version__,
        "git commit": git_commit(repository),
        "model": model_line(model) if model else "U-Net off",
    }
    if adapted_models:
        facts["models adapted by self-training, per data set"] = {
            dataset: model_line(path) for dataset, path in sorted(adapted_models.items())
        }
    return facts | {
        "U-Net device": devices_used(log_folders),
        "command": command,
        "machine": machine(),
        "packages": package_versions(),
    }
