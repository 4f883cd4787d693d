"""The validated config turned into what the workflow does, without Snakemake: the data sets and
their micrographs, the picking stages per data set, the targets, the U-Net's training items and
the synthetic sets. rules/common.smk builds one :class:`WorkflowPlan` at DAG build and binds its
methods to the jobs' wildcards; everything here only lists names and never opens a micrograph.
"""

from __future__ import annotations

import os
from typing import Callable, Protocol

from cryopick.datasets import list_label_files, list_micrographs
from cryopick.io import InputError
from cryopick.synthetic_settings import SyntheticSettings, synthetic_micrograph_names
from cryopick.workflow import paths, stages
from cryopick.workflow.stages import Stage


class Batches(Protocol):
    """What the plan needs of the batches (cryopick.batching.BatchPlan)."""

    def expand(self, pattern: str, dataset: str) -> list[str]: ...


# keys of a synthetic set that are bookkeeping, not physics (a change of these reruns nothing)
SYNTHETIC_BOOKKEEPING = ("n_micrographs", "seed", "name_prefix")


def _without(section: dict, keys) -> dict:
    return {k: v for k, v in section.items() if k not in keys}


def crf_settings(config: dict) -> dict:
    """The CRF settings that change the refined map (not the on/off switch)."""
    return _without(config["crf"], ("enabled",))


def final_picks_settings(config: dict) -> dict:
    """The picks settings that change the final picks (not the extra output formats)."""
    return _without(config["picks"], ("formats",))


def exclusion_map_settings(config: dict) -> dict:
    """The exclusion settings that change the maps (not the pick filter or the verdicts)."""
    return _without(
        config["exclusion"], ("enabled", "action", "dilation", "classes", "populated", "verdict")
    )


def exclusion_filter_settings(config: dict) -> dict | None:
    """What the final picks need of the exclusion stage (None when it is off): a change of
    these reruns the final picks, not the maps."""
    section = config["exclusion"]
    if not section["enabled"]:
        return None
    settings = {key: section[key] for key in ("action", "dilation", "classes", "populated")}
    if config["picks"]["source"] == "baseline":
        # the blob detector picks on anything dark: its picks cannot vouch for an area
        settings["populated"] = 0.0
    return settings


def preview_excluded_classes(config: dict) -> list[str] | None:
    """The exclusion classes the previews shade (those that exclude picks); None when the
    exclusion stage is off."""
    section = config["exclusion"]
    return list(section["classes"]) if section["enabled"] else None


def report_options(config: dict, met: dict | None = None) -> dict:
    """What the report job needs of report: (cryopick.report.ReportOptions), with the peers
    that were asked for but cannot run here and why."""
    keys = ("title", "gallery_size", "gallery_flagged", "peers", "classify2d")
    options = {key: config["report"][key] for key in keys}
    options["skipped_peers"] = stages.skipped_peers(config, met)
    return options


def unet_train_settings(config: dict, basedir: str = ".") -> dict:
    """The training settings that change the weights (not the data-set bookkeeping); the
    model to fine-tune from (initial_model) as the file the job reads (see model_file)."""
    settings = _without(config["unet"]["train"], ("name", "datasets", "use_masks"))
    if settings.get("initial_model"):
        settings["initial_model"] = model_file(settings["initial_model"], basedir)
    return settings


def unet_pick_settings(config: dict) -> dict:
    """Picking settings from the config; null ones come from the model at run time."""
    return {key: config["unet"][key] for key in ("threshold", "min_distance", "edge_margin")}


def unet_training_folder(config: dict) -> str:
    return paths.UNET_TRAINING.format(name=config["unet"]["train"]["name"])


def unet_model(config: dict, basedir: str) -> str:
    """The checkpoint inference uses: the model train_unet makes (model: train) or a file; a
    relative path that does not exist from the working directory is looked up in ``basedir``
    (the repository, where the shipped default lives)."""
    model = config["unet"]["model"]
    if model == "train":
        return f"{unet_training_folder(config)}/model.pt"
    return model_file(model, basedir)


