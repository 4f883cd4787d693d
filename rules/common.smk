# Helpers shared by all rules: config validation, data-set listing, per-wildcard lookups.
# Everything here runs at DAG-build time, so it only lists names and never opens a micrograph.

import os
import sys

from snakemake.utils import validate

# The DAG build imports this workflow's own cryopick package; jobs find it through the
# symbolic link scripts/cryopick, since Snakemake puts a script's folder on its sys.path.
sys.path.insert(0, workflow.basedir)

from cryopick.datasets import list_label_files, list_micrographs  # noqa: E402
from cryopick.io import InputError  # noqa: E402
from cryopick.metrics import stage_input_name  # noqa: E402
from cryopick.workflow.snakemake_compat import apply_patches  # noqa: E402
from cryopick.synthetic import (  # noqa: E402
    SyntheticSettings,
    micrograph_outputs,
    synthetic_micrograph_names,
)

# Data sets named on the command line (--configfile/--config) replace the bundled demo data
# sets instead of being merged with them; every other key merges as usual.
_cli_config = workflow.config_settings.overwrite_config
if "datasets" in _cli_config:
    config["datasets"] = dict(_cli_config["datasets"])

validate(config, "../config/schema.yaml")

# Job groups validated once each, function signatures looked up once per function: one log
# line each, applied or skipped (docs/snakemake_patches.md).
apply_patches()

DATASETS = config["datasets"]
SYNTHETIC = config.get("synthetic") or {}
for _name, _spec in SYNTHETIC.items():  # cross-key checks the schema cannot express
    try:
        SyntheticSettings.from_config(_spec)
    except InputError as exc:
        raise InputError(f"synthetic set {_name!r}: {exc}") from None


def synthetic_folder(synthetic_set):
    return f"results/synthetic/{synthetic_set}"


def synthetic_names(synthetic_set):
    """Micrograph names of a synthetic set, from the config alone (no file exists yet)."""
    spec = SYNTHETIC[synthetic_set]
    return synthetic_micrograph_names(spec.get("name_prefix") or synthetic_set,
                                      spec.get("n_micrographs", 3))


def synthetic_outputs(synthetic_set, name):
    """Every file the synthesize rule writes for one micrograph (key -> path)."""
    return {k: str(v) for k, v in
            micrograph_outputs(synthetic_folder(synthetic_set), name).items()}


def _list_dataset(name, ds):
    """Micrograph name -> path; a synthetic data set points at its set's (future) files."""
    synthetic_set = ds.get("synthetic")
    if not synthetic_set:
        return list_micrographs(ds["micrographs"], name)
    if synthetic_set not in SYNTHETIC:
        raise InputError(f"dataset {name!r}: synthetic set {synthetic_set!r} is not defined "
                         f"under synthetic: (defined: {sorted(SYNTHETIC)})")
    folder = synthetic_folder(synthetic_set)
    ds["ground_truth"] = f"{folder}/coordinates"
    # Dice against discs at the exact centres, as for CryoPPP's disc masks, so that scores
    # compare across data sets (the particles' true supports are in {folder}/masks)
    ds["ground_truth_masks"] = None
    if ds.get("pixel_size") is None:
        ds["pixel_size"] = SYNTHETIC[synthetic_set].get("pixel_size", 1.77)
    return {n: synthetic_outputs(synthetic_set, n)["micrograph"]
            for n in synthetic_names(synthetic_set)}


MICROGRAPHS = {name: _list_dataset(name, ds) for name, ds in DATASETS.items()}


wildcard_constraints:
    dataset=r"[A-Za-z0-9][A-Za-z0-9_.-]*",
    synthetic_set=r"[A-Za-z0-9][A-Za-z0-9_.-]*",
    micrograph=r"[^/]+",
    format=r"csv|box",


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


# picks.source -> the stage whose picks become the final picks
SOURCE_STAGES = {"baseline": "baseline", "unet": "unet", "crf": "unet+crf",
                 "sam": "sam+postprocessing"}
# The denoised canvases: one folder per batch of micrographs, {micrograph}.npz inside.
DENOISE_BATCH = "results/{dataset}/denoise/batch_{batch}"
# Per-stage picks: a batch directory pattern ({batch}; {micrograph}.star inside) for the
# batched stages, a per-micrograph file pattern for the others.
STAGE_PICKS = {
    "baseline": "results/{dataset}/baseline/batch_{batch}",
    "unet": "results/{dataset}/unet_picks/batch_{batch}",
    "unet+crf": "results/{dataset}/crf_picks/{micrograph}.star",
    "sam": "results/{dataset}/sam_raw_picks/{micrograph}.star",
    "sam+postprocessing": "results/{dataset}/sam_picks/{micrograph}.star",
}


