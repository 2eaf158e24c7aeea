"""The node-day ledger: for each tagged instance, every node's every day and what became of it.

    <queue prefix>ledger/<instance_id>.json        one JSON object per instance, read with one request

Completeness is judged per node and day, never per instance. A node-day inside DCS's window is in one state:

    archived   a final copy is in the archive (key, bytes in/out, SHA-256, source entry id)
    no-log     a collection of that node covering that day, made after the day ended, settled and listed no
               file for it (Redis logs little: common, and never re-collected)
    failed     the day left DCS's window before it could be archived (the reason says why)
    missing    none of the above yet (no record, or a record of the attempts so far)

This module owns the ledger objects: the archiver writes them after each job (read, merge, write), and everything
that judges completeness reads them: the collector's "up to date" shortcut and window, the archiver's plan, the
manifest, the report and `cli status`. The decisions are pure functions on plain data; `LedgerStore` is the
thin OBS shell.
"""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Iterable, Iterator, Optional

from shared.obs import Obs, ObsError
from shared.selection import RETENTION_DAYS

SCHEMA_VERSION = 1
ARCHIVED, NO_LOG, FAILED, MISSING = "archived", "no-log", "failed", "missing"
STATES = (ARCHIVED, NO_LOG, FAILED, MISSING)
SETTLED = (ARCHIVED, NO_LOG, FAILED)
KEEP_DAYS = 40  # days of history a ledger keeps (the manifests keep the rest)
_RANK = {MISSING: 0, FAILED: 1, NO_LOG: 2, ARCHIVED: 3}  # a merge keeps the stronger of two records
SINGLE_NODE = ""  # the key of a single-node instance's node until its IP is learned from a listing


class MalformedLedger(ValueError):
    """A ledger object this code cannot read; the archiver starts a new one (the archive itself is the backstop:
    keys found there are recorded again)."""


def window(today: date) -> list[str]:
    """The finished days DCS still holds, oldest first: today-7 ... yesterday."""
    return [(today - timedelta(days=n)).isoformat() for n in range(RETENTION_DAYS, 0, -1)]


@dataclass
class NodeRecord:
    """One node (a replica; the only node of a single-node instance) and its days."""

    ip: str
    replication_id: str = ""
    group: str = ""
    role: str = ""
    first_seen: str = ""  # the day the collector first listed it
    expected_from: str = ""  # its first day that must be accounted for
    removed_on: Optional[str] = None  # the day it was no longer listed (scale-in); its later days are not expected
    last_error: Optional[str] = None  # the last refused collection, kept until one succeeds
    collect_failures: int = 0
    days: dict[str, dict] = field(default_factory=dict)

    def state(self, day: str) -> str:
        return self.days.get(day, {}).get("state", MISSING)

    def expects(self, day: str) -> bool:
        return day >= self.expected_from and (self.removed_on is None or day < self.removed_on)

    def to_dict(self) -> dict:
        return {"ip": self.ip, "replication_id": self.replication_id, "group": self.group, "role": self.role,
                "first_seen": self.first_seen, "expected_from": self.expected_from, "removed_on": self.removed_on,
                "last_error": self.last_error, "collect_failures": self.collect_failures,
                "days": {d: self.days[d] for d in sorted(self.days)}}

    @classmethod
    def from_dict(cls, data: dict) -> NodeRecord:
        days = data.get("days")
        days = {} if days is None else days
        if not isinstance(days, dict) or not all(isinstance(v, dict) and v.get("state") in STATES
                                                 for v in days.values()):
            raise MalformedLedger(f"node {data.get('ip')!r}: days must map yyyy-mm-dd to a record with a state")
        return cls(ip=str(data.get("ip") or ""), replication_id=str(data.get("replication_id") or ""),
                   group=str(data.get("group") or ""), role=str(data.get("role") or ""),
                   first_seen=str(data.get("first_seen") or ""), expected_from=str(data.get("expected_from") or ""),
                   removed_on=data.get("removed_on"), last_error=data.get("last_error"),
                   collect_failures=int(data.get("collect_failures") or 0), days=dict(days))


