rule report:
    """Cross-data-set benchmark report (TSV + HTML)."""
    input:
        summaries=report_summaries(),
        pick_counts=expand(PICK_COUNTS, dataset=list(DATASETS)),
    output:
        tsv="results/report/benchmark.tsv",
        html=report(
            "results/report/index.html",
            caption="../report/benchmark.rst",
            category="Benchmark",
        ),
    params:
        datasets=scored_datasets(),
        all_datasets=list(DATASETS),
        title=config["report"]["title"],
        settings={k: config[k] for k in ("denoise", "baseline", "picks")},
    log:
        "results/logs/report.log",
    benchmark:
        "results/benchmarks/report.tsv"
    threads: 1
    resources:
        mem_mb=1000,
        runtime=5,
    conda:
        "../envs/cryopick.yaml"
    script:
        "../scripts/report.py"
