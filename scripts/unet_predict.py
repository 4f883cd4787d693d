"""Snakemake wrapper: U-Net maps for the micrographs of one batch, the model loaded once
(cryopick.inference.predict_files); one {micrograph}.npz per micrograph in the batch's
directory."""

from pathlib import Path

from cryopick.batching import batch_artifacts
from cryopick.inference import predict_files
from cryopick.workflow import as_list, logged_job


micrographs = as_list(snakemake.params.micrographs)
folder = Path(snakemake.output.maps)

with logged_job(snakemake.log[0], f"unet on batch {snakemake.wildcards.batch} "
                                  f"({len(micrographs)} micrographs)") as log:
    folder.mkdir(parents=True, exist_ok=True)
    device = predict_files(
        snakemake.input.model,
        as_list(snakemake.input.denoised),
        [str(p) for p in batch_artifacts(folder, micrographs)],
        snakemake.params.diameter,
        micrograph_paths=as_list(snakemake.input.micrographs),
        invert=snakemake.params.invert,
        device=snakemake.params.device,
        batch_size=snakemake.params.batch_size,
        symmetries=snakemake.params.symmetries,
        threads=snakemake.threads,
        log=log.info,
    )
    log.info("device used: %s", device)
