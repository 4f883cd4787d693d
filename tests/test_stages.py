"""The workflow registry without Snakemake: the picking-stage table (cryopick/workflow/stages.py),
the plan a config makes (cryopick/workflow/plan.py) and the path patterns (.../paths.py)."""

from __future__ import annotations

import copy
import os
from pathlib import Path

import pytest
import yaml

from cryopick.batching import BatchPlan
from cryopick.io import InputError
from cryopick.workflow import paths, plan, stages
from cryopick.workflow.plan import WorkflowPlan
from tests.conftest import REPO

SKIPPED_SAM = (
    "picks.source 'sam' needs SAM weights: cryopick: the Segment Anything stage is "
    "skipped: sam.checkpoint is not set."
)


def make_config(**sections) -> dict:
    """The config keys the registry reads, with the schema's defaults; ``sections`` replace
    whole sections (``unet_train`` the unet.train section)."""
    config = {
        "datasets": {},
        "synthetic": {},
        "unet": {
            "enabled": True,
            "model": "models/unet_default.pt",
            "device": "auto",
            "threshold": None,
            "min_distance": None,
            "edge_margin": None,
            "train": {
                "name": "model",
                "datasets": [],
                "use_masks": False,
                "max_minutes": 60,
                "device": "auto",
            },
        },
        "crf": {"enabled": False, "iterations": 10},
        "sam": {"checkpoint": None},
        "picks": {"source": "unet", "min_score": None, "formats": []},
        "report": {"peers": [], "topaz_command": "topaz"},
    }
    train = sections.pop("unet_train", None)
    for key, value in sections.items():
        config[key] = (
            {**config[key], **value} if key in ("unet", "crf", "sam", "picks", "report") else value
        )
    if train:
        config["unet"]["train"] = {**config["unet"]["train"], **train}
    return config


def real_dataset(
    root: Path, names=("m1", "m2", "m3"), labelled=("m1", "m2"), masks=("m1",)
) -> dict:
    (root / "micrographs").mkdir(parents=True)
    (root / "labels").mkdir()
    (root / "masks").mkdir()
    for name in names:
        (root / "micrographs" / f"{name}.mrc").touch()
    for name in labelled:
        (root / "labels" / f"{name}.csv").touch()
    for name in masks:
        (root / "masks" / f"{name}.png").touch()
    return {
        "micrographs": str(root / "micrographs" / "*.mrc"),
        "pixel_size": 2.0,
        "particle_diameter": 150.0,
        "ground_truth": str(root / "labels"),
        "ground_truth_masks": str(root / "masks"),
    }


SYNTHETIC = {
    "syn": {
        "n_micrographs": 2,
        "seed": 3,
        "height": 256,
        "width": 256,
        "pixel_size": 5.0,
        "particle_diameter": 150,
    }
}


# ---------------------------------------------------------------------------- the table


def test_the_table_is_consistent_with_the_schema_and_the_rules():
    schema = yaml.safe_load((REPO / "config/schema.yaml").read_text())
    source = schema["properties"]["picks"]["properties"]["source"]
    assert set(source["enum"]) == set(stages.BY_SOURCE)
    assert source["default"] in stages.BY_SOURCE
    assert len(stages.BY_NAME) == len(stages.STAGES)
    assert stages.rule_files() == ["baseline.smk", "unet.smk", "crf.smk", "sam.smk", "peers.smk"]
    peers = schema["properties"]["report"]["properties"]["peers"]["items"]["enum"]
    assert [stage.name for stage in stages.peer_stages()] == peers
    for stage in stages.STAGES:
        assert set(stage.requires) <= set(stages.REQUIREMENTS)
        assert stage.switch is None or stage.switch in schema["properties"]
        rules = (REPO / "rules" / stage.rules).read_text()
        if stage.peer:  # one rule for every peer, its name a wildcard of the pattern
            assert stage.picks == paths.PEER_PICKS.replace("{peer}", stage.name)
            assert "paths.PEER_PICKS" in rules
        else:  # the stage's rule file declares its picks, through the registry
            assert f'stage_picks("{stage.name}")' in rules


