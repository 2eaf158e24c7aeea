"""The job queue in OBS: this module owns the job objects and their states; nobody else writes them.

    <queue prefix>pending/<instance_id>.json            waiting for the archiver (its creation fires the trigger)
    <queue prefix>retry/<instance_id>.json              files still missing; the collector's sweep re-drives it
    <queue prefix>done/<instance_id>/<job_id>.json      finished, with a record per file
    <queue prefix>failed/<instance_id>/<job_id>.json    past the attempt limit, or unreadable, with the reason

A state change writes the new object first and deletes the old one second: a crash in between leaves the job in
two states, never in none. `retry/` is outside the trigger's prefix, so parking a job there fires nothing.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import asdict, dataclass, field, replace
from datetime import datetime, timedelta, timezone
from typing import Optional

from shared.obs import ObjectInfo, Obs, ObsError

SCHEMA_VERSION = 2
READABLE_SCHEMAS = (1, 2)  # version 1 jobs (before the node-day ledger) are read with empty new fields
PENDING, RETRY, DONE, FAILED = "pending", "retry", "done", "failed"


class MalformedJob(ValueError):
    """A queue object that is not a job this code can read. It is dead-lettered, never dropped."""


@dataclass(frozen=True)
class Job:
    instance_id: str
    instance_name: str
    project_id: str
    region: str
    query_time: int
    replication_ids: tuple[str, ...]  # collected replicas (empty for a single-node instance)
    requested_at: str
    entries_before: tuple[str, ...]
    job_id: str = field(default_factory=lambda: uuid.uuid4().hex)
    attempts: int = 0
    last_error: Optional[str] = None
    next_attempt_at: Optional[str] = None
    redriven_at: Optional[str] = None
    replication_ips: tuple[str, ...] = ()  # the IP of each collected replica, in the same order
    collected_at: Optional[str] = None  # when the last collect call returned (the settle time counts from it)
    cache_mode: str = ""
    # every replica listed at collection time ({replication_id, replication_ip, group_name, role}): the ledger
    # learns scale-out and scale-in from it
    topology: tuple[dict, ...] = ()
    # replicas whose collection was refused or deferred ({replication_id, replication_ip, group_name, attempts,
    # last_error}): the archiver asks DCS again while it waits, continuing across invocations
    pending_replicas: tuple[dict, ...] = ()
    node_collected_at: dict = field(default_factory=dict)  # replication ip ("" single) -> its collect call's time
    continuations: int = 0  # times this job handed itself to a new invocation (bounded by JOB_MAX_CONTINUATIONS)
    schema: int = SCHEMA_VERSION

    def to_dict(self) -> dict:
        data = asdict(self)
        data["replication_ids"] = list(self.replication_ids)
        data["entries_before"] = list(self.entries_before)
        data["replication_ips"] = list(self.replication_ips)
        data["topology"] = [dict(r) for r in self.topology]
        data["pending_replicas"] = [dict(r) for r in self.pending_replicas]
        data["node_collected_at"] = dict(self.node_collected_at)
        data["schema"] = SCHEMA_VERSION
        return data

    @classmethod
    def from_dict(cls, data: object, where: str = "job") -> Job:
        if not isinstance(data, dict):
            raise MalformedJob(f"{where}: not a JSON object")
        schema = data.get("schema")
        if schema not in READABLE_SCHEMAS:
            raise MalformedJob(f"{where}: schema {schema!r} is not one of {READABLE_SCHEMAS}")
        try:
            job = cls(
                instance_id=_text(data, "instance_id"),
                instance_name=str(data.get("instance_name") or ""),
                project_id=_text(data, "project_id"),
                region=str(data.get("region") or ""),
                query_time=int(data["query_time"]),
                replication_ids=_strings(data, "replication_ids"),
                requested_at=_text(data, "requested_at"),
                entries_before=_strings(data, "entries_before"),
                job_id=_text(data, "job_id"),
                attempts=int(data.get("attempts") or 0),
                last_error=data.get("last_error"),
                next_attempt_at=data.get("next_attempt_at"),
                redriven_at=data.get("redriven_at"),
                replication_ips=_strings(data, "replication_ips"),
                collected_at=data.get("collected_at"),
                cache_mode=str(data.get("cache_mode") or ""),
                topology=_records(data, "topology"),
                pending_replicas=_records(data, "pending_replicas"),
                node_collected_at=_times(data, "node_collected_at"),
                continuations=int(data.get("continuations") or 0),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise MalformedJob(f"{where}: {exc}") from None
        if "/" in job.instance_id or not job.instance_id.strip():
            raise MalformedJob(f"{where}: instance_id {job.instance_id!r} is not an id")
        parse_time(job.requested_at, where)
        for name in ("next_attempt_at", "redriven_at", "collected_at"):
            value = getattr(job, name)
            if value is not None:
                if not isinstance(value, str):
                    raise MalformedJob(f"{where}: {name} must be a string")
                parse_time(value, where)
        if job.last_error is not None and not isinstance(job.last_error, str):
            raise MalformedJob(f"{where}: last_error must be a string")
        return job

    @classmethod
    def parse(cls, raw: bytes, where: str = "job") -> Job:
        try:
            data = json.loads(raw)
        except (ValueError, UnicodeDecodeError) as exc:
            raise MalformedJob(f"{where}: not JSON ({exc})") from None
        return cls.from_dict(data, where)


def _strings(data: dict, name: str) -> tuple[str, ...]:
    value = data.get(name)
    if value is None:
        return ()
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ValueError(f"{name} must be a list of strings")
    return tuple(value)


def _records(data: dict, name: str) -> tuple[dict, ...]:
    value = data.get(name)
    if value is None:
        return ()
    if not isinstance(value, list) or not all(isinstance(v, dict) for v in value):
        raise ValueError(f"{name} must be a list of objects")
    for record in value:
        for key in ("replication_id", "replication_ip", "group_name", "role", "last_error"):
            if record.get(key) is not None and not isinstance(record[key], str):
                raise ValueError(f"{name}: {key} must be a string")
    return tuple(dict(v) for v in value)


def _times(data: dict, name: str) -> dict:
    value = data.get(name)
    if value is None:
        return {}
    if not isinstance(value, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in value.items()):
        raise ValueError(f"{name} must map replication IPs to times")
    for moment in value.values():
        parse_time(moment)
    return dict(value)


def _text(data: dict, name: str) -> str:
    value = data[name]
    if not isinstance(value, str) or not value:
        raise ValueError(f"{name} must be a non-empty string")
    return value


def parse_time(text: Optional[str], where: str = "job") -> datetime:
    try:
        moment = datetime.fromisoformat(str(text).replace("Z", "+00:00"))
    except ValueError:
        raise MalformedJob(f"{where}: time {text!r} is not ISO 8601") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)


def iso(moment: datetime) -> str:
    return moment.astimezone(timezone.utc).isoformat(timespec="seconds")


# --- keys ---------------------------------------------------------------------------------------------

def pending_key(prefix: str, instance_id: str) -> str:
    return f"{prefix}{PENDING}/{instance_id}.json"


def retry_key(prefix: str, instance_id: str) -> str:
    return f"{prefix}{RETRY}/{instance_id}.json"


def done_key(prefix: str, job: Job) -> str:
    return f"{prefix}{DONE}/{job.instance_id}/{job.requested_at[:10]}-{job.job_id}.json"


def failed_key(prefix: str, instance_id: str, job_id: str) -> str:
    return f"{prefix}{FAILED}/{instance_id}/{job_id}.json"


def instance_of_pending(prefix: str, key: str) -> Optional[str]:
    """The instance id of a pending job's key, or None when the key is not a pending job."""
    head = f"{prefix}{PENDING}/"
    if not key.startswith(head) or not key.endswith(".json"):
        return None
    name = key[len(head):-len(".json")]
    return name if name and "/" not in name else None


