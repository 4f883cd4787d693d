rule picks:
    """Final picks from the configured stage: score cut, edge margin, de-duplication."""
    input:
        stage=source_picks,
        denoised=denoise_batch_of_micrograph,
    output:
        paths.FINAL_PICKS,
    log:
        paths.log("picks"),
    benchmark:
        paths.benchmark("picks")
    conda:
        "../envs/cryopick.yaml"
    threads: 1
    resources:
        mem_mb=500,
        runtime=5,
    params:
        settings=final_picks_settings(config),
        diameter=dataset_diameter,
    script:
        "../scripts/picks.py"


rule picks_format:
    """Final picks as CryoPPP .csv or EMAN .box (box side = particle diameter)."""
    input:
        star=paths.FINAL_PICKS,
        denoised=denoise_batch_of_micrograph,
    output:
        paths.FORMATTED_PICKS,
    log:
        paths.log("picks_{format}"),
    conda:
        "../envs/cryopick.yaml"
    threads: 1
    resources:
        mem_mb=500,
        runtime=5,
    params:
        diameter=dataset_diameter,
    script:
        "../scripts/picks_format.py"


rule pick_counts:
    """Picks per micrograph against the data set's median: a WARNING for each micrograph with
    none or far too few, an error when most have none (cryopick/pick_counts.py); the RELION
    coordinate index of the run's picks, and earlier picks of micrographs that left the data
    set moved to stale/ (cryopick/picks_index.py)."""
    input:
        picks=dataset_final_picks,
    output:
        counts=paths.PICK_COUNTS,
        index=paths.PICKS_INDEX,
    log:
        paths.log("pick_counts", None),
    benchmark:
        paths.benchmark("pick_counts", "pick_counts")
    conda:
        "../envs/cryopick.yaml"
    threads: 1
    resources:
        mem_mb=1000,
        runtime=10,
    params:
        micrographs=dataset_micrograph_files,
        checks=config["checks"],
        settings=dataset_scale_settings,
    script:
        "../scripts/pick_counts.py"
