"""The report's micrograph gallery: which micrographs it shows (a spread sample, and every one
that was warned about or failed) and each one's card: its preview image with the picks drawn
over it as SVG in the micrograph file's pixel frame, coloured by figure of merit; with ground
truth, matched picks solid, false picks dashed and missed particles as squares. A card links
to a full-size view of the same drawing (CSS :target, no script).
"""

from __future__ import annotations

import html
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from cryopick.metrics import matched_picks, precision_recall_f1
from cryopick.report_plots import fom_colours

MISSED_COLOUR = "#ff3bd4"


@dataclass(frozen=True)
class GalleryItem:
    """One micrograph of the gallery and why it is there ('' when sampled)."""

    name: str
    reason: str = ""
    error: str | None = None  # the micrograph failed: its error message, no picks


def gallery_sample(
    counts: pd.DataFrame,
    failed: dict[str, str],
    size: int,
    max_flagged: int,
    warnings: dict[str, str] | None = None,
) -> list[GalleryItem]:
    """``size`` micrographs spread evenly over the data set (in its order) and, up to
    ``max_flagged``, every failed one, every one with a pick-count flag and every one in
    ``warnings`` (name -> why, e.g. an exclusion verdict), those first."""
    flagged: dict[str, GalleryItem] = {}
    for name, message in failed.items():
        flagged.setdefault(name, GalleryItem(name, "failed", message))
    for name, flag in zip(counts["micrograph"].astype(str), counts["flag"].astype(str)):
        if flag:
            flagged.setdefault(name, GalleryItem(name, flag))
    for name, why in (warnings or {}).items():
        flagged.setdefault(name, GalleryItem(name, why))
    chosen = list(flagged.values())[:max_flagged]
    names = [n for n in counts["micrograph"].astype(str) if n not in flagged]
    if names and size:
        picks = np.unique(np.linspace(0, len(names) - 1, min(size, len(names))).round().astype(int))
        chosen += [GalleryItem(names[i]) for i in picks]
    return chosen


@dataclass
class Drawing:
    """What a card draws: the micrograph's size in its file's pixels, the picks (x, y,
    score), the labels when there are any, the particle diameter in the file's pixels."""

    width: int
    height: int
    picks: pd.DataFrame
    diameter: float
    truth: pd.DataFrame | None = None
    score_range: tuple[float, float] = (0.0, 1.0)
    counts: dict = field(default_factory=dict)

    def __post_init__(self):
        xy = self.picks[["x", "y"]].to_numpy(float)
        if self.truth is None:
            self.matched = np.ones(len(xy), bool)
            self.missed = np.zeros((0, 2))
            return
        t = self.truth[["x", "y"]].to_numpy(float)
        scores = self.picks["score"].to_numpy(float)
        self.matched, labelled = matched_picks(xy, t, 0.5 * self.diameter, scores)
        self.missed = t[~labelled]
        tp = int(self.matched.sum())
        p, r, f = precision_recall_f1(tp, len(xy), len(t))
        self.counts = {"precision": p, "recall": r, "f1": f, "missed": len(self.missed)}

    def svg(self) -> str:
        """The overlay: one circle per pick, one square per missed particle."""
        radius = self.diameter / 2
        stroke = max(self.diameter / 10, 1.0)
        colours = fom_colours(self.picks["score"].to_numpy(float), *self.score_range)
        marks = []
        xy = self.picks[["x", "y"]].to_numpy(float)
        for (x, y), colour, ok in zip(xy, colours, self.matched):
            dash = "" if ok else f' stroke-dasharray="{stroke * 2:.1f} {stroke * 1.5:.1f}"'
            marks.append(
                f'<circle cx="{x:.1f}" cy="{y:.1f}" r="{radius:.1f}" stroke="{colour}"{dash}/>'
            )
        side = 0.6 * self.diameter
        for x, y in self.missed:
            marks.append(
                f'<rect x="{x - side / 2:.1f}" y="{y - side / 2:.1f}" width="{side:.1f}" '
                f'height="{side:.1f}" stroke="{MISSED_COLOUR}"/>'
            )
        return (
            f'<svg class="overlay" viewBox="0 0 {self.width} {self.height}" '
            f'preserveAspectRatio="none" fill="none" stroke-width="{stroke:.1f}">'
            + "".join(marks)
            + "</svg>"
        )


def card_html(item: GalleryItem, anchor: str, image: str | None, drawing: Drawing | None) -> str:
    """A gallery card (thumbnail, name, counts) and its full-size view, or, for a failed
    micrograph, its error."""
    name = html.escape(item.name)
    badge = f'<span class="badge">{html.escape(item.reason)}</span>' if item.reason else ""
    if item.error is not None or image is None or drawing is None:
        message = html.escape(item.error or "no preview")
        return (
            f'<div class="card failed"><div class="frame empty">{message}</div>'
            f'<div class="caption"><b>{name}</b> {badge}</div></div>'
        )
    figure = (
        f'<div class="frame"><img src="{html.escape(image)}" alt="{name}" '
        f'loading="lazy">{drawing.svg()}</div>'
    )
    facts = f"{len(drawing.picks)} picks"
    if drawing.counts:
        c = drawing.counts
        facts += f" · P {c['precision']:.2f} R {c['recall']:.2f} · {c['missed']} missed"
    caption = f'<div class="caption"><b>{name}</b> {badge}<br>{facts}</div>'
    full_size = figure.replace(' loading="lazy"', "")
    return (
        f'<a class="card" href="#{anchor}">{figure}{caption}</a>'
        f'<div class="lightbox" id="{anchor}"><a class="close" href="#gallery"></a>'
        f'<div class="view">{full_size}'
        f"<p><b>{name}</b> {badge} {facts} (press Back or click outside to close)</p></div></div>"
    )


def legend_html(labelled: bool, score_range: tuple[float, float], stops: list[str]) -> str:
    """The marks and the colour scale of the gallery."""
    gradient = ", ".join(stops)
    low, high = score_range
    parts = [
        '<div class="legend">',
        '<span><svg width="18" height="18"><circle cx="9" cy="9" r="7" fill="none" '
        'stroke="#35b779" stroke-width="2"/></svg> pick'
        + (" matched to a label" if labelled else "")
        + "</span>",
    ]
    if labelled:
        parts += [
            '<span><svg width="18" height="18"><circle cx="9" cy="9" r="7" fill="none" '
            'stroke="#35b779" stroke-width="2" stroke-dasharray="4 3"/></svg> false pick</span>',
            f'<span><svg width="18" height="18"><rect x="3" y="3" width="12" height="12" '
            f'fill="none" stroke="{MISSED_COLOUR}" stroke-width="2"/></svg> missed particle</span>',
        ]
    parts += [
        f'<span>figure of merit {low:.3g} <i class="scale" style="background:linear-gradient('
        f'to right, {gradient})"></i> {high:.3g}</span>',
        '<span><i class="swatch excluded"></i> excluded area (when the exclusion stage runs)'
        "</span>",
        "</div>",
    ]
    return "".join(parts)
