# Exclusion: where no particle may be picked (carbon, contamination, thick ice, border stripes,
# crystalline ice) and a verdict per micrograph. Logic lives in cryopick/exclusion.py.


rule exclusion:
    """Exclusion maps of one batch of micrographs: a class per canvas pixel from measured
    signals (dark areas, border stripes, crystalline-ice spacings), one .npz each."""
    input:
        micrographs=batch_micrograph_paths,
        denoised=paths.batch_complete(paths.DENOISED),
    output:
        maps=directory(paths.EXCLUSION_MAPS),
        complete=paths.batch_complete(paths.EXCLUSION_MAPS),
    log:
        paths.log("exclusion", paths.BATCH),
    benchmark:
        paths.benchmark("exclusion", paths.BATCH)
    conda:
        "../envs/cryopick.yaml"
    threads: 1
    resources:
        mem_mb=3000,
        runtime=PICK_BATCH_RUNTIME,
    params:
        micrographs=batch_micrographs,
        settings=exclusion_map_settings(config),
        diameter=dataset_diameter,
        invert=dataset_invert,
    script:
        "../scripts/exclusion.py"


rule micrograph_quality:
    """A verdict per micrograph of a data set (usable area, crystalline ice, relative ice
    thickness, particle density, class) and a RELION micrographs STAR of the good ones."""
    input:
        maps=dataset_exclusion_maps,
        counts=paths.PICK_COUNTS,
    output:
        table=report(
            paths.MICROGRAPHS_QUALITY,
            caption="../report/micrographs_quality.rst",
            category="Micrographs",
            subcategory="{dataset}",
        ),
        good=paths.GOOD_MICROGRAPHS,
    log:
        paths.log("micrograph_quality", None),
    benchmark:
        paths.benchmark("micrograph_quality", "micrograph_quality")
    conda:
        "../envs/cryopick.yaml"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=30,
    params:
        micrographs=dataset_micrograph_names,
        files=dataset_micrograph_files,
        verdict=config["exclusion"]["verdict"],
    script:
        "../scripts/micrograph_quality.py"
