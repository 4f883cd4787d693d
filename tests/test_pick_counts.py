"""Never silently empty: pick counts flagged against the data set, and a data set that is
mostly empty fails with what to check."""

import logging

import pandas as pd
import pytest

from cryopick.io import InputError, empty_coordinates, write_star
from cryopick.pick_counts import (
    FEW_PICKS,
    NO_PICKS,
    CountChecks,
    EmptyDatasetError,
    check_pick_counts,
    count_picks,
    flag_counts,
    read_flagged,
)

SETTINGS = {"particle_diameter": 150.0, "pixel_size": 1.0, "particle_contrast": "dark"}


def _picks(n):
    table = empty_coordinates()
    if n:
        table = pd.DataFrame(
            {
                "x": range(10, 10 + 10 * n, 10),
                "y": [50.0] * n,
                "score": [1.0] * n,
                "diameter": [20.0] * n,
            }
        ).astype(float)
    return table


def _write(tmp_path, counts):
    files = {}
    for i, n in enumerate(counts):
        files[f"mic_{i}"] = tmp_path / f"mic_{i}.star"
        write_star(files[f"mic_{i}"], _picks(n))
    return files


def test_count_picks_reads_the_star_files(tmp_path):
    counts = count_picks(_write(tmp_path, [3, 0, 5]))
    assert list(counts["micrograph"]) == ["mic_0", "mic_1", "mic_2"]
    assert list(counts["n_picks"]) == [3, 0, 5]


def test_flags_empty_and_far_below_the_median():
    counts = pd.DataFrame({"micrograph": list("abcde"), "n_picks": [100, 90, 0, 20, 30]})
    flagged = flag_counts(counts, CountChecks(few_picks_fraction=0.25))
    # median 30: 0 is 'no picks', 20 and 30 are not below 7.5
    assert list(flagged["flag"]) == ["", "", NO_PICKS, "", ""]
    flagged = flag_counts(counts, CountChecks(few_picks_fraction=0.7))
    assert list(flagged["flag"]) == ["", "", NO_PICKS, FEW_PICKS, ""]


def test_mostly_empty_data_set_fails_naming_the_settings(tmp_path, caplog):
    files = _write(tmp_path, [0, 0, 4])
    table = tmp_path / "counts.tsv"
    with caplog.at_level(logging.WARNING), pytest.raises(EmptyDatasetError) as exc:
        check_pick_counts(files, "set", CountChecks(), SETTINGS, table, logging.getLogger("t"))
    message = str(exc.value)
    assert "2 of 3 micrographs have no picks" in message
    for key in ("particle_diameter", "pixel_size", "particle_contrast", "150.0"):
        assert key in message
    assert "initial_model: models/unet_general.pt" in message  # fine-tuning, the next step
    assert isinstance(exc.value, InputError)  # one line, no traceback, in a job
    warned = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert warned == [
        "dataset 'set': micrograph 'mic_0' has no picks",
        "dataset 'set': micrograph 'mic_1' has no picks",
    ]


def test_a_few_empty_micrographs_warn_and_are_listed(tmp_path, caplog):
    files = _write(tmp_path, [40, 0, 38, 2, 41])
    table = tmp_path / "counts.tsv"
    with caplog.at_level(logging.WARNING):
        check_pick_counts(files, "set", CountChecks(), SETTINGS, table, logging.getLogger("t"))
    warned = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert warned == [
        "dataset 'set': micrograph 'mic_1' has no picks",
        "dataset 'set': micrograph 'mic_3' has 2 picks, far fewer than the data set's median of 38",
    ]
    flagged = read_flagged(table)
    assert list(flagged["micrograph"]) == ["mic_1", "mic_3"]
    assert list(flagged["flag"]) == [NO_PICKS, FEW_PICKS]


def test_max_empty_fraction_one_never_fails(tmp_path):
    files = _write(tmp_path, [0, 0])
    flagged = check_pick_counts(
        files,
        "set",
        CountChecks(max_empty_fraction=1.0),
        SETTINGS,
        tmp_path / "c.tsv",
        logging.getLogger("t"),
    )
    assert list(flagged["flag"]) == [NO_PICKS, NO_PICKS]


def test_unknown_check_key_is_refused():
    with pytest.raises(InputError, match="few_pick_fraction"):
        CountChecks.from_config({"few_pick_fraction": 0.2})
