"""Synthetic micrographs: ground truth where the particles are, CTF, noise, masks, determinism."""

from __future__ import annotations

import json
import math
from dataclasses import replace
from pathlib import Path

import cv2
import mrcfile
import numpy as np
import pytest
from scipy import stats
from scipy.spatial.transform import Rotation

from cryopick import synthetic
from cryopick.ctf import (
    CTFParams,
    ctf_rfft,
    electron_wavelength,
    estimate_defocus,
    interaction_constant,
    radial_power_spectrum,
)
from cryopick.io import InputError, read_coordinates, read_micrograph
from cryopick.synthetic import (
    SyntheticSettings,
    generate_micrograph,
    micrograph_index,
    micrograph_outputs,
    synthetic_micrograph_names,
    volume_family,
    write_dataset,
    write_micrograph,
)
from cryopick.volumes import (
    ALL_VOLUME_KINDS,
    VOLUME_KINDS,
    make_volume,
    project,
    random_rotations,
    volume_from_mrc,
)

# A plain specimen: no carbon, contaminants, aggregates or thick ice, flat ice, no drift.
PLAIN = dict(
    carbon_probability=0.0,
    contaminants_per_um2=0.0,
    aggregates_per_um2=0.0,
    thick_ice_probability=0.0,
    ice_gradient=0.0,
    drift=0.0,
)


def small(**kw) -> SyntheticSettings:
    base = dict(
        height=256,
        width=256,
        pixel_size=7.08,
        particles_per_micrograph=40,
        particle_count_spread=0.0,
    )
    base.update(kw)
    return SyntheticSettings(**base)


# ---------------------------------------------------------------------------------------------
# physics helpers
# ---------------------------------------------------------------------------------------------


def test_wavelength_and_interaction_constant_match_textbook_values():
    assert electron_wavelength(300) == pytest.approx(0.019687, rel=1e-4)
    assert electron_wavelength(200) == pytest.approx(0.025079, rel=1e-4)
    assert interaction_constant(300) == pytest.approx(6.526e-4, rel=2e-3)


def test_ctf_is_negative_at_low_frequency_and_zero_where_the_formula_says():
    ctf = CTFParams(defocus_u=15_000, defocus_v=15_000, amplitude_contrast=0.1)
    assert ctf.value(np.array([0.0]))[0] == pytest.approx(-0.1)
    assert ctf.value(np.array([0.01]))[0] < -0.1  # dark particles under focus
    zeros = ctf.zeros(4)
    assert np.allclose(ctf.value(zeros), 0, atol=1e-9)
    assert np.all(np.diff(zeros) > 0)
    flipped = ctf_rfft((64, 64), 2.0, ctf, phase_flipped=True)
    assert flipped.max() <= 0 and flipped.min() < -0.9


@pytest.mark.parametrize("pixel_size, diameter", [(1.0, 100.0), (2.5, 200.0)])
def test_defocus_is_read_from_the_thon_rings(pixel_size, diameter):
    # the exclusion stage folds a lattice's defocus ghosts back with it: a tenth of a
    # micrometre is well inside what that needs
    settings = SyntheticSettings(
        height=1024,
        width=1024,
        pixel_size=pixel_size,
        particle_diameter=diameter,
        particles_per_micrograph=40,
        dose=30,
    )
    m = generate_micrograph(settings, 0, seed=21)
    true = 0.5 * (m.ctf.defocus_u + m.ctf.defocus_v)
    found, fit = estimate_defocus(m.image, pixel_size)
    assert found == pytest.approx(true, abs=1000.0)
    assert fit > 0.5
    noise = np.random.default_rng(0).normal(size=(1024, 1024)).astype(np.float32)
    # no rings: the best of ~470 trial defoci fits noise at about 0.22, below the exclusion
    # stage's ctf_fit (0.33), from which it trusts a defocus
    assert estimate_defocus(noise, pixel_size)[1] < 0.3


# ---------------------------------------------------------------------------------------------
# volumes and projections
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ALL_VOLUME_KINDS)
def test_volume_kinds_have_the_requested_extent_and_projections_conserve_mass(kind):
    rng = np.random.default_rng(0)
    vol = make_volume(rng, kind, 150.0, n_atoms=800)
    radius = np.sqrt((vol.coords.astype(np.float64) ** 2).sum(axis=1)).max()
    assert 2 * radius == pytest.approx(150.0, rel=1e-4)
    centre = np.average(vol.coords.astype(np.float64), axis=0, weights=vol.weights)
    assert np.abs(centre).max() < 1e-3  # centred on its centre of mass
    box, x0, y0 = project(vol, random_rotations(rng, 1).as_matrix()[0], 3.0, (40.3, 50.7))
    # a projection holds the whole mass (potential x volume), its centroid at the centre
    assert box.sum() * 9.0 == pytest.approx(vol.weights.sum(), rel=1e-3)
    rows, cols = np.indices(box.shape)
    assert (cols * box).sum() / box.sum() + x0 == pytest.approx(40.3, abs=0.2)
    assert (rows * box).sum() / box.sum() + y0 == pytest.approx(50.7, abs=0.2)


