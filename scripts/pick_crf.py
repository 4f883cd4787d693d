"""Snakemake wrapper: picks from one batch's CRF-refined maps and U-Net centre maps
(cryopick.instances.pick_crf_file), {micrograph}.star each in the batch's folder."""

from pathlib import Path

from cryopick.batching import batch_artifact, batch_input, run_batch, write_completion
from cryopick.instances import MaskPickSettings, pick_crf_file
from cryopick.workflow import as_list, logged_job

micrographs = as_list(snakemake.params.micrographs)
folder = Path(snakemake.output[0])
settings = MaskPickSettings.from_config(snakemake.params.settings)


def pick(micrograph: str) -> str:
    picks = pick_crf_file(
        str(batch_input(snakemake.input.refined, micrograph)),
        str(batch_input(snakemake.input.maps, micrograph)),
        str(batch_input(snakemake.input.denoised, micrograph)),
        str(batch_artifact(folder, micrograph, ".star")),
        snakemake.params.diameter,
        settings,
    )
    return f"{len(picks)} picks"


with logged_job(snakemake.log[0], f"crf picks, batch {snakemake.wildcards.batch}") as log:
    run_batch(micrographs, folder, pick, log=log.info)
    write_completion(folder, micrographs)
