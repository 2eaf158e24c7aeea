"""A DCS API emulator: real HTTP on loopback that the real `huaweicloudsdkdcs` client talks to.

What it serves (paths exactly as the SDK builds them, facts from shared reference "DCS-run-log-API-facts"):

    GET  /v2/{project}/instances                              ListInstances
    GET  /v2/{project}/instances/{id}                         ShowInstance
    GET  /v2/{project}/instance/{id}/groups                   ListGroupReplicationInfo (singular `instance`)
    POST /v2/{project}/instances/{id}/redislog                CreateRedislog
    GET  /v2/{project}/instances/{id}/redislog                ListRedislog
    POST /v2/{project}/instances/{id}/redislog/{log}/links    CreateRedislogDownloadLink
    GET  /_download/{token}/{file_name}                       Download (only for links cut by faults)

Every API request must carry a valid SDK-HMAC-SHA256 signature (recomputed here from the received request), an
`X-Sdk-Date` within 15 minutes of the emulator's time and the right project; errors use DCS's body
`{"error_code", "error_msg", "error_ext_msg"}` and every response has an `X-Request-Id`.

Collections: CreateRedislog at scenario time T copies, per day from today-N to today (days in `log_timezone`), the
node's log into the internal bucket of the store (a finished day whole, the current day up to T) and lists it as a
new entry after `collection_delay` seconds of real time. Download links are presigned GET URLs on the store.

ListRedislog's `offset` is 1-based by default (`redislog_offset_base = 1`: offset 1 is the first entry, offset 0 is
taken as 1), as in the OTC example and the Terraform provider. A client paging 1, 1+L, 1+2L... gets every entry
exactly once; one paging 0, L, 2L... gets overlapping pages and still every entry when it dedupes by id. Set
`redislog_offset_base = 0` to emulate the 0-based reading of the Huawei docs.
"""

from __future__ import annotations

import hashlib
import hmac
import http.client
import json
import secrets
import socket
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Iterable, Optional
from urllib.parse import parse_qsl, quote, unquote, urlsplit

from tests.localcloud.dcs_scenario import (
    CACHE_MODES,
    RETENTION_DAYS,
    FaultPlan,
    FaultRule,
    Instance,
    LogEntry,
    Node,
    ScenarioClock,
    Served,
    as_day,
)
from tests.localcloud.redislog_text import DAY_MS, generate_day, ms_after_midnight, parse_offset

__all__ = ["DcsEmulator", "FaultPlan", "Instance", "LogEntry", "Node", "ScenarioClock", "Served"]

DEFAULT_PROJECT_ID = "0b1c2d3e4f5a4b6c8d7e9f0a1b2c3d4e"
ALGORITHM = "SDK-HMAC-SHA256"
EMPTY_SHA256 = hashlib.sha256(b"").hexdigest()
SDK_DATE_FORMAT = "%Y%m%dT%H%M%SZ"
MAX_CLOCK_SKEW = 15 * 60
ALLOWED_QUERY_TIMES = (0, 1, 3, 7)
REQUEST_FAULTS = ("drop", "throttle", "error500", "delete_instance", "truncate")
STREAM_CHUNK = 1024 * 1024
LOG_NOT_FOUND = "DCS.4800"  # no documented code for an unknown run-log id; 404 with the invalid-parameter code


class ApiError(Exception):
    """An error answer in DCS's body form."""

    def __init__(self, status: int, code: str, msg: str, headers: Optional[dict[str, str]] = None) -> None:
        super().__init__(f"{status} {code} {msg}")
        self.status, self.code, self.msg, self.headers = status, code, msg, headers or {}


@dataclass
class Reply:
    status: int
    body: Any = None  # dict -> JSON; None -> no body
    headers: Optional[dict[str, str]] = None


# ---------------------------------------------------------------------------------------------------- signing

def canonical_uri(path: str) -> str:
    """Each segment of the decoded path quoted (safe '~'), with a trailing slash, as huaweicloudsdkcore signs."""
    uri = "/".join(quote(part, safe="~") for part in unquote(path).split("/"))
    return uri if uri.endswith("/") else uri + "/"


def canonical_query(raw_query: str) -> str:
    pairs = sorted(parse_qsl(raw_query, keep_blank_values=True))
    return "&".join(f"{quote(k, safe='~')}={quote(v, safe='~')}" for k, v in pairs)


def _header_text(value: str) -> str:
    """http.server decodes headers as latin-1; the SDK signed the UTF-8 text before sending it that way."""
    try:
        return value.encode("latin-1").decode("utf-8").strip()
    except (UnicodeEncodeError, UnicodeDecodeError):
        return value.strip()


def parse_authorization(value: Optional[str]) -> tuple[str, list[str], str]:
    """(access key, signed header names, signature) from `SDK-HMAC-SHA256 Access=.., SignedHeaders=.., Signature=..`."""
    if not value or not value.startswith(ALGORITHM + " "):
        raise ApiError(401, "APIGW.0301", "Incorrect IAM authentication information: Authorization header "
                                          "missing or not SDK-HMAC-SHA256")
    fields: dict[str, str] = {}
    for part in value[len(ALGORITHM) + 1:].split(","):
        key, _, val = part.strip().partition("=")
        fields[key] = val
    if not fields.get("Access") or not fields.get("SignedHeaders") or not fields.get("Signature"):
        raise ApiError(401, "APIGW.0301", "Incorrect IAM authentication information: malformed Authorization")
    return fields["Access"], fields["SignedHeaders"].split(";"), fields["Signature"]


