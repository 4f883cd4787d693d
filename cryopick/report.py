"""The cross-data-set benchmark report: one table of per-stage scores for every data set with
ground truth, the seconds each stage took per micrograph, and the settings that produced them.

Written as TSV (for scripts) and as a self-contained HTML page (for people).
"""

from __future__ import annotations

import glob
import html
import os

import pandas as pd

from cryopick.io import atomic_path
from cryopick.pick_counts import read_flagged

SCORE_COLUMNS = ["precision", "recall", "f1", "precision_r025", "recall_r025", "f1_r025", "dice"]


def stage_timings(benchmark_root: str) -> pd.DataFrame:
    """Mean and total wall seconds per rule from Snakemake's benchmark files of one data set
    (``{benchmark_root}/{rule}/{micrograph}.tsv``)."""
    rows = []
    for rule_dir in sorted(glob.glob(os.path.join(benchmark_root, "*"))):
        files = sorted(glob.glob(os.path.join(rule_dir, "*.tsv")))
        seconds = []
        for path in files:
            try:
                seconds.append(float(pd.read_csv(path, sep="\t")["s"].iloc[-1]))
            except (ValueError, KeyError, IndexError, pd.errors.EmptyDataError):
                continue
        if seconds:
            rows.append(
                {
                    "rule": os.path.basename(rule_dir),
                    "jobs": len(seconds),
                    "seconds_per_job": sum(seconds) / len(seconds),
                    "seconds_total": sum(seconds),
                }
            )
    return pd.DataFrame(rows, columns=["rule", "jobs", "seconds_per_job", "seconds_total"])


def build_benchmark_table(summaries: dict[str, str]) -> pd.DataFrame:
    """Concatenate per-data-set summary.tsv files into one table with a data-set column."""
    frames = []
    for dataset, path in summaries.items():
        table = pd.read_csv(path, sep="\t")
        table.insert(0, "dataset", dataset)
        frames.append(table)
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=["dataset"])


def flagged_micrographs(pick_counts: dict[str, str]) -> pd.DataFrame:
    """The flagged rows of every data set's pick-count table, with a data-set column."""
    frames = []
    for dataset, path in pick_counts.items():
        table = read_flagged(path)
        table.insert(0, "dataset", dataset)
        frames.append(table)
    columns = ["dataset", "micrograph", "n_picks", "flag"]
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=columns)


def _html_table(table: pd.DataFrame) -> str:
    if table.empty:
        return "<p>(nothing to show)</p>"
    return table.to_html(
        index=False, float_format=lambda v: f"{v:.3f}", border=0, classes="table", escape=True
    )


def write_report(
    summaries: dict[str, str],
    benchmark_roots: dict[str, str],
    tsv_path: str,
    html_path: str,
    title: str,
    settings: dict | None = None,
    pick_counts: dict[str, str] | None = None,
) -> pd.DataFrame:
    """Write the benchmark TSV and the HTML page; returns the score table. ``pick_counts``
    (data set -> pick_counts.tsv) adds the micrographs with no or far too few picks."""
    scores = build_benchmark_table(summaries)
    with atomic_path(tsv_path) as tmp:
        scores.to_csv(tmp, sep="\t", index=False, float_format="%.4f")
    parts = [
        f"<h1>{html.escape(title)}</h1>",
        "<p>Pick-level scores: one-to-one (Hungarian) matching of pick centres to label "
        "centres within 0.5 x diameter (precision, recall, f1) and 0.25 x diameter "
        "(*_r025), pooled over all micrographs of a data set. Dice: discs of the labelled "
        "diameter at the picks against the label mask, mean over micrographs.</p>",
        "<h2>Scores per data set and stage</h2>",
        _html_table(scores),
    ]
    if pick_counts is not None:
        parts += [
            "<h2>Micrographs with no or far too few picks</h2>",
            _html_table(flagged_micrographs(pick_counts)),
        ]
    for dataset, root in benchmark_roots.items():
        parts += [
            f"<h2>Seconds per job: {html.escape(dataset)}</h2>",
            _html_table(stage_timings(root)),
        ]
    if settings:
        parts += ["<h2>Settings</h2>", "<pre>" + html.escape(_format_settings(settings)) + "</pre>"]
    page = (
        "<!DOCTYPE html><html><head><meta charset='utf-8'><title>"
        f"{html.escape(title)}</title><style>body{{font-family:sans-serif;margin:2em}}"
        "table{border-collapse:collapse}td,th{padding:2px 8px;border-bottom:1px solid #ddd;"
        "text-align:right}</style></head><body>" + "\n".join(parts) + "</body></html>\n"
    )
    with atomic_path(html_path) as tmp:
        tmp.write_text(page)
    return scores


def _format_settings(settings: dict) -> str:
    import yaml

    return yaml.safe_dump(settings, sort_keys=False)
