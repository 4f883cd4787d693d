"""Snakemake wrapper: a peer picker's picks of one batch of micrographs (cryopick.peers), one
{micrograph}.star each in the batch's directory."""

import os
import tempfile
from pathlib import Path

from cryopick.batching import batch_artifact, run_batch, write_completion
from cryopick.io import InputError, missing_file_message, write_star
from cryopick.peers import relion_log_picks, topaz_picks
from cryopick.workflow import as_list, logged_job

peer = snakemake.wildcards.peer
micrographs = as_list(snakemake.params.micrographs)
files = dict(snakemake.params.micrographs)
folder = Path(snakemake.output[0])


def pick(micrograph: str, workdir: Path) -> str:
    path = files[micrograph]
    if not os.path.exists(path):
        raise InputError(missing_file_message(path, "micrograph"))
    # pixel size: the config's, else (None) the file header's, resolved where the peer reads it
    common = (
        path,
        snakemake.params.pixel_size,
        snakemake.params.diameter,
        snakemake.params.invert,
        workdir,
    )
    if peer == "relion_log":
        picks = relion_log_picks(*common)
    else:
        picks = topaz_picks(*common, topaz_command=snakemake.params.topaz_command)
    write_star(batch_artifact(folder, micrograph, ".star"), picks)
    return f"{len(picks)} {peer} picks"


with logged_job(snakemake.log[0], f"{peer} picks, batch {snakemake.wildcards.batch}") as log:
    with tempfile.TemporaryDirectory(prefix=f"cryopick_{peer}_") as scratch:

        def pick_in_scratch(micrograph: str) -> str:
            workdir = Path(scratch) / micrograph
            workdir.mkdir()
            return pick(micrograph, workdir)

        run_batch(micrographs, folder, pick_in_scratch, log=log.info)
    write_completion(folder, micrographs)
