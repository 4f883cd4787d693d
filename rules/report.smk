rule report:
    """Cross-data-set benchmark report (TSV + HTML)."""
    input:
        summaries=PLAN.report_summaries(),
        pick_counts=PLAN.pick_count_tables(),
    output:
        tsv=paths.REPORT_TSV,
        html=report(
            paths.REPORT_HTML,
            caption="../report/benchmark.rst",
            category="Benchmark",
        ),
    log:
        paths.log("report", None, paths.RESULTS),
    benchmark:
        paths.benchmark("report", None, paths.RESULTS)
    conda:
        "../envs/cryopick.yaml"
    threads: 1
    resources:
        mem_mb=1000,
        runtime=5,
    params:
        datasets=PLAN.scored_datasets(),
        all_datasets=list(DATASETS),
        title=config["report"]["title"],
        settings={k: config[k] for k in ("denoise", "baseline", "picks")},
    script:
        "../scripts/report.py"
