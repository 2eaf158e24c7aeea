"""Memory under concurrency: peak RSS of one archiver invocation copying COPY_CONCURRENCY large files at once,
against the archiver's configured memory (template.yaml, `memorySize` of redis-runlog-archiver).

One master/standby instance with COPY_CONCURRENCY nodes, each with one finished day of SIZE bytes of generated
Redis log (the emulator, in a process of its own, writes them into the store beforehand). The collector runs
once (not measured); then, per compression and run, the job is put back under `pending/` and one archiver
invocation handles it in a fresh interpreter (`memory_child`: the handler's imports, configuration and service,
one classic OBS event), which copies the COPY_CONCURRENCY files at once into fresh archive and queue buckets and
reports its VmHWM. Downloads come straight from the store's presigned links (no added latency: the copies overlap most).

Target: peak RSS at most MARGIN of the configured memory, the rest left to the runtime around the handler and to
the allocator's fragmentation over a long invocation.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import uuid
from datetime import datetime, timedelta, timezone

from tests.bench.common import ROOT, MiB, Row, median, progress, quick, runs
from tests.localcloud.emulator_process import EmulatorProcess, store_spec
from tests.localcloud.pipeline import LocalCloud

LOG_TZ = timezone(timedelta(hours=8))  # the emulator's and the functions' default LOG_TIMEZONE
TAGS = {"archive": "yes"}
MARGIN = 0.75


def configured_memory_mb() -> int:
    """The archiver's memorySize in template.yaml."""
    text = (ROOT / "template.yaml").read_text()
    block = text[text.index("functionName: redis-runlog-archiver"):]
    return int(re.search(r"memorySize:\s*(\d+)", block).group(1))


def _child(spec: dict) -> dict:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.run([sys.executable, "-m", "tests.bench.memory_child", json.dumps(spec)], cwd=str(ROOT),
                          env=env, capture_output=True, text=True, timeout=900)
    if proc.returncode != 0:
        raise RuntimeError(f"archiver child failed: {proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def bench_memory(seaweed) -> list[Row]:
    size = 64 * MiB if quick() else int(os.environ.get("BENCH_MEMORY_MB", "512")) * MiB
    memory_mb = configured_memory_mb()
    now = datetime.now(timezone.utc)
    yesterday = (now.astimezone(LOG_TZ).date() - timedelta(days=1)).isoformat()
    suffix = uuid.uuid4().hex[:8]
    emu = EmulatorProcess({"store": store_spec(seaweed),
                           "emulator": {"ak": seaweed.access_key, "sk": seaweed.secret_key, "now": now.isoformat()},
                           "knobs": {"reuse_final_logs": True}, "instances": []}).start()
    rows = []
    try:
        cloud = LocalCloud(seaweed, emu, archive_bucket=f"bench-ma-{suffix}", queue_bucket=f"bench-mq-{suffix}")
        cloud.create_buckets()
        # BENCH_COPY_CONCURRENCY measures another COPY_CONCURRENCY than the default
        tuning = {"COPY_CONCURRENCY": os.environ["BENCH_COPY_CONCURRENCY"]} \
            if os.environ.get("BENCH_COPY_CONCURRENCY") else {}
        os.environ.update(cloud.env)
        concurrency = cloud.config(**tuning).copy_concurrency
        emu.add_instance(name="big-logs", tags=TAGS, cache_mode="ha", replicas=concurrency, log_days=[yesterday],
                         log_size=size)
        progress(f"memory: writing {concurrency} logs of {size // MiB} MiB into the store")
        emu.store_final_logs(threads=1)
        summary = cloud.run_collector()
        assert summary["jobs_enqueued"] == 1, summary
        (job_key,) = cloud.queue_keys("pending")
        job = cloud.obs.get_bytes(cloud.queue_bucket, job_key)
        for compression in ("gzip", "none"):
            peaks, idles, seconds = [], [], []
            for run in range(runs()):
                # fresh buckets: nothing archived yet, and no record of an earlier run in the queue's prefix
                archive, queue = (f"bench-m{kind}-{uuid.uuid4().hex[:10]}" for kind in "aq")
                for bucket in (archive, queue):
                    cloud.obs_client.createBucket(bucket)
                cloud.obs.put_bytes(queue, job_key, job)
                try:
                    result = _child({"env": {**cloud.env, **tuning, "ARCHIVE_BUCKET": archive, "QUEUE_BUCKET": queue,
                                             "ARCHIVE_COMPRESSION": compression},
                                     "now": now.isoformat(), "queue_bucket": queue, "job_key": job_key,
                                     "memory_mb": memory_mb})
                finally:
                    for bucket in (archive, queue):
                        seaweed.delete_bucket(bucket)
                assert result["archived"] == concurrency and result["outcomes"] == {"done": 1}, result
                peaks.append(result["peak_rss_kib"] / 1024)
                idles.append(result["idle_rss_kib"] / 1024)
                seconds.append(result["seconds"])
                progress(f"memory {compression} run {run + 1}: peak {peaks[-1]:.0f} MB, {result['archived']} files "
                         f"of {size // MiB} MiB in {seconds[-1]:.1f} s")
            peak = max(peaks)
            limit = memory_mb * MARGIN
            rows.append(Row("memory", f"one archiver invocation, {concurrency} × {size // MiB} MiB {compression} at "
                                      f"once (COPY_CONCURRENCY {concurrency})",
                            f"peak RSS {peak:.0f} MB (max of runs; {min(idles):.0f} MB after imports), "
                            f"copies done in {median(seconds):.1f} s",
                            f"{memory_mb} MB configured (template.yaml)", peak / memory_mb,
                            f"≤ {MARGIN} ({limit:.0f} MB)", peak <= limit))
        cloud.close()
    finally:
        emu.stop()
    return rows
