"""U-Net training: targets, data identity, validation split, a tiny run that lowers the loss,
and checkpoints that refuse to load into the wrong network."""

from pathlib import Path

import numpy as np
import pytest
import torch

from cryopick.checkpoint import ModelError, load_model, save_checkpoint
from cryopick.denoise import frame_for, save_denoised
from cryopick.io import InputError
from cryopick.network_input import normalise_image
from cryopick.training import (
    LabelledMicrograph,
    TrainingConfig,
    border_valid,
    data_identity,
    draw_targets,
    split_validation,
    train,
    write_history,
)
from cryopick.unet import Architecture

DIAMETER = 16.0  # file pixels; the canvas is binned 2x, so 8 px on the network canvas


def make_micrograph(folder: Path, name: str, seed: int, n: int = 6) -> LabelledMicrograph:
    """A 128^2 micrograph (MRC) of dark discs on a noisy background, with its 64^2 'denoised'
    canvas (here simply binned) and CryoPPP labels."""
    from cryopick.denoise import bin_to_frame, to_uint8
    from cryopick.io import write_mrc

    rng = np.random.default_rng(seed)
    frame = frame_for((128, 128), 64)
    xs = rng.uniform(20, 108, n)
    ys = rng.uniform(20, 108, n)
    image = 1.0 + rng.normal(0, 0.1, (128, 128))
    yy, xx = np.mgrid[:128, :128]
    for cx, cy in zip(xs, ys):
        image[(xx - cx) ** 2 + (yy - cy) ** 2 <= (DIAMETER / 2) ** 2] -= 0.5
    write_mrc(folder / f"{name}.mrc", image.astype(np.float32), 1.0)
    canvas = to_uint8(bin_to_frame(image, frame))
    save_denoised(folder / f"{name}.npz", canvas, frame, 2.0)
    lines = ["X-Coordinate,Y-Coordinate,Diameter"]
    lines += [f"{round(x)},{round(y)},{int(DIAMETER)}" for x, y in zip(xs, ys)]
    (folder / f"{name}.csv").write_text("\n".join(lines) + "\n")
    return LabelledMicrograph(
        name,
        str(folder / f"{name}.npz"),
        str(folder / f"{name}.csv"),
        DIAMETER,
        micrograph=str(folder / f"{name}.mrc"),
    )


def tiny_config(**overrides) -> TrainingConfig:
    settings = dict(
        base_width=4,
        depth=2,
        crop=32,
        batch_size=4,
        steps=60,
        steps_per_epoch=20,
        max_minutes=2.0,
        learning_rate=5e-3,
        validation_fraction=0.34,
        threads=1,
        thresholds=(0.2, 0.4),
        min_distances=(0.5,),
        edge_margins=(0.0,),
        diameter_px=None,
        ignore_border=0.0,
    )
    settings.update(overrides)
    return TrainingConfig(**settings)


@pytest.fixture(scope="module")
def tiny_data(tmp_path_factory):
    folder = tmp_path_factory.mktemp("tiny")
    return [make_micrograph(folder, f"m{i}", seed=i) for i in range(3)]


@pytest.fixture(scope="module")
def trained(tiny_data):
    return train(tiny_data, tiny_config(), log=lambda message: None)


def test_targets_are_discs_and_peaked_gaussians():
    mask, centre = draw_targets((40, 40), np.array([10.0, 17.0]), np.array([20.0, 20.0]), 8.0, 1.0)
    assert mask[20, 10] == 1 and mask[20, 14] == 1 and mask[20, 30] == 0
    # the maximum (not the sum) over particles keeps one peak per particle where they touch
    assert centre[20, 10] == pytest.approx(1.0) and centre[20, 17] == pytest.approx(1.0)
    assert centre[20, 13] < 0.2 and centre.max() <= 1.0
    assert abs(mask.sum() - 2 * np.pi * 16) < 12


def test_border_band_is_ignored():
    content = np.zeros((20, 20), bool)
    content[:, :15] = True
    valid = border_valid(content, 3)
    assert valid[10, 10] and not valid[10, 13] and not valid[1, 10] and not valid[10, 17]


def test_normalisation_uses_content_only():
    image = np.zeros((8, 8), np.uint8)
    image[:4] = np.arange(32, dtype=np.uint8).reshape(4, 8)
    content = np.zeros((8, 8), bool)
    content[:4] = True
    out = normalise_image(image, content)
    assert abs(out[content].mean()) < 1e-5 and abs(out[content].std() - 1) < 1e-4
    assert (out[~content] == 0).all()


