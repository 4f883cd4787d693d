"""Snakemake wrapper: bin and denoise the micrographs of one batch (cryopick.denoise.denoise_file),
one {micrograph}.npz each in the batch's directory, or an error record for a bad one."""

from pathlib import Path

from cryopick.batching import batch_artifact, run_batch, write_completion
from cryopick.denoise import DenoiseSettings, denoise_file
from cryopick.workflow import logged_job

# name -> file in the batch's order, missing files included: read_micrograph names the
# missing or dangling one in the micrograph's error record
paths = dict(snakemake.params.files)
micrographs = list(paths)
folder = Path(snakemake.output[0])
settings = DenoiseSettings.from_config(snakemake.params.settings)


def denoise_one(micrograph: str) -> str:
    denoise_file(
        paths[micrograph],
        str(batch_artifact(folder, micrograph)),
        settings,
        pixel_size=snakemake.params.pixel_size,
        invert=snakemake.params.invert,
    )
    return f"denoised {paths[micrograph]}"


with logged_job(
    snakemake.log[0], f"denoise batch {snakemake.wildcards.batch} ({len(micrographs)} micrographs)"
) as log:
    failed = run_batch(micrographs, folder, denoise_one, log=log.info)
    if failed:
        log.error(
            "%d of %d micrographs failed (their final picks fail with the message)",
            len(failed),
            len(micrographs),
        )
    write_completion(folder, micrographs)
