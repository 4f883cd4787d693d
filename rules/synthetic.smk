# Synthetic data sets with exact ground truth (config `synthetic:`), written under
# results/synthetic/{synthetic_set}/ in the layout of a real data set, one micrograph per job.


rule synthesize:
    """One synthetic micrograph: MRC, exact coordinates (CSV, STAR), particle, instance and
    exclusion masks, particle table and the parameters drawn for it."""
    input:
        volumes=synthetic_volume_files,
    output:
        micrograph="results/synthetic/{synthetic_set}/micrographs/{micrograph}.mrc",
        coordinates="results/synthetic/{synthetic_set}/coordinates/{micrograph}.csv",
        coordinates_star="results/synthetic/{synthetic_set}/coordinates_star/{micrograph}.star",
        mask="results/synthetic/{synthetic_set}/masks/{micrograph}.png",
        instances="results/synthetic/{synthetic_set}/instances/{micrograph}.png",
        exclusion="results/synthetic/{synthetic_set}/ice_masks/{micrograph}.png",
        exclusion_classes="results/synthetic/{synthetic_set}/ice_masks/{micrograph}.npz",
        particles="results/synthetic/{synthetic_set}/particles/{micrograph}.tsv",
        parameters="results/synthetic/{synthetic_set}/parameters/{micrograph}.json",
    params:
        settings=synthetic_settings,
        seed=synthetic_seed,
        index=synthetic_index,
    log:
        "results/synthetic/{synthetic_set}/logs/synthesize/{micrograph}.log",
    benchmark:
        "results/synthetic/{synthetic_set}/benchmarks/synthesize/{micrograph}.tsv"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    conda:
        "../envs/cryopick.yaml"
    script:
        "../scripts/synthesize.py"


rule synthetic_parameters:
    """parameters.json of a synthetic set: every setting, the seed and the micrograph names."""
    input:
        volumes=synthetic_volume_files,
    output:
        "results/synthetic/{synthetic_set}/parameters.json",
    params:
        settings=synthetic_settings,
        seed=synthetic_seed,
        n_micrographs=synthetic_set_size,
        name_prefix=synthetic_prefix,
    log:
        "results/synthetic/{synthetic_set}/logs/parameters.log",
    benchmark:
        "results/synthetic/{synthetic_set}/benchmarks/parameters.tsv"
    threads: 1
    resources:
        mem_mb=500,
        runtime=5,
    conda:
        "../envs/cryopick.yaml"
    script:
        "../scripts/synthesize.py"


rule all_synthetic:
    """Target: every configured synthetic set, used by a data set or not."""
    input:
        [f"{synthetic_folder(s)}/parameters.json" for s in SYNTHETIC],
        [synthetic_outputs(s, n)["micrograph"] for s in SYNTHETIC for n in synthetic_names(s)],
