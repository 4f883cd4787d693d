# Every per-micrograph stage (denoise, U-Net, CRF, SAM, each stage's picks, the final picks and
# their extra formats, the training label maps) runs one job per batch of micrographs, not one
# per micrograph: a 100,000-micrograph data set is ~1,600 jobs per stage instead of 100,000,
# and Snakemake's own cost is per job (benchmarks/dag_scale.py). Only the synthetic
# micrographs are made one job each (grouped in profiles/slurm).
# Batch membership is stable (results/{dataset}/batches.tsv, cryopick/batching.py): new
# micrographs only ever go into new batches, so adding them reruns nothing already done.
# New assignments are recorded when a real run starts (onstart below); dry runs and
# the jobs' own parsing compute the same batches without writing. A batched rule looks like
#
#   rule unet_predict:
#       input: denoised=paths.batch_complete(paths.DENOISED), ...  # upstream's record
#       output: directory(paths.UNET_MAPS),       # {micrograph}.npz inside
#               paths.batch_complete(paths.UNET_MAPS)  # written last: the batch is whole
#       params: micrographs=batch_micrographs
#
# (patterns made by paths.batch_folder).
# A micrograph that fails in a batched job gets an error record ({micrograph}.error.txt) in
# the batch's directory instead of its artifact; the batch goes on, later stages pass the
# record on into the final picks, and the run ends listing it and exiting non-zero
# (cryopick.batching.run_batch / batch_input, cryopick.workflow.failures).

from cryopick.batching import BatchPlan  # noqa: E402

BATCHES = BatchPlan.build(
    {name: list(listing) for name, listing in MICROGRAPHS.items()},
    manifest=paths.BATCH_MANIFEST,
    batch_size=config["batching"]["size"],
)
batch_micrographs = BATCHES.micrographs_of_job


# minutes of a batch of short CPU work (denoise ~1-5 s per micrograph, picks well under 1 s)
DENOISE_BATCH_RUNTIME = 10 + config["batching"]["size"] // 2
PICK_BATCH_RUNTIME = 5 + config["batching"]["size"] // 8


wildcard_constraints:
    batch=r"\d+",


onstart:
    BATCHES.save()
