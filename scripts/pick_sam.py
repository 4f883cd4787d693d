"""Snakemake wrapper: picks from one batch's SAM masks after CryoSegNet's postprocessing with
its defects fixed (cryopick.postprocess.sam_picks_file), {micrograph}.star each."""

from pathlib import Path

from cryopick.batching import batch_artifact, batch_input, run_batch, write_completion
from cryopick.postprocess import PostprocessSettings, sam_picks_file
from cryopick.workflow import as_list, logged_job

micrographs = as_list(snakemake.params.micrographs)
folder = Path(snakemake.output[0])
settings = PostprocessSettings.from_config(snakemake.params.settings)


def pick(micrograph: str) -> str:
    _, stats = sam_picks_file(
        str(batch_input(snakemake.input.masks, micrograph, ".json.gz")),
        str(batch_input(snakemake.input.denoised, micrograph)),
        str(batch_artifact(folder, micrograph, ".star")),
        settings,
    )
    return str(stats)


with logged_job(snakemake.log[0], f"sam picks, batch {snakemake.wildcards.batch}") as log:
    run_batch(micrographs, folder, pick, log=log.info)
    write_completion(folder, micrographs)
