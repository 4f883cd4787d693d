"""Snakemake wrapper: final picks in another coordinate format (cryopick.picking)."""

from cryopick.batching import batch_input
from cryopick.picking import convert_picks_file
from cryopick.workflow import logged_job

with logged_job(snakemake.log[0], f"convert {snakemake.input.star}"):
    denoised = batch_input(snakemake.input.denoised, snakemake.wildcards.micrograph)
    convert_picks_file(
        snakemake.input.star, str(denoised), snakemake.output[0], snakemake.params.diameter
    )
