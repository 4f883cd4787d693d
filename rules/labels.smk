# Training label maps from ground-truth coordinates, on the denoised network canvas.


rule label_maps:
    """Label map of one micrograph: discs of the labelled diameter, or discs refined to the
    particles' visible support in the denoised image (config labels.method)."""
    input:
        denoised=denoise_batch_of_micrograph,
        labels=label_file,
    output:
        paths.LABEL_MAP,
    log:
        paths.log("label_maps"),
    benchmark:
        paths.benchmark("label_maps")
    conda:
        "../envs/cryopick.yaml"
    threads: 1
    resources:
        mem_mb=1000,
        runtime=5,
    params:
        settings=config["labels"],
        diameter=dataset_diameter,
    script:
        "../scripts/label_maps.py"


rule all_label_maps:
    """Target: label maps of every labelled micrograph of every data set (an input function:
    listed only when this target is asked for, not at every job's parse)."""
    input:
        all_label_maps,
