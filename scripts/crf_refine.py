"""Snakemake wrapper: dense-CRF refinement of U-Net maps with their denoised canvases
(cryopick.crf.run_crf). Inputs and outputs are zipped; each may be a path or a list."""

from cryopick.crf import CrfSettings, run_crf
from cryopick.workflow import logged_job


def as_list(value):
    return [value] if isinstance(value, str) else list(value)


with logged_job(snakemake.log[0], f"crf {snakemake.input.probabilities}") as log:
    stats = run_crf(as_list(snakemake.input.probabilities), as_list(snakemake.input.denoised),
                    as_list(snakemake.output[0]), CrfSettings.from_config(snakemake.params.settings))
    for row in stats:
        log.info("%s: particle fraction %.4f -> %.4f in %.2f s", row["input"],
                 row["fraction_before"], row["fraction_after"], row["seconds"])