def test_validation_split_holds_out_whole_micrographs(tiny_data):
    train_items, val_items = split_validation(tiny_data, 0.34, seed=0)
    assert len(val_items) == 1 and len(train_items) == 2
    assert not {i.name for i in train_items} & {i.name for i in val_items}
    assert split_validation(tiny_data, 0.34, seed=0) == (train_items, val_items)
    assert split_validation(tiny_data[:1], 0.5, seed=0) == (tiny_data[:1], [])
    from dataclasses import replace

    mixed = [replace(it, name=f"real/{it.name}") for it in tiny_data]
    mixed += [replace(it, name=f"synthetic/{it.name}") for it in tiny_data]
    _, val_items = split_validation(mixed, 0.5, seed=0, datasets=("real",))
    assert len(val_items) == 2 and all(i.name.startswith("real/") for i in val_items)
    with pytest.raises(InputError, match="match no training micrograph"):
        split_validation(mixed, 0.5, seed=0, datasets=("other",))


def test_data_identity_follows_content_not_order(tiny_data, tmp_path):
    a = data_identity(tiny_data)
    assert a == data_identity(list(reversed(tiny_data)))
    changed = make_micrograph(tmp_path, "m0", seed=99)
    assert data_identity([changed, *tiny_data[1:]])["sha256"] != a["sha256"]


def test_binned_input_is_the_micrograph_binned_into_the_denoised_frame(tiny_data):
    from cryopick.network_input import input_canvas

    binned, frame = input_canvas("binned", tiny_data[0].denoised, tiny_data[0].micrograph)
    assert binned.shape == (64, 64) and binned.dtype == np.uint8 and frame.scale == 2
    inverted, _ = input_canvas(
        "binned", tiny_data[0].denoised, tiny_data[0].micrograph, invert=True
    )
    assert np.corrcoef(binned.ravel(), inverted.ravel())[0, 1] < -0.99
    with pytest.raises(InputError, match="needs the micrograph"):
        input_canvas("binned", tiny_data[0].denoised, None)
    denoised, _ = input_canvas("denoised", tiny_data[0].denoised)
    assert denoised.shape == (64, 64)


def test_config_refuses_unknown_keys_and_missing_gpu():
    with pytest.raises(InputError, match="unknown unet training setting"):
        TrainingConfig.from_config({"learning_rat": 1e-3})
    with pytest.raises(InputError, match="input must be one of"):
        TrainingConfig(input="raw")
    with pytest.raises(InputError, match="multiple of"):
        TrainingConfig(crop=30, depth=2)
    if not torch.cuda.is_available():
        from cryopick.device import resolve_device

        with pytest.raises(InputError, match="no GPU"):
            resolve_device("cuda")


def test_tiny_training_lowers_the_loss(trained):
    history = trained.history
    assert len(history) == 3
    assert history[-1]["train_total"] < 0.85 * history[0]["train_total"]
    assert history[-1]["val_total"] < history[0]["val_total"]
    assert "val_f1" in history[-1]


def test_checkpoint_carries_architecture_config_and_data(trained, tiny_data, tmp_path):
    path = tmp_path / "model.pt"
    save_checkpoint(path, trained.checkpoint)
    model, checkpoint = load_model(path, expected_architecture=Architecture(1, 4, 2))
    assert checkpoint["config"]["crop"] == 32 and checkpoint["input"] == "binned"
    assert checkpoint["data"]["sha256"] == data_identity(tiny_data)["sha256"]
    assert checkpoint["diameter_px"] == pytest.approx(8.0)
    assert checkpoint["picking"]["threshold"] in (0.2, 0.4)
    assert not model.training
    # float16 storage changes the outputs only far below the 8-bit maps written to disk
    from cryopick.unet import AttentionUNet

    full = AttentionUNet(1, 4, 2).eval()
    full.load_state_dict(trained.checkpoint["state_dict"])
    x = torch.randn(1, 1, 32, 32)
    with torch.inference_mode():
        diff = (torch.sigmoid(full(x)) - torch.sigmoid(model(x))).abs().max()
    assert float(diff) < 2e-3
    write_history(trained.history, tmp_path / "h.tsv", tmp_path / "h.png")
    assert (tmp_path / "h.png").stat().st_size > 1000
    assert len((tmp_path / "h.tsv").read_text().splitlines()) == 4


