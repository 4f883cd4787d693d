rule picks:
    """Final picks from the configured stage: score cut, edge margin, de-duplication; one job
    per batch of micrographs, {micrograph}.star each in the batch's folder."""
    input:
        stage=source_picks,
        denoised=paths.batch_complete(paths.DENOISED),
    output:
        directory(paths.FINAL_PICKS),
        paths.batch_complete(paths.FINAL_PICKS),
    log:
        paths.log("picks", paths.BATCH),
    benchmark:
        paths.benchmark("picks", paths.BATCH)
    conda:
        "../envs/cryopick.yaml"
    threads: 1
    resources:
        mem_mb=500,
        runtime=PICK_BATCH_RUNTIME,
    params:
        micrographs=batch_micrographs,
        settings=final_picks_settings(config),
        diameter=dataset_diameter,
    script:
        "../scripts/picks.py"


rule picks_format:
    """Final picks of one batch as CryoPPP .csv or EMAN .box (box side = particle diameter)."""
    input:
        picks=paths.batch_complete(paths.FINAL_PICKS),
        denoised=paths.batch_complete(paths.DENOISED),
    output:
        directory(paths.FORMATTED_PICKS),
        paths.batch_complete(paths.FORMATTED_PICKS),
    log:
        paths.log("picks_{format}", paths.BATCH),
    benchmark:
        paths.benchmark("picks_{format}", paths.BATCH)
    conda:
        "../envs/cryopick.yaml"
    threads: 1
    resources:
        mem_mb=500,
        runtime=PICK_BATCH_RUNTIME,
    params:
        micrographs=batch_micrographs,
        diameter=dataset_diameter,
    script:
        "../scripts/picks_format.py"


rule pick_counts:
    """Picks per micrograph against the data set's median: a WARNING for each micrograph with
    none or far too few, an error when most have none (cryopick/pick_counts.py); the RELION
    coordinate index of the run's picks (cryopick/picks_index.py)."""
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
