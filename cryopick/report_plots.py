"""The report's figures, one PNG each per data set: precision-recall curves per stage with the
operating points, figure-of-merit histograms per stage, picks per micrograph over the data set
with the warned ones marked, and seconds per micrograph per rule. Plain functions of the tables
the workflow writes (metrics/, pick_counts.tsv, benchmarks/), drawn with matplotlib's Agg
backend so they render without a display.
"""

from __future__ import annotations

import os

import numpy as np
import pandas as pd

from cryopick.io import atomic_path

# one colour per stage, stable across plots and data sets (peers in greys and browns)
STAGE_COLOURS = {
    "baseline": "#9467bd",
    "unet": "#1f77b4",
    "unet+crf": "#17becf",
    "sam": "#bcbd22",
    "sam+postprocessing": "#2ca02c",
    "final before exclusion": "#ff7f0e",
    "final": "#d62728",
    "relion_log": "#7f7f7f",
    "topaz": "#8c564b",
}
DPI = 110


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def stage_colour(stage: str) -> str:
    return STAGE_COLOURS.get(stage, "#444444")


def _save(fig, path: str | os.PathLike) -> None:
    plt = _pyplot()
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=DPI)
    plt.close(fig)


def plot_precision_recall(
    curves: pd.DataFrame, path: str | os.PathLike, peers: tuple[str, ...] = ()
) -> None:
    """Precision against recall over each stage's score threshold, the operating point (all
    the stage's picks: the curve's lowest threshold) a dot with its F1; peers dashed."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(5.2, 4.2))
    for f1 in (0.2, 0.4, 0.6, 0.8):  # iso-F1 lines to read the dots against
        r = np.linspace(f1 / (2 - f1) + 1e-3, 1, 100)
        ax.plot(r, f1 * r / (2 * r - f1), color="#dddddd", lw=0.8, zorder=0)
        ax.text(1.0, f1 / (2 - f1), f"F1 {f1:.1f}", fontsize=7, color="#aaaaaa", va="bottom")
    for stage, curve in curves.groupby("stage", sort=False):
        if curve.empty:
            continue
        colour = stage_colour(stage)
        style = "--" if stage in peers else "-"
        ax.plot(curve["recall"], curve["precision"], style, color=colour, lw=1.6)
        last = curve.iloc[-1]
        ax.plot(last["recall"], last["precision"], "o", color=colour, ms=7, mec="white", mew=1.2)
        ax.plot([], [], style + "o", color=colour, label=f"{stage} (F1 {last['f1']:.3f})")
    ax.set(xlim=(0, 1.02), ylim=(0, 1.02), xlabel="recall", ylabel="precision")
    ax.set_title("Precision-recall over the score threshold (dot: operating point)", fontsize=9)
    ax.legend(fontsize=7, loc="lower left", frameon=False)
    ax.grid(alpha=0.2)
    _save(fig, path)


def plot_score_histograms(histograms: pd.DataFrame, path: str | os.PathLike) -> None:
    """Each stage's figure-of-merit histogram in its own panel (stages score on different
    scales: probabilities, LoG responses, logits)."""
    plt = _pyplot()
    stages = [s for s, h in histograms.groupby("stage", sort=False) if h["count"].sum() > 0]
    if not stages:
        fig, ax = plt.subplots(figsize=(5.2, 2.0))
        ax.text(0.5, 0.5, "no picks", ha="center", va="center")
        ax.set_axis_off()
        return _save(fig, path)
    columns = min(3, len(stages))
    rows = -(-len(stages) // columns)
    fig, axes = plt.subplots(rows, columns, figsize=(5.2, 1.7 * rows + 0.4), squeeze=False)
    for ax, stage in zip(axes.flat, stages):
        table = histograms[histograms["stage"] == stage]
        ax.bar(
            table["low"],
            table["count"],
            width=table["high"] - table["low"],
            align="edge",
            color=stage_colour(stage),
        )
        ax.set_title(f"{stage} ({int(table['count'].sum())} picks)", fontsize=8)
        ax.tick_params(labelsize=7)
    for ax in list(axes.flat)[len(stages) :]:
        ax.set_axis_off()
    fig.supxlabel("figure of merit", fontsize=8)
    _save(fig, path)


def plot_picks_per_micrograph(counts: pd.DataFrame, path: str | os.PathLike) -> None:
    """Final picks of each micrograph in data-set order, the median dashed, the flagged ones
    (no or far too few picks) red."""
    from matplotlib.ticker import MaxNLocator

    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(5.2, 2.6))
    n = counts["n_picks"].to_numpy(float)
    index = np.arange(len(n))
    flagged = (counts["flag"].astype(str) != "").to_numpy()
    style = dict(s=10 if len(n) < 500 else 3, lw=0)
    ax.scatter(index[~flagged], n[~flagged], color="#1f77b4", label="micrograph", **style)
    if flagged.any():
        ax.scatter(
            index[flagged], n[flagged], color="#d62728", label=f"warned ({flagged.sum()})", **style
        )
    if len(n):
        ax.axhline(np.median(n), color="#555555", ls="--", lw=0.8, label="median")
    ax.set(
        xlabel="micrograph (data-set order)",
        ylabel="picks",
        ylim=(0, max(1, n.max(initial=0)) * 1.1),
    )
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.legend(fontsize=7, frameon=False, loc="lower right")
    ax.grid(alpha=0.2)
    _save(fig, path)


def plot_seconds(timings: pd.DataFrame, path: str | os.PathLike) -> None:
    """Seconds per micrograph of each rule (its jobs' total over the micrographs they ran)."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(5.2, 0.3 * max(len(timings), 3) + 0.8))
    if len(timings):
        table = timings.sort_values("seconds_per_micrograph")
        ax.barh(table["rule"], table["seconds_per_micrograph"], color="#1f77b4")
        for y, value in enumerate(table["seconds_per_micrograph"]):
            ax.text(value, y, f" {value:.2g}", va="center", fontsize=7)
        ax.set_xlim(0, table["seconds_per_micrograph"].max() * 1.25 or 1)
    ax.set_xlabel("wall seconds per micrograph", fontsize=8)
    ax.tick_params(labelsize=7)
    _save(fig, path)


def fom_colours(scores: np.ndarray, low: float, high: float) -> list[str]:
    """Hex colours of figures of merit on the viridis scale from ``low`` to ``high``."""
    from matplotlib import colormaps
    from matplotlib.colors import to_hex

    scale = (np.asarray(scores, float) - low) / (high - low) if high > low else np.ones(len(scores))
    cmap = colormaps["viridis"]
    return [to_hex(cmap(v)) for v in np.clip(np.nan_to_num(scale, nan=0.0), 0, 1)]


def colour_bar_stops(n: int = 6) -> list[str]:
    """Colours of a CSS gradient that shows :func:`fom_colours`' scale."""
    return fom_colours(np.linspace(0, 1, n), 0.0, 1.0)


def write_message_image(path: str | os.PathLike, message: str) -> None:
    """A small PNG that says why a figure is missing (so the report shows the reason)."""
    import textwrap

    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(5.2, 1.4))
    ax.text(0.5, 0.5, textwrap.fill(message, 70), ha="center", va="center", fontsize=8)
    ax.set_axis_off()
    _save(fig, path)