def test_mismatched_checkpoints_are_refused_naming_the_file(trained, tmp_path):
    path = tmp_path / "model.pt"
    save_checkpoint(path, trained.checkpoint)
    with pytest.raises(ModelError, match=r"model\.pt.*differs from the expected"):
        load_model(path, expected_architecture=Architecture(1, 8, 2))
    # weights that do not fit the architecture the file declares
    broken = dict(trained.checkpoint)
    broken["architecture"] = {**broken["architecture"], "depth": 3}
    save_checkpoint(tmp_path / "broken.pt", broken)
    with pytest.raises(ModelError, match=r"broken\.pt.*do not fit"):
        load_model(tmp_path / "broken.pt")
    torch.save({"state_dict": {}}, tmp_path / "foreign.pt")
    with pytest.raises(ModelError, match=r"foreign\.pt.*not a cryopick U-Net checkpoint"):
        load_model(tmp_path / "foreign.pt")
    with pytest.raises(ModelError, match="does not exist"):
        load_model(tmp_path / "missing.pt")


def test_workflow_schema_defaults_are_the_code_defaults():
    """The train_unet rule with default settings trains exactly TrainingConfig()."""
    import yaml

    from tests.conftest import REPO

    schema = yaml.safe_load((REPO / "config" / "schema.yaml").read_text())
    train = schema["properties"]["unet"]["properties"]["train"]["properties"]
    defaults = {
        k: v["default"] for k, v in train.items() if k not in ("name", "datasets", "use_masks")
    }
    assert TrainingConfig.from_config(defaults) == TrainingConfig()


def test_a_given_mask_image_is_the_mask_target(tiny_data, tmp_path):
    from dataclasses import replace

    from PIL import Image

    from cryopick.training import load_example

    mask = np.zeros((128, 128), np.uint8)
    mask[:, :64] = 255
    Image.fromarray(mask).save(tmp_path / "mask.png")
    item = replace(tiny_data[0], mask=str(tmp_path / "mask.png"))
    example = load_example(item, tiny_config(), 8.0, ("mask", "centre"))
    assert example.targets[0][:, :30].all() and not example.targets[0][:, 34:].any()
    assert example.raw.dtype == np.uint8 and example.raw.shape == (64, 64)


def test_blur_jitter_smooths_crops_and_keeps_their_contrast(tiny_data):
    from cryopick.training import load_example, sample_batch

    config = tiny_config(blur_jitter=0.5, contrast_jitter=0.0, noise_jitter=0.0, flips=False)
    examples = [load_example(i, config, 8.0, config.heads) for i in tiny_data]
    sharp, _, _ = sample_batch(
        examples,
        tiny_config(contrast_jitter=0.0, noise_jitter=0.0, flips=False),
        np.random.default_rng(1),
        8.0,
    )
    blurred, _, _ = sample_batch(examples, config, np.random.default_rng(1), 8.0)

    def roughness(x):
        return float((x[..., 1:, :] - x[..., :-1, :]).abs().mean() / x.std())

    assert roughness(blurred) < 0.7 * roughness(sharp)
    assert 0.5 < float(blurred.std()) < 2.0


def test_fine_tuning_starts_from_the_given_weights(trained, tiny_data, tmp_path):
    """With initial_model the training starts from that checkpoint's weights (a learning rate
    of ~0 leaves them as they were), and the checkpoint says what it started from."""
    start = tmp_path / "start.pt"
    save_checkpoint(start, trained.checkpoint)
    still = train(
        tiny_data,
        tiny_config(
            initial_model=str(start),
            learning_rate=1e-12,
            steps=4,
            steps_per_epoch=4,
            diameter_px=8.0,
        ),
        log=lambda message: None,
    )
    for key, value in trained.checkpoint["state_dict"].items():
        if value.is_floating_point() and "running_" not in key:  # BatchNorm statistics move
            torch.testing.assert_close(
                still.checkpoint["state_dict"][key].float(), value.float(), atol=2e-3, rtol=1e-2
            )
    origin = still.checkpoint["data"]["initial_model"]
    assert origin["path"] == str(start)
    assert origin["data_sha256"] == trained.checkpoint["data"]["sha256"]


