# Fully connected CRF on the U-Net probabilities and the denoised image (Chung & Chou).

# Dense-CRF memory grows with the canvas area: ~270 MB at 1024^2, 3.6 GB at 4096^2.
CRF_MEM_MB = int(500 + 300 * (config["denoise"]["size"] / 1024) ** 2)


rule crf:
    """Dense-CRF refined particle probability and mask at network resolution."""
    input:
        probabilities=unet_batch_of_micrograph,
        denoised=denoise_batch_of_micrograph,
    output:
        paths.CRF_MAP,
    log:
        paths.log("crf"),
    benchmark:
        paths.benchmark("crf")
    conda:
        "../envs/crf.yaml"
    threads: 1
    resources:
        mem_mb=CRF_MEM_MB,
        runtime=10,
    params:
        settings=crf_settings(config),
    script:
        "../scripts/crf_refine.py"


rule pick_crf:
    """Picks from the CRF-refined map: particles separated inside the refined mask (by the U-Net
    centre map or the distance transform), figure of merit = local particle probability."""
    input:
        refined=paths.CRF_MAP,
        maps=unet_batch_of_micrograph,
        denoised=denoise_batch_of_micrograph,
    output:
        stage_picks("unet+crf"),
    log:
        paths.log("pick_crf"),
    benchmark:
        paths.benchmark("pick_crf")
    conda:
        "../envs/unet.yaml"
    threads: 1
    resources:
        mem_mb=1000,
        runtime=5,
    params:
        diameter=dataset_diameter,
        settings=config["crf_picks"],
    script:
        "../scripts/pick_crf.py"
