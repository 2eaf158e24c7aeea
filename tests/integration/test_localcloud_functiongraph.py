"""The FunctionGraph stand-in: context methods, event builders against the samples, OBS trigger on SeaweedFS."""

from __future__ import annotations

import json
import time
import uuid
from urllib.parse import unquote

import pytest
from obs import CompleteMultipartUploadRequest, CompletePart

from tests.localcloud.functiongraph import (
    EVENTGRID_OBS_SAMPLE,
    OBS_CLASSIC_SAMPLE,
    TIMER_SAMPLE,
    Context,
    LocalObsTrigger,
    eventgrid_obs_event,
    invoke,
    load_sample,
    obs_classic_event,
    timer_event,
)

PREFIX = "jobs/pending/"



def shape(value):
    """The structure of a JSON value: same keys, same nesting, same scalar types; values ignored."""
    if isinstance(value, dict):
        return {k: shape(v) for k, v in value.items()}
    if isinstance(value, list):
        return [shape(v) for v in value]
    return type(value).__name__


class Recorder:
    """A handler that keeps what it was called with."""

    def __init__(self, fail_times: int = 0):
        self.calls: list[tuple[dict, Context]] = []
        self.fail_times = fail_times

    def __call__(self, event, context):
        self.calls.append((event, context))
        context.getLogger().info("got %s", json.dumps(event)[:40])
        if len(self.calls) <= self.fail_times:
            raise RuntimeError(f"failure {len(self.calls)}")
        return {"seen": len(self.calls)}

    def classic_keys(self) -> list[str]:
        return [r["s3"]["object"]["key"] for event, _ in self.calls for r in event["Records"]]


def _put(obs, bucket, key, body) -> None:
    resp = obs.putContent(bucket, key, body)
    assert resp.status < 300, (resp.status, resp.errorCode)


# --- context -------------------------------------------------------------------------------------------------


def test_context_returns_what_it_was_configured_with():
    ctx = Context(request_id="req-1", function_name="archiver", version="v3", alias="prod", package="redislog",
                  memory_size=512, cpu_number=400, timeout=300, access_key="AK", secret_key="SK",
                  security_token="TOKEN", token="IAM-TOKEN", user_data={"ARCHIVE_BUCKET": "archive"})

    assert ctx.getRequestID() == "req-1"
    assert ctx.getFunctionName() == "archiver"
    assert ctx.getVersion() == "v3"
    assert ctx.getAlias() == "prod"
    assert ctx.getPackage() == "redislog"
    assert ctx.getMemorySize() == 512
    assert ctx.getCPUNumber() == 400
    assert ctx.getRunningTimeInSeconds() == 300
    assert (ctx.getSecurityAccessKey(), ctx.getSecuritySecretKey(), ctx.getSecurityToken()) == ("AK", "SK", "TOKEN")
    assert ctx.getToken() == "IAM-TOKEN"
    assert ctx.getUserData("ARCHIVE_BUCKET") == "archive"
    assert ctx.getUserData("QUEUE_BUCKET") is None
    assert ctx.getUserData("QUEUE_BUCKET", "fallback") == "fallback"


def test_context_defaults_are_a_900s_256mb_function_without_agency_and_a_fresh_request_id():
    first, second = Context(), Context()

    assert first.getRunningTimeInSeconds() == 900
    assert first.getMemorySize() == 256
    assert first.getCPUNumber() == 200  # 100 millicores per 128 MB
    assert first.getSecurityAccessKey() == first.getSecuritySecretKey() == first.getSecurityToken() == ""
    assert uuid.UUID(first.getRequestID()).version == 4
    assert first.getRequestID() != second.getRequestID()


def test_remaining_time_counts_down_on_the_real_clock():
    ctx = Context(timeout=2)
    before = ctx.getRemainingTimeInMilliSeconds()
    time.sleep(0.06)
    after = ctx.getRemainingTimeInMilliSeconds()

    assert 1900 < before <= 2000
    assert 50 <= before - after < 1000


