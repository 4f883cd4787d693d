"""Snakemake wrapper: training label maps of one batch's labelled micrographs
(cryopick.labels.label_map_file), {micrograph}.png each in the batch's folder."""

from pathlib import Path

from cryopick.batching import batch_artifact, batch_input, run_batch, write_completion
from cryopick.labels import label_map_file
from cryopick.workflow import logged_job

labelled = dict(snakemake.params.labelled)  # micrograph -> its label file
folder = Path(snakemake.output[0])
settings = dict(snakemake.params.settings)
method = settings.pop("method", "refined")


def label_map(micrograph: str) -> str:
    counts = label_map_file(
        str(batch_input(snakemake.input.denoised, micrograph)),
        labelled[micrograph],
        str(batch_artifact(folder, micrograph, ".png")),
        diameter_a=snakemake.params.diameter,
        method=method,
        **settings,
    )
    return (
        f"{counts['particles']} particles, {counts['pixels']} label pixels "
        f"({100 * counts['fraction']:.1f}% of the micrograph)"
    )


with logged_job(snakemake.log[0], f"label maps, batch {snakemake.wildcards.batch}") as log:
    run_batch(labelled, folder, label_map, log=log.info)
    write_completion(folder, labelled)
