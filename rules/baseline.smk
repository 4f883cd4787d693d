rule pick_baseline:
    """Blob-detector baseline picks (difference of Gaussians at the particle scale), one job
    per batch of micrographs."""
    input:
        denoised="results/{dataset}/denoise/batch_{batch}",
    output:
        directory("results/{dataset}/baseline/batch_{batch}"),
    params:
        micrographs=batch_micrographs,
        settings=config["baseline"],
        diameter=dataset_diameter,
    log:
        "results/{dataset}/logs/pick_baseline/batch_{batch}.log",
    benchmark:
        "results/{dataset}/benchmarks/pick_baseline/batch_{batch}.tsv"
    threads: 1
    resources:
        mem_mb=1000,
        runtime=PICK_BATCH_RUNTIME,
    conda:
        "../envs/cryopick.yaml"
    script:
        "../scripts/pick_baseline.py"
