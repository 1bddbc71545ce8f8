"""The study scripts' figures: mean and spread, paired differences, table cells and markdown tables."""

from __future__ import annotations

import statistics


def mean_std(xs: list[float]) -> tuple[float, float]:
    if not xs:
        return float("nan"), float("nan")
    return statistics.fmean(xs), (statistics.stdev(xs) if len(xs) > 1 else 0.0)


def paired(diffs: list[float]) -> tuple[float, float | None]:
    """The mean of paired differences and its standard error (None from one pair)."""
    m, sd = mean_std(diffs)
    return m, (sd / len(diffs) ** 0.5 if len(diffs) > 1 else None)


def cell(m: float, s: float | None = None) -> str:
    if m != m:  # NaN
        return "-"
    return f"{100 * m:.1f}" + (f" ± {100 * s:.1f}" if s is not None else "")


def markdown_table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines)
