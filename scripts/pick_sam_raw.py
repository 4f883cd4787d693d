"""Snakemake wrapper: one pick per SAM mask, unfiltered (cryopick.postprocess.sam_raw_picks_file),
the reference that shows what the postprocessing is worth."""

from cryopick.batching import batch_input
from cryopick.postprocess import sam_raw_picks_file
from cryopick.workflow import logged_job

micrograph = snakemake.wildcards.micrograph
with logged_job(snakemake.log[0], f"raw sam picks {micrograph}") as log:
    masks = batch_input(snakemake.input.masks, micrograph, ".json.gz")
    denoised = batch_input(snakemake.input.denoised, micrograph)
    picks = sam_raw_picks_file(str(masks), str(denoised), snakemake.output[0])
    log.info("%d picks", len(picks))
