"""The DCS shell: the official `huaweicloudsdkdcs` client, with the SDK's retry hook, and plain data out.

Everything returned is a plain dataclass, so the core (discovery, selection) never sees SDK models.
"""

from __future__ import annotations

import random
import re
import threading
from dataclasses import dataclass
from typing import Any, Callable, Optional

from huaweicloudsdkcore.auth.credentials import BasicCredentials
from huaweicloudsdkcore.exceptions import exceptions as sdk_exc
from huaweicloudsdkcore.exceptions.exception_handler import DefaultExceptionHandler
from huaweicloudsdkcore.http.http_config import HttpConfig
from huaweicloudsdkcore.retry.backoff_strategy import BackoffStrategy
from huaweicloudsdkdcs.v2 import (
    CreateRedislogDownloadLinkRequest,
    CreateRedislogRequest,
    DcsClient,
    ListGroupReplicationInfoRequest,
    ListInstancesRequest,
    ListRedislogRequest,
    ShowInstanceRequest,
)

from shared.runtime import Credentials, ca_bundle, trust_environment_only_for_proxies

INSTANCE_PAGE = 1000  # ListInstances limit bounds 1-1000 (DCS API reference)
REDISLOG_PAGE = 1000  # ListRedislog limit bounds 1-1000 (DCS API reference)
RETRY_AFTER_CAP = 60.0
BUSY_CODE = "DCS.4017"  # "a job of this instance is still running, try again later" (OTC error table)
BUSY_CODES = (BUSY_CODE, "111400017")  # and its numeric twin (Real-cloud-facts: DCS error tables)
GONE_CODE = "DCS.3022"  # instance does not exist


class DcsError(Exception):
    """A DCS call failed for good (after the retries it deserved). Carries what an operator needs."""

    def __init__(self, op: str, *, status: Optional[int], code: str, message: str,
                 request_id: Optional[str] = None, instance_id: Optional[str] = None) -> None:
        self.op, self.status, self.code, self.message = op, status, code, message
        self.request_id, self.instance_id = request_id, instance_id
        where = f" instance {instance_id}" if instance_id else ""
        rid = f" request_id={request_id}" if request_id else ""
        super().__init__(f"{op}{where}: {status or '-'} {code} {message}{rid}")

    def as_dict(self) -> dict:
        return {"op": self.op, "status": self.status, "code": self.code, "message": self.message[:300],
                "request_id": self.request_id, "instance_id": self.instance_id}

    @property
    def busy(self) -> bool:
        """DCS is running another job of the instance (it may run one collection at a time): ask again later."""
        return self.code in BUSY_CODES


class InstanceGone(DcsError):
    """404 DCS.3022: the instance was deleted. Its jobs are finished, not retried."""


@dataclass(frozen=True)
class Instance:
    instance_id: str
    name: str
    engine: str
    engine_version: str
    status: str
    tags: tuple[tuple[str, str], ...]


@dataclass(frozen=True)
class Replica:
    replication_id: str
    replication_ip: str
    role: str
    group_name: str


_DAY_IN_NAME = re.compile(r"(?<![0-9])([0-9]{4}-[0-9]{2}-[0-9]{2})(?![0-9])")


def log_day_of(file_name: str, listed_time: str) -> str:
    """The day a run-log file is of: the date in its name (`redis_<ip>_<yyyy-mm-dd>.log`) when it carries one,
    else ListRedislog's `time` (documented as "the date run logs are collected", which may not be the log's day;
    Real-cloud-facts, DCS)."""
    named = _DAY_IN_NAME.findall(file_name or "")
    return named[-1] if named else (listed_time or "")[:10]


@dataclass(frozen=True)
class LogEntry:
    """One ListRedislog entry: a collected copy of one node's run log for one day. `day` is the log's day (from
    the file name, see log_day_of); `listed_time` what the listing's `time` said."""

    id: str
    file_name: str
    status: str
    day: str
    replication_ip: str
    group_name: str
    listed_time: str = ""

    @property
    def day_disagrees(self) -> bool:
        """The listing's `time` names another day than the file name."""
        return bool(self.listed_time) and self.listed_time[:10] != self.day

    def as_dict(self) -> dict:
        return {"id": self.id, "file_name": self.file_name, "status": self.status, "time": self.listed_time,
                "day": self.day, "replication_ip": self.replication_ip, "group_name": self.group_name}


class _RememberRetryAfter(DefaultExceptionHandler):
    """The SDK's own error handling, plus the throttling answer's Retry-After kept on the exception."""

    def handle_exception(self, request: Any, response: Any) -> None:
        try:
            super().handle_exception(request, response)
        except sdk_exc.ServiceResponseException as exc:
            exc.retry_after = _parse_retry_after(response.headers.get("Retry-After"))
            raise


def _parse_retry_after(value: Optional[str]) -> Optional[float]:
    try:
        return min(max(float(value), 0.0), RETRY_AFTER_CAP) if value is not None else None
    except ValueError:
        return None


