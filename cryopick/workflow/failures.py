"""The micrographs of this run that failed, listed once at its end (Snakefile ``onsuccess`` and
``onerror``): a bad micrograph fails alone with an error record in its batch folder
(cryopick.batching), and a user of a 20,000-micrograph run should not have to grep the logs to
learn which ones."""

from __future__ import annotations

from pathlib import Path
from typing import Iterable, Mapping

from cryopick.batching import ERROR_SUFFIX
from cryopick.workflow import paths


def recorded_failures(
    micrographs: Mapping[str, Iterable[str]], root: str = "."
) -> list[tuple[str, str, str]]:
    """(data set, micrograph, message) for every micrograph of ``micrographs`` (data set ->
    names of this run) with an error record in any batch folder of its data set; the record of
    the earliest stage folder (by name order of the stages that copy it on, all alike)."""
    failures = []
    for dataset, names in micrographs.items():
        wanted = set(names)
        folder = Path(root) / paths.DATASET.format(dataset=dataset)
        found: dict[str, str] = {}
        for record in sorted(folder.glob(f"*/batch_*/*{ERROR_SUFFIX}")):
            name = record.name[: -len(ERROR_SUFFIX)]
            if name in wanted and name not in found:
                found[name] = record.read_text().strip().splitlines()[0]
        failures += [(dataset, name, found[name]) for name in sorted(found)]
    return failures


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
        lines.append(
            f"  ... and {len(failures) - limit} more: results/<dataset>/*/batch_*/*{ERROR_SUFFIX}"
        )
    return "\n".join(lines)
