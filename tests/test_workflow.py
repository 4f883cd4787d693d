"""The real workflow, end to end, on tiny data made here: outputs, metrics, reruns,
determinism, bad input with --keep-going, configuration errors and lint."""

import hashlib
import shutil
import subprocess

import numpy as np
import pandas as pd
import pytest
import yaml

from cryopick.io import read_coordinates, write_mrc
from tests.conftest import (
    REPO,
    SMALL_DENOISE,
    SNAKEMAKE,
    SPARSE_BASELINE,
    final_picks_file,
    make_dataset,
    run_workflow,
)

pytestmark = pytest.mark.slow


def test_end_to_end_outputs(workflow_run):
    workdir, _, _ = workflow_run
    results = workdir / "results" / "small"
    for name in ("mic_000", "mic_001"):
        picks = read_coordinates(final_picks_file(results, name))
        assert 20 <= len(picks) <= 30
        assert (np.diff(picks["score"]) <= 0).all()  # best first
        assert len(read_coordinates(final_picks_file(results, name, "csv"))) == len(picks)
        assert len(read_coordinates(final_picks_file(results, name, "box"))) == len(picks)
    # the short CPU stages ran as one job per batch (two micrographs, one batch)
    log = (results / "logs" / "denoise" / "batch_00000.log").read_text()
    assert log.count("done in") == 1 and "mic_000: denoised" in log and "mic_001" in log
    assert (results / "benchmarks" / "denoise" / "batch_00000.tsv").exists()
    assert sorted(p.name for p in (results / "baseline" / "batch_00000").glob("*.star")) == [
        "mic_000.star",
        "mic_001.star",
    ]
    summary = pd.read_csv(results / "metrics" / "summary.tsv", sep="\t")
    assert list(summary["stage"]) == ["baseline", "final"]
    assert (summary["f1"] > 0.9).all() and (summary["f1_r025"] > 0.85).all()
    assert summary["dice"].between(0.7, 1.0).all()
    per = pd.read_csv(results / "metrics" / "per_micrograph.tsv", sep="\t")
    assert len(per) == 4 and set(per["micrograph"]) == {"mic_000", "mic_001"}
    report = (workdir / "results" / "report" / "index.html").read_text()
    assert "<h2>small</h2>" in report and "pick_baseline" in report  # its section, timings
    assert "Warned micrographs (0)" in report
    assert report.count("<circle") >= 40  # both micrographs' picks drawn in the gallery
    counts = pd.read_csv(results / "pick_counts.tsv", sep="\t", keep_default_na=False)
    assert list(counts["micrograph"]) == ["mic_000", "mic_001"]
    assert (counts["n_picks"] >= 20).all() and (counts["flag"] == "").all()
    table = pd.read_csv(workdir / "results" / "report" / "benchmark.tsv", sep="\t")
    assert list(table["dataset"]) == ["small", "small"]


def test_unchanged_rerun_does_nothing(workflow_run):
    workdir, config, _ = workflow_run
    result = run_workflow(workdir, config, "-n")
    assert "Nothing to be done" in result.stdout + result.stderr


def test_same_inputs_give_same_picks(workflow_run, tmp_path):
    workdir, config, _ = workflow_run
    run_workflow(tmp_path / "again", config)
    for name in ("mic_000", "mic_001"):
        first = read_coordinates(final_picks_file(workdir / "results/small", name))
        second = read_coordinates(final_picks_file(tmp_path / "again/results/small", name))
        pd.testing.assert_frame_equal(first, second)


