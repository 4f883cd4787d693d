"""The benchmark report: one static HTML page (results/report/index.html, images beside it in
assets/) that shows, per data set, where the picks are and how good they are: a gallery of
micrographs with their picks drawn, precision-recall curves per stage with the operating
points and the peers' curves, figure-of-merit histograms, picks per micrograph with the warned
ones marked, seconds per micrograph per rule, the 2D class averages when they were made; the
score table across data sets; and a reproducibility block. Also a TSV of the scores.

Everything is read from what the workflow wrote (metrics/, pick_counts.tsv, pick_scores.tsv,
previews/, picks/, benchmarks/, classify2d/); the report job only copies the previews it shows
and draws a few small plots.
"""

from __future__ import annotations

import glob
import html
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from cryopick.batching import artifacts_and_errors, batch_folder_of, completed_micrographs
from cryopick.io import atomic_path, read_coordinates
from cryopick.workflow import paths

MAX_LISTED = 1000  # rows of a per-micrograph table on the page (the TSVs hold them all)
SCORE_COLUMNS = ["precision", "recall", "f1", "precision_r025", "recall_r025", "f1_r025", "dice"]


@dataclass(frozen=True)
class ReportOptions:
    """What the page shows (cryopick.workflow.plan.report_options makes it from the config)."""

    title: str = "cryopick benchmark report"
    gallery_size: int = 12
    gallery_flagged: int = 48
    peers: tuple[str, ...] = ()
    skipped_peers: dict = field(default_factory=dict)  # peer -> why it did not run
    classify2d: bool = False


@dataclass(frozen=True)
class DatasetInputs:
    """One data set as the report reads it: its settings and its batches' completion records
    (previews, denoised canvases for the frames, final picks for the failures); every other
    file is found by its pattern in cryopick.workflow.paths."""

    name: str
    diameter: float  # A
    ground_truth: str | None
    previews: list[str]
    denoised: list[str]
    final: list[str]

    def path(self, pattern: str) -> str:
        return pattern.format(dataset=self.name)


# ----------------------------------------------------------------------------------------------
# tables
# ----------------------------------------------------------------------------------------------


def stage_timings(benchmark_root: str, n_micrographs: int | None = None) -> pd.DataFrame:
    """Wall seconds per rule from Snakemake's benchmark files of one data set
    (``{benchmark_root}/{rule}/{unit}.tsv``): per job, in total and per micrograph."""
    rows = []
    for rule_dir in sorted(glob.glob(os.path.join(benchmark_root, "*"))):
        found = map(_benchmark_seconds, glob.glob(os.path.join(rule_dir, "*.tsv")))
        seconds = [value for value in found if value is not None]
        if seconds:
            total = sum(seconds)
            rows.append(
                {
                    "rule": os.path.basename(rule_dir),
                    "jobs": len(seconds),
                    "seconds_per_job": total / len(seconds),
                    "seconds_total": total,
                    "seconds_per_micrograph": total / n_micrographs if n_micrographs else total,
                }
            )
    columns = ["rule", "jobs", "seconds_per_job", "seconds_total", "seconds_per_micrograph"]
    return pd.DataFrame(rows, columns=columns)


def _benchmark_seconds(path: str) -> float | None:
    """The wall seconds (column ``s``, last row) of one Snakemake benchmark file, or None for a
    file that holds none. Read as text: a data set has one file per job and rule."""
    try:
        with open(path) as handle:
            lines = [line.rstrip("\n").split("\t") for line in handle if line.strip()]
        return float(lines[-1][lines[0].index("s")]) if len(lines) > 1 else None
    except (OSError, ValueError, IndexError):
        return None


def build_benchmark_table(summaries: dict[str, str], peers: tuple[str, ...] = ()) -> pd.DataFrame:
    """Per-data-set summary.tsv files as one table with a data-set column (and a ``peer``
    column: 1 for another project's picker)."""
    frames = []
    for dataset, path in summaries.items():
        table = pd.read_csv(path, sep="\t")
        table.insert(0, "dataset", dataset)
        table.insert(2, "peer", table["stage"].isin(peers).astype(int))
        frames.append(table)
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=["dataset"])


