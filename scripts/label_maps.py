"""Snakemake wrapper: training label map of one micrograph (cryopick.labels.label_map_file)."""

from cryopick.batching import batch_input
from cryopick.labels import label_map_file
from cryopick.workflow import logged_job

with logged_job(snakemake.log[0], f"label map {snakemake.input.labels}") as log:
    settings = dict(snakemake.params.settings)
    denoised = batch_input(snakemake.input.denoised, snakemake.wildcards.micrograph)
    counts = label_map_file(
        str(denoised),
        snakemake.input.labels,
        snakemake.output[0],
        diameter_a=snakemake.params.diameter,
        method=settings.pop("method", "refined"),
        **settings,
    )
    log.info(
        "%d particles, %d label pixels (%.1f%% of the micrograph)",
        counts["particles"],
        counts["pixels"],
        100 * counts["fraction"],
    )