def self_training_settings(config: dict) -> dict:
    """What a data set's adaptation depends on (unet.self_training less the switch)."""
    return _without(config["unet"]["self_training"], ("enabled",))


def dataset_unet_model(config: dict, basedir: str, dataset: str) -> str:
    """The checkpoint a data set's U-Net maps come from: the model adapted to it
    (unet.self_training.enabled), else :func:`unet_model`."""
    if config["unet"]["self_training"]["enabled"]:
        return paths.ADAPTED_UNET_MODEL.format(dataset=dataset)
    return unet_model(config, basedir)


def adapted_unet_models(config: dict, datasets) -> dict[str, str]:
    """Data set -> the checkpoint unet.self_training adapts to it; empty when it is off."""
    unet = config["unet"]
    if not (unet["enabled"] and unet["self_training"]["enabled"]):
        return {}
    return {dataset: paths.ADAPTED_UNET_MODEL.format(dataset=dataset) for dataset in datasets}


def adaptation_micrographs(names: list[str], config: dict) -> list[str]:
    """The micrographs a data set adapts on: the first unet.self_training.micrographs in name
    order, so that adding micrographs later does not change the model."""
    return sorted(names)[: int(config["unet"]["self_training"]["micrographs"])]


def model_file(path: str, basedir: str) -> str:
    """A model path as given, or, when a relative one does not exist from the working
    directory, the file of that name in ``basedir`` (the repository, where shipped models
    live)."""
    if not os.path.isabs(path) and not os.path.exists(path):
        shipped = os.path.join(basedir, path)
        if os.path.exists(shipped):
            return shipped
    return path


