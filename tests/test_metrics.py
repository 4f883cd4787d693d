import numpy as np
import pandas as pd
import pytest

from cryopick.metrics import (
    dice,
    disc_mask,
    match_count,
    matched_picks,
    precision_recall_curve,
    precision_recall_f1,
    score_histogram,
    score_micrograph,
    summarise,
    within_edge,
)


def test_hungarian_beats_greedy():
    # greedy closest-pair-first takes pick 0 - label 1 (distance 4), leaving pick 1 alone
    picks = np.array([[6.0, 0.0], [15.0, 0.0]])
    truth = np.array([[0.0, 0.0], [10.0, 0.0]])
    assert match_count(picks, truth, radius=6.0) == 2


def test_match_is_one_to_one_and_radius_inclusive():
    truth = np.array([[0.0, 0.0]])
    picks = np.array([[1.0, 0.0], [-1.0, 0.0]])
    assert match_count(picks, truth, 5.0) == 1
    assert match_count(np.array([[3.0, 4.0]]), truth, 5.0) == 1
    assert match_count(np.array([[3.0, 4.1]]), truth, 5.0) == 0
    assert match_count(np.zeros((0, 2)), truth, 5.0) == 0


def test_precision_recall_f1_edge_cases():
    assert precision_recall_f1(0, 0, 0) == (0.0, 0.0, 0.0)
    p, r, f = precision_recall_f1(6, 8, 12)
    assert (p, r) == (0.75, 0.5) and f == pytest.approx(0.6)


def test_dice_and_disc_mask():
    a = disc_mask((50, 50), [25], [25], 20)
    assert a.sum() == pytest.approx(np.pi * 100, rel=0.1)
    assert dice(a, a) == 1.0 and dice(a, ~a) == 0.0
    assert dice(np.zeros((3, 3)), np.zeros((3, 3))) == 1.0


def test_pooled_not_mean_and_never_max():
    truth = pd.DataFrame({"x": [50.0, 150.0], "y": [50.0, 50.0]})
    good = score_micrograph("a", truth.copy(), truth, 20, (100, 200))
    empty = score_micrograph("b", truth.iloc[:0], truth, 20, (100, 200))
    extra = pd.DataFrame({"x": [50.0] + [10.0 + 20 * i for i in range(9)], "y": [50.0] * 10})
    noisy = score_micrograph("c", extra, truth, 20, (100, 200))
    table = pd.DataFrame([good.row(), empty.row(), noisy.row()])
    summary = summarise(table)
    tp = 2 + 0 + 2  # the noisy micrograph's picks at x=50 and x=150 both match
    assert summary["precision"] == pytest.approx(tp / (2 + 0 + 10))
    assert summary["recall"] == pytest.approx(tp / 6)
    assert summary["f1"] == pytest.approx(2 * tp / (12 + 6))
    assert summary["dice"] == pytest.approx(table["dice"].mean())
    assert summary["f1"] < table["f1"].max()


def test_stricter_radius_counts_fewer():
    truth = pd.DataFrame({"x": [50.0], "y": [50.0]})
    picks = pd.DataFrame({"x": [57.0], "y": [50.0]})
    row = score_micrograph("a", picks, truth, 20, (100, 100)).row()
    assert row["tp"] == 1 and row["tp_r025"] == 0


def test_label_mask_shape_mismatch_is_an_error():
    truth = pd.DataFrame({"x": [5.0], "y": [5.0]})
    with pytest.raises(ValueError, match="shape"):
        score_micrograph("a", truth, truth, 4, (10, 10), truth_mask=np.zeros((9, 10), bool))


def test_matching_prefers_high_scores_without_losing_matches():
    # two picks compete for one label: the higher-scoring one is matched
    truth = np.array([[0.0, 0.0]])
    picks = np.array([[1.0, 0.0], [-2.0, 0.0]])
    matched, labelled = matched_picks(picks, truth, 5.0, scores=np.array([0.2, 0.9]))
    assert matched.tolist() == [False, True] and labelled.tolist() == [True]
    # ... but never at the cost of a match: the largest matching stays the largest
    picks = np.array([[6.0, 0.0], [15.0, 0.0]])
    truth = np.array([[0.0, 0.0], [10.0, 0.0]])
    matched, _ = matched_picks(picks, truth, 6.0, scores=np.array([0.1, 0.9]))
    assert matched.all()


def test_precision_recall_curve_ends_at_the_operating_point():
    scores = np.array([0.9, 0.8, 0.8, 0.5, 0.3])
    matched = np.array([True, True, False, True, False])
    curve = precision_recall_curve(scores, matched, n_truth=4)
    assert curve["threshold"].tolist() == [0.9, 0.8, 0.5, 0.3]  # one point per distinct score
    assert curve["n_picks"].tolist() == [1, 3, 4, 5]
    last = curve.iloc[-1]
    assert (last["precision"], last["recall"]) == (3 / 5, 3 / 4)
    assert last["f1"] == pytest.approx(precision_recall_f1(3, 5, 4)[2])
    assert precision_recall_curve(np.zeros(0), np.zeros(0, bool), 3).empty


def test_score_histogram_counts_every_finite_score():
    table = score_histogram(np.array([0.1, 0.2, 0.2, np.nan, 0.9]), bins=4)
    assert table["count"].sum() == 4 and len(table) == 4
    assert table["low"].iloc[0] == pytest.approx(0.1) and table["high"].iloc[-1] == pytest.approx(
        0.9
    )


def test_within_edge_keeps_centres_at_least_the_margin_from_every_edge():
    points = pd.DataFrame(
        {"x": [5.0, 10.0, 50.0, 190.0, 195.0], "y": [50.0, 50.0, 10.0, 90.0, 50.0]}
    )
    kept = within_edge(points, (100, 200), 10.0)
    assert kept["x"].tolist() == [10.0, 50.0, 190.0]
    assert within_edge(points, (100, 200), 0.0).equals(points)