def quality_warnings(path: str) -> dict[str, str]:
    """Micrograph -> its verdict, for the micrographs the exclusion stage did not find good."""
    if not os.path.isfile(path):
        return {}
    table = pd.read_csv(path, sep="\t", keep_default_na=False)
    bad = table[table["verdict"] != "good"]
    return dict(zip(bad["micrograph"].astype(str), bad["verdict"].astype(str)))


def _read_tsv(path: str) -> pd.DataFrame | None:
    return pd.read_csv(path, sep="\t") if os.path.isfile(path) else None


def _html_table(table: pd.DataFrame, highlight: pd.Series | None = None) -> str:
    if table is None or table.empty:
        return "<p class='muted'>(nothing to show)</p>"
    rows = ["<table><thead><tr>"]
    rows += [f"<th>{html.escape(str(c))}</th>" for c in table.columns]
    rows.append("</tr></thead><tbody>")
    for i, row in enumerate(table.itertuples(index=False)):  # (keeps each column's type)
        css = " class='best'" if highlight is not None and bool(highlight.iloc[i]) else ""
        rows.append(f"<tr{css}>")
        for value in row:
            text = f"{value:.3f}" if isinstance(value, float) else str(value)
            rows.append(f"<td>{html.escape(text)}</td>")
        rows.append("</tr>")
    rows.append("</tbody></table>")
    return "".join(rows)


# ----------------------------------------------------------------------------------------------
# one data set
# ----------------------------------------------------------------------------------------------


def _asset_name(*parts: str) -> str:
    return "_".join("".join(c if c.isalnum() or c in "-." else "_" for c in p) for p in parts)


def dataset_section(
    ds: DatasetInputs, assets: Path, options: ReportOptions, log=print
) -> tuple[str, dict]:
    """The HTML of one data set's section, and its headline numbers."""
    from cryopick import report_plots as plots

    counts = pd.read_csv(ds.path(paths.PICK_COUNTS), sep="\t", keep_default_na=False)
    names = counts["micrograph"].astype(str).tolist()
    _, failed = artifacts_and_errors(ds.final, _batch_members(ds.final), ".star")
    labelled = ds.ground_truth is not None
    curves = _read_tsv(ds.path(paths.METRICS_CURVES)) if labelled else None
    histograms = _read_tsv(ds.path(paths.METRICS_SCORE_HISTOGRAMS)) if labelled else None
    final_histogram = _read_tsv(ds.path(paths.PICK_SCORES))
    if histograms is None and final_histogram is not None:
        histograms = final_histogram.assign(stage="final")[["stage", "low", "high", "count"]]
    timings = stage_timings(paths.benchmarks(ds.path(paths.DATASET)), len(names) or None)

    figures = []
    if curves is not None and not curves.empty:
        figures.append(
            (
                "precision_recall",
                "Precision-recall per stage",
                plots.plot_precision_recall,
                curves,
                {"peers": options.peers},
            )
        )
    if histograms is not None:
        figures.append(
            ("scores", "Figure of merit per stage", plots.plot_score_histograms, histograms, {})
        )
    figures.append(
        (
            "picks_per_micrograph",
            "Picks per micrograph",
            plots.plot_picks_per_micrograph,
            counts,
            {},
        )
    )
    figures.append(("seconds", "Seconds per micrograph per rule", plots.plot_seconds, timings, {}))
    figure_html = []
    for key, caption, plot, table, extra in figures:
        name = _asset_name(ds.name, key) + ".png"
        plot(table, assets / name, **extra)
        figure_html.append(
            f"<figure><img src='assets/{name}' alt='{html.escape(caption)}'>"
            f"<figcaption>{html.escape(caption)}</figcaption></figure>"
        )

    gallery = _gallery(ds, counts, failed, assets, options, labelled, final_histogram, log)
    facts = {
        "micrographs": len(names) + len(failed),
        "picks": int(counts["n_picks"].sum()),
        "median picks": float(counts["n_picks"].median()) if len(counts) else 0.0,
        "warned": int((counts["flag"].astype(str) != "").sum()),
        "failed": len(failed),
    }
    summary = _read_tsv(ds.path(paths.METRICS_SUMMARY)) if labelled else None
    if summary is not None:
        final = summary[summary["stage"] == "final"]
        if len(final):
            facts["final F1"] = float(final["f1"].iloc[0])
    fact_html = " · ".join(
        f"<b>{v:.3f}</b> {k}" if isinstance(v, float) and k.endswith("F1") else f"<b>{v:g}</b> {k}"
        for k, v in facts.items()
    )
    parts = [
        f"<section id='{_asset_name('ds', ds.name)}'><h2>{html.escape(ds.name)}</h2>",
        f"<p class='facts'>{fact_html}"
        + ("" if labelled else " · no ground truth: label-free evidence only")
        + "</p>",
        gallery,
        "<div class='figures'>" + "".join(figure_html) + "</div>",
    ]
    if options.classify2d:
        parts.append(_classes_html(ds, assets))
    warned = counts[counts["flag"].astype(str) != ""]
    listed = warned.head(MAX_LISTED)
    more = f" (the first {MAX_LISTED}; all in pick_counts.tsv)" if len(warned) > MAX_LISTED else ""
    parts += [
        f"<details><summary>Warned micrographs ({len(warned)}){more}</summary>",
        _html_table(listed),
        "</details><details><summary>Seconds per job and rule</summary>",
        _html_table(timings),
        "</details>",
        "</section>",
    ]
    return "\n".join(parts), facts