def expected_signature(secret_key: str, method: str, path: str, raw_query: str,
                       headers: Any, signed_headers: list[str], body: bytes) -> str:
    """The signature the SDK computes for this request (`headers` is case-insensitive, e.g. an http Message)."""
    lines = []
    for name in signed_headers:
        value = headers.get(name)
        if value is None:
            raise ApiError(401, "APIGW.0301", f"Incorrect IAM authentication information: signed header "
                                              f"{name} missing")
        lines.append(f"{name}:{_header_text(value)}")
    if not body:
        payload_hash = EMPTY_SHA256
    else:
        payload_hash = headers.get("X-Sdk-Content-Sha256") or hashlib.sha256(body).hexdigest()
    canonical = "\n".join([
        method.upper(), canonical_uri(path), canonical_query(raw_query), "\n".join(lines) + "\n",
        ";".join(signed_headers), payload_hash,
    ])
    string_to_sign = "\n".join([ALGORITHM, headers.get("X-Sdk-Date", ""),
                                hashlib.sha256(canonical.encode("utf-8")).hexdigest()])
    return hmac.new(secret_key.encode("utf-8"), string_to_sign.encode("utf-8"), hashlib.sha256).hexdigest()


# ---------------------------------------------------------------------------------------------------- routing

def route(method: str, path: str) -> tuple[Optional[str], dict[str, str]]:
    """(operation name, path parameters) for a request; (None, {}) when no API matches."""
    parts = path.rstrip("/").split("/")
    if len(parts) >= 3 and parts[1] == "_download" and method == "GET":
        return "Download", {"token": parts[2]}
    if len(parts) < 4 or parts[1] != "v2":
        return None, {}
    project = parts[2]
    rest = parts[3:]
    if rest == ["instances"] and method == "GET":
        return "ListInstances", {"project_id": project}
    if len(rest) == 2 and rest[0] == "instances" and method == "GET":
        return "ShowInstance", {"project_id": project, "instance_id": rest[1]}
    if len(rest) == 3 and rest[0] == "instance" and rest[2] == "groups" and method == "GET":
        return "ListGroupReplicationInfo", {"project_id": project, "instance_id": rest[1]}
    if len(rest) == 3 and rest[0] == "instances" and rest[2] == "redislog":
        if method == "POST":
            return "CreateRedislog", {"project_id": project, "instance_id": rest[1]}
        if method == "GET":
            return "ListRedislog", {"project_id": project, "instance_id": rest[1]}
    if len(rest) == 5 and rest[0] == "instances" and rest[2] == "redislog" and rest[4] == "links" \
            and method == "POST":
        return "CreateRedislogDownloadLink", {"project_id": project, "instance_id": rest[1], "log_id": rest[3]}
    return None, {}


def _int_param(query: dict[str, str], name: str, default: int, low: int, high: Optional[int] = None) -> int:
    raw = query.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ApiError(400, "DCS.4800", f"Invalid {name}.") from None
    if value < low or (high is not None and value > high):
        raise ApiError(400, "DCS.4800", f"Invalid {name}.")
    return value


def parse_tags(text: str) -> list[tuple[str, Optional[str]]]:
    """`k=v,k2=v2` as pairs; a bare `k` asks only for the key."""
    pairs: list[tuple[str, Optional[str]]] = []
    for item in text.split(","):
        item = item.strip()
        if not item:
            continue
        key, sep, value = item.partition("=")
        pairs.append((key.strip(), value.strip() if sep else None))
    return pairs


# ---------------------------------------------------------------------------------------------------- server

class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 256

    def __init__(self, emulator: DcsEmulator) -> None:
        self.emulator = emulator
        super().__init__(("127.0.0.1", 0), _Handler)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "DCS-emulator/1.0"
    sys_version = ""
    timeout = 120  # an idle keep-alive connection is closed after this
    disable_nagle_algorithm = True
    wbufsize = 64 * 1024  # headers and a small body leave in one segment (flushed after each request)

    server: _Server

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def setup(self) -> None:
        super().setup()
        self.server.emulator._connections_changed(self.connection, opened=True)

    def finish(self) -> None:
        try:
            super().finish()
        finally:
            self.server.emulator._connections_changed(self.connection, opened=False)

    def do_GET(self) -> None:
        self.server.emulator._serve(self)

    do_POST = do_PUT = do_DELETE = do_HEAD = do_GET

    def send_reply(self, reply: Reply, request_id: str) -> None:
        payload = b"" if reply.body is None else json.dumps(reply.body).encode("utf-8")
        self.send_response(reply.status)
        self.send_header("X-Request-Id", request_id)
        for name, value in (reply.headers or {}).items():
            self.send_header(name, value)
        if reply.status != 204:
            if reply.body is not None:
                self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        if payload and self.command != "HEAD":
            self.wfile.write(payload)

    def cut_connection(self) -> None:
        """Close the connection at once, whatever was (not) sent."""
        self.close_connection = True
        try:
            self.wfile.flush()
            self.connection.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass


