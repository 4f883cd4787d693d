"""Snakemake wrapper: exclusion maps of one batch of micrographs (cryopick.exclusion), one
{micrograph}.npz each in the batch's directory (an error record for a micrograph that failed
upstream or here)."""

from pathlib import Path

from cryopick.batching import batch_artifact, batch_input, run_batch, write_completion
from cryopick.exclusion import ExclusionSettings, exclusion_map, save_exclusion
from cryopick.io import InputError, micrograph_name
from cryopick.workflow import as_list, logged_job

micrographs = as_list(snakemake.params.micrographs)
raw = {micrograph_name(path): path for path in as_list(snakemake.input.micrographs)}
folder = Path(snakemake.output.maps)
settings = ExclusionSettings.from_config(snakemake.params.settings)


def exclude(micrograph: str) -> str:
    denoised = str(batch_input(snakemake.input.denoised, micrograph))
    if micrograph not in raw:  # its denoise job recorded why (batch_input raised it above)
        raise InputError(f"{micrograph}: micrograph file missing")
    exclusion = exclusion_map(
        raw[micrograph], denoised, snakemake.params.diameter, settings, snakemake.params.invert
    )
    save_exclusion(batch_artifact(folder, micrograph), exclusion)
    shares = {k: v for k, v in exclusion.fractions().items() if v >= 0.001}
    if sum(shares.values()) > 0.5:  # implausible for a micrograph someone collected: say so
        log.warning(
            "%s: %.0f%% of the micrograph excluded (%s); its picks will be few",
            micrograph,
            100 * sum(shares.values()),
            ", ".join(shares),
        )
    return "excluded " + (", ".join(f"{k} {v:.1%}" for k, v in shares.items()) or "nothing")


with logged_job(snakemake.log[0], f"exclusion, batch {snakemake.wildcards.batch}") as log:
    run_batch(micrographs, folder, exclude, log=log.info)
    write_completion(folder, micrographs)
