"""`make demo`: the whole flow on the local cloud, with the functions' real handlers.

Starts SeaweedFS and the DCS emulator, creates a scenario (single-node, master/standby and cluster instances,
a few untagged, eight days of logs), invokes the collector as its timer would, lets the local OBS trigger fire
the archiver for every pending job, prints what was archived and both summaries, and stops what it started.
"""

from __future__ import annotations

import gzip
import importlib.util
import json
import os
import sys
import time
from datetime import timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.localcloud.dcs import DcsEmulator  # noqa: E402
from tests.localcloud.functiongraph import Context, timer_event  # noqa: E402
from tests.localcloud.pipeline import LocalCloud  # noqa: E402
from tests.localcloud.seaweed import SeaweedFS  # noqa: E402


def load_handler(name: str):
    spec = importlib.util.spec_from_file_location(f"{name}_index", ROOT / "functions" / name / "index.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.handler


def scenario(emu: DcsEmulator) -> dict[str, str]:
    """Instance id -> name of the demo's instances; one cluster node set has a day without logs."""
    tags = {"archive-logs": "yes", "env": "prod"}
    made = [
        emu.add_instance(name="orders-cache", tags=tags, cache_mode="single", log_size=48_000),
        emu.add_instance(name="session-store", tags=tags, cache_mode="ha", replicas=2, log_size=64_000),
        emu.add_instance(name="catalog-cluster", tags=tags, cache_mode="cluster", shards=3, replicas=2,
                         log_size=32_000, missing_days=[emu.today() - timedelta(days=3)]),
        emu.add_instance(name="scratch", tags={"env": "dev"}, cache_mode="single"),
        emu.add_instance(name="staging-cache", tags={"archive-logs": "no", "env": "prod"}, cache_mode="ha"),
        emu.add_instance(name="legacy-cache", tags=tags, cache_mode="single", engine_version="3.0"),
    ]
    return {i.instance_id: i.name for i in made}


def main() -> int:
    started = time.monotonic()
    with SeaweedFS() as store:
        emu = DcsEmulator(store, ak=store.access_key, sk=store.secret_key, collection_delay=1.0).start()
        cloud = LocalCloud(store, emu, archive_bucket="demo-redis-log-archive", queue_bucket="demo-redis-log-jobs",
                           tags="archive-logs=yes,env=prod")
        try:
            cloud.create_buckets()
            names = scenario(emu)
            # the functions' environment, as template.yaml sets it; QUERY_TIME=7 takes the whole week on this
            # first run, as a backfill would
            os.environ.update({**cloud.env, "QUERY_TIME": "7", "COLLECT_SETTLE_SECONDS": "2"})

            print("== collector (timer trigger)")
            collector_summary = load_handler("collector")(timer_event({"action": "collect"}),
                                                          Context(function_name="collector", echo_logs=False))
            archiver = load_handler("archiver")
            trigger = cloud.trigger()
            trigger.handler = archiver
            print("== archiver (OBS trigger on the queue's pending/ prefix)")
            deliveries = trigger.drain()
            for d in deliveries:
                if not d.ok:
                    print(f"archiver failed on {d.key}: {d.error}", file=sys.stderr)

            print("\n== archived files")
            print(f"{'instance':<16} {'day':<10} {'group':<8} {'file':<34} {'bytes':>8} {'gz':>7}  sha256")
            total = 0
            for key in cloud.archive_keys():
                raw = cloud.obs.get_bytes(cloud.archive_bucket, key)
                meta = cloud.obs.head(cloud.archive_bucket, key) or {}
                original = gzip.decompress(raw)
                assert len(original) == int(meta["original-size"])
                _, instance_id, day, group, name = key.split("/")
                print(f"{names.get(instance_id, instance_id)[:16]:<16} {day:<10} {group:<8} {name[:34]:<34} "
                      f"{len(original):>8} {len(raw):>7}  {meta['sha256'][:12]}")
                total += 1
            print(f"{total} files in s3://{cloud.archive_bucket}/ ; jobs done: {len(cloud.queue_keys('done'))}, "
                  f"retry: {len(cloud.queue_keys('retry'))}, failed: {len(cloud.queue_keys('failed'))}")

            print("\n== collector summary")
            print(json.dumps(collector_summary, indent=1))
            print("\n== archiver summaries")
            for d in deliveries:
                result = dict(d.result or {})
                print(json.dumps({k: v for k, v in result.items() if k != "jobs"}
                                 | {"jobs": [{k: j.get(k) for k in ("instance_id", "outcome", "files_seen",
                                                                    "archived", "already_archived", "bytes_in",
                                                                    "bytes_out", "skipped")}
                                             for j in result.get("jobs", [])]}, indent=1))
        finally:
            cloud.close()
            emu.stop()
    print(f"\nlocal cloud stopped; demo took {time.monotonic() - started:.1f}s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