def test_remaining_time_follows_a_given_clock_and_never_goes_negative():
    now = [100.0]
    ctx = Context(timeout=10, clock=lambda: now[0])

    assert ctx.getRemainingTimeInMilliSeconds() == 10_000
    now[0] = 107.5
    assert ctx.getRemainingTimeInMilliSeconds() == 2_500
    now[0] = 200.0
    assert ctx.getRemainingTimeInMilliSeconds() == 0


def test_logger_records_and_prints_each_line_with_level_and_request_id(capsys):
    ctx = Context(request_id="req-42")
    log = ctx.getLogger()

    log.info("archived %d files", 3)
    log.warn("slow link")
    log.error("failed")
    log.debug("detail")

    assert ctx.getLogger() is log
    assert log.messages() == ["archived 3 files", "slow link", "failed", "detail"]
    assert log.messages("WARN") == ["slow link"]
    assert [line.split(" ", 2)[1:] for line in log.lines] == [
        ["req-42", "INFO archived 3 files"], ["req-42", "WARN slow link"],
        ["req-42", "ERROR failed"], ["req-42", "DEBUG detail"]]
    printed = capsys.readouterr().out.splitlines()
    assert printed == log.lines


def test_runtime_environment_carries_the_presets_and_user_data():
    ctx = Context(function_name="collector", timeout=120, memory_size=128, project_id="p-1",
                  user_data={"DCS_REGION": "cn-north-4"})

    env = ctx.runtime_environment()

    assert env["RUNTIME_FUNC_NAME"] == "collector"
    assert env["RUNTIME_TIMEOUT"] == "120"
    assert env["RUNTIME_MEMORY"] == "128"
    assert env["RUNTIME_PROJECT_ID"] == "p-1"
    assert env["DCS_REGION"] == "cn-north-4"
    assert json.loads(env["RUNTIME_USERDATA"]) == {"DCS_REGION": "cn-north-4"}


def test_invoke_hands_the_handler_a_json_decoded_copy_and_returns_its_result():
    original = {"action": "collect", "instance_ids": ("i-1", "i-2")}
    seen = []

    def handler(event, context):
        seen.append(event)
        event["action"] = "changed"
        return context.getFunctionName()

    result = invoke(handler, original, Context(function_name="collector"))

    assert result == "collector"
    assert seen == [{"action": "changed", "instance_ids": ["i-1", "i-2"]}]
    assert original["action"] == "collect"
    with pytest.raises(TypeError):
        invoke(handler, {"when": object()})


# --- event builders ------------------------------------------------------------------------------------------


def test_timer_event_has_the_sample_shape_and_carries_user_event_as_json_text():
    event = timer_event({"action": "sweep", "instance_ids": ["i-1"]}, trigger_name="nightly")

    assert shape(event) == shape(load_sample(TIMER_SAMPLE))
    assert event["trigger_type"] == "TIMER"
    assert event["trigger_name"] == "nightly"
    assert json.loads(event["user_event"]) == {"action": "sweep", "instance_ids": ["i-1"]}
    assert timer_event('{"action": "collect"}')["user_event"] == '{"action": "collect"}'
    assert timer_event()["user_event"] == ""


def test_classic_obs_event_has_one_sample_shaped_record_per_key():
    keys = ["jobs/pending/a.json", "jobs/pending/b.json", "jobs/pending/c d.json"]

    event = obs_classic_event("queue-bucket", keys, sizes=[1, 2, 3], etags=['"e1"', "e2", "e3"])

    record_shape = shape(load_sample(OBS_CLASSIC_SAMPLE)["Records"][0])
    assert [shape(r) for r in event["Records"]] == [record_shape] * 3
    assert [r["s3"]["object"]["key"] for r in event["Records"]] == keys
    assert [r["s3"]["object"]["size"] for r in event["Records"]] == [1, 2, 3]
    assert [r["s3"]["object"]["eTag"] for r in event["Records"]] == ["e1", "e2", "e3"]
    assert {r["s3"]["bucket"]["name"] for r in event["Records"]} == {"queue-bucket"}
    assert event["Records"][0]["s3"]["bucket"]["arn"] == "arn:aws:s3:::queue-bucket"
    assert {r["eventName"] for r in event["Records"]} == {"ObjectCreated:Put"}
    sequencers = [r["s3"]["object"]["sequencer"] for r in event["Records"]]
    assert sequencers == sorted(set(sequencers))
    encoded = obs_classic_event("queue-bucket", "jobs/pending/c d.json", url_encode=True)
    assert encoded["Records"][0]["s3"]["object"]["key"] == "jobs/pending/c%20d.json"


