"""Work-arounds for Snakemake behaviour that costs this workflow time at EMPIAR scale.

Snakemake (9.27.1, the pinned version) validates job groups in ``DAG._check_groups`` by
iterating ``self._group.values()``, a mapping of *job* -> group, so a group of k jobs is
checked k times, each check a depth-first search from every job of the group through
everything upstream of it. With 64 micrographs per group and a batched U-Net stage upstream
(64 denoise jobs behind each map), that is k^2 x 66 steps per group: 163 s of a 259 s dry run
for 10,000 micrographs (benchmarks/dag_scale.py). Checking each group once gives the same
verdict (the search per group is unchanged) in 1/k of the time.

The fix wraps the original method and only shortens the iteration; it is applied only when the
method looks like the one measured, so a Snakemake that changes it runs unpatched.

Second, ``snakemake.common.get_function_params`` calls ``inspect.signature`` every time an input
function, a param function or a resource (each profile expression, each attempt) is evaluated:
~90 calls per micrograph, 15% of a dry run's time (cProfile of a 3,000-micrograph dry run). A
function's signature never changes, so :func:`cache_function_params` remembers it per function
(bound methods by their underlying function); anything else is inspected as before.

Third, the scheduler (``JobScheduler.job_selector``) calls ``update_input_sizes`` for every
ready job at every selection round, and it stats (exists + size) each input file again: with
the denoise batches ready at the start, every round re-stats every micrograph of the data set.
Measured on a local run (cProfile of the main process, tiny micrographs, 3 stages per batch):
12,860 stat() calls for 128 micrographs, 127,043 for 512, growing as micrographs x jobs; on
the CI cluster the main process took 639 CPU s for 2,048 micrographs (benchmarks/
slurm_overhead.py). The inputs of a job that is ready are finished files, so
:func:`size_inputs_once` sizes each path once and keeps Snakemake's own eviction.

Each patch is described for upstream in docs/snakemake_patches.md (what Snakemake does, a
reproduction, the cost, when to drop it). :func:`apply_patches` applies both at DAG build and
logs one line per patch: applied, or skipped because Snakemake's code differs.
"""

from __future__ import annotations

import inspect
import logging
import types
from typing import Callable

_MARKER = "for group in self._group.values():"


def _source_contains(func, marker: str) -> bool:
    """Whether ``func``'s source holds ``marker``: each patch applies only to the code it was
    measured on, so a Snakemake that changed the function runs unpatched."""
    try:
        return marker in inspect.getsource(func)
    except (OSError, TypeError):
        return False


def check_each_group_once() -> bool:
    """Make ``DAG._check_groups`` visit every group once; whether the patch is in place."""
    import snakemake.api  # noqa: F401  (snakemake.dag alone is a circular import)
    from snakemake.dag import DAG

    original = DAG._check_groups
    if getattr(original, "_cryopick_once", False):
        return True
    if not _source_contains(original, _MARKER):
        return False

    def _check_groups(self):
        by_job = self._group
        representatives = {}
        for job, group in by_job.items():
            representatives.setdefault(id(group), (job, group))
        self._group = {job: group for job, group in representatives.values()}
        try:
            return original(self)
        finally:
            self._group = by_job

    _check_groups._cryopick_once = True
    _check_groups.__doc__ = original.__doc__
    DAG._check_groups = _check_groups
    return True


_PARAMS_BODY = "return inspect.signature(func).parameters"


def cache_function_params() -> bool:
    """Remember ``inspect.signature(f).parameters`` per function in Snakemake's helper.

    Patched where Snakemake looks the helper up (snakemake.common, .rules, .jobs); applied only
    when the helper's body is the one measured. Returns whether the cache is in place.
    """
    import snakemake.api  # noqa: F401
    import snakemake.common as common
    import snakemake.jobs as jobs
    import snakemake.rules as rules

    original = common.get_function_params
    if getattr(original, "_cryopick_cached", False):
        return True
    if not _source_contains(original, _PARAMS_BODY):
        return False
    overwrite_attr = common.FUNC_OVERWRITE_PARAMS_ATTR
    cache: dict = {}

    def get_function_params(func):
        if hasattr(func, overwrite_attr):
            return getattr(func, overwrite_attr)
        if isinstance(func, types.MethodType):
            key = (func.__func__, True)  # every bound method of it drops the same first param
        elif isinstance(func, types.FunctionType):
            key = (func, False)
        else:  # partials, callable objects: their signature depends on their state
            return inspect.signature(func).parameters
        params = cache.get(key)
        if params is None:
            params = cache[key] = inspect.signature(func).parameters
        return params

    get_function_params._cryopick_cached = True
    get_function_params.__doc__ = original.__doc__
    for module in (common, rules, jobs):
        if getattr(module, "get_function_params", None) is original:
            module.get_function_params = get_function_params
    return True


_SIZES_BODY = "paths = {path for job in jobs for path in job.input}"


def size_inputs_once() -> bool:
    """Make ``JobScheduler.update_input_sizes`` stat only the input paths it has not sized yet
    (the sizes only order the scheduler's choice among ready jobs); whether it is in place."""
    import asyncio
    from itertools import filterfalse

    import snakemake.api  # noqa: F401
    from snakemake.scheduling.job_scheduler import JobScheduler

    original = JobScheduler.update_input_sizes
    if getattr(original, "_cryopick_once", False):
        return True
    if not _source_contains(original, _SIZES_BODY):
        return False

    async def update_input_sizes(self, jobs):
        async def get_size(path):
            return path, await path.size() if await path.exists() else None

        paths = {path for job in jobs for path in job.input}
        new = [path for path in paths if path not in self._input_sizes]
        if new:
            self._input_sizes.update(await asyncio.gather(*[get_size(path) for path in new]))
        if len(self._input_sizes) > 10000:  # Snakemake's own bound on the table
            for path in list(filterfalse(paths.__contains__, self._input_sizes)):
                del self._input_sizes[path]

    update_input_sizes._cryopick_once = True
    update_input_sizes.__doc__ = original.__doc__
    JobScheduler.update_input_sizes = update_input_sizes
    return True


# name -> (patch, the Snakemake code it replaces): what apply_patches applies and logs
PATCHES: dict[str, tuple[Callable[[], bool], str]] = {
    "check_each_group_once": (check_each_group_once, "snakemake.dag.DAG._check_groups"),
    "cache_function_params": (cache_function_params, "snakemake.common.get_function_params"),
    "size_inputs_once": (
        size_inputs_once,
        "snakemake.scheduling.job_scheduler.JobScheduler.update_input_sizes",
    ),
}


def apply_patches(log: logging.Logger | None = None) -> dict[str, bool]:
    """Apply every patch; one line each on ``log`` (Snakemake's logger by default) saying
    whether it applied or was skipped. Returns patch name -> applied."""
    if log is None:
        from snakemake.logging import logger as log
    applied = {}
    for name, (patch, target) in PATCHES.items():
        applied[name] = patch()
        if applied[name]:
            log.info(
                f"cryopick: Snakemake patch {name} applied to {target} (docs/snakemake_patches.md)"
            )
        else:
            log.info(
                f"cryopick: Snakemake patch {name} skipped: {target} differs from the code "
                "it was written for (docs/snakemake_patches.md)"
            )
    return applied
