"""Collector fan-out: wall time of one collector run against the ideal (DCS calls served x latency / concurrency).

BENCH_COLLECTOR_C (default 1,8,32) picks the concurrencies measured.

Instances: half clusters of 3 shards x 2 replicas (ShowInstance, ListRedislog, ListGroupReplicationInfo and 6
CreateRedislog each), half single-node (ShowInstance, ListRedislog, CreateRedislog), all tagged, `log_days=[]`
so a collection copies nothing. Every DCS call waits LATENCY in the emulator, which runs in a process of its own
(`tests.localcloud.emulator_process`): the measured process holds only the collector (and its SDK clients), as on
the platform. Concurrency 1 runs on a proportional subset.

Every measured run is an ordinary day's: the day before was collected and its jobs archived (no latency, not
measured), so each instance's ledger is there (the collector may take from it what does not change from day to
day, such as the cache mode); then the emulator's clock moves on one day, the collector runs with the latency
(measured), and the archiver consumes its jobs again and the sweep timer runs (not measured), so the next run's
sweep finds an empty queue and the settled days' manifests written.

A second row per concurrency, for information, sets the run against what the machine can do: the CPU used meanwhile
by the collector, the emulator and the store (all on this machine's cores, where on the platform DCS and OBS are
elsewhere), over the cores. When that is longer than the ideal, no collector can reach the ideal here.
"""

from __future__ import annotations

import os
import time
import uuid
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

from tests.bench.common import Row, median, process_cpu, progress, quick, runs
from tests.localcloud.emulator_process import EmulatorProcess, store_spec
from tests.localcloud.pipeline import LocalCloud

LATENCY = 0.05
TAGS = {"archive": "yes"}
TARGET = 1.3


def _instances(count: int) -> list[dict]:
    """The mix, alternating, as emulator-spec entries."""
    return [{"name": f"c{i}", "tags": TAGS, "cache_mode": "cluster", "shards": 3, "replicas": 2, "log_days": []}
            if i % 2 == 0 else {"name": f"s{i}", "tags": TAGS, "cache_mode": "single", "log_days": []}
            for i in range(count)]


def _cloud(seaweed, instances: int) -> tuple[LocalCloud, Counter]:
    """The local cloud after its first day (collected and archived, not measured); that day's DCS calls."""
    emu = EmulatorProcess({"store": store_spec(seaweed),
                           "emulator": {"ak": seaweed.access_key, "sk": seaweed.secret_key},
                           "instances": _instances(instances)}).start()
    suffix = uuid.uuid4().hex[:8]
    cloud = LocalCloud(seaweed, emu, archive_bucket=f"bench-fa-{suffix}", queue_bucket=f"bench-fq-{suffix}")
    cloud.create_buckets()
    os.environ.update(cloud.env)  # credentials come from the environment off the platform
    summary = cloud.run_collector(COLLECT_CONCURRENCY="32")  # the day before: no latency, not measured
    assert summary["jobs_enqueued"] == instances, summary
    first_day = emu.op_counts()
    _archive_the_day(cloud)
    return cloud, first_day


def _archive_the_day(cloud: LocalCloud) -> None:
    """The archiver consumes every pending job (invocations in parallel, as the platform runs them; no latency),
    then the sweep timer runs once, as it does every 30 minutes on the platform: it writes the day's manifest and
    the report, so the next day's collect run finds what it finds on the platform."""
    trigger = cloud.trigger()
    with ThreadPoolExecutor(max_workers=8) as pool:
        deliveries = list(pool.map(lambda key: trigger.deliver(trigger.event_for(key), key),
                                   cloud.queue_keys("pending")))
    bad = [d for d in deliveries if not d.ok]
    assert not bad, bad[0].traceback
    left = cloud.queue_keys("pending")
    assert not left, f"{len(left)} jobs still pending after the archiver"
    swept = cloud.run_collector(action="sweep")
    assert swept["manifests_written"] and swept["report_written"], swept