@dataclass
class Ledger:
    instance_id: str
    instance_name: str = ""
    cache_mode: str = ""
    first_seen: str = ""
    updated_at: str = ""
    nodes: dict[str, NodeRecord] = field(default_factory=dict)
    schema: int = SCHEMA_VERSION

    # --- reading ---------------------------------------------------------------------------------------
    def active_nodes(self) -> list[NodeRecord]:
        return [n for n in self.nodes.values() if n.removed_on is None]

    def node_days(self, days: Iterable[str]) -> Iterator[tuple[NodeRecord, str, str]]:
        """(node, day, state) for every node-day that must be accounted for among `days`."""
        days = list(days)
        for ip in sorted(self.nodes):
            node = self.nodes[ip]
            for day in days:
                if node.expects(day):
                    yield node, day, node.state(day)

    def missing(self, today: date) -> list[tuple[str, str]]:
        """(ip, day) of the node-days in DCS's window that are neither archived, no-log nor failed."""
        return [(n.ip, d) for n, d, s in self.node_days(window(today)) if s == MISSING]

    def counts(self, days: Iterable[str]) -> dict[str, int]:
        out = dict.fromkeys(STATES, 0)
        for _, _, state in self.node_days(days):
            out[state] += 1
        return out

    def day_settled(self, day: str) -> bool:
        """Every expected node-day of `day` is archived, no-log or failed (and the instance has a node)."""
        states = [s for _, _, s in self.node_days([day])]
        return bool(states) and all(s in SETTLED for s in states)

    # --- serialising -----------------------------------------------------------------------------------
    def to_dict(self) -> dict:
        return {"schema": self.schema, "instance_id": self.instance_id, "instance_name": self.instance_name,
                "cache_mode": self.cache_mode, "first_seen": self.first_seen, "updated_at": self.updated_at,
                "nodes": {ip: self.nodes[ip].to_dict() for ip in sorted(self.nodes)}}

    @classmethod
    def from_dict(cls, data: object, where: str = "ledger") -> Ledger:
        if not isinstance(data, dict):
            raise MalformedLedger(f"{where}: not a JSON object")
        if data.get("schema") != SCHEMA_VERSION:
            raise MalformedLedger(f"{where}: schema {data.get('schema')!r} is not {SCHEMA_VERSION}")
        nodes = data.get("nodes") or {}
        if not isinstance(data.get("instance_id"), str) or not isinstance(nodes, dict):
            raise MalformedLedger(f"{where}: instance_id and nodes are required")
        try:
            parsed = {ip: NodeRecord.from_dict({**node, "ip": ip}) for ip, node in nodes.items()}
        except (TypeError, ValueError, AttributeError) as exc:
            raise MalformedLedger(f"{where}: {exc}") from None
        return cls(instance_id=data["instance_id"], instance_name=str(data.get("instance_name") or ""),
                   cache_mode=str(data.get("cache_mode") or ""), first_seen=str(data.get("first_seen") or ""),
                   updated_at=str(data.get("updated_at") or ""), nodes=parsed)


# --- decisions (pure) ----------------------------------------------------------------------------------

def up_to_date(ledger: Optional[Ledger], today: date) -> bool:
    """Nothing for the collector to do until today ends: every active node's yesterday is archived or no-log."""
    if ledger is None or not ledger.active_nodes():
        return False
    yesterday = (today - timedelta(days=1)).isoformat()
    return all(n.state(yesterday) in (ARCHIVED, NO_LOG) for n in ledger.active_nodes() if n.expects(yesterday))


def oldest_missing(ledger: Optional[Ledger], today: date) -> Optional[str]:
    """The oldest node-day in DCS's window still missing; the whole window when the instance is new."""
    if ledger is None or not ledger.nodes:
        return window(today)[0]
    return min((day for _, day in ledger.missing(today)), default=None)


