"""Snakemake wrapper: U-Net probability maps for the job's micrographs, the model loaded once
(cryopick.inference.predict_files)."""

from cryopick.inference import predict_files
from cryopick.workflow import logged_job


def as_list(files):
    """One file comes as a string, several as a list: the same script serves both."""
    return [files] if isinstance(files, str) else list(files)


denoised = as_list(snakemake.input.denoised)

with logged_job(snakemake.log[0], f"unet on {len(denoised)} micrograph(s)") as log:
    device = predict_files(
        snakemake.input.model,
        denoised,
        as_list(snakemake.output.maps),
        snakemake.params.diameter,
        micrograph_paths=as_list(snakemake.input.micrograph),
        invert=snakemake.params.invert,
        device=snakemake.params.device,
        batch_size=snakemake.params.batch_size,
        symmetries=snakemake.params.symmetries,
        threads=snakemake.threads,
        log=log.info,
    )
    log.info("device used: %s", device)
