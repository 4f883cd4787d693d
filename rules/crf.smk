# Fully connected CRF on the U-Net probabilities and the denoised image (Chung & Chou).

# Dense-CRF memory grows with the canvas area: ~270 MB at 1024^2, 3.6 GB at 4096^2.
CRF_MEM_MB = int(500 + 300 * (config["denoise"]["size"] / 1024) ** 2)


rule crf:
    """Dense-CRF refined particle probability and mask at network resolution."""
    input:
        probabilities=unet_batch_of_micrograph,
        denoised="results/{dataset}/denoise/{micrograph}.npz",
    output:
        "results/{dataset}/crf/{micrograph}.npz",
    params:
        settings=config["crf"],
    log:
        "results/{dataset}/logs/crf/{micrograph}.log",
    benchmark:
        "results/{dataset}/benchmarks/crf/{micrograph}.tsv"
    threads: 1
    resources:
        mem_mb=CRF_MEM_MB,
        runtime=10,
    conda:
        "../envs/crf.yaml"
    script:
        "../scripts/crf_refine.py"
