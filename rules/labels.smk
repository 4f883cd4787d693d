# Training label maps from ground-truth coordinates, on the denoised network canvas.


rule label_maps:
    """Label maps of the labelled micrographs of one batch: discs of the labelled diameter, or
    discs refined to the particles' visible support in the denoised image (labels.method)."""
    input:
        denoised=paths.batch_complete(paths.DENOISED),
        labels=batch_label_files,
    output:
        directory(paths.LABEL_MAPS),
        paths.batch_complete(paths.LABEL_MAPS),
    log:
        paths.log("label_maps", paths.BATCH),
    benchmark:
        paths.benchmark("label_maps", paths.BATCH)
    conda:
        "../envs/cryopick.yaml"
    threads: 1
    resources:
        mem_mb=1000,
        runtime=PICK_BATCH_RUNTIME,
    params:
        labelled=batch_labelled_micrographs,
        settings=config["labels"],
        diameter=dataset_diameter,
    script:
        "../scripts/label_maps.py"


rule all_label_maps:
    """Target: label maps of every labelled micrograph of every data set (an input function:
    listed only when this target is asked for, not at every job's parse)."""
    input:
        all_label_maps,
