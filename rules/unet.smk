# Attention U-Net: training on labelled data sets, probability maps per micrograph, picks from
# the centre map. Logic lives in cryopick.training / cryopick.inference.

UNET = config["unet"]
UNET_TRAINING = unet_training_folder(config)
# a GPU is requested from the scheduler only when the config says the U-Net uses one
UNET_GPU = {"gpu": 1} if UNET["device"] == "cuda" else {}
UNET_TRAIN_GPU = {"gpu": 1} if UNET["train"]["device"] == "cuda" else {}
# minutes of one inference job: model start-up plus up to ~1 min per micrograph on a CPU
UNET_BATCH_RUNTIME = 10 + config["batching"]["size"]
# minutes of the training job: its own time limit plus loading and the final evaluation
UNET_TRAIN_RUNTIME = int(UNET["train"]["max_minutes"]) + 30


rule train_unet:
    """Train the attention U-Net on the labelled data sets named in unet.train.datasets."""
    input:
        unpack(unet_training_inputs),
    output:
        model=f"{UNET_TRAINING}/model.pt",
        history=f"{UNET_TRAINING}/history.tsv",
        plot=f"{UNET_TRAINING}/loss.png",
    log:
        f"{UNET_TRAINING}/train_unet.log",
    benchmark:
        f"{UNET_TRAINING}/benchmark.tsv"
    conda:
        "../envs/unet.yaml"
    threads: UNET["train"]["threads"]
    resources:
        **UNET_TRAIN_GPU,
        mem_mb=8000,
        runtime=UNET_TRAIN_RUNTIME,
    params:
        training_items=unet_training_params,
        settings=unet_train_settings(config, workflow.basedir),
    script:
        "../scripts/train_unet.py"


rule unet_predict:
    """U-Net probability (mask) and centre maps, 8-bit, on the denoised canvas: one job per
    batch of micrographs (rules/batching.smk), the model loaded once per job."""
    input:
        micrographs=batch_micrograph_paths,
        denoised=paths.batch_complete(paths.DENOISED),
        model=get_unet_model,
    output:
        maps=directory(paths.UNET_MAPS),
        complete=paths.batch_complete(paths.UNET_MAPS),
    log:
        paths.log("unet_predict", paths.BATCH),
    benchmark:
        paths.benchmark("unet_predict", paths.BATCH)
    conda:
        "../envs/unet.yaml"
    threads: UNET["threads"]
    resources:
        **UNET_GPU,
        mem_mb=int(1024 * UNET["max_memory_gb"]),
        runtime=UNET_BATCH_RUNTIME,
    params:
        micrographs=batch_micrographs,
        diameter=dataset_diameter,
        invert=dataset_invert,
        device=UNET["device"],
        batch_size=UNET["batch_size"],
        max_memory_gb=UNET["max_memory_gb"],
        symmetries=UNET["symmetries"],
    script:
        "../scripts/unet_predict.py"


rule self_train_unet:
    """Adapt the U-Net to one data set without labels: fine-tune it on its own confident picks
    on the data set's first micrographs (unet.self_training; cryopick.self_training)."""
    input:
        unpack(get_adaptation_inputs),
    output:
        model=paths.ADAPTED_UNET_MODEL,
        pseudo_labels=directory(paths.PSEUDO_LABELS),
    log:
        paths.log("self_train_unet", None),
    benchmark:
        paths.benchmark("self_train_unet", None)
    conda:
        "../envs/unet.yaml"
    threads: UNET["threads"]
    resources:
        **UNET_GPU,
        mem_mb=int(1024 * UNET["max_memory_gb"]),
        runtime=UNET_TRAIN_RUNTIME,
    params:
        micrographs=get_adaptation_micrographs,
        diameter=dataset_diameter,
        invert=dataset_invert,
        device=UNET["device"],
        settings=self_training_settings(config),
    script:
        "../scripts/self_train_unet.py"


rule pick_unet:
    """Picks: peaks of the U-Net centre map at the particle diameter, with an edge margin; one
    job per batch of micrographs."""
    input:
        maps=paths.batch_complete(paths.UNET_MAPS),
        denoised=paths.batch_complete(paths.DENOISED),
    output:
        directory(stage_picks("unet")),
        paths.batch_complete(stage_picks("unet")),
    log:
        paths.log("pick_unet", paths.BATCH),
    benchmark:
        paths.benchmark("pick_unet", paths.BATCH)
    conda:
        "../envs/unet.yaml"
    threads: 1
    resources:
        mem_mb=1000,
        runtime=PICK_BATCH_RUNTIME,
    params:
        micrographs=batch_micrographs,
        diameter=dataset_diameter,
        settings=unet_pick_settings(config),
    script:
        "../scripts/pick_unet.py"