def enabled_stages():
    """Comparison stages the config turns on (SAM only with a checkpoint file)."""
    stages = ["baseline"]
    if config["unet"]["enabled"]:
        stages.append("unet")
        if config["crf"]["enabled"]:
            stages.append("unet+crf")
        if SAM_ENABLED:
            stages += ["sam", "sam+postprocessing"]
    return stages


def source_stage():
    """The stage picks.source names, refused at DAG build when the config cannot run it."""
    source = config["picks"]["source"]
    if source != "baseline" and not config["unet"]["enabled"]:
        raise InputError(f"picks.source {source!r} needs unet.enabled: true (or use baseline)")
    if source == "sam" and not SAM_ENABLED:
        raise InputError("picks.source 'sam' needs SAM weights: "
                         + unavailable_message(config["sam"]["checkpoint"]))
    return SOURCE_STAGES[source]


def picking_stages(dataset):
    """Picking stage -> per-micrograph picks pattern, for every stage this config runs on
    ``dataset``; each stage gets a row in summary.tsv, the final picks last. A data set without
    ground truth runs only the source stage: the other stages could not be scored."""
    source = source_stage()
    if has_ground_truth(dataset):
        names = enabled_stages()
        if source not in names:
            names.append(source)
    else:
        names = [source]
    stages = {name: STAGE_PICKS[name] for name in STAGE_PICKS if name in names}
    stages["final"] = "results/{dataset}/picks/{micrograph}.star"
    return stages


def dataset_picking_stages(wildcards):
    return list(picking_stages(wildcards.dataset))


def source_picks(wildcards):
    """Picks of the stage chosen as the source of the final picks: the micrograph's file, or
    the batch directory that holds it."""
    pattern = STAGE_PICKS[source_stage()]
    if "{batch}" in pattern:
        return BATCHES.batch_dir(pattern)(wildcards)
    return pattern.format(**wildcards)


def stage_outputs(pattern, dataset):
    """Every output of a stage on a data set: its batch directories, or per-micrograph files."""
    if "{batch}" in pattern:
        return BATCHES.expand(pattern, dataset)
    return per_micrograph(pattern, dataset)


def crf_settings():
    """The CRF settings that change the refined map (not the on/off switch)."""
    return {k: v for k, v in config["crf"].items() if k != "enabled"}


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
    inputs = {stage_input_name(stage): stage_outputs(pattern, dataset)
              for stage, pattern in picking_stages(dataset).items()}
    inputs["denoised"] = BATCHES.expand(DENOISE_BATCH, dataset)
    names = set(micrograph_names(dataset))
    labels = label_files(dataset)
    inputs["labels"] = [path for name, path in labels.items() if name in names]
    masks = label_files(dataset, masks=True)
    inputs["masks"] = [path for name, path in masks.items() if name in names]
    return inputs


def label_files(dataset, masks=False):
    """Micrograph name -> ground-truth coordinate file (or mask .png with ``masks``).

    A synthetic data set's files are named from the config (they may not exist yet: the
    synthesize rule makes them); a real one's are listed from its folder.
    """
    synthetic_set = DATASETS[dataset].get("synthetic")
    if synthetic_set:
        if masks:  # scored against discs, see _list_dataset
            return {}
        return {n: synthetic_outputs(synthetic_set, n)["coordinates"]
                for n in micrograph_names(dataset)}
    if masks:
        return list_label_files(DATASETS[dataset].get("ground_truth_masks"), suffixes=(".png",))
    return list_label_files(DATASETS[dataset].get("ground_truth"))


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
    for synthetic_set in synthetic_sets_in_use():
        outputs.append(f"{synthetic_folder(synthetic_set)}/parameters.json")
    return outputs


def synthetic_sets_in_use():
    return sorted({ds["synthetic"] for ds in DATASETS.values() if ds.get("synthetic")})


# synthetic data sets (rules/synthetic.smk)


def synthetic_settings(wildcards):
    """The physics of one set (SyntheticSettings keys): a change reruns its micrographs."""
    spec = SYNTHETIC[wildcards.synthetic_set]
    return {k: v for k, v in spec.items() if k not in ("n_micrographs", "seed", "name_prefix")}


def synthetic_seed(wildcards):
    return SYNTHETIC[wildcards.synthetic_set].get("seed", 0)


