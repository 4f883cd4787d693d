rule pick_baseline:
    """Blob-detector baseline picks (difference of Gaussians at the particle scale)."""
    input:
        denoised="results/{dataset}/denoise/{micrograph}.npz",
    output:
        "results/{dataset}/baseline/{micrograph}.star",
    params:
        settings=config["baseline"],
        diameter=dataset_diameter,
    log:
        "results/{dataset}/logs/pick_baseline/{micrograph}.log",
    benchmark:
        "results/{dataset}/benchmarks/pick_baseline/{micrograph}.tsv"
    threads: 1
    resources:
        mem_mb=1000,
        runtime=5,
    conda:
        "../envs/cryopick.yaml"
    script:
        "../scripts/pick_baseline.py"