def _measure(cloud: LocalCloud, instances: int, concurrency: int, n_runs: int) -> dict:
    emu = cloud.emulator
    walls, ideals, calls, peaks, cpus = [], [], [], [], []
    by_op: Counter = Counter()
    for run in range(n_runs):
        emu.clock.advance(days=1)
        emu.faults.latency("*", LATENCY)
        emu.reset_counters()
        before = _cpu(cloud)
        start = time.perf_counter()
        summary = cloud.run_collector(COLLECT_CONCURRENCY=str(concurrency))
        seconds = time.perf_counter() - start
        cpus.append({k: v - before[k] for k, v in _cpu(cloud).items()})
        emu.faults.latency("*", 0)
        assert summary["jobs_enqueued"] == instances, summary
        by_op = emu.op_counts()
        _archive_the_day(cloud)
        served = sum(by_op.values())
        walls.append(seconds)
        calls.append(served)
        ideals.append(served * LATENCY / concurrency)
        peaks.append(emu.peak_in_flight)
        progress(f"collector c={concurrency} run {run + 1}/{n_runs}: {seconds:.1f} s, {served} calls, "
                 f"ideal {ideals[-1]:.1f} s, peak in flight {peaks[-1]}, phases {summary.get('phases_s')}, CPU s "
                 + ", ".join(f"{k} {v:.1f}" for k, v in cpus[-1].items()))
    cores = os.cpu_count() or 1
    floors = [max(i, sum(c.values()) / cores) for i, c in zip(ideals, cpus)]
    return {"wall": median(walls), "ideal": median(ideals), "calls": median(calls), "peak": max(peaks),
            "ratio": median([w / i for w, i in zip(walls, ideals)]), "by_op": by_op,
            "cpu": {k: median([c[k] for c in cpus]) for k in cpus[0]}, "floor": median(floors),
            "cores_ratio": median([w / f for w, f in zip(walls, floors)]), "cores": cores}


def _cpu(cloud: LocalCloud) -> dict[str, float]:
    """CPU seconds used so far by the collector (this process: the bench does nothing else meanwhile), the
    emulator's process and the store's."""
    return {"collector": time.process_time(), "emulator": process_cpu(cloud.emulator.pid),
            "store": process_cpu(cloud.seaweed.process.pid)}


def _cores_row(m: dict, case: str) -> Row:
    """For information: the run against what the machine can do, when the collector, the emulator and the store
    share its cores (on the platform DCS and OBS run elsewhere): the ideal, or every process's CPU over the cores,
    whichever is longer."""
    cpu = m["cpu"]
    return Row("collector/cores", case,
               f"{m['wall']:.1f} s; CPU {sum(cpu.values()):.1f} s (collector {cpu['collector']:.1f} + emulator "
               f"{cpu['emulator']:.1f} + store {cpu['store']:.1f})",
               f"max(ideal {m['ideal']:.1f} s, CPU / {m['cores']} cores) = {m['floor']:.1f} s",
               m["cores_ratio"], "informational", None)


def _per_instance(by_op: Counter, instances: int) -> str:
    total = sum(by_op.values()) / instances
    parts = ", ".join(f"{op} {n / instances:.{3 if n < instances / 10 else 2}f}" for op, n in by_op.most_common())
    return f"{total:.2f}: {parts}"


def bench_collector(seaweed) -> list[Row]:
    full = 200 if quick() else 2000
    subset = 20 if quick() else int(os.environ.get("BENCH_C1_INSTANCES", "100"))
    rows = []
    wanted = [int(c) for c in os.environ.get("BENCH_COLLECTOR_C", "1,8,32").split(",")]
    plan = [(n, cs) for n, cs in ((subset, [c for c in wanted if c == 1]), (full, [c for c in wanted if c > 1]))
            if cs]
    for instances, concurrencies in plan:
        progress(f"collector: {instances} instances (emulator in its own process)")
        cloud, first_day = _cloud(seaweed, instances)
        try:
            for c in concurrencies:
                m = _measure(cloud, instances, c, runs())
                case = f"c={c}, {instances} inst" + (" (subset, same mix)" if instances < full else "")
                rows.append(Row("collector", case,
                                f"{m['wall']:.1f} s, peak in flight {m['peak']}",
                                f"ideal {m['ideal']:.1f} s ({m['calls']:.0f} calls × {LATENCY * 1000:.0f} ms / {c})",
                                m["ratio"], f"≤ {TARGET}" if c > 1 else "—", m["ratio"] <= TARGET if c > 1 else None))
                if c > 1:
                    rows.append(_cores_row(m, case))
                if c == 8:
                    rows.append(Row("collector", "DCS calls / instance, ordinary day", _per_instance(m["by_op"],
                                                                                                  instances),
                                    f"first day (no ledger yet): {_per_instance(first_day, instances)}", None, "—",
                                    None))
        finally:
            cloud.close()
            cloud.emulator.stop()
    return rows
