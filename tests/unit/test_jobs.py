"""The job objects and their pure decisions: round trip, malformed jobs, queue keys, sweep decisions."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

import pytest

from shared.jobs import (
    SCHEMA_VERSION,
    Job,
    MalformedJob,
    decide_pending,
    decide_retry,
    done_key,
    failed_key,
    instance_of_pending,
    iso,
    parse_time,
    pending_key,
    retry_delay,
    retry_key,
)

NOW = datetime(2026, 11, 22, 2, 0, 0, tzinfo=timezone.utc)
Q = "redis-run-log-jobs/"


def job(**changes) -> Job:
    base = dict(instance_id="5560df16-cebf-4473-95c4-d1b573c16e79", instance_name="orders-cache",
                project_id="0123456789abcdef", region="cn-north-4", query_time=1,
                replication_ids=("r1", "r2"), requested_at="2026-11-22T01:30:00+00:00",
                entries_before=("e1", "e2", "e3"), job_id="abc123", replication_ips=("10.0.0.1", "10.0.0.2"))
    base.update(changes)
    return Job(**base)


def good_dict(**changes) -> dict:
    data = job().to_dict()
    for name, value in changes.items():
        if value is ...:
            data.pop(name, None)
        else:
            data[name] = value
    return data


# --- round trip -------------------------------------------------------------------------------------

def test_job_round_trips_through_dict():
    original = job(attempts=2, last_error="boom", next_attempt_at="2026-11-22T03:00:00+00:00",
                   redriven_at="2026-11-22T02:00:00+00:00")
    assert Job.from_dict(original.to_dict()) == original


def test_job_round_trips_through_json_bytes():
    original = job()
    assert Job.parse(json.dumps(original.to_dict()).encode("utf-8")) == original


def test_to_dict_is_plain_json_with_lists_and_the_schema_version():
    data = job().to_dict()
    assert data["schema"] == SCHEMA_VERSION == 2
    assert data["replication_ids"] == ["r1", "r2"]
    assert data["entries_before"] == ["e1", "e2", "e3"]
    assert data["replication_ips"] == ["10.0.0.1", "10.0.0.2"]
    assert json.loads(json.dumps(data)) == data
    for name in ("job_id", "project_id", "region", "instance_id", "instance_name", "query_time", "requested_at",
                 "attempts", "last_error"):
        assert name in data


def test_each_job_gets_its_own_id():
    a = Job("i", "", "p", "r", 1, (), "2026-11-22T00:00:00+00:00", ())
    b = Job("i", "", "p", "r", 1, (), "2026-11-22T00:00:00+00:00", ())
    assert a.job_id != b.job_id
    assert len(a.job_id) == 32
    assert a.attempts == 0 and a.last_error is None


def test_optional_fields_may_be_absent():
    data = good_dict(instance_name=..., region=..., replication_ids=..., entries_before=..., attempts=...,
                     last_error=..., next_attempt_at=..., redriven_at=..., replication_ips=...)
    parsed = Job.from_dict(data)
    assert parsed.instance_name == "" and parsed.region == ""
    assert parsed.replication_ids == () and parsed.entries_before == () and parsed.replication_ips == ()
    assert parsed.attempts == 0 and parsed.last_error is None


def test_unknown_extra_fields_are_ignored():
    # done/retry objects carry extra fields (state, files, summary) next to the job
    assert Job.from_dict(good_dict(state="retry", files=[])) == job()


# --- malformed jobs ----------------------------------------------------------------------------------

@pytest.mark.parametrize("raw", [b"", b"not json", b"{", b"\xff\xfe", b"null", b"[1, 2]", b'"text"', b"42"])
def test_garbage_is_a_malformed_job(raw):
    with pytest.raises(MalformedJob):
        Job.parse(raw, where="bucket/pending/x.json")


def test_malformed_message_says_where_the_object_is():
    with pytest.raises(MalformedJob, match=r"^bucket/pending/x\.json: not JSON"):
        Job.parse(b"not json", where="bucket/pending/x.json")


def test_a_json_array_is_not_a_job_object():
    with pytest.raises(MalformedJob, match="not a JSON object"):
        Job.parse(b"[]")


@pytest.mark.parametrize("schema", [..., None, 0, 3, "1"])
def test_another_schema_version_is_refused(schema):
    with pytest.raises(MalformedJob, match="schema"):
        Job.from_dict(good_dict(schema=schema))


@pytest.mark.parametrize("name", ["instance_id", "project_id", "requested_at", "job_id", "query_time"])
def test_a_missing_required_field_is_refused_and_named(name):
    with pytest.raises(MalformedJob, match=name):
        Job.from_dict(good_dict(**{name: ...}))


@pytest.mark.parametrize("name", ["instance_id", "project_id", "requested_at", "job_id"])
@pytest.mark.parametrize("value", ["", None, 7, ["x"]])
def test_a_required_text_field_must_be_a_non_empty_string(name, value):
    with pytest.raises(MalformedJob, match=name):
        Job.from_dict(good_dict(**{name: value}))


@pytest.mark.parametrize("changes", [{"query_time": "seven"}, {"query_time": None}, {"attempts": "many"}])
def test_numbers_that_are_not_numbers_are_refused(changes):
    with pytest.raises(MalformedJob):
        Job.from_dict(good_dict(**changes))


@pytest.mark.parametrize("instance_id", ["a/b", "../x", "/", "   "])
def test_an_instance_id_that_is_not_an_id_is_refused(instance_id):
    with pytest.raises(MalformedJob, match="is not an id"):
        Job.from_dict(good_dict(instance_id=instance_id))


@pytest.mark.parametrize("requested_at", ["yesterday", "2026-13-01T00:00:00", "22/11/2026", "now"])
def test_a_requested_at_that_is_not_a_time_is_refused(requested_at):
    with pytest.raises(MalformedJob, match="is not ISO 8601"):
        Job.from_dict(good_dict(requested_at=requested_at))


def test_entries_before_given_as_a_string_is_refused():
    with pytest.raises(MalformedJob):
        Job.from_dict(good_dict(entries_before="e1"))


def test_a_next_attempt_at_that_is_not_a_time_is_refused():
    with pytest.raises(MalformedJob):
        Job.from_dict(good_dict(next_attempt_at="tomorrow"))


# --- times ----------------------------------------------------------------------------------------------

def test_parse_time_reads_z_and_offsets_and_takes_naive_as_utc():
    assert parse_time("2026-11-22T01:30:00Z") == datetime(2026, 11, 22, 1, 30, tzinfo=timezone.utc)
    assert parse_time("2026-11-22T09:30:00+08:00") == datetime(2026, 11, 22, 1, 30, tzinfo=timezone.utc)
    assert parse_time("2026-11-22T01:30:00").tzinfo is not None
    assert parse_time("2026-11-22T01:30:00") == datetime(2026, 11, 22, 1, 30, tzinfo=timezone.utc)


@pytest.mark.parametrize("text", [None, "", "garbage"])
def test_parse_time_refuses_non_times(text):
    with pytest.raises(MalformedJob):
        parse_time(text)


def test_iso_is_utc_to_the_second():
    assert iso(datetime(2026, 11, 22, 9, 30, 5, 123456, tzinfo=timezone(timedelta(hours=8)))) == \
        "2026-11-22T01:30:05+00:00"


# --- keys -------------------------------------------------------------------------------------------------

def test_queue_keys_per_state():
    j = job()
    assert pending_key(Q, j.instance_id) == f"{Q}pending/{j.instance_id}.json"
    assert retry_key(Q, j.instance_id) == f"{Q}retry/{j.instance_id}.json"
    assert done_key(Q, j) == f"{Q}done/{j.instance_id}/2026-11-22-abc123.json"
    assert failed_key(Q, j.instance_id, j.job_id) == f"{Q}failed/{j.instance_id}/abc123.json"


def test_retry_is_outside_the_pending_prefix_so_parking_fires_no_event():
    assert not retry_key(Q, "i").startswith(f"{Q}pending/")
    assert instance_of_pending(Q, retry_key(Q, "i")) is None


def test_instance_of_pending_inverts_pending_key():
    for instance_id in ["i-1", "5560df16-cebf-4473-95c4-d1b573c16e79", "x.json"]:
        assert instance_of_pending(Q, pending_key(Q, instance_id)) == instance_id


@pytest.mark.parametrize("key", [
    f"{Q}pending/.json",  # empty name
    f"{Q}pending/a/b.json",  # nested
    f"{Q}pending/i-1.txt",  # not a job object
    f"{Q}pending/i-1",
    f"{Q}retry/i-1.json",
    f"{Q}done/i-1/x.json",
    f"{Q}pendingx/i-1.json",
    "other/pending/i-1.json",
    "pending/i-1.json",
    "",
])
def test_instance_of_pending_is_none_for_anything_else(key):
    assert instance_of_pending(Q, key) is None


def test_instance_of_pending_with_an_empty_prefix():
    assert instance_of_pending("", "pending/i-1.json") == "i-1"


# --- retry delay ----------------------------------------------------------------------------------------------

@pytest.mark.parametrize("attempts, seconds", [(0, 1800), (1, 1800), (2, 3600), (3, 7200), (4, 14400),
                                               (6, 57600), (7, 86400), (30, 86400)])
def test_retry_delay_doubles_from_the_base_up_to_one_day(attempts, seconds):
    assert retry_delay(attempts, 1800) == timedelta(seconds=seconds)


def test_retry_delay_with_zero_base_is_immediate():
    assert retry_delay(5, 0) == timedelta(0)


# --- decide_retry ------------------------------------------------------------------------------------------------

def test_a_due_retry_is_redriven_with_its_schedule_cleared():
    j = job(attempts=2, last_error="x", next_attempt_at=iso(NOW - timedelta(minutes=1)))
    decision = decide_retry(j, NOW, max_attempts=5)
    assert decision.action == "redrive"
    assert decision.job.next_attempt_at is None
    assert decision.job.redriven_at == iso(NOW)
    assert decision.job.attempts == 2  # counted when the archiver parks it, not when it is re-driven
    assert decision.job.job_id == j.job_id


def test_a_retry_due_exactly_now_is_redriven():
    assert decide_retry(job(attempts=1, next_attempt_at=iso(NOW)), NOW, 5).action == "redrive"


def test_a_retry_without_a_schedule_is_redriven():
    assert decide_retry(job(attempts=1), NOW, 5).action == "redrive"


def test_a_retry_not_yet_due_waits():
    j = job(attempts=1, next_attempt_at=iso(NOW + timedelta(seconds=1)))
    decision = decide_retry(j, NOW, 5)
    assert decision.action == "wait"
    assert decision.job == j


@pytest.mark.parametrize("attempts", [5, 6, 50])
def test_a_retry_at_the_attempt_limit_is_dead_with_its_last_error(attempts):
    j = job(attempts=attempts, last_error="ListRedislog: 500 DCS.5000", next_attempt_at=iso(NOW + timedelta(1)))
    decision = decide_retry(j, NOW, 5)
    assert decision.action == "dead"
    assert decision.reason == f"gave up after {attempts} attempts: ListRedislog: 500 DCS.5000"


def test_a_retry_below_the_limit_is_not_dead():
    assert decide_retry(job(attempts=4), NOW, 5).action != "dead"


# --- decide_pending ------------------------------------------------------------------------------------------------

def test_a_pending_job_of_unknown_age_waits():
    assert decide_pending(job(), None, NOW, 7200, 5).action == "wait"


def test_a_fresh_pending_job_waits():
    assert decide_pending(job(), NOW - timedelta(seconds=7199), NOW, 7200, 5).action == "wait"


def test_a_stale_pending_job_is_written_again_with_an_attempt_counted():
    last = NOW - timedelta(seconds=7200)
    decision = decide_pending(job(attempts=1), last, NOW, 7200, 5)
    assert decision.action == "rewrite"
    assert decision.job.attempts == 2
    assert decision.job.redriven_at == iso(NOW)
    assert iso(last) in decision.job.last_error
    assert "pending" in decision.job.last_error


def test_a_stale_pending_job_keeps_its_earlier_error():
    decision = decide_pending(job(attempts=1, last_error="copy failed"), NOW - timedelta(days=1), NOW, 7200, 5)
    assert decision.job.last_error == "copy failed"


def test_a_stale_pending_job_reaching_the_limit_is_dead():
    decision = decide_pending(job(attempts=4), NOW - timedelta(hours=3), NOW, 7200, 5)
    assert decision.action == "dead"
    assert decision.job.attempts == 5
    assert decision.reason.startswith("gave up after 5 attempts: ")
    assert "left in pending" in decision.reason


def test_decisions_do_not_change_the_job_they_are_given():
    j = job(attempts=1)
    decide_pending(j, NOW - timedelta(days=1), NOW, 7200, 5)
    decide_retry(j, NOW, 5)
    assert j == job(attempts=1)


def test_a_version_1_job_from_before_the_ledger_is_read_with_empty_replica_lists():
    data = good_dict(schema=1)
    for name in ("topology", "pending_replicas", "node_collected_at", "continuations", "cache_mode"):
        data.pop(name)
    old = Job.from_dict(data)
    assert old.pending_replicas == () and old.topology == () and old.node_collected_at == {}
    assert old.to_dict()["schema"] == 2


def test_pending_replicas_and_collect_times_round_trip():
    original = job(cache_mode="ha", continuations=3,
                   topology=({"replication_id": "r1", "replication_ip": "10.0.0.1", "group_name": "g",
                              "role": "master"},),
                   pending_replicas=({"replication_id": "r2", "replication_ip": "10.0.0.2", "group_name": "g",
                                      "attempts": 2, "last_error": "DCS.5000"},),
                   node_collected_at={"10.0.0.1": "2026-11-22T01:30:01.000+00:00"})
    assert Job.from_dict(json.loads(json.dumps(original.to_dict()))) == original


@pytest.mark.parametrize("name, value", [
    ("pending_replicas", "r2"), ("pending_replicas", [1]), ("pending_replicas", [{"replication_id": 5}]),
    ("topology", {"a": 1}), ("node_collected_at", ["x"]), ("node_collected_at", {"10.0.0.1": "yesterday"}),
])
def test_malformed_replica_lists_are_refused_naming_the_field(name, value):
    with pytest.raises(MalformedJob):
        Job.from_dict(good_dict(**{name: value}))
