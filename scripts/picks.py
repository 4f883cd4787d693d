"""Snakemake wrapper: final picks from the chosen stage (cryopick.picking.finalize_picks_file)."""

from cryopick.picking import FinalSettings, finalize_picks_file
from cryopick.workflow import logged_job

with logged_job(snakemake.log[0], f"final picks from {snakemake.input.stage}") as log:
    picks = finalize_picks_file(
        snakemake.input.stage,
        snakemake.input.denoised,
        snakemake.output[0],
        FinalSettings.from_config(snakemake.params.settings),
        snakemake.params.diameter,
    )
    log.info("%d picks", len(picks))
