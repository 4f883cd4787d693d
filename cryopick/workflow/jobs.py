"""Support for the thin scripts under scripts/: logging to the rule's log file and turning a
user-input error into one clear line instead of a traceback."""

from __future__ import annotations

import contextlib
import logging
import sys
import time

from cryopick.io import InputError

LOGGER = logging.getLogger("cryopick")


@contextlib.contextmanager
def logged_job(log_path: str | None, what: str):
    """Log to ``log_path`` and stderr; an InputError ends the job with its message (exit 1)."""
    handlers: list[logging.Handler] = [logging.StreamHandler(sys.stderr)]
    if log_path:
        handlers.append(logging.FileHandler(log_path, mode="w"))
    logging.basicConfig(
        level=logging.INFO,
        handlers=handlers,
        force=True,
        format="%(asctime)s %(levelname)s %(message)s",
    )
    start = time.perf_counter()
    LOGGER.info("%s: started", what)
    try:
        yield LOGGER
    except InputError as exc:
        LOGGER.error("%s", exc)
        logging.shutdown()
        sys.exit(1)
    LOGGER.info("%s: done in %.2f s", what, time.perf_counter() - start)


def as_list(files) -> list[str]:
    """A Snakemake input/params entry as a list: one file comes as a string (a batch of one
    micrograph), several as a list."""
    return [files] if isinstance(files, str) else [str(f) for f in files]
