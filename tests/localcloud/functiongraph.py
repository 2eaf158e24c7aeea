"""FunctionGraph stand-in: the Python context, the trigger event shapes, and OBS ObjectCreated delivery.

What it imitates is written down in the shared reference "FunctionGraph-facts" (context methods, async
retries, classic OBS trigger vs. EventGrid CloudEvents) and the event samples in `events/` beside this file,
which the builders here use as templates so a test event has exactly the shape of a sample.

`LocalObsTrigger` finds new objects by listing the bucket (OBS has no change feed to tap), so it fires once
per distinct (key, ETag, Last-Modified): an overwrite with the same bytes within the same second is missed,
where the real trigger would fire. Tests that need an event for such a write call `deliver()` themselves.
"""

from __future__ import annotations

import copy
import datetime as dt
import json
import random
import time
import traceback
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping
from urllib.parse import quote

EVENTS_DIR = Path(__file__).parent / "events"
TIMER_SAMPLE = "timer.json"
OBS_CLASSIC_SAMPLE = "obs-classic-object-created.json"
EVENTGRID_OBS_SAMPLE = "eventgrid-obs-object-created.json"

Handler = Callable[[dict, "Context"], Any]


def load_sample(name: str) -> dict:
    """A fresh copy of one of the event samples (`events/<name>`)."""
    return json.loads((EVENTS_DIR / name).read_text())


# --- the context --------------------------------------------------------------------------------------------