def test_ring_projection_seen_down_its_axis_has_a_hole():
    vol = make_volume(np.random.default_rng(1), "ring", 200.0, n_atoms=3000)
    # the ring lies in the plane of its two largest principal axes; look down the third
    _, _, vt = np.linalg.svd(vol.coords - vol.coords.mean(axis=0), full_matrices=False)
    box, x0, y0 = project(vol, vt, 2.0, (100.0, 100.0))
    centre = box[100 - y0, 100 - x0]
    assert centre < 0.1 * box.max()


def test_shell_projection_is_hollow_from_every_side():
    """A cage projects as a dense rim around a lighter centre whatever the orientation."""
    vol = make_volume(np.random.default_rng(3), "shell", 200.0, n_atoms=6000)
    rng = np.random.default_rng(4)
    for rotation in random_rotations(rng, 5).as_matrix():
        box, x0, y0 = project(vol, rotation, 2.0, (100.0, 100.0))
        rows, cols = np.indices(box.shape)
        r = np.hypot(cols + x0 - 100.0, rows + y0 - 100.0)
        profile = [box[(r >= a) & (r < a + 5)].mean() for a in range(0, 50, 5)]
        assert np.mean(profile[:3]) < 0.75 * max(profile)  # centre (< 15 px) vs the rim
        assert int(np.argmax(profile)) >= 5  # the rim lies in the outer half


def test_default_mix_has_no_shells_but_a_set_may_ask_for_them():
    assert "shell" not in VOLUME_KINDS and "shell" in ALL_VOLUME_KINDS
    assert SyntheticSettings(volume_kinds=("shell",)).volume_kinds == ("shell",)


def test_orientations_are_uniform_on_so3():
    rot = random_rotations(np.random.default_rng(2), 4000).as_matrix()
    view = rot[:, 2, :]  # the direction that ends up along the beam
    # uniform on the sphere: each component of the view direction is uniform on [-1, 1]
    for axis in range(3):
        assert stats.kstest((view[:, axis] + 1) / 2, "uniform").pvalue > 0.01
    assert np.linalg.det(rot).min() == pytest.approx(1.0)


def test_user_volume_from_mrc_is_accepted(tmp_path):
    n, voxel, radius = 48, 2.0, 20
    z, y, x = np.indices((n, n, n)) - n / 2 + 0.5
    density = (x * x + y * y + z * z <= radius**2).astype(np.float32)
    path = tmp_path / "sphere.mrc"
    with mrcfile.new(path) as mrc:
        mrc.set_data(density)
        mrc.voxel_size = voxel
    vol = volume_from_mrc(path, threshold=0.5, max_atoms=5000)  # block-averaged 2x
    assert vol.diameter == pytest.approx(2 * radius * voxel, rel=0.08)
    # the mean potential inside the support is the protein contrast: mass = V * volume
    assert vol.weights.sum() == pytest.approx(2.3 * density.sum() * voxel**3, rel=0.05)
    settings = small(volume_files=(str(path),), volume_file_threshold=0.5, **PLAIN)
    m = generate_micrograph(settings, 0, 0)
    assert set(m.particles["kind"]) == {"file"}
    family = volume_family(settings, 0)
    assert m.particles["diameter"].iloc[0] == pytest.approx(family[0].diameter / 7.08)
    with pytest.raises(InputError, match="sphere_missing.mrc"):
        small(volume_files=(str(tmp_path / "sphere_missing.mrc"),))


# ---------------------------------------------------------------------------------------------
# ground truth where the particles are
# ---------------------------------------------------------------------------------------------


def _matched_template(volume, row, ctf, pixel_size: float) -> np.ndarray:
    """The particle's own clean projection (volume and angles from the table) through the CTF."""
    rot = Rotation.from_euler("ZYZ", [row.rot, row.tilt, row.psi], degrees=True).as_matrix()
    half = int(math.ceil(volume.radius / pixel_size)) + 4
    box, x0, y0 = project(volume, rot, pixel_size, (2.0 * half, 2.0 * half))
    canvas = np.zeros((4 * half + 1, 4 * half + 1), dtype=np.float32)
    canvas[y0 : y0 + box.shape[0], x0 : x0 + box.shape[1]] = box
    spectrum = np.fft.rfft2(canvas) * ctf_rfft(canvas.shape, pixel_size, ctf)
    template = np.fft.irfft2(spectrum, s=canvas.shape)[half : 3 * half + 1, half : 3 * half + 1]
    template = template - template.mean()
    return (template / np.linalg.norm(template)).astype(np.float32)