def test_classic_obs_event_rejects_sizes_that_do_not_match_keys():
    with pytest.raises(ValueError):
        obs_classic_event("queue-bucket", ["a.json", "b.json"], sizes=[1])


def test_eventgrid_event_reproduces_the_sample_key_encoding():
    sample = load_sample(EVENTGRID_OBS_SAMPLE)
    key = unquote(sample["data"]["obs"]["object"]["key"])

    event = eventgrid_obs_event(sample["data"]["obs"]["bucket"]["name"], key, size=412,
                                etag=sample["data"]["obs"]["object"]["eTag"])

    assert shape(event) == shape(sample)
    assert event["data"]["obs"]["object"]["key"] == sample["data"]["obs"]["object"]["key"]
    assert event["subject"] == sample["subject"]
    assert event["data"]["obs"]["bucket"] == sample["data"]["obs"]["bucket"]
    assert (event["source"], event["type"]) == ("HC.OBS.DWR", "OBS:DWR:ObjectCreated:PUT")
    assert event["id"] != sample["id"]


def test_eventgrid_event_key_decodes_to_the_object_key_and_can_be_left_raw():
    key = "jobs/pending/实例 #1.json"

    encoded = eventgrid_obs_event("queue-bucket", key)
    raw = eventgrid_obs_event("queue-bucket", key, url_encode=False)

    assert "/" not in encoded["data"]["obs"]["object"]["key"]
    assert unquote(encoded["data"]["obs"]["object"]["key"]) == key
    assert unquote(encoded["subject"]) == key
    assert raw["data"]["obs"]["object"]["key"] == raw["subject"] == key


# --- the OBS trigger against SeaweedFS -----------------------------------------------------------------------


def test_put_under_the_prefix_fires_exactly_one_classic_event(obs, bucket):
    handler = Recorder()
    trigger = LocalObsTrigger(obs, bucket, PREFIX, handler)
    _put(obs, bucket, PREFIX + "i-1.json", b'{"job": 1}')

    first = trigger.pump()
    second = trigger.pump()

    assert len(first) == 1 and first[0].ok
    assert first[0].result == {"seen": 1}
    assert second == []
    (event, context), = handler.calls
    (record,) = event["Records"]
    assert record["s3"]["bucket"]["name"] == bucket
    assert record["s3"]["object"]["key"] == PREFIX + "i-1.json"
    assert record["s3"]["object"]["size"] == len(b'{"job": 1}')
    assert record["eventName"] == "ObjectCreated:Put"
    assert first[0].request_id == context.getRequestID()
    assert trigger.deliveries == first


def test_eventgrid_trigger_sends_a_url_encoded_key_that_decodes_to_the_object(obs, bucket):
    handler = Recorder()
    trigger = LocalObsTrigger(obs, bucket, PREFIX, handler, shape="eventgrid")
    key = PREFIX + "dcs 实例-1.json"
    _put(obs, bucket, key, b"{}")

    assert len(trigger.pump()) == 1
    (event, _), = handler.calls
    assert event["source"] == "HC.OBS.DWR"
    assert event["data"]["obs"]["bucket"]["name"] == bucket
    assert event["data"]["obs"]["object"]["key"] != key
    assert unquote(event["data"]["obs"]["object"]["key"]) == key
    assert unquote(event["subject"]) == key


def test_objects_outside_the_prefix_or_without_the_suffix_fire_nothing(obs, bucket):
    handler = Recorder()
    trigger = LocalObsTrigger(obs, bucket, PREFIX, handler)
    for key in ["jobs/retry/i-1.json", "jobs/done/i-1.json", "jobs/pendingx/i-1.json", PREFIX + "i-1.txt",
                PREFIX + "i-1.json.tmp"]:
        _put(obs, bucket, key, b"{}")

    assert trigger.pump() == []
    assert handler.calls == []


