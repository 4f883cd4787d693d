# Synthetic data sets with exact ground truth (config `synthetic:`), written under
# results/synthetic/{synthetic_set}/ in the layout of a real data set, one micrograph per job
# (the layout: cryopick.synthetic.micrograph_outputs, through paths.synthetic_files).


rule synthesize:
    """One synthetic micrograph: MRC, exact coordinates (CSV, STAR), particle, instance and
    exclusion masks, particle table and the parameters drawn for it."""
    input:
        volumes=synthetic_volume_files,
    output:
        **paths.synthetic_files(),
    log:
        paths.log("synthesize", root=paths.SYNTHETIC_SET),
    benchmark:
        paths.benchmark("synthesize", root=paths.SYNTHETIC_SET)
    conda:
        "../envs/cryopick.yaml"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    params:
        settings=synthetic_settings,
        seed=synthetic_seed,
        index=synthetic_index,
    script:
        "../scripts/synthesize.py"


rule synthetic_parameters:
    """parameters.json of a synthetic set: every setting, the seed and the micrograph names."""
    input:
        volumes=synthetic_volume_files,
    output:
        paths.SYNTHETIC_PARAMETERS,
    log:
        paths.log("parameters", None, paths.SYNTHETIC_SET),
    benchmark:
        paths.benchmark("parameters", None, paths.SYNTHETIC_SET)
    conda:
        "../envs/cryopick.yaml"
    threads: 1
    resources:
        mem_mb=500,
        runtime=5,
    params:
        settings=synthetic_settings,
        seed=synthetic_seed,
        n_micrographs=synthetic_set_size,
        name_prefix=synthetic_prefix,
    script:
        "../scripts/synthesize.py"


rule all_synthetic:
    """Target: every configured synthetic set, used by a data set or not (listed only when
    asked for)."""
    input:
        all_synthetic_outputs,
