"""The project's one definition of picking quality (SPEC.md "Metrics").

Pick level: one-to-one (Hungarian) matching of pick centres to label centres, a pair counting
only when the centres are within ``radius_factor x diameter``; precision, recall and F1 are
*pooled* over all micrographs of a data set (total true positives over total picks / labels).
Reported at 0.5 x diameter and at the stricter 0.25 x diameter.

Pixel level: Dice between discs of the labelled diameter drawn at the picks and the label mask
(the given ground-truth mask, or discs at the label centres), averaged over micrographs.

Never a maximum over micrographs (CryoSegNet's Table 1 did that; it is not comparable).

Edge convention: CryoPPP's labels never come closer than one particle diameter to the edge
(EMPIAR-10017: 0 of 8,193 labels within 1.0 d, the density of labels at 1.5 d and beyond is
that of the interior), while synthetic truth and other simulators put particles right up to it.
:func:`within_edge` applies CryoPPP's convention to both picks and truth, so a picker that
respects it is not charged with the particles it was told to leave.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
import pandas as pd
from scipy.optimize import linear_sum_assignment
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components
from scipy.spatial import cKDTree

RADIUS_FACTORS = (0.5, 0.25)
HEADLINE_RADIUS = 0.5  # the radius factor of precision, recall and f1 (no suffix)
CRYOPPP_EDGE = 1.0  # diameters: no CryoPPP label is closer than this to the micrograph edge


def within_edge(
    coordinates: pd.DataFrame, shape: tuple[int, int], margin_px: float
) -> pd.DataFrame:
    """The rows whose centre (x, y) is at least ``margin_px`` from every edge of an image of
    ``shape`` (rows, columns)."""
    x, y = coordinates["x"].to_numpy(float), coordinates["y"].to_numpy(float)
    h, w = shape
    keep = (x >= margin_px) & (y >= margin_px) & (x <= w - margin_px) & (y <= h - margin_px)
    return coordinates[keep]


def match_count(picks: np.ndarray, truth: np.ndarray, radius: float) -> int:
    """Size of the largest one-to-one matching of picks to labels within ``radius``."""
    return int(matched_picks(picks, truth, radius)[0].sum())


def matched_picks(
    picks: np.ndarray, truth: np.ndarray, radius: float, scores: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Which picks and which labels a largest one-to-one matching within ``radius`` pairs
    (Hungarian algorithm on each connected cluster of candidate pairs), as two boolean arrays.

    Among the largest matchings, one that pairs higher-``scores`` picks is chosen, so that a
    precision-recall curve over the score threshold (:func:`precision_recall_curve`) ends at
    exactly the pooled counts of :func:`summarise`.
    """
    picks = np.asarray(picks, dtype=float).reshape(-1, 2)
    truth = np.asarray(truth, dtype=float).reshape(-1, 2)
    pick_matched = np.zeros(len(picks), dtype=bool)
    truth_matched = np.zeros(len(truth), dtype=bool)
    if len(picks) == 0 or len(truth) == 0:
        return pick_matched, truth_matched
    pairs = cKDTree(picks).query_ball_tree(cKDTree(truth), r=radius)
    rows = [i for i, js in enumerate(pairs) for _ in js]
    cols = [j for js in pairs for j in js]
    if not rows:
        return pick_matched, truth_matched
    rank = _score_ranks(scores, len(picks))
    n_p, n_t = len(picks), len(truth)
    graph = coo_matrix(
        (np.ones(len(rows)), (rows, np.asarray(cols) + n_p)), shape=(n_p + n_t, n_p + n_t)
    )
    _, labels = connected_components(graph, directed=False)
    rows, cols = np.asarray(rows), np.asarray(cols)
    for component in np.unique(labels[rows]):
        sel = labels[rows] == component
        r_ids, r_inv = np.unique(rows[sel], return_inverse=True)
        c_ids, c_inv = np.unique(cols[sel], return_inverse=True)
        # cost 1 for a forbidden pair, below 0 for an allowed one: minimising the cost maximises
        # the allowed matches first (the score bonuses of a component sum to less than one
        # match) and the matched picks' scores second
        bonus = 0.5 * rank[r_ids] / len(r_ids)
        cost = np.ones((len(r_ids), len(c_ids)))
        cost[r_inv, c_inv] = -bonus[r_inv]
        ri, ci = linear_sum_assignment(cost)
        ok = cost[ri, ci] <= 0
        pick_matched[r_ids[ri[ok]]] = True
        truth_matched[c_ids[ci[ok]]] = True
    return pick_matched, truth_matched


