"""Every node, every day, through the whole pipeline on the local cloud: refused collections, DCS running one
collection at a time, nodes with no log on some days, scale-out and scale-in. Each case ends with every node-day
DCS holds in a final copy archived byte-exact and every other node-day `no-log` or `failed` with a reason."""

from __future__ import annotations

import json
from datetime import date, timedelta

import pytest

from shared.ledger import ARCHIVED, FAILED, MISSING, NO_LOG, Ledger, ledger_key, window
from tests.integration.fault_checks import start_mid_day
from tests.integration.test_archiver import ARCHIVE
from tests.integration.test_collector import QUEUE, TAGS

FAST = {"API_MAX_RETRIES": "1", "API_RETRY_WAIT_SCALE": "0.01", "COLLECT_POLL_SECONDS": "0.1",
        "JOB_RETRY_DELAY_SECONDS": "60"}


def a_day(cloud, trigger, *, sweeps: int = 3, **env) -> list:
    """The daily timer, then, within the same day, the events as the platform delivers them and the sweep timer
    every half hour."""
    env = {**FAST, **env}
    cloud.run_collector(**env)
    deliveries = trigger.drain(max_rounds=100)
    for _ in range(sweeps):
        cloud.emulator.clock.advance(minutes=30)
        cloud.run_collector(action="sweep", **env)
        deliveries += trigger.drain(max_rounds=100)
    for d in deliveries:
        assert d.ok, d.traceback
    return deliveries


def ledger_of(cloud, instance_id: str) -> Ledger:
    raw = cloud.obs.get_bytes(cloud.queue_bucket, ledger_key(QUEUE, instance_id))
    assert raw is not None, "the archiver wrote the instance's ledger"
    return Ledger.from_dict(json.loads(raw))


def assert_every_node_day_accounted(cloud, inst, *, no_log: set = frozenset(), failed: set = frozenset()):
    """The emulator's truth against the archive and the ledger: each finished node-day in DCS's window is
    archived byte-exact when the node logged that day, else no-log (or failed where the case expects it)."""
    emu = cloud.emulator
    ledger = ledger_of(cloud, inst.instance_id)
    keys = set(cloud.archive_keys())
    for node in inst.nodes:
        record = ledger.nodes[node.replication_ip]
        for day in window(emu.today()):
            if not record.expects(day):
                continue
            state = record.state(day)
            key = f"{ARCHIVE}{inst.instance_id}/{day}/{node.group_name}/redis_{node.replication_ip}_{day}.log.gz"
            if (node.replication_ip, day) in failed:
                assert state == FAILED and record.days[day]["reason"], (node.replication_ip, day)
            elif inst.has_log(node.replication_ip, date.fromisoformat(day)):
                assert state == ARCHIVED, (node.replication_ip, day, record.days.get(day))
                assert key in keys and record.days[day]["key"] == key
                original = emu.log_bytes(inst.instance_id, node.replication_ip, day)
                assert cloud.read_archived(key).data == original, key
                assert record.days[day]["sha256"] == cloud.read_archived(key).metadata.get("sha256",
                                                                                          record.days[day]["sha256"])
            else:
                assert state == NO_LOG, (node.replication_ip, day, record.days.get(day))
                assert (node.replication_ip, day) in no_log or day not in {d.isoformat() for d in inst.log_days}
                assert key not in keys
    assert ledger.missing(emu.today()) == []
    return ledger


@pytest.fixture
def mid_day(cloud):
    start_mid_day(cloud.emulator)
    return cloud


def test_a_standby_refused_for_the_whole_collector_run_is_collected_by_the_archiver_the_same_day(mid_day):
    cloud = mid_day
    emu = cloud.emulator
    inst = emu.add_instance(name="ha", tags=TAGS, cache_mode="ha", replicas=2)
    standby = inst.nodes[1]
    # every try of the collector's call (1 + API_MAX_RETRIES=1) answers 500; the archiver's next one succeeds
    emu.faults.add("CreateRedislog", "error500", times=2, replication_id=standby.replication_id)
    summary = cloud.run_collector(**FAST)
    assert summary["replicas_deferred"] == 1 and summary["jobs_enqueued"] == 1
    deliveries = cloud.trigger(**FAST).drain()
    assert deliveries[-1].result["jobs"][0]["outcome"] == "done"
    assert_every_node_day_accounted(cloud, inst)
    logs = "\n".join(cloud.log_lines())
    assert '"ledger_updated"' in logs and '"missing":0' in logs


