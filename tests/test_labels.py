"""Label maps from coordinates: discs, and refined masks that follow the visible support."""

from __future__ import annotations

import math

import cv2
import numpy as np
import pytest

from cryopick.denoise import frame_for, to_uint8
from cryopick.labels import disc_label_map, network_label_map, particle_polarity, refined_label_map
from cryopick.synthetic import SyntheticSettings, generate_micrograph

PLAIN = dict(
    carbon_probability=0.0,
    contaminants_per_um2=0.0,
    aggregates_per_um2=0.0,
    thick_ice_probability=0.0,
)


def iou(a: np.ndarray, b: np.ndarray) -> float:
    a, b = a > 0, b > 0
    return float((a & b).sum() / (a | b).sum())


def test_disc_label_map_draws_discs_of_the_labelled_diameter():
    mask = disc_label_map((100, 120), [30.0, 90.5], [40.0, 60.0], [20.0, 11.0])
    assert mask.dtype == np.uint8 and set(np.unique(mask)) == {0, 255}
    assert mask[40, 30] == 255 and mask[40, 40] == 255 and mask[40, 41] == 0
    assert (mask[:, :60] > 0).sum() == pytest.approx(math.pi * 10**2, rel=0.05)
    assert (mask[:, 60:] > 0).sum() == pytest.approx(math.pi * 5.5**2, rel=0.1)


def test_disc_label_map_clips_at_the_edges_and_accepts_no_particles():
    mask = disc_label_map((50, 50), [0.0], [49.0], 20.0)
    assert mask[49, 0] == 255 and (mask > 0).sum() < math.pi * 100 / 2
    assert not disc_label_map((50, 50), [], [], 20.0).any()
    with pytest.raises(ValueError):
        disc_label_map((50, 50), [1.0], [1.0], 0.0)


def _visible_particles(kinds):
    settings = SyntheticSettings(
        height=512,
        width=512,
        pixel_size=7.08,
        particles_per_micrograph=120,
        particle_count_spread=0.0,
        volume_kinds=kinds,
        noise="snr",
        snr=1.0,
        defocus_range=(1.0, 1.5),
        **PLAIN,
    )
    m = generate_micrograph(settings, 0, 3)
    image = to_uint8(cv2.GaussianBlur(m.image, (0, 0), 1.0))
    return m, image


def test_refined_labels_follow_the_particle_support_better_than_discs():
    m, image = _visible_particles(("globular", "elongated", "ring", "oligomer", "multidomain"))
    c = m.coordinates
    disc = disc_label_map(image.shape, c.x, c.y, c.diameter)
    refined = refined_label_map(image, c.x, c.y, c.diameter)
    assert iou(refined, m.particle_mask) > iou(disc, m.particle_mask) + 0.1
    # thin particles: a disc is mostly ice, the refined mask is not
    m, image = _visible_particles(("elongated",))
    c = m.coordinates
    disc = disc_label_map(image.shape, c.x, c.y, c.diameter)
    refined = refined_label_map(image, c.x, c.y, c.diameter)
    assert iou(refined, m.particle_mask) > 1.5 * iou(disc, m.particle_mask)


def test_refined_labels_do_not_depend_on_the_contrast_convention():
    m, image = _visible_particles(("globular", "oligomer"))
    c = m.coordinates
    assert particle_polarity(image, c.x, c.y, c.diameter)
    assert not particle_polarity(255 - image, c.x, c.y, c.diameter)
    dark = refined_label_map(image, c.x, c.y, c.diameter)
    light = refined_label_map(255 - image, c.x, c.y, c.diameter)
    assert iou(dark, light) > 0.95


def test_refined_labels_fall_back_to_discs_where_nothing_is_visible():
    rng = np.random.default_rng(0)
    flat = rng.normal(128, 5, size=(200, 200)).clip(0, 255).astype(np.uint8)
    x, y = [50.0, 140.0], [60.0, 130.0]
    refined = refined_label_map(flat, x, y, 30.0, particles_dark=True)
    assert np.array_equal(refined, disc_label_map(flat.shape, x, y, 30.0))


def test_refined_labels_keep_touching_particles_apart():
    image = np.full((120, 160), 200, dtype=np.uint8)
    cv2.circle(image, (50, 60), 20, 60, -1)
    cv2.circle(image, (88, 60), 20, 60, -1)  # overlapping the first
    refined = refined_label_map(image, [50.0, 88.0], [60.0, 60.0], 40.0)
    # each pixel goes to the nearer centre: the two halves meet at the bisector
    assert refined[60, 50] == 255 and refined[60, 88] == 255
    assert (refined > 0).sum() == pytest.approx((image < 128).sum(), rel=0.1)


def test_network_label_map_maps_file_coordinates_onto_the_canvas():
    frame = frame_for((400, 800), 256)  # wide micrograph: content 128 rows x 256 columns
    canvas = np.full((256, 256), 128, dtype=np.uint8)
    mask = network_label_map(canvas, frame, [400.0, 790.0], [200.0, 395.0], 50.0)
    xn, yn = frame.to_network(np.array([400.0]), np.array([200.0]))
    assert mask[int(round(yn[0])), int(round(xn[0]))] == 255
    assert (mask[int(round(yn[0]))] > 0).sum() == pytest.approx(50 / frame.scale, abs=2)
    assert not mask[frame.content_height :].any()  # padding stays background
    with pytest.raises(ValueError, match="label method"):
        network_label_map(canvas, frame, [1.0], [1.0], 5.0, method="blob")


@pytest.mark.parametrize("suffix", [".csv", ".star", ".box"])
def test_label_map_file_reads_every_label_format(tmp_path, suffix):
    import pandas as pd

    from cryopick.denoise import save_denoised
    from cryopick.io import write_coordinates
    from cryopick.labels import label_map_file

    frame = frame_for((512, 512), 256)  # binned 2x
    image = np.full((256, 256), 200, dtype=np.uint8)
    cv2.circle(image, (64, 64), 10, 50, -1)  # a particle of 40 px in the file, 20 on canvas
    save_denoised(tmp_path / "m.npz", image, frame, pixel_size=4.0)  # 2 A/px in the file
    picks = pd.DataFrame({"x": [128.5], "y": [128.5], "score": [1.0], "diameter": [40.0]})
    labels = tmp_path / f"m{suffix}"
    write_coordinates(labels, picks, diameter=40.0)
    out = tmp_path / "labels" / "m.png"
    counts = label_map_file(tmp_path / "m.npz", labels, out, diameter_a=80.0, method="disc")
    mask = cv2.imread(str(out), cv2.IMREAD_UNCHANGED)
    assert counts["particles"] == 1 and mask.shape == (256, 256)
    # a disc of 20 canvas pixels at (64, 64): .star has no diameter, 80 A / 2 A/px is used
    assert mask[64, 64] == 255 and (mask > 0).sum() == pytest.approx(math.pi * 100, rel=0.1)
    refined = label_map_file(
        tmp_path / "m.npz", labels, tmp_path / "r.png", diameter_a=80.0, method="refined"
    )
    assert refined["pixels"] == pytest.approx((image < 128).sum(), rel=0.15)