def is_retryable(exc: Optional[BaseException], retry_busy: bool = True) -> bool:
    """429, 5xx, connection trouble and DCS.4017 are retried; other 4xx are final. `retry_busy=False` leaves
    DCS.4017 to the caller (a collection refused while another runs is asked again later, not waited for)."""
    if isinstance(exc, sdk_exc.ServiceResponseException):
        busy = exc.error_code in BUSY_CODES
        return exc.status_code == 429 or exc.status_code >= 500 or (busy and retry_busy)
    return isinstance(exc, (sdk_exc.ConnectionException, sdk_exc.RequestTimeoutException))


class RetryPolicy(BackoffStrategy):
    """The SDK's `with_retry` condition and backoff in one object, one per call.

    Honours Retry-After on 429; otherwise exponential backoff with full jitter. DCS.4017 (a job of the
    instance is running) waits longer, as the error asks to try again later.
    """

    def __init__(self, base: float = 0.5, cap: float = 20.0, busy_base: float = 5.0,
                 throttle_wait: tuple[float, float] = (2.0, 5.0), rng: Optional[random.Random] = None,
                 scale: float = 1.0) -> None:
        """`scale` (API_RETRY_WAIT_SCALE) stretches or shrinks every wait but a server's own Retry-After."""
        self.base, self.cap, self.busy_base = base * scale, cap * scale, busy_base * scale
        self.throttle_wait = (throttle_wait[0] * scale, throttle_wait[1] * scale)
        self._rng = rng or random.Random()
        self._last: Optional[BaseException] = None
        self.attempts = 0
        self.retry_busy = True

    def should_retry(self, response: Any, exc: Optional[BaseException]) -> bool:
        self._last = exc
        self.attempts += 1
        return is_retryable(exc, self.retry_busy)

    def calculate_retry_delay_millis(self, retries: int) -> int:
        retry_after = getattr(self._last, "retry_after", None)
        if retry_after is not None:
            # a little jitter on top, so a crowd told "2 s" does not come back in one burst
            return int((retry_after + self._rng.uniform(0, 0.5)) * 1000)
        if getattr(self._last, "status_code", None) == 429:
            # On a GET the SDK's urllib3 layer turns a 429 into "too many 429 error responses" and drops the
            # response with its Retry-After; the gateway's documented advice is to retry after 2-5 s.
            return int(self._rng.uniform(*self.throttle_wait) * 1000)
        base = self.busy_base if getattr(self._last, "error_code", None) in BUSY_CODES else self.base
        return int(self._rng.uniform(0, min(self.cap, base * 2 ** (retries - 1))) * 1000)


def _to_error(op: str, exc: Exception, instance_id: Optional[str]) -> DcsError:
    if isinstance(exc, sdk_exc.ServiceResponseException):
        kind = InstanceGone if exc.status_code == 404 and exc.error_code == GONE_CODE else DcsError
        return kind(op, status=exc.status_code, code=exc.error_code or str(exc.status_code),
                    message=exc.error_msg or "", request_id=exc.request_id, instance_id=instance_id)
    code = "CONNECTION" if isinstance(exc, sdk_exc.ConnectionException) else type(exc).__name__
    return DcsError(op, status=None, code=code, message=str(exc)[:300], instance_id=instance_id)


_CLIENTS: dict[tuple, DcsClient] = {}
_CLIENTS_LOCK = threading.Lock()


def build_client(endpoint: str, creds: Credentials, project_id: str, pool_size: int = 10) -> DcsClient:
    """One DcsClient per container and credentials: warm invocations reuse its connection pool."""
    key = (endpoint, creds.ak, creds.sk, creds.security_token, project_id, pool_size)
    with _CLIENTS_LOCK:
        client = _CLIENTS.get(key)
        if client is None:
            sdk_creds = BasicCredentials(creds.ak, creds.sk, project_id)
            if creds.security_token:
                sdk_creds = sdk_creds.with_security_token(creds.security_token)
            config = HttpConfig.get_default_config()
            config.timeout = (10, 60)
            config.pool_connections = config.pool_maxsize = max(10, pool_size)
            config.ssl_ca_cert = ca_bundle()  # the SDK passes `verify` on every request: the environment's, once
            client = (DcsClient.new_builder()
                      .with_credentials(sdk_creds)
                      .with_endpoints([endpoint])
                      .with_http_config(config)
                      .with_exception_handler(_RememberRetryAfter())
                      .build())
            # the SDK's requests session (huaweicloudsdkcore.http.http_client.HttpClient._session)
            session = getattr(client.get_http_client(), "_session", None)
            if session is not None:
                trust_environment_only_for_proxies(session)
            _CLIENTS.clear()  # keys rotate every 24 h with the agency's credentials: keep only the current one
            _CLIENTS[key] = client
        return client


