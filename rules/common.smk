# The workflow plan (cryopick/workflow/plan.py: data sets, stages, targets, training items,
# synthetic sets, all from the config) bound to Snakemake: config validation, the Snakemake
# patches, wildcard constraints, and the input and params functions that take a job's
# wildcards. Everything here runs at DAG-build time, so it only lists names and never opens a
# micrograph. Path patterns: cryopick/workflow/paths.py; picking stages: .../stages.py.

import os
import sys

from snakemake.exceptions import WorkflowError
from snakemake.utils import validate

# The DAG build imports this workflow's own cryopick package; jobs find it through the
# symbolic link scripts/cryopick, since Snakemake puts a script's folder on its sys.path.
sys.path.insert(0, workflow.basedir)

from cryopick.settings import config_problems, load_schema  # noqa: E402
from cryopick.workflow import paths  # noqa: E402
from cryopick.workflow.plan import (  # noqa: E402
    WorkflowPlan,
    crf_settings,
    exclusion_filter_settings,
    exclusion_map_settings,
    final_picks_settings,
    preview_excluded_classes,
    report_options,
    adaptation_micrographs,
    adapted_unet_models,
    dataset_unet_model,
    self_training_settings,
    unet_model,
    unet_pick_settings,
    unet_train_settings,
    unet_training_folder,
)
from cryopick.workflow.failures import (  # noqa: E402
    failure_summary,
    recorded_failures,
    retry_token,
)
from cryopick.workflow.snakemake_compat import apply_patches  # noqa: E402

# (DAG-build imports stay light: every cluster job parses this file before its work)
from cryopick.workflow.stages import (  # noqa: E402
    peer_stages,
    rule_files,
    stage_input_name,
    stage_picks,
)

# Data sets named on the command line (--configfile/--config) replace the bundled demo data
# sets instead of being merged with them; every other key merges as usual.
_cli_config = workflow.config_settings.overwrite_config
if "datasets" in _cli_config:
    config["datasets"] = dict(_cli_config["datasets"])

# one line per problem, naming the key, instead of the validator's page of schema
_problems = config_problems(config, load_schema(f"{workflow.basedir}/config/schema.yaml"))
if _problems:
    raise WorkflowError("invalid config:\n" + "\n".join(_problems))
validate(config, "../config/schema.yaml")  # fills in the schema's defaults

# Job groups validated once each, function signatures looked up once per function: one log
# line each, applied or skipped (docs/snakemake_patches.md).
apply_patches()

PLAN = WorkflowPlan(config)
DATASETS = config["datasets"] = PLAN.datasets  # synthetic data sets completed
MICROGRAPHS = PLAN.micrographs


wildcard_constraints:
    dataset=r"[A-Za-z0-9][A-Za-z0-9_.-]*",
    synthetic_set=r"[A-Za-z0-9][A-Za-z0-9_.-]*",
    micrograph=r"[^/]+",
    format="|".join(paths.PICK_FORMATS),


def _of_dataset(value):
    """A params function: ``value(dataset settings)`` for the job's data set."""

    def of_job(wildcards):
        return value(DATASETS[wildcards.dataset])

    return of_job


def _of_synthetic_set(method):
    """A params/input function: the plan's ``method`` on the job's synthetic set."""

    def of_job(wildcards):
        return method(wildcards.synthetic_set)

    return of_job


dataset_pixel_size = _of_dataset(lambda ds: ds.get("pixel_size"))
dataset_diameter = _of_dataset(lambda ds: ds.get("particle_diameter"))
# Bright particles are inverted at denoising so every later stage sees dark particles.
dataset_invert = _of_dataset(lambda ds: ds.get("particle_contrast") == "bright")
dataset_ground_truth = _of_dataset(lambda ds: ds.get("ground_truth"))
dataset_ground_truth_masks = _of_dataset(lambda ds: ds.get("ground_truth_masks"))


def dataset_final_picks(wildcards):
    """The completion records of a data set's final-picks batches."""
    return PLAN.final_picks(wildcards.dataset, BATCHES)


# the settings an empty data set is most often wrong about, for its error message
dataset_scale_settings = _of_dataset(
    lambda ds: {k: ds.get(k) for k in ("particle_diameter", "pixel_size", "particle_contrast")}
)


def dataset_micrograph_names(wildcards):
    return PLAN.micrograph_names(wildcards.dataset)


def dataset_micrograph_files(wildcards):
    """Micrograph name -> file of the job's data set."""
    return dict(MICROGRAPHS[wildcards.dataset])


def dataset_picking_stages(wildcards):
    return list(PLAN.picking_stages(wildcards.dataset))


def source_picks(wildcards):
    """The completion record of the batch of the stage chosen as the source of the final
    picks (every stage shares the data set's batches)."""
    return paths.batch_complete(PLAN.source_stage().picks).format(**wildcards)


def batch_exclusion(wildcards):
    """The exclusion maps of a final-picks batch (none when the stage is off)."""
    if not config["exclusion"]["enabled"]:
        return []
    return paths.batch_complete(paths.EXCLUSION_MAPS).format(**wildcards)


def dataset_exclusion_maps(wildcards):
    return stage_outputs(paths.EXCLUSION_MAPS, wildcards.dataset)


def stage_outputs(pattern, dataset):
    """Every output of a stage on a data set: its batches' completion records."""
    return BATCHES.expand(paths.batch_complete(pattern), dataset)


