"""The archiver against the local cloud: real SDK clients, presigned links on SeaweedFS, OBS trigger events."""

from __future__ import annotations

import hashlib
import json
from datetime import datetime, timedelta

import pytest

from shared.events import EventError
from shared.jobs import Job
from tests.integration.test_collector import QUEUE, TAGS, load_handler
from tests.localcloud.functiongraph import Context, eventgrid_obs_event, obs_classic_event
from tests.localcloud.pipeline import start_mid_day

ARCHIVE = "redis-run-logs/"


def pipeline(cloud, trigger=None, **overrides):
    """Collector, then the archiver fired by the local OBS trigger for every pending job."""
    collected = cloud.run_collector(**overrides)
    assert collected["collect_calls"]["failed"] == 0, collected
    trigger = trigger or cloud.trigger(**overrides)
    deliveries = trigger.pump()
    for d in deliveries:
        assert d.ok, d.traceback
    return collected, deliveries


def expected_files(cloud, instance, days):
    """{archive key: original bytes} for every node of the instance and each of the days."""
    out = {}
    for node in instance.nodes:
        for day in days:
            if day not in {d.isoformat() for d in instance.log_days}:
                continue
            name = f"redis_{node.replication_ip}_{day}.log"
            key = f"{ARCHIVE}{instance.instance_id}/{day}/{node.group_name}/{name}.gz"
            out[key] = cloud.emulator.log_bytes(instance.instance_id, node.replication_ip, day)
    return out


@pytest.fixture
def tagged(cloud):
    emu = cloud.emulator
    return [
        emu.add_instance(name="single", tags=TAGS, cache_mode="single"),
        emu.add_instance(name="ha", tags=TAGS, cache_mode="ha", replicas=2),
        emu.add_instance(name="cluster", tags=TAGS, cache_mode="cluster", shards=3, replicas=2,
                         missing_days=[emu.today() - timedelta(days=2)]),
        emu.add_instance(name="untagged", tags={"team": "x"}, cache_mode="single"),
    ]


def test_end_to_end_every_finished_day_of_every_tagged_node_is_archived_byte_exact(cloud, tagged):
    emu = cloud.emulator
    _, deliveries = pipeline(cloud, QUERY_TIME="7")
    assert len(deliveries) == 3

    expected = {}
    for inst in tagged[:3]:
        expected.update(expected_files(cloud, inst, cloud.final_days(inst.instance_id)))
    assert cloud.archive_keys() == sorted(expected)
    for key, original in expected.items():
        got = cloud.read_archived(key)
        assert got.data == original, key
        meta = got.metadata
        assert meta["sha256"] == hashlib.sha256(original).hexdigest()
        assert meta["original-size"] == str(len(original))
        assert meta["copy"] == "final" and meta["compression"] == "gzip"
        instance_id, day, group, name = key[len(ARCHIVE):].split("/")
        assert meta["instance-id"] == instance_id and meta["log-day"] == day and meta["group"] == group
        assert meta["source-file"] == name.removesuffix(".gz")
        assert meta["replication-ip"] in name
        assert meta["storage-class"] == "STANDARD"
        source = [e for e in emu.entries(instance_id) if e.id == meta["source-id"]]
        assert source and source[0].file_name == meta["source-file"]
    assert cloud.queue_keys("pending") == [] and cloud.queue_keys("retry") == []
    done = cloud.queue_keys("done")
    assert len(done) == 3
    record = json.loads(cloud.obs.get_bytes(cloud.queue_bucket, done[0]))
    assert record["state"] == "done" and all("state" in f for f in record["files"])
    assert cloud.open_uploads() == []


