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


def move_stale_picks(
    folders: Iterable[str | os.PathLike], current: Iterable[str], stale_root: str | os.PathLike
) -> list[Path]:
    """Move every file of ``folders`` whose micrograph (the name less its suffix) is not
    among ``current`` into ``stale_root``/<folder name>/, so that a data set pointed at other
    micrographs no longer shows the old picks beside the new; returns their new paths. Moved,
    never deleted: the user decides."""
    wanted = set(current)
    moved = []
    for folder in map(Path, folders):
        if not folder.is_dir():
            continue
        for entry in sorted(folder.iterdir()):
            name = entry.name.rsplit(".", 1)[0]
            if entry.is_file() and name not in wanted and not entry.name.startswith("."):
                target = Path(stale_root) / folder.name / entry.name
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.move(str(entry), str(target))
                moved.append(target)
    return moved


def publish(artifact: str | os.PathLike, published: str | os.PathLike) -> None:
    """Make a batch folder's artifact appear at its published path (the one-file-per-micrograph
    layout users import): a hard link, so it costs no space and cannot differ from what the
    batch recorded, or a copy where the file system has no hard links; replaced atomically,
    so a reader never sees a half-written file."""
    published = Path(published)
    published.parent.mkdir(parents=True, exist_ok=True)
    tmp = published.with_name(f".{published.name}.{os.getpid()}.tmp")
    try:
        os.link(artifact, tmp)
    except OSError:
        shutil.copy2(artifact, tmp)
    os.replace(tmp, published)


def withdraw(published: str | os.PathLike, stale_root: str | os.PathLike) -> Path | None:
    """A micrograph that failed this time may have published picks from an earlier run: move
    them to ``stale_root``/<folder name>/ (never deleted), so the folder holds only picks of
    this run; returns the new path, None when there was nothing."""
    published = Path(published)
    if not published.is_file():
        return None
    target = Path(stale_root) / published.parent.name / published.name
    target.parent.mkdir(parents=True, exist_ok=True)
    n = 1
    while target.exists():  # an earlier stale copy keeps its place
        target = target.with_name(f"{published.name}.{n}")
        n += 1
    shutil.move(str(published), str(target))
    return target