def query_time_for(oldest: Optional[str], today: date, minimum: int,
                   choices: tuple[int, ...] = (0, 1, 3, 7)) -> int:
    """The smallest collection window (QUERY_TIME's values) that reaches back to `oldest`, at least `minimum`."""
    needed = minimum if oldest is None else max(minimum, (today - date.fromisoformat(oldest)).days)
    return next((q for q in choices if q >= needed), choices[-1])


def observe_topology(ledger: Ledger, replicas: Iterable[dict], today: date, *, single: bool,
                     whole: bool = True) -> list[str]:
    """Bring the ledger's node list up to date with a replica listing: new nodes are added (a node first seen on
    a known instance is expected from the day before it was seen: it may have been created then), nodes no longer
    listed are marked removed when `whole` says the listing is the whole topology. Returns what changed."""
    changes: list[str] = []
    today_s = today.isoformat()
    new_instance = not ledger.nodes
    if new_instance and not ledger.first_seen:
        ledger.first_seen = today_s
    start = window(today)[0]
    if single:
        replicas = list(replicas) or [{"replication_ip": SINGLE_NODE}]
    seen = set()
    for rep in replicas:
        ip = rep.get("replication_ip") or SINGLE_NODE
        seen.add(ip)
        node = ledger.nodes.get(ip)
        if single and node is None and len(ledger.nodes) == 1:
            node = next(iter(ledger.nodes.values()))  # the single node, keyed by the IP a listing gave it
            seen.add(node.ip)
        if node is None:
            expected = start if new_instance else max(start, (today - timedelta(days=1)).isoformat())
            node = NodeRecord(ip=ip, first_seen=today_s, expected_from=expected)
            ledger.nodes[ip] = node
            changes.append(f"node {ip or '(single)'} added, expected from {expected}")
        elif node.removed_on is not None:
            node.removed_on = None
            changes.append(f"node {ip} listed again")
        node.replication_id = rep.get("replication_id") or node.replication_id
        node.group = rep.get("group_name") or node.group
        node.role = rep.get("role") or node.role
    if whole and not single:
        for ip, node in ledger.nodes.items():
            if ip not in seen and node.removed_on is None:
                node.removed_on = today_s
                lost = [d for d in window(today) if node.expects(d) and node.state(d) == MISSING]
                for day in lost:  # its logs went with it: nothing can collect these days any more
                    node.days[day] = {"state": FAILED, "reason": f"node removed (scale-in, no longer listed on "
                                                                 f"{today_s}) before this day was archived"}
                changes.append(f"node {ip} no longer listed (scale-in); days from {today_s} not expected"
                               + (f"; {len(lost)} missing day(s) failed" if lost else ""))
    return changes


def learn_single_ip(ledger: Ledger, ip: str) -> None:
    """A single-node instance's node is keyed by its IP once a listing shows it."""
    if ip and SINGLE_NODE in ledger.nodes and ip not in ledger.nodes:
        node = ledger.nodes.pop(SINGLE_NODE)
        node.ip = ip
        ledger.nodes[ip] = node


def node_for(ledger: Ledger, ip: str) -> Optional[NodeRecord]:
    """The node an entry's replication IP belongs to (the only node of a single-node instance)."""
    if ip in ledger.nodes:
        return ledger.nodes[ip]
    if ledger.cache_mode == "single" and len(ledger.nodes) == 1:
        return next(iter(ledger.nodes.values()))
    return None


def settle_expired(ledger: Ledger, today: date) -> list[tuple[str, str]]:
    """Node-days that left DCS's window while missing become `failed` with the reason last known; history
    older than KEEP_DAYS is dropped. Returns the node-days that failed now."""
    oldest_kept = window(today)[0]
    horizon = (today - timedelta(days=KEEP_DAYS)).isoformat()
    failed = []
    for node in ledger.nodes.values():
        for day in list(node.days):
            if day < horizon:
                del node.days[day]
        day = node.expected_from
        while day and day < oldest_kept and day >= horizon:
            if node.expects(day) and node.state(day) == MISSING:
                reason = node.days.get(day, {}).get("reason") or node.last_error \
                    or "not collected while DCS held it (no run reached it in 7 days)"
                node.days[day] = {"state": FAILED, "reason": f"left DCS's 7-day window: {reason}"[:500]}
                failed.append((node.ip, day))
            day = (date.fromisoformat(day) + timedelta(days=1)).isoformat()
    return failed


