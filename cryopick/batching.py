"""Stable batches of micrographs for the batched stages (denoise, U-Net, SAM, stage picks).

On a cluster one job per micrograph per GPU stage would load the network N times and flood
the queue, and every job costs Snakemake time however short its work; one job per *batch*
loads a model once and processes many micrographs. For reruns to
stay incremental, batch membership must never change once assigned: a manifest per data set
(``results/{dataset}/batches.tsv``, columns ``micrograph`` and ``batch``) records it, and

* micrographs already in the manifest keep their batch, whatever else changes;
* new micrographs (sorted by name) fill NEW batches only, never the free places of an older,
  partial batch, so adding micrographs never reruns an old micrograph's work;
* a micrograph that disappeared from the input is dropped from the listing but keeps its row
  (so batch ids are never reused and it gets its old batch back if it returns);
* batch ids are zero-padded decimal strings (``00000``, ``00001``...), so paths sort;
* the manifest is rewritten (atomically) only when its content changes.

A micrograph that fails inside a batched job (bad input) gets an error record in the batch's
directory instead of its artifact (``run_batch``), so its batch-mates complete; whatever reads
it later gets the recorded message (``batch_input``).

Everything here is a pure function of (manifest, names, batch size) except the two file
helpers, so the result is deterministic and independent of the order names are listed in.
"""

from __future__ import annotations

import csv
import math
import os
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path

from cryopick.io import InputError, atomic_path

BATCH_ID_WIDTH = 5
MANIFEST_HEADER = ("micrograph", "batch")


def format_batch_id(index: int) -> str:
    """The batch id for a batch number: zero-padded, so lexical order is numeric order."""
    if index < 0:
        raise ValueError(f"batch index must be >= 0, got {index}")
    return f"{index:0{BATCH_ID_WIDTH}d}"


def next_batch_index(assignment: Mapping[str, str]) -> int:
    """The first batch number never used in the manifest (retired rows included)."""
    return max((int(b) for b in assignment.values()), default=-1) + 1


