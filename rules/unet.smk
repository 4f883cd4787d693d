# Attention U-Net: training on labelled data sets, probability maps per micrograph, picks from
# the centre map. Logic lives in cryopick.training / cryopick.inference.

rule train_unet:
    """Train the attention U-Net on the labelled data sets named in unet.train.datasets."""
    input:
        unpack(unet_training_inputs),
    output:
        model=UNET_TRAINED_MODEL,
        history=f"{UNET_TRAINING}/history.tsv",
        plot=f"{UNET_TRAINING}/loss.png",
    params:
        training_items=unet_training_params,
        settings=unet_train_settings(),
    log:
        f"{UNET_TRAINING}/train_unet.log",
    benchmark:
        f"{UNET_TRAINING}/benchmark.tsv"
    threads: UNET["train"]["threads"]
    resources:
        mem_mb=8000,
        runtime=UNET_TRAIN_RUNTIME,
        **UNET_TRAIN_GPU,
    conda:
        "../envs/unet.yaml"
    script:
        "../scripts/train_unet.py"


rule unet_predict:
    """U-Net probability (mask) and centre maps, 8-bit, on the denoised canvas: one job per
    batch of micrographs (rules/batching.smk), the model loaded once per job."""
    input:
        micrographs=batch_micrograph_paths,
        denoised="results/{dataset}/denoise/batch_{batch}",
        model=unet_model(),
    output:
        maps=directory("results/{dataset}/unet/batch_{batch}"),
    params:
        micrographs=batch_micrographs,
        diameter=dataset_diameter,
        invert=dataset_invert,
        device=UNET["device"],
        batch_size=UNET["batch_size"],
        symmetries=UNET["symmetries"],
    log:
        "results/{dataset}/logs/unet_predict/batch_{batch}.log",
    benchmark:
        "results/{dataset}/benchmarks/unet_predict/batch_{batch}.tsv"
    threads: UNET["threads"]
    resources:
        mem_mb=3000,
        runtime=UNET_BATCH_RUNTIME,
        **UNET_GPU,
    conda:
        "../envs/unet.yaml"
    script:
        "../scripts/unet_predict.py"


rule pick_unet:
    """Picks: peaks of the U-Net centre map at the particle diameter, with an edge margin; one
    job per batch of micrographs."""
    input:
        maps="results/{dataset}/unet/batch_{batch}",
        denoised="results/{dataset}/denoise/batch_{batch}",
    output:
        directory("results/{dataset}/unet_picks/batch_{batch}"),
    params:
        micrographs=batch_micrographs,
        diameter=dataset_diameter,
        settings=unet_pick_settings(),
    log:
        "results/{dataset}/logs/pick_unet/batch_{batch}.log",
    benchmark:
        "results/{dataset}/benchmarks/pick_unet/batch_{batch}.tsv"
    threads: 1
    resources:
        mem_mb=1000,
        runtime=PICK_BATCH_RUNTIME,
    conda:
        "../envs/unet.yaml"
    script:
        "../scripts/pick_unet.py"
