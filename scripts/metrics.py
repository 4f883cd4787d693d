"""Snakemake wrapper: per-stage metrics of one data set (cryopick.metrics.evaluate_dataset)."""

from cryopick.io import atomic_path
from cryopick.metrics import evaluate_dataset, stage_input_name
from cryopick.workflow import logged_job

with logged_job(snakemake.log[0], "metrics") as log:
    per_micrograph, summary = evaluate_dataset(
        snakemake.params.micrographs,
        {stage: snakemake.input[stage_input_name(stage)] for stage in snakemake.params.stages},
        snakemake.input.denoised,
        snakemake.params.diameter,
        snakemake.params.ground_truth,
        snakemake.params.ground_truth_masks,
        missing=snakemake.params.missing,
        log=log.warning,
    )
    with atomic_path(snakemake.output.per_micrograph) as tmp:
        per_micrograph.to_csv(tmp, sep="\t", index=False, float_format="%.4f")
    with atomic_path(snakemake.output.summary) as tmp:
        summary.to_csv(tmp, sep="\t", index=False, float_format="%.4f")
    log.info("\n%s", summary.to_string(index=False))