def assign_batches(
    assignment: Mapping[str, str], names: Iterable[str], batch_size: int
) -> dict[str, str]:
    """The manifest after ``names`` are present: old rows unchanged, new names in new batches.

    ``assignment`` maps micrograph -> batch id (the manifest so far, possibly empty). The
    result keeps every old row, including those of micrographs no longer in ``names``, and
    appends the names it lacks, sorted, ``batch_size`` per batch, numbered after the largest
    id ever used. Order of ``names`` and duplicates in it do not matter.
    """
    if batch_size < 1:
        raise ValueError(f"batch size must be >= 1, got {batch_size}")
    result = dict(assignment)
    new = sorted(set(names).difference(result))
    first = next_batch_index(result)
    for i, name in enumerate(new):
        result[name] = format_batch_id(first + i // batch_size)
    return result


def batch_members(assignment: Mapping[str, str], present: Iterable[str]) -> dict[str, list[str]]:
    """Batch id -> sorted micrographs of that batch, for the micrographs ``present`` only.

    Batches whose micrographs all disappeared are left out, so no job is made for them.
    """
    members: dict[str, list[str]] = {}
    for name in set(present):
        members.setdefault(assignment[name], []).append(name)
    return {batch: sorted(names) for batch, names in sorted(members.items())}


def read_manifest(path: str | os.PathLike) -> dict[str, str]:
    """The manifest as micrograph -> batch id; empty if the file does not exist yet."""
    path = Path(path)
    if not path.exists():
        return {}
    with path.open(newline="") as handle:
        rows = csv.reader(handle, delimiter="\t")
        header = next(rows, None)
        if header is None:
            return {}
        if tuple(header) != MANIFEST_HEADER:
            raise ValueError(f"{path}: expected header {MANIFEST_HEADER}, found {header}")
        assignment = {}
        for lineno, row in enumerate(rows, start=2):
            if len(row) != 2 or not row[1].isdigit():
                raise ValueError(f"{path}:{lineno}: expected 'micrograph<TAB>batch', found {row}")
            assignment[row[0]] = row[1]
    return assignment


def manifest_text(assignment: Mapping[str, str]) -> str:
    """The manifest's exact file content: header, then rows by batch then name (canonical)."""
    rows = sorted(assignment.items(), key=lambda item: (item[1], item[0]))
    return "".join(f"{name}\t{batch}\n" for name, batch in [MANIFEST_HEADER, *rows])


def write_manifest(path: str | os.PathLike, assignment: Mapping[str, str]) -> bool:
    """Write the manifest atomically if its content would change; whether it was written.

    Unchanged manifests are not touched, so their modification time cannot trigger reruns,
    and a reader never sees a half-written file (:func:`cryopick.io.atomic_path`).
    """
    path = Path(path)
    text = manifest_text(assignment)
    if path.exists() and path.read_text() == text:
        return False
    with atomic_path(path) as tmp:
        with open(tmp, "w", newline="") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
    return True


def update_batches(
    manifest: str | os.PathLike, names: Iterable[str], batch_size: int, write: bool = True
) -> dict[str, list[str]]:
    """Read the manifest, add new ``names``, save it if changed (and ``write``); the batches.

    This is what the workflow calls at DAG-build time. Pass ``write=False`` where the
    workflow must not modify files (a dry run, or a job re-reading the Snakefile on a node):
    the batches are the same, because the assignment is deterministic.
    """
    names = set(names)
    assignment = assign_batches(read_manifest(manifest), names, batch_size)
    if write:
        write_manifest(manifest, assignment)
    return batch_members(assignment, names)


def batch_artifact(folder: str | os.PathLike, micrograph: str, suffix: str = ".npz") -> Path:
    """One micrograph's artifact inside the directory a batched stage wrote for its batch."""
    return Path(folder) / f"{micrograph}{suffix}"


ERROR_SUFFIX = ".error.txt"


def write_batch_error(folder: str | os.PathLike, micrograph: str, message: str) -> Path:
    """Record in a batch's directory that ``micrograph`` failed (instead of its artifact).

    A bad micrograph must not fail its batch-mates: a batched job records the error, goes on
    with the others and still succeeds; whatever reads that micrograph later raises the
    recorded message (:func:`batch_input`), so its own final picks fail with it, alone.
    """
    path = Path(folder) / f"{micrograph}{ERROR_SUFFIX}"
    with atomic_path(path) as tmp:
        Path(tmp).write_text(message.rstrip("\n") + "\n")
    return path


def batch_error(folder: str | os.PathLike, micrograph: str) -> str | None:
    """The error recorded for ``micrograph`` in a batch's directory, if any."""
    path = Path(folder) / f"{micrograph}{ERROR_SUFFIX}"
    return path.read_text().strip() if path.is_file() else None


COMPLETION_SUFFIX = ".complete"


def completion_record(folder: str | os.PathLike) -> Path:
    """The file beside a batch folder that its job writes last: the batch's proof of being
    whole, declared as a second output of every batched rule so that a folder without it (a
    job killed mid-way, whatever Snakemake's metadata says) is redone, and checked by every
    reader (:func:`require_complete`)."""
    folder = Path(folder)
    return folder.with_name(folder.name + COMPLETION_SUFFIX)


def write_completion(folder: str | os.PathLike, micrographs: Iterable[str]) -> Path:
    """Mark a batch folder whole: each micrograph with ``done`` or ``error`` (its record)."""
    lines = [
        f"{m}\t{'error' if batch_error(folder, m) is not None else 'done'}" for m in micrographs
    ]
    path = completion_record(folder)
    with atomic_path(path) as tmp:
        Path(tmp).write_text("micrograph\tstatus\n" + "".join(line + "\n" for line in lines))
    return path


def batch_folder_of(path: str | os.PathLike) -> Path:
    """The batch folder a job's input names: readers declare the completion record, not the
    folder, so that Snakemake redoes a batch whose record is missing (it checks only the
    outputs a consumer asks for); the folder itself is accepted too."""
    path = Path(path)
    if path.name.endswith(COMPLETION_SUFFIX):
        return path.with_name(path.name[: -len(COMPLETION_SUFFIX)])
    return path


def is_batch(path: str | os.PathLike) -> bool:
    """Whether an input is a batch (its record or its folder), not a per-micrograph file."""
    return str(path).endswith(COMPLETION_SUFFIX) or Path(path).is_dir()


def require_complete(folder: str | os.PathLike) -> None:
    """An InputError naming the folder when its job did not finish writing it."""
    if not completion_record(folder).is_file():
        raise InputError(
            f"{folder}: incomplete batch (its job stopped before it finished: no "
            f"{completion_record(folder).name}); rerun the workflow to redo it"
        )


def batch_input(folder: str | os.PathLike, micrograph: str, suffix: str = ".npz") -> Path:
    """One micrograph's artifact in a batch directory an earlier stage wrote; an InputError
    with the earlier stage's message when it recorded an error for the micrograph instead,
    or when the batch is not whole. ``folder``: the folder or its completion record."""
    folder = batch_folder_of(folder)
    require_complete(folder)
    error = batch_error(folder, micrograph)
    if error is not None:
        raise InputError(error)
    path = batch_artifact(folder, micrograph, suffix)
    if not path.is_file():
        raise InputError(
            f"{path}: missing from its batch directory (neither the artifact nor "
            f"an error record for {micrograph})"
        )
    return path


def artifacts_by_micrograph(
    paths: Iterable[str | os.PathLike], micrographs: Iterable[str], suffix: str
) -> list[Path]:
    """The artifact of each micrograph (in order) from a stage's outputs: batch directories
    (holding ``{micrograph}{suffix}``) or per-micrograph files named ``{micrograph}{suffix}``."""
    found: dict[str, Path] = {}
    for path in map(Path, paths):
        if is_batch(path):
            path = batch_folder_of(path)
            require_complete(path)
            for child in path.iterdir():
                if child.name.endswith(suffix):
                    found[child.name[: -len(suffix)]] = child
        elif path.name.endswith(suffix):
            found[path.name[: -len(suffix)]] = path
    result = []
    for name in micrographs:
        if name not in found:
            raise InputError(
                f"no {suffix} artifact for micrograph {name} in "
                f"{', '.join(sorted({str(Path(p).parent) for p in paths}))}"
            )
        result.append(found[name])
    return result


def completed_micrographs(folder: str | os.PathLike) -> dict[str, str]:
    """Micrograph -> ``done`` or ``error``, as a batch's completion record lists them."""
    require_complete(folder)
    lines = completion_record(folder).read_text().splitlines()[1:]
    return dict(line.split("\t", 1) for line in lines if line)


def artifacts_and_errors(
    records: Iterable[str | os.PathLike], micrographs: Iterable[str], suffix: str
) -> tuple[dict[str, Path], dict[str, str]]:
    """From a stage's batches (their completion records or folders): micrograph -> artifact for
    those that have one, and micrograph -> recorded error for those that failed, each in the
    order of ``micrographs``; an InputError for one that the batches do not list. Reads the
    completion records, so it costs one file per batch, not one per micrograph."""
    records = list(records)
    artifacts: dict[str, Path] = {}
    errors: dict[str, str] = {}
    for folder in map(batch_folder_of, records):
        for name, status in completed_micrographs(folder).items():
            if status == "error":
                errors[name] = batch_error(folder, name) or "failed (no error record)"
            else:
                artifacts[name] = batch_artifact(folder, name, suffix)
    wanted = list(micrographs)
    missing = [m for m in wanted if m not in artifacts and m not in errors]
    if missing:
        raise InputError(
            f"micrograph {missing[0]} is in none of the batches of "
            f"{batch_folder_of(records[0]).parent if records else 'its stage'}"
        )
    return (
        {m: artifacts[m] for m in wanted if m in artifacts},
        {m: errors[m] for m in wanted if m in errors},
    )


def run_batch(
    micrographs: Iterable[str],
    folder: str | os.PathLike,
    process: Callable[[str], str | None],
    log=print,
) -> dict[str, str]:
    """Run ``process(micrograph)`` for every micrograph of a batch into ``folder``.

    An InputError (bad input here or recorded upstream) becomes the micrograph's error record
    and the batch goes on; any other exception is a bug and fails the job. ``process`` may
    return a line for the log. Returns micrograph -> error message for those that failed.
    """
    Path(folder).mkdir(parents=True, exist_ok=True)
    failed: dict[str, str] = {}
    for micrograph in micrographs:
        try:
            line = process(micrograph)
        except InputError as exc:
            failed[micrograph] = str(exc)
            write_batch_error(folder, micrograph, str(exc))
            log(f"{micrograph}: FAILED: {exc}")
        else:
            if line:
                log(f"{micrograph}: {line}")
    return failed


def pass_on_errors(
    upstream: str | os.PathLike, folder: str | os.PathLike, micrographs: Iterable[str], log=print
) -> list[str]:
    """For a batched job reading another batched stage's directory: copy every upstream error
    record into this job's ``folder`` (so the micrograph's own picks later fail with the first
    cause) and return the micrographs that have no error, in order, to be processed."""
    upstream = batch_folder_of(upstream)
    require_complete(upstream)
    Path(folder).mkdir(parents=True, exist_ok=True)
    good = []
    for micrograph in micrographs:
        error = batch_error(upstream, micrograph)
        if error is None:
            good.append(micrograph)
        else:
            write_batch_error(folder, micrograph, error)
            log(f"{micrograph}: skipped: {error}")
    return good


def batch_artifacts(
    folder: str | os.PathLike, micrographs: Iterable[str], suffix: str = ".npz"
) -> list[Path]:
    """The artifacts of a batch, in the order of ``micrographs``."""
    return [batch_artifact(folder, m, suffix) for m in micrographs]


def max_batches(n_micrographs: int, batch_size: int) -> int:
    """Jobs a batched stage needs for a fresh data set: ceil(N / batch size)."""
    return math.ceil(n_micrographs / batch_size)


class BatchPlan:
    """The batches of every data set, and the input functions batched rules need.

    Built once at DAG-build time (``BatchPlan.build``) without writing anything; ``save()``
    records new assignments in the manifests and belongs where a real run starts (Snakemake's
    ``onstart``), so that dry runs and the jobs' own Snakefile parsing write nothing. All of
    them compute the same batches, because the assignment is deterministic.

    A batched rule has the wildcards ``{dataset}`` and ``{batch}``, gets its micrographs
    (``micrographs_of_job``), reads its upstream batches' completion records and writes one
    directory per batch with one artifact per micrograph (every stage of picking is batched).
    """

    def __init__(
        self,
        assignments: Mapping[str, Mapping[str, str]],
        present: Mapping[str, Iterable[str]],
        manifests: Mapping[str, str],
    ):
        self._assignments = {ds: dict(a) for ds, a in assignments.items()}
        self._manifests = dict(manifests)
        self._batches = {
            ds: batch_members(self._assignments[ds], names) for ds, names in present.items()
        }
        self._batch_of = {
            ds: {m: batch for batch, names in b.items() for m in names}
            for ds, b in self._batches.items()
        }

    @classmethod
    def build(
        cls, micrographs: Mapping[str, Iterable[str]], manifest: str, batch_size: int
    ) -> "BatchPlan":
        """Plan for data set -> micrograph names; ``manifest`` is a pattern with ``{dataset}``."""
        present = {ds: set(names) for ds, names in micrographs.items()}
        manifests = {ds: manifest.format(dataset=ds) for ds in present}
        assignments = {
            ds: assign_batches(read_manifest(manifests[ds]), names, batch_size)
            for ds, names in present.items()
        }
        return cls(assignments, present, manifests)

    def save(self) -> list[str]:
        """Write every manifest whose content changed (atomically); the paths written."""
        return [
            path
            for ds, path in self._manifests.items()
            if write_manifest(path, self._assignments[ds])
        ]

    def batches(self, dataset: str) -> list[str]:
        """The batch ids of a data set that hold at least one present micrograph."""
        return list(self._batches[dataset])

    def micrographs(self, dataset: str, batch: str) -> list[str]:
        """The micrographs of one batch, sorted."""
        return self._batches[dataset][batch]

    def batch_of(self, dataset: str, micrograph: str) -> str:
        """The batch holding a micrograph."""
        return self._batch_of[dataset][micrograph]

    def expand(self, pattern: str, dataset: str) -> list[str]:
        """``pattern`` ({dataset}, {batch}) for every batch of a data set."""
        return [pattern.format(dataset=dataset, batch=b) for b in self._batches[dataset]]

    def micrographs_of_job(self, wildcards) -> list[str]:
        """Params function of a batched rule: its micrographs, sorted."""
        return self.micrographs(wildcards.dataset, wildcards.batch)
