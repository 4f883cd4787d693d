"""2D classification with real RELION: picks on particles give centred, high-contrast class
averages and picks at random positions do not, which is the evidence the report shows.

The particles are conftest's dark discs with an off-centre dark lobe at a random angle, so that
the averages have an asymmetric shape to align. RELION's convention after extraction is
particles white on black: dark particles are extracted with --invert_contrast, so the average's
centre is brighter than its border. Contrast is measured in units of the extracted particles'
background noise (relion_preprocess --norm makes it 1), so runs compare directly."""

import os
import stat

import numpy as np
import pytest
from PIL import Image

from cryopick.classify2d import (
    Classify2DSettings,
    class_table,
    classify_picks,
    sample_picks,
    write_class_grid,
)
from cryopick.io import InputError, empty_coordinates, read_coordinates, write_mrc, write_star
from tests.conftest import disc_micrograph, requires

pytestmark = [pytest.mark.relion, requires("relion_refine", "Debian package relion")]

PIXEL_SIZE = 2.0  # A per micrograph pixel
DIAMETER = 40.0  # pixels: 80 A, a 60-pixel box rescaled to 48 (2.5 A per pixel)
SETTINGS = Classify2DSettings(max_particles=100, classes=2, iterations=5, box_pixels=48)


def lobed_micrograph(seed: int, n: int = 25) -> tuple[np.ndarray, np.ndarray]:
    """conftest's dark discs, each with a darker lobe off its centre at a random angle."""
    image, centres = disc_micrograph(n=n, diameter=DIAMETER, seed=seed)
    rng = np.random.default_rng(1000 + seed)
    yy, xx = np.mgrid[0 : image.shape[0], 0 : image.shape[1]].astype(np.float32)
    for x, y in centres:
        angle = rng.uniform(0, 2 * np.pi)
        lx, ly = x + 0.25 * DIAMETER * np.cos(angle), y + 0.25 * DIAMETER * np.sin(angle)
        r = np.hypot(xx - lx, yy - ly)
        image -= 0.8 / (1.0 + np.exp(np.clip((r - 0.15 * DIAMETER) / 1.0, -50, 50)))
    return image.astype(np.float32), centres


def random_positions(centres: np.ndarray, shape, n: int, seed: int) -> np.ndarray:
    """``n`` positions at least a particle diameter from every particle centre."""
    rng = np.random.default_rng(seed)
    h, w = shape
    found: list[tuple[float, float]] = []
    while len(found) < n:
        x, y = rng.uniform(32, w - 32), rng.uniform(32, h - 32)
        if np.min(np.hypot(centres[:, 0] - x, centres[:, 1] - y)) > DIAMETER:
            found.append((x, y))
    return np.array(found)


def picks_frame(positions: np.ndarray):
    frame = empty_coordinates().reindex(range(len(positions)))
    frame["x"], frame["y"], frame["score"] = positions[:, 0], positions[:, 1], 1.0
    return frame


def write_inputs(root, n_micrographs=4, where="on", bright=False, n=25):
    """Micrographs (MRC; the fourth an 8-bit PNG, which RELION cannot read) and STAR picks: at
    the true centres (``where="on"``) or at random positions off the particles (``"off"``)."""
    root.mkdir(parents=True, exist_ok=True)
    micrographs, picks = {}, {}
    for i in range(n_micrographs):
        image, centres = lobed_micrograph(seed=i, n=n)
        positions = centres if where == "on" else random_positions(centres, image.shape, n, i)
        name = f"mic {i}"  # a space: RELION gets its own names
        image = -image if bright else image
        if i == 3:
            scaled = (image - image.min()) / (image.max() - image.min()) * 255
            Image.fromarray(scaled.astype(np.uint8)).save(root / f"{name}.png")
            micrographs[name] = str(root / f"{name}.png")
        else:
            write_mrc(root / f"{name}.mrc", image, PIXEL_SIZE)
            micrographs[name] = str(root / f"{name}.mrc")
        write_star(root / f"{name}.star", picks_frame(positions))
        picks[name] = str(root / f"{name}.star")
    return micrographs, picks


def central_contrast(average: np.ndarray, pixel_size: float) -> float:
    """Mean of the average's centre (within half the particle radius) less the mean of its
    border (outside the particle mask), in the extracted particles' noise units."""
    box = average.shape[0]
    yy, xx = np.mgrid[0:box, 0:box]
    r = np.hypot(xx - box / 2, yy - box / 2)
    radius = DIAMETER * PIXEL_SIZE / pixel_size / 2
    return float(average[r < radius / 2].mean() - average[r > radius + 3].mean())


