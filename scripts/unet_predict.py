"""Snakemake wrapper: U-Net maps for the micrographs of one batch, the model loaded once
(cryopick.inference.predict_files); one {micrograph}.npz per micrograph in the batch's
directory (an error record instead for a micrograph that failed at denoising)."""

from pathlib import Path

from cryopick.batching import batch_artifact, batch_folder_of, pass_on_errors, write_completion
from cryopick.inference import predict_files
from cryopick.io import micrograph_name
from cryopick.workflow import as_list, logged_job

micrographs = as_list(snakemake.params.micrographs)
# by name: a missing micrograph is not among the inputs (its denoise error passes on)
raw = {micrograph_name(path): path for path in as_list(snakemake.input.micrographs)}
denoised = batch_folder_of(snakemake.input.denoised)
folder = Path(snakemake.output.maps)

with logged_job(
    snakemake.log[0], f"unet on batch {snakemake.wildcards.batch} ({len(micrographs)} micrographs)"
) as log:
    good = pass_on_errors(denoised, folder, micrographs, log=log.error)
    device = (
        predict_files(
            snakemake.input.model,
            [str(batch_artifact(denoised, name)) for name in good],
            [str(batch_artifact(folder, name)) for name in good],
            snakemake.params.diameter,
            micrograph_paths=[raw[name] for name in good],
            invert=snakemake.params.invert,
            device=snakemake.params.device,
            batch_size=snakemake.params.batch_size,
            max_memory_gb=snakemake.params.max_memory_gb,
            symmetries=snakemake.params.symmetries,
            threads=snakemake.threads,
            log=log.info,
        )
        if good
        else "none (no micrograph to predict)"
    )
    log.info("device used: %s", device)
    write_completion(folder, micrographs)
