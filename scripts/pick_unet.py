"""Snakemake wrapper: picks from one micrograph's U-Net centre map (in its batch's directory)
(cryopick.inference.pick_unet_file)."""

from cryopick.batching import batch_artifact
from cryopick.inference import pick_unet_file
from cryopick.workflow import logged_job

maps = batch_artifact(snakemake.input.maps, snakemake.wildcards.micrograph)
with logged_job(snakemake.log[0], f"unet picks {maps}") as log:
    picks = pick_unet_file(
        str(maps),
        snakemake.input.denoised,
        snakemake.output[0],
        snakemake.params.diameter,
        **snakemake.params.settings,
    )
    log.info("%d picks", len(picks))