def _batch_members(records: list[str]) -> list[str]:
    """Every micrograph the batches' completion records list, done or failed."""
    return [name for record in records for name in completed_micrographs(batch_folder_of(record))]


def _gallery(ds, counts, failed, assets, options, labelled, final_histogram, log) -> str:
    from cryopick.datasets import list_label_files
    from cryopick.denoise import load_frame
    from cryopick.report_gallery import Drawing, card_html, gallery_sample, legend_html
    from cryopick.report_plots import colour_bar_stops

    items = gallery_sample(
        counts,
        failed,
        options.gallery_size,
        options.gallery_flagged,
        quality_warnings(ds.path(paths.MICROGRAPHS_QUALITY)),
    )
    shown = [item.name for item in items if item.error is None]
    previews, _ = artifacts_and_errors(ds.previews, shown, ".jpg")
    frames, _ = artifacts_and_errors(ds.denoised, shown, ".npz")
    labels = list_label_files(ds.ground_truth) if labelled else {}
    score_range = (0.0, 1.0)
    if final_histogram is not None and len(final_histogram):
        score_range = (float(final_histogram["low"].min()), float(final_histogram["high"].max()))
    cards = []
    folder = assets / _asset_name(ds.name)
    folder.mkdir(parents=True, exist_ok=True)
    for item in items:
        image = drawing = None
        if item.error is None and not (item.name in previews and item.name in frames):
            log(f"dataset {ds.name!r}: {item.name} has no preview image; its card shows none")
        if item.error is None and item.name in previews and item.name in frames:
            target = folder / f"{_asset_name(item.name)}.jpg"
            shutil.copyfile(previews[item.name], target)
            image = f"assets/{folder.name}/{target.name}"
            frame, pixel_size = load_frame(frames[item.name])
            truth = read_coordinates(labels[item.name]) if item.name in labels else None
            drawing = Drawing(
                frame.original_width,
                frame.original_height,
                read_coordinates(paths.published_picks(ds.name, item.name)),
                ds.diameter / pixel_size,
                truth,
                score_range,
            )
        cards.append(card_html(item, _asset_name("view", ds.name, item.name), image, drawing))
    note = (
        f"{len(items)} of {len(counts) + len(failed)} micrographs: every warned or failed one "
        f"(up to {options.gallery_flagged}) and {options.gallery_size} spread over the data set. "
        "Click a micrograph for its full-size view."
    )
    return (
        f"<h3 id='gallery'>Micrographs</h3><p class='muted'>{note}</p>"
        + legend_html(labelled, score_range, colour_bar_stops())
        + "<div class='gallery'>"
        + "".join(cards)
        + "</div>"
    )


