"""Snakemake wrapper: 2D classification of a sample of a data set's final picks
(cryopick.classify2d), the class averages as one PNG and the particles per class."""

import tempfile
from pathlib import Path

from cryopick.batching import artifacts_and_errors
from cryopick.classify2d import Classify2DSettings, class_table, classify_picks, write_class_grid
from cryopick.denoise import load_frame
from cryopick.io import InputError, atomic_path
from cryopick.report_plots import write_message_image
from cryopick.workflow import as_list, logged_job, paths

dataset = snakemake.wildcards.dataset
files = dict(snakemake.params.micrographs)
with logged_job(snakemake.log[0], f"2D classification of {dataset}") as log:
    done, _ = artifacts_and_errors(as_list(snakemake.input.picks), files, ".star")
    picks = {name: paths.published_picks(dataset, name) for name in done}
    frames, _ = artifacts_and_errors(as_list(snakemake.input.denoised), list(done), ".npz")
    settings = Classify2DSettings.from_config(snakemake.params.settings)
    try:
        if not frames:
            raise InputError(f"dataset {dataset!r}: no micrograph has picks to classify")
        _, pixel_size = load_frame(next(iter(frames.values())))
        with tempfile.TemporaryDirectory(prefix="cryopick_classify2d_") as scratch:
            averages = classify_picks(
                {name: files[name] for name in picks},
                picks,
                pixel_size,
                snakemake.params.diameter,
                snakemake.params.invert,
                Path(scratch),
                settings,
                log=log.info,
            )
    except InputError as exc:  # the report says so instead of the run failing
        log.warning("dataset %r: no 2D classes: %s", dataset, exc)
        write_message_image(snakemake.output.averages, f"no 2D classes: {exc}")
        table = None
    else:
        write_class_grid(averages, snakemake.output.averages)
        table = class_table(averages)
        log.info(
            "%d of %d picks in %d classes (%.1f s of RELION)",
            averages.n_particles,
            averages.n_picks,
            len(averages.particles),
            averages.seconds,
        )
    with atomic_path(snakemake.output.table) as tmp:
        if table is None:
            tmp.write_text("class\tparticles\tfraction\n")
        else:
            table.to_csv(tmp, sep="\t", index=False, float_format="%.4f")
