"""Snakemake wrapper: pick counts of a data set, flagged (cryopick.pick_counts)."""

from cryopick.pick_counts import CountChecks, check_pick_counts
from cryopick.workflow import as_list, logged_job

dataset = snakemake.wildcards.dataset
with logged_job(snakemake.log[0], f"pick counts of {dataset}") as log:
    check_pick_counts(
        dict(zip(snakemake.params.micrographs, as_list(snakemake.input.picks))),
        dataset,
        CountChecks.from_config(snakemake.params.checks),
        snakemake.params.settings,
        snakemake.output[0],
        log,
    )
