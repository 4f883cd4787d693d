"""Snakemake wrapper: final picks from the chosen stage (cryopick.picking.finalize_picks_file)."""

from pathlib import Path

from cryopick.batching import batch_input, is_batch
from cryopick.picking import FinalSettings, finalize_picks_file
from cryopick.workflow import logged_job

micrograph = snakemake.wildcards.micrograph
with logged_job(
    snakemake.log[0], f"final picks of {micrograph} from {snakemake.input.stage}"
) as log:
    stage = Path(snakemake.input.stage)
    picks = finalize_picks_file(
        # a batched stage's directory (or a per-micrograph file); a micrograph that failed
        # upstream ends here with the recorded message
        str(batch_input(stage, micrograph, ".star")) if is_batch(stage) else str(stage),
        str(batch_input(snakemake.input.denoised, micrograph)),
        snakemake.output[0],
        FinalSettings.from_config(snakemake.params.settings),
        snakemake.params.diameter,
    )
    if len(picks):
        log.info("%d picks", len(picks))
    else:  # an empty .star shows as nothing in RELION: say so where the user looks
        log.warning(
            "%s: no picks (check particle_diameter, pixel_size and particle_contrast "
            "of data set %r)",
            micrograph,
            snakemake.wildcards.dataset,
        )