def test_matched_filter_scores_far_higher_at_true_centres_than_at_random_positions():
    settings = SyntheticSettings(
        height=384,
        width=384,
        pixel_size=3.54,
        particles_per_micrograph=30,
        particle_count_spread=0.0,
        noise="snr",
        snr=0.5,
        **PLAIN,
    )
    m = generate_micrograph(settings, 0, 11)
    volumes = volume_family(settings, 11)
    rng = np.random.default_rng(0)
    z_scores, misses = [], []
    for row in m.particles.itertuples():
        r = row.diameter / 2
        if not (r < row.x < 383 - r and r < row.y < 383 - r):
            continue
        template = _matched_template(volumes[row.volume], row, m.ctf, 3.54)
        score = cv2.filter2D(m.image, cv2.CV_32F, template, borderType=cv2.BORDER_REFLECT)
        cx, cy = int(round(row.x)), int(round(row.y))
        ry, rx = rng.integers(0, 384, size=(2, 500))
        at_random = score[ry, rx]
        z_scores.append((score[cy, cx] - at_random.mean()) / at_random.std())
        # the best score near the particle is at its labelled centre
        near = score[cy - int(r) : cy + int(r) + 1, cx - int(r) : cx + int(r) + 1]
        by, bx = np.unravel_index(np.argmax(near), near.shape)
        misses.append(math.hypot(by - int(r), bx - int(r)))
    assert len(z_scores) >= 10
    assert np.median(z_scores) > 5
    assert np.mean(np.asarray(z_scores) > 3) >= 0.9
    assert np.median(misses) <= 1.5


def test_ctf_zeros_of_a_noise_free_dense_micrograph_fall_on_the_formula():
    settings = SyntheticSettings(
        height=512,
        width=512,
        pixel_size=1.77,
        particles_per_micrograph=60,
        particle_count_spread=0.0,
        particle_diameter=120.0,
        noise="none",
        astigmatism=0.0,
        defocus_range=(1.5, 1.5),
        b_factor=20.0,
        **PLAIN,
    )
    m = generate_micrograph(settings, 0, 5)
    k, power = radial_power_spectrum(m.image, 1.77, n_bins=256)
    bin_width = k[1] - k[0]
    zeros = m.ctf.zeros(8)
    zeros = zeros[zeros < 0.9 * k[-1]]
    assert len(zeros) >= 6
    log_power = np.log(power)
    for i, kz in enumerate(zeros):
        j = int(np.argmin(np.abs(k - kz)))
        window = slice(max(j - 3, 0), j + 4)
        local_min = window.start + int(np.argmin(log_power[window]))
        assert abs(k[local_min] - kz) <= 1.5 * bin_width, (i, kz, k[local_min])
        # the next maximum (half way to the next zero) is far above the zero
        nxt = zeros[i + 1] if i + 1 < len(zeros) else kz + (kz - zeros[i - 1])
        peak = int(np.argmin(np.abs(k - 0.5 * (kz + nxt))))
        assert log_power[peak] - log_power[local_min] > 1.0


@pytest.mark.parametrize("snr", [0.01, 0.1, 0.2])
def test_gaussian_noise_gives_the_target_snr(snr):
    settings = small(noise="snr", snr=snr)
    m = generate_micrograph(settings, 0, 3, keep_components=True)
    noise = m.image - m.noise_free
    signal = m.particle_signal[m.particle_mask]
    measured = np.var(signal) / np.var(noise)
    assert measured == pytest.approx(snr, rel=0.10)
    # the noise-free micrograph is the same specimen with the noise switched off
    clean = generate_micrograph(replace(settings, noise="none"), 0, 3)
    assert np.allclose(clean.image, m.noise_free, atol=1e-6)


def test_dose_gives_counts_poisson_noise_and_an_snr_that_grows_with_dose():
    settings = small(noise="dose", dose=40.0, ice_mean_free_path=1e12, **PLAIN)
    m = generate_micrograph(settings, 0, 4, keep_components=True)
    px2 = 7.08**2
    assert m.image.mean() / px2 == pytest.approx(40.0, rel=0.02)  # dose in e-/A^2
    assert np.array_equal(m.image, np.round(m.image))  # counts
    noise = m.image - m.noise_free
    assert np.var(noise) / m.noise_free.mean() == pytest.approx(1.0, rel=0.05)
    measured = np.var(m.particle_signal[m.particle_mask]) / np.var(noise[m.particle_mask])
    assert measured == pytest.approx(m.info["snr_estimate"], rel=0.10)
    double = generate_micrograph(replace(settings, dose=80.0), 0, 4, keep_components=True)
    noise2 = double.image - double.noise_free
    measured2 = np.var(double.particle_signal[double.particle_mask]) / np.var(
        noise2[double.particle_mask]
    )
    assert measured2 / measured == pytest.approx(2.0, rel=0.10)


def test_low_dose_draws_exact_poisson_counts():
    settings = small(noise="dose", dose=0.05, ice_mean_free_path=1e12, **PLAIN)
    m = generate_micrograph(settings, 0, 4, keep_components=True)
    assert m.noise_free.mean() < 30  # below exact_poisson_below everywhere
    assert np.array_equal(m.image, np.round(m.image)) and m.image.min() >= 0
    assert np.var(m.image - m.noise_free) / m.noise_free.mean() == pytest.approx(1.0, rel=0.05)


