rule picks:
    """Final picks from the configured stage: score cut, edge margin, de-duplication."""
    input:
        stage=source_picks,
        denoised=denoise_batch_of_micrograph,
    output:
        "results/{dataset}/picks/{micrograph}.star",
    params:
        settings=final_picks_settings(),
        diameter=dataset_diameter,
    log:
        "results/{dataset}/logs/picks/{micrograph}.log",
    benchmark:
        "results/{dataset}/benchmarks/picks/{micrograph}.tsv"
    threads: 1
    resources:
        mem_mb=500,
        runtime=5,
    conda:
        "../envs/cryopick.yaml"
    script:
        "../scripts/picks.py"


rule picks_format:
    """Final picks as CryoPPP .csv or EMAN .box (box side = particle diameter)."""
    input:
        star="results/{dataset}/picks/{micrograph}.star",
        denoised=denoise_batch_of_micrograph,
    output:
        "results/{dataset}/picks_{format}/{micrograph}.{format}",
    params:
        diameter=dataset_diameter,
    log:
        "results/{dataset}/logs/picks_{format}/{micrograph}.log",
    threads: 1
    resources:
        mem_mb=500,
        runtime=5,
    conda:
        "../envs/cryopick.yaml"
    script:
        "../scripts/picks_format.py"


rule pick_counts:
    """Picks per micrograph against the data set's median: a WARNING for each micrograph with
    none or far too few, an error when most have none (cryopick/pick_counts.py)."""
    input:
        picks=get_final_picks,
    output:
        "results/{dataset}/pick_counts.tsv",
    params:
        micrographs=dataset_micrograph_names,
        checks=config["checks"],
        settings=get_dataset_scale_settings,
    log:
        "results/{dataset}/logs/pick_counts.log",
    benchmark:
        "results/{dataset}/benchmarks/pick_counts/pick_counts.tsv"
    threads: 1
    resources:
        mem_mb=1000,
        runtime=10,
    conda:
        "../envs/cryopick.yaml"
    script:
        "../scripts/pick_counts.py"
