"""Snakemake wrapper: blob-detector baseline picks for one batch of micrographs
(cryopick.picking.pick_baseline_file), one {micrograph}.star each in the batch's directory."""

from pathlib import Path

from cryopick.batching import batch_artifact, batch_input, run_batch, write_completion
from cryopick.picking import BlobSettings, pick_baseline_file
from cryopick.workflow import as_list, logged_job

micrographs = as_list(snakemake.params.micrographs)
folder = Path(snakemake.output[0])
settings = BlobSettings.from_config(snakemake.params.settings)


def pick(micrograph: str) -> str:
    picks = pick_baseline_file(
        str(batch_input(snakemake.input.denoised, micrograph)),
        str(batch_artifact(folder, micrograph, ".star")),
        settings,
        snakemake.params.diameter,
    )
    return f"{len(picks)} picks"


with logged_job(snakemake.log[0], f"baseline picks, batch {snakemake.wildcards.batch}") as log:
    run_batch(micrographs, folder, pick, log=log.info)
    write_completion(folder, micrographs)
