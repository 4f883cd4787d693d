# The benchmark report (cryopick/report.py): per data set a gallery of micrographs with their
# picks drawn, plots per stage, the peers' rows and curves, optional 2D classes; a score table
# across data sets and a reproducibility block. The images it shows are made per micrograph in
# batches (previews) or per data set (classify2d), never in the report job.


rule previews:
    """Preview images of one batch of micrographs: the denoised micrograph, scaled, with the
    exclusion mask shaded when that stage runs; one .jpg each."""
    input:
        denoised=paths.batch_complete(paths.DENOISED),
        exclusion=batch_exclusion,
    output:
        directory(paths.PREVIEWS),
        paths.batch_complete(paths.PREVIEWS),
    log:
        paths.log("previews", paths.BATCH),
    benchmark:
        paths.benchmark("previews", paths.BATCH)
    conda:
        "../envs/cryopick.yaml"
    threads: 1
    resources:
        mem_mb=500,
        runtime=PICK_BATCH_RUNTIME,
    params:
        micrographs=batch_micrographs,
        size=config["report"]["preview_size"],
        excluded_classes=preview_excluded_classes(config),
    script:
        "../scripts/previews.py"


rule classify2d:
    """2D classification of a sample of a data set's final picks with RELION (extraction and
    relion_refine), the class averages as one image and the particles per class."""
    input:
        picks=dataset_final_picks,
        denoised=dataset_denoised,
    output:
        averages=report(
            paths.CLASS_AVERAGES,
            caption="../report/classes.rst",
            category="2D classes",
            subcategory="{dataset}",
        ),
        table=paths.CLASS_TABLE,
    log:
        paths.log("classify2d", None),
    benchmark:
        paths.benchmark("classify2d", "classify2d")
    conda:
        "../envs/cryopick.yaml"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=30,
    params:
        micrographs=dataset_micrograph_files,
        settings=config["report"]["classification"],
        diameter=dataset_diameter,
        invert=dataset_invert,
    script:
        "../scripts/classify2d.py"


rule report:
    """The benchmark report across data sets (HTML with its images in assets/, and a TSV)."""
    input:
        unpack(report_inputs),
    output:
        tsv=paths.REPORT_TSV,
        html=report(
            paths.REPORT_HTML,
            caption="../report/benchmark.rst",
            category="Benchmark",
        ),
        assets=report(
            directory(paths.REPORT_ASSETS),
            patterns=["{name}.png"],
            caption="../report/assets.rst",
            category="Benchmark",
        ),
    log:
        paths.log("report", None, paths.RESULTS),
    benchmark:
        paths.benchmark("report", None, paths.RESULTS)
    conda:
        "../envs/cryopick.yaml"
    threads: 1
    resources:
        mem_mb=1000,
        runtime=5,
    params:
        datasets=report_datasets,
        options=report_options(config, PLAN.met),
        provenance=report_provenance,
        config=config,
    script:
        "../scripts/report.py"