def test_peers_run_when_listed_and_installed_and_are_named_when_not(tmp_path, monkeypatch):
    relion = tmp_path / "relion_autopick"
    relion.write_text("#!/bin/sh\n")
    relion.chmod(0o755)
    monkeypatch.setenv("PATH", f"{tmp_path}{os.pathsep}{os.environ['PATH']}")
    config = make_config(report={"peers": ["relion_log", "topaz"], "topaz_command": "no-topaz"})
    assert stages.enabled_stages(config) == ["baseline", "unet", "relion_log"]
    assert list(stages.skipped_peers(config)) == ["topaz"]
    assert "no-topaz not found" in stages.skipped_peers(config)["topaz"]
    # peers run only where they can be scored, like every comparison stage
    assert "relion_log" in stages.picking_stages(config, has_ground_truth=True)
    assert list(stages.picking_stages(config, has_ground_truth=False)) == ["unet", "final"]
    assert stages.enabled_stages(make_config()) == ["baseline", "unet"]  # not listed: not run


def test_every_stage_writes_one_folder_per_batch():
    assert stages.stage_picks("unet") == "results/{dataset}/unet_picks/batch_{batch}"
    assert stages.stage_picks("baseline") == "results/{dataset}/baseline/batch_{batch}"
    assert stages.stage_picks("unet+crf") == "results/{dataset}/crf_picks/batch_{batch}"
    assert stages.stage_picks("sam") == "results/{dataset}/sam_raw_picks/batch_{batch}"
    assert stages.stage_picks("sam+postprocessing") == "results/{dataset}/sam_picks/batch_{batch}"
    for stage in stages.STAGES:
        assert "{batch}" in stage.picks and "{micrograph}" not in stage.picks


@pytest.mark.parametrize(
    "sections, expected",
    [
        ({}, ["baseline", "unet"]),
        ({"crf": {"enabled": True}}, ["baseline", "unet", "unet+crf"]),
        ({"unet": {"enabled": False}, "crf": {"enabled": True}}, ["baseline"]),
        ({"sam": {"checkpoint": "SAM"}}, ["baseline", "unet", "sam", "sam+postprocessing"]),
        (
            {"sam": {"checkpoint": "SAM"}, "crf": {"enabled": True}},
            ["baseline", "unet", "unet+crf", "sam", "sam+postprocessing"],
        ),
        ({"sam": {"checkpoint": "missing.pth"}}, ["baseline", "unet"]),
    ],
)
def test_enabled_stages(tmp_path, sections, expected):
    checkpoint = tmp_path / "sam.pth"
    checkpoint.touch()
    sections = copy.deepcopy(sections)
    if sections.get("sam", {}).get("checkpoint") == "SAM":
        sections["sam"]["checkpoint"] = str(checkpoint)
    assert stages.enabled_stages(make_config(**sections)) == expected


def test_source_stage_and_its_refusals(tmp_path):
    assert stages.source_stage(make_config()).name == "unet"
    assert stages.source_stage(make_config(picks={"source": "crf"})).name == "unet+crf"
    off = make_config(unet={"enabled": False}, picks={"source": "baseline"})
    assert stages.source_stage(off).name == "baseline"
    with pytest.raises(InputError) as refused:
        stages.source_stage(make_config(unet={"enabled": False}))
    assert str(refused.value) == "picks.source 'unet' needs unet.enabled: true (or use baseline)"
    with pytest.raises(InputError, match=r"picks.source 'crf' needs unet.enabled"):
        stages.source_stage(make_config(unet={"enabled": False}, picks={"source": "crf"}))
    with pytest.raises(InputError) as refused:
        stages.source_stage(make_config(picks={"source": "sam"}))
    assert str(refused.value).startswith(SKIPPED_SAM)
    checkpoint = tmp_path / "sam.pth"
    checkpoint.touch()
    with_sam = make_config(picks={"source": "sam"}, sam={"checkpoint": str(checkpoint)})
    assert stages.source_stage(with_sam).name == "sam+postprocessing"


def test_picking_stages_with_and_without_ground_truth():
    final = ("final", "results/{dataset}/final_picks/batch_{batch}")
    config = make_config()
    assert list(stages.picking_stages(config, True).items()) == [
        ("baseline", "results/{dataset}/baseline/batch_{batch}"),
        ("unet", "results/{dataset}/unet_picks/batch_{batch}"),
        final,
    ]
    # unlabelled: only the source, which could not be compared
    assert list(stages.picking_stages(config, False)) == ["unet", "final"]
    # the source stage always runs, its comparison switch off or not, in table order
    crf = make_config(picks={"source": "crf"})
    assert list(stages.picking_stages(crf, True)) == ["baseline", "unet", "unet+crf", "final"]
    assert list(stages.picking_stages(crf, False)) == ["unet+crf", "final"]
    with pytest.raises(InputError, match="needs unet.enabled"):
        stages.picking_stages(make_config(unet={"enabled": False}), False)


# ---------------------------------------------------------------------------- the plan