def test_same_job_twice_and_the_next_day_cost_no_link_call_and_no_duplicate(cloud, tagged):
    emu = cloud.emulator
    trigger = cloud.trigger(duplicate=True)
    pipeline(cloud, trigger)
    first = cloud.archive_keys()
    assert first, "yesterday's files were archived"
    links_first = len(emu.calls("CreateRedislogDownloadLink"))
    assert links_first == len(first), "the duplicate delivery found the job gone: no second copy"

    # the next day: yesterday's files are in place; only the day that just ended is new
    emu.clock.advance(days=1)
    emu.reset_counters()
    pipeline(cloud, trigger)
    second = cloud.archive_keys()
    assert set(first) <= set(second)
    new = set(second) - set(first)
    assert new and all(cloud.yesterday() in k for k in new)
    assert len(emu.calls("CreateRedislogDownloadLink")) == len(new)
    assert len(emu.calls("Download")) == 0 or all(c.status == 200 for c in emu.calls("Download"))

    # the whole pipeline again the same day: every instance is up to date, nothing is collected or copied
    emu.reset_counters()
    collected, deliveries = pipeline(cloud, trigger)
    assert collected["up_to_date"] == 3 and deliveries == []
    assert cloud.archive_keys() == second
    assert [c.op for c in emu.requests] == ["ListInstances"]


def test_a_day_collected_while_running_never_stands_as_final(cloud):
    emu = cloud.emulator
    inst = emu.add_instance(name="ha", tags=TAGS, cache_mode="ha", replicas=2)
    day = emu.today().isoformat()
    # collected mid-day: a partial copy of today is in the listing
    emu.clock.set(datetime.fromisoformat(f"{day}T13:00:00+08:00"))
    pipeline(cloud)
    assert not any(f"/{day}/" in k for k in cloud.archive_keys())

    # after midnight, the earlier partial copy stays listed beside the new, whole one
    emu.clock.set(datetime.fromisoformat(f"{day}T01:30:00+08:00") + timedelta(days=1))
    pipeline(cloud)
    for key, original in expected_files(cloud, inst, [day]).items():
        assert cloud.read_archived(key).data == original
        partial = emu.log_bytes(inst.instance_id, inst.nodes[0].replication_ip, day,
                                upto=datetime.fromisoformat(f"{day}T13:00:00+08:00"))
        assert len(partial) < len(original)


def test_open_day_is_archived_as_partial_and_replaced_by_the_final_copy(cloud):
    emu = cloud.emulator
    inst = emu.add_instance(name="single", tags=TAGS, cache_mode="single")
    node = inst.nodes[0]
    day = emu.today().isoformat()
    noon = datetime.fromisoformat(f"{day}T12:00:00+08:00")
    emu.clock.set(noon)
    pipeline(cloud, ARCHIVE_OPEN_DAY="true")
    stem = f"{ARCHIVE}{inst.instance_id}/{day}/{node.group_name}/redis_{node.replication_ip}_{day}.log"
    partial = cloud.read_archived(stem + ".partial.gz")
    assert partial.metadata["copy"] == "partial"
    assert partial.data == emu.log_bytes(inst.instance_id, node.replication_ip, day, upto=noon)
    assert stem + ".gz" not in cloud.archive_keys()

    emu.clock.set(noon + timedelta(hours=14))
    pipeline(cloud, ARCHIVE_OPEN_DAY="true")
    keys = cloud.archive_keys()
    assert stem + ".partial.gz" not in keys, "the partial copy was replaced"
    final = cloud.read_archived(stem + ".gz")
    assert final.metadata["copy"] == "final"
    assert final.data == emu.log_bytes(inst.instance_id, node.replication_ip, day)


def test_eventgrid_event_with_an_encoded_key_is_archived(cloud):
    inst = cloud.emulator.add_instance(name="single", tags=TAGS, cache_mode="single")
    cloud.run_collector()
    summary = cloud.trigger(shape="eventgrid").pump()[0].result
    assert summary["jobs"][0]["instance_id"] == inst.instance_id
    assert summary["jobs"][0]["outcome"] == "done"


def test_handler_ignores_objects_outside_pending_and_treats_a_gone_job_as_done(cloud):
    handler = load_handler("archiver")
    event = obs_classic_event(cloud.queue_bucket, [f"{QUEUE}done/x/y.json", f"{QUEUE}pending/gone.json",
                                                   "elsewhere/pending/z.json"])
    summary = handler(event, Context(echo_logs=False))
    outcomes = [j["outcome"] for j in summary["jobs"]]
    assert outcomes == ["ignored", "already done", "ignored"]
    assert cloud.emulator.requests == []


def test_handler_rejects_an_unknown_event_naming_what_it_received(cloud):
    handler = load_handler("archiver")
    with pytest.raises(EventError, match=r"received object with keys \['foo', 'records'\]"):
        handler({"records": [], "foo": 1}, Context(echo_logs=False))


