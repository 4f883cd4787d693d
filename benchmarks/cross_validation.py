"""A recipe's cross-validated F1 on EMPIAR-10017: its held-out folds pooled into one number.

Each fold's model is scored on the fold it left out by ``benchmarks/generality.py --real-fold K``,
which writes every micrograph's counts to benchmarks/results/generality_TAG_per_micrograph.tsv.
This pools the real micrographs of those runs, recipe by recipe, as one data set (sums of
picks, truth and matches, generality.pooled), at each model's stored operating point over
the whole field, so that "cross-validated F1" is reproducible from committed files rather than
added up by hand. A fold is named METHOD@TAG: the model's --model name in the run tagged TAG.

    python benchmarks/cross_validation.py --tag session16 \
        --recipe "general 6000 steps=cv0_s6000@session14_s6000_fold0,cv1_s6000@session15_cv1"

Writes benchmarks/results/cross_validation[_TAG].md; refuses a micrograph scored twice in one
recipe (two runs of the same fold), and says which of the 12 micrographs no fold covers.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.generality import REAL_TEST, pooled  # noqa: E402
from benchmarks.tables import markdown  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results"
N_REAL = 12


def fold_rows(method: str, tag: str, results: Path = RESULTS) -> pd.DataFrame:
    """The real micrographs ``method`` was scored on in the run tagged ``tag``: stored operating
    point, whole field (the real labels' own convention keeps them 1 d from the edge)."""
    path = results / f"generality_{tag}_per_micrograph.tsv"
    if not path.exists():
        raise SystemExit(f"{path}: no such result (run benchmarks/generality.py --tag {tag})")
    rows = pd.read_csv(path, sep="\t")
    rows = rows[
        (rows["method"] == method)
        & (rows["test"] == REAL_TEST)
        & (rows["threshold"] == "stored")
        & (rows["window"] == "field")
    ]
    if rows.empty:
        raise SystemExit(f"{path}: no real micrograph scored for method {method!r}")
    return rows.assign(fold=f"{method}@{tag}")


def recipe_rows(folds: list[tuple[str, str]], results: Path = RESULTS) -> pd.DataFrame:
    """Every fold's micrographs of one recipe, each micrograph once."""
    rows = pd.concat([fold_rows(method, tag, results) for method, tag in folds])
    twice = rows["micrograph"][rows["micrograph"].duplicated()].tolist()
    if twice:
        raise SystemExit(f"micrographs scored by more than one fold: {', '.join(twice)}")
    return rows


def recipe_table(name: str, rows: pd.DataFrame) -> pd.DataFrame:
    """One line per fold, then the pooled line where there are several folds."""
    table = pooled(rows, ["fold"])
    if len(table) > 1:
        table = pd.concat([table, pooled(rows.assign(fold="pooled"), ["fold"])])
    return table.rename(columns={"fold": "held out"}).assign(recipe=name)


def parse_recipe(spec: str) -> tuple[str, list[tuple[str, str]]]:
    """``NAME=METHOD@TAG,METHOD@TAG`` -> (NAME, [(METHOD, TAG), ...])."""
    name, _, folds = spec.partition("=")
    pairs = [fold.rpartition("@") for fold in folds.split(",")]
    if not name or any(not method or not tag for method, _, tag in pairs):
        raise SystemExit(f"--recipe {spec!r}: expected NAME=METHOD@TAG[,METHOD@TAG...]")
    return name, [(method, tag) for method, _, tag in pairs]


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--recipe", action="append", required=True, metavar="NAME=METHOD@TAG,...")
    parser.add_argument("--tag", default="")
    args = parser.parse_args(argv)
    tables, notes = [], []
    for spec in args.recipe:
        name, folds = parse_recipe(spec)
        rows = recipe_rows(folds)
        tables.append(recipe_table(name, rows))
        if len(rows) < N_REAL:
            notes.append(f"{name}: {len(rows)} of the {N_REAL} micrographs held out so far")
    table = pd.concat(tables)[
        ["recipe", "held out", "micrographs", "precision", "recall", "f1", "f1_r025"]
    ]
    print(table.to_string(index=False))
    for note in notes:
        print(note)
    suffix = f"_{args.tag}" if args.tag else ""
    text = [
        f"# EMPIAR-10017 cross-validated (benchmarks/cross_validation.py"
        f"{' --tag ' + args.tag if args.tag else ''})",
        "",
        "Each fold's model scored on the real micrographs it left out (fold = sorted index % 3), "
        "at its stored operating point, whole field, one-to-one matching within 0.5 x diameter "
        "(f1) and 0.25 x diameter (f1_r025); pooled = sums over the folds' micrographs.",
        "",
        markdown(table),
        "",
        *[f"- {note}" for note in notes],
    ]
    (RESULTS / f"cross_validation{suffix}.md").write_text("\n".join(text) + "\n")


if __name__ == "__main__":
    main()
