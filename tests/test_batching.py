"""Stable batch membership (cryopick.batching): what makes batched GPU stages incremental."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from cryopick.batching import (
    BatchPlan,
    assign_batches,
    batch_members,
    format_batch_id,
    manifest_text,
    max_batches,
    read_manifest,
    update_batches,
    write_manifest,
)


def names(n: int, start: int = 0, prefix: str = "mic") -> list[str]:
    return [f"{prefix}_{i:06d}" for i in range(start, start + n)]


def test_fresh_data_set_fills_batches_in_name_order() -> None:
    assignment = assign_batches({}, ["c", "a", "e", "b", "d"], batch_size=2)
    assert batch_members(assignment, assignment) == {
        "00000": ["a", "b"],
        "00001": ["c", "d"],
        "00002": ["e"],
    }


def test_adding_50_to_10000_touches_only_new_batches() -> None:
    old = assign_batches({}, names(10_000), batch_size=64)
    added = names(50, start=10_000)
    new = assign_batches(old, names(10_000) + added, batch_size=64)

    assert {m: new[m] for m in old} == old  # no old micrograph moved
    old_batches = set(old.values())
    new_batches = {new[m] for m in added}
    assert not new_batches & old_batches  # not even into the partial last batch (10000 % 64 = 16)
    assert len(new_batches) == max_batches(50, 64) == 1
    before, after = batch_members(old, old), batch_members(new, new)
    assert {b: after[b] for b in before} == before  # every old batch keeps its exact members


def test_new_names_sorting_before_old_ones_still_go_to_new_batches() -> None:
    old = assign_batches({}, ["m5", "m6", "m7"], batch_size=2)
    new = assign_batches(old, ["m1", "m5", "m6", "m7", "m2", "m3"], batch_size=2)
    assert batch_members(new, new) == {
        "00000": ["m5", "m6"],
        "00001": ["m7"],
        "00002": ["m1", "m2"],
        "00003": ["m3"],
    }


def test_assignment_is_independent_of_listing_order_and_duplicates() -> None:
    listed = names(1000)
    shuffled = listed[::-1] + listed[:10]
    random.Random(0).shuffle(shuffled)
    base = assign_batches({}, names(300, prefix="old"), batch_size=16)
    assert assign_batches(base, listed, 16) == assign_batches(base, shuffled, 16)
    assert manifest_text(assign_batches(base, listed, 16)) == manifest_text(
        assign_batches(dict(reversed(list(base.items()))), shuffled, 16)
    )


def test_removed_micrograph_drops_out_without_reshuffling_and_ids_are_never_reused() -> None:
    all_names = names(10)
    old = assign_batches({}, all_names, batch_size=4)  # 00000: 0-3, 00001: 4-7, 00002: 8-9
    present = [m for m in all_names if m not in {"mic_000005", "mic_000008", "mic_000009"}]
    kept = assign_batches(old, present, batch_size=4)
    assert kept == old  # the rows of removed micrographs stay: nothing to rewrite
    listing = batch_members(kept, present)
    assert listing == {
        "00000": names(4),
        "00001": ["mic_000004", "mic_000006", "mic_000007"],
    }  # batch 00002 lost all its micrographs: no job for it
    grown = assign_batches(kept, present + ["zzz"], batch_size=4)
    assert grown["zzz"] == "00003"  # not 00002, whose old outputs may still lie around
    back = assign_batches(grown, present + ["zzz", "mic_000008"], batch_size=4)
    assert back["mic_000008"] == "00002"  # a returning micrograph finds its old batch


def test_changing_batch_size_only_affects_new_micrographs() -> None:
    old = assign_batches({}, names(10), batch_size=4)
    new = assign_batches(old, names(16), batch_size=2)
    assert {m: new[m] for m in old} == old
    assert batch_members(new, names(6, start=10)) == {
        "00003": ["mic_000010", "mic_000011"],
        "00004": ["mic_000012", "mic_000013"],
        "00005": ["mic_000014", "mic_000015"],
    }


def test_manifest_round_trip_and_write_only_on_change(tmp_path: Path) -> None:
    manifest = tmp_path / "results" / "ds" / "batches.tsv"
    first = update_batches(manifest, names(5), batch_size=2)
    assert first == {"00000": names(2), "00001": names(2, 2), "00002": names(1, 4)}
    assert manifest.read_text().splitlines()[:2] == ["micrograph\tbatch", "mic_000000\t00000"]
    assert read_manifest(manifest) == assign_batches({}, names(5), 2)

    stamp = manifest.stat().st_mtime_ns
    assert write_manifest(manifest, read_manifest(manifest)) is False
    assert update_batches(manifest, reversed(names(5)), batch_size=2) == first
    assert manifest.stat().st_mtime_ns == stamp  # an unchanged manifest is not rewritten

    update_batches(manifest, names(7), batch_size=2)
    assert read_manifest(manifest)["mic_000006"] == "00003"
    assert sorted(p.name for p in manifest.parent.iterdir()) == [
        "batches.tsv"
    ]  # no temp files left


def test_update_without_write_gives_the_same_batches_and_leaves_no_file(tmp_path: Path) -> None:
    manifest = tmp_path / "batches.tsv"
    dry = update_batches(manifest, names(9), batch_size=4, write=False)
    assert not manifest.exists()
    assert update_batches(manifest, names(9), batch_size=4) == dry


def test_malformed_manifest_is_an_error_naming_the_file(tmp_path: Path) -> None:
    manifest = tmp_path / "batches.tsv"
    manifest.write_text("name\tgroup\nmic\t00000\n")
    with pytest.raises(ValueError, match="batches.tsv: expected header"):
        read_manifest(manifest)
    manifest.write_text("micrograph\tbatch\nmic\tfirst\n")
    with pytest.raises(ValueError, match="batches.tsv:2"):
        read_manifest(manifest)


def test_invalid_arguments_are_refused() -> None:
    with pytest.raises(ValueError):
        assign_batches({}, ["a"], batch_size=0)
    with pytest.raises(ValueError):
        format_batch_id(-1)
    assert format_batch_id(42) == "00042"


def Wildcards(**values: str):
    """Snakemake's own wildcards object, as its input functions receive it."""
    from snakemake.iocontainers import Wildcards as SnakemakeWildcards

    return SnakemakeWildcards(fromdict=values)


