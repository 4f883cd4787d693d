"""Batched U-Net inference, the 8-bit map files, and picks from the centre map."""

import json

import numpy as np
import pytest
import torch

from cryopick.denoise import frame_for
from cryopick.inference import (
    FALLBACK_PICKING,
    adapt_batchnorm,
    model_scale,
    operating_point,
    pick_score_map,
    picks_from_prediction,
    predict,
)
from cryopick.network_input import network_image
from cryopick.probability_maps import load_prediction, save_prediction
from cryopick.training import draw_targets
from cryopick.unet import AttentionUNet


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    net = AttentionUNet(1, 4, 3, ("mask", "centre"))
    # give BatchNorm non-trivial running statistics so eval mode is really exercised
    net.train()
    with torch.no_grad():
        for _ in range(3):
            net(torch.randn(4, 1, 32, 32))
    return net.eval()


def canvases(n, size=48, seed=0):
    rng = np.random.default_rng(seed)
    return [rng.integers(0, 256, (size, size), dtype=np.uint8) for _ in range(n)]


def test_batched_equals_one_by_one(model):
    images = canvases(5)
    together = predict(model, images, batch_size=4)
    alone = [predict(model, [im], batch_size=1)[0] for im in images]
    for a, b in zip(together, alone):
        assert set(a) == {"mask", "centre"}
        for head in a:
            assert a[head].shape == (48, 48) and a[head].dtype == np.float32
            np.testing.assert_allclose(a[head], b[head], atol=1e-5)
    # each image is normalised on its own: its maps do not depend on its batch neighbours
    shuffled = predict(model, [images[3], images[0]], batch_size=2)
    np.testing.assert_allclose(shuffled[0]["centre"], together[3]["centre"], atol=1e-5)


def test_averaging_over_all_symmetries_makes_maps_rotation_equivariant(model):
    image = canvases(1, 32)[0]
    plain = predict(model, [image, np.rot90(image).copy()], symmetries=1)
    assert np.abs(np.rot90(plain[0]["centre"]) - plain[1]["centre"]).max() > 1e-4
    averaged = predict(model, [image, np.rot90(image).copy()], symmetries=8)
    np.testing.assert_allclose(np.rot90(averaged[0]["centre"]), averaged[1]["centre"], atol=1e-6)
    with pytest.raises(ValueError, match="symmetries"):
        predict(model, [image], symmetries=3)


def test_adapted_batchnorm_measures_the_images_and_leaves_the_model_alone(model):
    images = canvases(3, size=64, seed=4)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    adapted = adapt_batchnorm(model, images)
    for key, value in model.state_dict().items():
        assert torch.equal(value, before[key]), key
    assert not adapted.training
    # the first BatchNorm now normalises by the mean of its input over the images
    conv, norm = adapted.encoder[0].block[0], adapted.encoder[0].block[1]
    with torch.no_grad():
        first = torch.cat(
            [conv(torch.from_numpy(network_image(im, None, 1.0))[None, None]) for im in images]
        )
    np.testing.assert_allclose(
        norm.running_mean.numpy(), first.mean(dim=(0, 2, 3)).numpy(), rtol=1e-4, atol=1e-5
    )
    # the order of the images does not matter, and the same images give the same model
    again = adapt_batchnorm(model, images[::-1])
    for (key, a), b in zip(adapted.state_dict().items(), again.state_dict().values()):
        if a.is_floating_point():
            torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5, msg=key)
    maps = predict(adapted, images[:1])[0]
    assert set(maps) == {"mask", "centre"}


def test_mixed_sizes_and_rescaling_return_maps_of_each_canvas(model):
    images = canvases(2, 48) + canvases(1, 40, seed=1)
    out = predict(model, images, batch_size=8, scale=0.5)
    assert [o["mask"].shape for o in out] == [(48, 48), (48, 48), (40, 40)]
    assert all(0 <= o["centre"].min() and o["centre"].max() <= 1 for o in out)


