"""The micrographs of this run that failed, listed once at its end (Snakefile ``onsuccess`` and
``onerror``): a bad micrograph fails alone with an error record in its batch folder, passed on
from stage to stage into its final-picks batch (cryopick.batching), and a user of a
20,000-micrograph run should not have to grep the logs to learn which ones."""

from __future__ import annotations

import os
import time
from typing import Iterable, Mapping

from cryopick.batching import (
    ERROR_SUFFIX,
    batch_error,
    batch_folder_of,
    completed_micrographs,
    completion_record,
)
from cryopick.workflow import paths


def recorded_failures(
    micrographs: Mapping[str, Iterable[str]], batches, root: str = "."
) -> list[tuple[str, str, str]]:
    """(data set, micrograph, message) for every micrograph of ``micrographs`` (data set ->
    names of this run) that its final-picks batch lists as failed, with the message of the
    first cause. Reads one completion record per batch of ``batches``
    (cryopick.batching.BatchPlan), not one file per micrograph; a batch not done is skipped."""
    failures = []
    for dataset, names in micrographs.items():
        wanted = set(names)
        found: dict[str, str] = {}
        for record in batches.expand(paths.batch_complete(paths.FINAL_PICKS), dataset):
            folder = batch_folder_of(f"{root}/{record}")
            if not completion_record(folder).is_file():
                continue
            for name, status in completed_micrographs(folder).items():
                if status == "error" and name in wanted:
                    found[name] = (batch_error(folder, name) or "failed").splitlines()[0]
        failures += [(dataset, name, found[name]) for name in sorted(found)]
    return failures


def retry_token(record: str | os.PathLike) -> str:
    """A final-picks batch whose last run recorded failed micrographs gets a new value at every
    DAG build (a param of its rule), so that rerunning the workflow redoes it (seconds: the
    failures come from upstream records) and ends again listing them with a non-zero exit,
    instead of "Nothing to be done" and exit 0. Empty for a batch without failures."""
    folder = batch_folder_of(record)
    if not completion_record(folder).is_file():
        return ""
    if "error" not in completed_micrographs(folder).values():
        return ""
    return f"retry failed micrographs, {time.time_ns()}"


def failure_summary(failures: list[tuple[str, str, str]], limit: int = 20) -> str:
    """The end-of-run lines: how many failed, then one line each (at most ``limit``)."""
    if not failures:
        return ""
    lines = [
        f"cryopick: {len(failures)} micrograph(s) failed and have no picks "
        "(fix or remove them, then rerun the same command):"
    ]
    lines += [f"  {dataset}/{name}: {message}" for dataset, name, message in failures[:limit]]
    if len(failures) > limit:
        where = paths.FINAL_PICKS.format(dataset="<dataset>", batch="*")
        lines.append(f"  ... and {len(failures) - limit} more: {where}/*{ERROR_SUFFIX}")
    return "\n".join(lines)
