"""Incremental reruns, read from Snakemake's own dry-run job list: a change reruns what
depends on it and nothing else.

The real workflow on tiny data made here, with the real U-Net stage (one job per batch of
micrographs, rules/batching.smk) running a copy of the shipped model, so that replacing the
weights can be tested without touching models/.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from tests.conftest import (
    REPO,
    SMALL_DENOISE,
    SPARSE_BASELINE,
    make_dataset,
    snakemake_command,
)

SHIPPED_MODEL = REPO / "models" / "unet_default.pt"

pytestmark = pytest.mark.slow

RULE_LINE = re.compile(r"^\s*(?:local)?rule (\w+):$")
WILDCARDS_LINE = re.compile(r"^\s*wildcards: (.*)$")


def planned_jobs(dry_run_output: str) -> dict[str, set[str]]:
    """Rule -> the jobs a dry run lists, each named by its micrograph or batch wildcard
    (``""`` for a job without one); the target rule ``all`` is left out."""
    jobs: dict[str, set[str]] = {}
    rule = None
    for line in dry_run_output.splitlines():
        if match := RULE_LINE.match(line):
            rule = match.group(1)
            jobs.setdefault(rule, set()).add("")
        elif rule and (match := WILDCARDS_LINE.match(line)):
            values = dict(item.split("=", 1) for item in match.group(1).split(", "))
            jobs[rule].discard("")
            jobs[rule].add(values.get("micrograph") or values.get("batch") or "")
            rule = None
    jobs.pop("all", None)
    return jobs


def snakemake(
    workdir: Path, config: dict, *args: str, dry_run: bool = True
) -> subprocess.CompletedProcess:
    """Run (or dry-run) a workflow with ``config`` in ``workdir``; fail with its output. The
    default config's peer pickers stay off (whether they run depends on what is installed)."""
    workdir.mkdir(parents=True, exist_ok=True)
    config_file = workdir / "config.yaml"
    config = {**config, "report": {"peers": [], **config.get("report", {})}}
    config_file.write_text(yaml.safe_dump(config))
    cmd = snakemake_command(
        workdir, config_file, "--cores", "2", *(["-n"] if dry_run else []), *args
    )
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return result


def plan(workdir: Path, config: dict, **kwargs) -> dict[str, set[str]]:
    return planned_jobs(snakemake(workdir, config, **kwargs).stdout)


def with_changes(config: dict, **sections: dict) -> dict:
    """A copy of ``config`` with some keys of some sections changed."""
    changed = yaml.safe_load(yaml.safe_dump(config))
    for section, values in sections.items():
        changed[section] = {**changed.get(section, {}), **values}
    return changed


def add_micrograph(dataset: dict, source: str, name: str) -> None:
    """A new micrograph (a copy of another under a new name) with its label file."""
    micrographs = Path(dataset["micrographs"]).parent
    shutil.copy(micrographs / f"{source}.mrc", micrographs / f"{name}.mrc")
    labels = Path(dataset["ground_truth"])
    shutil.copy(labels / f"{source}.csv", labels / f"{name}.csv")


BATCH = {"00000"}  # both micrographs: one batch of the batched stages


def unet_settings(weights: Path) -> dict:
    """The U-Net stage on, with the weights at ``weights``, on the CPU with one thread."""
    return {"enabled": True, "model": str(weights), "device": "cpu", "threads": 1, "symmetries": 1}


@pytest.fixture(scope="module")
def processed(tmp_path_factory) -> tuple[Path, dict]:
    """The real workflow (baseline and U-Net stages, final picks from the U-Net) run once to
    completion on two tiny micrographs."""
    dataset = make_dataset(
        tmp_path_factory.mktemp("data"), n_micrographs=2, shape=(300, 400), diameter_px=20
    )
    weights = tmp_path_factory.mktemp("model") / "unet.pt"
    shutil.copy(SHIPPED_MODEL, weights)
    config = {
        "datasets": {"small": dataset},
        "denoise": SMALL_DENOISE,
        "baseline": SPARSE_BASELINE,
        "unet": unet_settings(weights),
        "picks": {"source": "unet"},
    }
    workdir = tmp_path_factory.mktemp("work")
    snakemake(workdir, config, dry_run=False)
    return workdir, config


def test_unchanged_rerun_plans_nothing(processed) -> None:
    workdir, config = processed
    result = snakemake(workdir, config)
    assert planned_jobs(result.stdout) == {}
    assert "Nothing to be done" in result.stdout + result.stderr


def test_picking_parameter_reruns_picks_metrics_and_report_only(processed) -> None:
    workdir, config = processed
    assert plan(workdir, with_changes(config, picks={"min_distance": 0.7})) == {
        "picks": BATCH,
        "pick_counts": {""},
        "metrics": {""},
        "report": {""},
    }


def test_baseline_picking_parameter_reruns_the_baseline_picks_only(processed) -> None:
    workdir, config = processed
    # the final picks come from the U-Net, so only the baseline's own row changes
    assert plan(workdir, with_changes(config, baseline={"threshold": 2.5})) == {
        "pick_baseline": BATCH,
        "metrics": {""},
        "report": {""},
    }


