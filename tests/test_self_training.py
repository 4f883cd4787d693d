"""Label-free self-training: pseudo-labels from the model's own peaks, undecided peaks left out
of the loss, BatchNorm statistics kept, and a tiny adaptation run that changes the weights
deterministically and keeps the model's picking settings."""

import numpy as np
import pandas as pd
import pytest
import torch

from cryopick.checkpoint import load_model, save_checkpoint
from cryopick.io import InputError, read_coordinates
from cryopick.provenance import provenance
from cryopick.self_training import (
    AdaptationMicrograph,
    SelfTrainingSettings,
    adaptation_items,
    ignore_near,
    self_train,
    skip_reason,
    split_pseudo_labels,
)
from cryopick.training import Example, freeze_batchnorm, prepare_data, train
from cryopick.workflow.plan import adaptation_micrographs, adapted_unet_models, dataset_unet_model
from tests.test_training import DIAMETER, make_micrograph, tiny_config


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory):
    """A tiny U-Net trained on 3 labelled micrographs, and 2 unlabelled ones to adapt to."""
    folder = tmp_path_factory.mktemp("self_training")
    labelled = [make_micrograph(folder, f"m{i}", seed=i) for i in range(3)]
    result = train(labelled, tiny_config(steps=80, validation_fraction=0.0), log=lambda m: None)
    checkpoint = dict(result.checkpoint)
    checkpoint["picking"] = {**checkpoint["picking"], "threshold": 0.3, "edge_margin": 0.0}
    path = folder / "model.pt"
    save_checkpoint(path, checkpoint)
    new = [make_micrograph(folder, f"new{i}", seed=10 + i, n=8) for i in range(2)]
    items = [AdaptationMicrograph(m.name, m.denoised, m.micrograph, DIAMETER) for m in new]
    return path, items, folder


def quick(**overrides) -> SelfTrainingSettings:
    settings = dict(enabled=True, confident=0.3, uncertain=0.05, steps=6, batch_size=2)
    return SelfTrainingSettings(**(settings | overrides))


def test_peaks_split_into_pseudo_particles_and_undecided_ones():
    picks = pd.DataFrame({"x": [1.0, 2, 3, 4], "y": [1.0, 2, 3, 4], "score": [0.05, 0.2, 0.5, 0.9]})
    particles, undecided = split_pseudo_labels(picks, confident=0.5, uncertain=0.1)
    assert list(particles["score"]) == [0.5, 0.9]
    assert list(undecided["score"]) == [0.2]


def test_a_first_pass_unsure_of_most_peaks_is_not_learned_from():
    settings = SelfTrainingSettings(min_confident_share=0.3)
    assert skip_reason(0, 5, settings).startswith("found no confident pick")
    assert "25% of its peaks confident" in skip_reason(10, 30, settings)
    assert skip_reason(12, 28, settings) is None
    assert SelfTrainingSettings().min_confident_share == 0.3
    assert skip_reason(1, 99, SelfTrainingSettings(min_confident_share=0)) is None  # any peak
    with pytest.raises(InputError, match="min_confident_share"):
        SelfTrainingSettings(min_confident_share=1.5)


def test_settings_refuse_an_inverted_band():
    with pytest.raises(InputError, match="uncertain <= confident"):
        SelfTrainingSettings(confident=0.2, uncertain=0.4)
    with pytest.raises(InputError, match="steps"):
        SelfTrainingSettings(steps=0)


def test_undecided_peaks_carry_no_loss_within_the_radius(tiny_model):
    path, items, folder = tiny_model
    _, checkpoint = load_model(path)
    from cryopick.self_training import training_config

    config = training_config(str(path), checkpoint, quick(), torch.device("cpu"), 1)
    example: Example = prepare_data([_labelled(items[0], folder)], config).train[0]
    before = example.valid.copy()
    # the file-frame point (64, 64) is network pixel (32, 32) times the model's factor
    ignore_near(example, np.array([64.0]), np.array([64.0]), radius=3.0)
    zeroed = np.argwhere((before > 0) & (example.valid == 0))
    centre = zeroed.mean(axis=0)
    assert len(zeroed) > 0
    assert np.all(np.hypot(*(zeroed - centre).T) <= 3.0 + 1e-6)
    assert np.abs(example.valid - before).sum() == len(zeroed)


def _labelled(item, folder):
    from cryopick.training import LabelledMicrograph

    return LabelledMicrograph(
        item.name,
        item.denoised,
        str(folder / f"{item.name}.csv"),
        item.diameter,
        None,
        item.micrograph,
    )


def test_frozen_batchnorm_keeps_its_statistics(tiny_model):
    path, _, _ = tiny_model
    model, _ = load_model(path)
    model.train()
    freeze_batchnorm(model)
    stats = {k: v.clone() for k, v in model.state_dict().items() if "running_" in k}
    model(torch.randn(2, 1, 32, 32) * 5 + 3)
    for key, value in stats.items():
        torch.testing.assert_close(model.state_dict()[key], value)


