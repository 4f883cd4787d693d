"""Snakemake wrapper: SAM masks for the U-Net maps of one batch, the model loaded once
(cryopick.sam.run_sam); one {micrograph}.json.gz per micrograph in the batch's directory."""

from pathlib import Path

from cryopick.batching import batch_artifacts
from cryopick.sam import SamSettings, run_sam
from cryopick.workflow import as_list, logged_job


micrographs = as_list(snakemake.params.micrographs)
folder = Path(snakemake.output.masks)
with logged_job(snakemake.log[0], f"sam on batch {snakemake.wildcards.batch} "
                                  f"({len(micrographs)} micrographs)") as log:
    folder.mkdir(parents=True, exist_ok=True)
    timings = run_sam([str(p) for p in batch_artifacts(snakemake.input.probabilities, micrographs)],
                      [str(p) for p in batch_artifacts(folder, micrographs, ".json.gz")],
                      SamSettings.from_config(snakemake.params.settings),
                      threads=snakemake.threads)
    log.info("device %s, model load %.1f s, mask generation %.1f s", timings["device"],
             timings["load_s"], timings["generate_s"])
