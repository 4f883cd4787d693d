"""Snakemake wrapper: pick counts of a data set, flagged (cryopick.pick_counts), and the
coordinate index of the run's picks (cryopick.picks_index)."""

from cryopick.batching import artifacts_and_errors
from cryopick.pick_counts import CountChecks, check_pick_counts
from cryopick.picks_index import write_coordinate_index
from cryopick.workflow import as_list, logged_job

dataset = snakemake.wildcards.dataset
files = dict(snakemake.params.micrographs)
with logged_job(snakemake.log[0], f"pick counts of {dataset}") as log:
    picks, failed = artifacts_and_errors(as_list(snakemake.input.picks), files, ".star")
    if failed:
        log.warning(
            "dataset %r: %d of %d micrographs failed and have no picks (e.g. %s: %s); they are "
            "not in the counts or the index",
            dataset,
            len(failed),
            len(files),
            *next(iter(failed.items())),
        )
    check_pick_counts(
        picks,
        dataset,
        CountChecks.from_config(snakemake.params.checks),
        snakemake.params.settings,
        snakemake.output.counts,
        log,
    )
    write_coordinate_index(snakemake.output.index, files, {m: str(p) for m, p in picks.items()})
