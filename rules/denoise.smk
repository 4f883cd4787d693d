rule denoise:
    """Bin to the network canvas and run CryoSegNet's denoising chain."""
    input:
        micrograph=micrograph_path,
    output:
        "results/{dataset}/denoise/{micrograph}.npz",
    params:
        settings=config["denoise"],
        pixel_size=dataset_pixel_size,
        invert=dataset_invert,
    log:
        "results/{dataset}/logs/denoise/{micrograph}.log",
    benchmark:
        "results/{dataset}/benchmarks/denoise/{micrograph}.tsv"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    conda:
        "../envs/cryopick.yaml"
    script:
        "../scripts/denoise.py"