def merge(base: Ledger, update: Ledger) -> Ledger:
    """Combine a ledger read back just before writing with this job's: per node-day the stronger record wins
    (archived > no-log > failed > missing), so two jobs of one instance never undo each other's work."""
    out = Ledger.from_dict(update.to_dict())
    for ip, old in base.nodes.items():
        node = out.nodes.get(ip)
        if node is None:
            out.nodes[ip] = NodeRecord.from_dict(old.to_dict())
            continue
        for day, record in old.days.items():
            mine = node.days.get(day)
            if mine is None or _RANK[record["state"]] > _RANK[mine["state"]]:
                node.days[day] = record
    return out


def summary(ledger: Ledger, today: date) -> dict:
    """Counts of the node-days in DCS's window by state, and the missing ones named: one log line answers
    "is anything missing?"."""
    counts = ledger.counts(window(today))
    missing = ledger.missing(today)
    return {**{k.replace("-", "_"): v for k, v in counts.items()},
            "missing_node_days": [f"{ip or '(single)'} {day}" for ip, day in missing[:20]]}


# --- the store (shell) ---------------------------------------------------------------------------------

def ledger_key(queue_prefix: str, instance_id: str) -> str:
    return f"{queue_prefix}ledger/{instance_id}.json"


class LedgerStore:
    def __init__(self, obs: Obs, bucket: str, prefix: str) -> None:
        self.obs, self.bucket, self.prefix = obs, bucket, prefix

    def read(self, instance_id: str) -> Optional[Ledger]:
        """The instance's ledger; None when there is none yet. MalformedLedger when unreadable."""
        key = ledger_key(self.prefix, instance_id)
        raw = self.obs.get_bytes(self.bucket, key)
        if raw is None:
            return None
        try:
            data = json.loads(raw)
        except (ValueError, UnicodeDecodeError) as exc:
            raise MalformedLedger(f"{self.bucket}/{key}: not JSON ({exc})") from None
        return Ledger.from_dict(data, where=f"{self.bucket}/{key}")

    def write(self, ledger: Ledger) -> str:
        """Merge with what is stored now (another job of the instance may have written since it was read) and
        write; returns the key."""
        try:
            current = self.read(ledger.instance_id)
        except MalformedLedger:
            current = None
        merged = merge(current, ledger) if current is not None else ledger
        key = ledger_key(self.prefix, ledger.instance_id)
        self.obs.put_json(self.bucket, key, merged.to_dict())
        return key

    def instance_ids(self) -> list[str]:
        head = f"{self.prefix}ledger/"
        return sorted(o.key[len(head):-len(".json")] for o in self.obs.list(self.bucket, head)
                      if o.key.endswith(".json"))

    def read_all(self, workers: int = 8) -> Iterator[tuple[str, Optional[Ledger], Optional[str]]]:
        """(instance id, ledger, error) for every stored ledger, in id order, `workers` read at once (a fleet's
        ledgers are many small GETs: latency, not bandwidth, bounds them)."""
        def one(instance_id: str) -> tuple[str, Optional[Ledger], Optional[str]]:
            try:
                return instance_id, self.read(instance_id), None
            except (MalformedLedger, ObsError) as exc:
                return instance_id, None, str(exc)

        with ThreadPoolExecutor(max_workers=max(1, workers), thread_name_prefix="ledgers") as pool:
            yield from pool.map(one, self.instance_ids())


# --- recording a job's outcome (pure) ------------------------------------------------------------------

def record_archived(ledger: Ledger, ip: str, day: str, record: dict) -> None:
    node = node_for(ledger, ip)
    if node is not None:
        node.days[day] = {**record, "state": ARCHIVED}


