"""Shared helpers of the benchmarks: settings from the environment, medians, progress, the result table."""

from __future__ import annotations

import os
import statistics
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Optional

ROOT = Path(__file__).resolve().parents[2]
MiB = 2**20


def runs(full: int = 3) -> int:
    """BENCH_RUNS, else `full` (1 under BENCH_QUICK)."""
    default = 1 if quick() else full
    return max(1, int(os.environ.get("BENCH_RUNS", str(default))))


def quick() -> bool:
    return os.environ.get("BENCH_QUICK", "") not in ("", "0", "false", "no")


def progress(message: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def median(values: list[float]) -> float:
    return statistics.median(values)


def process_cpu(pid: int) -> float:
    """CPU seconds a process (every thread) has used so far, user and system: /proc/<pid>/stat."""
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()  # after the command name: field 3 (state) is fields[0]
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # fields 14 and 15: utime, stime


def timed(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> tuple[float, Any]:
    """(seconds, result) of fn(*args, **kwargs)."""
    start = time.perf_counter()
    result = fn(*args, **kwargs)
    return time.perf_counter() - start, result


@dataclass
class Row:
    benchmark: str
    case: str
    figure: str
    baseline: str
    ratio: Optional[float]
    target: str
    met: Optional[bool]

    def cells(self) -> list[str]:
        ratio = "—" if self.ratio is None else f"{self.ratio:.2f}"
        met = "—" if self.met is None else ("yes" if self.met else "**no**")
        return [self.benchmark, self.case, self.figure, self.baseline, ratio, self.target, met]


HEADER = ["benchmark", "case", "figure", "baseline", "ratio", "target", "met"]


def table(rows: list[Row]) -> str:
    """A Markdown table (readable as plain text too)."""
    cells = [HEADER] + [r.cells() for r in rows]
    widths = [max(len(c[i]) for c in cells) for i in range(len(HEADER))]

    def line(values: list[str]) -> str:
        return "| " + " | ".join(v.ljust(w) for v, w in zip(values, widths)) + " |"

    out = [line(HEADER), "|" + "|".join("-" * (w + 2) for w in widths) + "|"]
    out += [line(c) for c in cells[1:]]
    return "\n".join(out)