def test_a_standby_refused_all_day_is_archived_by_a_later_run_and_never_judged_up_to_date(mid_day):
    cloud = mid_day
    emu = cloud.emulator
    inst = emu.add_instance(name="ha", tags=TAGS, cache_mode="ha", replicas=2)
    standby = inst.nodes[1]
    trigger = cloud.trigger(**FAST)
    rule = emu.faults.add("CreateRedislog", "error500", replication_id=standby.replication_id)
    a_day(cloud, trigger)
    ledger = ledger_of(cloud, inst.instance_id)
    assert ledger.nodes[standby.replication_ip].state(cloud.yesterday()) == MISSING
    assert "DCS.5000" in ledger.nodes[standby.replication_ip].last_error
    assert all(ledger.nodes[inst.nodes[0].replication_ip].state(d) == ARCHIVED for d in window(emu.today()))
    # "is anything missing?" is one field of the collector's summary line
    summary = cloud.run_collector(**FAST)
    assert summary["node_days"] == {"archived": 7, "no_log": 0, "failed": 0, "missing": 7}
    (named,) = summary["instances_missing_node_days"]
    assert named["instance_id"] == inst.instance_id and named["missing"] == 7
    # the fault ends; the next day's run asks for the standby only, back to its oldest missing day
    rule.times = rule.fired
    emu.clock.advance(days=1)
    emu.reset_counters()
    a_day(cloud, trigger)
    calls = emu.calls("CreateRedislog")
    assert {c.replication_id for c in calls} == {n.replication_id for n in inst.nodes}
    assert {c.query["query_time"] for c in calls} == {"7"}, "back to the standby's oldest missing day"
    assert_every_node_day_accounted(cloud, inst)


def test_a_node_day_that_leaves_dcs_window_while_refused_is_failed_with_the_reason(mid_day):
    cloud = mid_day
    emu = cloud.emulator
    inst = emu.add_instance(name="ha", tags=TAGS, cache_mode="ha", replicas=2)
    standby = inst.nodes[1]
    trigger = cloud.trigger(**FAST)
    emu.faults.add("CreateRedislog", "error500", replication_id=standby.replication_id)
    a_day(cloud, trigger, sweeps=0)
    first_window = window(emu.today())
    emu.clock.advance(days=2)
    a_day(cloud, trigger, sweeps=0)
    ledger = ledger_of(cloud, inst.instance_id)
    gone = [d for d in first_window if d < window(emu.today())[0]]
    assert len(gone) == 2
    for day in gone:
        record = ledger.nodes[standby.replication_ip].days[day]
        assert record["state"] == FAILED and "DCS.5000" in record["reason"]
        assert ledger.nodes[inst.nodes[0].replication_ip].state(day) == ARCHIVED
    assert '"node_day_failed"' in "\n".join(cloud.log_lines())


@pytest.mark.parametrize("code", ["DCS.4017", "111400017"])
def test_one_collection_at_a_time_archives_every_replica_across_bounded_continuations(mid_day, code):
    cloud = mid_day
    emu = cloud.emulator
    # 12 replicas, each collection 0.3 s, invocations of about 2 s: collecting takes several invocations, as a
    # 96-node cluster at 60 s a collection outlasts a 900 s invocation
    inst = emu.add_instance(name="cluster", tags=TAGS, cache_mode="cluster", shards=6, replicas=2)
    emu.serialize_collections(inst.instance_id, 0.3, code)
    quiet = inst.nodes[3]
    empty_days = {(emu.today() - timedelta(days=n)).isoformat() for n in (2, 5)}
    emu.set_node_missing_days(inst.instance_id, quiet.replication_ip, empty_days)
    env = {**FAST, "COLLECT_SETTLE_SECONDS": "1", "DEADLINE_MARGIN_SECONDS": "1"}
    summary = cloud.run_collector(**env)
    assert summary["collect_calls"]["ok"] == 1 and summary["replicas_deferred"] == 11
    assert len(emu.calls("CreateRedislog")) == 2, "the collector does not wait for DCS: one accepted, one busy"
    deliveries = cloud.trigger(timeout=3, **env).drain(max_rounds=60)
    outcomes = [d.result["jobs"][0]["outcome"] for d in deliveries]
    assert outcomes[-1] == "done" and outcomes.count("continued") >= 2, outcomes
    assert len(deliveries) <= 1 + 50, "bounded by JOB_MAX_CONTINUATIONS"
    (done,) = cloud.queue_keys("done")
    record = json.loads(cloud.obs.get_bytes(cloud.queue_bucket, done))
    assert record["continuations"] == outcomes.count("continued") and record["pending_replicas"] == []
    assert_every_node_day_accounted(cloud, inst, no_log={(quiet.replication_ip, d) for d in empty_days})