def test_adaptation_changes_the_weights_deterministically_and_keeps_the_picking(
    tiny_model, tmp_path
):
    path, items, _ = tiny_model
    messages = []
    first = self_train(str(path), items, quick(), tmp_path / "a", "cpu", 1, messages.append)
    second = self_train(str(path), items, quick(), tmp_path / "b", "cpu", 1, lambda m: None)
    start = torch.load(path, weights_only=True)
    moved = [
        k
        for k, v in start["state_dict"].items()
        if v.is_floating_point() and not torch.equal(first["state_dict"][k].half(), v)
    ]
    assert moved, "fine-tuning left every weight as it was"
    for key, value in first["state_dict"].items():
        assert torch.equal(value, second["state_dict"][key]), key
        if "running_" in key:  # BatchNorm statistics stay those of the training data
            torch.testing.assert_close(value.half(), start["state_dict"][key])
    assert first["picking"]["threshold"] == 0.3
    origin = first["data"]
    assert origin["initial_model"]["path"] == str(path)
    assert origin["self_training"]["pseudo_particles"] > 0
    assert origin["self_training"]["confident"] == 0.3
    labels = read_coordinates(tmp_path / "a" / f"{items[0].name}.star")
    assert len(labels) > 0 and (labels["score"] >= 0.3).all()
    assert any("pseudo-particles" in m for m in messages)


def test_nothing_confident_keeps_the_model_and_warns(tiny_model, tmp_path):
    path, items, _ = tiny_model
    warnings = []
    checkpoint = self_train(
        str(path), items, quick(confident=1.0), tmp_path, "cpu", 1, lambda m: None, warnings.append
    )
    start = torch.load(path, weights_only=True)
    for key, value in start["state_dict"].items():
        assert torch.equal(checkpoint["state_dict"][key], value)
    assert len(warnings) == 1 and "no confident pick" in warnings[0]
    # confident peaks, but fewer than min_confident_share of them all: kept, and said why
    warnings.clear()
    checkpoint = self_train(
        str(path),
        items,
        quick(min_confident_share=1.0),
        tmp_path / "b",
        "cpu",
        1,
        lambda m: None,
        warnings.append,
    )
    for key, value in start["state_dict"].items():
        assert torch.equal(checkpoint["state_dict"][key], value)
    assert len(warnings) == 1 and "min_confident_share 1" in warnings[0], warnings


def test_micrographs_without_a_canvas_are_named_and_left_out(tiny_model, tmp_path):
    _, items, folder = tiny_model
    batch = tmp_path / "batch_0"
    batch.mkdir()
    (batch / f"{items[0].name}.npz").write_bytes(open(items[0].denoised, "rb").read())
    warned = []
    found = adaptation_items(
        [items[0].name, "gone"],
        {items[0].name: items[0].micrograph, "gone": "gone.mrc"},
        [str(batch) + ".complete"],
        DIAMETER * 1.0,  # Angstrom: the tiny micrographs are 1 A/px
        log=warned.append,
    )
    assert [i.name for i in found] == [items[0].name]
    assert found[0].diameter == pytest.approx(DIAMETER)
    assert len(warned) == 1 and warned[0].startswith("gone:")


def test_the_adapted_model_is_the_data_sets_when_switched_on():
    config = {
        "unet": {
            "enabled": True,
            "model": "models/unet_general.pt",
            "self_training": {"enabled": False},
        }
    }
    assert dataset_unet_model(config, ".", "ds").endswith("models/unet_general.pt")
    assert adapted_unet_models(config, ["ds"]) == {}
    config["unet"]["self_training"] = {"enabled": True, "micrographs": 2}
    assert dataset_unet_model(config, ".", "ds") == "results/ds/unet_adapted/model.pt"
    assert adapted_unet_models(config, ["ds"]) == {"ds": "results/ds/unet_adapted/model.pt"}
    assert adaptation_micrographs(["c", "a", "b"], config) == ["a", "b"]
    config["unet"]["enabled"] = False
    assert adapted_unet_models(config, ["ds"]) == {}


def test_the_reproducibility_block_names_each_adapted_model(tmp_path):
    """The report must say which checkpoint each data set's maps came from."""
    general, adapted = tmp_path / "general.pt", tmp_path / "a.pt"
    general.write_bytes(b"general")
    adapted.write_bytes(b"abc")
    facts = provenance(
        str(tmp_path), str(general), "cmd", [], {"b": str(tmp_path / "gone.pt"), "a": str(adapted)}
    )
    per_data_set = facts["models adapted by self-training, per data set"]
    assert list(per_data_set) == ["a", "b"]
    assert per_data_set["a"].startswith(f"{adapted} (sha256 ba7816bf")
    assert per_data_set["b"].endswith("(missing)")
    assert "models adapted by self-training, per data set" not in provenance(
        str(tmp_path), str(general), "cmd", []
    )


def test_schema_defaults_are_the_code_defaults():
    import yaml

    from tests.conftest import REPO

    schema = yaml.safe_load((REPO / "config" / "schema.yaml").read_text())
    section = schema["properties"]["unet"]["properties"]["self_training"]["properties"]
    defaults = {k: v["default"] for k, v in section.items()}
    assert SelfTrainingSettings.from_config(defaults) == SelfTrainingSettings()
