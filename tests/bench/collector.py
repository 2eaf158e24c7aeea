"""Collector fan-out: wall time of one collector run against the ideal (DCS calls served x latency / concurrency).

Instances: half clusters of 3 shards x 2 replicas (ShowInstance, ListRedislog, ListGroupReplicationInfo and 6
CreateRedislog each), half single-node (ShowInstance, ListRedislog, CreateRedislog), all tagged, `log_days=[]`
so a collection copies nothing. Every DCS call waits LATENCY in the emulator, which runs in a process of its own
(`tests.localcloud.emulator_process`): the measured process holds only the collector (and its SDK clients), as on
the platform. Each run enqueues into a fresh queue bucket, so no run's sweep sees another's jobs; the archive
bucket stays empty, so every run is an ordinary day's (the calls per instance are the same whether the window is
one day or widened to seven). Concurrency 1 runs on a proportional subset.
"""

from __future__ import annotations

import os
import uuid
from collections import Counter

from tests.bench.common import Row, median, progress, quick, runs, timed
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


def _cloud(seaweed, instances: int) -> LocalCloud:
    emu = EmulatorProcess({"store": store_spec(seaweed),
                           "emulator": {"ak": seaweed.access_key, "sk": seaweed.secret_key},
                           "instances": _instances(instances), "latency": {"*": LATENCY}}).start()
    suffix = uuid.uuid4().hex[:8]
    cloud = LocalCloud(seaweed, emu, archive_bucket=f"bench-fa-{suffix}", queue_bucket=f"bench-fq-{suffix}")
    cloud.create_buckets()
    os.environ.update(cloud.env)  # credentials come from the environment off the platform
    return cloud


def _measure(cloud: LocalCloud, instances: int, concurrency: int, n_runs: int) -> dict:
    emu = cloud.emulator
    walls, ideals, calls, peaks = [], [], [], []
    by_op: Counter = Counter()
    for run in range(n_runs):
        queue = f"bench-q{concurrency}-{run}-{uuid.uuid4().hex[:6]}"
        cloud.obs_client.createBucket(queue)
        emu.reset_counters()
        seconds, summary = timed(cloud.run_collector, COLLECT_CONCURRENCY=str(concurrency), QUEUE_BUCKET=queue)
        assert summary["jobs_enqueued"] == instances, summary
        by_op = emu.op_counts()
        served = sum(by_op.values())
        walls.append(seconds)
        calls.append(served)
        ideals.append(served * LATENCY / concurrency)
        peaks.append(emu.peak_in_flight)
        progress(f"collector c={concurrency} run {run + 1}/{n_runs}: {seconds:.1f} s, {served} calls, "
                 f"ideal {ideals[-1]:.1f} s, peak in flight {peaks[-1]}")
    return {"wall": median(walls), "ideal": median(ideals), "calls": median(calls), "peak": max(peaks),
            "ratio": median([w / i for w, i in zip(walls, ideals)]), "by_op": by_op}


def _per_instance(by_op: Counter, instances: int) -> str:
    total = sum(by_op.values()) / instances
    parts = ", ".join(f"{op} {n / instances:.{3 if n < instances / 10 else 2}f}" for op, n in by_op.most_common())
    return f"{total:.2f}: {parts}"


def bench_collector(seaweed) -> list[Row]:
    full = 200 if quick() else 2000
    subset = 20 if quick() else int(os.environ.get("BENCH_C1_INSTANCES", "100"))
    rows = []
    plan = [(subset, [1]), (full, [8, 32])]
    for instances, concurrencies in plan:
        progress(f"collector: {instances} instances (emulator in its own process)")
        cloud = _cloud(seaweed, instances)
        try:
            for c in concurrencies:
                m = _measure(cloud, instances, c, runs())
                case = f"c={c}, {instances} inst" + (" (subset, same mix)" if instances < full else "")
                rows.append(Row("collector", case,
                                f"{m['wall']:.1f} s, peak in flight {m['peak']}",
                                f"ideal {m['ideal']:.1f} s ({m['calls']:.0f} calls × {LATENCY * 1000:.0f} ms / {c})",
                                m["ratio"], f"≤ {TARGET}" if c > 1 else "—", m["ratio"] <= TARGET if c > 1 else None))
                if c == 8:
                    rows.append(Row("collector", "DCS calls / instance, ordinary day", _per_instance(m["by_op"],
                                                                                                  instances),
                                    "half clusters 3×2 (9 calls), half single (3)", None, "—", None))
        finally:
            cloud.close()
            cloud.emulator.stop()
    return rows