def _score_ranks(scores: np.ndarray | None, n: int) -> np.ndarray:
    """Scores as ranks in [0, 1] (ties equal; all zero without scores)."""
    if scores is None:
        return np.zeros(n)
    scores = np.nan_to_num(np.asarray(scores, dtype=float), nan=-np.inf)
    _, inverse = np.unique(scores, return_inverse=True)
    top = inverse.max() if n else 0
    return inverse / top if top else np.zeros(n)


def precision_recall_curve(
    scores: np.ndarray, matched: np.ndarray, n_truth: int, max_points: int = 200
) -> pd.DataFrame:
    """Pooled precision and recall of the picks scoring at least each threshold, from the
    picks' scores and whether each is matched (:func:`matched_picks`), highest threshold first.
    The last row (the lowest threshold) is the stage's operating point: all its picks."""
    scores = np.nan_to_num(np.asarray(scores, dtype=float), nan=-np.inf)
    matched = np.asarray(matched, dtype=bool)
    columns = ["threshold", "n_picks", "precision", "recall", "f1"]
    if len(scores) == 0:
        return pd.DataFrame(columns=columns)
    order = np.argsort(-scores, kind="stable")
    tp = np.cumsum(matched[order])
    n = np.arange(1, len(order) + 1)
    sorted_scores = scores[order]
    # one point per distinct threshold (the last pick of each run of equal scores)
    last = np.r_[sorted_scores[1:] != sorted_scores[:-1], True]
    keep = np.flatnonzero(last)
    if len(keep) > max_points:
        keep = keep[np.unique(np.linspace(0, len(keep) - 1, max_points).round().astype(int))]
    tp, n = tp[keep], n[keep]
    precision = tp / n
    recall = tp / n_truth if n_truth else np.zeros(len(tp))
    f1 = 2 * tp / (n + n_truth)
    return pd.DataFrame(
        {
            "threshold": sorted_scores[keep],
            "n_picks": n,
            "precision": precision,
            "recall": recall,
            "f1": f1,
        }
    )


def score_histogram(scores: np.ndarray, bins: int = 40) -> pd.DataFrame:
    """Counts of the finite ``scores`` in ``bins`` equal bins over their range."""
    scores = np.asarray(scores, dtype=float)
    scores = scores[np.isfinite(scores)]
    if len(scores) == 0:
        return pd.DataFrame(columns=["low", "high", "count"])
    low, high = float(scores.min()), float(scores.max())
    if high <= low:
        high = low + 1e-6
    counts, edges = np.histogram(scores, bins=bins, range=(low, high))
    return pd.DataFrame({"low": edges[:-1], "high": edges[1:], "count": counts})


def disc_mask(shape: tuple[int, int], x: np.ndarray, y: np.ndarray, diameter: float) -> np.ndarray:
    """Boolean mask with filled discs of ``diameter`` pixels centred at (x, y)."""
    mask = np.zeros(shape, dtype=np.uint8)
    radius = max(int(round(diameter / 2)), 1)
    for cx, cy in zip(np.asarray(x, float), np.asarray(y, float)):
        cv2.circle(mask, (int(round(cx)), int(round(cy))), radius, 1, thickness=-1)
    return mask.astype(bool)


def dice(a: np.ndarray, b: np.ndarray) -> float:
    a, b = np.asarray(a, bool), np.asarray(b, bool)
    total = int(a.sum()) + int(b.sum())
    return 1.0 if total == 0 else 2.0 * int((a & b).sum()) / total


@dataclass(frozen=True)
class MicrographScore:
    micrograph: str
    n_picks: int
    n_truth: int
    true_positives: dict[float, int]
    dice: float
    # per pick: its score and whether it is matched at the headline radius (0.5 x diameter)
    scores: np.ndarray | None = None
    matched: np.ndarray | None = None

    def row(self) -> dict:
        out = {"micrograph": self.micrograph, "n_picks": self.n_picks, "n_truth": self.n_truth}
        for factor, tp in self.true_positives.items():
            p, r, f = precision_recall_f1(tp, self.n_picks, self.n_truth)
            suffix = radius_suffix(factor)
            out.update(
                {f"tp{suffix}": tp, f"precision{suffix}": p, f"recall{suffix}": r, f"f1{suffix}": f}
            )
        out["dice"] = self.dice
        return out


def radius_suffix(factor: float) -> str:
    """Column suffix: '' for the headline 0.5 x diameter, '_r025' for 0.25 x diameter."""
    return "" if factor == HEADLINE_RADIUS else f"_r{int(round(factor * 100)):03d}"


