"""The "normalised" network input: the same field looks the same to the network whether the
file is raw or filtered, at any pixel size, dose scale or contrast polarity."""

import cv2
import numpy as np
import pytest

from cryopick.denoise import bin_to_frame, frame_for, to_uint8
from cryopick.io import write_mrc
from cryopick.network_input import (
    normalise_image,
    normalise_particle_scale,
    normalised_canvas,
    rescale_factor,
    resize_canvas,
)
from cryopick.synthetic import SyntheticSettings, generate_micrograph

MODEL_PX = 27.0


def _field(rendering="raw", size=512, pixel_size=2.0, diameter=120.0):
    settings = SyntheticSettings(
        height=size,
        width=size,
        pixel_size=pixel_size,
        particle_diameter=diameter,
        particles_per_micrograph=60,
        dose=30.0,
        rendering=rendering,
        atoms_per_volume=800,
    )
    return generate_micrograph(settings, 0, 0).image.astype(np.float32)


def _network_view(image, diameter_file_px, normalised=True):
    """What the network sees: the canvas at the model's particle size."""
    frame = frame_for(image.shape, max(image.shape))
    d = diameter_file_px / frame.scale
    factor = rescale_factor(d, MODEL_PX)
    if normalised:
        view = normalise_particle_scale(bin_to_frame(image, frame), frame.content_mask, d)
    else:  # the "binned" input of the earlier models
        view = to_uint8(bin_to_frame(image, frame), frame.content_mask)
    return resize_canvas(normalise_image(view, frame.content_mask), factor)


def _correlation(a, b):
    a, b = a - a.mean(), b - b.mean()
    return float((a * b).sum() / np.sqrt((a * a).sum() * (b * b).sum()))


@pytest.fixture(scope="module")
def renderings():
    return {r: _field(r) for r in ("raw", "filtered_8bit")}


def test_raw_and_filtered_renderings_of_one_field_look_alike(renderings):
    raw, filtered = renderings["raw"], renderings["filtered_8bit"]
    normalised = _correlation(_network_view(raw, 60.0), _network_view(filtered, 60.0))
    binned = _correlation(_network_view(raw, 60.0, False), _network_view(filtered, 60.0, False))
    assert normalised > 0.8  # measured 0.84-0.93 over pixel sizes 1-4 A and 100-300 A
    assert normalised > binned + 0.2


def test_pixel_size_does_not_change_the_view(renderings):
    """The same field recorded at twice the pixel size (binned 2x) gives the same view once
    both are at the model's particle size."""
    raw = renderings["raw"]
    coarse = cv2.resize(raw, (256, 256), interpolation=cv2.INTER_AREA)
    fine_view, coarse_view = _network_view(raw, 60.0), _network_view(coarse, 30.0)
    assert fine_view.shape == coarse_view.shape
    assert _correlation(fine_view, coarse_view) > 0.9


def test_dose_scale_offset_and_polarity_do_not_change_the_view(renderings, tmp_path):
    raw = renderings["raw"]
    frame = frame_for(raw.shape, 512)
    write_mrc(tmp_path / "a.mrc", raw, 2.0)
    write_mrc(tmp_path / "b.mrc", 7.5 * raw + 300.0, 2.0)  # another dose and detector offset
    write_mrc(tmp_path / "c.mrc", -raw, 2.0)  # bright particles
    a = normalised_canvas(str(tmp_path / "a.mrc"), frame, 60.0)
    b = normalised_canvas(str(tmp_path / "b.mrc"), frame, 60.0)
    c = normalised_canvas(str(tmp_path / "c.mrc"), frame, 60.0, invert=True)
    np.testing.assert_allclose(a, b, atol=1e-3)
    np.testing.assert_allclose(a, c, atol=1e-3)


def test_view_is_robustly_scaled_and_zero_outside_the_content():
    image = np.random.default_rng(0).normal(size=(300, 500)).astype(np.float32)
    image[:40, :40] = -1000.0  # a contaminant far darker than anything else
    frame = frame_for(image.shape, 512)
    view = normalise_particle_scale(bin_to_frame(image, frame), frame.content_mask, 20.0)
    content = frame.content_mask
    assert view.dtype == np.float32 and (view[~content] == 0).all()
    assert view.min() >= -5.0 and view.max() <= 5.0
    inside = view[content]
    assert abs(np.median(inside)) < 0.05
    assert 0.8 < 1.4826 * np.median(np.abs(inside - np.median(inside))) < 1.2