def test_malformed_job_object_is_dead_lettered_with_its_reason(cloud):
    key = f"{QUEUE}pending/broken.json"
    cloud.obs.put_bytes(cloud.queue_bucket, key, b'{"schema": 1, "instance_id": "x"}')
    summary = load_handler("archiver")(eventgrid_obs_event(cloud.queue_bucket, key), Context(echo_logs=False))
    assert summary["jobs"][0]["outcome"] == "failed"
    assert cloud.queue_keys("pending") == []
    (dead,) = cloud.queue_keys("failed")
    record = json.loads(cloud.obs.get_bytes(cloud.queue_bucket, dead))
    assert "project_id" in record["reason"] and record["source_key"] == key


def test_large_file_goes_multipart_and_a_cut_download_is_retried_with_a_fresh_link(cloud):
    emu = cloud.emulator
    inst = emu.add_instance(name="big", tags=TAGS, cache_mode="single", log_size=12 * 2**20)
    emu.faults.add("Download", "truncate", times=1)
    pipeline(cloud, SINGLE_PUT_MAX_MB="1", PART_SIZE_MB="5", ARCHIVE_COMPRESSION="none", QUERY_TIME_AUTO="false")
    node = inst.nodes[0]
    day = cloud.yesterday()
    key = f"{ARCHIVE}{inst.instance_id}/{day}/{node.group_name}/redis_{node.replication_ip}_{day}.log"
    got = cloud.read_archived(key)
    original = emu.log_bytes(inst.instance_id, node.replication_ip, day)
    assert got.data == original and got.metadata["original-size"] == str(len(original))
    # a multipart object's SHA-256 is known after its last part: it is in the job's record, never sealed on by
    # copying the object onto itself (OBS refuses that for COLD objects)
    assert "sha256" not in got.metadata
    (done,) = cloud.queue_keys("done")
    files = json.loads(cloud.obs.get_bytes(cloud.queue_bucket, done))["files"]
    assert [f["sha256"] for f in files if f.get("key") == key] == [hashlib.sha256(original).hexdigest()]
    assert len(emu.calls("CreateRedislogDownloadLink")) == 2, "the retry asked for a fresh link"
    assert cloud.open_uploads() == [], "the broken attempt's multipart upload was aborted"


def test_expired_links_exhaust_the_attempts_and_park_the_job_for_retry(cloud):
    emu = cloud.emulator
    emu.add_instance(name="single", tags=TAGS, cache_mode="single")
    emu.faults.add("CreateRedislogDownloadLink", "expired")
    pipeline(cloud, COPY_MAX_ATTEMPTS="2", QUERY_TIME_AUTO="false")
    assert cloud.archive_keys() == []
    (parked,) = cloud.queue_keys("retry")
    record = json.loads(cloud.obs.get_bytes(cloud.queue_bucket, parked))
    assert record["attempts"] == 1 and "403" in record["last_error"]
    assert len(emu.calls("CreateRedislogDownloadLink")) == 2


def test_link_on_an_unexpected_host_is_refused_and_never_fetched(cloud):
    emu = cloud.emulator
    emu.add_instance(name="single", tags=TAGS, cache_mode="single")
    pipeline(cloud, LINK_HOST_SUFFIXES=".myhuaweicloud.com")
    assert cloud.archive_keys() == []
    record = json.loads(cloud.obs.get_bytes(cloud.queue_bucket, cloud.queue_keys("retry")[0]))
    assert "does not end in .myhuaweicloud.com" in record["last_error"]
    assert emu.calls("Download") == []


def test_failed_collection_is_requested_again_and_archived_on_the_next_attempt(cloud):
    emu = cloud.emulator
    start_mid_day(emu)  # the retry an hour later stays on the same day (else the oldest day has aged out)
    inst = emu.add_instance(name="ha", tags=TAGS, cache_mode="ha", replicas=2)
    emu.faults.add("CreateRedislog", "fail_collection", times=1)
    pipeline(cloud)
    (parked,) = cloud.queue_keys("retry")
    assert "collection ended failed" in json.loads(cloud.obs.get_bytes(cloud.queue_bucket, parked))["last_error"]
    assert len(emu.calls("CreateRedislog")) == 3, "two at collection, one again for the failed node"

    emu.clock.advance(hours=1)
    trigger = cloud.trigger()
    cloud.run_collector(action="sweep", JOB_RETRY_DELAY_SECONDS="60")
    for d in trigger.pump():
        assert d.ok and d.result["jobs"][0]["outcome"] == "done"
    assert cloud.archive_keys() == sorted(expected_files(cloud, inst, cloud.final_days(inst.instance_id)))


