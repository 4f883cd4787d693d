rule metrics:
    """Per-stage scores against ground truth: per micrograph, and pooled per data set."""
    input:
        unpack(metrics_inputs),
    output:
        per_micrograph=paths.METRICS_PER_MICROGRAPH,
        summary=report(
            paths.METRICS_SUMMARY,
            caption="../report/summary.rst",
            category="Metrics",
            subcategory="{dataset}",
        ),
        curves=paths.METRICS_CURVES,
        histograms=paths.METRICS_SCORE_HISTOGRAMS,
    log:
        paths.log("metrics", None),
    benchmark:
        paths.benchmark("metrics", "metrics")
    conda:
        "../envs/cryopick.yaml"
    threads: 1
    resources:
        mem_mb=4000,
        runtime=30,
    params:
        micrographs=dataset_micrograph_names,
        stages=dataset_picking_stages,
        diameter=dataset_diameter,
        ground_truth=dataset_ground_truth,
        ground_truth_masks=dataset_ground_truth_masks,
        missing=config["metrics"]["missing_ground_truth"],
    script:
        "../scripts/metrics.py"