def test_plan_gives_each_jobs_micrographs_and_the_batch_of_each_micrograph(tmp_path: Path) -> None:
    pattern = str(tmp_path / "{dataset}" / "batches.tsv")
    plan = BatchPlan.build({"a": names(5), "b": ["x", "y"]}, pattern, batch_size=2)
    assert plan.batches("a") == ["00000", "00001", "00002"] and plan.batches("b") == ["00000"]
    job = Wildcards(dataset="a", batch="00001")
    assert plan.micrographs_of_job(job) == ["mic_000002", "mic_000003"]
    assert plan.batch_of("a", "mic_000004") == "00002"
    assert plan.expand("u/{dataset}/{batch}", "b") == ["u/b/00000"]


def test_plan_writes_nothing_until_saved_and_then_only_changed_manifests(tmp_path: Path) -> None:
    pattern = str(tmp_path / "{dataset}" / "batches.tsv")
    plan = BatchPlan.build({"a": names(3), "b": names(2)}, pattern, batch_size=2)
    assert not list(tmp_path.rglob("batches.tsv"))  # building (dry runs, jobs) never writes
    assert sorted(plan.save()) == [pattern.format(dataset="a"), pattern.format(dataset="b")]
    grown = BatchPlan.build({"a": names(3), "b": names(3)}, pattern, batch_size=2)
    assert grown.save() == [pattern.format(dataset="b")]
    assert grown.batch_of("b", "mic_000002") == "00001"
    assert grown.batches("a") == plan.batches("a")