def test_masks_align_with_the_clean_projections():
    settings = small(particles_per_micrograph=60, min_distance=0.6, **PLAIN)
    m = generate_micrograph(settings, 0, 8, keep_components=True)
    phase = m.particle_phase
    # every mask pixel carries projected density, and the masks hold nearly all of it
    assert phase[m.particle_mask].min() > 0
    assert phase[m.particle_mask].sum() / phase.sum() > 0.9
    # per-particle masks: density-weighted centroid at the labelled centre
    labels = m.instances
    offsets = []
    for row in m.particles.itertuples():
        sel = labels == row.label
        if row.in_image and sel.sum() > 20:
            ys, xs = np.nonzero(sel)
            w = phase[sel]
            offsets.append(
                math.hypot((xs * w).sum() / w.sum() - row.x, (ys * w).sum() / w.sum() - row.y)
                / row.diameter
            )
    assert len(offsets) > 20
    assert np.median(offsets) < 0.1
    # masks are not discs: the support of a projection is smaller than its bounding disc
    areas = m.particles["visible_pixels"].to_numpy()
    discs = math.pi * (m.particles["diameter"].to_numpy() / 2) ** 2
    assert np.median(areas / discs) < 0.9
    # particles are dark where the masks say they are
    signal = m.particle_signal
    assert signal[m.particle_mask].mean() < signal[~m.particle_mask].mean()


def test_backgrounds_are_masked_and_hold_no_particle_centres():
    settings = small(
        height=512,
        width=512,
        particles_per_micrograph=80,
        carbon_probability=1.0,
        contaminants_per_um2=300.0,
        aggregates_per_um2=200.0,
        thick_ice_probability=1.0,
    )
    m = generate_micrograph(settings, 0, 2)
    assert m.carbon_mask.any() and m.contamination_mask.any() and m.aggregate_mask.any()
    inside = m.particles[m.particles.in_image]
    rows, cols = np.round(inside.y).astype(int), np.round(inside.x).astype(int)
    assert not m.exclusion_mask[rows, cols].any()
    # carbon is one region with a sharp edge, on one side of the micrograph
    edge = np.abs(np.diff(m.carbon_mask.astype(np.int8), axis=1)).sum(axis=1)
    assert edge.max() <= 2
    # contaminants are dark
    assert m.image[m.contamination_mask].mean() < m.image[~m.exclusion_mask].mean()


def test_crystalline_contaminants_put_lattice_spots_in_the_power_spectrum():
    settings = SyntheticSettings(
        height=512,
        width=512,
        pixel_size=1.77,
        noise="none",
        particles_per_micrograph=0,
        carbon_probability=0.0,
        aggregates_per_um2=0.0,
        contaminants_per_um2=400.0,
        contaminant_size_range=(300.0, 500.0),
        crystalline_fraction=1.0,
    )
    m = generate_micrograph(settings, 0, 1)
    spacings = {d for c in m.info["contaminants"] for d in c["lattice_spacings_A"]}
    assert spacings
    spectrum = np.abs(np.fft.fftshift(np.fft.fft2(m.image - m.image.mean()))) ** 2
    ky, kx = np.indices(spectrum.shape) - 256
    k = np.hypot(kx, ky) / (512 * 1.77)
    for d in spacings:
        ring = np.abs(k - 1 / d) < 0.004
        nearby = (np.abs(k - 1 / d) > 0.01) & (np.abs(k - 1 / d) < 0.02)
        assert spectrum[ring].max() > 20 * np.median(spectrum[nearby])


# ---------------------------------------------------------------------------------------------
# the optional background classes (issue 11): cracks, empty areas, crystalline ice, wedge, dense
# aggregates
# ---------------------------------------------------------------------------------------------

# the ice_masks/{name}.npz keys and the SyntheticMicrograph mask each holds
EXCLUSION_CLASSES = {
    "thick_ice": "ice_mask",
    "contamination": "contamination_mask",
    "carbon": "carbon_mask",
    "aggregate": "aggregate_mask",
    "crack": "crack_mask",
    "empty": "empty_mask",
    "crystalline_ice": "crystalline_ice_mask",
}

# What the generator made before the optional classes existed (commit 86dfb2a): the image's
# mean, spread and 12 pixels, the instance count and the pixels of the thick-ice,
# contamination, carbon and aggregate masks. Shipped models carry the sha256 of data made by
# it, so the random streams must not move. Not a sha256 of the bytes: the FFTs and the
# transcendental functions differ in the last bits between CPU kinds (an AMD EPYC without
# AVX-512 gave other bytes for the same streams), and a Poisson draw on the edge of a count
# may move by one.
FINGERPRINTS = [
    (
        dict(),
        0,
        3,
        {
            "mean": 1752.4373931884766,
            "std": 54.15760453726952,
            "pixels": [
                1703.0,
                1828.0,
                1733.0,
                1588.0,
                1799.0,
                1755.0,
                1785.0,
                1673.0,
                1764.0,
                1811.0,
                1758.0,
                1808.0,
            ],
            "instances": 36,
            "masks": [0, 0, 0, 0],
        },
    ),
    (
        dict(
            carbon_probability=1.0,
            contaminants_per_um2=2000.0,
            aggregates_per_um2=800.0,
            thick_ice_probability=1.0,
            crystalline_fraction=1.0,
            pixel_size=2.0,
        ),
        1,
        11,
        {
            "mean": 79.46891784667969,
            "std": 46.26162139638007,
            "pixels": [65.0, 78.0, 44.0, 23.0, 28.0, 152.0, 116.0, 70.0, 133.0, 135.0, 89.0, 18.0],
            "instances": 5,
            "masks": [5777, 47792, 22168, 40320],
        },
    ),
    (
        dict(
            height=192,
            width=160,
            noise="snr",
            pixel_size=1.0,
            particle_diameter=100.0,
            particles_per_micrograph=10,
        ),
        0,
        5,
        {
            "mean": 0.8302220198345215,
            "std": 0.18098323129046157,
            "pixels": [
                0.6681280732154846,
                0.6631594300270081,
                0.7680386304855347,
                0.7063872814178467,
                0.7951573729515076,
                0.6539614200592041,
                0.4605998992919922,
                1.180049180984497,
                0.8131111264228821,
                0.8977137207984924,
                0.9167485237121582,
                0.8423823714256287,
            ],
            "instances": 6,
            "masks": [0, 0, 6417, 0],
        },
    ),
]