def test_instance_deleted_between_collect_and_archive_moves_the_job_to_failed(cloud):
    emu = cloud.emulator
    inst = emu.add_instance(name="ha", tags=TAGS, cache_mode="ha")
    cloud.run_collector()
    emu.delete_instance(inst.instance_id)
    (delivery,) = cloud.trigger().pump()
    assert delivery.result["jobs"][0]["outcome"] == "failed"
    (dead,) = cloud.queue_keys("failed")
    assert "instance deleted" in json.loads(cloud.obs.get_bytes(cloud.queue_bucket, dead))["reason"]


def test_archiver_waits_for_a_slow_collection(cloud):
    emu = cloud.emulator
    emu.collection_delay = 3.0
    emu.in_progress_visible = True
    inst = emu.add_instance(name="single", tags=TAGS, cache_mode="single")
    pipeline(cloud, COLLECT_SETTLE_SECONDS="1")
    assert cloud.archive_keys() == sorted(expected_files(cloud, inst, cloud.final_days(inst.instance_id)))
    assert len(emu.calls("ListRedislog", inst.instance_id)) >= 3


def test_collection_that_does_not_settle_in_time_parks_the_job(cloud):
    emu = cloud.emulator
    emu.collection_delay = 30.0
    emu.in_progress_visible = True
    emu.add_instance(name="single", tags=TAGS, cache_mode="single")
    pipeline(cloud, COLLECT_WAIT_SECONDS="3")
    (parked,) = cloud.queue_keys("retry")
    assert "not settled" in json.loads(cloud.obs.get_bytes(cloud.queue_bucket, parked))["last_error"]


def test_jobs_parsed_from_the_queue_keep_their_ids(cloud):
    inst = cloud.emulator.add_instance(name="single", tags=TAGS, cache_mode="single")
    cloud.run_collector()
    raw = cloud.obs.get_bytes(cloud.queue_bucket, f"{QUEUE}pending/{inst.instance_id}.json")
    job = Job.parse(raw)
    (delivery,) = cloud.trigger().pump()
    assert delivery.result["jobs"][0]["job_id"] == job.job_id


def test_files_of_one_job_are_copied_concurrently_within_the_bound(cloud):
    emu = cloud.emulator
    emu.add_instance(name="cluster", tags=TAGS, cache_mode="cluster", shards=3, replicas=2)
    cloud.run_collector(QUERY_TIME_AUTO="false")
    emu.faults.latency("Download", 0.3)  # links then go through the emulator, which counts them in flight
    emu.reset_counters()
    (delivery,) = cloud.trigger(COPY_CONCURRENCY="3").pump()
    assert delivery.result["jobs"][0]["archived"] == 6
    downloads = emu.calls("Download")
    assert len(downloads) == 6
    overlapping = max(sum(1 for d in downloads if d.started <= t.started < d.finished) for t in downloads)
    assert 2 <= overlapping <= 3, "copies overlap, within COPY_CONCURRENCY (link calls run ahead of them)"
    links = emu.calls("CreateRedislogDownloadLink")
    fourth = sorted(c.started for c in links)[3]
    assert len(links) == 6 and fourth < min(d.finished for d in downloads), \
        "a fourth link is asked for while the first three files download"


def test_archiver_waits_until_every_collected_node_shows_its_new_copies(cloud):
    emu = cloud.emulator
    emu.collection_delay = 2.0  # entries stay hidden until done, as DCS may keep them
    inst = emu.add_instance(name="cluster", tags=TAGS, cache_mode="cluster", shards=3, replicas=2)
    cloud.run_collector(QUERY_TIME_AUTO="false")
    (delivery,) = cloud.trigger(COLLECT_SETTLE_SECONDS="60").pump()
    job = delivery.result["jobs"][0]
    assert job["outcome"] == "done" and job["archived"] == 6
    assert cloud.archive_keys() == sorted(expected_files(cloud, inst, [cloud.yesterday()]))
    assert job["duration_s"] < 30, "covered nodes end the wait long before the settle time"


