"""`make bench`: every benchmark on one local cloud, one table on stdout (progress on stderr).

BENCH_RUNS (default 3) runs per figure, medians reported; BENCH_QUICK=1 for small sizes and one run;
BENCH_ONLY=copy,collector,repeat,coldstart,smallfiles,memory,digest to run a subset.
"""

from __future__ import annotations

import os
import platform
import time

from tests.bench.common import Row, progress, quick, runs, table
from tests.localcloud.seaweed import SeaweedFS

SECTIONS = ("copy", "collector", "repeat", "coldstart", "smallfiles", "memory", "digest")


def main() -> None:
    only = {s.strip() for s in os.environ.get("BENCH_ONLY", ",".join(SECTIONS)).split(",")}
    unknown = only - set(SECTIONS)
    if unknown:
        raise SystemExit(f"BENCH_ONLY: unknown section(s) {', '.join(sorted(unknown))}; one of {', '.join(SECTIONS)}")
    rows: list[Row] = []
    started = time.monotonic()
    if "coldstart" in only:
        from tests.bench.coldstart import bench_coldstart

        rows += bench_coldstart()
    if "digest" in only:  # in-process, no store needed
        from tests.bench.digest import bench_digest

        rows += bench_digest()
    with SeaweedFS() as seaweed:
        if "copy" in only:
            from tests.bench.copy import bench_copy

            rows += bench_copy(seaweed)
        if "collector" in only:
            from tests.bench.collector import bench_collector

            rows += bench_collector(seaweed)
        if "repeat" in only:
            from tests.bench.repeat import bench_repeat

            rows += bench_repeat(seaweed)
        if "smallfiles" in only:
            from tests.bench.smallfiles import bench_smallfiles

            rows += bench_smallfiles(seaweed)
        if "memory" in only:
            from tests.bench.memory import bench_memory

            rows += bench_memory(seaweed)
    order = ["copy", "copy/cores", "peak RSS", "digest", "small files", "collector", "collector/cores",
             "repeat run", "memory",
             "cold start"]
    rows.sort(key=lambda r: order.index(r.benchmark) if r.benchmark in order else len(order))
    progress(f"done in {time.monotonic() - started:.0f} s")
    print(f"Benchmarks {time.strftime('%Y-%m-%d')} on {os.cpu_count()} cores, Python {platform.python_version()}, "
          f"medians of {runs()} run(s){' (BENCH_QUICK)' if quick() else ''}")
    print(table(rows))


if __name__ == "__main__":
    main()
