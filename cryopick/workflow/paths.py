"""Every path pattern the workflow writes, stated once: rules declare these, the planning
functions (cryopick.workflow.plan) and the scripts format them.

Wildcards: ``{dataset}``, ``{micrograph}``, ``{batch}`` (a batch id, cryopick.batching),
``{synthetic_set}``, ``{format}``. A batched stage writes one folder per batch of micrographs
(:func:`batch_folder`) with one artifact per micrograph inside; a per-micrograph stage one file
per micrograph (:func:`per_micrograph`). Paths are relative to the working directory.
"""

from __future__ import annotations

RESULTS = "results"
DATASET = f"{RESULTS}/{{dataset}}"
# the unit of a batched job (its folder, its log, its benchmark) and of a per-micrograph one
BATCH = "batch_{batch}"
MICROGRAPH = "{micrograph}"


def batch_folder(stage: str, root: str = DATASET) -> str:
    """The folder of one batch of a batched stage's artifacts ({micrograph}.* inside)."""
    return f"{root}/{stage}/{BATCH}"


def batch_complete(folder: str) -> str:
    """The record a batched job writes last beside its folder (cryopick.batching
    .completion_record): a batched rule's second output."""
    return f"{folder}.complete"


def per_micrograph(stage: str, suffix: str, root: str = DATASET) -> str:
    """One micrograph's artifact of a per-micrograph stage."""
    return f"{root}/{stage}/{MICROGRAPH}{suffix}"


def log(rule: str, unit: str | None = MICROGRAPH, root: str = DATASET) -> str:
    """A job's log: ``unit`` is {micrograph} or :data:`BATCH`; None for a rule with one job
    per ``root``."""
    return f"{root}/logs/{rule}.log" if unit is None else f"{root}/logs/{rule}/{unit}.log"


def benchmark(rule: str, unit: str | None = MICROGRAPH, root: str = DATASET) -> str:
    """A job's Snakemake benchmark file, under :func:`benchmarks` (read by the report)."""
    folder = benchmarks(root)
    return f"{folder}/{rule}.tsv" if unit is None else f"{folder}/{rule}/{unit}.tsv"


def benchmarks(root: str = DATASET) -> str:
    """The folder of every benchmark file of a data set: {rule}/{unit}.tsv inside."""
    return f"{root}/benchmarks"


# per data set
BATCH_MANIFEST = f"{DATASET}/batches.tsv"  # micrograph -> batch, cryopick.batching
DENOISED = batch_folder("denoise")  # {micrograph}.npz: the denoised canvas
UNET_MAPS = batch_folder("unet")  # {micrograph}.npz: U-Net probability and centre maps
SAM_MASKS = batch_folder("sam")  # {micrograph}.json.gz: SAM masks
CRF_MAPS = batch_folder("crf")  # {micrograph}.npz: the CRF-refined map
EXCLUSION_MAPS = batch_folder("exclusion")  # {micrograph}.npz: class codes (cryopick.exclusion)
PREVIEWS = batch_folder("previews")  # {micrograph}.jpg: the report's image (cryopick.previews)


def peer_folder(peer: str) -> str:
    """Where a peer picker's picks go under results/{dataset}/ (its stage's folder)."""
    return f"peers/{peer}"