def test_overwrite_with_new_content_fires_again(obs, bucket):
    handler = Recorder()
    trigger = LocalObsTrigger(obs, bucket, PREFIX, handler)
    _put(obs, bucket, PREFIX + "i-1.json", b'{"attempt": 1}')
    trigger.pump()

    _put(obs, bucket, PREFIX + "i-1.json", b'{"attempt": 2}')
    again = trigger.pump()

    assert [d.key for d in again] == [PREFIX + "i-1.json"]
    assert handler.classic_keys() == [PREFIX + "i-1.json"] * 2
    etags = [event["Records"][0]["s3"]["object"]["eTag"] for event, _ in handler.calls]
    assert etags[0] != etags[1]


def test_an_object_deleted_and_written_again_fires_again(obs, bucket):
    handler = Recorder()
    trigger = LocalObsTrigger(obs, bucket, PREFIX, handler)
    _put(obs, bucket, PREFIX + "i-1.json", b"{}")
    trigger.pump()
    assert obs.deleteObject(bucket, PREFIX + "i-1.json").status < 300
    assert trigger.pump() == []

    _put(obs, bucket, PREFIX + "i-1.json", b"{}")

    assert len(trigger.pump()) == 1


def test_duplicate_delivers_the_same_event_twice(obs, bucket):
    handler = Recorder()
    trigger = LocalObsTrigger(obs, bucket, PREFIX, handler, shape="eventgrid", duplicate=True)
    _put(obs, bucket, PREFIX + "i-1.json", b"{}")

    delivered = trigger.pump()

    assert len(delivered) == 2
    assert handler.calls[0][0] == handler.calls[1][0]
    assert handler.calls[0][1].getRequestID() != handler.calls[1][1].getRequestID()
    _put(obs, bucket, PREFIX + "i-2.json", b"{}")
    assert len(trigger.pump(duplicate=False)) == 1


def test_listing_follows_every_page(obs, bucket):
    handler = Recorder()
    trigger = LocalObsTrigger(obs, bucket, PREFIX, handler, page_size=2)
    keys = [f"{PREFIX}i-{n}.json" for n in range(5)]
    for key in keys:
        _put(obs, bucket, key, b"{}")

    trigger.pump()

    assert handler.classic_keys() == keys


def test_reorder_shuffles_deliveries_reproducibly_by_seed(obs, bucket):
    keys = [f"{PREFIX}i-{n}.json" for n in range(8)]
    for key in keys:
        _put(obs, bucket, key, b"{}")

    orders = []
    for _ in range(2):
        trigger = LocalObsTrigger(obs, bucket, PREFIX, Recorder(), reorder=True, seed=7)
        orders.append([d.key for d in trigger.pump()])
    in_order = [d.key for d in LocalObsTrigger(obs, bucket, PREFIX, Recorder()).pump()]

    assert in_order == keys
    assert sorted(orders[0]) == keys
    assert orders[0] != keys
    assert orders[0] == orders[1]


def test_failing_handler_is_recorded_and_retry_failed_delivers_it_once_more(obs, bucket):
    handler = Recorder(fail_times=1)
    trigger = LocalObsTrigger(obs, bucket, PREFIX, handler)
    _put(obs, bucket, PREFIX + "i-1.json", b"{}")

    (failed,) = trigger.pump()
    assert not failed.ok
    assert isinstance(failed.error, RuntimeError)
    assert "failure 1" in failed.traceback
    assert trigger.failed == [failed]

    (retry,) = trigger.retry_failed()

    assert retry.ok and retry.attempt == 2
    assert retry.event == failed.event
    assert retry.result == {"seen": 2}
    assert trigger.retry_failed() == []
    assert trigger.pump() == []
    assert len(handler.calls) == 2


