"""Snakemake wrapper: preview images of one batch of micrographs (cryopick.previews), one
{micrograph}.jpg each in the batch's directory."""

from pathlib import Path

from cryopick.batching import batch_artifact, batch_input, run_batch, write_completion
from cryopick.previews import write_preview
from cryopick.workflow import as_list, logged_job

micrographs = as_list(snakemake.params.micrographs)
folder = Path(snakemake.output[0])
exclusion = snakemake.input.exclusion
classes = snakemake.params.excluded_classes


def preview(micrograph: str) -> str:
    height, width = write_preview(
        batch_input(snakemake.input.denoised, micrograph),
        batch_artifact(folder, micrograph, ".jpg"),
        snakemake.params.size,
        batch_input(exclusion, micrograph) if exclusion else None,
        tuple(classes) if classes else None,
    )
    return f"{width} x {height} preview"


with logged_job(snakemake.log[0], f"previews, batch {snakemake.wildcards.batch}") as log:
    run_batch(micrographs, folder, preview, log=log.info)
    write_completion(folder, micrographs)