def top_class_contrast(averages) -> float:
    top = int(np.argmax(averages.particles))
    return central_contrast(averages.images[top], averages.pixel_size)


@pytest.fixture(scope="module")
def on_inputs(tmp_path_factory):
    root = tmp_path_factory.mktemp("on")
    return (*write_inputs(root / "data"), root / "work")


@pytest.fixture(scope="module")
def on_particles(on_inputs):
    micrographs, picks, workdir = on_inputs
    return classify_picks(
        micrographs, picks, PIXEL_SIZE, DIAMETER * PIXEL_SIZE, False, workdir, SETTINGS
    )


@pytest.fixture(scope="module")
def off_particles(tmp_path_factory):
    root = tmp_path_factory.mktemp("off")
    micrographs, picks = write_inputs(root / "data", where="off")
    return classify_picks(
        micrographs, picks, PIXEL_SIZE, DIAMETER * PIXEL_SIZE, False, root / "work", SETTINGS
    )


def test_picks_on_particles_give_centred_bright_averages(on_particles):
    averages = on_particles
    assert averages.images.shape == (2, 48, 48) and averages.images.dtype == np.float32
    assert averages.n_picks == 100 and averages.n_particles == 100
    assert sum(averages.particles) == averages.n_particles and len(averages.particles) == 2
    assert averages.pixel_size == pytest.approx(PIXEL_SIZE * 60 / 48)
    assert sum(averages.distribution) == pytest.approx(1.0, abs=0.01)
    assert averages.seconds > 0
    # dark particles, extracted with --invert_contrast: white on black, centred
    contrast = top_class_contrast(averages)
    print(f"central contrast on particles: {contrast:.2f}")
    assert contrast > 1.5
    top = averages.images[int(np.argmax(averages.particles))]
    weight = np.clip(top - np.median(top), 0, None)
    yy, xx = np.mgrid[0:48, 0:48]
    cy, cx = (weight * yy).sum() / weight.sum(), (weight * xx).sum() / weight.sum()
    assert abs(cx - 24) < 3 and abs(cy - 24) < 3


def test_random_picks_give_averages_without_a_particle(on_particles, off_particles):
    on, off = top_class_contrast(on_particles), top_class_contrast(off_particles)
    strongest_off = max(
        abs(central_contrast(image, off_particles.pixel_size)) for image in off_particles.images
    )
    print(f"central contrast: on particles {on:.2f}, random picks {off:.2f} ({strongest_off:.2f})")
    assert sum(off_particles.particles) == 100
    assert strongest_off < 0.25 * on


def test_rerun_in_the_same_workdir_gives_the_same_classes(on_inputs, on_particles):
    micrographs, picks, workdir = on_inputs
    again = classify_picks(
        micrographs, picks, PIXEL_SIZE, DIAMETER * PIXEL_SIZE, False, workdir, SETTINGS
    )
    assert again.particles == on_particles.particles
    assert np.array_equal(again.images, on_particles.images)


def test_class_grid_and_table(on_particles, tmp_path):
    png = tmp_path / "report" / "classes.png"
    write_class_grid(on_particles, png)
    image = np.asarray(Image.open(png).convert("L"), dtype=float)
    assert image.shape[0] > 100 and image.shape[1] > 150 and image.std() > 20
    assert stat.S_IMODE(os.stat(png).st_mode) & 0o044  # not a temporary file's 0600
    assert [p.name for p in png.parent.iterdir()] == ["classes.png"]
    table = class_table(on_particles)
    assert list(table.columns) == ["class", "particles", "fraction"]
    assert table["particles"].sum() == 100 and table["fraction"].sum() == pytest.approx(1.0)
    assert table["particles"].is_monotonic_decreasing and set(table["class"]) == {1, 2}


def test_bright_particles_are_extracted_as_they_are(tmp_path):
    micrographs, picks = write_inputs(tmp_path / "data", n_micrographs=2, bright=True)
    averages = classify_picks(
        micrographs,
        picks,
        PIXEL_SIZE,
        DIAMETER * PIXEL_SIZE,
        True,
        tmp_path / "work",
        Classify2DSettings(classes=1, iterations=3, box_pixels=48),
    )
    assert averages.n_particles == 50 and averages.images.shape == (1, 48, 48)
    assert top_class_contrast(averages) > 1.5
    assert "--invert_contrast" not in (tmp_path / "work" / "extract.command").read_text()


