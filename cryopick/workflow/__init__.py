"""The workflow wing: what the Snakemake rules and the scripts under scripts/ share.

- :mod:`~cryopick.workflow.jobs`: logging of a script's job, Snakemake entries as lists;
- :mod:`~cryopick.workflow.paths`: every path pattern the workflow writes;
- :mod:`~cryopick.workflow.stages`: the picking stages and sources (the registry);
- :mod:`~cryopick.workflow.plan`: the validated config turned into data sets, stages, targets,
  training items and synthetic sets, without Snakemake;
- :mod:`~cryopick.workflow.snakemake_compat`: work-arounds for Snakemake at EMPIAR scale.

Scripts import ``logged_job`` and ``as_list`` from here; nothing here imports Snakemake.
"""

from cryopick.workflow.jobs import LOGGER, as_list, logged_job

__all__ = ["LOGGER", "as_list", "logged_job"]
