# Stages that load a model (U-Net, SAM) run one job per batch of micrographs, not one per
# micrograph. Batch membership is stable (results/{dataset}/batches.tsv, cryopick/batching.py):
# new micrographs only ever go into new batches, so adding them reruns nothing already done.
# New assignments are recorded when a real run starts (onstart below); dry runs and the jobs'
# own parsing compute the same batches without writing. A batched rule looks like
#
#   rule unet_predict:
#       input: denoised=batch_inputs("results/{dataset}/denoise/{micrograph}.npz"), ...
#       output: directory("results/{dataset}/unet/batch_{batch}")   # {micrograph}.npz inside
#       params: micrographs=batch_micrographs
#
# and a per-micrograph rule downstream reads batch_dir("results/{dataset}/unet/batch_{batch}").

from cryopick.batching import BatchPlan  # noqa: E402

BATCHES = BatchPlan.build(
    {name: list(listing) for name, listing in MICROGRAPHS.items()},
    manifest="results/{dataset}/batches.tsv",
    batch_size=config["batching"]["size"],
)
batch_inputs = BATCHES.inputs
batch_micrographs = BATCHES.micrographs_of_job
batch_dir = BATCHES.batch_dir
# the batch directory that holds a per-micrograph job's U-Net maps / SAM masks
unet_batch_of_micrograph = batch_dir("results/{dataset}/unet/batch_{batch}")
sam_batch_of_micrograph = batch_dir("results/{dataset}/sam/batch_{batch}")


wildcard_constraints:
    batch=r"\d+",


onstart:
    BATCHES.save()
