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
