"""Snakemake wrapper: U-Net maps for the micrographs of one batch, the model loaded once
(cryopick.inference.predict_files); one {micrograph}.npz per micrograph in the batch's
directory (an error record instead for a micrograph that failed at denoising)."""

from pathlib import Path

from cryopick.batching import batch_artifact, batch_error, write_batch_error
from cryopick.inference import predict_files
from cryopick.workflow import as_list, logged_job


micrographs = as_list(snakemake.params.micrographs)
raw = dict(zip(micrographs, as_list(snakemake.input.micrographs)))
denoised = Path(snakemake.input.denoised)
folder = Path(snakemake.output.maps)

with logged_job(snakemake.log[0], f"unet on batch {snakemake.wildcards.batch} "
                                  f"({len(micrographs)} micrographs)") as log:
    folder.mkdir(parents=True, exist_ok=True)
    good = []
    for name in micrographs:
        error = batch_error(denoised, name)
        if error is None:
            good.append(name)
        else:  # passed on, so that the micrograph's own picks fail with the first cause
            write_batch_error(folder, name, error)
            log.error("%s: skipped: %s", name, error)
    device = predict_files(
        snakemake.input.model,
        [str(batch_artifact(denoised, name)) for name in good],
        [str(batch_artifact(folder, name)) for name in good],
        snakemake.params.diameter,
        micrograph_paths=[raw[name] for name in good],
        invert=snakemake.params.invert,
        device=snakemake.params.device,
        batch_size=snakemake.params.batch_size,
        symmetries=snakemake.params.symmetries,
        threads=snakemake.threads,
        log=log.info,
    ) if good else "none (no micrograph to predict)"
    log.info("device used: %s", device)
