"""Many small files: where link calls and request latency, not bandwidth, bound the time (a first deployment's
backfill of run logs, which are often kilobytes to a few MB a day).

LATENCY (50 ms) is added to every DCS call and to every download (links are routed through the emulator's relay,
`proxy_downloads`, which waits before it answers); the emulator runs in a process of its own, and writes each
finished day's log into the store before the measurement (`reuse_final_logs`), so its collections cost it next
to nothing, as DCS's own work is not the function's. Log sizes are drawn per node and day, log-uniform, 50 KB to
2 MB (`add_instance(log_size_max=...)`, seeded by fixed instance ids: the same files every run). Default
configuration of the functions otherwise (COPY_CONCURRENCY, gzip), on the local cloud's environment
(COLLECT_SETTLE_SECONDS=0).

- **one job**: a cluster of 8 shards x 2 replicas (16 nodes) with 8 days of logs (the 7 finished days DCS keeps
  and the current one, archived as a partial copy with ARCHIVE_OPEN_DAY=true). The collector runs first, not
  measured; the figure is the archiver's invocation for the job (delivered by the local OBS trigger).
- **fleet**: 200 instances (70 single, 70 master/standby, 60 clusters of 3 x 2: 570 nodes), 7 finished days
  each (the current day has no log yet, so nothing partial), a first day: empty archive, default configuration
  (QUERY_TIME_AUTO reaches back 7 days). The whole pipeline: the collector, then the archiver for every job, one
  invocation at a time, as the local trigger delivers them (on the platform each job has its own invocation).

Latency bound: for each archiver job, ceil(files / COPY_CONCURRENCY) rounds of (link call + download) latency,
plus its fixed DCS calls (one ListRedislog page) x latency; for the collector, its DCS calls x latency /
COLLECT_CONCURRENCY. Everything else (OBS requests, gzip, hashing, the SDKs' own work) is outside the bound.
Each run uses fresh archive and queue buckets on the same emulator (later runs list the earlier collections too).
"""

from __future__ import annotations

import math
import os
import time
import uuid
from datetime import datetime, timedelta, timezone
from typing import Any

from tests.bench.common import MiB, Row, median, progress, quick, runs
from tests.localcloud.emulator_process import EmulatorProcess, store_spec
from tests.localcloud.functiongraph import Context, LocalObsTrigger
from tests.localcloud.pipeline import LocalCloud

LATENCY = 0.05
LOG_TZ = timezone(timedelta(hours=8))  # the emulator's and the functions' default LOG_TIMEZONE
TAGS = {"archive": "yes"}
SIZES = {"log_size": 50_000, "log_size_max": 2_000_000}
TARGET = 1.3


def _tuning() -> dict[str, str]:
    """BENCH_COPY_CONCURRENCY measures another COPY_CONCURRENCY than the default."""
    value = os.environ.get("BENCH_COPY_CONCURRENCY")
    return {"COPY_CONCURRENCY": value} if value else {}


def _emulator(seaweed, instances: list[dict], now: datetime) -> EmulatorProcess:
    emu = EmulatorProcess({"store": store_spec(seaweed),
                           "emulator": {"ak": seaweed.access_key, "sk": seaweed.secret_key,
                                        "now": now.isoformat()},
                           "knobs": {"proxy_downloads": True, "reuse_final_logs": True},
                           "instances": instances}).start()
    started = time.monotonic()
    stored = emu.store_final_logs()
    progress(f"smallfiles: {stored} finished-day logs written into the store in {time.monotonic() - started:.0f} s")
    emu.faults.latency("*", LATENCY)
    return emu


def _cloud(seaweed, emu: EmulatorProcess, **overrides: str) -> LocalCloud:
    suffix = uuid.uuid4().hex[:8]
    cloud = LocalCloud(seaweed, emu, archive_bucket=f"bench-sa-{suffix}", queue_bucket=f"bench-sq-{suffix}")
    cloud.create_buckets()
    os.environ.update({**cloud.env, **overrides})
    return cloud


def _trigger(cloud: LocalCloud, timings: list[float], **overrides: str) -> LocalObsTrigger:
    """The local OBS trigger on the queue, with each archiver invocation timed."""
    handler = cloud.archiver_handler(**overrides)

    def timed_handler(event: Any, context: Context) -> dict:
        start = time.perf_counter()
        try:
            return handler(event, context)
        finally:
            timings.append(time.perf_counter() - start)

    return LocalObsTrigger(cloud.obs_client, cloud.queue_bucket, cloud.config(**overrides).queue_prefix + "pending/",
                           timed_handler, context_factory=lambda: cloud.context(900, "archiver"))


def _archived(deliveries: list) -> list[int]:
    bad = [d for d in deliveries if not d.ok or d.result["jobs"][0].get("outcome") != "done"]
    assert not bad, bad[0].traceback or bad[0].result
    return [d.result["archived"] for d in deliveries]


def _job_bound(files: int, concurrency: int) -> float:
    """One job's latency bound: its rounds of (link call + download), and one ListRedislog page."""
    return math.ceil(files / concurrency) * 2 * LATENCY + LATENCY


# --------------------------------------------------------------------------------------------------- one job