PEER_PICKS = batch_folder(peer_folder("{peer}"))  # {micrograph}.star: a peer's picks
# The final picks: one job per batch writes them (in every configured format) into its batch
# folder, then publishes each micrograph's file at PUBLISHED_PICKS (the interface contract: one
# RELION coordinate STAR per micrograph, stable names), listed by PICKS_INDEX.
FINAL_PICKS = batch_folder("final_picks")  # {micrograph}.star (.csv, .box) inside
# with exclusion on, the final picks before the exclusion filter, beside them (for metrics)
BEFORE_EXCLUSION_SUFFIX = ".before_exclusion.star"
PUBLISHED_PICKS = per_micrograph("picks", ".star")
PUBLISHED_FORMATTED_PICKS = f"{DATASET}/picks_{{format}}/{MICROGRAPH}.{{format}}"
PICK_FORMATS = ("csv", "box")  # the extra formats (picks.formats)
PICK_COUNTS = f"{DATASET}/pick_counts.tsv"  # picks per micrograph, flagged (cryopick.pick_counts)
PICK_SCORES = f"{DATASET}/pick_scores.tsv"  # histogram of the final picks' figures of merit
PICKS_INDEX = f"{DATASET}/autopick.star"  # RELION coordinate index of this run's picks
MICROGRAPHS_QUALITY = f"{DATASET}/micrographs_quality.tsv"  # a verdict per micrograph
# unet.self_training: the model adapted to the data set, and the pseudo-labels it learned from
ADAPTED_UNET = f"{DATASET}/unet_adapted"
ADAPTED_UNET_MODEL = f"{ADAPTED_UNET}/model.pt"
PSEUDO_LABELS = f"{ADAPTED_UNET}/pseudo_labels"  # {micrograph}.star: the confident picks
GOOD_MICROGRAPHS = f"{DATASET}/micrographs_good.star"  # RELION micrographs STAR of the good
CLASSIFY2D = f"{DATASET}/classify2d"  # 2D classification of a sample of the final picks
CLASS_AVERAGES = f"{CLASSIFY2D}/classes.png"  # the class averages, most populated first
CLASS_TABLE = f"{CLASSIFY2D}/classes.tsv"  # particles per class
STALE = f"{DATASET}/stale"  # picks of micrographs no longer in the data set, moved here


def published_picks(dataset: str, micrograph: str, fmt: str = "star") -> str:
    """Where a micrograph's final picks are published, as RELION STAR or an extra format."""
    if fmt == "star":
        return PUBLISHED_PICKS.format(dataset=dataset, micrograph=micrograph)
    return PUBLISHED_FORMATTED_PICKS.format(dataset=dataset, micrograph=micrograph, format=fmt)


def published_picks_folders(dataset: str) -> list[str]:
    """The folders users import the final picks from, one per format: what stale picks are
    moved out of."""
    return [published_picks(dataset, "_", fmt).rsplit("/", 1)[0] for fmt in ("star", *PICK_FORMATS)]


LABEL_MAPS = batch_folder("labels")  # {micrograph}.png: training label maps, labelled ones
METRICS = f"{DATASET}/metrics"
METRICS_SUMMARY = f"{METRICS}/summary.tsv"
METRICS_PER_MICROGRAPH = f"{METRICS}/per_micrograph.tsv"
METRICS_CURVES = f"{METRICS}/precision_recall.tsv"  # per stage, over the score threshold
METRICS_SCORE_HISTOGRAMS = f"{METRICS}/score_histograms.tsv"  # per stage

# across data sets
REPORT_TSV = f"{RESULTS}/report/benchmark.tsv"
REPORT_HTML = f"{RESULTS}/report/index.html"
REPORT_ASSETS = f"{RESULTS}/report/assets"  # the page's images (plots, previews, classes)
UNET_TRAINING = f"{RESULTS}/unet_training/{{name}}"  # unet.train.name

# synthetic data sets, in the layout of a real data set (cryopick.synthetic.micrograph_outputs)
SYNTHETIC_SET = f"{RESULTS}/synthetic/{{synthetic_set}}"
SYNTHETIC_PARAMETERS = f"{SYNTHETIC_SET}/parameters.json"


def synthetic_files(
    synthetic_set: str = "{synthetic_set}", micrograph: str = MICROGRAPH
) -> dict[str, str]:
    """Every file the synthesize rule writes for one micrograph (key -> path); with the
    defaults, the rule's output patterns."""
    from cryopick.synthetic_settings import micrograph_outputs

    folder = SYNTHETIC_SET.format(synthetic_set=synthetic_set)
    return {key: str(path) for key, path in micrograph_outputs(folder, micrograph).items()}