# --- decisions (pure) ---------------------------------------------------------------------------------

@dataclass(frozen=True)
class SweepDecision:
    action: str  # "wait", "redrive" (retry -> pending), "rewrite" (stale pending), "dead" (-> failed)
    job: Optional[Job] = None
    reason: str = ""


def retry_delay(attempts: int, base_seconds: int) -> timedelta:
    """Backoff between archiver attempts: base, 2 x base, 4 x base, ... capped at one day."""
    return timedelta(seconds=min(86400, base_seconds * 2 ** max(0, attempts - 1)))


def decide_retry(job: Job, now: datetime, max_attempts: int) -> SweepDecision:
    """A job in retry/: dead past the attempt limit, re-driven once its time has come, else waits."""
    if job.attempts >= max_attempts:
        return SweepDecision("dead", job, f"gave up after {job.attempts} attempts: {job.last_error}")
    due = parse_time(job.next_attempt_at) if job.next_attempt_at else now
    if due > now:
        return SweepDecision("wait", job)
    return SweepDecision("redrive", replace(job, next_attempt_at=None, redriven_at=iso(now)))


def decide_pending(job: Job, last_modified: Optional[datetime], now: datetime, stale_after: int,
                   max_attempts: int) -> SweepDecision:
    """A job in pending/: written again when it has sat there too long (its event was lost or its run died)."""
    if last_modified is None or now - last_modified < timedelta(seconds=stale_after):
        return SweepDecision("wait", job)
    attempts = job.attempts + 1
    error = f"left in pending since {iso(last_modified)} (event lost or archiver stopped)"
    if attempts >= max_attempts:
        return SweepDecision("dead", replace(job, attempts=attempts, last_error=job.last_error or error),
                             f"gave up after {attempts} attempts: {job.last_error or error}")
    return SweepDecision("rewrite", replace(job, attempts=attempts, last_error=job.last_error or error,
                                            redriven_at=iso(now)))