def _digest(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_bad_micrographs_fail_alone_and_nothing_is_lost(tmp_path):
    """Through the real batched stages (denoise, baseline picks, the shipped U-Net, U-Net
    picks): damaged micrographs added to a processed data set fail alone."""
    data = tmp_path / "data"
    dataset = make_dataset(data, n_micrographs=2)
    config = {
        "datasets": {"set": dataset},
        "denoise": SMALL_DENOISE,
        "baseline": SPARSE_BASELINE,
        "picks": {"source": "unet"},
        "unet": {
            "enabled": True,
            "model": str(REPO / "models" / "unet_default.pt"),
            "device": "cpu",
            "threads": 1,
        },
    }
    work = tmp_path / "work"
    run_workflow(work, config)
    manifest = work / "results" / "set" / "batches.tsv"
    old_batches = manifest.read_text().splitlines()
    # every per-micrograph artifact (the batches); the data set's tables are redone, since
    # the data set changed
    kept = {
        p: (_digest(p), p.stat().st_mtime_ns)
        for p in (work / "results").rglob("batch_*/*")
        if p.is_file() and "logs" not in p.parts and "benchmarks" not in p.parts
    }
    summary = work / "results" / "set" / "metrics" / "summary.tsv"
    scores = summary.read_text()
    # add three damaged micrographs to the same data set
    good = data / "micrographs" / "mic_000.mrc"
    truncated = data / "micrographs" / "truncated.mrc"
    truncated.write_bytes(good.read_bytes()[: good.stat().st_size // 3])
    image = np.ones((300, 300), np.float32)
    write_mrc(data / "micrographs" / "constant.mrc", image, 2.0)
    image[10:20, 10:20] = np.nan
    image[0, 0] = 2.0
    write_mrc(data / "micrographs" / "has_nan.mrc", image, 2.0)
    for name in ("truncated", "constant", "has_nan"):
        shutil.copy(data / "labels" / "mic_000.csv", data / "labels" / f"{name}.csv")
    inputs = {p: _digest(p) for p in data.rglob("*") if p.is_file()}

    result = run_workflow(work, config, "--keep-going", check=False)
    assert result.returncode != 0
    results = work / "results" / "set"
    # the new micrographs form a new batch; its denoise job records each bad one and succeeds
    denoise_log = (results / "logs" / "denoise" / "batch_00001.log").read_text()
    messages = {
        "truncated": "truncated.mrc: MRC file is truncated",
        "constant": "constant.mrc: image is constant",
        "has_nan": "has_nan.mrc: image holds 100 NaN",
    }
    unet_log = (results / "logs" / "unet_predict" / "batch_00001.log").read_text()
    for name, message in messages.items():
        assert message in denoise_log
        assert message in (results / "denoise" / "batch_00001" / f"{name}.error.txt").read_text()
        # the U-Net batch and the U-Net picks skip it and pass the record on
        assert f"{name}: skipped: " in unet_log and message in unet_log
        for stage in ("unet", "unet_picks"):
            record = results / stage / "batch_00001" / f"{name}.error.txt"
            assert message in record.read_text()
        # its final picks: the first cause in its batch's log and error record, no .star
        picks_log = (results / "logs" / "picks" / "batch_00001.log").read_text()
        assert f"{name}: FAILED: " in picks_log and message in picks_log
        assert "Traceback" not in picks_log
        record = results / "final_picks" / "batch_00001" / f"{name}.error.txt"
        assert message in record.read_text()
        assert not final_picks_file(results, name).exists()
    assert "truncated" in result.stderr
    # the good micrographs' outputs are untouched, the inputs too; the metrics are those of
    # the good ones, as before (the failed ones are named as not scored)
    for path, (digest, mtime) in kept.items():
        assert path.exists() and _digest(path) == digest and path.stat().st_mtime_ns == mtime, path
    assert summary.read_text() == scores
    assert (
        "3 of 5 micrographs failed and are not scored"
        in (results / "logs" / "metrics.log").read_text()
    )
    assert "3 micrograph(s) failed (listed above)" in result.stderr
    # the report still comes, its gallery shows each failed micrograph with its cause
    report = (work / "results" / "report" / "index.html").read_text()
    for message in messages.values():
        assert message in report
    assert {p: _digest(p) for p in data.rglob("*") if p.is_file()} == inputs
    # the batch manifest only grows: every earlier micrograph keeps its batch
    assert set(old_batches) <= set(manifest.read_text().splitlines())
    assert not list((work / "results").rglob(".*.npz.*")), "no half-written artifacts"


def test_missing_ground_truth_is_named_or_skipped(tmp_path):
    dataset = make_dataset(tmp_path / "data", n_micrographs=2)
    (tmp_path / "data" / "labels" / "mic_001.csv").unlink()
    config = {"datasets": {"set": dataset}, "denoise": SMALL_DENOISE, "baseline": SPARSE_BASELINE}
    result = run_workflow(tmp_path / "w1", config, check=False)
    assert result.returncode != 0
    log = (tmp_path / "w1/results/set/logs/metrics.log").read_text()
    assert "no ground-truth file" in log and "mic_001" in log
    assert final_picks_file(tmp_path / "w1/results/set", "mic_001").exists()
    config["metrics"] = {"missing_ground_truth": "skip"}
    run_workflow(tmp_path / "w2", config)
    summary = pd.read_csv(tmp_path / "w2/results/set/metrics/summary.tsv", sep="\t")
    assert (summary["n_micrographs"] == 1).all()
    assert "skipped mic_001" in (tmp_path / "w2/results/set/logs/metrics.log").read_text()


@pytest.mark.parametrize(
    "change, expected",
    [
        ({"denoise": {"size": 256, "nlm_hh": 3}}, "nlm_hh"),
        ({"baseline": {"threshold": "high"}}, "threshold"),
        ({"picks": {"source": "magic"}}, "magic"),
    ],
)
def test_config_errors_name_the_key(tmp_path, small_dataset, change, expected):
    config = {"datasets": {"small": small_dataset}, **change}
    result = run_workflow(tmp_path, config, "-n", check=False)
    assert result.returncode != 0
    assert expected in result.stderr + result.stdout


def test_dataset_with_wrong_type_is_refused(tmp_path, small_dataset):
    config = {"datasets": {"small": {**small_dataset, "particle_diameter": "big"}}}
    result = run_workflow(tmp_path, config, "-n", check=False)
    assert result.returncode != 0 and "particle_diameter" in result.stderr + result.stdout


def test_user_datasets_replace_the_default_ones(tmp_path, small_dataset):
    (tmp_path / "config").mkdir()
    default = {"datasets": {"bundled": small_dataset}, "denoise": {"size": 256}}
    (tmp_path / "config" / "config.yaml").write_text(yaml.safe_dump(default))
    result = run_workflow(tmp_path, {"datasets": {"mine": small_dataset}}, "-n")
    assert "results/mine/final_picks" in result.stdout and "results/bundled" not in result.stdout


def test_snakemake_lint_is_clean():
    result = subprocess.run(
        [SNAKEMAKE, "--lint"], cwd=REPO, capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stdout + result.stderr


def _planned_outputs(dry_run_stdout: str) -> list[str]:
    return [
        path.strip()
        for line in dry_run_stdout.splitlines()
        if line.strip().startswith("output:")
        for path in line.split("output:", 1)[1].split(",")
    ]


def test_unlabelled_data_sets_run_only_the_source_stage(tmp_path):
    """Comparison stages cannot be scored without ground truth: on an unlabelled data set only
    denoise, the source stage and the final picks (and their count check) are planned, while a
    labelled one in the same run gets every enabled stage (here baseline, unet and unet+crf)."""
    labelled = make_dataset(tmp_path / "labelled", n_micrographs=2)
    unlabelled = {
        k: v
        for k, v in make_dataset(tmp_path / "plain", n_micrographs=2).items()
        if not k.startswith("ground_truth")
    }
    config = {
        "datasets": {"lab": labelled, "plain": unlabelled},
        "denoise": SMALL_DENOISE,
        "unet": {"enabled": True},
        "crf": {"enabled": True},
        "picks": {"source": "unet"},
    }
    dry = run_workflow(tmp_path / "run", config, "-n")
    outputs = _planned_outputs(dry.stdout)
    plain = {path.split("/")[2] for path in outputs if path.startswith("results/plain/")}
    lab = {path.split("/")[2] for path in outputs if path.startswith("results/lab/")}
    assert plain == {
        "denoise",
        "unet",
        "unet_picks",
        "final_picks",
        "pick_counts.tsv",
        "pick_scores.tsv",
        "autopick.star",
        "previews",
    }, plain
    assert {"baseline", "unet_picks", "crf", "crf_picks", "final_picks", "metrics"} <= lab, lab
    # with the CRF as the source it runs on the unlabelled set too, and the U-Net picks do not
    config["picks"]["source"] = "crf"
    config["crf"]["enabled"] = False
    outputs = _planned_outputs(run_workflow(tmp_path / "run", config, "-n").stdout)
    plain = {path.split("/")[2] for path in outputs if path.startswith("results/plain/")}
    assert plain == {"denoise", "unet", "crf", "crf_picks", "final_picks"} | {
        "pick_counts.tsv",
        "pick_scores.tsv",
        "autopick.star",
        "previews",
    }, plain


def test_empty_picks_warn_and_a_mostly_empty_data_set_fails(tmp_path, small_dataset):
    """A picker that finds nothing is never a green run: each empty micrograph is a WARNING on
    the console and the data set ends with an error naming the settings to check; the empty
    .star files stay for the user to look at."""
    config = {
        "datasets": {"small": small_dataset},
        "denoise": SMALL_DENOISE,
        "baseline": {**SPARSE_BASELINE, "threshold": 1e6},
    }
    result = run_workflow(tmp_path, config, check=False)
    output = result.stdout + result.stderr
    assert result.returncode != 0
    for name in ("mic_000", "mic_001"):
        assert f"WARNING {name}: no picks (check particle_diameter" in output
        assert len(read_coordinates(final_picks_file(tmp_path / "results/small", name))) == 0
    assert "dataset 'small': 2 of 2 micrographs have no picks. Check particle_diameter" in output
    assert "particle_contrast" in output and "Traceback" not in output
    assert not (tmp_path / "results/small/pick_counts.tsv").exists()
