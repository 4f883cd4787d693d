"""Snakemake wrapper: adapt the U-Net to one data set on its own confident picks
(cryopick.self_training.self_train_files)."""

from cryopick.io import micrograph_name
from cryopick.self_training import SelfTrainingSettings, self_train_files
from cryopick.workflow import as_list, logged_job

with logged_job(snakemake.log[0], f"self_train_unet on {snakemake.wildcards.dataset}") as log:
    self_train_files(
        snakemake.input.model,
        as_list(snakemake.params.micrographs),
        {micrograph_name(p): p for p in as_list(snakemake.input.micrographs)},
        as_list(snakemake.input.denoised),
        snakemake.params.diameter,
        snakemake.params.invert,
        SelfTrainingSettings.from_config({**snakemake.params.settings, "enabled": True}),
        snakemake.output.model,
        snakemake.output.pseudo_labels,
        device=snakemake.params.device,
        threads=snakemake.threads,
        log=log,
    )
