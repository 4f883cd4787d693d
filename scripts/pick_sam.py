"""Snakemake wrapper: picks from one micrograph's SAM masks after CryoSegNet's postprocessing
with its defects fixed (cryopick.postprocess.sam_picks_file)."""

from cryopick.batching import batch_input
from cryopick.postprocess import PostprocessSettings, sam_picks_file
from cryopick.workflow import logged_job

micrograph = snakemake.wildcards.micrograph
with logged_job(snakemake.log[0], f"sam picks {micrograph}") as log:
    masks = batch_input(snakemake.input.masks, micrograph, ".json.gz")
    denoised = batch_input(snakemake.input.denoised, micrograph)
    picks, stats = sam_picks_file(
        str(masks),
        str(denoised),
        snakemake.output[0],
        PostprocessSettings.from_config(snakemake.params.settings),
    )
    log.info("%s", stats)