def test_few_particles_reduce_the_classes_and_too_few_raise(tmp_path):
    """Also: picks whose box overlaps the edge are classified, a pick outside the micrograph
    (which would stop relion_preprocess) is left out."""
    micrographs, picks = write_inputs(tmp_path / "data", n_micrographs=1, n=25)
    centres = read_coordinates(picks["mic 0"])[["x", "y"]].to_numpy()
    edges = [[3.0, 3.0], [799.0, 300.0], [400.0, 599.0], [-50.0, 100.0]]
    write_star(picks["mic 0"], picks_frame(np.concatenate([centres, edges])))
    messages = []
    averages = classify_picks(
        micrographs,
        picks,
        PIXEL_SIZE,
        DIAMETER * PIXEL_SIZE,
        False,
        tmp_path / "work",
        Classify2DSettings(classes=6, iterations=2, box_pixels=48),
        log=messages.append,
    )
    assert averages.classes == 2 and averages.images.shape == (2, 48, 48)
    assert averages.n_picks == 29 and averages.n_particles == 28
    assert any("1 sampled picks outside their micrograph" in m for m in messages)
    assert any("2 classes instead of 6" in m for m in messages)
    write_star(tmp_path / "few.star", picks_frame(np.array([[100.0, 100.0], [200.0, 200.0]])))
    with pytest.raises(InputError, match="needs at least 10"):
        classify_picks(
            micrographs,
            {"mic 0": str(tmp_path / "few.star")},
            PIXEL_SIZE,
            DIAMETER * PIXEL_SIZE,
            False,
            tmp_path / "work",
            SETTINGS,
            log=messages.append,
        )


def test_no_picks_is_an_input_error(tmp_path):
    micrographs, picks = write_inputs(tmp_path / "data", n_micrographs=2)
    for path in picks.values():
        write_star(path, empty_coordinates())
    with pytest.raises(InputError, match="no picks to classify"):
        classify_picks(micrographs, picks, PIXEL_SIZE, 80.0, False, tmp_path / "w", SETTINGS)
    with pytest.raises(InputError, match="not among the micrographs"):
        classify_picks({}, picks, PIXEL_SIZE, 80.0, False, tmp_path / "w", SETTINGS)


def test_relion_failure_is_one_clear_line(tmp_path, monkeypatch):
    fake = tmp_path / "bin" / "relion_refine"
    fake.parent.mkdir()
    fake.write_text("#!/bin/sh\necho 'working...'\necho 'ERROR: out of cheese' >&2\nexit 3\n")
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", f"{fake.parent}{os.pathsep}{os.environ['PATH']}")
    micrographs, picks = write_inputs(tmp_path / "data", n_micrographs=1)
    with pytest.raises(InputError) as error:
        classify_picks(micrographs, picks, PIXEL_SIZE, 80.0, False, tmp_path / "work", SETTINGS)
    message = str(error.value)
    assert "\n" not in message and "relion_refine" in message and "exit status 3" in message
    assert "ERROR: out of cheese" in message


def test_sample_is_seeded_and_spread_over_micrographs():
    counts = {"a": 1000, "b": 100, "c": 10, "d": 0}
    sample = sample_picks(counts, 111, seed=0)
    assert {k: len(v) for k, v in sample.items()} == {"a": 100, "b": 10, "c": 1}
    assert all(len(set(v)) == len(v) and v.max() < counts[k] for k, v in sample.items())
    again = sample_picks(counts, 111, seed=0)
    assert all(np.array_equal(sample[k], again[k]) for k in sample)
    other = sample_picks(counts, 111, seed=1)
    assert not np.array_equal(sample["a"], other["a"])
    assert {k: len(v) for k, v in sample_picks(counts, 5000, 0).items()} == {
        "a": 1000,
        "b": 100,
        "c": 10,
    }


def test_settings_from_config():
    assert Classify2DSettings.from_config({}) == Classify2DSettings()
    settings = Classify2DSettings.from_config({"enabled": True, "classes": 4, "box_factor": 2})
    assert settings.classes == 4 and settings.box_factor == 2
    with pytest.raises(InputError, match="unknown report.classification setting"):
        Classify2DSettings.from_config({"clases": 4})
    with pytest.raises(InputError, match="box_pixels"):
        Classify2DSettings(box_pixels=63)
    with pytest.raises(InputError, match="classes"):
        Classify2DSettings(classes=0)
    with pytest.raises(InputError, match="seed"):
        Classify2DSettings(seed=-1)
