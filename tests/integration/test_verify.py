"""Manifests written by the pipeline with no human step, and `verify` over them: a clean week passes; an altered
object, a missing object, a broken chain and a missing manifest each fail with a precise message."""

from __future__ import annotations

import gzip
import json

from shared.manifest import manifest_key
from tests.integration.test_cli import cli
from tests.integration.test_collector import QUEUE, TAGS

ARCHIVE = "redis-run-logs/"


def a_week(cloud):
    emu = cloud.emulator
    made = [emu.add_instance(name="orders-cache", tags=TAGS, cache_mode="single"),
            emu.add_instance(name="session-store", tags=TAGS, cache_mode="ha", replicas=2),
            emu.add_instance(name="legacy", tags=TAGS, engine_version="3.0")]
    cloud.run_collector()
    for d in cloud.trigger().drain():
        assert d.ok, d.traceback
    summary = cloud.run_collector(action="sweep")  # the sweep timer: the settled days get their manifests
    return made, summary


def manifest(cloud, day):
    return json.loads(cloud.obs.get_bytes(cloud.archive_bucket, manifest_key(ARCHIVE, day)))


def test_the_pipeline_writes_a_chained_manifest_per_settled_day_and_verify_passes(cloud):
    (single, ha, legacy), summary = a_week(cloud)
    days = cloud.final_days(ha.instance_id)[-7:]
    assert summary["manifests_written"] == days
    first, last = manifest(cloud, days[0]), manifest(cloud, days[-1])
    assert first["previous"] is None and last["previous"]["day"] == days[-2]
    by_id = {i["instance_id"]: i for i in last["instances"]}
    assert set(by_id) == {single.instance_id, ha.instance_id}
    nodes = by_id[ha.instance_id]["nodes"]
    assert {n["node"] for n in nodes} == {n.replication_ip for n in ha.nodes}
    for node in nodes:
        original = cloud.emulator.log_bytes(ha.instance_id, node["node"], days[-1])
        assert node["state"] == "archived" and node["original_size"] == len(original)
        assert cloud.read_archived(node["key"]).data == original
    assert last["skipped"] == [{"instance_id": legacy.instance_id, "name": "legacy",
                                "reason": "Redis 3.0 has no run logs (4.0 or later needed)"}]
    assert last["totals"] == {"archived": 3, "no-log": 0, "failed": 0, "missing": 0}

    again = cloud.run_collector(action="sweep")
    assert again["manifests_written"] == [], "a manifest is written once"

    checked = cli(cloud, "verify", "--deep")
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "7 manifest(s), 21 object(s) checked" in checked.stdout and ": 0 problem(s)" in checked.stdout


def test_verify_names_an_altered_object_a_missing_one_a_broken_chain_and_a_missing_manifest(cloud):
    (single, ha, _), _ = a_week(cloud)
    days = cloud.final_days(ha.instance_id)[-7:]
    obs, bucket = cloud.obs, cloud.archive_bucket

    # an object whose content was replaced, metadata kept
    of_single = next(i for i in manifest(cloud, days[0])["instances"] if i["instance_id"] == single.instance_id)
    altered = of_single["nodes"][0]["key"]
    meta = {k: v for k, v in obs.head(bucket, altered).items() if k in ("sha256", "original-size", "log-day")}
    original = gzip.decompress(obs.get_bytes(bucket, altered))
    forged = gzip.compress(original.replace(b"Ready to accept", b"READY TO ACCEPT"))
    obs.put_bytes(bucket, altered, forged, metadata=meta)
    # an object deleted
    of_ha = next(i for i in manifest(cloud, days[1])["instances"] if i["instance_id"] == ha.instance_id)
    deleted = of_ha["nodes"][0]["key"]
    obs.delete(bucket, deleted)
    # a manifest edited (the next one's chain breaks) and one removed
    edited = manifest(cloud, days[3])
    edited["totals"]["archived"] += 1
    obs.put_json(bucket, manifest_key(ARCHIVE, days[3]), edited)
    obs.delete(bucket, manifest_key(ARCHIVE, days[5]))

    shallow = cli(cloud, "verify")
    assert shallow.returncode == 1
    out = shallow.stdout
    assert f"object missing: {deleted}" in out
    assert f"{days[4]}  chain   MISMATCH" in out and "chain broken: previous.sha256" in out
    assert f"missing: no manifest for {days[5]}" in out
    assert not [x for x in out.splitlines() if x.startswith(days[6])], \
        "the manifest after the missing one chains to it: not blamed a second time"

    deep = cli(cloud, "verify", "--deep", "--instance", single.instance_id)
    assert deep.returncode == 1
    line = next(x for x in deep.stdout.splitlines() if altered in x)
    assert "content altered" in line or "stored size" in line
    assert deleted not in deep.stdout, "--instance limits the objects checked"


def test_a_day_still_missing_a_node_gets_its_manifest_only_when_settled(cloud):
    emu = cloud.emulator
    ha = emu.add_instance(name="session-store", tags=TAGS, cache_mode="ha", replicas=2)
    standby = ha.nodes[1]
    rule = emu.faults.add("CreateRedislog", "error500", replication_id=standby.replication_id)
    env = {"API_MAX_RETRIES": "0", "COLLECT_POLL_SECONDS": "0.1"}
    cloud.run_collector(**env)
    for d in cloud.trigger(**env).drain():
        assert d.ok, d.traceback
    assert cloud.run_collector(action="sweep", **env)["manifests_written"] == []
    rule.times = rule.fired  # the refusals end: the re-driven job collects the standby
    (parked,) = cloud.queue_keys("retry")
    job = json.loads(cloud.obs.get_bytes(cloud.queue_bucket, parked))
    job.pop("state"), job.pop("files")
    cloud.obs.put_json(cloud.queue_bucket, f"{QUEUE}pending/{ha.instance_id}.json", job)
    cloud.obs.delete(cloud.queue_bucket, parked)
    for d in cloud.trigger(**env).drain():
        assert d.ok, d.traceback
    written = cloud.run_collector(action="sweep", **env)["manifests_written"]
    assert written == cloud.final_days(ha.instance_id)[-7:]
