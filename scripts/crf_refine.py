"""Snakemake wrapper: dense-CRF refinement of one batch of U-Net maps with their denoised
canvases (cryopick.crf.run_crf), {micrograph}.npz each in the batch's folder."""

from pathlib import Path

from cryopick.batching import batch_artifact, batch_input, run_batch, write_completion
from cryopick.crf import CrfSettings, run_crf
from cryopick.workflow import as_list, logged_job

micrographs = as_list(snakemake.params.micrographs)
folder = Path(snakemake.output[0])
settings = CrfSettings.from_config(snakemake.params.settings)


def refine(micrograph: str) -> str:
    (row,) = run_crf(
        [str(batch_input(snakemake.input.probabilities, micrograph))],
        [str(batch_input(snakemake.input.denoised, micrograph))],
        [str(batch_artifact(folder, micrograph))],
        settings,
    )
    return (
        f"particle fraction {row['fraction_before']:.4f} -> {row['fraction_after']:.4f} "
        f"in {row['seconds']:.2f} s"
    )


with logged_job(snakemake.log[0], f"crf, batch {snakemake.wildcards.batch}") as log:
    run_batch(micrographs, folder, refine, log=log.info)
    write_completion(folder, micrographs)
