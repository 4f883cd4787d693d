"""Snakemake wrapper: pick counts of a data set, flagged (cryopick.pick_counts); the coordinate
index of the run's picks and stale picks moved aside (cryopick.picks_index)."""

from pathlib import Path

from cryopick.pick_counts import CountChecks, check_pick_counts
from cryopick.picks_index import move_stale_picks, write_coordinate_index
from cryopick.workflow import as_list, logged_job, paths

dataset = snakemake.wildcards.dataset
files = dict(snakemake.params.micrographs)
picks = dict(zip(files, as_list(snakemake.input.picks)))
with logged_job(snakemake.log[0], f"pick counts of {dataset}") as log:
    # the final picks and their .csv / .box copies (whichever formats earlier runs made)
    folders = [Path(paths.FINAL_PICKS.format(dataset=dataset, micrograph="_")).parent] + [
        Path(paths.FORMATTED_PICKS.format(dataset=dataset, micrograph="_", format=f)).parent
        for f in paths.PICK_FORMATS
    ]
    moved = move_stale_picks(folders, files, paths.STALE.format(dataset=dataset))
    if moved:
        log.warning(
            "%d pick files of micrographs no longer in data set %r moved to %s (e.g. %s)",
            len(moved),
            dataset,
            paths.STALE.format(dataset=dataset),
            moved[0].name,
        )
    check_pick_counts(
        picks,
        dataset,
        CountChecks.from_config(snakemake.params.checks),
        snakemake.params.settings,
        snakemake.output.counts,
        log,
    )
    write_coordinate_index(snakemake.output.index, files, picks)
