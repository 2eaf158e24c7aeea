"""The state behind the DCS emulator: its clock, instances and their nodes, run-log entries, faults, served requests.

Plain data and small thread-safe helpers; the HTTP side lives in `tests/localcloud/dcs.py`.
"""

from __future__ import annotations

import math
import random
import threading
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, timezone
from typing import Iterable, Optional

OPS = (
    "ListInstances", "ShowInstance", "ListGroupReplicationInfo", "CreateRedislog", "ListRedislog",
    "CreateRedislogDownloadLink", "Download",
)
CACHE_MODES = ("single", "ha", "ha_rw_split", "cluster", "proxy")
FAULT_KINDS = ("throttle", "error500", "drop", "truncate", "expired", "fail_collection", "delete_instance")
# Faults that only make sense for one operation.
FAULT_ONLY_FOR = {
    "truncate": "Download",
    "expired": "CreateRedislogDownloadLink",
    "fail_collection": "CreateRedislog",
}
RETENTION_DAYS = 7  # DCS keeps a run-log file for 7 days: the current day and the 7 before it stay listed


class ScenarioClock:
    """The emulator's notion of "now" (for log days and partial copies). Frozen until set or advanced."""

    def __init__(self, start: Optional[datetime] = None) -> None:
        self._lock = threading.Lock()
        self._now = _aware(start) if start is not None else datetime.now(timezone.utc)

    def now(self) -> datetime:
        with self._lock:
            return self._now

    def set(self, instant: datetime) -> None:
        with self._lock:
            self._now = _aware(instant)

    def advance(self, seconds: float = 0.0, **delta: float) -> datetime:
        """Move forward by `seconds` (and/or timedelta keywords such as days=1); returns the new time."""
        with self._lock:
            self._now += timedelta(seconds=seconds, **delta)
            return self._now


def _aware(instant: datetime) -> datetime:
    if instant.tzinfo is None:
        raise ValueError("the scenario clock needs an aware datetime (with tzinfo)")
    return instant.astimezone(timezone.utc)


def as_day(value: date | str) -> date:
    """A log day from a `date` or `yyyy-mm-dd` text."""
    if isinstance(value, datetime):
        raise TypeError("a log day is a date, not a datetime")
    if isinstance(value, date):
        return value
    return date.fromisoformat(value)


@dataclass
class Node:
    """One replica (DCS calls them replications) of an instance."""

    replication_id: str
    replication_ip: str
    group_name: str
    group_id: str
    role: str  # "master" | "slave"
    node_id: str
    az_code: str = "cn-north-4a"

    @property
    def log_role(self) -> str:
        return "M" if self.role == "master" else "S"


@dataclass
class LogEntry:
    """One run-log file DCS holds for a node and day, as one collection produced it."""

    id: str
    instance_id: str
    node: Node
    day: date
    file_name: str
    status: str  # "succeed" | "failed"
    visible_at: float  # time.monotonic() after which the collection counts as finished
    object_key: Optional[str]
    size: int
    partial: bool  # a copy of the current day taken before the day ended
    collected_at: datetime


@dataclass
class Instance:
    instance_id: str
    name: str
    tags: dict[str, str]
    engine: str
    engine_version: str
    status: str
    cache_mode: str
    spec_code: str
    capacity: int
    nodes: list[Node]
    log_days: set[date]
    log_size: int
    created_at: datetime
    shards: int
    replicas: int
    deleted: bool = False
    entries: list[LogEntry] = field(default_factory=list)
    log_size_max: int = 0  # above log_size: each node-day's size is drawn between the two (log_size_for)
    node_missing_days: dict[str, set[date]] = field(default_factory=dict)  # ip -> days that node logged nothing
    # DCS may run one collection of an instance at a time: each takes `serial_seconds`, and a CreateRedislog
    # meanwhile is refused with `serial_code` (DCS.4017, or its numeric twin 111400017)
    serial_seconds: Optional[float] = None
    serial_code: str = "DCS.4017"
    busy_until: float = 0.0  # time.monotonic() until which the running collection holds the instance

    def has_log(self, replication_ip: str, day: date) -> bool:
        return day in self.log_days and day not in self.node_missing_days.get(replication_ip, set())

    def log_size_for(self, replication_ip: str, day: date) -> int:
        """The size of one node's log of one day: `log_size`, or with `log_size_max` above it a seeded,
        log-uniform draw between the two (many small files of different sizes, the same on every call)."""
        if self.log_size <= 0 or self.log_size_max <= self.log_size:
            return self.log_size
        rng = random.Random(f"{self.instance_id}/{replication_ip}/{day.isoformat()}")
        return int(math.exp(rng.uniform(math.log(self.log_size), math.log(self.log_size_max))))

    def node_by_ip(self, replication_ip: str) -> Node:
        for node in self.nodes:
            if node.replication_ip == replication_ip:
                return node
        raise KeyError(f"instance {self.instance_id} has no node {replication_ip}")

    def node_by_id(self, replication_id: str) -> Optional[Node]:
        return next((n for n in self.nodes if n.replication_id == replication_id), None)

    @property
    def groups(self) -> list[tuple[str, str, list[Node]]]:
        """(group_id, group_name, nodes) in order."""
        out: dict[str, tuple[str, str, list[Node]]] = {}
        for node in self.nodes:
            out.setdefault(node.group_id, (node.group_id, node.group_name, []))[2].append(node)
        return list(out.values())


