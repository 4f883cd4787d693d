"""Snakemake wrapper: bin and denoise one micrograph (cryopick.denoise.denoise_file)."""

from cryopick.denoise import DenoiseSettings, denoise_file
from cryopick.workflow import logged_job

with logged_job(snakemake.log[0], f"denoise {snakemake.input.micrograph}"):
    denoise_file(
        snakemake.input.micrograph,
        snakemake.output[0],
        DenoiseSettings.from_config(snakemake.params.settings),
        pixel_size=snakemake.params.pixel_size,
        invert=snakemake.params.invert,
    )