class Dcs:
    """The DCS calls this project makes, each retried through the SDK's hook and turned into plain data."""

    def __init__(self, client: DcsClient, max_retries: int = 5,
                 policy_factory: Callable[[], RetryPolicy] = RetryPolicy) -> None:
        self._client = client
        self._max_retries = max_retries
        self._policy_factory = policy_factory

    def _call(self, op: str, invoker: Any, instance_id: Optional[str] = None, retry_busy: bool = True) -> Any:
        if self._max_retries > 0:
            policy = self._policy_factory()
            policy.retry_busy = retry_busy
            invoker = invoker.with_retry(policy.should_retry, self._max_retries, policy)
        try:
            return invoker.invoke()
        except sdk_exc.SdkException as exc:
            raise _to_error(op, exc, instance_id) from None

    def list_instances(self, tags_filter: str) -> list[Instance]:
        """Every instance carrying the tags (server-side filter), every page; deduplicated by id."""
        found: dict[str, Instance] = {}
        offset = 0
        while True:
            request = ListInstancesRequest(tags=tags_filter or None, offset=offset, limit=INSTANCE_PAGE)
            resp = self._call("ListInstances", self._client.list_instances_invoker(request))
            page = resp.instances or []
            for item in page:
                found.setdefault(item.instance_id, _instance(item))
            offset += len(page)
            if not page or offset >= (resp.instance_num or 0):
                return list(found.values())

    def show_instance(self, instance_id: str) -> tuple[Instance, str]:
        """The instance and its `cache_mode` (single, ha, ha_rw_split, cluster, proxy)."""
        resp = self._call("ShowInstance", self._client.show_instance_invoker(
            ShowInstanceRequest(instance_id=instance_id)), instance_id)
        return _instance(resp), (resp.cache_mode or "")

    def list_replicas(self, instance_id: str) -> list[Replica]:
        resp = self._call("ListGroupReplicationInfo", self._client.list_group_replication_info_invoker(
            ListGroupReplicationInfoRequest(instance_id=instance_id)), instance_id)
        replicas = []
        for group in resp.group_list or []:
            for rep in group.replication_list or []:
                replicas.append(Replica(rep.replication_id, rep.replication_ip or "",
                                        (rep.replication_role or "").lower(), group.group_name or ""))
        return replicas

    def create_redislog(self, instance_id: str, query_time: int, replication_id: Optional[str],
                        retry_busy: bool = True) -> None:
        """Ask DCS to collect; `retry_busy=False` raises a DcsError with `.busy` at once on DCS.4017."""
        request = CreateRedislogRequest(instance_id=instance_id, query_time=query_time, log_type="run",
                                        replication_id=replication_id)
        self._call("CreateRedislog", self._client.create_redislog_invoker(request), instance_id, retry_busy)

    def list_redislog(self, instance_id: str) -> list[LogEntry]:
        """Every run-log entry, every page, paged defensively.

        The offset base is documented both ways (0-based in HWdocs, 1-based in the OTC example and Terraform).
        Stepping by the count received from offset 0 never skips an entry on either kind of server (a 1-based
        one repeats at most one per page, dropped by id); a server refusing offset 0 is asked again from 1.
        An empty listing is a 204 without a body.
        """
        found: dict[str, LogEntry] = {}
        offset, total = 0, None
        while True:
            request = ListRedislogRequest(instance_id=instance_id, offset=offset, limit=REDISLOG_PAGE,
                                          log_type="run")
            try:
                resp = self._call("ListRedislog", self._client.list_redislog_invoker(request), instance_id)
            except DcsError as err:
                if offset == 0 and err.status == 400 and not found:
                    offset = 1
                    continue
                raise
            page = resp.file_list or []
            total = resp.total_num if resp.total_num is not None else total
            new = 0
            for item in page:
                if item.id and item.id not in found:
                    found[item.id] = LogEntry(item.id, item.file_name or "", (item.status or "").lower(),
                                              log_day_of(item.file_name or "", item.time or ""),
                                              item.replication_ip or "", item.group_name or "", item.time or "")
                    new += 1
            offset += len(page)
            if not page or not new or (total is not None and len(found) >= total):
                return list(found.values())

    def create_download_link(self, instance_id: str, entry_id: str) -> str:
        resp = self._call("CreateRedislogDownloadLink", self._client.create_redislog_download_link_invoker(
            CreateRedislogDownloadLinkRequest(instance_id=instance_id, id=entry_id)), instance_id)
        if not resp.link:
            raise DcsError("CreateRedislogDownloadLink", status=getattr(resp, "status_code", None),
                           code="NO_LINK", message=f"no link in the answer for entry {entry_id}",
                           instance_id=instance_id)
        return resp.link


def _instance(item: Any) -> Instance:
    tags = tuple((t.key, t.value or "") for t in (item.tags or []) if t.key is not None)
    return Instance(item.instance_id, item.name or "", item.engine or "", item.engine_version or "",
                    item.status or "", tags)