def metrics_inputs(wildcards):
    """Picks of every stage, the denoised artifacts (frames) and the label files."""
    dataset = wildcards.dataset
    inputs = {
        stage_input_name(stage): stage_outputs(pattern, dataset)
        for stage, pattern in PLAN.picking_stages(dataset).items()
    }
    inputs["denoised"] = BATCHES.expand(paths.batch_complete(paths.DENOISED), dataset)
    names = set(PLAN.micrograph_names(dataset))
    for key, masks in (("labels", False), ("masks", True)):
        files = PLAN.label_files(dataset, masks=masks)
        inputs[key] = [path for name, path in files.items() if name in names]
    return inputs


def dataset_denoised(wildcards):
    """The completion records of a data set's denoised batches."""
    return stage_outputs(paths.DENOISED, wildcards.dataset)


def report_inputs(wildcards):
    return PLAN.report_inputs(BATCHES)


def report_datasets(wildcards):
    return PLAN.report_datasets(BATCHES)


def report_provenance(wildcards):
    """The reproducibility block's facts from the workflow: where it lives, the model, the
    command that rebuilds the report, the U-Net jobs' logs (the device they used)."""
    from cryopick.provenance import rebuild_command

    unet = config["unet"]
    return {
        "repository": workflow.basedir,
        "model": unet_model(config, workflow.basedir) if unet["enabled"] else None,
        "adapted_models": adapted_unet_models(config, PLAN.datasets),
        "command": rebuild_command(
            f"{workflow.basedir}/Snakefile",
            os.getcwd(),
            [os.path.abspath(f) for f in workflow.overwrite_configfiles],
            paths.REPORT_HTML,
        ),
        "log_folders": PLAN.unet_log_folders(),
    }


def all_label_maps(wildcards):
    """Input of the all_label_maps target: the label-map batches of every labelled set."""
    return PLAN.label_map_outputs(BATCHES)


def all_synthetic_outputs(wildcards):
    """Input of the all_synthetic target: every file of every configured synthetic set."""
    return PLAN.synthetic_outputs()


def batch_labelled_micrographs(wildcards):
    """Micrograph -> label file of the labelled micrographs of a batched job."""
    names = BATCHES.micrographs(wildcards.dataset, wildcards.batch)
    return PLAN.labelled_micrographs(wildcards.dataset, names)


def batch_label_files(wildcards):
    return list(batch_labelled_micrographs(wildcards).values())


synthetic_settings = _of_synthetic_set(PLAN.synthetic_settings)
synthetic_seed = _of_synthetic_set(PLAN.synthetic_seed)
synthetic_prefix = _of_synthetic_set(PLAN.synthetic_prefix)
synthetic_set_size = _of_synthetic_set(PLAN.synthetic_size)
synthetic_volume_files = _of_synthetic_set(PLAN.synthetic_volume_files)


def synthetic_index(wildcards):
    return PLAN.synthetic_index(wildcards.synthetic_set, wildcards.micrograph)


def get_unet_model(wildcards):
    """The checkpoint of a data set's U-Net maps (the one adapted to it under
    unet.self_training)."""
    return dataset_unet_model(config, workflow.basedir, wildcards.dataset)


def get_adaptation_micrographs(wildcards):
    """The micrographs a data set's model adapts on (unet.self_training.micrographs)."""
    return adaptation_micrographs(list(MICROGRAPHS[wildcards.dataset]), config)


def get_adaptation_inputs(wildcards):
    """Those micrographs' files and the denoise batches that hold them."""
    names = get_adaptation_micrographs(wildcards)
    batches = sorted({BATCHES.batch_of(wildcards.dataset, n) for n in names})
    denoised = paths.batch_complete(paths.DENOISED)
    return {
        "micrographs": PLAN.micrograph_inputs(wildcards.dataset, names),
        "denoised": [denoised.format(dataset=wildcards.dataset, batch=b) for b in batches],
        "model": unet_model(config, workflow.basedir),
    }


def batch_micrograph_paths(wildcards):
    """The input files of the micrographs of a batched job, in the batch's order, less the
    missing ones (their job records the error: WorkflowPlan.micrograph_inputs)."""
    names = BATCHES.micrographs(wildcards.dataset, wildcards.batch)
    return PLAN.micrograph_inputs(wildcards.dataset, names)


def batch_micrograph_files(wildcards):
    """Micrograph name -> file of a batched job, missing files included (for their errors)."""
    files = MICROGRAPHS[wildcards.dataset]
    return {name: files[name] for name in BATCHES.micrographs(wildcards.dataset, wildcards.batch)}


def unet_training_params(wildcards):
    """Training items, evaluated only when the train_unet rule is used."""
    return PLAN.training_items(BATCHES.batch_of)


def unet_training_inputs(wildcards):
    return PLAN.training_inputs(BATCHES.batch_of, workflow.basedir)


def final_picks_retry(wildcards):
    """Params of the final picks: a new value for a batch with failed micrographs, so that a
    rerun redoes it and lists them again (cryopick.workflow.failures.retry_token)."""
    return retry_token(paths.batch_complete(paths.FINAL_PICKS).format(**wildcards))


def print_failed_micrographs():
    """The micrographs of this run that failed, one line each, at the very end; returns how
    many."""
    failures = recorded_failures(MICROGRAPHS, BATCHES)
    if failures:
        print(failure_summary(failures), file=sys.stderr)
    return len(failures)


def end_with_failed_micrographs():
    """onsuccess: every job ran, but a run with failed micrographs is not a success: list them
    and exit non-zero, as Snakemake does for failed jobs under --keep-going."""
    failed = print_failed_micrographs()
    if failed:
        raise WorkflowError(f"{failed} micrograph(s) failed (listed above)")