# ---------------------------------------------------------------------------------------------------- emulator

class DcsEmulator:
    """DCS run-log APIs on loopback over a SeaweedFS store. Use as a context manager, or start()/stop().

    `clock` is frozen at `now` (default: the real time at construction) until a test sets or advances it, so the
    days and the partial copies a scenario produces are exact. `collection_delay` counts real (monotonic) seconds.
    Knobs a test may change at any time: `signing_skew_seconds`, `in_progress_visible`, `redislog_offset_base`,
    `proxy_downloads`, `collection_delay`, `link_expiry`, `reuse_final_logs`.
    """

    def __init__(self, store: Any, *, project_id: str = DEFAULT_PROJECT_ID, ak: Optional[str] = None,
                 sk: Optional[str] = None, security_token: Optional[str] = None, log_timezone: str = "+08:00",
                 collection_delay: float = 0.0, link_expiry: int = 86400, internal_bucket: Optional[str] = None,
                 now: Optional[datetime] = None) -> None:
        self.store = store
        self.project_id = project_id
        self.ak = ak or "EMU" + secrets.token_hex(9).upper()[:17]
        self.sk = sk or secrets.token_hex(20)
        self.security_token = security_token
        self.log_timezone = log_timezone
        self.tz = parse_offset(log_timezone)
        self.collection_delay = collection_delay
        self.link_expiry = link_expiry
        self.internal_bucket = internal_bucket or f"dcs-runlogs-{secrets.token_hex(6)}"
        self.clock = ScenarioClock(now)
        self.faults = FaultPlan()
        # Knobs a test may change at any time.
        self.signing_skew_seconds = 0.0  # added to the real time when checking X-Sdk-Date
        self.in_progress_visible = False  # list unfinished collections with status "collecting" instead of hiding
        self.redislog_offset_base = 1
        self.proxy_downloads = False  # route every link through the emulator, not only when a Download fault is armed
        # ListRedislog's `time` is documented as "the date run logs are collected": list that instead of the log's
        # day (the only public example has them equal; Real-cloud-facts, DCS)
        self.time_is_collection_date = False
        # a finished day's log is written into the store once (store_final_logs, or its first collection) and
        # every collection lists that object: collections of large scenarios cost the emulator next to nothing
        self.reuse_final_logs = False

        self.requests: list[Served] = []
        self.peak_in_flight = 0
        self._in_flight = 0
        self._credentials: dict[str, tuple[str, Optional[str]]] = {self.ak: (self.sk, security_token)}
        self._lock = threading.RLock()
        self._instances: dict[str, Instance] = {}
        self._ip_seq = 0
        self._downloads: dict[str, tuple[str, str, str]] = {}  # token -> (presigned url, instance id, log id)
        self._final_logs: dict[str, int] = {}  # store key -> size, with reuse_final_logs
        self._connections: set[socket.socket] = set()
        self._server: Optional[_Server] = None
        self._thread: Optional[threading.Thread] = None
        self._obs: Any = None
        self.endpoint = ""

    # ---- lifecycle

    def start(self) -> DcsEmulator:
        self._obs = self.store.client()
        created = self._obs.createBucket(self.internal_bucket)
        if created.status >= 300 and created.status != 409:
            raise RuntimeError(f"cannot create the internal bucket {self.internal_bucket}: "
                               f"{created.status} {created.errorCode}")
        self._server = _Server(self)
        self.endpoint = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05},
                                        name="dcs-emulator", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        server, self._server = self._server, None
        if server is not None:
            server.shutdown()
            server.server_close()
            with self._lock:
                open_connections = list(self._connections)
            for conn in open_connections:  # idle keep-alive connections would otherwise outlive the server
                try:
                    conn.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None
        if self._obs is not None:
            self._obs.close()
            self._obs = None

    def __enter__(self) -> DcsEmulator:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def add_credentials(self, ak: str, sk: str, token: Optional[str] = None) -> None:
        """Accept another key pair (with `token`, as temporary credentials that must send X-Security-Token)."""
        with self._lock:
            self._credentials[ak] = (sk, token)

    # ---- scenario

    def add_instance(self, *, instance_id: Optional[str] = None, name: str, tags: Optional[dict[str, str]] = None,
                     engine: str = "Redis", engine_version: str = "5.0", status: str = "RUNNING",
                     cache_mode: str = "ha", shards: int = 1, replicas: int = 2,
                     log_days: Optional[Iterable[date | str]] = None, log_size: int = 4096,
                     missing_days: Iterable[date | str] = (), log_size_max: int = 0) -> Instance:
        """An instance with its nodes; each node has a log for each of `log_days` (default: the 8 days up to
        today) except `missing_days`, of `log_size` bytes (with `log_size_max` above it: each node-day's size
        drawn between the two, `Instance.log_size_for`)."""
        if cache_mode not in CACHE_MODES:
            raise ValueError(f"cache_mode must be one of {CACHE_MODES}")
        instance_id = instance_id or str(uuid.uuid4())
        if cache_mode == "single":
            shards, replicas = 1, 1
        elif cache_mode in ("ha", "ha_rw_split"):
            shards = 1
        shards, replicas = max(1, shards), max(1, replicas)
        if log_days is None:
            today = self.today()
            days = {today - timedelta(days=n) for n in range(RETENTION_DAYS + 1)}
        else:
            days = {as_day(d) for d in log_days}
        days -= {as_day(d) for d in missing_days}

        with self._lock:
            if instance_id in self._instances:
                raise ValueError(f"instance {instance_id} exists already")
            nodes = []
            for shard in range(shards):
                group_id = str(uuid.uuid5(uuid.NAMESPACE_URL, f"{instance_id}/group/{shard}"))
                for index in range(replicas):
                    self._ip_seq += 1
                    high, low = divmod(self._ip_seq, 250)
                    ip = f"192.168.{high}.{low + 2}" if high < 256 else f"10.{high // 256}.{high % 256}.{low + 2}"
                    nodes.append(Node(
                        replication_id=str(uuid.uuid5(uuid.NAMESPACE_URL, f"{instance_id}/{shard}/{index}")),
                        replication_ip=ip, group_name=f"group-{shard}", group_id=group_id,
                        role="master" if index == 0 else "slave",
                        node_id=uuid.uuid5(uuid.NAMESPACE_URL, f"{instance_id}/node/{shard}/{index}").hex,
                        az_code="cn-north-4a" if index % 2 == 0 else "cn-north-4b",
                    ))
            instance = Instance(
                instance_id=instance_id, name=name, tags=dict(tags or {}), engine=engine,
                engine_version=engine_version, status=status, cache_mode=cache_mode,
                spec_code=_spec_code(cache_mode, shards, replicas), capacity=2 * shards, nodes=nodes,
                log_days=days, log_size=log_size, created_at=self.clock.now(), shards=shards, replicas=replicas,
                log_size_max=log_size_max,
            )
            self._instances[instance_id] = instance
        return instance

    def serialize_collections(self, instance_id: str, seconds: float, code: str = "DCS.4017") -> None:
        """One collection of the instance at a time, each taking `seconds`; CreateRedislog meanwhile answers 400
        with `code` (DCS.4017 or 111400017), as DCS may (Real-cloud-facts: no source says it does not)."""
        with self._lock:
            instance = self._instances[instance_id]
            instance.serial_seconds, instance.serial_code = float(seconds), code

    def set_node_missing_days(self, instance_id: str, replication_ip: str, days: Iterable[date | str]) -> None:
        """The node logged nothing on these days (its collections list no file for them)."""
        with self._lock:
            self._instances[instance_id].node_missing_days[replication_ip] = {as_day(d) for d in days}

    def add_node(self, instance_id: str, shard: Optional[int] = None) -> Node:
        """Scale out: a new shard (its master) or, with `shard`, one more replica in that shard."""
        with self._lock:
            instance = self._instances[instance_id]
            groups = instance.groups
            index = len(groups) if shard is None else shard
            existing = groups[index][2] if index < len(groups) else []
            self._ip_seq += 1
            high, low = divmod(self._ip_seq, 250)
            node = Node(
                replication_id=str(uuid.uuid5(uuid.NAMESPACE_URL, f"{instance_id}/{index}/{len(existing)}/x")),
                replication_ip=f"192.168.{high}.{low + 2}", group_name=f"group-{index}",
                group_id=existing[0].group_id if existing else str(uuid.uuid5(uuid.NAMESPACE_URL,
                                                                             f"{instance_id}/group/{index}")),
                role="slave" if existing else "master",
                node_id=uuid.uuid5(uuid.NAMESPACE_URL, f"{instance_id}/node/{index}/{len(existing)}/x").hex,
            )
            instance.nodes.append(node)
            return node

    def remove_node(self, instance_id: str, replication_ip: str) -> None:
        """Scale in: the node is no longer listed (entries DCS collected from it stay listed)."""
        with self._lock:
            instance = self._instances[instance_id]
            instance.nodes = [n for n in instance.nodes if n.replication_ip != replication_ip]

    def store_final_logs(self, instance_ids: Optional[Iterable[str]] = None, threads: int = 4) -> int:
        """Write the finished days' logs of these instances' nodes (default: all) into the store now, for
        `reuse_final_logs` (a benchmark's set-up, so its measured collections only list them); returns how many."""
        wanted = None if instance_ids is None else set(instance_ids)
        today = self.today()
        with self._lock:
            targets = [(inst, node, day) for inst in self._instances.values()
                       if wanted is None or inst.instance_id in wanted
                       for node in inst.nodes for day in sorted(inst.log_days)
                       if today - timedelta(days=RETENTION_DAYS) <= day < today]
        with ThreadPoolExecutor(max_workers=threads) as pool:
            list(pool.map(lambda target: self._final_log(*target), targets))
        return len(targets)

    def instance(self, instance_id: str) -> Instance:
        with self._lock:
            return self._instances[instance_id]

    def delete_instance(self, instance_id: str) -> None:
        with self._lock:
            self._instances[instance_id].deleted = True

    def set_status(self, instance_id: str, status: str) -> None:
        with self._lock:
            self._instances[instance_id].status = status

    def today(self) -> date:
        return self.clock.now().astimezone(self.tz).date()

    def log_bytes(self, instance_id: str, replication_ip: str, day: date | str,
                  upto: Optional[datetime] = None) -> bytes:
        """What DCS holds for this node and day: the whole day, or only the lines logged up to `upto`."""
        day = as_day(day)
        with self._lock:
            instance = self._instances[instance_id]
            node = instance.node_by_ip(replication_ip)
            if not instance.has_log(replication_ip, day):
                raise KeyError(f"node {replication_ip} of {instance_id} has no log for {day}")
            size = instance.log_size_for(replication_ip, day)
        log = generate_day(f"{instance_id}/{replication_ip}", day, size, node.log_role)
        if upto is None:
            return log.content
        cutoff = ms_after_midnight(day, self.tz, upto)
        return log.content if cutoff >= DAY_MS else log.upto(cutoff)

    def entries(self, instance_id: str) -> list[LogEntry]:
        """Every entry collected for the instance (listed or not yet), oldest first."""
        with self._lock:
            return list(self._instances[instance_id].entries)

    # ---- records

    def calls(self, op: str, instance_id: Optional[str] = None) -> list[Served]:
        with self._lock:
            return [s for s in self.requests
                    if s.op == op and (instance_id is None or s.instance_id == instance_id)]

    def reset_counters(self) -> None:
        with self._lock:
            self.requests = []
            self.peak_in_flight = self._in_flight

    def _connections_changed(self, conn: socket.socket, *, opened: bool) -> None:
        with self._lock:
            if opened:
                self._connections.add(conn)
            else:
                self._connections.discard(conn)

    # ---- request handling

    def _serve(self, handler: _Handler) -> None:
        url = urlsplit(handler.path)
        query = dict(parse_qsl(url.query, keep_blank_values=True))
        length = int(handler.headers.get("Content-Length") or 0)
        body = handler.rfile.read(length) if length else b""
        op, params = route(handler.command, url.path)
        instance_id = params.get("instance_id")
        if op == "Download":
            with self._lock:
                target = self._downloads.get(params["token"])
            instance_id = target[1] if target else None
        served = Served(op=op or "Unknown", method=handler.command, path=url.path, query=query,
                        instance_id=instance_id, replication_id=query.get("replication_id"),
                        time=self.clock.now(), request_id=uuid.uuid4().hex, started=time.monotonic())
        with self._lock:
            self._in_flight += 1
            self.peak_in_flight = max(self.peak_in_flight, self._in_flight)
        try:
            self._answer(handler, served, op, params, url.query, body, query)
        finally:
            self._done(served)

    def _record(self, served: Served) -> None:
        """Add the request to `requests` (once), before its answer leaves: a client never sees an unrecorded one."""
        with self._lock:
            if not served.recorded:
                served.recorded = True
                self.requests.append(served)

    def _done(self, served: Served) -> None:
        """Record the request and leave the in-flight count (once)."""
        self._record(served)
        with self._lock:
            if served.finished:
                return
            served.finished = time.monotonic()
            self._in_flight -= 1

    def _answer(self, handler: _Handler, served: Served, op: Optional[str], params: dict[str, str],
                raw_query: str, body: bytes, query: dict[str, str]) -> None:
        try:
            if op is None:
                raise ApiError(404, "APIGW.0101", "The API does not exist or has not been published in the "
                                                  "environment.")
            delay = self.faults.delay_for(op)
            if delay:
                time.sleep(delay)
            if op != "Download":  # a download link is presigned, not signed
                self._authenticate(handler, params["project_id"], raw_query, body)
            rule = self.faults.take(op, served.instance_id, REQUEST_FAULTS, served.replication_id)
            if rule is not None:
                served.fault = rule.kind
                if rule.kind == "drop":
                    self._done(served)
                    handler.cut_connection()
                    return
                self._apply_fault(rule, served.instance_id)
            if op == "Download":
                served.status = self._download(handler, params["token"], served,
                                               truncate=rule is not None and rule.kind == "truncate")
                return
            reply = getattr(self, "_op_" + op)(params, query)
        except ApiError as err:
            body_json: dict[str, Any] = {"error_code": err.code, "error_msg": err.msg, "error_ext_msg": None}
            if err.code.startswith("APIG"):
                body_json["request_id"] = served.request_id
            reply = Reply(err.status, body_json, err.headers)
            served.error_code = err.code
        served.status = reply.status
        self._done(served)
        handler.send_reply(reply, served.request_id)

    def _apply_fault(self, rule: FaultRule, instance_id: Optional[str]) -> None:
        if rule.kind == "throttle":
            raise ApiError(429, "APIG.0308", "The throttling threshold has been reached: policy user over "
                                             "ratelimit,limit:100,time:1 minute",
                           {"Retry-After": str(rule.retry_after)})
        if rule.kind == "error500":
            raise ApiError(500, "DCS.5000", "Internal service error.")
        if rule.kind == "delete_instance" and instance_id:
            with self._lock:
                if instance_id in self._instances:
                    self._instances[instance_id].deleted = True

    def _authenticate(self, handler: _Handler, project_id: str, raw_query: str, body: bytes) -> None:
        headers = handler.headers
        access, signed_headers, signature = parse_authorization(headers.get("Authorization"))
        sdk_date = headers.get("X-Sdk-Date")
        try:
            signed_at = datetime.strptime(sdk_date or "", SDK_DATE_FORMAT).replace(tzinfo=timezone.utc)
        except ValueError:
            raise ApiError(401, "APIGW.0301", "Incorrect IAM authentication information: X-Sdk-Date missing "
                                              "or malformed") from None
        if "x-sdk-date" not in signed_headers or "host" not in signed_headers:
            raise ApiError(401, "APIGW.0301", "Incorrect IAM authentication information: host and x-sdk-date "
                                              "must be signed")
        with self._lock:
            credential = self._credentials.get(access)
        if credential is None:
            raise ApiError(401, "APIGW.0301", "Incorrect IAM authentication information: unknown access key")
        secret_key, token = credential
        expected = expected_signature(secret_key, handler.command, urlsplit(handler.path).path, raw_query,
                                      headers, signed_headers, body)
        if not hmac.compare_digest(expected, signature):
            raise ApiError(401, "APIGW.0301", "Incorrect IAM authentication information: verify aksk signature "
                                              "fail")
        server_now = datetime.now(timezone.utc) + timedelta(seconds=self.signing_skew_seconds)
        if abs((server_now - signed_at).total_seconds()) > MAX_CLOCK_SKEW:
            raise ApiError(401, "APIGW.0303", "Incorrect app authentication information: the request time "
                                              "differs from the server time by more than 15 minutes")
        if token is not None and headers.get("X-Security-Token") != token:
            raise ApiError(401, "DCS.1001", "Invalid token.")
        header_project = headers.get("X-Project-Id")
        if project_id != self.project_id or (header_project is not None and header_project != project_id):
            raise ApiError(401, "DCS.1004", "Project ID does not match the token.")

    def _live_instance(self, instance_id: str) -> Instance:
        instance = self._instances.get(instance_id)
        if instance is None or instance.deleted:
            raise ApiError(404, "DCS.3022", "The instance does not exist.")
        return instance

    # ---- operations (each returns a Reply or raises ApiError)

    def _op_ListInstances(self, params: dict[str, str], query: dict[str, str]) -> Reply:
        offset = _int_param(query, "offset", 0, 0)
        limit = _int_param(query, "limit", 10, 1, 1000)
        wanted_tags = parse_tags(query.get("tags", ""))
        with self._lock:
            matching = [i for i in self._instances.values() if not i.deleted and _matches(i, query, wanted_tags)]
            page = [_instance_summary(i) for i in matching[offset:offset + limit]]
        return Reply(200, {"instance_num": len(matching), "instances": page})

    def _op_ShowInstance(self, params: dict[str, str], query: dict[str, str]) -> Reply:
        with self._lock:
            instance = self._live_instance(params["instance_id"])
            detail = _instance_summary(instance)
            detail.update({
                "cache_mode": instance.cache_mode, "sharding_count": instance.shards,
                "replica_count": instance.replicas, "product_type": "generic", "storage_type": "DRAM",
                "cpu_type": "x86_64",
            })
        return Reply(200, detail)

    def _op_ListGroupReplicationInfo(self, params: dict[str, str], query: dict[str, str]) -> Reply:
        with self._lock:
            instance = self._live_instance(params["instance_id"])
            if instance.cache_mode == "single":
                raise ApiError(400, "DCS.4027", "This operation is not supported on single-node instances.")
            groups = [{
                "group_id": group_id, "group_name": group_name,
                "replication_list": [{
                    "replication_role": n.role, "replication_ip": n.replication_ip, "is_replication": False,
                    "replication_id": n.replication_id, "node_id": n.node_id, "status": "Active",
                    "az_code": n.az_code,
                    "dimensions": [{"name": "dcs_instance_id", "value": instance.instance_id},
                                   {"name": "dcs_cluster_redis_node", "value": n.node_id[:16]}],
                } for n in nodes],
            } for group_id, group_name, nodes in instance.groups]
        return Reply(200, {"group_count": len(groups), "group_list": groups})

    def _op_CreateRedislog(self, params: dict[str, str], query: dict[str, str]) -> Reply:
        if query.get("log_type") != "run":
            raise ApiError(400, "DCS.4800", "Invalid logType.")
        query_time = _int_param(query, "query_time", 0, 0, 7)
        if query_time not in ALLOWED_QUERY_TIMES:
            raise ApiError(400, "DCS.4800", "Invalid queryTime.")
        replication_id = query.get("replication_id") or None
        with self._lock:
            instance = self._live_instance(params["instance_id"])
            if instance.status != "RUNNING":
                raise ApiError(400, "DCS.4049", "The instance is not running.")
            if replication_id is None:
                if instance.cache_mode != "single":
                    raise ApiError(400, "DCS.4800", "Invalid replicationId: required for instances that are "
                                                    "not single-node.")
                node = instance.nodes[0]
            else:
                node = instance.node_by_id(replication_id)
                if node is None:
                    raise ApiError(400, "DCS.4800", "Invalid replicationId.")
            if instance.serial_seconds is not None:
                now = time.monotonic()
                if now < instance.busy_until:
                    raise ApiError(400, instance.serial_code, "A job of this instance is still running. Try again "
                                                              "later.")
                instance.busy_until = now + instance.serial_seconds
            log_days = {d for d in instance.log_days if instance.has_log(node.replication_ip, d)}
            log_size = instance.log_size
        failed = self.faults.take("CreateRedislog", instance.instance_id, ["fail_collection"],
                                  replication_id) is not None
        self._collect(instance, node, query_time, log_days, log_size, failed)
        if instance.serial_seconds is not None:
            # the collection runs `serial_seconds` from its answer: writing the logs into the store may take longer
            # than that on a slow machine, and the next call must still find it running
            with self._lock:
                instance.busy_until = max(instance.busy_until, time.monotonic() + instance.serial_seconds)
        return Reply(204)

    def _collect(self, instance: Instance, node: Node, query_time: int, log_days: set[date], log_size: int,
                 failed: bool) -> None:
        """Copy the node's logs of the asked days into the internal bucket, as new entries (see module doc)."""
        started = time.monotonic()
        collected_at = self.clock.now()
        today = collected_at.astimezone(self.tz).date()
        new_entries = []
        for back in range(query_time, -1, -1):
            day = today - timedelta(days=back)
            if day not in log_days:
                continue
            entry_id = str(uuid.uuid4())
            file_name = f"redis_{node.replication_ip}_{day.isoformat()}.log"
            key = None
            size = 0
            partial = day == today
            if not failed and not partial and self.reuse_final_logs:
                key, size = self._final_log(instance, node, day)
            elif not failed:
                size_of_day = instance.log_size_for(node.replication_ip, day) if instance.log_size_max else log_size
                log = generate_day(f"{instance.instance_id}/{node.replication_ip}", day, size_of_day, node.log_role)
                content = log.upto(ms_after_midnight(day, self.tz, collected_at)) if partial else log.content
                key = f"{instance.instance_id}/{entry_id}/{file_name}"
                put = self._obs.putContent(self.internal_bucket, key, content)
                if put.status >= 300:
                    raise ApiError(500, "DCS.5000", f"Internal service error (store answered {put.status}).")
                size = len(content)
            new_entries.append(LogEntry(
                id=entry_id, instance_id=instance.instance_id, node=node, day=day, file_name=file_name,
                status="failed" if failed else "succeed",
                visible_at=started + max(self.collection_delay, instance.serial_seconds or 0.0),
                object_key=key, size=size, partial=partial, collected_at=collected_at,
            ))
        with self._lock:
            instance.entries.extend(new_entries)

    def _final_log(self, instance: Instance, node: Node, day: date) -> tuple[str, int]:
        """(store key, size) of a finished day's log, written on first use (reuse_final_logs)."""
        key = f"{instance.instance_id}/final/{node.replication_ip}/{day.isoformat()}.log"
        with self._lock:
            size = self._final_logs.get(key)
        if size is None:
            content = generate_day(f"{instance.instance_id}/{node.replication_ip}", day,
                                   instance.log_size_for(node.replication_ip, day), node.log_role).content
            put = self._obs.putContent(self.internal_bucket, key, content)
            if put.status >= 300:
                raise ApiError(500, "DCS.5000", f"Internal service error (store answered {put.status}).")
            size = len(content)
            with self._lock:
                self._final_logs[key] = size
        return key, size

    def _listed_entries(self, instance: Instance) -> list[tuple[LogEntry, str]]:
        """(entry, status shown) for what ListRedislog shows now, oldest collection first."""
        oldest_kept = self.today() - timedelta(days=RETENTION_DAYS)
        now = time.monotonic()
        shown = []
        for entry in instance.entries:
            if entry.day < oldest_kept:
                continue
            if entry.visible_at <= now:
                shown.append((entry, entry.status))
            elif self.in_progress_visible:
                shown.append((entry, "collecting"))
        return shown

    def _op_ListRedislog(self, params: dict[str, str], query: dict[str, str]) -> Reply:
        if query.get("log_type") != "run":
            raise ApiError(400, "DCS.4800", "Invalid logType.")
        offset = _int_param(query, "offset", 0, 0)
        limit = _int_param(query, "limit", 10, 1, 1000)
        with self._lock:
            instance = self._live_instance(params["instance_id"])
            listed = self._listed_entries(instance)
        if not listed:
            return Reply(204)
        start = max(offset - 1, 0) if self.redislog_offset_base == 1 else offset
        page = [{
            "id": e.id, "file_name": e.file_name, "status": status,
            "time": (e.collected_at.astimezone(self.tz).date() if self.time_is_collection_date else e.day).isoformat(),
            "replication_ip": e.node.replication_ip, "group_name": e.node.group_name, "backup_id": e.id,
        } for e, status in listed[start:start + limit]]
        return Reply(200, {"total_num": len(listed), "file_list": page})

    def _op_CreateRedislogDownloadLink(self, params: dict[str, str], query: dict[str, str]) -> Reply:
        with self._lock:
            instance = self._live_instance(params["instance_id"])
            found = [(e, s) for e, s in self._listed_entries(instance) if e.id == params["log_id"]]
        if not found:
            raise ApiError(404, LOG_NOT_FOUND, f"The run log file {params['log_id']} does not exist.")
        entry, status = found[0]
        if status != "succeed":
            raise ApiError(400, "DCS.4800", f"The run log file is not ready for download (status {status}).")
        expired = self.faults.take("CreateRedislogDownloadLink", instance.instance_id, ["expired"]) is not None
        signed = self._obs.createSignedUrl("GET", self.internal_bucket, entry.object_key,
                                           expires=-60 if expired else self.link_expiry)
        link = signed.signedUrl
        if self.proxy_downloads or self.faults.armed("Download", instance.instance_id):
            token = secrets.token_urlsafe(16)
            with self._lock:
                self._downloads[token] = (link, instance.instance_id, entry.id)
            link = f"{self.endpoint}/_download/{token}/{quote(entry.file_name)}"
        return Reply(200, {"id": entry.id, "backup_id": entry.id, "link": link})

    def _download(self, handler: _Handler, token: str, served: Served, *, truncate: bool) -> int:
        """Relay a presigned store URL, streaming; `truncate` sends the full Content-Length but half the bytes."""
        with self._lock:
            target = self._downloads.get(token)
        if target is None:
            raise ApiError(404, "DCS.4800", "Unknown download link.")
        url = urlsplit(target[0])
        upstream = http.client.HTTPConnection(url.hostname, url.port, timeout=60)
        try:
            headers = {"Range": handler.headers["Range"]} if handler.headers.get("Range") else {}
            upstream.request("GET", f"{url.path}?{url.query}", headers=headers)
            resp = upstream.getresponse()
            length = resp.getheader("Content-Length")
            served.status = resp.status
            self._record(served)  # still in flight while the body streams
            handler.send_response(resp.status)
            handler.send_header("X-Request-Id", served.request_id)
            for name in ("Content-Type", "ETag", "Last-Modified", "Content-Range", "Accept-Ranges"):
                if resp.getheader(name):
                    handler.send_header(name, resp.getheader(name))
            if length is None:  # the store always sends a length; keep the connection sane if not
                data = resp.read()
                handler.send_header("Content-Length", str(len(data)))
                handler.end_headers()
                handler.wfile.write(data)
                return resp.status
            handler.send_header("Content-Length", length)
            handler.end_headers()
            remaining = int(length) // 2 if truncate else int(length)
            while remaining > 0:
                chunk = resp.read(min(STREAM_CHUNK, remaining))
                if not chunk:
                    break
                handler.wfile.write(chunk)
                remaining -= len(chunk)
            if truncate or remaining > 0:
                handler.cut_connection()
            return resp.status
        finally:
            upstream.close()


