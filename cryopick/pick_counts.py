"""Never silently empty: the number of final picks per micrograph, checked against its data set.

A picker that finds nothing is the worst kind of failure, because RELION and cryoSPARC show an
empty coordinate file as nothing at all. Each micrograph with no picks, or with far fewer than
its data set's median, is flagged (a WARNING in the log and on the console, and a row in the
report); a data set where most micrographs get no picks ends with an error that names the
settings that usually cause it.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from typing import Mapping

import numpy as np
import pandas as pd

from cryopick.io import InputError, atomic_path, read_coordinates
from cryopick.metrics import score_histogram
from cryopick.settings import config_values

NO_PICKS = "no picks"
FEW_PICKS = "few picks"
COUNT_COLUMNS = ["micrograph", "n_picks", "flag"]


@dataclass(frozen=True)
class CountChecks:
    """When a pick count is implausible (config key ``checks``)."""

    # a micrograph is flagged when it has fewer picks than this times its data set's median
    few_picks_fraction: float = 0.25
    # the data set fails when more than this fraction of its micrographs has no picks
    max_empty_fraction: float = 0.5

    @classmethod
    def from_config(cls, config: Mapping | None) -> "CountChecks":
        return cls(**config_values(cls, config or {}, "checks"))


class EmptyDatasetError(InputError):
    """Most micrographs of a data set got no picks: the settings, not the data, are suspect."""


def count_picks(picks_files: Mapping[str, str | os.PathLike]) -> pd.DataFrame:
    """Micrograph name -> number of picks in its final .star file, in the given order."""
    return tally_picks(picks_files)[0]


def tally_picks(picks_files: Mapping[str, str | os.PathLike]) -> tuple[pd.DataFrame, np.ndarray]:
    """The pick counts (:func:`count_picks`) and every pick's figure of merit, read once."""
    rows, scores = [], []
    for name, path in picks_files.items():
        picks = read_coordinates(path)
        rows.append({"micrograph": name, "n_picks": len(picks)})
        scores.append(picks["score"].to_numpy(np.float32))
    counts = pd.DataFrame(rows, columns=["micrograph", "n_picks"]).astype({"n_picks": "int64"})
    return counts, np.concatenate(scores) if scores else np.zeros(0, np.float32)


def flag_counts(counts: pd.DataFrame, checks: CountChecks) -> pd.DataFrame:
    """Add a ``flag`` column: 'no picks', 'few picks' (below few_picks_fraction x the median of
    the data set) or ''. The median is over all micrographs, so one busy micrograph does not
    flag the rest and a data set of empty ones is not 'few' but 'no'."""
    flagged = counts.copy()
    n = flagged["n_picks"].to_numpy()
    median = float(np.median(n)) if len(n) else 0.0
    few = n < checks.few_picks_fraction * median
    flagged["flag"] = np.where(n == 0, NO_PICKS, np.where(few, FEW_PICKS, ""))
    return flagged[COUNT_COLUMNS]


def flagged_messages(flagged: pd.DataFrame, dataset: str) -> list[str]:
    """One line per flagged micrograph, for the log and the console."""
    median = float(flagged["n_picks"].median()) if len(flagged) else 0.0
    lines = []
    for row in flagged.itertuples(index=False):
        if row.flag == NO_PICKS:
            lines.append(f"dataset {dataset!r}: micrograph {row.micrograph!r} has no picks")
        elif row.flag == FEW_PICKS:
            lines.append(
                f"dataset {dataset!r}: micrograph {row.micrograph!r} has {row.n_picks} "
                f"picks, far fewer than the data set's median of {median:g}"
            )
    return lines


def check_dataset(
    flagged: pd.DataFrame, dataset: str, checks: CountChecks, settings: Mapping[str, object]
) -> None:
    """Raise EmptyDatasetError when more than max_empty_fraction of the micrographs have no
    picks; the message names what to check, with the values the data set was run with."""
    if flagged.empty:
        return
    empty = int((flagged["flag"] == NO_PICKS).sum())
    if empty / len(flagged) <= checks.max_empty_fraction:
        return
    given = ", ".join(
        f"{key} {settings.get(key)!r}"
        for key in ("particle_diameter", "pixel_size", "particle_contrast")
    )
    raise EmptyDatasetError(
        f"dataset {dataset!r}: {empty} of {len(flagged)} micrographs have no picks. Check "
        f"particle_diameter (Angstrom, the particle's longest dimension), pixel_size (Angstrom "
        f"per pixel of the files as given, after any binning) and particle_contrast (dark for "
        f"unprocessed cryo-EM, bright if the images were inverted); this run used: {given}. "
        "If these are right, the model does not see this specimen: fine-tune it on a few "
        "labelled micrographs (unet.train.initial_model: models/unet_general.pt, README "
        "'Fine-tuning'), or compare with picks.source: baseline"
    )


def write_counts(flagged: pd.DataFrame, path: str | os.PathLike) -> None:
    with atomic_path(path) as tmp:
        flagged.to_csv(tmp, sep="\t", index=False)


def read_counts(path: str | os.PathLike) -> dict[str, int]:
    """Micrograph -> number of final picks, from a table written by write_counts."""
    table = pd.read_csv(path, sep="\t", keep_default_na=False)
    return dict(zip(table["micrograph"].astype(str), table["n_picks"].astype(int)))


def read_flagged(path: str | os.PathLike) -> pd.DataFrame:
    """The flagged rows of a pick-count table written by write_counts."""
    table = pd.read_csv(path, sep="\t", keep_default_na=False)
    return table[table["flag"] != ""].reset_index(drop=True)


def check_pick_counts(
    picks_files: Mapping[str, str | os.PathLike],
    dataset: str,
    checks: CountChecks,
    settings: Mapping[str, object],
    table_path: str | os.PathLike,
    log: logging.Logger,
    histogram_path: str | os.PathLike | None = None,
) -> pd.DataFrame:
    """Count, flag, warn and write the table (and the histogram of the picks' figures of
    merit at ``histogram_path``); then fail the data set if most are empty."""
    counts, scores = tally_picks(picks_files)
    if histogram_path is not None:
        with atomic_path(histogram_path) as tmp:
            score_histogram(scores).to_csv(tmp, sep="\t", index=False, float_format="%.6g")
    flagged = flag_counts(counts, checks)
    for line in flagged_messages(flagged, dataset):
        log.warning("%s", line)
    log.info(
        "dataset %r: %d picks on %d micrographs (median %g), %d flagged",
        dataset,
        int(flagged["n_picks"].sum()),
        len(flagged),
        float(flagged["n_picks"].median()) if len(flagged) else 0.0,
        int((flagged["flag"] != "").sum()),
    )
    check_dataset(flagged, dataset, checks, settings)
    write_counts(flagged, table_path)
    return flagged