@pytest.mark.parametrize("kw, index, seed, expected", FINGERPRINTS)
def test_micrographs_made_before_the_optional_classes_are_unchanged(kw, index, seed, expected):
    m = generate_micrograph(small(**kw), index, seed)
    image = m.image.astype(np.float64)
    rng = np.random.default_rng(0)
    ys, xs = rng.integers(0, image.shape[0], 12), rng.integers(0, image.shape[1], 12)
    assert image.mean() == pytest.approx(expected["mean"], rel=1e-4)
    assert image.std() == pytest.approx(expected["std"], rel=1e-4)
    np.testing.assert_allclose(image[ys, xs], expected["pixels"], rtol=1e-3, atol=1.0)
    assert int(m.instances.max()) == expected["instances"]
    masks = (m.ice_mask, m.contamination_mask, m.carbon_mask, m.aggregate_mask)
    for mask, pixels in zip(masks, expected["masks"]):
        assert abs(int(mask.sum()) - pixels) <= 0.002 * mask.size
    assert not (m.crack_mask.any() or m.empty_mask.any() or m.crystalline_ice_mask.any())


def feature(**kw) -> SyntheticSettings:
    """A plain specimen at 1 A/px, no noise (the image is the intensity), small particles."""
    base = dict(
        height=384,
        width=384,
        pixel_size=1.0,
        particle_diameter=80.0,
        particles_per_micrograph=30,
        particle_count_spread=0.0,
        noise="none",
        **PLAIN,
    )
    base.update(kw)
    return SyntheticSettings(**base)


def assert_no_centre_inside(m, mask):
    inside = m.particles[m.particles.in_image]
    rows, cols = np.round(inside.y).astype(int), np.round(inside.x).astype(int)
    assert not mask[rows, cols].any()
    assert not m.exclusion_mask[rows, cols].any()
    assert (m.exclusion_mask & mask).sum() == mask.sum()


def ring_around(mask: np.ndarray, px: int) -> np.ndarray:
    grown = cv2.dilate(mask.astype(np.uint8), np.ones((2 * px + 1, 2 * px + 1), np.uint8)) > 0
    return grown & ~mask


def test_cracks_are_thin_bright_lines_without_ice_or_particles():
    s = feature(crack_probability=1.0, particles_per_micrograph=60)
    m = generate_micrograph(s, 0, 3)
    cracks = m.info["cracks"]
    assert 1 <= len(cracks) <= 3
    assert all(20 <= c["width_A"] <= 150 for c in cracks)
    assert 0.001 < m.crack_mask.mean() < 0.2
    assert m.info["crack_fraction"] == pytest.approx(m.crack_mask.mean())
    assert_no_centre_inside(m, m.crack_mask)
    assert not (m.ice_mask & m.crack_mask).any()
    # thin: eroding by more than half the widest crack leaves nothing
    half = int(math.ceil(max(c["width_A"] for c in cracks) / s.pixel_size / 2)) + 1
    kernel = np.ones((2 * half + 1, 2 * half + 1), np.uint8)
    assert not cv2.erode(m.crack_mask.astype(np.uint8), kernel).any()
    # no ice there: brighter than the ice around
    around = ring_around(m.crack_mask, 10) & ~m.exclusion_mask
    assert m.image[m.crack_mask].mean() > m.image[around].mean() + 0.05


def test_empty_area_is_bright_featureless_off_carbon_and_holds_no_particles(monkeypatch):
    s = feature(empty_probability=1.0, carbon_probability=1.0, particles_per_micrograph=60)
    m = generate_micrograph(s, 0, 3)
    assert m.info["empty"] and not m.info["empty_whole_field"]
    assert 0.05 < m.empty_mask.mean() <= 0.6
    assert m.info["empty_area_fraction"] == pytest.approx(m.empty_mask.mean())
    assert m.carbon_mask.any() and not (m.carbon_mask & m.empty_mask).any()
    assert_no_centre_inside(m, m.empty_mask)
    ice = ~m.exclusion_mask
    assert m.image[m.empty_mask].mean() > m.image[ice].mean() + 0.05
    # featureless away from its edge (the CTF spreads the edge and nearby particles by ~100 A)
    deep = cv2.erode(m.empty_mask.astype(np.uint8), np.ones((121, 121), np.uint8)) > 0
    assert deep.sum() > 1000
    assert m.image[deep].std() < 0.2 * m.image[ice].std()
    # now and then the whole field (off carbon) is empty: no particle at all
    monkeypatch.setattr(synthetic, "EMPTY_WHOLE_FIELD_CHANCE", 1.0)
    whole = generate_micrograph(s, 0, 3)
    assert whole.info["empty_whole_field"]
    assert np.array_equal(whole.empty_mask, ~whole.carbon_mask)
    assert not whole.particles["in_image"].any()