# --- the queue (shell) --------------------------------------------------------------------------------

class JobQueue:
    def __init__(self, obs: Obs, bucket: str, prefix: str) -> None:
        self.obs, self.bucket, self.prefix = obs, bucket, prefix

    def enqueue(self, job: Job) -> str:
        """Write the pending job: a new run replaces the instance's pending job (and fires a new event). A parked
        retry of the same instance is left to the sweep, which drops it while a newer pending job exists; a
        late re-drive of it is harmless, as everything it could copy is found archived."""
        key = pending_key(self.prefix, job.instance_id)
        self.obs.put_json(self.bucket, key, job.to_dict())
        return key

    def read(self, key: str) -> Optional[Job]:
        """The job at `key`, None when it is gone (done already). MalformedJob when unreadable."""
        raw = self.obs.get_bytes(self.bucket, key)
        if raw is None:
            return None
        try:
            return Job.parse(raw, where=f"{self.bucket}/{key}")
        except MalformedJob as exc:
            exc.raw = raw  # kept whole when dead-lettered
            raise

    def _remove_pending_if_same(self, job: Job) -> None:
        """Delete pending/<instance>.json unless a newer run has replaced it meanwhile."""
        key = pending_key(self.prefix, job.instance_id)
        raw = self.obs.get_bytes(self.bucket, key)
        if raw is None:
            return
        try:
            current = json.loads(raw)
            current_id, continued = current.get("job_id"), int(current.get("continuations") or 0) > job.continuations
        except (ValueError, AttributeError, TypeError):
            current_id, continued = None, False
        # keep a newer run's job, and a later continuation of this one waiting for its own invocation
        if current_id in (None, job.job_id) and not continued:
            self.obs.delete(self.bucket, key)

    def finish(self, job: Job, files: list[dict], summary: dict) -> str:
        key = done_key(self.prefix, job)
        self.obs.put_json(self.bucket, key, {**job.to_dict(), "state": DONE, "files": files,
                                             "summary": summary})
        self._remove_pending_if_same(job)
        return key

    def continue_later(self, job: Job) -> str:
        """Hand the job to a new invocation: written again under pending/, which fires a new event. Only for a
        job that made progress and is below its continuation bound (the archiver decides); attempts unchanged."""
        key = pending_key(self.prefix, job.instance_id)
        self.obs.put_json(self.bucket, key, replace(job, continuations=job.continuations + 1).to_dict())
        return key

    def park_for_retry(self, job: Job, error: str, now: datetime, delay_base: int,
                       files: Optional[list[dict]] = None) -> str:
        attempts = job.attempts + 1
        parked = replace(job, attempts=attempts, last_error=error[:2000],
                         next_attempt_at=iso(now + retry_delay(attempts, delay_base)))
        key = retry_key(self.prefix, job.instance_id)
        self.obs.put_json(self.bucket, key, {**parked.to_dict(), "state": RETRY, "files": files or []})
        self._remove_pending_if_same(job)
        return key

    def fail(self, job: Job, reason: str, files: Optional[list[dict]] = None) -> str:
        """Dead-letter a job that no later attempt can finish (e.g. its instance was deleted)."""
        key = failed_key(self.prefix, job.instance_id, job.job_id)
        self.obs.put_json(self.bucket, key, {**job.to_dict(), "state": FAILED, "reason": reason,
                                             "files": files or []})
        self._remove_pending_if_same(job)
        return key

    def dead_letter_raw(self, key: str, raw: Optional[bytes], reason: str) -> str:
        """An unreadable queue object: kept whole under failed/ with the reason, then removed from its place."""
        name = key.rsplit("/", 1)[-1].removesuffix(".json") or "unnamed"
        target = failed_key(self.prefix, "_malformed", f"{name}-{uuid.uuid4().hex[:8]}")
        self.obs.put_json(self.bucket, target, {"state": FAILED, "reason": reason, "source_key": key,
                                                "raw": (raw or b"").decode("utf-8", "replace")[:100_000]})
        self.obs.delete(self.bucket, key)
        return target

    def sweep(self, now: datetime, *, stale_after: int, max_attempts: int) -> dict:
        """Re-drive due retries, rewrite stale pending jobs, dead-letter the hopeless. Returns counts and ids."""
        result: dict = {"redriven": [], "rewritten": [], "dead_lettered": [], "malformed": [], "waiting": 0,
                        "errors": []}
        for state in (RETRY, PENDING):
            for info in list(self.obs.list(self.bucket, f"{self.prefix}{state}/")):
                try:
                    self._sweep_one(info, state, now, stale_after, max_attempts, result)
                except ObsError as err:  # one object's trouble does not stop the sweep; the next one retries it
                    result["errors"].append(err.as_dict())
        return result

    def _sweep_one(self, info: ObjectInfo, state: str, now: datetime, stale_after: int, max_attempts: int,
                   result: dict) -> None:
        raw = self.obs.get_bytes(self.bucket, info.key)
        if raw is None:
            return
        try:
            job = Job.parse(raw, where=f"{self.bucket}/{info.key}")
        except MalformedJob as exc:
            result["malformed"].append(self.dead_letter_raw(info.key, raw, str(exc)))
            return
        if state == RETRY:
            decision = decide_retry(job, now, max_attempts)
        else:
            decision = decide_pending(job, info.last_modified, now, stale_after, max_attempts)
        if decision.action == "wait":
            result["waiting"] += 1
        elif decision.action == "dead":
            self.obs.put_json(self.bucket, failed_key(self.prefix, job.instance_id, job.job_id),
                              {**decision.job.to_dict(), "state": FAILED, "reason": decision.reason})
            self.obs.delete(self.bucket, info.key)
            result["dead_lettered"].append(job.instance_id)
        elif decision.action == "redrive":
            pending = pending_key(self.prefix, job.instance_id)
            if self.obs.head(self.bucket, pending) is None:
                self.obs.put_json(self.bucket, pending, decision.job.to_dict())
            # else a newer run's pending job already covers this instance: the parked one is superseded
            self.obs.delete(self.bucket, info.key)
            result["redriven"].append(job.instance_id)
        elif decision.action == "rewrite":
            self.obs.put_json(self.bucket, info.key, decision.job.to_dict())
            result["rewritten"].append(job.instance_id)
