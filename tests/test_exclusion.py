"""The exclusion stage (cryopick/exclusion.py): masks of carbon, contamination and thick ice
on synthetic micrographs with exact masks, crystalline ice found by its spacings, border
stripes, the pick filter, the verdicts, bad input, and the stage in a workflow run."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from conftest import disc_micrograph, final_picks_file, run_workflow, write_cryoppp

from cryopick.denoise import Frame, bin_to_frame, save_denoised
from cryopick.exclusion import (
    CODES,
    ExclusionMap,
    ExclusionSettings,
    VerdictSettings,
    apply_exclusion,
    border_bands,
    classify_micrographs,
    exclusion_map,
    follows_a_hole_edge,
    ice_level,
    ice_spot_scores,
    mask_at,
    mask_on_canvas,
    micrograph_quality,
    relative_thickness,
    two_level_split,
)
from cryopick.io import EXCLUDED_LABEL, InputError, read_coordinates, write_mrc
from cryopick.synthetic import SyntheticSettings, generate_micrograph
from cryopick.workflow.plan import exclusion_filter_settings


def denoised_for(tmp_path, image: np.ndarray, pixel_size: float, size: int = 256):
    """A micrograph file and a denoised canvas file of it (the frame the stage maps onto)."""
    h, w = image.shape
    scale = max(h, w) / size
    frame = Frame(h, w, round(h / scale), round(w / scale), size)
    micrograph = tmp_path / "mic.mrc"
    write_mrc(micrograph, image, pixel_size)
    denoised = tmp_path / "mic.npz"
    canvas = bin_to_frame(image, frame)
    lo, hi = np.percentile(canvas, [1, 99])
    save_denoised(
        denoised, np.clip((canvas - lo) / (hi - lo) * 255, 0, 255), frame, pixel_size * scale
    )
    return str(micrograph), str(denoised)


DARK = ("carbon", "contamination", "thick_ice")


def field_settings(**extra) -> SyntheticSettings:
    """A 768^2 field at 4 A/px of 60 particles of 160 A (no aggregates), with ``extra``."""
    base = dict(
        height=768,
        width=768,
        pixel_size=4.0,
        particle_diameter=160,
        particles_per_micrograph=60,
        aggregates_per_um2=0.0,
        dose=30,
    )
    return SyntheticSettings(**{**base, **extra})


@pytest.mark.parametrize(
    "name, extra, truth_key, classes",
    [
        ("carbon", {"carbon_probability": 1.0, "contaminants_per_um2": 0.0}, "carbon", DARK),
        (
            "contamination",
            {"carbon_probability": 0.0, "contaminants_per_um2": 20.0, "crystalline_fraction": 0},
            "contamination",
            DARK,
        ),
        (
            "an empty hole",
            {"carbon_probability": 0.0, "contaminants_per_um2": 0.0, "empty_probability": 1.0},
            "empty",
            ("empty",),
        ),
    ],
)
def test_masks_of_synthetic_micrographs_match_their_exact_masks(
    tmp_path, name, extra, truth_key, classes
):
    settings = field_settings(thick_ice_probability=0.0, **extra)
    for index in range(4):  # the first micrograph of the set that shows the class
        m = generate_micrograph(settings, index, seed=11)
        truth = getattr(m, f"{truth_key}_mask")
        if 0.02 < truth.mean() < 0.9:
            break
    else:
        pytest.fail(f"the generator drew no {name} in 4 micrographs")
    micrograph, denoised = denoised_for(tmp_path, m.image, settings.pixel_size)
    exclusion = exclusion_map(micrograph, denoised, 160.0, ExclusionSettings())
    found = exclusion.mask(classes)
    expected = mask_on_canvas(truth, exclusion.frame)
    iou = (found & expected).sum() / (found | expected).sum()
    assert iou > 0.6, (name, iou, exclusion.stats["dark_areas"])
    # particles lie outside the excluded areas: hardly any centre falls inside the map
    xy = m.coordinates[["x", "y"]].to_numpy()
    assert mask_at(exclusion.mask(), xy, exclusion.frame).mean() <= 0.05


@pytest.mark.parametrize(
    "name, extra, truth_key",
    [
        ("thick ice", {"thick_ice_probability": 1.0, "contaminants_per_um2": 0.0}, "ice_mask"),
        (
            "contamination",
            {"thick_ice_probability": 0.0, "contaminants_per_um2": 20.0, "crystalline_fraction": 0},
            "contamination_mask",
        ),
    ],
)
def test_thick_ice_and_contamination_are_told_apart_by_their_depth(
    tmp_path, name, extra, truth_key
):
    # both have edges about as sharp as carbon's; a contaminant is far darker than the thickest
    # ice around it (the verdict's classes and exclusion.classes depend on the name)
    settings = field_settings(carbon_probability=0.0, **extra)
    m = generate_micrograph(settings, 0, seed=11)
    truth = getattr(m, truth_key)
    assert 0.05 < truth.mean() < 0.3
    micrograph, denoised = denoised_for(tmp_path, m.image, settings.pixel_size)
    exclusion = exclusion_map(micrograph, denoised, 160.0, ExclusionSettings())
    expected = mask_on_canvas(truth, exclusion.frame)
    right, wrong = (
        ("thick_ice", "contamination") if name == "thick ice" else ("contamination", "thick_ice")
    )
    found = exclusion.mask((right,))
    assert (found & expected).sum() / (found | expected).sum() > 0.55, exclusion.stats
    assert not exclusion.mask((wrong,)).any(), exclusion.stats["dark_areas"]


def test_an_empty_hole_over_most_of_a_micrograph_is_not_called_ice(tmp_path):
    # vacuum over more than half the field: its level is the median, and measured from it
    # the ice with the particles looked like carbon (every particle lost)
    settings = field_settings(
        thick_ice_probability=0.0,
        carbon_probability=0.0,
        contaminants_per_um2=0.0,
        empty_probability=1.0,
    )
    m = generate_micrograph(settings, 4, seed=13)
    assert 0.5 < m.empty_mask.mean() < 0.9
    micrograph, denoised = denoised_for(tmp_path, m.image, settings.pixel_size)
    exclusion = exclusion_map(micrograph, denoised, 160.0, ExclusionSettings())
    found, expected = exclusion.mask(("empty",)), mask_on_canvas(m.empty_mask, exclusion.frame)
    assert (found & expected).sum() / (found | expected).sum() > 0.8, exclusion.stats
    assert exclusion.mask(DARK).mean() < 0.02, exclusion.stats["dark_areas"]
    xy = m.coordinates[["x", "y"]].to_numpy()
    assert mask_at(exclusion.mask(), xy, exclusion.frame).mean() <= 0.05


def test_carbon_follows_its_hole_edge_and_a_contaminant_does_not():
    yy, xx = np.mgrid[0:256, 0:256]
    box = (0, 256, 0, 256)
    film = np.hypot(xx - 40, yy - 40) > 300  # beyond the edge of a hole 600 px across
    dome = np.hypot(xx - 230, yy - 128) < 60  # a contaminant cut by the right side
    merged = (np.hypot(xx - 60, yy - 200) < 45) | (np.hypot(xx - 120, yy - 215) < 50)
    assert follows_a_hole_edge(film, box)
    assert not follows_a_hole_edge(dome, box)
    assert not follows_a_hole_edge(merged, box)


def test_a_clean_field_has_nothing_excluded(tmp_path):
    # a crowded field at a per-pixel SNR of about 0.1, as raw micrographs have
    image, _ = disc_micrograph((512, 512), n=40, diameter=24.0, seed=3, noise=3.0)
    micrograph, denoised = denoised_for(tmp_path, image, 4.0)
    exclusion = exclusion_map(micrograph, denoised, 96.0, ExclusionSettings())
    assert exclusion.mask().mean() < 0.01, exclusion.stats


def lattice_tile(rng, size: int, pixel_size: float, spacing: float) -> np.ndarray:
    """Hexagonal-ice fringes (three directions 60 degrees apart) of ``spacing`` A."""
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    out = np.zeros((size, size), np.float32)
    for j in range(3):
        a = 0.4 + j * math.pi / 3
        k = pixel_size / spacing
        out += np.cos(2 * math.pi * k * (math.cos(a) * xx + math.sin(a) * yy) + rng.uniform(0, 6))
    return out


def test_a_crystalline_ice_tile_is_found_by_its_spacings():
    rng = np.random.default_rng(0)
    pixel_size, tile = 1.2, 256
    image = rng.normal(100, 10, size=(3 * tile, 3 * tile)).astype(np.float32)
    image[tile : 2 * tile, 0:tile] += 3.0 * lattice_tile(rng, tile, pixel_size, 3.67)
    scores, spacings = ice_spot_scores(image, pixel_size, tile)
    assert spacings == [3.90, 3.67, 3.44]
    assert scores[1, 0] > 2 * ExclusionSettings().ice_spot  # the lattice tile
    others = np.delete(scores.ravel(), 3)
    assert others.max() < 2.0  # amorphous noise: about 1
    # at 2 A per pixel no hexagonal-ice spacing is resolved: no score, not a false "clean"
    scores, spacings = ice_spot_scores(image, 2.0, tile)
    assert spacings == [] and np.isnan(scores).all()


def test_detector_counts_below_256_are_not_taken_for_an_8_bit_file():
    # low-dose counts are whole numbers below 256 too, and their intensities are transmission:
    # the relative ice thickness is measured on them, never on a stretched 8-bit JPG
    rng = np.random.default_rng(3)
    counts = rng.poisson(30.0, (512, 512)).astype(np.float32)
    counts[:, 256:] = rng.poisson(20.0, (512, 256))  # thicker ice: fewer electrons
    stretched = np.clip(counts * 6.0, 0, 255).round()
    frame = Frame(512, 512, 256, 256, 256)
    codes = np.zeros((256, 256), np.uint8)
    thickness = relative_thickness(counts, bin_to_frame(counts, frame), codes, frame)
    assert thickness is not None and 0.2 < thickness < 0.6  # ln(30 / 20) = 0.41 at most
    assert relative_thickness(stretched, bin_to_frame(stretched, frame), codes, frame) is None


def test_crystalline_ice_is_outlined_where_its_lattice_is_not_by_whole_tiles(tmp_path):
    # a grain of crystalline ice (a disc of lattice fringes in amorphous noise) inside one of
    # four tiles: the map covers the grain, not its tile, so particles beside it stay usable
    rng = np.random.default_rng(2)
    pixel_size, size, radius = 1.2, 1024, 120
    image = rng.normal(100, 10, size=(size, size)).astype(np.float32)
    yy, xx = np.mgrid[0:size, 0:size]
    grain = np.hypot(xx - 300, yy - 260) < radius
    image[grain] += 3.0 * lattice_tile(rng, size, pixel_size, 3.90)[grain]
    micrograph, denoised = denoised_for(tmp_path, image, pixel_size)
    exclusion = exclusion_map(micrograph, denoised, 100 * pixel_size, ExclusionSettings())
    found = exclusion.mask(("crystalline_ice",))
    expected = mask_on_canvas(grain, exclusion.frame)
    iou = (found & expected).sum() / (found | expected).sum()
    assert iou > 0.6, iou
    assert exclusion.stats["ice_tiles"] == 1
    assert found.sum() < 0.35 * (exclusion.frame.size / 2) ** 2  # far less than its tile


def crystalline_case(tmp_path, seed: int, index: int, **extra):
    """A 1 A/px micrograph of 100 A particles (the benchmark's development families), its
    files for the stage, and the generator's micrograph."""
    settings = SyntheticSettings(
        height=1024,
        width=1024,
        pixel_size=1.0,
        particle_diameter=100.0,
        particles_per_micrograph=33,
        dose=30,
        carbon_probability=0.0,
        thick_ice_probability=0.0,
        aggregates_per_um2=0.0,
        **extra,
    )
    m = generate_micrograph(settings, index, seed)
    return m, *denoised_for(tmp_path, m.image, 1.0, size=512)


def test_a_grain_is_found_where_it_is_not_where_defocus_images_its_fringes(tmp_path):
    # at 2.75 um defocus a grain's 3.67 A fringes are imaged twice, about 1.4 diameters to
    # either side of it along each spot's direction: unfolded, the map was the ghosts (and
    # the particles beside the grain); folded back with the defocus from the Thon rings it
    # is the grain (benchmarks/exclusion.py --dev --dev-seed 6500, film_1)
    m, micrograph, denoised = crystalline_case(
        tmp_path, 6700, 1, contaminants_per_um2=0.0, crystalline_ice_probability=1.0
    )
    expected = None
    ious = {}
    for name, fit in (("folded", ExclusionSettings().ctf_fit), ("unfolded", 1.0)):
        exclusion = exclusion_map(micrograph, denoised, 100.0, ExclusionSettings(ctf_fit=fit))
        expected = mask_on_canvas(m.crystalline_ice_mask, exclusion.frame)
        found = exclusion.mask(("crystalline_ice",))
        ious[name] = (found & expected).sum() / (found | expected).sum()
        if name == "folded":
            assert abs(exclusion.stats["defocus_A"] - m.ctf.defocus_u) < 1500
            lost = mask_at(exclusion.mask(), m.coordinates[["x", "y"]].to_numpy(), exclusion.frame)
    assert ious["folded"] > 0.7 and ious["folded"] > ious["unfolded"] + 0.2, ious
    assert lost.sum() == 0


def test_a_contaminant_over_most_of_a_field_with_few_particles_is_found(tmp_path):
    # crystalline contaminants over 80 % of the field, 22 particles between them: too few
    # to anchor the ice level, and the median of the field lay between ice and contaminant,
    # so that nothing was dark enough (benchmarks/exclusion.py --dev --dev-seed 6500, xtal_0)
    m, micrograph, denoised = crystalline_case(
        tmp_path, 6600, 0, contaminants_per_um2=300.0, crystalline_fraction=1.0
    )
    exclusion = exclusion_map(micrograph, denoised, 100.0, ExclusionSettings())
    assert exclusion.stats["ice_level_anchored"] is False
    expected = mask_on_canvas(m.contamination_mask, exclusion.frame)
    assert expected.mean() > 0.6
    found = exclusion.mask(("contamination", "crystalline_ice"))
    assert (found & expected).sum() / (found | expected).sum() > 0.85
    xy = m.coordinates[["x", "y"]].to_numpy()
    assert mask_at(exclusion.mask(), xy, exclusion.frame).sum() <= 1


def test_two_levels_are_split_and_one_level_is_not():
    rng = np.random.default_rng(3)
    ice = rng.normal(10.0, 1.0, 3000)
    contaminant = np.concatenate([rng.normal(-40.0, 3.0, 4000), rng.normal(-15.0, 3.0, 3000)])
    values = np.concatenate([ice, contaminant])
    split = two_level_split(values, 6.0)
    assert split is not None and split < 10.0
    # the ice level from the bright side (ice_level drops what lies far below it)
    assert ice_level(values)[0] < 0.0
    assert ice_level(values[values >= split])[0] == pytest.approx(10.0, abs=0.5)
    assert two_level_split(rng.normal(10.0, 1.0, 10000), 6.0) is None
    assert two_level_split(np.concatenate([ice, rng.normal(7.0, 1.0, 3000)]), 6.0) is None


def test_border_stripes_are_measured_per_edge():
    rng = np.random.default_rng(1)
    image = rng.normal(0, 1, size=(400, 600)).astype(np.float32)
    image[:, :30] = image[:, 30:31]  # left: the first inner column replicated
    image[-12:, :] = image[-13:-12, :]  # bottom
    bands = border_bands(image, ExclusionSettings())
    assert bands == {"left": 30, "right": 0, "top": 0, "bottom": 12}


def coded_map(
    shape=(100, 100), box=(slice(0, 50), slice(0, 100)), name: str = "carbon"
) -> ExclusionMap:
    frame = Frame(400, 400, 100, 100, 100)
    codes = np.zeros(shape, np.uint8)
    codes[box] = CODES[name]
    return ExclusionMap(codes, frame, pixel_size=8.0, stats={})


def test_picks_in_an_excluded_area_are_dropped_and_the_others_kept():
    exclusion = coded_map()  # the top half (file rows 0-199) is carbon
    picks = pd.DataFrame({"x": [50.0, 50.0, 300.0, 300.0], "y": [20.0, 190.0, 215.0, 350.0]})
    picks["score"] = [0.9, 0.8, 0.7, 0.6]
    kept, excluded = apply_exclusion(picks, exclusion, diameter_px=40.0)
    assert excluded == 2 and list(kept["y"]) == [215.0, 350.0]
    # grown by half a diameter (20 file px), the pick 15 px below the carbon goes too
    kept, excluded = apply_exclusion(picks, exclusion, 40.0, dilation=0.5)
    assert excluded == 3 and list(kept["y"]) == [350.0]
    # another class only: nothing excluded
    _, excluded = apply_exclusion(picks, exclusion, 40.0, classes=("contamination",))
    assert excluded == 0
    flagged, excluded = apply_exclusion(picks, exclusion, 40.0, action="flag")
    assert excluded == 2 and len(flagged) == 4
    assert list(flagged["excluded"]) == [1, 1, 0, 0]
    assert list(flagged["score"]) == [0.0, 0.0, 0.7, 0.6]


def test_an_area_the_picks_fill_as_densely_as_the_ice_is_released():
    # contamination in the top half of a 400 px micrograph (canvas 100 px, 4 px each)
    exclusion = coded_map(name="contamination")
    grid = np.array([(x, y) for x in range(20, 400, 40) for y in range(20, 400, 40)], float)
    picks = pd.DataFrame({"x": grid[:, 0], "y": grid[:, 1], "score": 1.0})
    # picked as densely on the area as off it: the area is ice (a crowded, darker patch)
    kept, excluded = apply_exclusion(picks, exclusion, 40.0, populated=0.5)
    assert excluded == 0 and len(kept) == len(picks)
    # the same area with a single pick on it: an obstacle, its pick dropped
    sparse = picks[(picks["y"] > 200) | ((picks["x"] == 20) & (picks["y"] == 20))]
    kept, excluded = apply_exclusion(sparse.reset_index(drop=True), exclusion, 40.0, populated=0.5)
    assert excluded == 1
    # populated 0: nothing is released
    _, excluded = apply_exclusion(picks, exclusion, 40.0, populated=0.0)
    assert excluded == 50


def test_picks_of_the_blob_baseline_release_no_area():
    section = {"enabled": True, "action": "drop", "dilation": 0.0, "classes": [], "populated": 0.5}
    unet = exclusion_filter_settings({"exclusion": section, "picks": {"source": "unet"}})
    blob = exclusion_filter_settings({"exclusion": section, "picks": {"source": "baseline"}})
    assert unet["populated"] == 0.5 and blob["populated"] == 0.0


def test_a_verdict_per_micrograph():
    carbon = coded_map(box=(slice(0, 60), slice(0, 100)))  # 60 % carbon
    clean = coded_map(box=(slice(0, 0), slice(0, 0)))
    rows = [
        micrograph_quality("carbon", carbon, 40, 2.0),
        micrograph_quality("clean", clean, 100, 2.0),
        micrograph_quality("clean_too", clean, 110, 2.0),
        micrograph_quality("empty", clean, 3, 2.0),
        # a broken hole: most of it without ice, its few particles dense on the rest
        micrograph_quality(
            "no_ice", coded_map(box=(slice(0, 70), slice(0, 100)), name="empty"), 40, 2.0
        ),
    ]
    verdicts = {
        r["micrograph"]: r["verdict"] for r in classify_micrographs(rows, VerdictSettings())
    }
    assert verdicts == {
        "carbon": "carbon_dominated",
        "clean": "good",
        "clean_too": "good",
        "empty": "empty",
        "no_ice": "empty",
    }
    assert rows[0]["usable_fraction"] == pytest.approx(0.4)


def test_bad_input_gives_one_clear_error(tmp_path):
    image, _ = disc_micrograph((256, 256), n=5, diameter=20.0)
    micrograph, denoised = denoised_for(tmp_path, image, 4.0)
    write_mrc(tmp_path / "other.mrc", np.ones((300, 256), np.float32) + image[:1], 4.0)
    with pytest.raises(InputError, match="other.mrc: shape .* differs from its denoised frame"):
        exclusion_map(str(tmp_path / "other.mrc"), denoised, 80.0, ExclusionSettings())
    with pytest.raises(InputError, match="unknown \\['ice'\\]"):
        coded_map().mask(("ice",))
    with pytest.raises(InputError, match="exclusion.action must be one of"):
        apply_exclusion(pd.DataFrame({"x": [1.0], "y": [1.0]}), coded_map(), 4.0, action="cut")


def carbon_dataset(root) -> dict:
    """Two disc micrographs whose top third is dark carbon holding a few discs of its own:
    particles there are labelled, so that what exclusion drops shows in the metrics."""
    (root / "micrographs").mkdir(parents=True)
    (root / "labels").mkdir()
    for i in range(2):
        image, centres = disc_micrograph((600, 800), n=30, diameter=40.0, seed=20 + i)
        image[:200] -= 1.5
        name = f"mic_{i:03d}"
        write_mrc(root / "micrographs" / f"{name}.mrc", image, 2.0)
        write_cryoppp(root / "labels" / f"{name}.csv", centres, 40.0)
    return {
        "micrographs": str(root / "micrographs" / "*.mrc"),
        "pixel_size": 2.0,
        "particle_diameter": 80.0,
        "ground_truth": str(root / "labels"),
    }


def test_the_exclusion_stage_in_a_workflow_run(tmp_path):
    from conftest import SMALL_DENOISE, SPARSE_BASELINE

    config = {
        "datasets": {"carbon": carbon_dataset(tmp_path / "data")},
        "denoise": SMALL_DENOISE,
        "baseline": SPARSE_BASELINE,
        "exclusion": {"enabled": True},
    }
    run_workflow(tmp_path / "run", config)
    results = tmp_path / "run" / "results" / "carbon"
    summary = pd.read_csv(results / "metrics" / "summary.tsv", sep="\t")
    assert list(summary["stage"]) == ["baseline", "final before exclusion", "final"]
    before, after = summary.iloc[1], summary.iloc[2]
    assert after["n_picks"] < before["n_picks"]
    for name in ("mic_000", "mic_001"):
        picks = read_coordinates(final_picks_file(results, name))
        assert len(picks) > 0 and (picks["y"] > 190).all()  # none on the carbon (rows < 200)
    quality = pd.read_csv(results / "micrographs_quality.tsv", sep="\t")
    assert list(quality["micrograph"]) == ["mic_000", "mic_001"]
    assert quality["carbon_fraction"].between(0.25, 0.40).all()
    assert set(quality["verdict"]) == {"good"}
    good = (results / "micrographs_good.star").read_text()
    assert "_rlnMicrographName" in good and "mic_000.mrc" in good and "mic_001.mrc" in good
    # flag instead of drop: the picks stay, with figure of merit 0 and the flag column
    config["exclusion"]["action"] = "flag"
    run_workflow(tmp_path / "run", config)
    text = final_picks_file(results, "mic_000").read_text()
    assert EXCLUDED_LABEL in text
    flagged = read_coordinates(final_picks_file(results, "mic_000"))
    on_carbon = flagged["y"] < 190
    assert on_carbon.any() and (flagged.loc[on_carbon, "score"] == 0).all()
