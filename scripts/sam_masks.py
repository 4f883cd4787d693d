"""Snakemake wrapper: SAM masks for one or more U-Net maps, the model loaded once
(cryopick.sam.run_sam). ``input.probabilities`` and ``output.masks`` are zipped; each may be a
single path or a list (a batch of micrographs per job)."""

from cryopick.sam import SamSettings, run_sam
from cryopick.workflow import logged_job


def as_list(value):
    return [value] if isinstance(value, str) else list(value)


probabilities = as_list(snakemake.input.probabilities)
masks = as_list(snakemake.output.masks)
with logged_job(snakemake.log[0], f"sam on {len(probabilities)} micrograph(s)") as log:
    timings = run_sam(probabilities, masks, SamSettings.from_config(snakemake.params.settings),
                      threads=snakemake.threads)
    log.info("device %s, model load %.1f s, mask generation %.1f s", timings["device"],
             timings["load_s"], timings["generate_s"])
