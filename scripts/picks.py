"""Snakemake wrapper: final picks of one batch of micrographs from the chosen stage
(cryopick.picking.finalize_picks_file) in RELION STAR and the configured extra formats, written
into the batch's folder and published at results/{dataset}/picks/{micrograph}.star
(cryopick.picks_index.publish)."""

from pathlib import Path

from cryopick.batching import batch_artifact, batch_input, run_batch, write_completion
from cryopick.exclusion import exclude_picks_file
from cryopick.picking import FinalSettings, convert_picks_file, finalize_picks_file
from cryopick.picks_index import publish, withdraw
from cryopick.workflow import as_list, logged_job, paths

dataset = snakemake.wildcards.dataset
micrographs = as_list(snakemake.params.micrographs)
folder = Path(snakemake.output[0])
settings = FinalSettings.from_config(snakemake.params.settings)
formats = ["star", *snakemake.params.formats]
exclusion = snakemake.params.exclusion  # None: the exclusion stage is off


def exclude(micrograph: str, star: Path):
    """The final picks less (or flagged in) the micrograph's excluded area."""
    kept, excluded = exclude_picks_file(
        star,
        batch_artifact(folder, micrograph, paths.BEFORE_EXCLUSION_SUFFIX),
        batch_input(snakemake.input.exclusion, micrograph),
        snakemake.params.diameter,
        exclusion["dilation"],
        exclusion["action"],
        tuple(exclusion["classes"]),
        exclusion["populated"],
    )
    return kept, f", {excluded} in excluded areas ({exclusion['action']})"


def finalize(micrograph: str) -> str:
    # batch_input: an InputError with the first cause for a micrograph that failed upstream,
    # which becomes its error record in this batch's folder
    star = batch_artifact(folder, micrograph, ".star")
    denoised = str(batch_input(snakemake.input.denoised, micrograph))
    picks = finalize_picks_file(
        str(batch_input(snakemake.input.stage, micrograph, ".star")),
        denoised,
        str(star),
        settings,
        snakemake.params.diameter,
    )
    note = ""
    if exclusion:
        picks, note = exclude(micrograph, star)
    for fmt in formats[1:]:
        convert_picks_file(
            str(star),
            denoised,
            str(batch_artifact(folder, micrograph, f".{fmt}")),
            snakemake.params.diameter,
        )
    for fmt in formats:
        publish(
            batch_artifact(folder, micrograph, f".{fmt}"),
            paths.published_picks(dataset, micrograph, fmt),
        )
    if len(picks) == 0:  # an empty .star shows as nothing in RELION: say so where users look
        log.warning(
            "%s: no picks (check particle_diameter, pixel_size and particle_contrast of data "
            "set %r)",
            micrograph,
            dataset,
        )
    return f"{len(picks)} picks{note}"


with logged_job(snakemake.log[0], f"final picks, batch {snakemake.wildcards.batch}") as log:
    failed = run_batch(micrographs, folder, finalize, log=log.info)
    for micrograph in failed:  # picks an earlier run published for it are not this run's
        for fmt in ("star", *paths.PICK_FORMATS):
            withdraw(
                paths.published_picks(dataset, micrograph, fmt), paths.STALE.format(dataset=dataset)
            )
    if failed:
        log.error("%d of %d micrographs have no picks: they failed", len(failed), len(micrographs))
    write_completion(folder, micrographs)
