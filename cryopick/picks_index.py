"""Which picks belong to this run: a RELION coordinate index per data set, and the picks of
micrographs that left the data set moved aside instead of lying among the current ones.

The index is RELION 4/5's ``autopick.star`` (``data_coordinate_files``: rlnMicrographName,
rlnMicrographCoordinates), which RELION's extraction and cryoSPARC's import read as the list of
a picking job's coordinate files."""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Iterable, Mapping

from cryopick.batching import COMPLETION_SUFFIX, ERROR_SUFFIX
from cryopick.io import atomic_path


def write_coordinate_index(
    path: str | os.PathLike,
    micrograph_files: Mapping[str, str],
    picks_files: Mapping[str, str],
) -> None:
    """One row per micrograph of the run, in name order: its file and its coordinate STAR."""
    lines = [
        "# cryopick: the picks of this run, one coordinate file per micrograph",
        "",
        "data_coordinate_files",
        "",
        "loop_",
        "_rlnMicrographName #1",
        "_rlnMicrographCoordinates #2",
    ]
    lines += [f"{micrograph_files[name]} {picks_files[name]}" for name in sorted(picks_files)]
    with atomic_path(path) as tmp:
        Path(tmp).write_text("\n".join(lines) + "\n")


def stale_entries(
    folder: str | os.PathLike, batches: Mapping[str, Iterable[str]], prefix: str = "batch_"
) -> list[Path]:
    """What in a final-picks folder does not belong to this run: batch folders (and their
    completion records) of batches that no longer hold a micrograph, files inside a current
    batch folder of micrographs that left that batch, and anything else (the one-file-per-
    micrograph layout of cryopick before batched final picks, a user's stray copy)."""
    folder = Path(folder)
    if not folder.is_dir():
        return []
    current = {f"{prefix}{batch}": set(names) for batch, names in batches.items()}
    stale = []
    for entry in sorted(folder.iterdir()):
        if entry.name.startswith("."):
            continue
        name = (
            entry.name[: -len(COMPLETION_SUFFIX)]
            if entry.name.endswith(COMPLETION_SUFFIX)
            else None
        )
        if name in current and entry.is_file():
            continue  # a current batch's completion record
        if entry.name in current and entry.is_dir():
            members = current[entry.name]
            stale += [
                f
                for f in sorted(entry.iterdir())
                if f.is_file()
                and not f.name.startswith(".")  # Snakemake's own (.snakemake_timestamp)
                and micrograph_of(f.name) not in members
            ]
            continue
        stale.append(entry)
    return stale


def micrograph_of(file_name: str) -> str:
    """The micrograph a batch folder's file belongs to: {micrograph}.star / .csv / .box or
    {micrograph}.error.txt."""
    if file_name.endswith(ERROR_SUFFIX):
        return file_name[: -len(ERROR_SUFFIX)]
    return file_name.rsplit(".", 1)[0]


def move_stale_picks(
    folders: Iterable[str | os.PathLike],
    batches: Mapping[str, Iterable[str]],
    stale_root: str | os.PathLike,
) -> list[Path]:
    """Move the :func:`stale_entries` of each final-picks folder under ``stale_root``/<folder
    name>/ (same relative path), so that a data set pointed at other micrographs no longer
    shows the old picks beside the new; returns their new paths. Moved, never deleted or
    overwritten (an earlier stale copy of the same name keeps its place: the newer one gets a
    numbered name), so the user decides. Runs before the jobs (Snakemake's onstart): a batch
    that lost a micrograph is rewritten by its job, which would delete the file."""
    batches = {batch: list(names) for batch, names in batches.items()}
    moved = []
    for folder in map(Path, folders):
        for entry in stale_entries(folder, batches):
            target = _free_path(Path(stale_root) / folder.name / entry.relative_to(folder))
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.move(str(entry), str(target))
            moved.append(target)
    return moved


def _free_path(path: Path) -> Path:
    candidate, n = path, 1
    while candidate.exists():
        candidate = path.with_name(f"{path.name}.{n}")
        n += 1
    return candidate
