from dataclasses import replace

import numpy as np
import pandas as pd

from cryopick.denoise import Frame
from cryopick.picking import (
    FinalSettings,
    edge_valid_mask,
    finalize_picks,
    find_peaks,
    picks_from_score_map,
    suppress_close,
)


def test_suppress_close_keeps_best_and_respects_distance():
    x = np.array([0.0, 3.0, 10.0, 11.0])
    y = np.zeros(4)
    score = np.array([0.5, 0.9, 0.7, 0.8])
    kept = suppress_close(x, y, score, 5.0)
    assert list(kept) == [1, 3]


def test_find_peaks_on_gaussian_bumps():
    yy, xx = np.mgrid[0:100, 0:120]
    centres = [(20, 30), (80, 70), (50, 90), (55, 90)]  # last two too close: one survives
    score = sum(
        np.exp(-((xx - x) ** 2 + (yy - y) ** 2) / 4.0) * (1 + i * 0.1)
        for i, (x, y) in enumerate(centres)
    )
    x, y, v = find_peaks(score, min_distance=8, threshold=0.5)
    found = sorted(zip(x.astype(int), y.astype(int)))
    assert found == [(20, 30), (55, 90), (80, 70)]
    assert (np.diff(v) <= 0).all()


def test_edge_margin_excludes_border_and_padding():
    frame = Frame(
        original_height=50, original_width=100, content_height=32, content_width=64, size=64
    )
    valid = edge_valid_mask(frame, 4)
    assert valid[4:28, 4:60].all()
    assert not valid[:4].any() and not valid[28:].any() and not valid[:, 60:].any()


def test_picks_from_score_map_returns_file_coordinates():
    frame = Frame(
        original_height=400, original_width=400, content_height=100, content_width=100, size=100
    )
    score = np.zeros((100, 100), np.float32)
    score[50, 25] = 1.0
    picks = picks_from_score_map(
        score, frame, diameter_px=10, threshold=0.5, min_distance=0.5, edge_margin=0.5
    )
    assert len(picks) == 1
    assert picks.loc[0, "x"] == (25 + 0.5) * 4 - 0.5 and picks.loc[0, "y"] == (50 + 0.5) * 4 - 0.5
    assert picks.loc[0, "diameter"] == 40


def test_finalize_drops_edge_low_score_and_duplicates():
    frame = Frame(200, 300, 100, 150, 150)
    picks = pd.DataFrame(
        {
            "x": [100.0, 104.0, 5.0, 150.0],
            "y": [100.0, 100.0, 100.0, 150.0],
            "score": [0.4, 0.9, 0.8, 0.05],
            "diameter": np.nan,
        }
    )
    out = finalize_picks(
        picks, frame, 20, FinalSettings(min_score=0.1, min_distance=0.5, edge_margin=0.5)
    )
    assert out[["x", "y"]].to_numpy().tolist() == [[104.0, 100.0]]
    assert out["diameter"].tolist() == [20]


def _denoised(image: np.ndarray, pixel_size: float = 2.0):
    from cryopick.denoise import Denoised, DenoiseSettings, denoise_image, frame_for

    frame = frame_for(image.shape, 256)
    canvas = denoise_image(image, DenoiseSettings(size=256), frame)
    return Denoised(canvas, frame, pixel_size * frame.scale)


def test_baseline_refuses_pure_noise_and_says_so(caplog):
    """Issue 13 (9e): the blob detector finds maxima in anything; on pure noise it must give
    no picks and a WARNING naming the micrograph, not hundreds of picks."""
    from cryopick.picking import BlobSettings, pick_blobs

    noise = np.random.default_rng(3).standard_normal((600, 800)).astype(np.float32)
    denoised = _denoised(noise)
    settings = BlobSettings(sigma_factor=0.25, threshold=1.5, edge_margin=0.5)
    unchecked = pick_blobs(
        denoised, 40 / denoised.frame.scale, replace(settings, noise_check=False)
    )
    assert len(unchecked) > 20  # what the baseline did before
    with caplog.at_level("WARNING"):
        picks = pick_blobs(denoised, 40 / denoised.frame.scale, settings, name="noise_007")
    assert len(picks) == 0 and list(picks.columns) == list(unchecked.columns)
    assert "noise_007: no baseline picks: its blobs look like pure noise" in caplog.text


def test_baseline_noise_check_keeps_particles():
    from cryopick.picking import BlobSettings, blob_response, blob_signal, pick_blobs
    from tests.conftest import disc_micrograph

    image, centres = disc_micrograph((600, 800), n=25, diameter=40, seed=4)
    denoised = _denoised(image)
    diameter = 40 / denoised.frame.scale
    settings = BlobSettings(sigma_factor=0.25, threshold=3.0, edge_margin=0.5)
    response = blob_response(denoised.image, diameter, settings, denoised.frame.content_mask)
    signal = blob_signal(
        response, edge_valid_mask(denoised.frame, 0.5 * diameter), diameter, settings
    )
    assert not signal.looks_like_noise
    assert len(pick_blobs(denoised, diameter, settings)) >= 20


def test_blob_signal_dark_excess_is_a_binomial_test():
    from cryopick.picking import BlobSignal

    assert BlobSignal(0.0, 3, 0).dark_excess_p_value == 0.125  # three coin tosses
    assert BlobSignal(0.0, 3, 0).looks_like_noise  # too few blobs to tell
    assert not BlobSignal(0.0, 20, 2).looks_like_noise
    assert not BlobSignal(0.3, 10, 10).looks_like_noise  # the strong tail alone is enough
    assert BlobSignal(0.0, 0, 0).dark_excess_p_value == 1.0
