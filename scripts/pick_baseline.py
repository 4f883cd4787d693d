"""Snakemake wrapper: blob-detector baseline picks (cryopick.picking.pick_baseline_file)."""

from cryopick.picking import BlobSettings, pick_baseline_file
from cryopick.workflow import logged_job

with logged_job(snakemake.log[0], f"baseline picks {snakemake.input.denoised}") as log:
    picks = pick_baseline_file(
        snakemake.input.denoised,
        snakemake.output[0],
        BlobSettings.from_config(snakemake.params.settings),
        snakemake.params.diameter,
    )
    log.info("%d picks", len(picks))
