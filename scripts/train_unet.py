"""Snakemake wrapper: train the U-Net on the configured labelled data sets
(cryopick.training.train_files)."""

from cryopick.batching import batch_input
from cryopick.training import TrainingConfig, labelled_micrograph, train_files
from cryopick.workflow import logged_job

with logged_job(snakemake.log[0], "train_unet") as log:
    items = [
        labelled_micrograph(
            item["name"],
            str(batch_input(item["denoised_batch"], item["name"].split("/", 1)[1])),
            item["labels"],
            item["diameter"],
            item.get("mask"),
            item["micrograph"],
            item["invert"],
        )
        for item in snakemake.params.training_items
    ]
    settings = dict(snakemake.params.settings)
    settings["threads"] = snakemake.threads
    checkpoint = train_files(
        items,
        TrainingConfig.from_config(settings),
        snakemake.output.model,
        snakemake.output.history,
        snakemake.output.plot,
        log=log.info,
    )
    log.info("model: %s", checkpoint["metrics"])
