"""Snakemake wrapper: picks from one micrograph's U-Net centre map
(cryopick.inference.pick_unet_file)."""

from cryopick.inference import pick_unet_file
from cryopick.workflow import logged_job

with logged_job(snakemake.log[0], f"unet picks {snakemake.input.maps}") as log:
    picks = pick_unet_file(
        snakemake.input.maps,
        snakemake.input.denoised,
        snakemake.output[0],
        snakemake.params.diameter,
        **snakemake.params.settings,
    )
    log.info("%d picks", len(picks))
