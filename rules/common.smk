# Helpers shared by all rules: config validation, data-set listing, per-wildcard lookups.
# Everything here runs at DAG-build time, so it only lists names and never opens a micrograph.

import os
import sys

from snakemake.utils import validate

# The DAG build imports this workflow's own cryopick package; jobs find it through the
# symbolic link scripts/cryopick, since Snakemake puts a script's folder on its sys.path.
sys.path.insert(0, workflow.basedir)

from cryopick.datasets import list_label_files, list_micrographs  # noqa: E402

# Data sets named on the command line (--configfile/--config) replace the bundled demo data
# sets instead of being merged with them; every other key merges as usual.
_cli_config = workflow.config_settings.overwrite_config
if "datasets" in _cli_config:
    config["datasets"] = dict(_cli_config["datasets"])

validate(config, "../config/schema.yaml")

DATASETS = config["datasets"]
MICROGRAPHS = {name: list_micrographs(ds["micrographs"], name) for name, ds in DATASETS.items()}


wildcard_constraints:
    dataset=r"[A-Za-z0-9][A-Za-z0-9_.-]*",
    micrograph=r"[^/]+",
    format=r"csv|box",


def micrograph_path(wildcards):
    """The input file of one micrograph."""
    return MICROGRAPHS[wildcards.dataset][wildcards.micrograph]


def dataset_setting(wildcards, key):
    return DATASETS[wildcards.dataset].get(key)


def dataset_pixel_size(wildcards):
    return dataset_setting(wildcards, "pixel_size")


def dataset_diameter(wildcards):
    return dataset_setting(wildcards, "particle_diameter")


def dataset_invert(wildcards):
    """Bright particles are inverted at denoising so every later stage sees dark particles."""
    return dataset_setting(wildcards, "particle_contrast") == "bright"


def dataset_micrograph_names(wildcards):
    return micrograph_names(wildcards.dataset)


def dataset_ground_truth(wildcards):
    return dataset_setting(wildcards, "ground_truth")


def dataset_ground_truth_masks(wildcards):
    return dataset_setting(wildcards, "ground_truth_masks")


def picking_stages():
    """Picking stage -> per-micrograph picks pattern, for every stage this config runs; each
    stage gets a row in summary.tsv, the final picks last."""
    stages = {"baseline": "results/{dataset}/baseline/{micrograph}.star"}
    if config["unet"]["enabled"]:
        stages["unet"] = "results/{dataset}/unet_picks/{micrograph}.star"
    stages["final"] = "results/{dataset}/picks/{micrograph}.star"
    return stages


def source_picks(wildcards):
    """Per-micrograph picks of the stage chosen as the source of the final picks."""
    return picking_stages()[config["picks"]["source"]].format(**wildcards)


def final_picks_settings():
    """The picks settings that change the final picks (not the extra output formats)."""
    return {k: v for k, v in config["picks"].items() if k != "formats"}


def micrograph_names(dataset):
    return list(MICROGRAPHS[dataset])


def has_ground_truth(dataset):
    return bool(DATASETS[dataset].get("ground_truth"))


def per_micrograph(pattern, dataset):
    return expand(pattern, dataset=dataset, micrograph=micrograph_names(dataset))


def metrics_inputs(wildcards):
    """Picks of every stage, the denoised artifacts (frames) and the label files."""
    dataset = wildcards.dataset
    inputs = {f"stage_{stage}": per_micrograph(pattern, dataset)
              for stage, pattern in picking_stages().items()}
    inputs["denoised"] = per_micrograph("results/{dataset}/denoise/{micrograph}.npz", dataset)
    names = set(micrograph_names(dataset))
    labels = list_label_files(DATASETS[dataset]["ground_truth"])
    inputs["labels"] = [path for name, path in labels.items() if name in names]
    masks = list_label_files(DATASETS[dataset].get("ground_truth_masks"), suffixes=(".png",))
    inputs["masks"] = [path for name, path in masks.items() if name in names]
    return inputs


def scored_datasets():
    return [name for name in DATASETS if has_ground_truth(name)]


def report_summaries():
    return expand("results/{dataset}/metrics/summary.tsv", dataset=scored_datasets())


def all_outputs():
    outputs = []
    for dataset in DATASETS:
        outputs += per_micrograph("results/{dataset}/picks/{micrograph}.star", dataset)
        for fmt in config["picks"]["formats"]:
            outputs += expand("results/{dataset}/picks_{format}/{micrograph}.{format}",
                              dataset=dataset, format=fmt, micrograph=micrograph_names(dataset))
    outputs += report_summaries()
    outputs += ["results/report/benchmark.tsv", "results/report/index.html"]
    return outputs


# ----------------------------------------------------------------------------------------------
# U-Net (rules/unet.smk)
# ----------------------------------------------------------------------------------------------

UNET = config["unet"]
UNET_TRAINED_MODEL = "results/unet_training/model.pt"
# a GPU is requested from the scheduler only when the config says the U-Net uses one
UNET_GPU = {"gpu": 1} if UNET["device"] == "cuda" else {}
UNET_TRAIN_GPU = {"gpu": 1} if UNET["train"]["device"] == "cuda" else {}


def unet_model():
    """The checkpoint inference uses: the model train_unet makes (model: train) or a file; a
    relative path that does not exist from the working directory is looked up in the
    repository (where the shipped default lives)."""
    model = UNET["model"]
    if model == "train":
        return UNET_TRAINED_MODEL
    if not os.path.isabs(model) and not os.path.exists(model):
        shipped = os.path.join(workflow.basedir, model)
        if os.path.exists(shipped):
            return shipped
    return model


def unet_training_items():
    """(dataset/micrograph name, denoised canvas, label file, diameter in A[, mask]) of every
    labelled micrograph of the training data sets; unlabelled micrographs are left out."""
    items = []
    for dataset in UNET["train"]["datasets"]:
        if dataset not in DATASETS:
            raise ValueError(f"unet.train.datasets names {dataset!r}, which is not in datasets")
        if not has_ground_truth(dataset):
            raise ValueError(f"unet.train.datasets: data set {dataset!r} has no ground_truth")
        labels = list_label_files(DATASETS[dataset]["ground_truth"])
        masks = list_label_files(DATASETS[dataset].get("ground_truth_masks"), suffixes=(".png",))
        for name in micrograph_names(dataset):
            if name in labels:
                item = {
                    "name": f"{dataset}/{name}",
                    "micrograph": MICROGRAPHS[dataset][name],
                    "denoised": f"results/{dataset}/denoise/{name}.npz",
                    "labels": labels[name],
                    "diameter": DATASETS[dataset]["particle_diameter"],
                    "invert": DATASETS[dataset].get("particle_contrast") == "bright",
                }
                if UNET["train"]["use_masks"] and name in masks:
                    item["mask"] = masks[name]
                items.append(item)
    if not items:
        raise ValueError("unet.train.datasets holds no labelled micrograph to train on")
    return items


def unet_training_inputs(wildcards):
    items = unet_training_items()
    inputs = {
        "micrographs": [item["micrograph"] for item in items],
        "denoised": [item["denoised"] for item in items],
        "labels": [item["labels"] for item in items],
    }
    inputs["masks"] = [item["mask"] for item in items if "mask" in item]
    return inputs


def unet_pick_settings():
    """Picking settings from the config; null ones come from the model at run time."""
    return {key: UNET[key] for key in ("threshold", "min_distance", "edge_margin")}
