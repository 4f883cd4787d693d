"""Snakemake wrapper: picks from one micrograph's SAM masks after CryoSegNet's postprocessing
with its defects fixed (cryopick.postprocess.sam_picks_file)."""

from cryopick.batching import batch_artifact, batch_input
from cryopick.postprocess import PostprocessSettings, sam_picks_file
from cryopick.workflow import logged_job

masks = batch_artifact(snakemake.input.masks, snakemake.wildcards.micrograph, ".json.gz")
with logged_job(snakemake.log[0], f"sam picks {masks}") as log:
    picks, stats = sam_picks_file(str(masks), str(batch_input(snakemake.input.denoised, snakemake.wildcards.micrograph)), snakemake.output[0],
                                  PostprocessSettings.from_config(snakemake.params.settings))
    log.info("%s", stats)
