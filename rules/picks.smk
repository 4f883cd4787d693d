rule picks:
    """Final picks of one batch of micrographs from the configured stage: score cut, edge
    margin, de-duplication; written into the batch's folder (RELION STAR and the extra formats)
    and published as results/{dataset}/picks/{micrograph}.star (picks_{format}/ for the
    others)."""
    input:
        stage=source_picks,
        denoised=paths.batch_complete(paths.DENOISED),
        exclusion=batch_exclusion,
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
        formats=config["picks"]["formats"],
        exclusion=exclusion_filter_settings(config),
        diameter=dataset_diameter,
        retry=final_picks_retry,
    script:
        "../scripts/picks.py"


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
        scores=paths.PICK_SCORES,
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
