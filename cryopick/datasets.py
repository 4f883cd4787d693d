"""Data-set listing: which micrographs a data set holds and where its labels are.

Runs at DAG-build time, so it only lists names (one glob or one list file, one directory
listing for the labels) and never opens a micrograph: 20,000 micrographs list in well under
a second.
"""

from __future__ import annotations

import glob
import os
from pathlib import Path

from cryopick.io import (
    COORDINATE_SUFFIXES,
    MICROGRAPH_SUFFIXES,
    InputError,
    micrograph_name,
)

LIST_FILE_SUFFIXES = (".txt", ".lst", ".list")


def list_micrographs(spec: str, dataset: str = "") -> dict[str, str]:
    """Map micrograph name -> path for a glob pattern or a text file listing paths.

    A list file holds one path per line (blank lines and ``#`` comments ignored); relative
    paths are relative to the list file. Names must be unique within a data set.
    """
    where = f"dataset {dataset!r}: " if dataset else ""
    if spec.lower().endswith(LIST_FILE_SUFFIXES):
        list_file = Path(spec)
        if not list_file.is_file():
            raise InputError(f"{where}micrograph list file {spec} does not exist")
        paths = []
        for line in list_file.read_text().splitlines():
            line = line.strip()
            if line and not line.startswith("#"):
                path = Path(line)
                paths.append(str(path if path.is_absolute() else list_file.parent / path))
    else:
        paths = sorted(glob.glob(spec))
    paths = [p for p in paths if p.lower().endswith(MICROGRAPH_SUFFIXES)]
    if not paths:
        raise InputError(
            f"{where}no micrographs match {spec!r} (supported: {', '.join(MICROGRAPH_SUFFIXES)})"
        )
    listing: dict[str, str] = {}
    for path in paths:
        name = micrograph_name(path)
        if name in listing:
            raise InputError(
                f"{where}two micrographs share the name {name!r}: {listing[name]} and {path}"
            )
        listing[name] = path
    return listing


def list_label_files(folder: str | None, suffixes=COORDINATE_SUFFIXES) -> dict[str, str]:
    """Map micrograph name -> label file in ``folder`` (one directory listing)."""
    if not folder:
        return {}
    if not os.path.isdir(folder):
        raise InputError(f"ground-truth folder {folder} does not exist")
    found: dict[str, str] = {}
    for entry in sorted(os.listdir(folder)):
        stem, suffix = os.path.splitext(entry)
        if suffix.lower() in suffixes and stem not in found:
            found[stem] = os.path.join(folder, entry)
    return found
