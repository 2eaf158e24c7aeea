"""Small read-only wrappers over the trigger payloads, so handlers never dig through raw dicts.

Shapes (FunctionGraph's public trigger docs; samples in tests/localcloud/events/):
- timer: `{"trigger_type": "TIMER", "trigger_name", "time", "user_event": "<string, often JSON>"}`
- classic OBS trigger: `{"Records": [{"eventName": "ObjectCreated:Put", "s3": {"bucket": {"name"},
  "object": {"key"}}}]}`, several records per event possible, keys may be URL-encoded
- EventGrid CloudEvent from OBS: `{"specversion", "source": "HC.OBS.DWR", "type", "data": {"obs": {"bucket":
  {"name"|"bucket"}, "object": {"key"}}}}`, key URL-encoded when the subscription asks for it
- direct invocation: `{"action": ...}` for the collector, `{"job": {...}}` or `{"bucket", "key"}` for the archiver
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Optional
from urllib.parse import unquote_plus


class EventError(ValueError):
    """The event has a shape this function does not take; the message says what was received."""


def describe(event: Any) -> str:
    """A short description of an unexpected event: its type and top-level keys, never its values."""
    if isinstance(event, dict):
        return f"object with keys {sorted(event)[:12]}"
    return f"{type(event).__name__}"


# --- collector --------------------------------------------------------------------------------------

@dataclass(frozen=True)
class CollectorRequest:
    action: str  # "collect" or "sweep"
    instance_ids: Optional[tuple[str, ...]]  # a manual run limited to these instances
    source: str  # "timer", "direct"


def parse_collector_event(event: Any) -> CollectorRequest:
    """A timer event (its user_event may carry the manual-run JSON), or that JSON invoked directly."""
    if event is None:
        event = {}
    if not isinstance(event, dict):
        raise EventError(f"collector event must be a JSON object, got {describe(event)}")
    source = "direct"
    body: Any = event
    if event.get("trigger_type") == "TIMER" or "user_event" in event:
        source = "timer"
        raw = event.get("user_event")
        if raw in (None, ""):
            body = {}
        elif isinstance(raw, dict):
            body = raw
        else:
            try:
                body = json.loads(raw)
            except (TypeError, ValueError):
                raise EventError(f"timer user_event is not JSON: {str(raw)[:80]!r}") from None
            if not isinstance(body, dict):
                raise EventError(f"timer user_event must be a JSON object, got {describe(body)}")
    action = body.get("action", "collect")
    if action not in ("collect", "sweep"):
        raise EventError(f"action {action!r}: must be 'collect' or 'sweep'")
    ids = body.get("instance_ids")
    if ids is not None:
        if not isinstance(ids, list) or not all(isinstance(i, str) and i.strip() for i in ids):
            raise EventError("instance_ids must be a list of instance id strings")
        ids = tuple(dict.fromkeys(i.strip() for i in ids))
    return CollectorRequest(action, ids, source)


# --- archiver ---------------------------------------------------------------------------------------

@dataclass(frozen=True)
class ObjectRef:
    bucket: str
    key: str
    event_name: str


class ObsClassicEvent:
    """The classic OBS trigger's event (`Records[].s3`)."""

    def __init__(self, event: dict) -> None:
        self._event = event

    @staticmethod
    def matches(event: dict) -> bool:
        return isinstance(event.get("Records"), list)

    @property
    def objects(self) -> list[ObjectRef]:
        refs = []
        for i, record in enumerate(self._event["Records"]):
            try:
                s3 = record["s3"]
                bucket, key = s3["bucket"]["name"], s3["object"]["key"]
            except (KeyError, TypeError):
                raise EventError(f"OBS event record {i} has no s3.bucket.name / s3.object.key: "
                                 f"{describe(record)}") from None
            refs.append(ObjectRef(str(bucket), unquote_plus(str(key)), str(record.get("eventName", ""))))
        return refs


class EventGridObsEvent:
    """An OBS event delivered by EventGrid as a CloudEvent (source HC.OBS.DWR, payload in `data.obs`)."""

    def __init__(self, event: dict) -> None:
        self._event = event

    @staticmethod
    def matches(event: dict) -> bool:
        data = event.get("data")
        return "specversion" in event and isinstance(data, dict) and "obs" in data

    @property
    def objects(self) -> list[ObjectRef]:
        obs = self._event["data"]["obs"]
        try:
            bucket_info, key = obs["bucket"], obs["object"]["key"]
        except (KeyError, TypeError):
            raise EventError(f"EventGrid OBS event has no data.obs.bucket / data.obs.object.key: "
                             f"{describe(obs)}") from None
        bucket = bucket_info.get("name") or bucket_info.get("bucket") if isinstance(bucket_info, dict) \
            else bucket_info
        if not bucket:
            raise EventError("EventGrid OBS event has no bucket name in data.obs.bucket")
        return [ObjectRef(str(bucket), unquote_plus(str(key)), str(self._event.get("type", "")))]


@dataclass(frozen=True)
class ArchiverRequest:
    objects: list[ObjectRef]  # queue objects to process
    inline_job: Optional[dict]  # a job passed directly in the event
    source: str


def parse_archiver_event(event: Any) -> ArchiverRequest:
    if not isinstance(event, dict):
        raise EventError(f"archiver event must be a JSON object, got {describe(event)}")
    if ObsClassicEvent.matches(event):
        return ArchiverRequest(ObsClassicEvent(event).objects, None, "obs")
    if EventGridObsEvent.matches(event):
        return ArchiverRequest(EventGridObsEvent(event).objects, None, "eventgrid")
    if isinstance(event.get("job"), dict):
        return ArchiverRequest([], event["job"], "direct")
    if isinstance(event.get("bucket"), str) and isinstance(event.get("key"), str):
        return ArchiverRequest([ObjectRef(event["bucket"], event["key"], "direct")], None, "direct")
    raise EventError(f"archiver event not recognised (expected an OBS trigger event with Records[].s3, an "
                     f"EventGrid CloudEvent with data.obs, or {{'job': ...}} / {{'bucket', 'key'}}); "
                     f"received {describe(event)}")
