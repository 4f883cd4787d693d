"""CryoSegNet's Algorithm 1 on hand-made masks: one test per fixed defect, plus the basics."""

import numpy as np
import pytest

from cryopick.denoise import Frame, frame_for
from cryopick.io import InputError
from cryopick.postprocess import PostprocessSettings, box_mode, masks_to_picks, sam_picks_file
from cryopick.sam import MaskRecord, rle_encode

CANVAS = 128


def disc_record(
    cx: float,
    cy: float,
    diameter: int,
    iou: float = 0.97,
    stability: float = 0.98,
    size: int = CANVAS,
) -> MaskRecord:
    """A SAM-like record of a filled disc spanning ``diameter`` pixels centred on (cx, cy)."""
    yy, xx = np.mgrid[:size, :size]
    r = (diameter - 1) / 2
    mask = ((xx - cx) / (r + 0.5)) ** 2 + ((yy - cy) / (r + 0.5)) ** 2 <= 1
    rows, cols = np.nonzero(mask)
    bbox = (
        float(cols.min()),
        float(rows.min()),
        float(cols.max() - cols.min()),
        float(rows.max() - rows.min()),
    )
    return MaskRecord(
        bbox=bbox,
        area=int(mask.sum()),
        predicted_iou=iou,
        stability_score=stability,
        point=(cx, cy),
        counts=tuple(rle_encode(mask)),
        size=(size, size),
    )


def square_frame(original: int) -> Frame:
    return frame_for((original, original), CANVAS)


def test_fix1_diameter_is_the_box_side_not_the_diagonal() -> None:
    records = [disc_record(30, 30, 21), disc_record(80, 90, 21), disc_record(60, 40, 21)]
    frame = square_frame(4 * CANVAS)  # 4x binning
    picks, _ = masks_to_picks(records, frame)
    assert len(picks) == 3
    # 21 canvas pixels across, 4 file pixels each: 84, not the diagonal's 84 * sqrt(2) = 119
    np.testing.assert_allclose(picks["diameter"], 84.0)
    # an elongated mask: mean of the sides by default, the longer side with "max"
    long = [
        MaskRecord(
            bbox=(10.0, 10.0, 19.0, 29.0),
            area=1,
            predicted_iou=0.99,
            stability_score=1.0,
            point=(0, 0),
            counts=(),
            size=(CANVAS, CANVAS),
        )
    ]
    mean_pick, _ = masks_to_picks(long, square_frame(CANVAS))
    max_pick, _ = masks_to_picks(
        long, square_frame(CANVAS), PostprocessSettings(diameter_from="max")
    )
    assert mean_pick["diameter"].item() == 25.0 and max_pick["diameter"].item() == 30.0


@pytest.mark.parametrize("original", [CANVAS, 4096, 7676])
def test_fix2_size_window_is_in_one_unit_system(original: int) -> None:
    """The same canvas masks give the same picks whatever the micrograph size; the window is
    [0.8, 1.6] x the mode in canvas pixels (CryoSegNet's widened with the micrograph)."""
    typical = [disc_record(20 + 22 * i, 20, 11) for i in range(5)]
    small = disc_record(20, 60, 7)  # 7 / 11 = 0.64 of the mode: too small
    large = disc_record(60, 70, 17)  # 17 / 11 = 1.55: inside the window
    huge = disc_record(60, 105, 21)  # 21 / 11 = 1.9: too large (CryoSegNet kept it at 7676 px)
    frame = square_frame(original)
    picks, stats = masks_to_picks(typical + [small, large, huge], frame)
    assert stats["mode_width"] == 11 and stats["mode_height"] == 11
    assert len(picks) == 6
    # centres come back through Frame.to_original, from canvas pixels
    x, y = frame.to_network(picks["x"].to_numpy(), picks["y"].to_numpy())
    expected = {(20.0 + 22 * i, 20.0) for i in range(5)} | {(60.0, 70.0)}
    assert {(round(a, 6), round(b, 6)) for a, b in zip(x, y)} == expected


def test_fix3_no_jittered_duplicates() -> None:
    """A near-perfect mask gives exactly one pick at its centre (CryoSegNet wrote two more,
    randomly jittered); nested masks of one particle merge, keeping the best score."""
    perfect = disc_record(40, 40, 15, iou=0.999, stability=0.99)
    others = [disc_record(90, 40, 15), disc_record(40, 95, 15)]
    first, _ = masks_to_picks([perfect] + others, square_frame(CANVAS))
    again, _ = masks_to_picks([perfect] + others, square_frame(CANVAS))
    assert len(first) == 3 and first.equals(again)
    near = first[np.hypot(first["x"] - 40, first["y"] - 40) < 8]
    assert len(near) == 1 and near["x"].item() == 40 and near["y"].item() == 40
    # the same particle found at two granularities, centres 2 px apart
    inner = disc_record(90, 42, 13, iou=0.99, stability=0.99)
    picks, stats = masks_to_picks([perfect] + others + [inner], square_frame(CANVAS))
    assert stats["after_size"] == 4 and stats["picks"] == 3
    best = picks[np.hypot(picks["x"] - 90, picks["y"] - 40) < 8]
    assert len(best) == 1 and best["y"].item() == 42  # the better-scored inner mask
    assert best["score"].item() == pytest.approx(0.99 * 0.99)
    # min_distance 0 keeps both
    both, _ = masks_to_picks(
        [perfect] + others + [inner], square_frame(CANVAS), PostprocessSettings(min_distance=0)
    )
    assert len(both) == 4


