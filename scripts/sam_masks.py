"""Snakemake wrapper: SAM masks for the U-Net maps of one batch, the model loaded once
(cryopick.sam.run_sam); one {micrograph}.json.gz per micrograph in the batch's directory (an
error record instead for a micrograph that failed upstream)."""

from pathlib import Path

from cryopick.batching import batch_artifacts, batch_folder_of, pass_on_errors, write_completion
from cryopick.sam import SamSettings, run_sam
from cryopick.workflow import as_list, logged_job

micrographs = as_list(snakemake.params.micrographs)
maps = batch_folder_of(snakemake.input.probabilities)
folder = Path(snakemake.output.masks)
with logged_job(
    snakemake.log[0], f"sam on batch {snakemake.wildcards.batch} ({len(micrographs)} micrographs)"
) as log:
    good = pass_on_errors(maps, folder, micrographs, log=log.error)
    if good:
        timings = run_sam(
            [str(p) for p in batch_artifacts(maps, good)],
            [str(p) for p in batch_artifacts(folder, good, ".json.gz")],
            SamSettings.from_config(snakemake.params.settings),
            threads=snakemake.threads,
        )
        log.info(
            "device %s, model load %.1f s, mask generation %.1f s",
            timings["device"],
            timings["load_s"],
            timings["generate_s"],
        )
    write_completion(folder, micrographs)
