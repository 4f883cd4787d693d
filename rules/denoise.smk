rule denoise:
    """Bin to the network canvas and run CryoSegNet's denoising chain: one job per batch of
    micrographs (rules/batching.smk); a bad micrograph gets an error record, not its batch."""
    input:
        micrographs=batch_micrograph_paths,
    output:
        directory(paths.DENOISED),
        paths.batch_complete(paths.DENOISED),
    log:
        paths.log("denoise", paths.BATCH),
    benchmark:
        paths.benchmark("denoise", paths.BATCH)
    conda:
        "../envs/cryopick.yaml"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=DENOISE_BATCH_RUNTIME,
    params:
        files=batch_micrograph_files,
        settings=config["denoise"],
        pixel_size=dataset_pixel_size,
        invert=dataset_invert,
    script:
        "../scripts/denoise.py"