class RecordingLogger:
    """What `context.getLogger()` returns: `.info/.warn/.error/.debug`; lines are kept in `lines` and printed.

    The platform prefixes each line with a time stamp, the request id and the level; so does this logger.
    """

    def __init__(self, request_id: str, echo: bool = True) -> None:
        self.request_id = request_id
        self.echo = echo
        self.lines: list[str] = []
        self.records: list[tuple[str, str]] = []

    def _log(self, level: str, message: object, *args: object) -> None:
        text = str(message) % args if args else str(message)
        stamp = dt.datetime.now(dt.timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")
        line = f"{stamp} {self.request_id} {level} {text}"
        self.records.append((level, text))
        self.lines.append(line)
        if self.echo:
            print(line, flush=True)

    def debug(self, message: object, *args: object) -> None:
        self._log("DEBUG", message, *args)

    def info(self, message: object, *args: object) -> None:
        self._log("INFO", message, *args)

    def warn(self, message: object, *args: object) -> None:
        self._log("WARN", message, *args)

    warning = warn

    def error(self, message: object, *args: object) -> None:
        self._log("ERROR", message, *args)

    def messages(self, level: str | None = None) -> list[str]:
        """The logged texts without prefixes, optionally of one level (DEBUG, INFO, WARN, ERROR)."""
        return [text for lvl, text in self.records if level is None or lvl == level]


class Context:
    """The Python runtime's `context` argument, with the documented methods.

    `getRemainingTimeInMilliSeconds` counts down from `timeout` seconds since `start` on `clock` (the real
    monotonic clock unless a test passes another). `getUserData` reads `user_data`, the function's environment
    variables. Credentials are empty unless given, as on the platform for a function without an agency.
    """

    def __init__(
        self,
        *,
        request_id: str | None = None,
        function_name: str = "local-function",
        version: str = "latest",
        alias: str = "",
        package: str = "default",
        memory_size: int = 256,
        cpu_number: int | None = None,
        timeout: float = 900,
        access_key: str = "",
        secret_key: str = "",
        security_token: str = "",
        token: str = "",
        user_data: Mapping[str, str] | None = None,
        project_id: str = "",
        clock: Callable[[], float] = time.monotonic,
        start: float | None = None,
        echo_logs: bool = True,
    ) -> None:
        self.request_id = request_id or str(uuid.uuid4())
        self.function_name = function_name
        self.version = version
        self.alias = alias
        self.package = package
        self.memory_size = memory_size
        # The platform gives CPU in proportion to memory: 100 millicores per 128 MB.
        self.cpu_number = cpu_number if cpu_number is not None else max(1, memory_size * 100 // 128)
        self.timeout = timeout
        self.access_key = access_key
        self.secret_key = secret_key
        self.security_token = security_token
        self.token = token
        self.user_data = dict(user_data or {})
        self.project_id = project_id
        self.clock = clock
        self.start = clock() if start is None else start
        self.logger = RecordingLogger(self.request_id, echo=echo_logs)

    def getRequestID(self) -> str:
        return self.request_id

    def getRemainingTimeInMilliSeconds(self) -> int:
        elapsed = self.clock() - self.start
        return max(0, int((self.timeout - elapsed) * 1000))

    def getSecurityAccessKey(self) -> str:
        return self.access_key

    def getSecuritySecretKey(self) -> str:
        return self.secret_key

    def getSecurityToken(self) -> str:
        return self.security_token

    def getToken(self) -> str:
        return self.token

    def getUserData(self, key: str, default: str | None = None) -> str | None:
        return self.user_data.get(key, default)

    def getFunctionName(self) -> str:
        return self.function_name

    def getRunningTimeInSeconds(self) -> float:
        return self.timeout

    def getVersion(self) -> str:
        return self.version

    def getMemorySize(self) -> int:
        return self.memory_size

    def getCPUNumber(self) -> int:
        return self.cpu_number

    def getPackage(self) -> str:
        return self.package

    def getAlias(self) -> str:
        return self.alias

    def getLogger(self) -> RecordingLogger:
        return self.logger

    def runtime_environment(self) -> dict[str, str]:
        """The preset `RUNTIME_*` variables the platform adds to the environment, plus `user_data`."""
        env = {
            "RUNTIME_FUNC_NAME": self.function_name,
            "RUNTIME_FUNC_VERSION": self.version,
            "RUNTIME_HANDLER": "index.handler",
            "RUNTIME_TIMEOUT": str(int(self.timeout)),
            "RUNTIME_MEMORY": str(self.memory_size),
            "RUNTIME_CPU": str(self.cpu_number),
            "RUNTIME_CODE_ROOT": "/opt/function/code",
            "RUNTIME_USERDATA": json.dumps(self.user_data),
        }
        if self.project_id:
            env["RUNTIME_PROJECT_ID"] = self.project_id
        env.update(self.user_data)
        return env


def invoke(handler: Handler, event: Any, context: Context | None = None) -> Any:
    """Call `handler` as the platform does: with a JSON-decoded copy of `event` and a context."""
    return handler(json.loads(json.dumps(event)), context if context is not None else Context())


# --- event builders -----------------------------------------------------------------------------------------


def _utc_now_ms() -> str:
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def timer_event(user_event: str | dict | None = None, trigger_name: str = "daily-collect",
                when: dt.datetime | None = None) -> dict:
    """A timer trigger's event (`events/timer.json`); a dict `user_event` is sent as its JSON text."""
    event = load_sample(TIMER_SAMPLE)
    when = when or dt.datetime.now(dt.timezone(dt.timedelta(hours=8)))
    event["time"] = when.isoformat(timespec="seconds")
    event["trigger_name"] = trigger_name
    if user_event is None:
        event["user_event"] = ""
    elif isinstance(user_event, str):
        event["user_event"] = user_event
    else:
        event["user_event"] = json.dumps(user_event)
    return event


_sequencer = 0x16A7B5D0F3AB7E2E3


def _next_sequencer() -> str:
    global _sequencer
    _sequencer += 1
    return f"{_sequencer:025X}"


def obs_classic_event(bucket: str, keys: list[str] | str, event_name: str = "ObjectCreated:Put", *,
                      sizes: Iterable[int] | None = None, etags: Iterable[str] | None = None,
                      region: str = "cn-north-4", url_encode: bool = False) -> dict:
    """A classic OBS trigger event (`events/obs-classic-object-created.json`): one record per key."""
    key_list = [keys] if isinstance(keys, str) else list(keys)
    size_list = list(sizes) if sizes is not None else [0] * len(key_list)
    etag_list = list(etags) if etags is not None else [""] * len(key_list)
    if not (len(key_list) == len(size_list) == len(etag_list)):
        raise ValueError("keys, sizes and etags must have the same length")
    template = load_sample(OBS_CLASSIC_SAMPLE)["Records"][0]
    records = []
    for key, size, etag in zip(key_list, size_list, etag_list):
        record = copy.deepcopy(template)
        record["eventTime"] = _utc_now_ms()
        record["eventName"] = event_name
        record["awsRegion"] = region
        record["responseElements"]["x-obs-request-id"] = uuid.uuid4().hex.upper()
        s3 = record["s3"]
        s3["bucket"]["name"] = bucket
        s3["bucket"]["arn"] = f"arn:aws:s3:::{bucket}"
        s3["object"].update(key=quote(key, safe="/") if url_encode else key, size=size, eTag=etag.strip('"'),
                            sequencer=_next_sequencer())
        records.append(record)
    return {"Records": records}


def eventgrid_obs_event(bucket: str, key: str, url_encode: bool = True, *, size: int = 0, etag: str = "",
                        event_name: str = "ObjectCreated:Put", region: str = "cn-north-4") -> dict:
    """An OBS event through EventGrid as a CloudEvent (`events/eventgrid-obs-object-created.json`).

    As in the sample, the key (in `data.obs.object.key` and `subject`) is URL-encoded, `/` included, unless
    `url_encode` is false (EventGrid's `Key_encode` option).
    """
    event = load_sample(EVENTGRID_OBS_SAMPLE)
    shown_key = quote(key, safe="") if url_encode else key
    action, _, method = event_name.partition(":")
    now = _utc_now_ms()
    event.update(id=str(uuid.uuid4()), type=f"OBS:DWR:{action}:{method.upper()}", subject=shown_key,
                 time=now[:19] + "Z")
    data = event["data"]
    data.update(eventRegion=region, eventTime=now, eventName=event_name)
    data["obs"]["bucket"] = {"bucket": bucket, "name": bucket}
    data["obs"]["object"].update(key=shown_key, size=size, eTag=etag.strip('"'), sequencer=_next_sequencer())
    return event


# --- OBS trigger --------------------------------------------------------------------------------------------


@dataclass
class Delivery:
    """One invocation of the handler by the trigger: the event, and what came of it."""

    event: dict
    key: str
    etag: str
    request_id: str
    attempt: int = 1
    result: Any = None
    error: BaseException | None = None
    traceback: str = ""
    retried: bool = False
    logs: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.error is None


@dataclass(frozen=True)
class _Seen:
    etag: str
    last_modified: str


class LocalObsTrigger:
    """OBS ObjectCreated delivery for one bucket prefix, as the platform's trigger would do it.

    `pump()` lists the prefix (every page), and for each object whose key ends with `suffix` and that is new
    or changed (ETag or Last-Modified) since the last pump, invokes `handler(event, context)` asynchronously
    in the platform's sense: an exception is recorded in the `Delivery`, not raised; `retry_failed()`
    re-delivers the failures once, as the platform's async retry does. `duplicate` delivers every event twice
    (at-least-once); `reorder` shuffles each batch (seeded). A key that disappears from the listing is
    forgotten, so writing it again fires again.
    """

    def __init__(self, obs_client: Any, bucket: str, prefix: str, handler: Handler, *, shape: str = "classic",
                 suffix: str | None = ".json", context_factory: Callable[[], Context] | None = None,
                 duplicate: bool = False, reorder: bool = False, seed: int = 0,
                 page_size: int = 1000) -> None:
        if shape not in ("classic", "eventgrid"):
            raise ValueError(f"shape must be 'classic' or 'eventgrid', not {shape!r}")
        self.obs = obs_client
        self.bucket = bucket
        self.prefix = prefix
        self.handler = handler
        self.shape = shape
        self.suffix = suffix or ""
        self.context_factory = context_factory or Context
        self.duplicate = duplicate
        self.reorder = reorder
        self.rng = random.Random(seed)
        self.page_size = page_size
        self.deliveries: list[Delivery] = []
        self._seen: dict[str, _Seen] = {}

    # discovery

    def _list(self) -> dict[str, tuple[_Seen, int]]:
        found: dict[str, tuple[_Seen, int]] = {}
        marker = None
        while True:
            resp = self.obs.listObjects(self.bucket, prefix=self.prefix, marker=marker,
                                        max_keys=self.page_size)
            if resp.status >= 300:
                raise RuntimeError(f"listing {self.bucket}/{self.prefix} failed: {resp.status} "
                                   f"{resp.errorCode} {resp.errorMessage}")
            contents = resp.body.contents or []
            for item in contents:
                if item.key.endswith(self.suffix):
                    found[item.key] = (_Seen(item.etag or "", str(item.lastModified)), int(item.size or 0))
            if not resp.body.is_truncated or not contents:
                return found
            marker = resp.body.next_marker or contents[-1].key

    def _new_objects(self) -> list[tuple[str, str, int]]:
        listed = self._list()
        new = [(key, seen.etag, size) for key, (seen, size) in sorted(listed.items())
               if self._seen.get(key) != seen]
        # Marked before delivery: whatever a handler writes during this pump is new in the next one.
        self._seen = {key: seen for key, (seen, _) in listed.items()}
        return new

    def ignore_existing(self) -> None:
        """Treat every object now under the prefix as already delivered."""
        self._new_objects()

    # delivery

    def event_for(self, key: str, etag: str = "", size: int = 0) -> dict:
        """The event the platform would send for this object, in this trigger's shape."""
        # A multipart upload's ETag is "<md5 of the part md5s>-<part count>".
        name = "ObjectCreated:CompleteMultipartUpload" if "-" in etag else "ObjectCreated:Put"
        if self.shape == "eventgrid":
            return eventgrid_obs_event(self.bucket, key, size=size, etag=etag, event_name=name)
        return obs_classic_event(self.bucket, [key], name, sizes=[size], etags=[etag])

    def deliver(self, event: dict, key: str = "", etag: str = "", attempt: int = 1) -> Delivery:
        """Invoke the handler with one event now; the outcome is recorded, never raised."""
        context = self.context_factory()
        delivery = Delivery(event=event, key=key, etag=etag, request_id=context.getRequestID(),
                            attempt=attempt)
        try:
            delivery.result = invoke(self.handler, event, context)
        except Exception as exc:  # the platform records a failed async invocation and retries it later
            delivery.error = exc
            delivery.traceback = traceback.format_exc()
        delivery.logs = list(context.getLogger().lines)
        self.deliveries.append(delivery)
        return delivery

    def pump(self, duplicate: bool | None = None) -> list[Delivery]:
        """Deliver one event per new or changed object under the prefix; return these deliveries."""
        twice = self.duplicate if duplicate is None else duplicate
        batch = []
        for key, etag, size in self._new_objects():
            event = self.event_for(key, etag, size)
            batch.extend([(event, key, etag)] * (2 if twice else 1))
        if self.reorder:
            self.rng.shuffle(batch)
        return [self.deliver(event, key, etag) for event, key, etag in batch]

    def drain(self, max_rounds: int = 10) -> list[Delivery]:
        """Pump until a round finds nothing new (handlers may write more); fail if it never settles."""
        delivered: list[Delivery] = []
        for _ in range(max_rounds):
            batch = self.pump()
            if not batch:
                return delivered
            delivered.extend(batch)
        raise RuntimeError(f"still new objects under {self.bucket}/{self.prefix} after {max_rounds} rounds: "
                           f"a handler keeps writing under its own trigger's prefix")

    @property
    def failed(self) -> list[Delivery]:
        return [d for d in self.deliveries if not d.ok]

    def retry_failed(self) -> list[Delivery]:
        """Deliver each failed, not yet retried delivery's event once more (the platform's async retry)."""
        retries = []
        for delivery in [d for d in self.deliveries if not d.ok and not d.retried]:
            delivery.retried = True
            retries.append(self.deliver(delivery.event, delivery.key, delivery.etag,
                                        attempt=delivery.attempt + 1))
        return retries