def test_datasets_real_and_synthetic(tmp_path):
    config = make_config(
        datasets={
            "real": real_dataset(tmp_path / "real"),
            "fake": {"synthetic": "syn", "particle_diameter": 150},
            "own": {"synthetic": "syn", "pixel_size": 3.0, "particle_diameter": 150},
        },
        synthetic=SYNTHETIC,
    )
    original = copy.deepcopy(config["datasets"])
    wf = WorkflowPlan(config)
    assert config["datasets"] == original  # the config is not changed, the plan completes it
    assert wf.micrograph_names("real") == ["m1", "m2", "m3"]
    assert wf.micrographs["fake"] == {
        "syn_0000": "results/synthetic/syn/micrographs/syn_0000.mrc",
        "syn_0001": "results/synthetic/syn/micrographs/syn_0001.mrc",
    }
    assert wf.datasets["fake"] == {
        "synthetic": "syn",
        "particle_diameter": 150,
        "ground_truth": "results/synthetic/syn/coordinates",
        "ground_truth_masks": None,
        "pixel_size": 5.0,
    }
    assert wf.datasets["own"]["pixel_size"] == 3.0
    assert wf.scored_datasets() == ["real", "fake", "own"]
    assert list(wf.label_files("real")) == ["m1", "m2"]
    assert list(wf.label_files("real", masks=True)) == ["m1"]
    assert wf.label_files("fake") == {
        "syn_0000": "results/synthetic/syn/coordinates/syn_0000.csv",
        "syn_0001": "results/synthetic/syn/coordinates/syn_0001.csv",
    }
    assert wf.label_files("fake", masks=True) == {}  # scored against discs
    assert wf.label_file("real", "m2").endswith("labels/m2.csv")
    with pytest.raises(InputError, match="no ground-truth file for micrograph 'm3'"):
        wf.label_file("real", "m3")
    batches = batches_of(wf, tmp_path)
    assert wf.label_map_outputs(batches) == [
        "results/real/labels/batch_00000.complete",
        "results/fake/labels/batch_00000.complete",
        "results/own/labels/batch_00000.complete",
    ]
    assert wf.labelled_micrographs("real", ["m3", "m2", "m1"]) == {
        "m2": wf.label_file("real", "m2"),
        "m1": wf.label_file("real", "m1"),
    }


def test_dataset_errors(tmp_path):
    with pytest.raises(InputError) as refused:
        WorkflowPlan(
            make_config(
                datasets={"x": {"synthetic": "nope", "particle_diameter": 1}}, synthetic=SYNTHETIC
            )
        )
    assert str(refused.value) == (
        "dataset 'x': synthetic set 'nope' is not defined under synthetic: (defined: ['syn'])"
    )
    bad = {"bad": {**SYNTHETIC["syn"], "defocus_range": [3, 1]}}
    with pytest.raises(
        InputError,
        match=r"^synthetic set 'bad': synthetic settings: "
        r"defocus_range must be",
    ):
        WorkflowPlan(make_config(synthetic=bad))


def batches_of(wf: WorkflowPlan, tmp_path) -> BatchPlan:
    """The batches (64 per batch) of a plan's data sets, their manifests under tmp_path."""
    return BatchPlan.build(
        {name: list(listing) for name, listing in wf.micrographs.items()},
        manifest=str(tmp_path / "{dataset}.tsv"),
        batch_size=64,
    )


def test_targets(tmp_path):
    config = make_config(
        datasets={
            "real": real_dataset(tmp_path / "real", names=("m1",)),
            "new": {**real_dataset(tmp_path / "new", names=("n1",)), "ground_truth": None},
            "fake": {"synthetic": "syn", "particle_diameter": 150},
        },
        synthetic={**SYNTHETIC, "unused": {"n_micrographs": 1}},
        picks={"formats": ["csv", "box"]},
    )
    wf = WorkflowPlan(config)
    batches = batches_of(wf, tmp_path)
    assert wf.targets(batches) == [
        "results/real/final_picks/batch_00000.complete",
        "results/new/final_picks/batch_00000.complete",
        "results/fake/final_picks/batch_00000.complete",
        "results/real/pick_counts.tsv",
        "results/new/pick_counts.tsv",
        "results/fake/pick_counts.tsv",
        "results/real/metrics/summary.tsv",
        "results/fake/metrics/summary.tsv",
        "results/report/benchmark.tsv",
        "results/report/index.html",
        "results/synthetic/syn/parameters.json",
    ]
    assert wf.report_summaries() == [
        "results/real/metrics/summary.tsv",
        "results/fake/metrics/summary.tsv",
    ]
    assert list(wf.picking_stages("new")) == ["unet", "final"]
    assert wf.final_picks("fake", batches) == ["results/fake/final_picks/batch_00000.complete"]
    assert list(wf.picking_stages("real")) == ["baseline", "unet", "final"]
    # every configured set, used or not (the all_synthetic target)
    assert wf.synthetic_outputs() == [
        "results/synthetic/syn/parameters.json",
        "results/synthetic/unused/parameters.json",
        "results/synthetic/syn/micrographs/syn_0000.mrc",
        "results/synthetic/syn/micrographs/syn_0001.mrc",
        "results/synthetic/unused/micrographs/unused_0000.mrc",
    ]


