"""Repeat-run cost: the whole pipeline (collector, then the archiver fired by the OBS trigger) twice on the same
scenario and the same day, in the default configuration (QUERY_TIME 1 widened by QUERY_TIME_AUTO, so the first
run reaches back over the 7 days DCS keeps); what the second run costs per instance.

DCS calls are counted by the emulator (downloads are routed through it, `proxy_downloads`, so each fetch of a
link is counted too); bytes copied come from the archiver summaries (`bytes_in`); OBS requests are the
esdk-obs-python ObsClient method calls made by the functions' own clients (each one HTTP request, retries
aside), counted by a proxy that `shared.obs.build_client` hands to `shared.wiring` for the duration; the local
trigger's own listing is the platform's, not counted. Nothing in shared/ is changed.
"""

from __future__ import annotations

import os
import threading
import uuid
from collections import Counter
from contextlib import contextmanager
from typing import Any, Iterator

import shared.obs
from tests.bench.common import Row, progress
from tests.localcloud.dcs import DcsEmulator
from tests.localcloud.pipeline import LocalCloud

TAGS = {"archive": "yes"}


class CountingClient:
    """An ObsClient stand-in that counts each public method call, then delegates."""

    def __init__(self, client: Any, counter: Counter, lock: threading.Lock) -> None:
        self._client, self._counter, self._lock = client, counter, lock

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._client, name)
        if name.startswith("_") or name == "close" or not callable(attr):
            return attr

        def call(*args: Any, **kwargs: Any) -> Any:
            with self._lock:
                self._counter[name] += 1
            return attr(*args, **kwargs)

        return call


@contextmanager
def counting_obs() -> Iterator[Counter]:
    counter: Counter = Counter()
    lock = threading.Lock()
    original = shared.obs.build_client
    proxies: dict[int, CountingClient] = {}

    def build_client(*args: Any, **kwargs: Any) -> Any:
        client = original(*args, **kwargs)
        return proxies.setdefault(id(client), CountingClient(client, counter, lock))

    shared.obs.build_client = build_client
    try:
        yield counter
    finally:
        shared.obs.build_client = original


def _scenario(emu: DcsEmulator) -> int:
    count = 0
    for i in range(7):
        emu.add_instance(name=f"single{i}", tags=TAGS, cache_mode="single")
        emu.add_instance(name=f"ha{i}", tags=TAGS, cache_mode="ha", replicas=2)
        count += 2
    for i in range(6):
        emu.add_instance(name=f"cluster{i}", tags=TAGS, cache_mode="cluster", shards=3, replicas=2)
        count += 1
    return count


def _run(cloud: LocalCloud, trigger: Any, counter: Counter) -> dict:
    emu = cloud.emulator
    emu.reset_counters()
    counter.clear()
    collected = cloud.run_collector()
    obs_collector = Counter(counter)
    deliveries = trigger.pump()
    bad = [d for d in deliveries if not d.ok]
    assert not bad, bad[0].traceback
    return {
        "dcs": Counter(s.op for s in emu.requests), "obs": Counter(counter), "obs_collector": obs_collector,
        "bytes_in": sum(d.result["bytes_in"] for d in deliveries), "jobs": len(deliveries),
        "archived": sum(d.result["archived"] for d in deliveries), "matched": collected["matched"],
    }


SHORT = {"listObjects": "list", "putContent": "put", "getObject": "get", "deleteObject": "delete",
         "getObjectMetadata": "head", "copyObject": "copy"}


def _per(counter: Counter, n: int) -> str:
    return ", ".join(f"{SHORT.get(op, op)} {v / n:.2f}" for op, v in sorted(counter.items(), key=lambda kv: -kv[1]))


def bench_repeat(seaweed) -> list[Row]:
    emu = DcsEmulator(seaweed, ak=seaweed.access_key, sk=seaweed.secret_key).start()
    emu.proxy_downloads = True
    suffix = uuid.uuid4().hex[:8]
    cloud = LocalCloud(seaweed, emu, archive_bucket=f"bench-ra-{suffix}", queue_bucket=f"bench-rq-{suffix}")
    cloud.create_buckets()
    os.environ.update(cloud.env)
    try:
        n = _scenario(emu)
        with counting_obs() as counter:
            trigger = cloud.trigger()
            progress(f"repeat: first run ({n} instances, 8 days of logs, default configuration)")
            first = _run(cloud, trigger, counter)
            # the sweep timer, as the platform runs it between two collector runs: it writes the settled days'
            # manifests and the report, once a day (counted apart: a daily cost, not a repeat cost)
            progress("repeat: the sweep timer (manifests and report of the settled days)")
            counter.clear()
            swept = cloud.run_collector(action="sweep")
            daily = Counter(counter)
            progress("repeat: second run")
            second = _run(cloud, trigger, counter)
    finally:
        cloud.close()
        emu.stop()
    assert first["matched"] == n and second["matched"] == n
    rows = []
    lists = second["dcs"]["ListRedislog"] / n
    other = Counter({k: v for k, v in second["dcs"].items() if k not in ("CreateRedislogDownloadLink", "Download")})
    rows.append(Row("repeat run", f"2nd run: DCS calls / instance ({n} inst)", _per(other, n),
                    "1st run: the same" if all(first["dcs"][k] == v for k, v in other.items())
                    else f"1st run: {_per(Counter({k: v for k, v in first['dcs'].items() if k in other}), n)}", None,
                    "ListRedislog ≤ 1 + pages (1 page here)", lists <= 2))
    links, downloads = second["dcs"]["CreateRedislogDownloadLink"], second["dcs"]["Download"]
    rows.append(Row("repeat run", "2nd run: link calls, downloads, bytes copied",
                    f"{links} links, {downloads} downloads, {second['bytes_in']} B",
                    f"1st run: {first['dcs']['CreateRedislogDownloadLink']} links, {first['dcs']['Download']} "
                    f"downloads, {first['bytes_in'] / 2**20:.1f} MiB, {first['archived']} files",
                    None, "0, 0, 0", links == 0 and downloads == 0 and second["bytes_in"] == 0))
    obs_total = sum(second["obs"].values())
    archiver = second["obs"] - second["obs_collector"]
    rows.append(Row("repeat run", "2nd run: OBS requests / instance",
                    f"{obs_total / n:.2f}: collector {_per(second['obs_collector'], n)}; archiver "
                    f"{_per(archiver, n)}",
                    f"1st run: {sum(first['obs'].values()) / n:.2f}", None, "≤ 2", obs_total / n <= 2))
    rows.append(Row("repeat run", "once a day: manifests + report, OBS requests / instance",
                    f"{sum(daily.values()) / n:.2f}: {_per(daily, n)} ({len(swept['manifests_written'])} manifests)",
                    "—", None, "informational", True))
    return rows
