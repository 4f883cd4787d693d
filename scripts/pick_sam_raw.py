"""Snakemake wrapper: one pick per SAM mask, unfiltered (cryopick.postprocess.sam_raw_picks_file),
for one batch: the reference that shows what the postprocessing is worth."""

from pathlib import Path

from cryopick.batching import batch_artifact, batch_input, run_batch, write_completion
from cryopick.postprocess import sam_raw_picks_file
from cryopick.workflow import as_list, logged_job

micrographs = as_list(snakemake.params.micrographs)
folder = Path(snakemake.output[0])


def pick(micrograph: str) -> str:
    picks = sam_raw_picks_file(
        str(batch_input(snakemake.input.masks, micrograph, ".json.gz")),
        str(batch_input(snakemake.input.denoised, micrograph)),
        str(batch_artifact(folder, micrograph, ".star")),
    )
    return f"{len(picks)} picks"


with logged_job(snakemake.log[0], f"raw sam picks, batch {snakemake.wildcards.batch}") as log:
    run_batch(micrographs, folder, pick, log=log.info)
    write_completion(folder, micrographs)