def test_scale_out_and_scale_in_between_runs_need_no_manual_step(mid_day):
    cloud = mid_day
    emu = cloud.emulator
    inst = emu.add_instance(name="cluster", tags=TAGS, cache_mode="cluster", shards=2, replicas=2)
    trigger = cloud.trigger(**FAST)
    a_day(cloud, trigger, sweeps=0)
    emu.clock.advance(days=1)
    added = emu.add_node(inst.instance_id)  # a new shard's master
    removed = inst.nodes[1]
    emu.remove_node(inst.instance_id, removed.replication_ip)
    a_day(cloud, trigger, sweeps=0)
    ledger = ledger_of(cloud, inst.instance_id)
    new = ledger.nodes[added.replication_ip]
    assert new.expected_from == cloud.yesterday() and new.state(cloud.yesterday()) == ARCHIVED
    old = ledger.nodes[removed.replication_ip]
    assert old.removed_on == emu.today().isoformat()
    before = (emu.today() - timedelta(days=2)).isoformat()
    assert old.state(before) == ARCHIVED, "its days archived before the scale-in stay archived"
    assert old.state(cloud.yesterday()) == FAILED and "scale-in" in old.days[cloud.yesterday()]["reason"]
    assert ledger.missing(emu.today()) == []
    logs = "\n".join(cloud.log_lines())
    assert "no longer listed (scale-in)" in logs and f"node {added.replication_ip} added" in logs
    # the same day again: up to date, one ListInstances and nothing else from DCS
    emu.reset_counters()
    assert cloud.run_collector(**FAST)["up_to_date"] == 1
    assert [c.op for c in emu.requests] == ["ListInstances"]


def test_a_node_with_no_log_on_some_days_is_proven_empty_and_not_collected_again(mid_day):
    cloud = mid_day
    emu = cloud.emulator
    inst = emu.add_instance(name="ha", tags=TAGS, cache_mode="ha", replicas=2)
    standby = inst.nodes[1]
    empty = {cloud.yesterday(), (emu.today() - timedelta(days=4)).isoformat()}
    emu.set_node_missing_days(inst.instance_id, standby.replication_ip, empty)
    a_day(cloud, cloud.trigger(**FAST), sweeps=0)
    ledger = assert_every_node_day_accounted(cloud, inst, no_log={(standby.replication_ip, d) for d in empty})
    assert ledger.nodes[standby.replication_ip].days[cloud.yesterday()]["query_time"] == 7
    emu.reset_counters()
    assert cloud.run_collector(**FAST)["up_to_date"] == 1, "a proven-empty yesterday is settled"


def test_a_collection_that_keeps_ending_failed_parks_the_job_instead_of_continuing_in_a_loop(mid_day):
    cloud = mid_day
    emu = cloud.emulator
    inst = emu.add_instance(name="ha", tags=TAGS, cache_mode="ha", replicas=2)
    standby = inst.nodes[1]
    emu.serialize_collections(inst.instance_id, 0.2)
    emu.faults.add("CreateRedislog", "fail_collection", replication_id=standby.replication_id)
    env = {**FAST, "COLLECT_SETTLE_SECONDS": "1"}
    cloud.run_collector(**env)
    deliveries = cloud.trigger(**env).drain(max_rounds=60)
    outcomes = [d.result["jobs"][0]["outcome"] for d in deliveries]
    assert outcomes[-1] == "retry" and outcomes.count("continued") <= 2, outcomes
    ledger = ledger_of(cloud, inst.instance_id)
    assert ledger.nodes[inst.nodes[0].replication_ip].state(cloud.yesterday()) == ARCHIVED
    record = ledger.nodes[standby.replication_ip].days[cloud.yesterday()]
    assert record["state"] == MISSING and record["reason"] == "collection ended failed"