def test_unet_picking_parameter_repicks_without_rerunning_the_network(processed) -> None:
    workdir, config = processed
    assert plan(workdir, with_changes(config, unet={"threshold": 0.3})) == {
        "pick_unet": BATCH,
        "picks": BATCH,
        "pick_counts": {""},
        "metrics": {""},
        "report": {""},
    }


def test_denoise_parameter_reruns_denoise_and_everything_after(processed) -> None:
    workdir, config = processed
    assert plan(workdir, with_changes(config, denoise={"nlm_h": 12})) == {
        "denoise": BATCH,
        "previews": BATCH,
        "pick_baseline": BATCH,
        "unet_predict": BATCH,
        "pick_unet": BATCH,
        "picks": BATCH,
        "pick_counts": {""},
        "metrics": {""},
        "report": {""},
    }


def test_added_micrograph_is_the_only_one_processed(tmp_path: Path) -> None:
    dataset = make_dataset(tmp_path / "data", n_micrographs=2, shape=(300, 400), diameter_px=20)
    config = {
        "datasets": {"small": dataset},
        "denoise": SMALL_DENOISE,
        "baseline": SPARSE_BASELINE,
        "unet": {"enabled": False},
        "picks": {"source": "baseline"},
    }
    snakemake(tmp_path / "work", config, dry_run=False)
    add_micrograph(dataset, "mic_001", "mic_new")
    # a new batch for the new micrograph (batch 00000 holds the two old ones)
    assert plan(tmp_path / "work", config) == {
        "denoise": {"00001"},
        "previews": {"00001"},
        "pick_baseline": {"00001"},
        "picks": {"00001"},
        "pick_counts": {""},
        "metrics": {""},
        "report": {""},
    }


# ------------------------------------------------------------------ the batched U-Net stage
@pytest.fixture
def batched_workflow(tmp_path: Path) -> tuple[Path, dict, dict, Path]:
    """Five micrographs, U-Net batches of two, processed once; (workdir, config, dataset,
    weights)."""
    weights = tmp_path / "model" / "unet.pt"
    weights.parent.mkdir()
    shutil.copy(SHIPPED_MODEL, weights)
    dataset = make_dataset(tmp_path / "data", n_micrographs=5, shape=(200, 260), diameter_px=16)
    config = {
        "datasets": {"small": dataset},
        "denoise": {**SMALL_DENOISE, "size": 128},
        "baseline": SPARSE_BASELINE,
        "batching": {"size": 2},
        "unet": unet_settings(weights),
        "picks": {"source": "unet"},
    }
    workdir = tmp_path / "work"
    snakemake(workdir, config, dry_run=False)
    return workdir, config, dataset, weights


def test_replacing_the_weights_reruns_the_unet_stage_and_after_only(batched_workflow) -> None:
    workdir, config, _, weights = batched_workflow
    shutil.copy(REPO / "models" / "unet_synthetic.pt", weights)
    assert plan(workdir, config) == {
        "unet_predict": {"00000", "00001", "00002"},
        "pick_unet": {"00000", "00001", "00002"},
        "picks": {"00000", "00001", "00002"},
        "pick_counts": {""},
        "metrics": {""},
        "report": {""},
    }


def test_adding_micrographs_runs_only_their_new_batches(batched_workflow) -> None:
    workdir, config, dataset, _ = batched_workflow
    results = workdir / "results" / "small"
    assert batch_contents(results / "unet") == {  # ceil(5 / 2) jobs, names in sorted order
        "batch_00000": ["mic_000", "mic_001"],
        "batch_00001": ["mic_002", "mic_003"],
        "batch_00002": ["mic_004"],
    }
    before = {
        p: p.stat().st_mtime_ns
        for p in results.rglob("*")
        if p.is_file() and "logs" not in p.parts and "benchmarks" not in p.parts
    }
    for name in ("mic_005", "mic_006", "mic_007"):
        add_micrograph(dataset, "mic_000", name)
    # batch 00002 holds only mic_004 but is not refilled: the new ones get 00003 and 00004
    assert plan(workdir, config) == {
        "denoise": {"00003", "00004"},
        "previews": {"00003", "00004"},
        "pick_baseline": {"00003", "00004"},
        "picks": {"00003", "00004"},
        "pick_counts": {""},
        "metrics": {""},
        "report": {""},
        "unet_predict": {"00003", "00004"},
        "pick_unet": {"00003", "00004"},
    }
    snakemake(workdir, config, dry_run=False)
    manifest = (results / "batches.tsv").read_text().splitlines()
    assert "mic_004\t00002" in manifest and "mic_007\t00004" in manifest
    changed = [p for p, mtime in before.items() if p.stat().st_mtime_ns != mtime]
    # only the data set's manifest, its pick counts and scores, pooled metrics and curves: no
    # old micrograph's artifact
    assert sorted(p.name for p in changed) == [
        "autopick.star",
        "batches.tsv",
        "per_micrograph.tsv",
        "pick_counts.tsv",
        "pick_scores.tsv",
        "precision_recall.tsv",
        "score_histograms.tsv",
        "summary.tsv",
    ]
    assert batch_contents(results / "unet")["batch_00003"] == ["mic_005", "mic_006"]


def batch_contents(stage: Path) -> dict[str, list[str]]:
    """Batch directory -> the micrographs whose artifacts it holds."""
    return {
        d.name: sorted(p.stem for p in d.glob("*.npz"))
        for d in sorted(stage.iterdir())
        if d.is_dir()
    }