def bench_one_job(seaweed) -> list[Row]:
    shards = 2 if quick() else 8
    emu = _emulator(seaweed, [{"name": "big-cluster", "instance_id": "00000000-0000-4000-8000-000000000016",
                               "tags": TAGS, "cache_mode": "cluster", "shards": shards, "replicas": 2, **SIZES}],
                    datetime.now(timezone.utc))
    overrides = {"ARCHIVE_OPEN_DAY": "true", **_tuning()}
    walls, bounds, files, sizes = [], [], 0, 0
    concurrency = 0
    try:
        for run in range(runs()):
            cloud = _cloud(seaweed, emu, **overrides)
            try:
                concurrency = cloud.config(**overrides).copy_concurrency
                cloud.run_collector(**overrides)
                timings: list[float] = []
                emu.reset_counters()
                deliveries = _trigger(cloud, timings, **overrides).pump()
                (files,) = _archived(deliveries)
                sizes = deliveries[0].result["bytes_in"]
                ops = emu.op_counts()
                assert ops["CreateRedislogDownloadLink"] == files and ops["Download"] == files, ops
                walls.append(timings[0])
                bounds.append(_job_bound(files, concurrency))
                progress(f"smallfiles one job run {run + 1}: {files} files, {sizes / MiB:.0f} MiB in "
                         f"{walls[-1]:.2f} s (bound {bounds[-1]:.2f} s); DCS calls {dict(ops)}")
            finally:
                cloud.close()
    finally:
        emu.stop()
    wall, bound = median(walls), median(bounds)
    ratio = median([w / b for w, b in zip(walls, bounds)])
    nodes = shards * 2
    return [Row("small files", f"one job: {nodes} nodes × 8 days, {files} files of 50 KB–2 MB ({sizes / MiB:.0f} MiB)",
                f"{wall:.2f} s, {files / wall:.0f} files/s",
                f"bound {bound:.2f} s ({files} × {2 * LATENCY * 1000:.0f} ms / {concurrency} + "
                f"{LATENCY * 1000:.0f} ms)", ratio, f"≤ {TARGET}", ratio <= TARGET)]


# --------------------------------------------------------------------------------------------------- fleet

def _fleet(instances: int, today: str) -> list[dict]:
    """The mix (per 20: 7 single, 7 master/standby, 6 clusters 3 x 2), the current day without a log."""
    per = max(1, instances // 20)
    mix = [(7 * per, {"cache_mode": "single"}), (7 * per, {"cache_mode": "ha", "replicas": 2}),
           (instances - 14 * per, {"cache_mode": "cluster", "shards": 3, "replicas": 2})]
    return [{"count": count, "name": f"{extra['cache_mode']}-{{i}}", "tags": TAGS, "missing_days": [today],
             "instance_id": f"00000000-0000-4000-8{k:03d}-{{i:012d}}", **SIZES, **extra}
            for k, (count, extra) in enumerate(mix)]


def bench_fleet(seaweed) -> list[Row]:
    instances = 20 if quick() else int(os.environ.get("BENCH_FLEET_INSTANCES", "200"))
    now = datetime.now(timezone.utc)
    emu = _emulator(seaweed, _fleet(instances, now.astimezone(LOG_TZ).date().isoformat()), now)
    walls, bounds, files_runs, phases = [], [], [], []
    try:
        for run in range(runs()):
            overrides = _tuning()
            cloud = _cloud(seaweed, emu, **overrides)
            try:
                config = cloud.config(**overrides)
                timings: list[float] = []
                trigger = _trigger(cloud, timings, **overrides)
                emu.reset_counters()
                start = time.perf_counter()
                summary = cloud.run_collector(**overrides)
                collected = time.perf_counter()
                collector_calls = sum(emu.op_counts().values())
                deliveries = trigger.pump()
                wall = time.perf_counter() - start
                archived = _archived(deliveries)
                assert summary["jobs_enqueued"] == instances == len(deliveries), summary
                collector_bound = collector_calls * LATENCY / config.collect_concurrency
                archiver_bound = sum(_job_bound(n, config.copy_concurrency) for n in archived)
                walls.append(wall)
                bounds.append(collector_bound + archiver_bound)
                files_runs.append(sum(archived))
                phases.append((collected - start, collector_bound, wall - (collected - start), archiver_bound))
                progress(f"smallfiles fleet run {run + 1}: {sum(archived)} files in {wall:.1f} s "
                         f"(collector {phases[-1][0]:.1f} s, bound {collector_bound:.1f}; archiver "
                         f"{phases[-1][2]:.1f} s in {len(deliveries)} invocations, bound {archiver_bound:.1f})")
            finally:
                cloud.close()
    finally:
        emu.stop()
    wall, bound, files = median(walls), median(bounds), median(files_runs)
    ratio = median([w / b for w, b in zip(walls, bounds)])
    col, col_bound, arc, arc_bound = (median([p[i] for p in phases]) for i in range(4))
    return [Row("small files", f"fleet: {instances} instances' first day, {files:.0f} files of 50 KB–2 MB, "
                               "collector + archiver (one invocation at a time)",
                f"{wall:.0f} s, {files / wall:.1f} files/s (collector {col:.1f} s, archiver {arc:.0f} s)",
                f"bound {bound:.0f} s, {files / bound:.1f} files/s (collector {col_bound:.1f} s, "
                f"archiver {arc_bound:.0f} s)", ratio, f"≤ {TARGET}", ratio <= TARGET)]


def bench_smallfiles(seaweed) -> list[Row]:
    return bench_one_job(seaweed) + bench_fleet(seaweed)