def test_cold_storage_class_archives_multipart_and_single_put_files_without_copying_any_object(cloud, seaweed):
    """OBS refuses to copy an Archive (COLD) object (obs_errorcode_0010); the store proxy refuses it the same
    way, so an archive write that seals its checksum by a copy onto itself would fail here."""
    from tests.localcloud.obs_proxy import ColdRefusingProxy

    emu = cloud.emulator
    big = emu.add_instance(name="big", tags=TAGS, cache_mode="ha", replicas=2, log_size=11 * 2**20)
    small = emu.add_instance(name="small", tags=TAGS, cache_mode="single")
    with ColdRefusingProxy(seaweed) as proxy:
        _, deliveries = pipeline(cloud, OBS_ENDPOINT=proxy.endpoint, ARCHIVE_STORAGE_CLASS="COLD",
                                 ARCHIVE_COMPRESSION="none", SINGLE_PUT_MAX_MB="1", PART_SIZE_MB="5",
                                 QUERY_TIME_AUTO="false")
    assert sorted(d.result["jobs"][0]["outcome"] for d in deliveries) == ["done", "done"]
    assert proxy.copies() == [] and proxy.refused == []
    records = {}
    for done in cloud.queue_keys("done"):
        for f in json.loads(cloud.obs.get_bytes(cloud.queue_bucket, done))["files"]:
            if f["state"] == "archived":
                records[f["key"]] = f
    day = cloud.yesterday()
    for inst, multipart in ((big, True), (small, False)):
        for node in inst.nodes:
            name = f"redis_{node.replication_ip}_{day}.log"
            key = f"{ARCHIVE}{inst.instance_id}/{day}/{node.group_name}/{name}"
            got = cloud.read_archived(key)
            original = emu.log_bytes(inst.instance_id, node.replication_ip, day)
            digest = hashlib.sha256(original).hexdigest()
            assert got.data == original, key
            assert got.metadata["storage-class"] == "GLACIER", "COLD, under its S3 name (path style signs V2)"
            assert got.metadata["original-size"] == str(len(original))
            assert records[key]["sha256"] == digest and records[key]["bytes_in"] == len(original)
            # one PUT carries the checksum itself; a multipart object's is in the job's record only
            assert got.metadata.get("sha256") == (None if multipart else digest)
    initiated = [r for r in proxy.requests if r.method == "POST" and r.query == "uploads"]
    assert len(initiated) == len(big.nodes)
    assert all(r.headers.get("x-amz-storage-class") == "GLACIER" for r in initiated)
    assert cloud.open_uploads() == []


def test_an_implausibly_small_remaining_time_at_the_start_falls_back_to_the_timeout_and_says_so(cloud):
    emu = cloud.emulator
    inst = emu.add_instance(name="single", tags=TAGS, cache_mode="single")
    cloud.run_collector(QUERY_TIME_AUTO="false")
    (pending,) = cloud.queue_keys("pending")
    # a runtime whose remaining time comes from an unset timeout (3 s) while the function's is 900 s
    ctx = Context(timeout=900, echo_logs=False)
    ctx.start -= 897
    summary = cloud.archiver_handler()(obs_classic_event(cloud.queue_bucket, pending), ctx)
    assert summary["jobs"][0]["outcome"] == "done", "not parked for want of time"
    assert "configured timeout 900 s" in summary["deadline_fallback"]
    assert cloud.archive_keys() == sorted(expected_files(cloud, inst, [cloud.yesterday()]))


@pytest.mark.parametrize("collection_date", [False, True])
def test_the_log_day_comes_from_the_file_name_whatever_the_listing_time_says(cloud, collection_date):
    emu = cloud.emulator
    emu.time_is_collection_date = collection_date
    inst = emu.add_instance(name="ha", tags=TAGS, cache_mode="ha", replicas=2)
    pipeline(cloud)
    assert cloud.archive_keys() == sorted(expected_files(cloud, inst, cloud.final_days(inst.instance_id)))
    odd = [line for line in cloud.log_lines() if '"log_day_disagrees"' in line]
    assert len(odd) == (1 if collection_date else 0), "said once per job"
