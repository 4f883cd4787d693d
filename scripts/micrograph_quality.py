"""Snakemake wrapper: the verdict of every micrograph of a data set
(cryopick.exclusion.micrograph_quality / classify_micrographs) and a RELION micrographs STAR of
the good ones."""

import pandas as pd

from cryopick.batching import artifacts_and_errors
from cryopick.exclusion import (
    VerdictSettings,
    classify_micrographs,
    load_exclusion,
    micrograph_quality,
)
from cryopick.io import atomic_path
from cryopick.pick_counts import read_counts
from cryopick.workflow import as_list, logged_job

micrographs = as_list(snakemake.params.micrographs)
files = dict(snakemake.params.files)

with logged_job(snakemake.log[0], "micrograph quality") as log:
    maps, failed = artifacts_and_errors(as_list(snakemake.input.maps), micrographs, ".npz")
    picks = read_counts(snakemake.input.counts)  # counted once, by the pick_counts job
    rows = []
    for name, path in maps.items():
        exclusion = load_exclusion(path)
        n_picks = picks.get(name, 0)
        file_pixel_size = exclusion.pixel_size / exclusion.frame.scale
        rows.append(micrograph_quality(name, exclusion, n_picks, file_pixel_size))
    rows = classify_micrographs(rows, VerdictSettings.from_config(snakemake.params.verdict))
    table = pd.DataFrame(rows)
    for name, message in failed.items():
        log.warning("%s: no verdict (failed: %s)", name, message)
    with atomic_path(snakemake.output.table) as tmp:
        table.to_csv(tmp, sep="\t", index=False)
    good = [row["micrograph"] for row in rows if row["verdict"] == "good"]
    lines = [
        "# written by cryopick: the micrographs judged good",
        "",
        "data_micrographs",
        "",
        "loop_",
        "_rlnMicrographName #1",
    ]
    lines += [files[name] for name in good]
    with atomic_path(snakemake.output.good) as tmp:
        tmp.write_text("\n".join(lines) + "\n")
    counts = table["verdict"].value_counts().to_dict() if len(table) else {}
    log.info("verdicts: %s", ", ".join(f"{k} {v}" for k, v in counts.items()) or "none")
    if len(table) and len(good) < 0.5 * len(table):
        log.warning(
            "only %d of %d micrographs judged good (%s); see %s",
            len(good),
            len(table),
            counts,
            snakemake.output.table,
        )