def test_synthetic_set_settings():
    spec = {**SYNTHETIC["syn"], "name_prefix": "s", "volume_files": []}
    wf = WorkflowPlan(make_config(synthetic={"syn": spec}))
    assert wf.synthetic_names("syn") == ["s_0000", "s_0001"]
    assert wf.synthetic_size("syn") == 2
    assert wf.synthetic_seed("syn") == 3
    assert wf.synthetic_prefix("syn") == "s"
    assert wf.synthetic_volume_files("syn") == []
    # the physics only: a new seed, size or prefix reruns nothing through this
    assert wf.synthetic_settings("syn") == {
        "height": 256,
        "width": 256,
        "pixel_size": 5.0,
        "particle_diameter": 150,
        "volume_files": [],
    }
    assert wf.synthetic_index("syn", "s_0001") == 1
    with pytest.raises(InputError) as refused:
        wf.synthetic_index("syn", "s_0002")
    assert str(refused.value) == (
        "'s_0002' is not a micrograph of synthetic set 'syn' (s_0000 .. s_0001)"
    )
    assert wf.synthetic_files("syn", "s_0000")["mask"] == "results/synthetic/syn/masks/s_0000.png"


def test_training_items(tmp_path):
    datasets = {
        "real": {**real_dataset(tmp_path / "real"), "particle_contrast": "bright"},
        "fake": {"synthetic": "syn", "particle_diameter": 190},
        "new": {**real_dataset(tmp_path / "new"), "ground_truth": None},
    }

    def batch_of(dataset, micrograph):
        return f"{dataset[0]}{micrograph[-1]}"

    config = make_config(
        datasets=datasets,
        synthetic=SYNTHETIC,
        unet_train={"datasets": ["real", "fake"], "use_masks": True},
    )
    wf = WorkflowPlan(config)
    items = wf.training_items(batch_of)
    assert [item["name"] for item in items] == [
        "real/m1",
        "real/m2",
        "fake/syn_0000",
        "fake/syn_0001",
    ]  # m3 has no labels
    assert items[0] == {
        "name": "real/m1",
        "micrograph": str(tmp_path / "real/micrographs/m1.mrc"),
        "denoised_batch": "results/real/denoise/batch_r1",
        "labels": str(tmp_path / "real/labels/m1.csv"),
        "diameter": 150.0,
        "invert": True,
        "mask": str(tmp_path / "real/masks/m1.png"),
    }
    assert "mask" not in items[1]  # no mask file for m2
    assert items[2] == {
        "name": "fake/syn_0000",
        "micrograph": "results/synthetic/syn/micrographs/syn_0000.mrc",
        "denoised_batch": "results/fake/denoise/batch_f0",
        "labels": "results/synthetic/syn/coordinates/syn_0000.csv",
        "diameter": 190,
        "invert": False,
        "mask": "results/synthetic/syn/masks/syn_0000.png",
    }  # true supports
    inputs = wf.training_inputs(batch_of)
    assert inputs["denoised"] == [  # the batches' completion records
        "results/fake/denoise/batch_f0.complete",
        "results/fake/denoise/batch_f1.complete",
        "results/real/denoise/batch_r1.complete",
        "results/real/denoise/batch_r2.complete",
    ]
    assert len(inputs["labels"]) == 4 and len(inputs["masks"]) == 3
    without_masks = make_config(
        datasets=datasets, synthetic=SYNTHETIC, unet_train={"datasets": ["fake"]}
    )
    assert all("mask" not in item for item in WorkflowPlan(without_masks).training_items(batch_of))

    for train, message in [
        (["nope"], "unet.train.datasets names 'nope', which is not in datasets"),
        (["new"], "unet.train.datasets: data set 'new' has no ground_truth"),
        ([], "unet.train.datasets holds no labelled micrograph to train on"),
    ]:
        config = make_config(datasets=datasets, synthetic=SYNTHETIC, unet_train={"datasets": train})
        with pytest.raises(InputError) as refused:
            WorkflowPlan(config).training_items(batch_of)
        assert str(refused.value) == message