def record_no_log(ledger: Ledger, ip: str, day: str, proof: dict) -> None:
    """Only a missing node-day becomes no-log: an archived one stays archived."""
    node = node_for(ledger, ip)
    if node is not None and node.expects(day) and node.state(day) == MISSING:
        node.days[day] = {**proof, "state": NO_LOG}


def record_missing(ledger: Ledger, ip: str, day: str, reason: str) -> None:
    """A copy that failed (or a collection that ended failed): still missing, with the reason and a count."""
    node = node_for(ledger, ip)
    if node is not None and node.state(day) == MISSING:
        attempts = int(node.days.get(day, {}).get("attempts") or 0) + 1
        node.days[day] = {"state": MISSING, "reason": reason[:500], "attempts": attempts}


def record_collect(ledger: Ledger, ip: str, error: Optional[str]) -> None:
    """A node's collect call: refused (the reason is kept for the days it leaves missing) or accepted."""
    node = node_for(ledger, ip)
    if node is None:
        return
    if error:
        node.last_error, node.collect_failures = error[:500], node.collect_failures + 1
    else:
        node.last_error, node.collect_failures = None, 0


def archived_keys(ledger: Optional[Ledger]) -> set[str]:
    """Every key the ledger knows as a node-day's final archive."""
    if ledger is None:
        return set()
    return {rec["key"] for node in ledger.nodes.values() for rec in node.days.values()
            if rec.get("state") == ARCHIVED and rec.get("key")}


# --- reading for people (pure) -------------------------------------------------------------------------

MARKS = {ARCHIVED: "A", NO_LOG: "-", FAILED: "F", MISSING: "?"}


def status_rows(ledger: Ledger, days: list[str]) -> list[dict]:
    """One row per node: its identity and the state of each day it must account for ("" where not expected)."""
    rows = []
    for ip in sorted(ledger.nodes):
        node = ledger.nodes[ip]
        rows.append({"instance_id": ledger.instance_id, "instance_name": ledger.instance_name,
                     "node": ip or "(single node)", "group": node.group, "role": node.role,
                     "removed_on": node.removed_on, "last_error": node.last_error,
                     "states": {d: (node.state(d) if node.expects(d) else "") for d in days},
                     "records": {d: node.days[d] for d in days if d in node.days}})
    return rows


def status_table(ledgers: list[Ledger], days: list[str], *, long: bool = False) -> str:
    """The ledgers as text: a grid of node x day (A archived, - no-log, F failed, ? missing), or with `long`
    one line per node-day with its key, size or reason."""
    lines = []
    if not long:
        lines.append("A archived   - no-log (proven empty)   F failed   ? missing   (blank: not expected)")
        lines.append(f"{'instance':<28} {'node':<30} " + " ".join(d[5:] for d in days))
    for ledger in ledgers:
        name = f"{ledger.instance_name or '?'} ({ledger.instance_id[:8]})"
        for row in status_rows(ledger, days):
            node = f"{row['node']} {row['group']} {row['role']}".strip()
            if row["removed_on"]:
                node += f" (gone {row['removed_on'][5:]})"
            if not long:
                cells = " ".join(f"{MARKS.get(row['states'][d], ' '):<5}" for d in days)
                lines.append(f"{name:<28.28} {node:<30.30} {cells}".rstrip())
                continue
            for day in days:
                state = row["states"][day]
                if not state:
                    continue
                rec = row["records"].get(day, {})
                detail = rec.get("key") or rec.get("reason") or ""
                if state == ARCHIVED and rec.get("bytes_in") is not None:
                    detail += f" {rec['bytes_in']} B sha256={str(rec.get('sha256'))[:12]}"
                if state == MISSING and row["last_error"] and not rec.get("reason"):
                    detail = f"last refusal: {row['last_error']}"
                lines.append(f"{name}\t{row['node']}\t{day}\t{state}\t{detail}".rstrip())
    return "\n".join(lines)