def test_model_scale_brings_particles_to_the_training_size():
    frame = frame_for((4096, 4096), 1024)
    assert model_scale({"diameter_px": 13.5}, frame, 108.0) == pytest.approx(0.5)
    assert model_scale({"diameter_px": 27.5}, frame, 108.0) == 1.0  # within 5%: untouched
    assert model_scale({}, frame, 108.0) == 1.0


def test_prediction_file_is_8_bit_and_round_trips(tmp_path):
    frame = frame_for((200, 100), 64)
    prob = np.linspace(0, 1, 64 * 64, dtype=np.float32).reshape(64, 64)
    path = tmp_path / "m.npz"
    save_prediction(path, {"mask": prob, "centre": 1 - prob}, frame, {"device": "cpu"})
    with np.load(path) as data:
        assert data["probability"].dtype == np.uint8 and data["centre"].dtype == np.uint8
        assert data["probability"].max() == 255
        assert json.loads(str(data["frame"]))["original_height"] == 200
    maps, loaded_frame, metadata = load_prediction(path)
    assert loaded_frame == frame and metadata == {"device": "cpu"}
    np.testing.assert_allclose(maps["mask"], prob, atol=0.5 / 255 + 1e-6)


def test_one_reader_for_unet_and_crf_map_files(tmp_path):
    """U-Net maps and CRF-refined maps go through one reader; what a caller needs is checked."""
    from cryopick.crf import CrfSettings, save_refined
    from cryopick.io import InputError

    save_refined(tmp_path / "crf.npz", np.array([[0.2, 0.9]]), CrfSettings())
    maps, frame, metadata = load_prediction(tmp_path / "crf.npz")
    assert set(maps) == {"mask"} and frame is None and metadata == {}
    with pytest.raises(InputError, match=r"crf\.npz: no 'frame' array"):
        load_prediction(tmp_path / "crf.npz", require=("frame",))
    np.savez(
        tmp_path / "bad.npz", probability=np.zeros((4, 4), np.uint8), centre=np.full((4, 4), 2.0)
    )
    with pytest.raises(InputError, match=r"float centre map must hold values in \[0, 1\]"):
        load_prediction(tmp_path / "bad.npz")


def test_picks_from_a_centre_map_separate_touching_particles():
    frame = frame_for((400, 400), 100)  # 4x binning
    xs, ys = np.array([40.0, 48.0, 70.0]), np.array([50.0, 50.0, 30.0])  # first two touch
    mask, centre = draw_targets((100, 100), xs, ys, 10.0, 1.25)
    picks = picks_from_prediction(
        {"mask": mask, "centre": centre},
        frame,
        10.0,
        threshold=0.5,
        min_distance=0.5,
        edge_margin=0.5,
    )
    assert len(picks) == 3
    got = sorted(zip(picks["x"].round(1), picks["y"].round(1)))
    want = sorted(zip(*frame.to_original(xs, ys)))
    np.testing.assert_allclose(np.array(got), np.array(want), atol=1e-6)
    assert (picks["diameter"] == 40.0).all()
    # an edge margin drops centres close to the border
    near_edge = picks_from_prediction({"centre": centre}, frame, 10.0, 0.5, 0.5, edge_margin=3.5)
    assert len(near_edge) == 2 and (near_edge["x"] < 200).all()


def test_configured_picking_settings_override_the_tuned_ones_one_by_one():
    tuned = {"threshold": 0.2, "min_distance": 0.5, "edge_margin": 1.0, "symmetries": 4}
    assert operating_point(tuned) == {"threshold": 0.2, "min_distance": 0.5, "edge_margin": 1.0}
    assert operating_point(tuned, edge_margin=0.75) == {
        "threshold": 0.2,
        "min_distance": 0.5,
        "edge_margin": 0.75,
    }
    # a configured 0 is a setting, not "unset"; a model without tuned settings falls back
    assert operating_point({}, threshold=0.0) == {"threshold": 0.0} | {
        k: v for k, v in FALLBACK_PICKING.items() if k != "threshold"
    }


