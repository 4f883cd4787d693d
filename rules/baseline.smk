rule pick_baseline:
    """Blob-detector baseline picks (difference of Gaussians at the particle scale), one job
    per batch of micrographs."""
    input:
        denoised=paths.DENOISED,
    output:
        directory(stage_picks("baseline")),
    params:
        micrographs=batch_micrographs,
        settings=config["baseline"],
        diameter=dataset_diameter,
    log:
        paths.log("pick_baseline", paths.BATCH),
    benchmark:
        paths.benchmark("pick_baseline", paths.BATCH)
    threads: 1
    resources:
        mem_mb=1000,
        runtime=PICK_BATCH_RUNTIME,
    conda:
        "../envs/cryopick.yaml"
    script:
        "../scripts/pick_baseline.py"
