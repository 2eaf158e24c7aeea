"""Trigger payloads: the timer and manual runs for the collector; OBS, EventGrid and direct jobs for the archiver."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from shared.events import (
    ArchiverRequest,
    CollectorRequest,
    EventError,
    ObjectRef,
    parse_archiver_event,
    parse_collector_event,
)

EVENTS = Path(__file__).resolve().parents[1] / "localcloud" / "events"
PENDING = "jobs/pending/5560df16-cebf-4473-95c4-d1b573c16e79.json"


def sample(name: str) -> dict:
    return json.loads((EVENTS / name).read_text(encoding="utf-8"))


def timer(user_event: object = ...) -> dict:
    event = {"version": "v1.0", "time": "2026-11-22T01:30:00+08:00", "trigger_type": "TIMER",
             "trigger_name": "daily-collect"}
    if user_event is not ...:
        event["user_event"] = user_event
    return event


# --- collector ------------------------------------------------------------------------------------------

def test_sample_timer_event_is_a_collect_run():
    assert parse_collector_event(sample("timer.json")) == CollectorRequest("collect", None, "timer")


def test_timer_without_user_event_collects_everything():
    assert parse_collector_event(timer()) == CollectorRequest("collect", None, "timer")


@pytest.mark.parametrize("user_event", ["", None])
def test_timer_with_empty_user_event_collects_everything(user_event):
    assert parse_collector_event(timer(user_event)) == CollectorRequest("collect", None, "timer")


def test_timer_user_event_may_ask_for_a_sweep():
    assert parse_collector_event(timer('{"action": "sweep"}')).action == "sweep"


def test_timer_user_event_may_name_instances():
    request = parse_collector_event(timer(json.dumps({"action": "collect", "instance_ids": ["i-1", "i-2"]})))
    assert request == CollectorRequest("collect", ("i-1", "i-2"), "timer")


def test_timer_user_event_already_decoded_is_accepted():
    assert parse_collector_event(timer({"action": "sweep"})).action == "sweep"


def test_an_event_with_user_event_but_no_trigger_type_is_a_timer():
    assert parse_collector_event({"user_event": '{"action": "sweep"}'}).source == "timer"


def test_direct_invocation_takes_the_same_json():
    assert parse_collector_event({"action": "sweep"}) == CollectorRequest("sweep", None, "direct")
    assert parse_collector_event({"instance_ids": ["i-9"]}) == CollectorRequest("collect", ("i-9",), "direct")


@pytest.mark.parametrize("event", [None, {}])
def test_an_empty_invocation_collects_everything(event):
    assert parse_collector_event(event) == CollectorRequest("collect", None, "direct")


def test_instance_ids_are_stripped_and_deduplicated_in_order():
    request = parse_collector_event({"instance_ids": [" i-2", "i-1", "i-2 ", "i-1"]})
    assert request.instance_ids == ("i-2", "i-1")


@pytest.mark.parametrize("user_event", ["not json", "{", "{'action': 'sweep'}"])
def test_timer_user_event_that_is_not_json_is_refused_quoting_it(user_event):
    with pytest.raises(EventError, match="user_event is not JSON") as info:
        parse_collector_event(timer(user_event))
    assert user_event[:10] in str(info.value)


@pytest.mark.parametrize("user_event", ["[1, 2]", '"collect"', "42", "null"])
def test_timer_user_event_must_be_a_json_object(user_event):
    with pytest.raises(EventError):
        parse_collector_event(timer(user_event))


@pytest.mark.parametrize("action", ["delete", "COLLECT", "", None, 1])
def test_an_unknown_action_is_refused_and_named(action):
    with pytest.raises(EventError, match="must be 'collect' or 'sweep'") as info:
        parse_collector_event({"action": action})
    assert repr(action) in str(info.value)


def test_an_unknown_action_in_a_timer_is_refused():
    with pytest.raises(EventError):
        parse_collector_event(timer('{"action": "purge"}'))


@pytest.mark.parametrize("ids", ["i-1", ["i-1", 2], ["i-1", ""], ["  "], {"i-1": 1}, 5])
def test_instance_ids_must_be_a_list_of_id_strings(ids):
    with pytest.raises(EventError, match="instance_ids"):
        parse_collector_event({"action": "collect", "instance_ids": ids})


@pytest.mark.parametrize("event", [[], "collect", 42])
def test_a_collector_event_that_is_not_an_object_is_refused(event):
    with pytest.raises(EventError, match="must be a JSON object") as info:
        parse_collector_event(event)
    assert type(event).__name__ in str(info.value)


# --- archiver -----------------------------------------------------------------------------------------------

def test_sample_classic_obs_event_gives_the_pending_object():
    request = parse_archiver_event(sample("obs-classic-object-created.json"))
    assert request == ArchiverRequest([ObjectRef("redislog-jobs-example", PENDING, "ObjectCreated:Put")], None,
                                      "obs")


def test_sample_eventgrid_event_gives_the_decoded_pending_object():
    request = parse_archiver_event(sample("eventgrid-obs-object-created.json"))
    assert request.source == "eventgrid"
    assert request.inline_job is None
    assert request.objects == [ObjectRef("redislog-jobs-example", PENDING, "OBS:DWR:ObjectCreated:PUT")]


def test_every_sample_archiver_event_is_recognised():
    names = sorted(p.name for p in EVENTS.glob("*.json") if p.name != "timer.json")
    assert names  # the samples are there to be read
    for name in names:
        request = parse_archiver_event(sample(name))
        assert [o.key for o in request.objects] == [PENDING], name


def test_classic_obs_keys_are_url_decoded():
    event = sample("obs-classic-object-created.json")
    event["Records"][0]["s3"]["object"]["key"] = "jobs%2Fpending%2Fi-1.json"
    assert parse_archiver_event(event).objects[0].key == "jobs/pending/i-1.json"


def test_classic_obs_plus_is_a_space_and_encoded_plus_is_a_plus():
    event = sample("obs-classic-object-created.json")
    event["Records"][0]["s3"]["object"]["key"] = "jobs/pending/a+b%2Bc.json"
    assert parse_archiver_event(event).objects[0].key == "jobs/pending/a b+c.json"


def test_classic_obs_event_with_several_records_gives_each_object_in_order():
    event = sample("obs-classic-object-created.json")
    record = event["Records"][0]
    second = json.loads(json.dumps(record))
    second["s3"]["object"]["key"] = "jobs%2Fpending%2Fi-2.json"
    second["eventName"] = "ObjectCreated:Post"
    event["Records"] = [record, second]
    objects = parse_archiver_event(event).objects
    assert [(o.key, o.event_name) for o in objects] == [(PENDING, "ObjectCreated:Put"),
                                                          ("jobs/pending/i-2.json", "ObjectCreated:Post")]


def test_classic_obs_event_with_no_records_has_no_objects():
    assert parse_archiver_event({"Records": []}) == ArchiverRequest([], None, "obs")


@pytest.mark.parametrize("record", [{}, {"s3": {}}, {"s3": {"bucket": {"name": "b"}}}, "text", None])
def test_a_classic_record_without_bucket_and_key_is_refused(record):
    event = {"Records": [sample("obs-classic-object-created.json")["Records"][0], record]}
    with pytest.raises(EventError, match="record 1"):
        parse_archiver_event(event)


def test_eventgrid_bucket_may_be_given_as_bucket_only():
    event = sample("eventgrid-obs-object-created.json")
    event["data"]["obs"]["bucket"] = {"bucket": "only-bucket"}
    assert parse_archiver_event(event).objects[0].bucket == "only-bucket"


def test_eventgrid_bucket_may_be_given_as_a_string():
    event = sample("eventgrid-obs-object-created.json")
    event["data"]["obs"]["bucket"] = "plain-bucket"
    assert parse_archiver_event(event).objects[0].bucket == "plain-bucket"


def test_eventgrid_without_a_bucket_name_is_refused():
    event = sample("eventgrid-obs-object-created.json")
    event["data"]["obs"]["bucket"] = {}
    with pytest.raises(EventError, match="bucket"):
        parse_archiver_event(event)


def test_eventgrid_without_an_object_key_is_refused():
    event = sample("eventgrid-obs-object-created.json")
    del event["data"]["obs"]["object"]
    with pytest.raises(EventError, match="data.obs"):
        parse_archiver_event(event)


def test_a_job_passed_directly_is_taken_inline():
    job = {"schema": 1, "instance_id": "i-1"}
    assert parse_archiver_event({"job": job}) == ArchiverRequest([], job, "direct")


def test_a_bucket_and_key_passed_directly_are_taken_as_they_are():
    request = parse_archiver_event({"bucket": "b", "key": "jobs/pending/a%2Fb.json"})
    assert request == ArchiverRequest([ObjectRef("b", "jobs/pending/a%2Fb.json", "direct")], None, "direct")


@pytest.mark.parametrize("event", [
    {"foo": 1, "bar": 2},
    {"job": "not an object"},
    {"bucket": "b"},
    {"data": {"obs": {}}},  # no specversion: not a CloudEvent
    {"Records": "not a list"},
])
def test_an_unknown_shape_is_refused_naming_the_keys_received(event):
    with pytest.raises(EventError) as info:
        parse_archiver_event(event)
    message = str(info.value)
    assert "not recognised" in message
    assert f"received object with keys {sorted(event)}" in message


def test_an_unknown_shape_message_never_carries_values():
    with pytest.raises(EventError) as info:
        parse_archiver_event({"token": "s3cr3t-value"})
    assert "s3cr3t-value" not in str(info.value)
    assert "token" in str(info.value)


@pytest.mark.parametrize("event", [None, [], "text", 3])
def test_an_archiver_event_that_is_not_an_object_is_refused(event):
    with pytest.raises(EventError, match="must be a JSON object") as info:
        parse_archiver_event(event)
    assert type(event).__name__ in str(info.value)


def test_event_error_is_a_value_error():
    assert issubclass(EventError, ValueError)
