rule pick_baseline:
    """Blob-detector baseline picks (difference of Gaussians at the particle scale), one job
    per batch of micrographs."""
    input:
        denoised=paths.batch_complete(paths.DENOISED),
    output:
        directory(stage_picks("baseline")),
        paths.batch_complete(stage_picks("baseline")),
    log:
        paths.log("pick_baseline", paths.BATCH),
    benchmark:
        paths.benchmark("pick_baseline", paths.BATCH)
    conda:
        "../envs/cryopick.yaml"
    threads: 1
    resources:
        mem_mb=1000,
        runtime=PICK_BATCH_RUNTIME,
    params:
        micrographs=batch_micrographs,
        settings=config["baseline"],
        diameter=dataset_diameter,
    script:
        "../scripts/pick_baseline.py"
