"""Picks from probability maps (cryopick.instances): instance separation of touching particles,
a figure of merit that ranks particles above noise, de-duplication and the edge margin."""

import numpy as np
import pytest

from cryopick.denoise import frame_for
from cryopick.instances import MaskPickSettings, picks_from_probability
from cryopick.io import InputError

D = 20.0  # particle diameter in canvas pixels


def discs(size, centres, radius, value=1.0, sigma=None):
    yy, xx = np.mgrid[:size, :size]
    out = np.zeros((size, size), np.float32)
    for cx, cy in centres:
        r2 = (xx - cx) ** 2 + (yy - cy) ** 2
        blob = np.exp(-r2 / (2 * sigma**2)) if sigma else (r2 <= radius**2).astype(np.float32)
        out = np.maximum(out, value * blob)
    return out


TOUCHING = [(60, 60), (78, 60)]  # 18 px apart: one blob once thresholded
ALONE = [(60, 130)]


@pytest.mark.parametrize(
    "separation, expected", [("components", 2), ("distance", 3), ("centre", 3)]
)
def test_touching_particles_are_separated(separation, expected):
    frame = frame_for((200, 200), 200)
    prob = discs(200, TOUCHING + ALONE, D / 2)
    centre = discs(200, TOUCHING + ALONE, 0, sigma=D / 8)
    picks = picks_from_probability(
        prob, frame, D, MaskPickSettings(separation=separation), centre=centre
    )
    assert len(picks) == expected
    if expected == 3:  # every pick within a quarter diameter of a true centre
        truth = np.array(TOUCHING + ALONE, float)
        d = np.hypot(
            picks["x"].to_numpy()[:, None] - truth[:, 0],
            picks["y"].to_numpy()[:, None] - truth[:, 1],
        )
        assert (d.min(axis=1) < D / 4).all() and len(set(d.argmin(axis=1))) == 3


def test_figure_of_merit_ranks_confident_particles_first():
    frame = frame_for((200, 200), 200)
    strong = [(40, 40), (100, 40), (160, 100)]
    weak = [(40, 160), (120, 160)]
    prob = np.maximum(discs(200, strong, D / 2, 0.95), discs(200, weak, D / 2, 0.55))
    centre = np.maximum(discs(200, strong, 0, 0.9, D / 8), discs(200, weak, 0, 0.3, D / 8))
    for separation in ("centre", "distance", "components"):
        picks = picks_from_probability(
            prob, frame, D, MaskPickSettings(separation=separation, edge_margin=0.5), centre=centre
        )
        assert len(picks) == 5
        assert (np.diff(picks["score"]) <= 0).all() and picks["score"].between(0, 1).all()
        # the three strong particles first, each scoring above every weak one
        assert set(zip(picks["x"][:3].round(), picks["y"][:3].round())) == {
            (float(x), float(y)) for x, y in strong
        }
        assert picks["score"][2] > picks["score"][3] + 0.1


def test_edge_margin_and_noise_and_min_distance():
    frame = frame_for((200, 200), 200)
    centres = [(100, 100), (12, 100)]  # the second 12 px from the left edge
    prob = discs(200, centres, D / 2)
    prob[150:152, 150:152] = 1.0  # a speck: far below min_area
    picks = picks_from_probability(
        prob, frame, D, MaskPickSettings(separation="distance", edge_margin=1.0)
    )
    assert len(picks) == 1 and abs(picks["x"][0] - 100) < 1
    picks = picks_from_probability(
        prob, frame, D, MaskPickSettings(separation="distance", edge_margin=0.5)
    )
    assert len(picks) == 2
    # two centre-map peaks closer than min_distance collapse to one pick
    centre = discs(200, [(96, 100), (104, 100)], 0, sigma=1.5)
    one = picks_from_probability(
        prob, frame, D, MaskPickSettings(min_distance=0.5, edge_margin=1.0), centre=centre
    )
    assert len(one) == 1


def test_picks_are_in_the_file_frame():
    frame = frame_for((400, 800), 200)  # binned 4x, content 100 x 200 of the 200 canvas
    prob = discs(200, [(100, 50)], D / 2)
    picks = picks_from_probability(prob, frame, D, MaskPickSettings(separation="components"))
    assert len(picks) == 1
    assert abs(picks["x"][0] - 401.5) < 1 and abs(picks["y"][0] - 201.5) < 1
    assert picks["diameter"][0] == pytest.approx(D * 4)


def test_settings_are_checked():
    with pytest.raises(InputError, match="separation"):
        MaskPickSettings.from_config({"separation": "watershed"})
    with pytest.raises(InputError, match="centre map"):
        picks_from_probability(
            np.zeros((50, 50), np.float32),
            frame_for((50, 50), 50),
            D,
            MaskPickSettings(separation="centre"),
        )
