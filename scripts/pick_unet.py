"""Snakemake wrapper: picks from the U-Net centre maps of one batch of micrographs
(cryopick.inference.pick_unet_file), one {micrograph}.star each in the batch's directory."""

from pathlib import Path

from cryopick.batching import batch_artifact, batch_input, run_batch, write_completion
from cryopick.inference import pick_unet_file
from cryopick.workflow import as_list, logged_job

micrographs = as_list(snakemake.params.micrographs)
folder = Path(snakemake.output[0])


def pick(micrograph: str) -> str:
    picks = pick_unet_file(
        str(batch_input(snakemake.input.maps, micrograph)),
        str(batch_input(snakemake.input.denoised, micrograph)),
        str(batch_artifact(folder, micrograph, ".star")),
        snakemake.params.diameter,
        **snakemake.params.settings,
    )
    return f"{len(picks)} picks"


with logged_job(snakemake.log[0], f"unet picks, batch {snakemake.wildcards.batch}") as log:
    run_batch(micrographs, folder, pick, log=log.info)
    write_completion(folder, micrographs)
