"""Snakemake wrapper: per-stage metrics of one data set (cryopick.metrics.evaluate_dataset)."""

from cryopick.batching import artifacts_and_errors, artifacts_by_micrograph
from cryopick.io import atomic_path
from cryopick.metrics import evaluate_dataset
from cryopick.workflow import as_list, logged_job
from cryopick.workflow.stages import FINAL, stage_input_name, stage_picks_suffix

micrographs = as_list(snakemake.params.micrographs)


def per_micrograph(entry, suffix: str) -> list[str]:
    """A stage's artifacts in the order of ``micrographs`` (from batch directories or files)."""
    return [str(p) for p in artifacts_by_micrograph(as_list(entry), micrographs, suffix)]


with logged_job(snakemake.log[0], "metrics") as log:
    # micrographs that failed (bad input) have no picks in any stage: scored without them
    _, failed = artifacts_and_errors(
        as_list(snakemake.input[stage_input_name(FINAL)]), micrographs, ".star"
    )
    if failed:
        log.warning(
            "%d of %d micrographs failed and are not scored (e.g. %s: %s)",
            len(failed),
            len(micrographs),
            *next(iter(failed.items())),
        )
        micrographs = [m for m in micrographs if m not in failed]
    evaluation = evaluate_dataset(
        micrographs,
        {
            stage: per_micrograph(
                snakemake.input[stage_input_name(stage)], stage_picks_suffix(stage)
            )
            for stage in snakemake.params.stages
        },
        per_micrograph(snakemake.input.denoised, ".npz"),
        snakemake.params.diameter,
        snakemake.params.ground_truth,
        snakemake.params.ground_truth_masks,
        missing=snakemake.params.missing,
        log=log.warning,
    )
    # scores to 4 decimals; thresholds and bin edges in the stage's own units, to 6 digits
    for key, precision in (
        ("per_micrograph", "%.4f"),
        ("summary", "%.4f"),
        ("curves", "%.6g"),
        ("histograms", "%.6g"),
    ):
        with atomic_path(snakemake.output[key]) as tmp:
            getattr(evaluation, key).to_csv(tmp, sep="\t", index=False, float_format=precision)
    log.info("\n%s", evaluation.summary.to_string(index=False))
