# Segment Anything prompted on the U-Net probability map (CryoSegNet). The stage runs only when
# sam.checkpoint names a file (SAM weights cannot be shipped); otherwise the workflow says so
# once and no other stage asks for SAM masks.

from cryopick.sam import unavailable_message  # noqa: E402

if not PLAN.met["sam"] and workflow.is_main_process:
    print(unavailable_message(config["sam"]["checkpoint"]), file=sys.stderr)

# Peak memory of one SAM job on the CPU (weights + activations at 1024^2), by model type.
SAM_MEM_MB = {"vit_h": 16000, "vit_l": 12000, "vit_b": 8000, "tiny": 1000}
# The checkpoint is an input, so replacing it reruns the stage; unset, the job's own error
# says what to download.
# Minutes of one batch job: ~5-10 s per micrograph on a GPU, minutes on a CPU.
SAM_BATCH_RUNTIME = 10 + 2 * config["batching"]["size"]
SAM_CHECKPOINT_INPUT = [config["sam"]["checkpoint"]] if config["sam"]["checkpoint"] else []


rule sam_masks:
    """SAM automatic masks (RLE, box, predicted IoU, stability) on the U-Net maps of one batch
    of micrographs, the model loaded once per job."""
    input:
        probabilities=paths.batch_complete(paths.UNET_MAPS),
        checkpoint=SAM_CHECKPOINT_INPUT,
    output:
        masks=directory(paths.SAM_MASKS),
        complete=paths.batch_complete(paths.SAM_MASKS),
    log:
        paths.log("sam_masks", paths.BATCH),
    benchmark:
        paths.benchmark("sam_masks", paths.BATCH)
    conda:
        "../envs/sam.yaml"
    threads: 4
    resources:
        mem_mb=SAM_MEM_MB[config["sam"]["model_type"]],
        runtime=SAM_BATCH_RUNTIME,
    params:
        micrographs=batch_micrographs,
        settings=config["sam"],
    script:
        "../scripts/sam_masks.py"


rule pick_sam:
    """Picks from SAM masks after CryoSegNet's Algorithm 1 with its defects fixed (the
    sam+postprocessing stage)."""
    input:
        masks=paths.batch_complete(paths.SAM_MASKS),
        denoised=paths.batch_complete(paths.DENOISED),
    output:
        directory(stage_picks("sam+postprocessing")),
        paths.batch_complete(stage_picks("sam+postprocessing")),
    log:
        paths.log("pick_sam", paths.BATCH),
    benchmark:
        paths.benchmark("pick_sam", paths.BATCH)
    conda:
        "../envs/sam.yaml"
    threads: 1
    resources:
        mem_mb=1000,
        runtime=PICK_BATCH_RUNTIME,
    params:
        micrographs=batch_micrographs,
        settings=config["postprocess"],
    script:
        "../scripts/pick_sam.py"


rule pick_sam_raw:
    """One pick per SAM mask, unfiltered: the sam stage's row, against which the
    postprocessing is measured."""
    input:
        masks=paths.batch_complete(paths.SAM_MASKS),
        denoised=paths.batch_complete(paths.DENOISED),
    output:
        directory(stage_picks("sam")),
        paths.batch_complete(stage_picks("sam")),
    log:
        paths.log("pick_sam_raw", paths.BATCH),
    benchmark:
        paths.benchmark("pick_sam_raw", paths.BATCH)
    conda:
        "../envs/sam.yaml"
    threads: 1
    resources:
        mem_mb=1000,
        runtime=PICK_BATCH_RUNTIME,
    params:
        micrographs=batch_micrographs,
    script:
        "../scripts/pick_sam_raw.py"
