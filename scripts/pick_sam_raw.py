"""Snakemake wrapper: one pick per SAM mask, unfiltered (cryopick.postprocess.sam_raw_picks_file),
the reference that shows what the postprocessing is worth."""

from cryopick.batching import batch_artifact, batch_input
from cryopick.postprocess import sam_raw_picks_file
from cryopick.workflow import logged_job

masks = batch_artifact(snakemake.input.masks, snakemake.wildcards.micrograph, ".json.gz")
with logged_job(snakemake.log[0], f"raw sam picks {masks}") as log:
    picks = sam_raw_picks_file(str(masks),
                               str(batch_input(snakemake.input.denoised, snakemake.wildcards.micrograph)), snakemake.output[0])
    log.info("%d picks", len(picks))
