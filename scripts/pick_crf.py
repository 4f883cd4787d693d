"""Snakemake wrapper: picks from one micrograph's CRF-refined map and its U-Net centre map
(cryopick.instances.pick_crf_file)."""

from cryopick.batching import batch_artifact
from cryopick.instances import MaskPickSettings, pick_crf_file
from cryopick.workflow import logged_job

maps = batch_artifact(snakemake.input.maps, snakemake.wildcards.micrograph)
with logged_job(snakemake.log[0], f"crf picks {snakemake.input.refined}") as log:
    picks = pick_crf_file(snakemake.input.refined, str(maps), snakemake.input.denoised,
                          snakemake.output[0], snakemake.params.diameter,
                          MaskPickSettings.from_config(snakemake.params.settings))
    log.info("%d picks", len(picks))
