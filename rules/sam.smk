# Segment Anything prompted on the U-Net probability map (CryoSegNet). The stage runs only when
# sam.checkpoint names a file (SAM weights cannot be shipped); otherwise the workflow says so
# once and no other stage asks for SAM masks.

from cryopick.sam import checkpoint_available, unavailable_message  # noqa: E402

SAM_ENABLED = checkpoint_available(config["sam"]["checkpoint"])
if not SAM_ENABLED and workflow.is_main_process:
    print(unavailable_message(config["sam"]["checkpoint"]), file=sys.stderr)

# Peak memory of one SAM job on the CPU (weights + activations at 1024^2), by model type.
SAM_MEM_MB = {"vit_h": 16000, "vit_l": 12000, "vit_b": 8000, "tiny": 1000}
# The checkpoint is an input, so replacing it reruns the stage; unset, the job's own error
# says what to download.
SAM_CHECKPOINT_INPUT = [config["sam"]["checkpoint"]] if config["sam"]["checkpoint"] else []


rule sam:
    """SAM automatic masks (RLE, box, predicted IoU, stability) on the U-Net map."""
    input:
        probabilities="results/{dataset}/unet/{micrograph}.npz",
        checkpoint=SAM_CHECKPOINT_INPUT,
    output:
        masks="results/{dataset}/sam/{micrograph}.json.gz",
    params:
        settings=config["sam"],
    log:
        "results/{dataset}/logs/sam/{micrograph}.log",
    benchmark:
        "results/{dataset}/benchmarks/sam/{micrograph}.tsv"
    threads: 4
    resources:
        mem_mb=SAM_MEM_MB[config["sam"]["model_type"]],
        runtime=30,
    conda:
        "../envs/sam.yaml"
    script:
        "../scripts/sam_masks.py"
