rule metrics:
    """Per-stage scores against ground truth: per micrograph, and pooled per data set."""
    input:
        unpack(metrics_inputs),
    output:
        per_micrograph="results/{dataset}/metrics/per_micrograph.tsv",
        summary=report(
            "results/{dataset}/metrics/summary.tsv",
            caption="../report/summary.rst",
            category="Metrics",
            subcategory="{dataset}",
        ),
    params:
        micrographs=dataset_micrograph_names,
        stages=dataset_picking_stages,
        diameter=dataset_diameter,
        ground_truth=dataset_ground_truth,
        ground_truth_masks=dataset_ground_truth_masks,
        missing=config["metrics"]["missing_ground_truth"],
    log:
        "results/{dataset}/logs/metrics.log",
    benchmark:
        "results/{dataset}/benchmarks/metrics/metrics.tsv"
    threads: 1
    resources:
        mem_mb=4000,
        runtime=30,
    conda:
        "../envs/cryopick.yaml"
    script:
        "../scripts/metrics.py"