def precision_recall_f1(tp: int, n_picks: int, n_truth: int) -> tuple[float, float, float]:
    precision = tp / n_picks if n_picks else 0.0
    recall = tp / n_truth if n_truth else 0.0
    f1 = 2 * tp / (n_picks + n_truth) if (n_picks + n_truth) else 0.0
    return precision, recall, f1


def score_micrograph(
    name: str,
    picks: pd.DataFrame,
    truth: pd.DataFrame,
    diameter: float,
    shape: tuple[int, int],
    truth_mask: np.ndarray | None = None,
    radius_factors=RADIUS_FACTORS,
) -> MicrographScore:
    """Score one micrograph; ``diameter`` is the labelled diameter in the file's pixels."""
    p = picks[["x", "y"]].to_numpy(float)
    t = truth[["x", "y"]].to_numpy(float)
    scores = picks["score"].to_numpy(float) if "score" in picks else np.zeros(len(p))
    matched, _ = matched_picks(p, t, HEADLINE_RADIUS * diameter, scores)
    tps = {
        f: int(matched.sum()) if f == HEADLINE_RADIUS else match_count(p, t, f * diameter)
        for f in radius_factors
    }
    if truth_mask is None:
        truth_mask = disc_mask(shape, t[:, 0], t[:, 1], diameter)
    elif truth_mask.shape != tuple(shape):
        raise ValueError(
            f"{name}: ground-truth mask shape {truth_mask.shape} differs from the "
            f"micrograph shape {tuple(shape)}"
        )
    pick_mask = disc_mask(shape, p[:, 0], p[:, 1], diameter)
    return MicrographScore(
        name, len(p), len(t), tps, dice(pick_mask, truth_mask), scores=scores, matched=matched
    )


def summarise(per_micrograph: pd.DataFrame, radius_factors=RADIUS_FACTORS) -> dict:
    """Pooled precision/recall/F1 (sums over micrographs) and mean Dice for one stage."""
    n_picks = int(per_micrograph["n_picks"].sum())
    n_truth = int(per_micrograph["n_truth"].sum())
    out = {"n_micrographs": len(per_micrograph), "n_picks": n_picks, "n_truth": n_truth}
    for factor in radius_factors:
        suffix = radius_suffix(factor)
        tp = int(per_micrograph[f"tp{suffix}"].sum())
        p, r, f = precision_recall_f1(tp, n_picks, n_truth)
        out.update({f"precision{suffix}": p, f"recall{suffix}": r, f"f1{suffix}": f})
    out["dice"] = float(per_micrograph["dice"].mean()) if len(per_micrograph) else float("nan")
    return out


def read_label_mask(path: str, shape: tuple[int, int]) -> np.ndarray:
    from cryopick.io import InputError, read_micrograph

    mask = read_micrograph(path).image > 0 if _not_empty_mask(path) else np.zeros(shape, bool)
    if mask.shape != tuple(shape):
        raise InputError(
            f"{path}: label mask shape {mask.shape} differs from the micrograph "
            f"shape {tuple(shape)}"
        )
    return mask


def _not_empty_mask(path: str) -> bool:
    """An all-black mask (no particles) is valid here, though read_micrograph refuses a
    constant image."""
    from PIL import Image

    with Image.open(path) as img:
        return bool(np.asarray(img).any())


# labels this far outside the image (in its widths) are an error of the file, not of picking
OUTSIDE_TOLERANCE = 0.02
MAX_OUTSIDE_FRACTION = 0.05  # a few stray labels are dropped with a warning; more refuse the file


def checked_labels(
    path: str, truth: pd.DataFrame, shape: tuple[int, int], log=print
) -> pd.DataFrame:
    """The label centres that lie in the image (height, width) of the micrograph file.

    Labels of another frame (an unbinned micrograph's coordinates against a binned one, x and y
    swapped, a crop) would be scored as misses without a word: more than 5 % outside the
    image refuses the file, naming the extent found against the image's; a few are dropped
    with a warning. Non-finite coordinates refuse the file."""
    from cryopick.io import InputError

    h, w = shape
    x, y = truth["x"].to_numpy(float), truth["y"].to_numpy(float)
    if not (np.isfinite(x).all() and np.isfinite(y).all()):
        raise InputError(f"{path}: {int((~np.isfinite(x + y)).sum())} labels have no finite x/y")
    tol = OUTSIDE_TOLERANCE * max(h, w)
    outside = (x < -tol) | (x > w + tol) | (y < -tol) | (y > h + tol)
    if len(x) and outside.mean() > MAX_OUTSIDE_FRACTION:
        raise InputError(
            f"{path}: {int(outside.sum())} of {len(x)} labels lie outside the {w} x {h} image "
            f"(x {x.min():.0f}..{x.max():.0f}, y {y.min():.0f}..{y.max():.0f}): labels of "
            "another frame (an unbinned or differently cropped micrograph?)"
        )
    if outside.any():
        log(f"{path}: {int(outside.sum())} of {len(x)} labels outside the {w} x {h} image, dropped")
    return truth[~outside].reset_index(drop=True)


