"""Result rows, the one table, and `results.md`."""

from __future__ import annotations

import datetime
import os
import platform
import statistics
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Row:
    """One line of the table: a measure, its two sides, the figure and its target.

    `passed` is None when there is nothing to judge (not available, informational).
    """

    case: str
    measure: str
    direct: str
    gateway: str
    figure: str
    target: str
    passed: bool | None
    note: str = ""

    @property
    def verdict(self) -> str:
        if self.passed is None:
            return "n/a" if self.figure in ("not available", "error") else "info"
        return "pass" if self.passed else "FAIL"


def error_row(case: str, exc: BaseException) -> Row:
    """A case that could not run still gets its line, with the reason."""
    return Row(case, "error", "-", "-", "error", "-", None, f"{type(exc).__name__}: {exc}")


def median(values: Sequence[float]) -> float:
    return statistics.median(values) if values else float("nan")


def ms(seconds: float) -> str:
    return f"{seconds * 1000:.3f} ms" if seconds < 0.01 else f"{seconds * 1000:.1f} ms"


def signed_ms(seconds: float) -> str:
    return f"{seconds * 1000:+.3f} ms"


def rate(per_second: float) -> str:
    return f"{per_second:,.0f} req/s"


def mib(size: float) -> str:
    return f"{size / (1 << 20):.1f} MiB"


_COLUMNS = ("case", "measure", "direct", "gateway", "figure", "target", "result")


def table(rows: Sequence[Row]) -> str:
    """A Markdown table that also reads well on a terminal (columns padded)."""
    cells = [list(_COLUMNS)] + [
        [r.case, r.measure, r.direct, r.gateway, r.figure, r.target, r.verdict] for r in rows
    ]
    widths = [max(len(line[i]) for line in cells) for i in range(len(_COLUMNS))]

    def line(values: Sequence[str]) -> str:
        return "| " + " | ".join(v.ljust(w) for v, w in zip(values, widths, strict=True)) + " |"

    rule = "|" + "|".join("-" * (w + 2) for w in widths) + "|"
    return "\n".join([line(cells[0]), rule, *(line(c) for c in cells[1:])])


def notes(rows: Sequence[Row]) -> str:
    lines = [f"- {r.case} ({r.measure}): {r.note}" for r in rows if r.note]
    return "\n".join(lines)


def context(settings: str) -> str:
    """Machine, date and run settings, so a result file says where it came from."""
    now = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC")
    return (
        f"{now}; {os.cpu_count()} CPUs ({platform.processor() or platform.machine()}); "
        f"Python {platform.python_version()}; {settings}"
    )


def write_results(path: Path, rows: Sequence[Row], settings: str) -> None:
    body = [
        "# Benchmark results",
        "",
        "Written by `python -m bench`; see `bench/NOTES.md` for method and findings.",
        "",
        context(settings),
        "",
        table(rows),
        "",
    ]
    extra = notes(rows)
    if extra:
        body += ["Notes:", "", extra, ""]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(body), encoding="utf-8")