def test_a_retry_that_fails_again_can_be_retried_again(obs, bucket):
    trigger = LocalObsTrigger(obs, bucket, PREFIX, Recorder(fail_times=2))
    _put(obs, bucket, PREFIX + "i-1.json", b"{}")
    trigger.pump()

    (second,) = trigger.retry_failed()
    (third,) = trigger.retry_failed()

    assert (second.ok, second.attempt) == (False, 2)
    assert (third.ok, third.attempt) == (True, 3)


def test_ignore_existing_skips_objects_already_there(obs, bucket):
    _put(obs, bucket, PREFIX + "old.json", b"{}")
    handler = Recorder()
    trigger = LocalObsTrigger(obs, bucket, PREFIX, handler)
    trigger.ignore_existing()
    _put(obs, bucket, PREFIX + "new.json", b"{}")

    trigger.pump()

    assert handler.classic_keys() == [PREFIX + "new.json"]


def test_multipart_object_fires_a_complete_multipart_upload_event(obs, bucket):
    handler = Recorder()
    trigger = LocalObsTrigger(obs, bucket, PREFIX, handler)
    key = PREFIX + "big.json"
    init = obs.initiateMultipartUpload(bucket, key)
    part = obs.uploadPart(bucket, key, 1, init.body.uploadId, object=b"{}")
    done = obs.completeMultipartUpload(bucket, key, init.body.uploadId,
                                       CompleteMultipartUploadRequest(parts=[CompletePart(1, part.body.etag)]))
    assert done.status < 300

    trigger.pump()

    (event, _), = handler.calls
    assert event["Records"][0]["eventName"] == "ObjectCreated:CompleteMultipartUpload"


def test_handlers_get_contexts_from_the_factory_and_their_logs_are_kept(obs, bucket):
    def handler(event, context):
        context.getLogger().info("bucket=%s", context.getUserData("QUEUE_BUCKET"))
        return context.getRemainingTimeInMilliSeconds()

    trigger = LocalObsTrigger(obs, bucket, PREFIX, handler,
                              context_factory=lambda: Context(timeout=30, user_data={"QUEUE_BUCKET": bucket}))
    _put(obs, bucket, PREFIX + "i-1.json", b"{}")

    (delivery,) = trigger.pump()

    assert delivery.ok
    assert 0 < delivery.result <= 30_000
    assert len(delivery.logs) == 1 and delivery.logs[0].endswith(f"INFO bucket={bucket}")


def test_drain_follows_objects_that_handlers_write_until_nothing_new_appears(obs, bucket):
    def move_to_retry(event, context):
        key = event["Records"][0]["s3"]["object"]["key"]
        name = key[len(PREFIX):]
        if name.startswith("first"):
            _put(obs, bucket, PREFIX + "second.json", b"{}")  # a new job under the prefix: one more round
        _put(obs, bucket, "jobs/retry/" + name, b"{}")
        assert obs.deleteObject(bucket, key).status < 300
        return name

    trigger = LocalObsTrigger(obs, bucket, PREFIX, move_to_retry)
    _put(obs, bucket, PREFIX + "first.json", b"{}")

    delivered = trigger.drain(max_rounds=5)

    assert [d.result for d in delivered] == ["first.json", "second.json"]
    assert all(d.ok for d in delivered)
    assert obs.listObjects(bucket, prefix=PREFIX).body.contents == []


def test_drain_fails_when_a_handler_keeps_rewriting_under_its_own_prefix(obs, bucket):
    counter = {"n": 0}

    def rewrite_in_place(event, context):
        counter["n"] += 1
        _put(obs, bucket, event["Records"][0]["s3"]["object"]["key"], json.dumps(counter).encode())

    trigger = LocalObsTrigger(obs, bucket, PREFIX, rewrite_in_place)
    _put(obs, bucket, PREFIX + "loop.json", b"{}")

    with pytest.raises(RuntimeError, match="after 3 rounds"):
        trigger.drain(max_rounds=3)
    assert counter["n"] == 3


def test_trigger_rejects_an_unknown_shape(obs, bucket):
    with pytest.raises(ValueError):
        LocalObsTrigger(obs, bucket, PREFIX, Recorder(), shape="smn")
