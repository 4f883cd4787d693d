"""Snakemake wrapper: final picks of one batch of micrographs from the chosen stage
(cryopick.picking.finalize_picks_file), one {micrograph}.star each in the batch's folder."""

from pathlib import Path

from cryopick.batching import batch_artifact, batch_input, run_batch, write_completion
from cryopick.picking import FinalSettings, finalize_picks_file
from cryopick.workflow import as_list, logged_job

dataset = snakemake.wildcards.dataset
micrographs = as_list(snakemake.params.micrographs)
folder = Path(snakemake.output[0])
settings = FinalSettings.from_config(snakemake.params.settings)


def finalize(micrograph: str) -> str:
    # batch_input: an InputError with the first cause for a micrograph that failed upstream,
    # which becomes its error record in this batch's folder
    picks = finalize_picks_file(
        str(batch_input(snakemake.input.stage, micrograph, ".star")),
        str(batch_input(snakemake.input.denoised, micrograph)),
        str(batch_artifact(folder, micrograph, ".star")),
        settings,
        snakemake.params.diameter,
    )
    if len(picks) == 0:  # an empty .star shows as nothing in RELION: say so where users look
        log.warning(
            "%s: no picks (check particle_diameter, pixel_size and particle_contrast of data "
            "set %r)",
            micrograph,
            dataset,
        )
    return f"{len(picks)} picks"


with logged_job(snakemake.log[0], f"final picks, batch {snakemake.wildcards.batch}") as log:
    failed = run_batch(micrographs, folder, finalize, log=log.info)
    if failed:
        log.error("%d of %d micrographs have no picks: they failed", len(failed), len(micrographs))
    write_completion(folder, micrographs)
