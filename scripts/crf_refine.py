"""Snakemake wrapper: dense-CRF refinement of one micrograph's U-Net map (in its batch's
directory) with its denoised canvas (cryopick.crf.run_crf)."""

from cryopick.batching import batch_input
from cryopick.crf import CrfSettings, run_crf
from cryopick.workflow import logged_job

micrograph = snakemake.wildcards.micrograph
with logged_job(snakemake.log[0], f"crf {micrograph}") as log:
    probabilities = batch_input(snakemake.input.probabilities, micrograph)
    denoised = batch_input(snakemake.input.denoised, micrograph)
    stats = run_crf(
        [str(probabilities)],
        [str(denoised)],
        [snakemake.output[0]],
        CrfSettings.from_config(snakemake.params.settings),
    )
    for row in stats:
        log.info(
            "%s: particle fraction %.4f -> %.4f in %.2f s",
            row["input"],
            row["fraction_before"],
            row["fraction_after"],
            row["seconds"],
        )
