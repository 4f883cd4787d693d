"""A corpus of bad inputs, made here, driven through the real workflow in one run: case by
case the message, that the rest of its data set completes, and that no input changed; then
what a user does next (a micrograph removed, Snakemake's metadata wiped) on the same outputs.

Cases (issue 13): a truncated MRC, a dangling symbolic link, a path in a list file that is
gone, an image too small to be a micrograph, a movie stack (warned, processed), labels of an
unbinned micrograph, an unreadable label file, plain x,y label headers, pure noise (no
baseline picks, warned); a config typo and a
particle diameter typed in pixels (memory refused before the job runs)."""

from __future__ import annotations

import hashlib
import os
import shutil
import stat
from pathlib import Path

import mrcfile
import numpy as np
import pandas as pd
import pytest

from cryopick.io import read_coordinates, write_mrc
from tests.conftest import (
    REPO,
    SMALL_DENOISE,
    SPARSE_BASELINE,
    disc_micrograph,
    final_picks_file,
    final_picks_names,
    make_dataset,
    run_workflow,
)
from tests.test_incremental import planned_jobs

pytestmark = pytest.mark.slow


def _digests(root: Path) -> dict[Path, str]:
    return {
        p: hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file() and not p.is_symlink()
    }


def make_corpus(root: Path) -> dict:
    """Three data sets: ``mixed`` (good micrographs among broken ones), ``listed`` (a list file
    with a path that is gone) and ``labels`` (good micrographs with bad label files)."""
    mixed = make_dataset(root / "mixed", n_micrographs=2)
    micrographs = root / "mixed" / "micrographs"
    good = micrographs / "mic_000.mrc"
    (micrographs / "truncated.mrc").write_bytes(good.read_bytes()[: good.stat().st_size // 3])
    os.symlink(root / "unmounted" / "share" / "mic_042.mrc", micrographs / "dangling.mrc")
    write_mrc(micrographs / "tiny.mrc", np.random.default_rng(0).normal(size=(32, 32)), 2.0)
    image, centres = disc_micrograph((600, 800), diameter=40.0, seed=7)
    with mrcfile.new(micrographs / "movie.mrc") as mrc:
        mrc.set_data(np.stack([image, image, image]).astype(np.float32))
        mrc.voxel_size = 2.0
    write_mrc(micrographs / "noise.mrc", np.random.default_rng(1).normal(size=(600, 800)), 2.0)

    listed = make_dataset(root / "listed", n_micrographs=2, seed=10)
    listing = root / "listed" / "micrographs.txt"
    listing.write_text("micrographs/mic_000.mrc\nmicrographs/mic_001.mrc\nmicrographs/gone.mrc\n")
    listed["micrographs"] = str(listing)

    labels = make_dataset(root / "labels", n_micrographs=3, seed=20)
    folder = Path(labels["ground_truth"])
    unbinned = read_coordinates(folder / "mic_000.csv")  # as if for a 4x larger micrograph
    (folder / "mic_000.csv").write_text(
        "X-Coordinate,Y-Coordinate\n"
        + "".join(f"{4 * x:.1f},{4 * y:.1f}\n" for x, y in unbinned[["x", "y"]].to_numpy())
    )
    (folder / "mic_001.csv").write_text("this is not,a coordinate file\n\x00\x01\n")
    plain = read_coordinates(folder / "mic_002.csv")
    (folder / "mic_002.csv").write_text(
        "x,y\n" + "".join(f"{x:.2f},{y:.2f}\n" for x, y in plain[["x", "y"]].to_numpy())
    )
    return {"mixed": mixed, "listed": listed, "labels": labels}


CASES = {  # case -> (data set, micrograph, the one line that names it)
    "truncated MRC": ("mixed", "truncated", "truncated.mrc: MRC file is truncated"),
    "dangling symlink": ("mixed", "dangling", "dangling.mrc: dangling symbolic link (its target"),
    "too small": ("mixed", "tiny", "tiny.mrc: image of 32 x 32 pixels is too small"),
    "gone from list": ("listed", "gone", "gone.mrc: micrograph file does not exist"),
}


@pytest.fixture(scope="module")
def corpus_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("corpus")
    datasets = make_corpus(root / "data")
    inputs = _digests(root / "data")
    config = {
        "datasets": datasets,
        "denoise": SMALL_DENOISE,
        "baseline": SPARSE_BASELINE,
        "picks": {"formats": ["csv"]},
    }
    old_umask = os.umask(0o027)  # group may read, others nothing
    try:
        result = run_workflow(root / "work", config, "--keep-going", check=False)
    finally:
        os.umask(old_umask)
    return root, config, datasets, inputs, result


def test_each_bad_input_fails_alone_with_one_line(corpus_run) -> None:
    root, _, datasets, inputs, result = corpus_run
    results = root / "work" / "results"
    output = result.stdout + result.stderr
    assert result.returncode != 0  # the failed micrographs' picks are missing
    # the DAG was built despite the dangling link and the missing path: every good micrograph
    # of every data set has its picks
    for dataset, names in {
        "mixed": ["mic_000", "mic_001", "movie", "noise"],
        "listed": ["mic_000", "mic_001"],
        "labels": ["mic_000", "mic_001", "mic_002"],
    }.items():
        for name in names:
            assert final_picks_file(results / dataset, name).is_file(), (dataset, name)
    # each case: its line in its micrograph's error record, its final picks' log and the
    # list of failed micrographs at the end of the run; no traceback anywhere
    summary = output[output.index("micrograph(s) failed and have no picks") :]
    for case, (dataset, name, line) in CASES.items():
        record = next((results / dataset / "denoise").glob(f"batch_*/{name}.error.txt"))
        assert line in record.read_text(), case
        picks_log = "".join(
            p.read_text() for p in (results / dataset / "logs" / "picks").glob("batch_*.log")
        )
        assert f"{name}: FAILED: " in picks_log and line in picks_log, case
        assert "Traceback" not in picks_log, case
        assert f"{dataset}/{name}: " in summary and line in summary, case
        assert not final_picks_file(results / dataset, name).exists()
    assert "4 micrograph(s) failed" in output
    assert "Traceback" not in output
    # nothing the user made changed
    assert _digests(root / "data") == inputs


def test_a_rerun_retries_the_failed_and_lists_them_again(corpus_run) -> None:
    """Not "Nothing to be done" and exit 0: the final-picks batches that hold failed
    micrographs are redone (seconds), everything else is not, and the run ends as before."""
    root, config, *_ = corpus_run
    dry = run_workflow(root / "work", config, "-n", check=False)
    planned = planned_jobs(dry.stdout)
    assert planned.get("picks") == {"00000"} and "denoise" not in planned, planned
    assert "output: results/mixed/final_picks/batch_00000," in dry.stdout
    assert "output: results/labels/final_picks" not in dry.stdout  # no failure there
    old_umask = os.umask(0o027)  # as the corpus run (the permissions test reads these files)
    try:
        again = run_workflow(root / "work", config, "--keep-going", check=False)
    finally:
        os.umask(old_umask)
    assert again.returncode != 0
    assert "4 micrograph(s) failed and have no picks" in again.stderr
    assert "truncated.mrc: MRC file is truncated" in again.stderr


def test_a_movie_stack_is_picked_with_a_warning(corpus_run) -> None:
    root, *_ = corpus_run
    denoise_logs = "".join(
        p.read_text() for p in (root / "work/results/mixed/logs/denoise").glob("*.log")
    )
    assert "WARNING" in denoise_logs
    assert "movie.mrc: a stack of 3 frames; only the first is used" in denoise_logs
    assert len(read_coordinates(final_picks_file(root / "work/results/mixed", "movie"))) > 0


def test_pure_noise_gets_no_baseline_picks_and_a_warning(corpus_run) -> None:
    root, *_ = corpus_run
    results = root / "work" / "results" / "mixed"
    baseline_logs = "".join(p.read_text() for p in (results / "logs/pick_baseline").glob("*.log"))
    assert "WARNING noise: no baseline picks: its blobs look like pure noise" in baseline_logs
    assert len(read_coordinates(final_picks_file(results, "noise"))) == 0
    assert len(read_coordinates(final_picks_file(results, "mic_000"))) > 0


def test_bad_label_files_leave_the_other_micrographs_scored(corpus_run) -> None:
    root, *_ = corpus_run
    results = root / "work" / "results" / "labels"
    log = (results / "logs" / "metrics.log").read_text()
    assert "mic_000: not scored:" in log and "labels lie outside the 800 x 600 image" in log
    assert "mic_001: not scored:" in log
    assert "2 of 3 micrographs not scored for their labels" in log
    summary = pd.read_csv(results / "metrics" / "summary.tsv", sep="\t")
    assert (summary["n_micrographs"] == 1).all()  # the plain x,y labels were read and scored
    assert (summary["f1"] > 0.5).all()


def test_outputs_are_readable_by_the_group_as_the_umask_says(corpus_run) -> None:
    root, *_ = corpus_run
    files = [p for p in (root / "work" / "results").rglob("*") if p.is_file()]
    assert files
    for path in files:
        mode = stat.S_IMODE(path.stat().st_mode)
        assert mode & stat.S_IRGRP and not mode & stat.S_IROTH, (path, oct(mode))


def test_a_removed_micrograph_leaves_no_stale_picks_among_the_current_ones(corpus_run) -> None:
    root, config, datasets, _, _ = corpus_run
    labels = Path(datasets["labels"]["micrographs"]).parent
    kept = root / "data" / "labels_two"
    kept.mkdir()
    for name in ("mic_000", "mic_002"):
        os.symlink(labels / f"{name}.mrc", kept / f"{name}.mrc")
    config = {
        **config,
        "datasets": {"labels": {**datasets["labels"], "micrographs": str(kept / "*.mrc")}},
    }
    run_workflow(root / "work", config)
    results = root / "work" / "results" / "labels"
    assert final_picks_names(results) == {"mic_000", "mic_002"}
    assert (results / "stale" / "picks" / "mic_001.star").is_file()
    assert (results / "stale" / "picks_csv" / "mic_001.csv").is_file()
    index = (results / "autopick.star").read_text()
    assert "results/labels/picks/mic_002.star" in index and "mic_001" not in index


def test_a_half_written_batch_is_redone_without_snakemakes_metadata(corpus_run) -> None:
    """`rm -rf .snakemake` (or --cleanup-metadata) after a kill: the batch folder looks whole
    to Snakemake, but without its completion record it is redone, and so is what reads it."""
    root, config, datasets, _, _ = corpus_run
    config = {**config, "datasets": {"listed": datasets["listed"]}}
    work = root / "work"
    results = work / "results" / "listed"
    before = {p.name: p.read_bytes() for p in (results / "picks").glob("*.star")}
    assert before
    batch = results / "denoise" / "batch_00000"
    # what a job killed while writing the denoise batch leaves: its record missing, an
    # artifact gone, nothing downstream of it yet
    (results / "denoise" / "batch_00000.complete").unlink()
    lost = next(batch.glob("*.npz"))
    lost.unlink()
    for downstream in ("baseline", "final_picks", "picks", "picks_csv"):
        shutil.rmtree(results / downstream)
    shutil.rmtree(work / ".snakemake")
    # (the list's missing micrograph still fails, alone)
    run_workflow(work, config, "--keep-going", check=False)
    assert (results / "denoise" / "batch_00000.complete").is_file() and lost.is_file()
    assert {p.name: p.read_bytes() for p in (results / "picks").glob("*.star")} == before


def test_a_config_typo_is_one_line(tmp_path, corpus_run) -> None:
    _, config, *_ = corpus_run
    config = {**config, "denoise": {**SMALL_DENOISE, "nlm_serch": 11}}
    result = run_workflow(tmp_path, config, "-n", check=False)
    assert result.returncode != 0
    lines = [line for line in (result.stdout + result.stderr).splitlines() if "nlm_serch" in line]
    assert lines == ["config key denoise.nlm_serch: not a setting (did you mean 'nlm_search'?)"]


def test_a_diameter_in_pixels_is_refused_before_it_takes_the_memory(tmp_path, corpus_run) -> None:
    """particle_diameter 4 where 80 A (40 px) is meant: the U-Net would resample each canvas
    40x; the job refuses with one line instead of growing until the kernel kills it."""
    _, config, datasets, *_ = corpus_run
    dataset = {**datasets["listed"], "particle_diameter": 4}
    config = {
        **config,
        "datasets": {"listed": dataset},
        "unet": {"enabled": True, "model": str(REPO / "models/unet_default.pt"), "device": "cpu"},
        "picks": {"source": "unet"},
    }
    result = run_workflow(tmp_path, config, "--keep-going", check=False)
    assert result.returncode != 0
    log = (tmp_path / "results/listed/logs/unet_predict/batch_00000.log").read_text()
    assert "the U-Net would resample each micrograph" in log
    assert "above unet.max_memory_gb 4; check particle_diameter (Angstrom, not pixels)" in log
    assert "Traceback" not in log