def test_crystalline_ice_grains_put_lattice_spots_in_their_power_spectrum():
    # little defocus: the CTF delocalises 1/3.7 A by ~30 A only, so the lattice stays on its grain
    s = feature(
        crystalline_ice_probability=1.0, defocus_range=(0.5, 0.5), particles_per_micrograph=20
    )
    m = generate_micrograph(s, 0, 1)
    grains = m.info["crystalline_ice"]
    assert grains and {d for g in grains for d in g["lattice_spacings_A"]} <= {3.90, 3.67, 3.44}
    assert 0.05 < m.crystalline_ice_mask.mean() < 0.9
    assert m.info["crystalline_ice_fraction"] == pytest.approx(m.crystalline_ice_mask.mean())
    assert_no_centre_inside(m, m.crystalline_ice_mask)
    far = cv2.distanceTransform((~m.crystalline_ice_mask).astype(np.uint8), cv2.DIST_L2, 5) > 48
    amorphous = far & ~m.particle_mask
    assert amorphous.mean() > 0.2
    ky, kx = np.indices(m.image.shape) - 384 // 2
    k = np.hypot(kx, ky) / (384 * s.pixel_size)

    def spot_contrast(region):
        image = np.where(region, m.image - m.image[region].mean(), 0)
        spectrum = np.abs(np.fft.fftshift(np.fft.fft2(image))) ** 2
        rings = [np.abs(k - 1 / d) < 0.004 for d in (3.90, 3.67, 3.44)]
        return max(spectrum[r].max() / np.median(spectrum[r]) for r in rings)

    assert spot_contrast(m.crystalline_ice_mask) > 80
    assert spot_contrast(amorphous) < 40
    # a pixel size that cannot resolve the lattice: the grains (and their mask) without waves
    coarse = generate_micrograph(replace(s, pixel_size=2.0), 0, 1)
    assert coarse.crystalline_ice_mask.any()
    assert all(g["lattice_spacings_A"] == [] for g in coarse.info["crystalline_ice"])


def test_ice_wedge_puts_the_thick_ice_mask_on_its_thick_side():
    s = feature(ice_wedge=1.0)
    m = generate_micrograph(s, 0, 4, keep_components=True)
    theta = math.radians(m.info["ice_wedge_direction_deg"])
    ux, uy = math.cos(theta), math.sin(theta)
    ys, xs = np.indices(m.image.shape, dtype=float)
    along = ((xs - 192) * ux + (ys - 192) * uy) / (0.5 * 384 * (abs(ux) + abs(uy)))
    # thickness (1 + along / 2) x the mean passes 1.4 x the mean at along = 0.8
    assert m.ice_mask.any()
    assert along[m.ice_mask].min() > 0.75
    assert m.ice_mask.sum() > 0.8 * (along > 0.85).sum()
    assert_no_centre_inside(m, m.ice_mask)
    # thicker ice transmits less
    clean = m.noise_free
    assert clean[along > 0.5].mean() < clean[along < -0.5].mean()
    assert "ice_wedge_direction_deg" not in generate_micrograph(feature(), 0, 4).info


def test_dense_aggregates_are_clumps_of_particles_in_the_aggregate_mask():
    s = feature(pixel_size=2.0, particle_diameter=60.0, dense_aggregates_per_um2=600.0)
    m = generate_micrograph(s, 0, 2)
    clumps = m.info["dense_aggregates"]
    assert clumps and all(c["copies"] >= 10 for c in clumps)
    particle_area = math.pi * (30.0 / 2) ** 2
    assert m.aggregate_mask.sum() > 5 * particle_area
    assert_no_centre_inside(m, m.aggregate_mask)


def test_new_settings_are_validated():
    for bad in (
        dict(crack_probability=1.5),
        dict(empty_probability=-0.1),
        dict(crystalline_ice_probability=2.0),
        dict(ice_wedge=2.5),
        dict(crack_width_range=(0.0, 50.0)),
        dict(empty_area_range=(0.5, 1.2)),
        dict(dense_aggregates_per_um2=-1.0),
    ):
        with pytest.raises(InputError, match=next(iter(bad))):
            SyntheticSettings(**bad)


def test_written_exclusion_classes_hold_every_mask(tmp_path):
    s = feature(crack_probability=1.0, empty_probability=1.0, crystalline_ice_probability=1.0)
    m = write_micrograph(s, tmp_path, "s_0000", 0, 3)
    paths = micrograph_outputs(tmp_path, "s_0000")
    classes = np.load(paths["exclusion_classes"])
    assert set(classes.files) == set(EXCLUSION_CLASSES)
    for key, attribute in EXCLUSION_CLASSES.items():
        assert np.array_equal(classes[key], getattr(m, attribute)), key
    assert m.crack_mask.any() and m.empty_mask.any() and m.crystalline_ice_mask.any()
    union = cv2.imread(str(paths["exclusion"]), cv2.IMREAD_UNCHANGED) > 0
    assert np.array_equal(union, m.exclusion_mask)
    parameters = json.loads(paths["parameters"].read_text())
    assert parameters["cracks"] and parameters["empty"] and parameters["crystalline_ice"]


