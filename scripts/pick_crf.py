"""Snakemake wrapper: picks from one micrograph's CRF-refined map and its U-Net centre map
(cryopick.instances.pick_crf_file)."""

from cryopick.batching import batch_input
from cryopick.instances import MaskPickSettings, pick_crf_file
from cryopick.workflow import logged_job

with logged_job(snakemake.log[0], f"crf picks {snakemake.input.refined}") as log:
    maps = batch_input(snakemake.input.maps, snakemake.wildcards.micrograph)
    denoised = str(batch_input(snakemake.input.denoised, snakemake.wildcards.micrograph))
    picks = pick_crf_file(
        snakemake.input.refined,
        str(maps),
        denoised,
        snakemake.output[0],
        snakemake.params.diameter,
        MaskPickSettings.from_config(snakemake.params.settings),
    )
    log.info("%d picks", len(picks))