def test_predicted_iou_filter_and_score() -> None:
    records = [
        disc_record(30, 30, 11, iou=0.95, stability=0.9),
        disc_record(80, 30, 11, iou=0.94),  # not > 0.94
        disc_record(30, 80, 11, iou=0.5),
    ]
    picks, stats = masks_to_picks(records, square_frame(CANVAS))
    assert stats["after_iou"] == 1 and len(picks) == 1
    assert picks["score"].item() == pytest.approx(0.95 * 0.9)
    loose, _ = masks_to_picks(
        records, square_frame(CANVAS), PostprocessSettings(min_predicted_iou=0.4)
    )
    assert len(loose) == 3 and loose["score"].is_monotonic_decreasing


def test_no_masks_and_padding() -> None:
    empty, stats = masks_to_picks([], square_frame(CANVAS))
    assert empty.empty and list(empty.columns) == ["x", "y", "score", "diameter"]
    assert stats["picks"] == 0
    none_good, _ = masks_to_picks([disc_record(30, 30, 11, iou=0.3)], square_frame(CANVAS))
    assert none_good.empty
    # a 2:1 micrograph fills the top half of the canvas; a mask on the padding is no pick
    frame = frame_for((1000, 2000), CANVAS)
    assert frame.content_height == 64
    picks, _ = masks_to_picks([disc_record(30, 30, 11), disc_record(30, 100, 11)], frame)
    assert len(picks) == 1 and picks["y"].item() < 1000


def test_box_mode_is_deterministic() -> None:
    assert box_mode(np.array([10, 10, 12, 12, 30])) == 12  # tie: nearest the median (12)
    assert box_mode(np.array([9, 10, 10, 11])) == 10


def test_settings_are_checked() -> None:
    assert PostprocessSettings.from_config({"min_predicted_iou": 0.9}).min_predicted_iou == 0.9
    with pytest.raises(InputError, match="diameter_from"):
        PostprocessSettings.from_config({"diameter_from": "diagonal"})
    with pytest.raises(InputError, match="size_window"):
        PostprocessSettings.from_config({"size_window_low": 1.2})


def test_sam_picks_file_writes_star_in_the_file_frame(tmp_path) -> None:
    from cryopick.denoise import save_denoised
    from cryopick.io import read_coordinates
    from cryopick.sam import save_masks

    records = [disc_record(30, 30, 11), disc_record(90, 60, 11)]
    frame = square_frame(512)
    save_denoised(tmp_path / "d.npz", np.zeros((CANVAS, CANVAS), np.uint8), frame, 8.0)
    save_masks(tmp_path / "m.json.gz", records, (CANVAS, CANVAS))
    picks, stats = sam_picks_file(
        tmp_path / "m.json.gz", tmp_path / "d.npz", tmp_path / "p.star", PostprocessSettings()
    )
    assert stats["picks"] == 2
    back = read_coordinates(tmp_path / "p.star")
    np.testing.assert_allclose(back[["x", "y"]].to_numpy(), picks[["x", "y"]].to_numpy(), atol=0.01)
    assert set(np.round(back["x"], 2)) == {30 * 4 + 1.5, 90 * 4 + 1.5}


def test_raw_mask_picks_keep_every_mask_as_the_reference_stage() -> None:
    """The "sam" row: one pick per mask, nothing filtered or merged, so that the rows of the
    per-stage table show what the postprocessing removes."""
    from cryopick.postprocess import raw_mask_picks

    records = [
        disc_record(30, 30, 21, iou=0.5),
        disc_record(31, 30, 21, iou=0.99),
        disc_record(80, 90, 61, iou=0.96),
    ]
    frame = square_frame(4 * CANVAS)
    raw = raw_mask_picks(records, frame)
    assert len(raw) == 3 and (np.diff(raw["score"]) <= 0).all()
    assert raw["score"][0] == pytest.approx(0.99 * 0.98)
    np.testing.assert_allclose(sorted(raw["diameter"]), [84.0, 84.0, 244.0])
    post, _ = masks_to_picks(records, frame)
    assert len(post) < len(raw)  # IoU filter, size window and merging remove two
    assert raw_mask_picks([], frame).empty
