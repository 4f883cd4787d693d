"""Snakemake wrapper: the benchmark report (cryopick.report.write_report)."""

from cryopick.provenance import provenance
from cryopick.report import DatasetInputs, ReportOptions, write_report
from cryopick.workflow import logged_job

with logged_job(snakemake.log[0], "report") as log:
    facts = snakemake.params.provenance
    options = dict(snakemake.params.options)
    skipped = options.pop("skipped_peers")
    write_report(
        [DatasetInputs(name=name, **inputs) for name, inputs in snakemake.params.datasets.items()],
        snakemake.output.tsv,
        snakemake.output.html,
        ReportOptions(**{**options, "peers": tuple(options["peers"])}, skipped_peers=skipped),
        provenance(
            facts["repository"],
            facts["model"],
            facts["command"],
            facts["log_folders"],
            facts["adapted_models"],
        ),
        snakemake.params.config,
        log=log.warning,
    )
    for peer, why in skipped.items():
        log.warning("peer %s skipped: %s", peer, why)
