"""Snakemake wrapper: the cross-data-set benchmark report (cryopick.report.write_report)."""

from cryopick.report import write_report
from cryopick.workflow import as_list, logged_job, paths

with logged_job(snakemake.log[0], "report"):
    datasets = snakemake.params.datasets
    write_report(
        dict(zip(datasets, snakemake.input.summaries)),
        {dataset: paths.benchmarks().format(dataset=dataset) for dataset in datasets},
        snakemake.output.tsv,
        snakemake.output.html,
        snakemake.params.title,
        snakemake.params.settings,
        dict(zip(snakemake.params.all_datasets, as_list(snakemake.input.pick_counts))),
    )
