# Fully connected CRF on the U-Net probabilities and the denoised image (Chung & Chou).

# Dense-CRF memory grows with the canvas area: ~270 MB at 1024^2, 3.6 GB at 4096^2.
CRF_MEM_MB = int(500 + 300 * (config["denoise"]["size"] / 1024) ** 2)
# minutes of one batch job: a few seconds per 1024^2 micrograph, 16x that at 4096^2
CRF_BATCH_RUNTIME = 10 + int(config["batching"]["size"] * (config["denoise"]["size"] / 1024) ** 2)


rule crf:
    """Dense-CRF refined particle probability and mask at network resolution, one job per
    batch of micrographs."""
    input:
        probabilities=paths.batch_complete(paths.UNET_MAPS),
        denoised=paths.batch_complete(paths.DENOISED),
    output:
        directory(paths.CRF_MAPS),
        paths.batch_complete(paths.CRF_MAPS),
    log:
        paths.log("crf", paths.BATCH),
    benchmark:
        paths.benchmark("crf", paths.BATCH)
    conda:
        "../envs/crf.yaml"
    threads: 1
    resources:
        mem_mb=CRF_MEM_MB,
        runtime=CRF_BATCH_RUNTIME,
    params:
        micrographs=batch_micrographs,
        settings=crf_settings(config),
    script:
        "../scripts/crf_refine.py"


rule pick_crf:
    """Picks from the CRF-refined map: particles separated inside the refined mask (by the U-Net
    centre map or the distance transform), figure of merit = local particle probability."""
    input:
        refined=paths.batch_complete(paths.CRF_MAPS),
        maps=paths.batch_complete(paths.UNET_MAPS),
        denoised=paths.batch_complete(paths.DENOISED),
    output:
        directory(stage_picks("unet+crf")),
        paths.batch_complete(stage_picks("unet+crf")),
    log:
        paths.log("pick_crf", paths.BATCH),
    benchmark:
        paths.benchmark("pick_crf", paths.BATCH)
    conda:
        "../envs/unet.yaml"
    threads: 1
    resources:
        mem_mb=1000,
        runtime=PICK_BATCH_RUNTIME,
    params:
        micrographs=batch_micrographs,
        diameter=dataset_diameter,
        settings=config["crf_picks"],
    script:
        "../scripts/pick_crf.py"
