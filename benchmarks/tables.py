"""Markdown tables for the benchmark scripts' results files (benchmarks/results/*.md)."""

from __future__ import annotations

import pandas as pd


def markdown(table: pd.DataFrame) -> str:
    """A pipe table of ``table``: floats with three decimals, everything else as text."""
    cols = list(table.columns)
    lines = ["| " + " | ".join(map(str, cols)) + " |", "|" + "---|" * len(cols)]
    for row in table.itertuples(index=False):
        cells = (f"{v:.3f}" if isinstance(v, float) else str(v) for v in row)
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def print_and_write_metrics(rows: list[tuple[str, str]], out) -> None:
    """A two-column metric table: printed aligned, written as TSV (metric, value) to ``out``."""
    from pathlib import Path

    width = max(len(k) for k, _ in rows)
    for key, value in rows:
        print(f"{key:<{width}}  {value}")
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text("metric\tvalue\n" + "".join(f"{k}\t{v}\n" for k, v in rows))
    print(f"written to {out}")