def test_fine_tuning_on_one_micrograph_keeps_the_started_models_picking(
    trained, tiny_data, tmp_path
):
    """One labelled micrograph leaves none to tune the threshold on: the started model's
    settings are kept, not a generic default."""
    start = tmp_path / "start.pt"
    checkpoint = dict(trained.checkpoint)
    checkpoint["picking"] = {**checkpoint["picking"], "threshold": 0.33, "edge_margin": 1.3}
    save_checkpoint(start, checkpoint)
    tuned = train(
        tiny_data[:1],
        tiny_config(initial_model=str(start), diameter_px=8.0, steps=2, steps_per_epoch=2),
        log=lambda message: None,
    )
    picking = tuned.checkpoint["picking"]
    assert picking["threshold"] == 0.33 and picking["edge_margin"] == 1.3
    assert picking["tuned_on"] == []


def test_fine_tuning_lowers_the_loss_of_the_started_model(trained, tiny_data, tmp_path):
    start = tmp_path / "start.pt"
    save_checkpoint(start, trained.checkpoint)
    tuned = train(
        tiny_data,
        tiny_config(initial_model=str(start), diameter_px=8.0, learning_rate=2e-3),
        log=lambda message: None,
    )
    first, last = tuned.history[0], tuned.history[-1]
    # it starts where the trained model ended, not where a random network starts
    assert first["train_total"] < trained.history[0]["train_total"]
    assert last["val_total"] < trained.history[0]["val_total"]
    assert last["train_total"] <= first["train_total"] * 1.05


def test_fine_tuning_takes_the_started_models_input_lowpass(trained, tiny_data, tmp_path):
    """New models get NEW_MODEL_LOWPASS; a fine-tuned one the started model's (0.15 for models
    that predate the setting), unless the config names one, which must then match."""
    from cryopick.network_input import LOWPASS_SIGMA, NEW_MODEL_LOWPASS

    assert trained.checkpoint["input_lowpass"] == NEW_MODEL_LOWPASS
    start = tmp_path / "start.pt"
    old = {k: v for k, v in trained.checkpoint.items() if k != "input_lowpass"}
    save_checkpoint(start, old)
    quick = dict(initial_model=str(start), diameter_px=8.0, steps=2, steps_per_epoch=2)
    tuned = train(tiny_data, tiny_config(**quick), log=lambda message: None)
    assert tuned.checkpoint["input_lowpass"] == LOWPASS_SIGMA
    assert tuned.checkpoint["config"]["input_lowpass"] == LOWPASS_SIGMA
    with pytest.raises(ModelError, match=r"start\.pt.*input_lowpass 0\.15.*0\.3"):
        train(tiny_data, tiny_config(**quick, input_lowpass=0.3), log=lambda message: None)


def test_fine_tuning_refuses_a_model_for_another_input(trained, tiny_data, tmp_path):
    start = tmp_path / "start.pt"
    save_checkpoint(start, trained.checkpoint)
    with pytest.raises(ModelError, match=r"start\.pt.*input 'binned'"):
        train(
            tiny_data,
            tiny_config(initial_model=str(start), input="normalised", diameter_px=8.0),
            log=lambda message: None,
        )
    with pytest.raises(ModelError, match=r"start\.pt.*differs from the expected"):
        train(
            tiny_data,
            tiny_config(initial_model=str(start), base_width=8, diameter_px=8.0),
            log=lambda message: None,
        )


def test_dataset_weights_set_the_chance_of_each_data_sets_micrographs() -> None:
    """A few real micrographs among a large synthetic corpus get the weight they are given; a
    weight for a data set that is not trained on is an error, not a silent no-op."""
    from cryopick.training import sampling_probabilities

    items = [
        LabelledMicrograph(f"{ds}/m{i}", "d.npz", "l.csv", 10.0)
        for ds, n in (("real", 2), ("synthetic", 6))
        for i in range(n)
    ]
    assert sampling_probabilities(items, {}) is None  # unweighted: drawn as before
    p = sampling_probabilities(items, {"real": 3})
    assert p[:2].sum() == pytest.approx(0.5) and p[2:].sum() == pytest.approx(0.5)
    with pytest.raises(InputError, match=r"dataset_weights name \['reel'\]"):
        sampling_probabilities(items, {"reel": 3})
    with pytest.raises(InputError, match="every micrograph at weight 0"):
        sampling_probabilities(items, {"real": 0, "synthetic": 0})
