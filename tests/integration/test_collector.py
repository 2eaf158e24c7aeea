"""The collector against the local cloud: real huaweicloudsdkdcs and esdk-obs-python clients over HTTP."""

from __future__ import annotations

import importlib.util
import json
from datetime import timedelta
from pathlib import Path

import pytest

from shared.config import ConfigError
from shared.jobs import Job, iso
from tests.localcloud.functiongraph import Context, timer_event

ROOT = Path(__file__).resolve().parents[2]
QUEUE = "redis-run-log-jobs/"
TAGS = {"archive": "yes"}


def load_handler(name: str):
    spec = importlib.util.spec_from_file_location(f"{name}_index", ROOT / "functions" / name / "index.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.handler


def read_job(cloud, key: str) -> dict:
    return json.loads(cloud.obs.get_bytes(cloud.queue_bucket, key))


def collect_calls(emu, instance_id):
    return [c for c in emu.calls("CreateRedislog", instance_id) if c.status == 204]


@pytest.fixture
def mixed(cloud):
    """Single-node, master/standby and cluster instances, tagged and not, and the ones that must be skipped."""
    emu = cloud.emulator
    made = {
        "single": emu.add_instance(name="single", tags=TAGS, cache_mode="single"),
        "ha": emu.add_instance(name="ha", tags={**TAGS, "team": "x"}, cache_mode="ha", replicas=2),
        "cluster": emu.add_instance(name="cluster", tags=TAGS, cache_mode="cluster", shards=3, replicas=2),
        "untagged": emu.add_instance(name="untagged", tags={"team": "x"}, cache_mode="ha"),
        "other_value": emu.add_instance(name="other-value", tags={"archive": "no"}, cache_mode="single"),
        "stopped": emu.add_instance(name="stopped", tags=TAGS, cache_mode="ha", status="FROZEN"),
        "old": emu.add_instance(name="old", tags=TAGS, cache_mode="single", engine_version="3.0"),
    }
    return made


def test_scenario_collects_every_replica_of_each_qualifying_instance_and_enqueues_one_job(cloud, mixed):
    emu = cloud.emulator
    summary = cloud.run_collector()

    single, ha, cluster = mixed["single"], mixed["ha"], mixed["cluster"]
    assert [c.replication_id for c in collect_calls(emu, single.instance_id)] == [None]
    assert sorted(c.replication_id for c in collect_calls(emu, ha.instance_id)) == \
        sorted(n.replication_id for n in ha.nodes)
    assert len(cluster.nodes) == 6
    assert sorted(c.replication_id for c in collect_calls(emu, cluster.instance_id)) == \
        sorted(n.replication_id for n in cluster.nodes)
    for name in ("untagged", "other_value", "stopped", "old"):
        assert emu.calls("CreateRedislog", mixed[name].instance_id) == []
    # nothing archived yet: the window reaches back over all 7 days DCS keeps
    assert all(c.query["log_type"] == "run" and c.query["query_time"] == "7" for c in emu.calls("CreateRedislog"))

    pending = cloud.queue_keys("pending")
    assert pending == sorted(f"{QUEUE}pending/{mixed[n].instance_id}.json" for n in ("single", "ha", "cluster"))
    job = Job.from_dict(read_job(cloud, f"{QUEUE}pending/{cluster.instance_id}.json"))
    assert job.instance_name == "cluster" and job.project_id == emu.project_id and job.query_time == 7
    assert sorted(job.replication_ids) == sorted(n.replication_id for n in cluster.nodes)
    assert dict(zip(job.replication_ids, job.replication_ips)) == \
        {n.replication_id: n.replication_ip for n in cluster.nodes}
    assert job.entries_before == () and job.attempts == 0
    assert job.requested_at == iso(emu.clock.now())

    assert summary["matched"] == 3
    assert summary["jobs_enqueued"] == 3
    assert summary["collect_calls"] == {"ok": 1 + 2 + 6, "failed": 0, "failures": []}
    skipped = {reason: v["instance_ids"] for reason, v in summary["skipped"].items()}
    assert skipped == {
        "Redis 3.0 has no run logs (4.0 or later needed)": [mixed["old"].instance_id],
        "status FROZEN, not RUNNING": [mixed["stopped"].instance_id],
    }, "the server-side tag filter already leaves out the untagged and other-value instances"


def test_second_run_records_the_entries_listed_before_its_collection(cloud, mixed):
    emu = cloud.emulator
    cloud.run_collector()
    listed_before = {e.id for e in emu.entries(mixed["ha"].instance_id)}
    assert listed_before, "the first collection created entries"
    emu.clock.advance(hours=1)
    cloud.run_collector()
    job = Job.from_dict(read_job(cloud, f"{QUEUE}pending/{mixed['ha'].instance_id}.json"))
    assert set(job.entries_before) == listed_before


def test_query_time_is_fixed_when_auto_widening_is_off(cloud, mixed):
    cloud.run_collector(QUERY_TIME="3", QUERY_TIME_AUTO="false")
    assert {c.query["query_time"] for c in cloud.emulator.calls("CreateRedislog")} == {"3"}


def _archive_everything(cloud, **overrides):
    """Collector, then the archiver over every pending job, as the platform delivers them."""
    summary = cloud.run_collector(**overrides)
    for delivery in cloud.trigger(**overrides).drain():
        assert delivery.ok, delivery.traceback
    return summary


def test_window_shrinks_to_query_time_once_archived_and_widens_again_after_an_outage(cloud):
    emu = cloud.emulator
    emu.add_instance(name="single", tags=TAGS, cache_mode="single")

    def window() -> str:
        emu.reset_counters()
        _archive_everything(cloud)
        (call,) = emu.calls("CreateRedislog")
        return call.query["query_time"]

    assert window() == "7", "a first run collects every day DCS keeps"
    emu.clock.advance(days=1)
    assert window() == "1", "the ledger has every day but the one that just ended"
    emu.clock.advance(days=3)  # three days without a run: the oldest missing node-day is 3 days back
    assert window() == "3"
    emu.clock.advance(days=5)
    assert window() == "7"


def test_instance_whose_nodes_yesterday_is_settled_costs_no_dcs_call_and_no_job(cloud):
    emu = cloud.emulator
    emu.add_instance(name="ha", tags=TAGS, cache_mode="ha", replicas=2)
    _archive_everything(cloud)
    emu.reset_counters()
    summary = cloud.run_collector()
    assert summary["up_to_date"] == 1 and summary["jobs_enqueued"] == 0
    assert [c.op for c in emu.requests] == ["ListInstances"]
    assert cloud.queue_keys("pending") == []
    # the open day changes all day long: with ARCHIVE_OPEN_DAY the instance is collected anyway
    assert cloud.run_collector(ARCHIVE_OPEN_DAY="true")["jobs_enqueued"] == 1


def test_an_archived_master_does_not_make_the_instance_up_to_date_while_its_standby_is_missing(cloud):
    emu = cloud.emulator
    inst = emu.add_instance(name="ha", tags=TAGS, cache_mode="ha", replicas=2)
    standby = inst.nodes[1]
    _archive_everything(cloud)
    emu.clock.advance(days=1)
    # the standby's collection is refused for the whole of the next run and of its job's attempts
    emu.faults.add("CreateRedislog", "error500", replication_id=standby.replication_id)
    _archive_everything(cloud, API_MAX_RETRIES="1", API_RETRY_WAIT_SCALE="0.01")
    emu.faults.clear()
    emu.reset_counters()
    summary = cloud.run_collector()
    assert summary["up_to_date"] == 0 and summary["jobs_enqueued"] == 1
    (call,) = emu.calls("CreateRedislog")
    assert call.replication_id == standby.replication_id, "only the node whose day is missing is asked again"

def test_masters_only_when_replicas_is_master(cloud, mixed):
    cloud.run_collector(REPLICAS="master")
    cluster = mixed["cluster"]
    masters = sorted(n.replication_id for n in cluster.nodes if n.role == "master")
    assert sorted(c.replication_id for c in collect_calls(cloud.emulator, cluster.instance_id)) == masters


def test_manual_run_collects_only_the_named_instances_that_carry_the_tags(cloud, mixed):
    emu = cloud.emulator
    ids = [mixed["ha"].instance_id, mixed["untagged"].instance_id]
    summary = cloud.run_collector(instance_ids=ids)
    assert {c.instance_id for c in emu.calls("CreateRedislog")} == {mixed["ha"].instance_id}
    assert cloud.queue_keys("pending") == [f"{QUEUE}pending/{mixed['ha'].instance_id}.json"]
    assert summary["skipped"] == {"missing tag archive": {"count": 1,
                                                          "instance_ids": [mixed["untagged"].instance_id]}}
    assert emu.calls("ListInstances") == []


def test_fifteen_hundred_tagged_instances_every_page_fetched_every_instance_collected(cloud):
    emu = cloud.emulator
    ids = {emu.add_instance(name=f"i{n}", tags=TAGS, cache_mode="single", log_days=[]).instance_id
           for n in range(1500)}
    summary = cloud.run_collector(COLLECT_CONCURRENCY="16")
    pages = emu.calls("ListInstances")
    assert [(p.query["offset"], p.query["limit"]) for p in pages] == [("0", "1000"), ("1000", "1000")]
    assert {c.instance_id for c in collect_calls(emu, None)} == ids
    assert len(emu.calls("CreateRedislog")) == 1500
    assert summary["matched"] == 1500 and summary["jobs_enqueued"] == 1500
    assert len(cloud.queue_keys("pending")) == 1500


def test_throttling_on_thirty_percent_of_calls_is_retried_within_the_concurrency_bound(cloud):
    emu = cloud.emulator
    made = [emu.add_instance(name=f"c{n}", tags=TAGS, cache_mode="cluster", shards=2, replicas=2, log_days=[])
            for n in range(6)]
    made += [emu.add_instance(name=f"s{n}", tags=TAGS, cache_mode="single", log_days=[]) for n in range(6)]
    emu.faults.seed(7)
    emu.faults.add("*", "throttle", rate=0.3, retry_after=1)
    emu.faults.latency("*", 0.02)
    summary = cloud.run_collector(COLLECT_CONCURRENCY="4", API_MAX_RETRIES="10")

    throttled = [c for c in emu.requests if c.status == 429]
    assert len(throttled) >= 10, "the fault fired"
    assert summary["collect_calls"]["failed"] == 0
    assert summary["jobs_enqueued"] == len(made)
    for inst in made:
        expected = len(inst.nodes) if inst.cache_mode != "single" else 1
        assert len(collect_calls(emu, inst.instance_id)) == expected
    assert emu.peak_in_flight <= 4


def test_persistent_server_errors_are_reported_with_their_code_and_other_instances_go_on(cloud, mixed):
    emu = cloud.emulator
    emu.faults.add("CreateRedislog", "error500", instance_id=mixed["ha"].instance_id)
    summary = cloud.run_collector(API_MAX_RETRIES="2")
    failures = summary["collect_calls"]["failures"]
    assert {f["code"] for f in failures} == {"DCS.5000"}
    assert {f["instance_id"] for f in failures} == {mixed["ha"].instance_id}
    assert len(emu.calls("CreateRedislog", mixed["ha"].instance_id)) == 2 * 3, "each replica: 1 try + 2 retries"
    # the refused replicas are not dropped: the job carries them, and the archiver asks again while it waits
    assert summary["instances_failed"] == [] and summary["replicas_deferred"] == 2
    assert summary["jobs_enqueued"] == 3
    job = Job.parse(cloud.obs.get_bytes(cloud.queue_bucket, f"{QUEUE}pending/{mixed['ha'].instance_id}.json"))
    assert job.replication_ids == () and len(job.pending_replicas) == 2
    assert all("DCS.5000" in r["last_error"] for r in job.pending_replicas)


def test_instance_deleted_mid_run_is_reported_and_the_others_go_on(cloud, mixed):
    emu = cloud.emulator
    gone = mixed["cluster"].instance_id
    emu.faults.add("CreateRedislog", "delete_instance", instance_id=gone, times=1)
    summary = cloud.run_collector()
    assert summary["instances_gone"] == [gone]
    assert summary["jobs_enqueued"] == 2
    assert f"{QUEUE}pending/{gone}.json" not in cloud.queue_keys("pending")
    assert any('"event":"instance_gone"' in line and gone in line for line in cloud.log_lines())


def test_missing_instance_tags_fails_with_a_clear_message_and_makes_no_api_call(cloud, monkeypatch):
    monkeypatch.delenv("INSTANCE_TAGS")
    handler = load_handler("collector")
    ctx = Context(echo_logs=False)
    with pytest.raises(ConfigError, match=r"^INSTANCE_TAGS: required"):
        handler(timer_event(), ctx)
    assert cloud.emulator.requests == []
    assert any("INSTANCE_TAGS: required" in line for line in ctx.getLogger().messages())


def test_wrong_query_time_names_the_variable_and_the_allowed_values(cloud, monkeypatch):
    monkeypatch.setenv("QUERY_TIME", "2")
    with pytest.raises(ConfigError, match=r"^QUERY_TIME=2: must be one of 0, 1, 3, 7$"):
        load_handler("collector")(timer_event(), Context(echo_logs=False))
    assert cloud.emulator.requests == []


def test_handler_on_a_timer_event_enqueues_jobs_and_returns_the_summary(cloud, mixed):
    handler = load_handler("collector")
    ctx = Context(echo_logs=False)
    summary = handler(timer_event({"action": "collect"}), ctx)
    assert summary["jobs_enqueued"] == 3
    lines = [json.loads(line) for line in ctx.getLogger().messages()]
    assert [line["event"] for line in lines].count("collector_summary") == 1
    assert all(line["request_id"] == ctx.getRequestID() for line in lines)
    secret = cloud.seaweed.secret_key
    assert not any(secret in line for line in ctx.getLogger().messages())


def test_deadline_stops_new_work_and_reports_what_was_not_reached(cloud):
    emu = cloud.emulator
    for n in range(6):
        emu.add_instance(name=f"s{n}", tags=TAGS, cache_mode="single", log_days=[])
    emu.faults.latency("ShowInstance", 0.4)
    # 2 s of function time with a 1 s margin: the first instances start, the rest are left for the next run
    summary = cloud.run_collector(timeout=2, COLLECT_CONCURRENCY="1", DEADLINE_MARGIN_SECONDS="1")
    assert 1 <= summary["jobs_enqueued"] < 6
    assert len(summary["not_reached"]) == 6 - summary["jobs_enqueued"]
    assert len(cloud.queue_keys("pending")) == summary["jobs_enqueued"]


# --- sweep --------------------------------------------------------------------------------------------

def _job(instance_id: str, **fields) -> Job:
    base = dict(instance_id=instance_id, instance_name="n", project_id="p" * 32, region="", query_time=1,
                replication_ids=(), requested_at="2026-11-20T00:00:00+00:00", entries_before=())
    return Job(**{**base, **fields})


def test_sweep_redrives_due_retries_rewrites_stale_pending_and_dead_letters_the_hopeless(cloud):
    emu, obs, bucket = cloud.emulator, cloud.obs, cloud.queue_bucket
    now = emu.clock.now()
    due = _job("due", attempts=1, last_error="x", next_attempt_at=iso(now - timedelta(minutes=1)))
    later = _job("later", attempts=1, last_error="x", next_attempt_at=iso(now + timedelta(hours=1)))
    hopeless = _job("hopeless", attempts=5, last_error="link refused: host evil.example")
    fresh = _job("fresh")
    for job, state in ((due, "retry"), (later, "retry"), (hopeless, "retry"), (fresh, "pending")):
        obs.put_json(bucket, f"{QUEUE}{state}/{job.instance_id}.json", job.to_dict())
    obs.put_bytes(bucket, f"{QUEUE}pending/garbage.json", b"{not json")

    events = []
    trigger = cloud.trigger()
    trigger.handler = lambda event, ctx: events.append(event)
    trigger.ignore_existing()

    summary = cloud.run_collector(action="sweep")
    assert summary["sweep"]["redriven"] == 1 and summary["sweep"]["dead_lettered"] == 1
    assert summary["sweep"]["malformed"] == 1
    assert cloud.queue_keys("retry") == [f"{QUEUE}retry/later.json"]
    assert cloud.queue_keys("pending") == sorted([f"{QUEUE}pending/due.json", f"{QUEUE}pending/fresh.json"])
    failed = cloud.queue_keys("failed")
    assert f"{QUEUE}failed/hopeless/{hopeless.job_id}.json" in failed
    dead = read_job(cloud, f"{QUEUE}failed/hopeless/{hopeless.job_id}.json")
    assert "link refused" in dead["reason"] and dead["state"] == "failed"
    malformed = [k for k in failed if k.startswith(f"{QUEUE}failed/_malformed/")]
    assert len(malformed) == 1 and read_job(cloud, malformed[0])["raw"] == "{not json"
    assert emu.requests == [], "a sweep makes no DCS call"

    trigger.pump()
    assert [e["Records"][0]["s3"]["object"]["key"] for e in events] == [f"{QUEUE}pending/due.json"]
    redriven = read_job(cloud, f"{QUEUE}pending/due.json")
    assert redriven["attempts"] == 1 and redriven["job_id"] == due.job_id

    # past the re-drive age, the pending jobs whose events were lost are written again, once each, and the
    # parked job's time has come too
    emu.clock.advance(seconds=7200 + 60)
    cloud.run_collector(action="sweep", PENDING_REDRIVE_SECONDS="7200")
    trigger.pump()
    keys = sorted(e["Records"][0]["s3"]["object"]["key"] for e in events[1:])
    assert keys == sorted(f"{QUEUE}pending/{name}.json" for name in ("due", "fresh", "later"))
    assert cloud.queue_keys("retry") == []
    assert read_job(cloud, f"{QUEUE}pending/fresh.json")["attempts"] == 1