def test_a_bad_micrograph_gets_an_error_record_and_its_batch_goes_on(tmp_path: Path) -> None:
    from cryopick.batching import (
        artifacts_by_micrograph,
        batch_error,
        batch_input,
        pass_on_errors,
        run_batch,
        write_completion,
    )
    from cryopick.io import InputError

    folder = tmp_path / "denoise" / "batch_00000"
    seen = []

    def process(name: str) -> str:
        seen.append(name)
        if name == "bad":
            raise InputError("bad.mrc: MRC file is truncated")
        (folder / f"{name}.npz").write_bytes(b"artifact")
        return "ok"

    lines = []
    failed = run_batch(["a", "bad", "c"], folder, process, log=lines.append)
    assert seen == ["a", "bad", "c"]  # the micrograph after the bad one still ran
    assert failed == {"bad": "bad.mrc: MRC file is truncated"}
    assert batch_error(folder, "bad") == "bad.mrc: MRC file is truncated"
    assert batch_error(folder, "a") is None
    assert any("bad: FAILED: bad.mrc: MRC file is truncated" in line for line in lines)
    write_completion(folder, ["a", "bad", "c"])
    # a later stage reading it gets the first cause, not a missing-file error
    assert batch_input(folder, "a") == folder / "a.npz"
    with pytest.raises(InputError, match="bad.mrc: MRC file is truncated"):
        batch_input(folder, "bad")
    with pytest.raises(InputError, match="neither the artifact nor an error record"):
        batch_input(folder, "never_processed")
    # a later batched stage skips it and passes the record on, in order
    downstream = tmp_path / "unet" / "batch_00000"
    skipped = []
    assert pass_on_errors(folder, downstream, ["a", "bad", "c"], log=skipped.append) == ["a", "c"]
    assert batch_error(downstream, "bad") == "bad.mrc: MRC file is truncated"
    assert skipped == ["bad: skipped: bad.mrc: MRC file is truncated"]
    # a bug is not bad input: it fails the job
    with pytest.raises(ZeroDivisionError):
        run_batch(["x"], folder, lambda name: 1 / 0)
    # per-micrograph artifacts found in batch directories or as plain files, in order
    other = tmp_path / "other.npz"
    other.write_bytes(b"artifact")
    assert artifacts_by_micrograph([folder, other], ["c", "other", "a"], ".npz") == [
        folder / "c.npz",
        other,
        folder / "a.npz",
    ]
    with pytest.raises(InputError, match="no .npz artifact for micrograph bad"):
        artifacts_by_micrograph([folder], ["a", "bad"], ".npz")


def test_a_batch_without_its_completion_record_is_refused_by_every_reader(tmp_path: Path) -> None:
    """A folder a killed job left half-written looks finished once Snakemake's metadata is gone;
    only the record its job writes last says it is whole."""
    from cryopick.batching import (
        artifacts_by_micrograph,
        batch_input,
        completion_record,
        pass_on_errors,
        write_completion,
    )
    from cryopick.io import InputError

    folder = tmp_path / "denoise" / "batch_00003"
    folder.mkdir(parents=True)
    (folder / "a.npz").write_bytes(b"artifact")
    for read in (
        lambda: batch_input(folder, "a"),
        lambda: pass_on_errors(folder, tmp_path / "unet" / "batch_00003", ["a"]),
        lambda: artifacts_by_micrograph([folder], ["a"], ".npz"),
    ):
        with pytest.raises(InputError, match=r"batch_00003: incomplete batch .*rerun"):
            read()
    record = write_completion(folder, ["a", "b"])
    assert record == completion_record(folder) == tmp_path / "denoise" / "batch_00003.complete"
    assert record.read_text().splitlines() == ["micrograph\tstatus", "a\tdone", "b\tdone"]
    assert batch_input(folder, "a") == folder / "a.npz"
