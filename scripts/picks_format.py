"""Snakemake wrapper: one batch's final picks in another coordinate format
(cryopick.picking.convert_picks_file), {micrograph}.{format} each in the batch's folder."""

from pathlib import Path

from cryopick.batching import batch_artifact, batch_input, run_batch, write_completion
from cryopick.picking import convert_picks_file
from cryopick.workflow import as_list, logged_job

micrographs = as_list(snakemake.params.micrographs)
folder = Path(snakemake.output[0])
suffix = f".{snakemake.wildcards.format}"


def convert(micrograph: str) -> None:
    convert_picks_file(
        str(batch_input(snakemake.input.picks, micrograph, ".star")),
        str(batch_input(snakemake.input.denoised, micrograph)),
        str(batch_artifact(folder, micrograph, suffix)),
        snakemake.params.diameter,
    )


with logged_job(
    snakemake.log[0], f"final picks as {suffix}, batch {snakemake.wildcards.batch}"
) as log:
    run_batch(micrographs, folder, convert, log=log.info)
    write_completion(folder, micrographs)