def test_edge_particles_are_cut_and_crowding_lets_particles_touch():
    settings = small(
        height=384,
        width=384,
        particles_per_micrograph=150,
        min_distance=0.5,
        clustering=1.0,
        **PLAIN,
    )
    m = generate_micrograph(settings, 0, 6)
    border = np.concatenate(
        [m.instances[0], m.instances[-1], m.instances[:, 0], m.instances[:, -1]]
    )
    assert np.count_nonzero(border) > 0
    xy = m.particles[["x", "y"]].to_numpy()
    d = np.hypot(*(xy[:, None, :] - xy[None, :, :]).transpose(2, 0, 1))
    np.fill_diagonal(d, np.inf)
    mean_diam = m.particles["diameter"].mean()
    assert d.min() < mean_diam  # some particles overlap
    assert d.min() >= 0.5 * m.particles["diameter"].min() - 1e-9


def test_contrast_switch_and_phase_flipping():
    settings = small(noise="snr", snr=0.5)
    dark = generate_micrograph(settings, 0, 9)
    light = generate_micrograph(replace(settings, particles_dark=False), 0, 9)
    assert np.array_equal(light.image, -dark.image)
    flipped = generate_micrograph(replace(settings, phase_flipped=True), 0, 9, keep_components=True)
    assert flipped.particle_signal[flipped.particle_mask].mean() < 0


def test_filtered_8bit_rendering_is_the_denoising_chain_on_the_raw_micrograph():
    from cryopick.denoise import DenoiseSettings, denoise_image, frame_for

    settings = small(height=256, width=320, **PLAIN)
    raw = generate_micrograph(settings, 0, 5)
    filtered = generate_micrograph(replace(settings, rendering="filtered_8bit"), 0, 5)
    # same specimen and ground truth; only the image is rendered differently
    assert np.array_equal(filtered.particle_mask, raw.particle_mask)
    assert filtered.image.shape == raw.image.shape and filtered.image.dtype == np.float32
    chain = denoise_image(raw.image, DenoiseSettings(size=320), frame_for(raw.image.shape, 320))
    assert np.array_equal(filtered.image, chain[:256, :320].astype(np.float32))
    assert filtered.image.min() >= 0 and filtered.image.max() <= 255
    assert np.array_equal(filtered.image, np.round(filtered.image))  # 8-bit levels
    assert filtered.info["rendering"] == "filtered_8bit"
    # the chain keeps the particles dark: their mean lies below the background's
    inside = filtered.particle_mask
    assert filtered.image[inside].mean() < filtered.image[~inside].mean()
    with pytest.raises(InputError, match="rendering"):
        SyntheticSettings(rendering="jpeg")


# ---------------------------------------------------------------------------------------------
# settings, names, data set layout, determinism
# ---------------------------------------------------------------------------------------------


def test_settings_from_config_validate_and_reject_unknown_keys():
    s = SyntheticSettings.from_config(
        {"height": 512, "width": 512, "defocus_range": [1, 2], "seed": 3, "n_micrographs": 2}
    )
    assert s.defocus_range == (1, 2) and s.height == 512
    with pytest.raises(InputError, match="unknown keys.*defocus"):
        SyntheticSettings.from_config({"defocus": 2.0})
    with pytest.raises(InputError, match="noise"):
        SyntheticSettings(noise="loud")
    with pytest.raises(InputError, match="particle_diameter"):
        SyntheticSettings(particle_diameter=1000.0)


def test_names_come_from_the_config_alone():
    names = synthetic_micrograph_names("demo", 3)
    assert names == ["demo_0000", "demo_0001", "demo_0002"]
    assert [micrograph_index(n, "demo") for n in names] == [0, 1, 2]
    with pytest.raises(InputError):
        micrograph_index("other_0001", "demo")


def test_write_dataset_has_the_layout_of_a_real_data_set(tmp_path):
    settings = small(carbon_probability=1.0)
    names = write_dataset(settings, tmp_path, 2, seed=5, name_prefix="demo")
    assert names == synthetic_micrograph_names("demo", 2)
    for name in names:
        paths = micrograph_outputs(tmp_path, name)
        assert all(p.is_file() for p in paths.values()), paths
        mic = read_micrograph(paths["micrograph"])
        assert mic.image.shape == (256, 256)
        assert mic.pixel_size == pytest.approx(7.08, rel=1e-5)
        csv = read_coordinates(paths["coordinates"])
        star = read_coordinates(paths["coordinates_star"])
        assert len(csv) == len(star) > 0
        assert np.allclose(csv.x, star.x, atol=0.5) and np.allclose(csv.y, star.y, atol=0.5)
        assert np.allclose(csv.diameter, csv.diameter.round()) and csv.diameter.min() > 10
        for key in ("mask", "exclusion"):
            png = cv2.imread(str(paths[key]), cv2.IMREAD_UNCHANGED)
            assert png.shape == (256, 256) and set(np.unique(png)) <= {0, 255}
        instances = cv2.imread(str(paths["instances"]), cv2.IMREAD_UNCHANGED)
        assert instances.dtype == np.uint16 and instances.max() >= len(csv)
        classes = np.load(paths["exclusion_classes"])
        assert set(classes.files) == set(EXCLUSION_CLASSES)
        per = json.loads(paths["parameters"].read_text())
        assert per["name"] == name and per["ctf"]["defocus_u"] > 0
    params = json.loads((tmp_path / "parameters.json").read_text())
    assert params["seed"] == 5 and params["micrographs"] == names
    assert params["settings"]["pixel_size"] == 7.08