def test_settings_that_change_outputs(tmp_path):
    config = make_config(picks={"formats": ["csv"]}, crf={"enabled": True})
    assert plan.crf_settings(config) == {"iterations": 10}
    assert plan.final_picks_settings(config) == {"source": "unet", "min_score": None}
    assert plan.unet_train_settings(config) == {"max_minutes": 60, "device": "auto"}
    assert plan.unet_pick_settings(config) == {
        "threshold": None,
        "min_distance": None,
        "edge_margin": None,
    }
    assert plan.unet_training_folder(config) == "results/unet_training/model"
    # the shipped model is found in the repository from any working directory
    assert plan.unet_model(config, str(REPO)) in (
        "models/unet_default.pt",
        str(REPO / "models/unet_default.pt"),
    )
    assert plan.unet_model(config, str(tmp_path)) == "models/unet_default.pt"
    trained = make_config(unet={"model": "train"})
    assert plan.unet_model(trained, str(REPO)) == "results/unet_training/model/model.pt"


def test_fine_tuning_reads_the_starting_model_from_the_repository(tmp_path, monkeypatch):
    """unet.train.initial_model is found like unet.model, and is an input of the training job
    (new starting weights retrain)."""
    monkeypatch.chdir(tmp_path)  # a working directory without models/
    datasets = {"real": real_dataset(tmp_path / "real", names=("m1", "m2"))}
    config = make_config(
        datasets=datasets,
        unet_train={"datasets": ["real"], "initial_model": "models/unet_default.pt"},
    )
    shipped = str(REPO / "models/unet_default.pt")
    assert plan.unet_train_settings(config, str(REPO))["initial_model"] == shipped
    inputs = WorkflowPlan(config).training_inputs(lambda dataset, name: "b0", str(REPO))
    assert inputs["initial_model"] == [shipped]
    scratch = make_config(datasets=datasets, unet_train={"datasets": ["real"]})
    assert "initial_model" not in WorkflowPlan(scratch).training_inputs(lambda d, n: "b0")


# ---------------------------------------------------------------------------- the patterns


def test_path_patterns():
    assert paths.DENOISED == "results/{dataset}/denoise/batch_{batch}"
    assert paths.log("denoise", paths.BATCH) == "results/{dataset}/logs/denoise/batch_{batch}.log"
    assert paths.benchmark("crf") == "results/{dataset}/benchmarks/crf/{micrograph}.tsv"
    assert paths.log("metrics", None) == "results/{dataset}/logs/metrics.log"
    assert paths.benchmark("report", None, paths.RESULTS) == "results/benchmarks/report.tsv"
    assert paths.benchmarks().format(dataset="d") == "results/d/benchmarks"
    # the synthesize rule's outputs, in the package's layout of a synthetic set
    assert paths.synthetic_files() == {
        "micrograph": "results/synthetic/{synthetic_set}/micrographs/{micrograph}.mrc",
        "coordinates": "results/synthetic/{synthetic_set}/coordinates/{micrograph}.csv",
        "coordinates_star": "results/synthetic/{synthetic_set}/coordinates_star/{micrograph}.star",
        "mask": "results/synthetic/{synthetic_set}/masks/{micrograph}.png",
        "instances": "results/synthetic/{synthetic_set}/instances/{micrograph}.png",
        "exclusion": "results/synthetic/{synthetic_set}/ice_masks/{micrograph}.png",
        "exclusion_classes": "results/synthetic/{synthetic_set}/ice_masks/{micrograph}.npz",
        "particles": "results/synthetic/{synthetic_set}/particles/{micrograph}.tsv",
        "parameters": "results/synthetic/{synthetic_set}/parameters/{micrograph}.json",
    }


def test_nothing_else_restates_a_pattern():
    """Rules, scripts and the package spell batch folders and result roots only through
    cryopick/workflow/paths.py."""
    offenders = []
    files = [
        *REPO.glob("rules/*.smk"),
        REPO / "Snakefile",
        *REPO.glob("scripts/*.py"),
        *REPO.glob("cryopick/workflow/*.py"),
    ]
    for path in files:
        if path.name == "paths.py":
            continue
        for number, line in enumerate(path.read_text().splitlines(), 1):
            code = line.split("#", 1)[0]
            if "batch_{" in code or '"results/' in code or 'f"results/' in code:
                offenders.append(f"{path.relative_to(REPO)}:{number}: {line.strip()}")
    assert not offenders, "\n".join(offenders)
