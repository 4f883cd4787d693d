"""Snakemake wrapper: one synthetic micrograph and its ground truth (rule synthesize), or a
set's parameters.json (rule synthetic_parameters); see cryopick.synthetic."""

from pathlib import Path

from cryopick.synthetic import (
    SyntheticSettings,
    micrograph_outputs,
    write_micrograph,
    write_parameters,
)
from cryopick.workflow import logged_job

params = snakemake.params
wildcards = dict(snakemake.wildcards.items())
what = f"{snakemake.rule} {' '.join(wildcards.values())}"
with logged_job(snakemake.log[0], what) as log:
    settings = SyntheticSettings.from_config(params.settings)
    if snakemake.rule == "synthetic_parameters":
        write_parameters(
            settings,
            Path(snakemake.output[0]).parent,
            params.n_micrographs,
            params.seed,
            params.name_prefix,
        )
    else:
        name = snakemake.wildcards.micrograph
        out_dir = Path(snakemake.output.micrograph).parents[1]
        expected = {k: str(v) for k, v in micrograph_outputs(out_dir, name).items()}
        declared = {k: snakemake.output[k] for k in expected}
        if expected != declared:  # the rule and the package must agree on the layout
            raise RuntimeError(f"rule outputs {declared} differ from the layout {expected}")
        m = write_micrograph(settings, out_dir, name, params.index, params.seed)
        info = m.info
        log.info(
            "%s: %d particles (%d centred inside), defocus %.0f/%.0f A, ice %.0f A, "
            "carbon %s, %d contaminants, %d aggregates, SNR %.3g",
            name,
            info["particles_placed"],
            info["particles_in_image"],
            m.ctf.defocus_u,
            m.ctf.defocus_v,
            info["ice_thickness_mean_A"],
            info["carbon"],
            len(info["contaminants"]),
            len(info["aggregates"]),
            info.get("snr_estimate", float("nan")),
        )
