"""Snakemake wrapper: pick counts of a data set, flagged (cryopick.pick_counts); the coordinate
index of the run's picks and stale picks moved aside (cryopick.picks_index)."""

from cryopick.batching import artifacts_and_errors
from cryopick.pick_counts import CountChecks, check_pick_counts
from cryopick.picks_index import move_stale_picks, write_coordinate_index
from cryopick.workflow import as_list, logged_job, paths

dataset = snakemake.wildcards.dataset
files = dict(snakemake.params.micrographs)
stale = paths.STALE.format(dataset=dataset)
with logged_job(snakemake.log[0], f"pick counts of {dataset}") as log:
    # the published picks and their .csv / .box copies (whichever formats earlier runs made)
    moved = move_stale_picks(paths.published_picks_folders(dataset), files, stale)
    if moved:
        log.warning(
            "%d pick files of micrographs no longer in data set %r moved to %s (e.g. %s)",
            len(moved),
            dataset,
            stale,
            moved[0].name,
        )
    # from the batches' completion records: the micrographs that have picks, and those that
    # failed (listed at the end of the run)
    done, failed = artifacts_and_errors(as_list(snakemake.input.picks), files, ".star")
    if failed:
        log.warning(
            "dataset %r: %d of %d micrographs failed and have no picks (e.g. %s: %s); they are "
            "not in the counts or the index",
            dataset,
            len(failed),
            len(files),
            *next(iter(failed.items())),
        )
    published = {name: paths.published_picks(dataset, name) for name in done}
    check_pick_counts(
        published,
        dataset,
        CountChecks.from_config(snakemake.params.checks),
        snakemake.params.settings,
        snakemake.output.counts,
        log,
        histogram_path=snakemake.output.scores,
    )
    write_coordinate_index(snakemake.output.index, files, published)