def test_same_settings_and_seed_give_byte_identical_files(tmp_path):
    settings = small(carbon_probability=1.0, contaminants_per_um2=100.0)
    write_dataset(settings, tmp_path / "a", 2, seed=7, name_prefix="s")
    # micrograph 1 regenerated alone, as one workflow job does
    write_micrograph(settings, tmp_path / "b", "s_0001", 1, 7)
    for key, path in micrograph_outputs(tmp_path / "a", "s_0001").items():
        other = micrograph_outputs(tmp_path / "b", "s_0001")[key]
        assert path.read_bytes() == other.read_bytes(), key
    changed = generate_micrograph(settings, 1, 8)
    assert not np.array_equal(
        changed.image, read_micrograph(Path(tmp_path / "a" / "micrographs" / "s_0001.mrc")).image
    )


# ---------------------------------------------------------------------------------------------
# the workflow's view: schema, rule
# ---------------------------------------------------------------------------------------------

REPO = Path(__file__).resolve().parents[1]


def test_schema_describes_every_setting_with_the_generators_default():
    from dataclasses import fields

    import yaml

    schema = yaml.safe_load((REPO / "config" / "schema.yaml").read_text())
    properties = schema["definitions"]["synthetic_set"]["properties"]
    names = {f.name for f in fields(SyntheticSettings)}
    assert set(properties) == names | {"n_micrographs", "seed", "name_prefix"}
    defaults = SyntheticSettings()
    for name in names:
        entry = properties[name]
        assert entry.get("description"), name
        value = getattr(defaults, name)
        expected = list(value) if isinstance(value, tuple) else value
        assert entry["default"] == expected, name
    # a set made of the schema's defaults is the generator's default
    assert (
        SyntheticSettings.from_config({k: v["default"] for k, v in properties.items()}) == defaults
    )


@pytest.mark.slow
def test_synthesize_rule_writes_the_data_set_and_reruns_only_on_change(tmp_path):
    from tests.conftest import SMALL_DENOISE, run_workflow

    spec = {
        "n_micrographs": 2,
        "seed": 3,
        "height": 256,
        "width": 256,
        "pixel_size": 7.08,
        "particles_per_micrograph": 30,
    }
    config = {
        "datasets": {"syn": {"synthetic": "tiny", "particle_diameter": 190}},
        "synthetic": {"tiny": spec},
        "denoise": SMALL_DENOISE,
        "labels": {"method": "disc"},
    }
    work = tmp_path / "work"
    run_workflow(work, config, "all", "all_label_maps")
    folder = work / "results" / "synthetic" / "tiny"
    names = synthetic_micrograph_names("tiny", 2)
    settings = SyntheticSettings.from_config(spec)
    write_micrograph(settings, tmp_path / "direct", names[1], 1, 3)
    for key, path in micrograph_outputs(folder, names[1]).items():
        assert (
            path.read_bytes() == micrograph_outputs(tmp_path / "direct", names[1])[key].read_bytes()
        ), key
    params = json.loads((folder / "parameters.json").read_text())
    assert params["micrographs"] == names and params["seed"] == 3
    summary = (work / "results" / "syn" / "metrics" / "summary.tsv").read_text()
    assert "final" in summary
    label = cv2.imread(str(work / "results/syn/labels/batch_00000" / f"{names[0]}.png"), 0)
    assert label.shape == (256, 256) and label.max() == 255
    unchanged = run_workflow(work, config, "-n", "all", "all_label_maps")
    assert "Nothing to be done" in unchanged.stdout + unchanged.stderr
    config["synthetic"]["tiny"]["dose"] = 20.0
    dry = run_workflow(work, config, "-n", "all")
    assert "synthesize" in dry.stdout + dry.stderr
    config["synthetic"]["tiny"]["n_micrographs"] = 0
    refused = run_workflow(work, config, "-n", check=False)
    assert refused.returncode != 0 and "n_micrographs" in refused.stdout + refused.stderr


def test_a_micrograph_without_particles_has_empty_coordinates_with_their_columns():
    # a field all crystalline ice or all empty hole holds no particle; its truth is an empty
    # table, not an error
    settings = SyntheticSettings(
        height=128, width=128, pixel_size=4.0, particle_diameter=120.0, particles_per_micrograph=0
    )
    coordinates = generate_micrograph(settings, 0, 1).coordinates
    assert coordinates.empty
    assert coordinates.columns.tolist() == ["x", "y", "score", "diameter"]