# ---------------------------------------------------------------------------------------------------- views

def _spec_code(cache_mode: str, shards: int, replicas: int) -> str:
    if cache_mode == "single":
        return "redis.single.xu1.large.2"
    if cache_mode in ("ha", "ha_rw_split"):
        return f"redis.ha.xu1.large.r{replicas}.2"
    return f"redis.{cache_mode}.xu1.large.s{shards}.r{replicas}.{2 * shards}"


def _matches(instance: Instance, query: dict[str, str], wanted_tags: list[tuple[str, Optional[str]]]) -> bool:
    if query.get("status") and instance.status != query["status"]:
        return False
    if query.get("instance_id") and instance.instance_id != query["instance_id"]:
        return False
    name = query.get("name")
    if name:
        exact = query.get("name_equal", "").lower() == "true"
        if (instance.name != name) if exact else (name not in instance.name):
            return False
    for key, value in wanted_tags:
        if key not in instance.tags or (value is not None and instance.tags[key] != value):
            return False
    return True


def _instance_summary(instance: Instance) -> dict[str, Any]:
    master = instance.nodes[0]
    return {
        "instance_id": instance.instance_id, "name": instance.name, "engine": instance.engine,
        "engine_version": instance.engine_version, "spec_code": instance.spec_code, "status": instance.status,
        "sub_status": "normal", "capacity": instance.capacity, "max_memory": instance.capacity * 1024,
        "used_memory": 3, "ip": master.replication_ip, "port": 6379, "charging_mode": 0,
        "created_at": instance.created_at.strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
        "az_codes": sorted({n.az_code for n in instance.nodes}),
        "tags": [{"key": k, "value": v} for k, v in instance.tags.items()],
    }