def test_mask_only_model_picks_peaks_of_the_smoothed_mask():
    mask, _ = draw_targets((60, 60), np.array([20.0, 40.0]), np.array([30.0, 30.0]), 12.0, 1.5)
    score = pick_score_map({"mask": mask}, 12.0)
    assert score.shape == (60, 60)
    assert score[30, 20] > score[30, 30] and score[30, 40] > score[30, 30]


# ----------------------------------------------------------------------------------------------
# the workflow's U-Net rules, end to end on tiny data (trains a tiny model with train_unet)
# ----------------------------------------------------------------------------------------------

TINY_TRAINING = {
    "datasets": ["small"],
    "base_width": 4,
    "depth": 2,
    "crop": 32,
    "batch_size": 4,
    "steps": 30,
    "steps_per_epoch": 15,
    "max_minutes": 5,
    "threads": 1,
    "diameter_px": None,
    "thresholds": [0.2, 0.4],
    "min_distances": [0.5],
    "edge_margins": [0.5],
}


@pytest.fixture(scope="module")
def unet_workflow(tmp_path_factory):
    from tests.conftest import SMALL_DENOISE, SPARSE_BASELINE, make_dataset, run_workflow

    dataset = make_dataset(tmp_path_factory.mktemp("unet_data"), n_micrographs=3)
    workdir = tmp_path_factory.mktemp("unet_run")
    config = {
        "datasets": {"small": dataset},
        "denoise": SMALL_DENOISE,
        "baseline": SPARSE_BASELINE,
        "unet": {
            "enabled": True,
            "model": "train",
            "device": "cpu",
            "threads": 1,
            "batch_size": 2,
            "train": TINY_TRAINING,
        },
    }
    run_workflow(workdir, config)
    return workdir, config, run_workflow


@pytest.mark.slow
def test_workflow_trains_predicts_and_scores_the_unet_stage(unet_workflow):
    import pandas as pd

    from cryopick.checkpoint import load_model

    workdir, _, _ = unet_workflow
    model, checkpoint = load_model(workdir / "results/unet_training/model/model.pt")
    assert checkpoint["config"]["steps"] == 30 and checkpoint["data"]["n_micrographs"] == 3
    assert (workdir / "results/unet_training/model/loss.png").stat().st_size > 1000
    # one batch of three micrographs: one job, the model loaded once
    log = (workdir / "results/small/logs/unet_predict/batch_00000.log").read_text()
    assert "on cpu" in log and "device used: cpu" in log and log.count("U-Net ") == 1
    for name in ("mic_000", "mic_001", "mic_002"):
        with np.load(workdir / f"results/small/unet/batch_00000/{name}.npz") as data:
            assert data["probability"].dtype == np.uint8 and data["probability"].shape == (256, 256)
            assert data["centre"].dtype == np.uint8
            assert "cpu" in json.loads(str(data["metadata"]))["device"]
        assert (workdir / f"results/small/unet_picks/batch_00000/{name}.star").exists()
    summary = pd.read_csv(workdir / "results/small/metrics/summary.tsv", sep="\t")
    assert list(summary["stage"]) == ["baseline", "unet", "final"]


@pytest.mark.slow
def test_changed_training_settings_retrain_and_unchanged_ones_do_not(unet_workflow):
    workdir, config, run_workflow = unet_workflow
    unchanged = run_workflow(workdir, config, "-n")
    assert "Nothing to be done" in unchanged.stdout + unchanged.stderr
    changed = json.loads(json.dumps(config))
    changed["unet"]["train"]["steps"] = 31
    dry = run_workflow(workdir, changed, "-n")
    assert "train_unet" in dry.stdout and "unet_predict" in dry.stdout
    # a new picking threshold re-picks but never re-runs the network
    repick = json.loads(json.dumps(config))
    repick["unet"]["threshold"] = 0.3
    dry = run_workflow(workdir, repick, "-n")
    assert "pick_unet" in dry.stdout
    assert "unet_predict" not in dry.stdout and "train_unet" not in dry.stdout
