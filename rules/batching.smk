# Stages that load a model (U-Net, SAM) and the short per-micrograph CPU stages that feed them
# or score them (denoise, baseline and U-Net picks) run one job per batch of micrographs, not
# one per micrograph: a 10,000-micrograph data set is ~160 jobs per stage instead of 10,000
# (Snakemake's own cost is per job: benchmarks/dag_scale.py). Batch membership is stable
# (results/{dataset}/batches.tsv, cryopick/batching.py): new micrographs only ever go into new
# batches, so adding them reruns nothing already done.
# New assignments are recorded when a real run starts (onstart below); dry runs and the jobs'
# own parsing compute the same batches without writing. A batched rule looks like
#
#   rule unet_predict:
#       input: denoised=paths.batch_complete(paths.DENOISED), ...  # upstream's record
#       output: directory(paths.UNET_MAPS),       # {micrograph}.npz inside
#               paths.batch_complete(paths.UNET_MAPS)  # written last: the batch is whole
#       params: micrographs=batch_micrographs
#
# (patterns made by paths.batch_folder) and a per-micrograph rule downstream reads
# batch_dir(paths.batch_complete(paths.UNET_MAPS)).
# A micrograph that fails in a batched job gets an error record ({micrograph}.error.txt) in
# the batch's directory instead of its artifact; the batch goes on, later batched stages pass
# the record on, and the micrograph's own final picks fail with its message
# (cryopick.batching.run_batch / batch_input).

from cryopick.batching import BatchPlan  # noqa: E402

BATCHES = BatchPlan.build(
    {name: list(listing) for name, listing in MICROGRAPHS.items()},
    manifest=paths.BATCH_MANIFEST,
    batch_size=config["batching"]["size"],
)
batch_micrographs = BATCHES.micrographs_of_job
batch_dir = BATCHES.batch_dir
# the batch that holds a per-micrograph job's canvas / U-Net maps / SAM masks: readers name
# its completion record (cryopick.batching.batch_folder_of), so a batch without one is redone
denoise_batch_of_micrograph = batch_dir(paths.batch_complete(paths.DENOISED))
unet_batch_of_micrograph = batch_dir(paths.batch_complete(paths.UNET_MAPS))
sam_batch_of_micrograph = batch_dir(paths.batch_complete(paths.SAM_MASKS))


# minutes of a batch of short CPU jobs (denoise ~1-5 s per micrograph, picks well under 1 s)
DENOISE_BATCH_RUNTIME = 10 + config["batching"]["size"] // 2
PICK_BATCH_RUNTIME = 5 + config["batching"]["size"] // 8


wildcard_constraints:
    batch=r"\d+",


onstart:
    BATCHES.save()