class WorkflowPlan:
    """The data sets, stages, targets and synthetic sets of one validated config.

    ``datasets`` are the config's entries, a synthetic data set's completed with its set's
    ground truth and pixel size; ``micrographs`` maps data set -> micrograph name -> file (a
    synthetic set's files need not exist yet: the synthesize rule makes them).
    """

    def __init__(self, config: dict):
        self.config = config
        self.synthetic = config.get("synthetic") or {}
        self._synthetic_settings = {}
        for name, spec in self.synthetic.items():  # cross-key checks the schema cannot express
            try:
                self._synthetic_settings[name] = SyntheticSettings.from_config(spec)
            except InputError as exc:
                raise InputError(f"synthetic set {name!r}: {exc}") from None
        self.met = stages.requirements_met(config)
        self.datasets: dict[str, dict] = {}
        self.micrographs: dict[str, dict[str, str]] = {}
        for name, ds in config["datasets"].items():
            self.datasets[name], self.micrographs[name] = self._list_dataset(name, ds)

    # ------------------------------------------------------------------ data sets

    def _list_dataset(self, name: str, ds: dict) -> tuple[dict, dict[str, str]]:
        synthetic_set = ds.get("synthetic")
        if not synthetic_set:
            return dict(ds), list_micrographs(ds["micrographs"], name)
        if synthetic_set not in self.synthetic:
            raise InputError(
                f"dataset {name!r}: synthetic set {synthetic_set!r} is not defined "
                f"under synthetic: (defined: {sorted(self.synthetic)})"
            )
        ds = dict(ds)
        ds["ground_truth"] = os.path.dirname(
            self.synthetic_files(synthetic_set, "_")["coordinates"]
        )
        # Dice against discs at the exact centres, as for CryoPPP's disc masks, so that scores
        # compare across data sets (the particles' true supports are in the set's masks/)
        ds["ground_truth_masks"] = None
        if ds.get("pixel_size") is None:
            ds["pixel_size"] = self._synthetic_settings[synthetic_set].pixel_size
        return ds, {
            n: self.synthetic_files(synthetic_set, n)["micrograph"]
            for n in self.synthetic_names(synthetic_set)
        }

    def micrograph_names(self, dataset: str) -> list[str]:
        return list(self.micrographs[dataset])

    def micrograph_inputs(self, dataset: str, names: list[str]) -> list[str]:
        """The files of ``names`` that a job may declare as input: a user's micrograph that is
        missing (a dangling symbolic link, a path in a list file that is gone, an unmounted
        share) is left out, so that the DAG still builds and the job that reads it records an
        error for that micrograph alone; a synthetic set's files are made by a rule and kept."""
        files = self.micrographs[dataset]
        if self.datasets[dataset].get("synthetic"):
            return [files[n] for n in names]
        return [files[n] for n in names if os.path.exists(files[n])]

    def has_ground_truth(self, dataset: str) -> bool:
        return bool(self.datasets[dataset].get("ground_truth"))

    def scored_datasets(self) -> list[str]:
        return [name for name in self.datasets if self.has_ground_truth(name)]

    def label_files(self, dataset: str, masks: bool = False) -> dict[str, str]:
        """Micrograph name -> ground-truth coordinate file (or mask .png with ``masks``).

        A synthetic data set's files are named from the config (they may not exist yet: the
        synthesize rule makes them); a real one's are listed from its folder.
        """
        ds = self.datasets[dataset]
        synthetic_set = ds.get("synthetic")
        if synthetic_set:
            if masks:  # scored against discs, see _list_dataset
                return {}
            return {
                n: self.synthetic_files(synthetic_set, n)["coordinates"]
                for n in self.micrograph_names(dataset)
            }
        if masks:
            return list_label_files(ds.get("ground_truth_masks"), suffixes=(".png",))
        return list_label_files(ds.get("ground_truth"))

    def label_file(self, dataset: str, micrograph: str) -> str:
        """The ground-truth coordinate file of one micrograph (CryoPPP .csv, .star, .box)."""
        path = self.label_files(dataset).get(micrograph)
        if path is None:
            raise InputError(
                f"dataset {dataset!r}: no ground-truth file for micrograph {micrograph!r}"
            )
        return path

    # ------------------------------------------------------------------ stages and targets

    def enabled_stages(self) -> list[str]:
        return stages.enabled_stages(self.config, self.met)

    def source_stage(self) -> Stage:
        return stages.source_stage(self.config, self.met)

    def picking_stages(self, dataset: str) -> dict[str, str]:
        """Stage -> picks pattern of every stage run on ``dataset`` (stages.picking_stages)."""
        return stages.picking_stages(self.config, self.has_ground_truth(dataset), self.met)

    def pick_count_tables(self) -> list[str]:
        """The pick-count check of every data set (cryopick.pick_counts)."""
        return [paths.PICK_COUNTS.format(dataset=d) for d in self.datasets]

    def final_picks(self, dataset: str, batches: "Batches") -> list[str]:
        """The completion record of every batch of a data set's final picks."""
        return batches.expand(paths.batch_complete(paths.FINAL_PICKS), dataset)

    def quality_tables(self) -> list[str]:
        """The micrograph verdicts of every data set, when the exclusion stage is on."""
        if not self.config.get("exclusion", {}).get("enabled"):
            return []
        return [
            path.format(dataset=d)
            for d in self.datasets
            for path in (paths.MICROGRAPHS_QUALITY, paths.GOOD_MICROGRAPHS)
        ]

    def report_summaries(self) -> list[str]:
        return [paths.METRICS_SUMMARY.format(dataset=d) for d in self.scored_datasets()]

    def classify2d_outputs(self) -> list[str]:
        """The 2D classes of every data set, when report.classify2d is on."""
        if not self.config["report"]["classify2d"]:
            return []
        return [
            path.format(dataset=d)
            for d in self.datasets
            for path in (paths.CLASS_AVERAGES, paths.CLASS_TABLE)
        ]

    def report_datasets(self, batches: "Batches") -> dict[str, dict]:
        """Per data set what the report job reads besides the files found by pattern
        (cryopick.report.DatasetInputs): its diameter, its ground truth and its batches'
        completion records of previews, denoised canvases and final picks."""
        return {
            name: {
                "diameter": ds["particle_diameter"],
                "ground_truth": ds.get("ground_truth") or None,
                "previews": batches.expand(paths.batch_complete(paths.PREVIEWS), name),
                "denoised": batches.expand(paths.batch_complete(paths.DENOISED), name),
                "final": self.final_picks(name, batches),
            }
            for name, ds in self.datasets.items()
        }

    def unet_log_folders(self) -> list[str]:
        """The folders of every data set's U-Net job logs (they name the device used)."""
        return [
            os.path.dirname(paths.log("unet_predict", "_").format(dataset=d)) for d in self.datasets
        ]

    def report_inputs(self, batches: "Batches") -> dict[str, list[str]]:
        """The report job's inputs, by kind."""
        scored = self.scored_datasets()
        inputs = {
            "summaries": self.report_summaries(),
            "curves": [paths.METRICS_CURVES.format(dataset=d) for d in scored],
            "histograms": [paths.METRICS_SCORE_HISTOGRAMS.format(dataset=d) for d in scored],
            "pick_counts": self.pick_count_tables(),
            "pick_scores": [paths.PICK_SCORES.format(dataset=d) for d in self.datasets],
            "quality": self.quality_tables(),
            "classes": self.classify2d_outputs(),
        }
        for name, files in self.report_datasets(batches).items():
            for kind in ("previews", "denoised", "final"):
                inputs.setdefault(kind, []).extend(files[kind])
        return inputs

    def targets(self, batches: "Batches") -> list[str]:
        """What a plain run makes: final picks (their batches, which publish them in every
        format), metrics, the report and the parameters of every synthetic set in use."""
        outputs = []
        for dataset in self.datasets:
            outputs += self.final_picks(dataset, batches)
        outputs += self.pick_count_tables()
        outputs += self.quality_tables()
        outputs += self.report_summaries()
        outputs += [paths.REPORT_TSV, paths.REPORT_HTML]
        outputs += [
            paths.SYNTHETIC_PARAMETERS.format(synthetic_set=s) for s in self.synthetic_sets_in_use()
        ]
        return outputs

    def label_map_outputs(self, batches: Batches) -> list[str]:
        """The label-map batches (completion records) of every data set with ground truth."""
        return [
            record
            for dataset in self.scored_datasets()
            for record in batches.expand(paths.batch_complete(paths.LABEL_MAPS), dataset)
        ]

    def labelled_micrographs(self, dataset: str, names: list[str]) -> dict[str, str]:
        """Micrograph -> label file for those of ``names`` that have one, in order."""
        labels = self.label_files(dataset)
        return {name: labels[name] for name in names if name in labels}

    # ------------------------------------------------------------------ U-Net training

    def training_items(self, batch_of: Callable[[str, str], str]) -> list[dict]:
        """(dataset/micrograph name, micrograph, denoised batch, label file, diameter in A,
        invert[, mask]) of every labelled micrograph of the training data sets, real or
        synthetic; unlabelled micrographs are left out. ``batch_of(dataset, micrograph)``: the
        batch holding a micrograph (BatchPlan.batch_of)."""
        train = self.config["unet"]["train"]
        items = []
        for dataset in train["datasets"]:
            if dataset not in self.datasets:
                raise InputError(f"unet.train.datasets names {dataset!r}, which is not in datasets")
            if not self.has_ground_truth(dataset):
                raise InputError(f"unet.train.datasets: data set {dataset!r} has no ground_truth")
            ds = self.datasets[dataset]
            labels = self.label_files(dataset)
            synthetic_set = ds.get("synthetic")
            if synthetic_set:  # the particles' true supports
                masks = {n: self.synthetic_files(synthetic_set, n)["mask"] for n in labels}
            else:
                masks = self.label_files(dataset, masks=True)
            for name in self.micrograph_names(dataset):
                if name not in labels:
                    continue
                item = {
                    "name": f"{dataset}/{name}",
                    "micrograph": self.micrographs[dataset][name],
                    "denoised_batch": paths.DENOISED.format(
                        dataset=dataset, batch=batch_of(dataset, name)
                    ),
                    "labels": labels[name],
                    "diameter": ds["particle_diameter"],
                    "invert": ds.get("particle_contrast") == "bright",
                }
                if train["use_masks"] and name in masks:
                    item["mask"] = masks[name]
                items.append(item)
        if not items:
            raise InputError("unet.train.datasets holds no labelled micrograph to train on")
        return items

    def training_inputs(
        self, batch_of: Callable[[str, str], str], basedir: str = "."
    ) -> dict[str, list[str]]:
        """The train_unet job's input files, by kind; the model fine-tuning starts from is
        one, so that new starting weights retrain."""
        items = self.training_items(batch_of)
        inputs = {
            "micrographs": [item["micrograph"] for item in items],
            # the batches' completion records (a batch without one is redone first)
            "denoised": sorted({paths.batch_complete(item["denoised_batch"]) for item in items}),
            "labels": [item["labels"] for item in items],
            "masks": [item["mask"] for item in items if "mask" in item],
        }
        initial_model = unet_train_settings(self.config, basedir).get("initial_model")
        if initial_model:
            inputs["initial_model"] = [initial_model]
        return inputs

    # ------------------------------------------------------------------ synthetic sets

    def synthetic_names(self, synthetic_set: str) -> list[str]:
        """Micrograph names of a synthetic set, from the config alone (no file exists yet)."""
        spec = self.synthetic[synthetic_set]
        return synthetic_micrograph_names(
            self.synthetic_prefix(synthetic_set), spec.get("n_micrographs", 3)
        )

    def synthetic_files(self, synthetic_set: str, name: str) -> dict[str, str]:
        """Every file the synthesize rule writes for one micrograph (key -> path)."""
        return paths.synthetic_files(synthetic_set, name)

    def synthetic_sets_in_use(self) -> list[str]:
        return sorted({ds["synthetic"] for ds in self.datasets.values() if ds.get("synthetic")})

    def synthetic_outputs(self) -> list[str]:
        """Every configured synthetic set's parameters and micrographs, used or not."""
        sets = list(self.synthetic)
        return [paths.SYNTHETIC_PARAMETERS.format(synthetic_set=s) for s in sets] + [
            self.synthetic_files(s, n)["micrograph"] for s in sets for n in self.synthetic_names(s)
        ]

    def synthetic_settings(self, synthetic_set: str) -> dict:
        """The physics of one set (SyntheticSettings keys): a change reruns its micrographs."""
        return _without(self.synthetic[synthetic_set], SYNTHETIC_BOOKKEEPING)

    def synthetic_seed(self, synthetic_set: str) -> int:
        return self.synthetic[synthetic_set].get("seed", 0)

    def synthetic_prefix(self, synthetic_set: str) -> str:
        return self.synthetic[synthetic_set].get("name_prefix") or synthetic_set

    def synthetic_size(self, synthetic_set: str) -> int:
        return len(self.synthetic_names(synthetic_set))

    def synthetic_volume_files(self, synthetic_set: str) -> list[str]:
        return self.synthetic[synthetic_set].get("volume_files", [])

    def synthetic_index(self, synthetic_set: str, micrograph: str) -> int:
        """Index of a micrograph in its set (its seed derives from the set's seed and this)."""
        names = self.synthetic_names(synthetic_set)
        if micrograph not in names:
            raise InputError(
                f"{micrograph!r} is not a micrograph of synthetic set "
                f"{synthetic_set!r} ({names[0]} .. {names[-1]})"
            )
        return names.index(micrograph)