def _classes_html(ds: DatasetInputs, assets: Path) -> str:
    image = ds.path(paths.CLASS_AVERAGES)
    table = _read_tsv(ds.path(paths.CLASS_TABLE))
    if not os.path.isfile(image):
        return "<h3>2D classes</h3><p class='muted'>not made</p>"
    name = _asset_name(ds.name, "classes") + ".png"
    shutil.copyfile(image, assets / name)
    return (
        "<h3>2D classes of a sample of the picks (RELION)</h3>"
        "<p class='muted'>Sharp, centred averages holding most particles mean the picks are "
        "particles; grey, featureless ones hold ice, carbon or noise.</p>"
        f"<div class='figures'><figure><img src='assets/{name}' alt='2D class averages'>"
        "<figcaption>Class averages, most populated first</figcaption></figure>"
        f"<div>{_html_table(table)}</div></div>"
    )


# ----------------------------------------------------------------------------------------------
# the page
# ----------------------------------------------------------------------------------------------

STYLE = """
body{font:14px/1.45 system-ui,-apple-system,'Segoe UI',sans-serif;margin:0;color:#222;
background:#f6f7f9}
header{background:#1d2a3a;color:#fff;padding:18px 32px}header h1{margin:0;font-size:22px}
header p{margin:4px 0 0;color:#c8d3e0}nav{margin-top:8px}nav a{color:#9cd0ff;margin-right:14px}
main{padding:8px 32px 40px}section{background:#fff;border-radius:8px;padding:4px 20px 16px;
margin:18px 0;box-shadow:0 1px 3px rgba(0,0,0,.08)}h2{margin:14px 0 4px}
h3{margin:16px 0 4px;font-size:15px}.facts{margin:0 0 6px;color:#333}.muted{color:#777;margin:2px 0}
.gallery{display:grid;grid-template-columns:repeat(auto-fill,minmax(300px,1fr));gap:10px}
.card{display:block;color:inherit;text-decoration:none;background:#fafafa;border:1px solid #e3e3e3;
border-radius:6px;overflow:hidden}.card:hover{border-color:#1f77b4}
.frame{position:relative;line-height:0;background:#000}.frame img{width:100%;height:auto}
.overlay{position:absolute;left:0;top:0;width:100%;height:100%}
.frame.empty{line-height:1.4;color:#fff;background:#7a1f1f;padding:30px 10px;font-size:12px;
min-height:120px}.caption{padding:4px 8px 6px;font-size:12px}
.badge{background:#d62728;color:#fff;border-radius:3px;padding:0 5px;font-size:11px}
.legend{display:flex;flex-wrap:wrap;gap:16px;align-items:center;font-size:12px;margin:6px 0 10px}
.legend span{display:inline-flex;align-items:center;gap:4px}.legend svg{background:#333;
border-radius:3px}.scale{display:inline-block;width:90px;height:10px;border-radius:2px}
.swatch{display:inline-block;width:14px;height:14px;border-radius:2px}
.swatch.excluded{background:rgba(255,140,0,.55)}
.figures{display:flex;flex-wrap:wrap;gap:14px;margin-top:12px}figure{margin:0}
figure img{max-width:100%;width:520px;border:1px solid #eee}figcaption{font-size:12px;color:#555}
table{border-collapse:collapse;font-size:12.5px}th{background:#eef1f5;text-align:left}
td,th{padding:3px 9px;border-bottom:1px solid #e5e5e5}td{text-align:right}
td:first-child,td:nth-child(2){text-align:left}tr.best td{background:#e6f4ea;font-weight:600}
.lightbox{display:none;position:fixed;inset:0;background:rgba(0,0,0,.85);z-index:10;
align-items:center;justify-content:center}.lightbox:target{display:flex}
.lightbox .close{position:absolute;inset:0}.lightbox .view{position:relative;
width:min(92vw,88vh);color:#fff}.lightbox p{font-size:13px}
details{margin-top:10px}summary{cursor:pointer;color:#1f5f9f}
pre{background:#f3f3f3;padding:10px;overflow:auto;font-size:12px}
dl{display:grid;grid-template-columns:max-content 1fr;gap:2px 14px;font-size:13px}
dt{font-weight:600}dd{margin:0;word-break:break-all}.skipped{color:#a33}
"""


