rule denoise:
    """Bin to the network canvas and run CryoSegNet's denoising chain: one job per batch of
    micrographs (rules/batching.smk); a bad micrograph gets an error record, not its batch."""
    input:
        micrographs=batch_micrograph_paths,
    output:
        directory("results/{dataset}/denoise/batch_{batch}"),
    params:
        micrographs=batch_micrographs,
        settings=config["denoise"],
        pixel_size=dataset_pixel_size,
        invert=dataset_invert,
    log:
        "results/{dataset}/logs/denoise/batch_{batch}.log",
    benchmark:
        "results/{dataset}/benchmarks/denoise/batch_{batch}.tsv"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=DENOISE_BATCH_RUNTIME,
    conda:
        "../envs/cryopick.yaml"
    script:
        "../scripts/denoise.py"