@dataclass
class Served:
    """One request the emulator answered (status 0: the connection was closed without a response)."""

    op: str
    method: str
    path: str
    query: dict[str, str]
    instance_id: Optional[str]
    replication_id: Optional[str]
    time: datetime  # scenario clock when the request arrived
    request_id: str
    started: float  # time.monotonic()
    finished: float = 0.0
    status: int = 0
    error_code: Optional[str] = None
    fault: Optional[str] = None  # the fault kind applied, if any
    recorded: bool = field(default=False, repr=False)


@dataclass
class FaultRule:
    op: str
    kind: str
    times: Optional[int]
    rate: Optional[float]
    instance_id: Optional[str]
    retry_after: int
    fired: int = 0
    replication_id: Optional[str] = None  # only calls naming this replica (CreateRedislog)

    def matches(self, op: str, instance_id: Optional[str], replication_id: Optional[str] = None) -> bool:
        if self.op not in ("*", op):
            return False
        if FAULT_ONLY_FOR.get(self.kind, op) != op:
            return False
        if self.replication_id is not None and self.replication_id != replication_id:
            return False
        return self.instance_id is None or self.instance_id == instance_id

    @property
    def spent(self) -> bool:
        return self.times is not None and self.fired >= self.times


class FaultPlan:
    """Faults armed on demand, per operation (one of OPS, or "*"); thread-safe, with a seeded RNG for `rate`."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._rules: list[FaultRule] = []
        self._latency: dict[str, float] = {}
        self._rng = random.Random(0)

    def latency(self, op: str, seconds: float) -> FaultPlan:
        """Delay every matching request by `seconds` before it is handled (0 removes the delay)."""
        _check_op(op)
        with self._lock:
            if seconds > 0:
                self._latency[op] = float(seconds)
            else:
                self._latency.pop(op, None)
        return self

    def add(self, op: str, kind: str, *, times: Optional[int] = None, rate: Optional[float] = None,
            instance_id: Optional[str] = None, retry_after: int = 2,
            replication_id: Optional[str] = None) -> FaultRule:
        """Arm a fault: for the next `times` matching calls, or a `rate` fraction of them, or (neither) always;
        with `replication_id`, only the calls naming that replica (a refusal of one node's collection)."""
        _check_op(op)
        if kind not in FAULT_KINDS:
            raise ValueError(f"unknown fault kind {kind!r}; one of {FAULT_KINDS}")
        only = FAULT_ONLY_FOR.get(kind)
        if only and op not in ("*", only):
            raise ValueError(f"fault {kind!r} applies to {only} only")
        if rate is not None and not 0.0 <= rate <= 1.0:
            raise ValueError("rate is a fraction between 0 and 1")
        rule = FaultRule(op, kind, times, rate, instance_id, retry_after, replication_id=replication_id)
        with self._lock:
            self._rules.append(rule)
        return rule

    def clear(self) -> None:
        with self._lock:
            self._rules.clear()
            self._latency.clear()

    def seed(self, n: int) -> None:
        with self._lock:
            self._rng.seed(n)

    def delay_for(self, op: str) -> float:
        with self._lock:
            return self._latency.get(op, self._latency.get("*", 0.0))

    def take(self, op: str, instance_id: Optional[str], kinds: Iterable[str],
             replication_id: Optional[str] = None) -> Optional[FaultRule]:
        """The first armed rule of these kinds that fires for this call (its count is used up)."""
        kinds = set(kinds)
        with self._lock:
            for rule in self._rules:
                if rule.kind not in kinds or rule.spent or not rule.matches(op, instance_id, replication_id):
                    continue
                if rule.rate is not None and self._rng.random() >= rule.rate:
                    continue
                rule.fired += 1
                return rule
        return None

    def armed(self, op: str, instance_id: Optional[str]) -> bool:
        """Whether any fault or latency could still apply to this operation for this instance."""
        with self._lock:
            if op in self._latency or "*" in self._latency:
                return True
            return any(not r.spent and r.matches(op, instance_id) for r in self._rules)


def _check_op(op: str) -> None:
    if op != "*" and op not in OPS:
        raise ValueError(f"unknown operation {op!r}; one of {OPS} or '*'")