def write_report(
    datasets: list[DatasetInputs],
    tsv_path: str,
    html_path: str,
    options: ReportOptions,
    provenance: dict | None = None,
    config: dict | None = None,
    log=print,
) -> pd.DataFrame:
    """Write the score TSV, the HTML page and its assets/ folder beside it; returns the score
    table of the labelled data sets."""
    assets = Path(html_path).parent / "assets"
    shutil.rmtree(assets, ignore_errors=True)  # the report's own folder: only this job writes it
    assets.mkdir(parents=True)
    summaries = {
        ds.name: ds.path(paths.METRICS_SUMMARY) for ds in datasets if ds.ground_truth is not None
    }
    scores = build_benchmark_table(summaries, options.peers)
    with atomic_path(tsv_path) as tmp:
        scores.to_csv(tmp, sep="\t", index=False, float_format="%.4f")

    sections, facts = [], {}
    for ds in datasets:
        section, facts[ds.name] = dataset_section(ds, assets, options, log)
        sections.append(section)
    nav = "".join(
        f"<a href='#{_asset_name('ds', ds.name)}'>{html.escape(ds.name)}</a>" for ds in datasets
    )
    total = sum(f["micrographs"] for f in facts.values())
    picks = sum(f["picks"] for f in facts.values())
    body = [
        f"<header><h1>{html.escape(options.title)}</h1>",
        f"<p>{len(datasets)} data sets · {total} micrographs · {picks} picks</p>",
        f"<nav><a href='#scores'>Scores</a>{nav}<a href='#reproduce'>Reproduce</a></nav></header>",
        "<main>",
        _scores_section(scores, options),
        *sections,
        _provenance_section(provenance or {}, config or {}),
        "</main>",
    ]
    page = (
        "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>"
        "<meta name='viewport' content='width=device-width,initial-scale=1'>"
        f"<title>{html.escape(options.title)}</title><style>{STYLE}</style></head><body>"
        + "\n".join(body)
        + "</body></html>\n"
    )
    with atomic_path(html_path) as tmp:
        tmp.write_text(page)
    return scores


def _scores_section(scores: pd.DataFrame, options: ReportOptions) -> str:
    text = [
        "<section id='scores'><h2>Scores per data set and stage</h2>",
        "<p class='muted'>One-to-one (Hungarian) matching of pick centres to label centres "
        "within 0.5 x diameter (precision, recall, f1) and 0.25 x diameter (*_r025), pooled over "
        "a data set's micrographs; Dice of discs at the picks against the label mask. "
        "<i>final</i> is what was written to picks/; peer = another project's picker on the same "
        "micrographs, scored by the same code. The best F1 of each data set is highlighted.</p>",
    ]
    if scores.empty:
        text.append("<p class='muted'>No data set has ground truth: no scores.</p>")
    else:
        best = scores.groupby("dataset")["f1"].transform("max") == scores["f1"]
        columns = [
            "dataset",
            "stage",
            "peer",
            "n_micrographs",
            "n_picks",
            "n_truth",
            *SCORE_COLUMNS,
        ]
        text.append(_html_table(scores[[c for c in columns if c in scores]], best))
    for peer, why in options.skipped_peers.items():
        text.append(
            f"<p class='skipped'>Peer <b>{html.escape(peer)}</b> skipped: {html.escape(why)}</p>"
        )
    text.append("</section>")
    return "\n".join(text)


def _provenance_section(provenance: dict, config: dict) -> str:
    import yaml

    rows = []
    for key, value in provenance.items():
        if isinstance(value, dict):
            value = "; ".join(f"{k} {v}" for k, v in value.items())
        rows.append(f"<dt>{html.escape(key)}</dt><dd>{html.escape(str(value))}</dd>")
    return (
        "<section id='reproduce'><h2>Reproduce</h2><dl>"
        + "".join(rows)
        + "</dl><details><summary>The resolved config</summary><pre>"
        + html.escape(yaml.safe_dump(config, sort_keys=False))
        + "</pre></details></section>"
    )
