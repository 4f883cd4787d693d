"""A real single-node SLURM cluster for the tests marked ``slurm`` (no mocks).

Import the fixture into a test module (``from slurm_cluster import slurm_cluster``); the
first test that asks for it starts the cluster with ``.ci/slurm/start.sh`` once per session
and the session's end stops exactly the daemons it started. Where the Debian packages are
absent the tests are skipped, except under ``CI=true``, where a missing cluster is a failure:
CI must prove the SLURM path, not skip it silently.

Set ``CRYOPICK_SLURM_DIR`` to reuse a cluster you started yourself (it is left running).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
START = REPO / ".ci" / "slurm" / "start.sh"
STOP = REPO / ".ci" / "slurm" / "stop.sh"
REQUIRED_PROGRAMS = (
    "munged",
    "mariadbd",
    "mariadb-install-db",
    "slurmdbd",
    "slurmctld",
    "slurmd",
    "sbatch",
    "srun",
    "sacct",
    "sacctmgr",
    "sinfo",
    "scontrol",
)
APT_LINE = "apt-get install -y munge slurmctld slurmd slurm-client slurmdbd mariadb-server"
TERMINAL_STATES = {
    "COMPLETED",
    "FAILED",
    "CANCELLED",
    "TIMEOUT",
    "OUT_OF_MEMORY",
    "NODE_FAIL",
    "BOOT_FAIL",
    "DEADLINE",
    "PREEMPTED",
}


def missing_programs() -> list[str]:
    """Programs the cluster needs that are not installed (sbin included: root's tools)."""
    path = os.environ.get("PATH", "") + ":/usr/sbin:/sbin"
    return [p for p in REQUIRED_PROGRAMS if shutil.which(p, path=path) is None]


def read_env_file(path: Path, base: dict[str, str]) -> dict[str, str]:
    """``base`` plus the ``export NAME=value`` lines start.sh writes (``$VAR`` expanded against
    ``base``), so tests need no shell."""
    env = dict(base)
    for line in path.read_text().splitlines():
        if line.startswith("export ") and "=" in line:
            name, value = line[len("export ") :].split("=", 1)
            env[name] = re.sub(r"\$(\w+)", lambda m: env.get(m.group(1), ""), value)
    return env


@dataclass(frozen=True)
class SlurmCluster:
    """Handle on a running cluster: its state directory and the environment to reach it."""

    state_dir: Path
    env: dict[str, str] = field(repr=False)

    @property
    def cpu_partition(self) -> str:
        return self.env["CRYOPICK_SLURM_CPU_PARTITION"]

    @property
    def gpu_partition(self) -> str:
        return self.env["CRYOPICK_SLURM_GPU_PARTITION"]

    @property
    def account(self) -> str:
        return self.env["CRYOPICK_SLURM_ACCOUNT"]

    def run(self, *args: str, cwd: Path | None = None, timeout: float = 60) -> str:
        """Run a SLURM client command against this cluster; its stdout, or raise with stderr."""
        proc = subprocess.run(
            args, env=self.env, cwd=cwd, capture_output=True, text=True, timeout=timeout
        )
        if proc.returncode != 0:
            raise RuntimeError(f"{' '.join(args)} failed ({proc.returncode}): {proc.stderr}")
        return proc.stdout

    def sbatch(self, *args: str, cwd: Path | None = None) -> str:
        """Submit a batch job; its job id."""
        return self.run("sbatch", "--parsable", *args, cwd=cwd).strip().split(";")[0]

    def sacct(
        self, jobid: str, fields: str = "JobID,JobName,State,AllocTRES,ReqTRES"
    ) -> list[dict]:
        """The job's allocation rows (``sacct -X``) as dicts, from the accounting database."""
        out = self.run("sacct", "-X", "-n", "-P", "-j", jobid, "-o", fields)
        names = fields.split(",")
        return [dict(zip(names, line.split("|"))) for line in out.splitlines() if line]

    def wait(self, jobid: str, timeout: float = 120) -> dict:
        """Poll sacct until the job reaches a terminal state; its row (or raise on timeout)."""
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            rows = self.sacct(jobid)
            if rows and rows[0]["State"].split()[0] in TERMINAL_STATES:
                return rows[0]
            time.sleep(1)
        raise TimeoutError(f"job {jobid} not finished after {timeout} s: {self.sacct(jobid)}")

    def jobs_since(
        self, start: str, fields: str = "JobID,JobName,Comment,State,AllocTRES"
    ) -> list[dict]:
        """All allocation rows of jobs submitted since ``start`` (sacct's time format)."""
        out = self.run("sacct", "-X", "-n", "-P", "-a", "-S", start, "-o", fields)
        names = fields.split(",")
        return [
            dict(zip(names, line.split("|", len(names) - 1))) for line in out.splitlines() if line
        ]


def _unavailable(reason: str) -> None:
    """Skip on a developer machine, fail in CI (CI=true must exercise the real cluster)."""
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"SLURM required in CI: {reason}", pytrace=False)
    pytest.skip(reason)


@pytest.fixture(scope="session")
def slurm_cluster(tmp_path_factory: pytest.TempPathFactory) -> SlurmCluster:
    """Start (once per session) and stop the throw-away cluster; skip/fail when impossible."""
    missing = missing_programs()
    if missing:
        _unavailable(f"SLURM packages missing ({', '.join(missing)}): {APT_LINE}")
    if os.geteuid() != 0:
        _unavailable("the CI SLURM cluster runs its daemons as root")
    given = os.environ.get("CRYOPICK_SLURM_DIR")
    state = Path(given) if given else tmp_path_factory.mktemp("slurm")
    t0 = time.monotonic()
    proc = subprocess.run(
        ["bash", str(START), str(state)], capture_output=True, text=True, timeout=300
    )
    if proc.returncode != 0:
        pytest.fail(f"SLURM bring-up failed:\n{proc.stderr}", pytrace=False)
    env = read_env_file(state / "env", dict(os.environ))
    print(f"SLURM cluster in {state} ready after {time.monotonic() - t0:.1f} s")
    yield SlurmCluster(state_dir=state, env=env)
    if not given:
        subprocess.run(["bash", str(STOP), str(state)], capture_output=True, timeout=120)
        shutil.rmtree(state / "mysql", ignore_errors=True)  # the database; logs stay for debugging