def synthetic_index(wildcards):
    """Index of a micrograph in its set (its seed is derived from the set's seed and this)."""
    names = synthetic_names(wildcards.synthetic_set)
    if wildcards.micrograph not in names:
        raise InputError(f"{wildcards.micrograph!r} is not a micrograph of synthetic set "
                         f"{wildcards.synthetic_set!r} ({names[0]} .. {names[-1]})")
    return names.index(wildcards.micrograph)


def synthetic_prefix(wildcards):
    return SYNTHETIC[wildcards.synthetic_set].get("name_prefix") or wildcards.synthetic_set


def synthetic_volume_files(wildcards):
    return SYNTHETIC[wildcards.synthetic_set].get("volume_files", [])


# label maps (rules/labels.smk)


def label_file(wildcards):
    """The ground-truth coordinate file of one micrograph (CryoPPP .csv, RELION .star, .box)."""
    path = label_files(wildcards.dataset).get(wildcards.micrograph)
    if path is None:
        raise InputError(f"dataset {wildcards.dataset!r}: no ground-truth file for micrograph "
                         f"{wildcards.micrograph!r}")
    return path


def all_label_map_outputs():
    outputs = []
    for dataset in DATASETS:
        if has_ground_truth(dataset):
            labelled = label_files(dataset)
            outputs += [f"results/{dataset}/labels/{name}.png"
                        for name in micrograph_names(dataset) if name in labelled]
    return outputs


# ----------------------------------------------------------------------------------------------
# U-Net (rules/unet.smk)
# ----------------------------------------------------------------------------------------------

UNET = config["unet"]
UNET_TRAINING = f"results/unet_training/{UNET['train']['name']}"
UNET_TRAINED_MODEL = f"{UNET_TRAINING}/model.pt"
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


# minutes of one inference job: model start-up plus up to ~1 min per micrograph on a CPU
UNET_BATCH_RUNTIME = 10 + config["batching"]["size"]


def batch_micrograph_paths(wildcards):
    """The input files of the micrographs of a batched job, in the batch's order."""
    files = MICROGRAPHS[wildcards.dataset]
    return [files[name] for name in BATCHES.micrographs(wildcards.dataset, wildcards.batch)]


# minutes of the training job: its own time limit plus loading and the final evaluation
UNET_TRAIN_RUNTIME = int(UNET["train"]["max_minutes"]) + 30


def unet_training_params(wildcards):
    """Training items, evaluated only when the train_unet rule is used."""
    return unet_training_items()


def unet_train_settings():
    """The training settings that change the weights (not the data-set bookkeeping)."""
    return {k: v for k, v in UNET["train"].items() if k not in ("name", "datasets", "use_masks")}


def synthetic_set_size(wildcards):
    return len(synthetic_names(wildcards.synthetic_set))


def unet_training_items():
    """(dataset/micrograph name, micrograph, denoised canvas, label file, diameter in A[, mask])
    of every labelled micrograph of the training data sets, real or synthetic; unlabelled
    micrographs are left out."""
    items = []
    for dataset in UNET["train"]["datasets"]:
        if dataset not in DATASETS:
            raise InputError(f"unet.train.datasets names {dataset!r}, which is not in datasets")
        if not has_ground_truth(dataset):
            raise InputError(f"unet.train.datasets: data set {dataset!r} has no ground_truth")
        labels = label_files(dataset)
        synthetic_set = DATASETS[dataset].get("synthetic")
        if synthetic_set:  # the particles' true supports
            masks = {n: synthetic_outputs(synthetic_set, n)["mask"] for n in labels}
        else:
            masks = label_files(dataset, masks=True)
        for name in micrograph_names(dataset):
            if name in labels:
                item = {
                    "name": f"{dataset}/{name}",
                    "micrograph": MICROGRAPHS[dataset][name],
                    "denoised_batch": BATCHES.expand_one(DENOISE_BATCH, dataset, name),
                    "labels": labels[name],
                    "diameter": DATASETS[dataset]["particle_diameter"],
                    "invert": DATASETS[dataset].get("particle_contrast") == "bright",
                }
                if UNET["train"]["use_masks"] and name in masks:
                    item["mask"] = masks[name]
                items.append(item)
    if not items:
        raise InputError("unet.train.datasets holds no labelled micrograph to train on")
    return items


def unet_training_inputs(wildcards):
    items = unet_training_items()
    inputs = {
        "micrographs": [item["micrograph"] for item in items],
        "denoised": sorted({item["denoised_batch"] for item in items}),
        "labels": [item["labels"] for item in items],
    }
    inputs["masks"] = [item["mask"] for item in items if "mask" in item]
    return inputs


def unet_pick_settings():
    """Picking settings from the config; null ones come from the model at run time."""
    return {key: UNET[key] for key in ("threshold", "min_distance", "edge_margin")}