@dataclass(frozen=True)
class DatasetEvaluation:
    """Every score of one data set: per micrograph and stage, pooled per stage, the pooled
    precision-recall curve of each stage over its score threshold, and each stage's score
    histogram (a ``stage`` column in each)."""

    per_micrograph: pd.DataFrame
    summary: pd.DataFrame
    curves: pd.DataFrame
    histograms: pd.DataFrame


def evaluate_dataset(
    micrographs: list[str],
    stage_picks: dict[str, list[str]],
    denoised: list[str],
    diameter_angstrom: float,
    truth_folder: str,
    mask_folder: str | None = None,
    missing: str = "error",
    log=print,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Score every picking stage of one data set.

    ``stage_picks[stage][i]`` and ``denoised[i]`` belong to ``micrographs[i]``.
    """
    from cryopick.datasets import list_label_files
    from cryopick.denoise import load_frame
    from cryopick.io import InputError, read_coordinates

    labels = list_label_files(truth_folder)
    masks = list_label_files(mask_folder, suffixes=(".png",)) if mask_folder else {}
    absent = [m for m in micrographs if m not in labels]
    if absent and missing == "error":
        raise InputError(
            f"{truth_folder}: no ground-truth file (.csv, .star or .box) for {len(absent)} "
            f"micrograph(s): {', '.join(absent[:10])}{' ...' if len(absent) > 10 else ''}"
        )
    for name in absent:
        log(f"skipped {name}: no ground-truth file in {truth_folder}")
    rows = []
    refused: dict[str, str] = {}
    scored = {stage: [] for stage in stage_picks}  # stage -> its MicrographScores
    for i, name in enumerate(micrographs):
        if name not in labels:
            continue
        frame, pixel_size = load_frame(denoised[i])
        diameter = diameter_angstrom / pixel_size
        shape = (frame.original_height, frame.original_width)
        try:
            truth = checked_labels(labels[name], read_coordinates(labels[name]), shape, log)
            mask = read_label_mask(masks[name], shape) if name in masks else None
        except InputError as exc:  # this micrograph is not scored; the others are
            refused[name] = str(exc)
            log(f"{name}: not scored: {exc}")
            continue
        if mask_folder and name not in masks:
            log(f"{name}: no label mask in {mask_folder}; Dice uses discs at the labels")
        for stage, paths in stage_picks.items():
            picks = read_coordinates(paths[i])
            score = score_micrograph(name, picks, truth, diameter, shape, mask)
            rows.append({"stage": stage, **score.row()})
            scored[stage].append(score)
    if refused and not rows:
        raise InputError(
            f"{truth_folder}: no micrograph could be scored; {len(refused)} label file(s) "
            f"refused: " + "; ".join(refused.values())
        )
    if refused:
        log(
            f"{len(refused)} of {len(micrographs)} micrographs not scored for their labels "
            f"(the summary covers the others): {', '.join(refused)}"
        )
    per_micrograph = pd.DataFrame(rows)
    summary = (
        pd.DataFrame(
            [
                {"stage": stage, **summarise(per_micrograph[per_micrograph["stage"] == stage])}
                for stage in stage_picks
            ]
        )
        if rows
        else pd.DataFrame({"stage": list(stage_picks)})
    )
    return DatasetEvaluation(
        per_micrograph, summary, *(_stage_tables(scored, kind) for kind in ("curve", "hist"))
    )


def _stage_tables(scored: dict[str, list[MicrographScore]], kind: str) -> pd.DataFrame:
    """Each stage's pooled precision-recall curve ("curve") or score histogram ("hist"), one
    table with a stage column."""
    frames = []
    for stage, scores in scored.items():
        values = np.concatenate([s.scores for s in scores]) if scores else np.zeros(0)
        if kind == "curve":
            matched = np.concatenate([s.matched for s in scores]) if scores else np.zeros(0, bool)
            table = precision_recall_curve(values, matched, sum(s.n_truth for s in scores))
        else:
            table = score_histogram(values)
        table.insert(0, "stage", stage)
        frames.append(table)
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=["stage"])
