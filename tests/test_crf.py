"""Dense CRF on synthetic probability maps with a known truth."""

import json

import cv2
import numpy as np
import pytest

from cryopick.crf import CrfSettings, crf_refine, run_crf, save_refined
from cryopick.denoise import frame_for, save_denoised
from cryopick.io import InputError
from cryopick.probability_maps import load_probability

N = 96


def scene(noise: float, seed: int = 0):
    """Three bright discs of radius 10 on a darker background, and an over-wide, blurry
    probability (discs of radius 14, Gaussian-blurred) such as an imprecise U-Net gives."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:N, :N]
    truth = np.zeros((N, N), bool)
    wide = np.zeros((N, N), np.float32)
    for cy, cx in [(25, 25), (70, 30), (50, 72)]:
        truth |= (yy - cy) ** 2 + (xx - cx) ** 2 <= 10**2
        wide[(yy - cy) ** 2 + (xx - cx) ** 2 <= 14**2] = 1
    prob = np.clip(cv2.GaussianBlur(wide, (0, 0), 4) * 0.9 + 0.05, 0, 1)
    image = np.clip(70 + 120 * truth + rng.normal(0, noise, (N, N)), 0, 255).astype(np.uint8)
    return truth, prob, image


def iou(a: np.ndarray, b: np.ndarray) -> float:
    return float((a & b).sum() / (a | b).sum())


@pytest.mark.parametrize("noise", [0.0, 8.0])
def test_crf_sharpens_a_blurry_map_towards_the_true_discs(noise: float) -> None:
    truth, prob, image = scene(noise)
    before = iou(prob > 0.5, truth)
    refined = crf_refine(prob, image)  # Chung & Chou's setting
    after = iou(refined > 0.5, truth)
    assert refined.dtype == np.float32 and refined.shape == prob.shape
    assert 0 <= refined.min() and refined.max() <= 1
    assert after > before + 0.1, (before, after)
    # a stronger bilateral weight pulls the mask onto the discs almost exactly
    assert iou(crf_refine(prob, image, CrfSettings(compat=3)) > 0.5, truth) > 0.95


def test_constant_inputs_do_not_crash() -> None:
    flat = crf_refine(np.full((32, 40), 0.5, np.float32), np.full((32, 40), 128, np.uint8))
    assert flat.shape == (32, 40) and np.isfinite(flat).all()
    certain = crf_refine(
        np.ones((16, 16), np.float32), np.zeros((16, 16), np.uint8), CrfSettings(gaussian_compat=3)
    )
    assert (certain > 0.5).all()
    with pytest.raises(InputError, match="one shape"):
        crf_refine(np.zeros((8, 8)), np.zeros((8, 9), np.uint8))


def test_settings_from_config() -> None:
    settings = CrfSettings.from_config({"sdims": 5, "schan": 2, "iterations": 4})
    assert settings.sdims == (5.0, 5.0) and settings.schan == 2 and settings.iterations == 4
    assert CrfSettings.from_config({"sdims": [3, 4]}).sdims == (3.0, 4.0)
    for bad in ({"sdims": [1, 2, 3]}, {"schan": 0}, {"iterations": 0}, {"gaussian_sdims": -1}):
        with pytest.raises(InputError):
            CrfSettings.from_config(bad)


def test_run_crf_reads_unet_and_denoised_canvases(tmp_path) -> None:
    truth, prob, image = scene(4.0)
    frame = frame_for((4 * N, 4 * N), N)
    save_denoised(tmp_path / "mic.denoised.npz", image, frame, pixel_size=4.0)
    np.savez_compressed(
        tmp_path / "mic.unet.npz", probability=np.round(prob * 255).astype(np.uint8)
    )
    out = tmp_path / "crf" / "mic.npz"
    stats = run_crf(
        [tmp_path / "mic.unet.npz"], [tmp_path / "mic.denoised.npz"], [out], CrfSettings()
    )
    assert stats[0]["fraction_after"] < stats[0]["fraction_before"]
    with np.load(out) as data:
        assert data["probability"].dtype == np.uint8 and data["mask"].dtype == bool
        np.testing.assert_array_equal(data["mask"], data["probability"] > 127)
        assert json.loads(str(data["settings"]))["schan"] == 0.5
    refined = load_probability(out)  # the CRF output reads like a U-Net map
    assert iou(refined > 0.5, truth) > iou(prob > 0.5, truth)
    small = tmp_path / "small.unet.npz"
    np.savez_compressed(small, probability=np.zeros((8, 8), np.uint8))
    with pytest.raises(InputError, match="does not match"):
        run_crf([small], [tmp_path / "mic.denoised.npz"], [tmp_path / "x.npz"], CrfSettings())


def test_probability_files_are_checked(tmp_path) -> None:
    np.savez(tmp_path / "float.npz", probability=np.array([[0.0, 0.25], [1.0, 0.5]]))
    np.testing.assert_allclose(load_probability(tmp_path / "float.npz"), [[0, 0.25], [1, 0.5]])
    np.savez(tmp_path / "wrong_key.npz", prob=np.zeros((4, 4)))
    np.savez(tmp_path / "out_of_range.npz", probability=np.full((4, 4), 3.0))
    (tmp_path / "text.npz").write_text("hello")
    for name, message in [
        ("wrong_key", "no 'probability'"),
        ("out_of_range", r"\[0, 1\]"),
        ("text", "not a readable"),
        ("missing", "not a readable"),
    ]:
        with pytest.raises(InputError, match=message):
            load_probability(tmp_path / f"{name}.npz")
    save_refined(tmp_path / "r.npz", np.array([[0.2, 0.9]]), CrfSettings())
    np.testing.assert_array_equal(load_probability(tmp_path / "r.npz") > 0.5, [[False, True]])
