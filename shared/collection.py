"""A job's collection: asking DCS for the replicas still to collect, and watching until what was collected settles.

DCS may run one collection of an instance at a time (answering DCS.4017 while one runs; no public source says it
does not), and a collect call may be refused for one replica. Neither loses a node: a refused or deferred replica
stays in the job's `pending_replicas`, and every poll of the wait asks for the next one, so the replicas are
collected one after the other as DCS allows, across invocations when there are many (the archiver hands the job
to a new invocation while it makes progress, up to JOB_MAX_CONTINUATIONS).

When is a node's collection over? ListRedislog entries carry no collection time, so a node whose new entries are
all in a terminal state and stayed unchanged for one more poll is done; a node with no new entry at all is done
only once COLLECT_SETTLE_SECONDS have passed since its collect call (a node may have no log in the window).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field, replace
from datetime import date, datetime, timedelta, timezone, tzinfo
from typing import Callable, Optional

from shared.dcs import Dcs, DcsError, InstanceGone, LogEntry, Replica
from shared.jobs import Job, parse_time
from shared.logs import JsonLogger
from shared.runtime import Deadline
from shared.selection import TERMINAL, log_day

POLL_MAX = 30.0
COPY_RESERVE_MAX = 120.0  # the wait leaves a third of the invocation's time (at most this) to the copies
POLL_MAX_DRIVING = 10.0  # while replicas wait for their turn, poll often enough not to leave DCS idle long
REFUSALS_PER_INVOCATION = 2  # a replica refused this often (not busy) waits for the job's next attempt


@dataclass
class Watch:
    """What the wait ended with."""

    entries: list[LogEntry]
    settled: set[str]  # replication IPs ("" for a single-node instance) whose collection is over
    collected_now: list[str] = field(default_factory=list)  # replicas this invocation got collected
    complete: bool = False  # every replica collected and settled
    timed_out: bool = False

    def new_entries(self, job: Job) -> list[LogEntry]:
        before = set(job.entries_before)
        return [e for e in self.entries if e.id not in before]


def collected_ips(job: Job) -> list[str]:
    """The nodes this job's collection has reached (the single node is "")."""
    if job.node_collected_at:
        return sorted(job.node_collected_at)
    if job.replication_ids:
        return list(job.replication_ips)
    return [] if job.pending_replicas else [""]


def node_entries(entries: list[LogEntry], ip: str, single: bool) -> list[LogEntry]:
    return list(entries) if single else [e for e in entries if e.replication_ip == ip]


def is_single(job: Job) -> bool:
    return job.cache_mode == "single" or (not job.replication_ids and not job.topology
                                          and all(not r.get("replication_id") for r in job.pending_replicas))


def request_collections(dcs: Dcs, instance_id: str, query_time: int, targets: list[Replica],
                        now: Callable[[], datetime], log: JsonLogger
                        ) -> tuple[list[tuple[Replica, str]], list[dict], list[dict]]:
    """The collector's CreateRedislog per replica: (collected with the call's time, pending, failed calls).

    A refusal is not dropped: the replica goes into the job's pending list, and the archiver asks again while it
    waits. DCS.4017 (another collection of the instance runs) is not waited for: the replicas after it are left
    to the archiver, so one instance never holds the collector. InstanceGone propagates."""
    collected: list[tuple[Replica, str]] = []
    pending: list[dict] = []
    failures: list[dict] = []
    busy = False
    for rep in targets:
        record = {"replication_id": rep.replication_id, "replication_ip": rep.replication_ip,
                  "group_name": rep.group_name, "attempts": 0, "last_error": None}
        if busy:
            pending.append(record)
            continue
        try:
            dcs.create_redislog(instance_id, query_time, rep.replication_id or None, retry_busy=False)
        except InstanceGone:
            raise
        except DcsError as err:
            if err.busy:
                busy = True
                pending.append(record)
                log.info("collect_deferred", replication_id=rep.replication_id, reason=f"{err.code}: DCS runs "
                         "one collection of the instance at a time; the archiver asks again")
                continue
            failures.append({**err.as_dict(), "replication_id": rep.replication_id})
            log.warning("collect_call_failed", replication_id=rep.replication_id, error=err.as_dict())
            pending.append({**record, "attempts": 1, "last_error": str(err)[:500]})
            continue
        collected.append((rep, now().astimezone(timezone.utc).isoformat(timespec="milliseconds")))
    return collected, pending, failures


def drive_pending(dcs: Dcs, job: Job, now: Callable[[], datetime], log: JsonLogger,
                  refusals: dict[str, int]) -> tuple[Job, list[str], bool]:
    """Ask DCS to collect the pending replicas, in order, until it answers busy. Returns the updated job, the
    IPs collected now, and whether DCS answered busy (a collection of the instance is still running).
    InstanceGone propagates."""
    pending, collected = [], []
    ids, ips = list(job.replication_ids), list(job.replication_ips)
    times = dict(job.node_collected_at)
    stop = False
    for rep in job.pending_replicas:
        rid, ip = rep.get("replication_id") or None, rep.get("replication_ip") or ""
        if stop or refusals.get(ip, 0) >= REFUSALS_PER_INVOCATION:
            pending.append(rep)
            continue
        try:
            dcs.create_redislog(job.instance_id, job.query_time, rid, retry_busy=False)
        except InstanceGone:
            raise
        except DcsError as err:
            if err.busy:
                stop = True  # DCS runs one collection at a time: the others wait for the next poll
            else:
                refusals[ip] = refusals.get(ip, 0) + 1
                log.warning("collect_call_failed", replication_id=rid, replication_ip=ip, error=err.as_dict(),
                            stage="archiver")
            pending.append({**rep, "attempts": int(rep.get("attempts") or 0) + (0 if err.busy else 1),
                            "last_error": rep.get("last_error") if err.busy else str(err)[:500]})
            continue
        times[ip] = now().isoformat(timespec="milliseconds")
        if rid:
            ids.append(rid)
            ips.append(ip)
        collected.append(ip)
        log.info("replica_collect_requested", replication_id=rid, replication_ip=ip,
                 still_pending=len(job.pending_replicas) - len(collected) - len(pending))
    updated = replace(job, pending_replicas=tuple(pending), replication_ids=tuple(ids), replication_ips=tuple(ips),
                      node_collected_at=times, collected_at=max(times.values()) if times else job.collected_at)
    return updated, collected, stop


class CollectionWatcher:
    """Polls ListRedislog (driving pending replicas on the way) until every node's collection is over, or the
    wait limit or the invocation's time runs out."""

    def __init__(self, dcs: Dcs, log: JsonLogger, deadline: Deadline, *, settle_seconds: float,
                 wait_seconds: float, poll_seconds: float, now: Callable[[], datetime],
                 sleep: Callable[[float], None] = time.sleep) -> None:
        self.dcs, self.log, self.deadline = dcs, log, deadline
        self.settle_seconds, self.wait_seconds, self.poll_seconds = settle_seconds, wait_seconds, poll_seconds
        self.now, self.sleep = now, sleep

    def watch(self, job: Job) -> tuple[Job, Watch]:
        started = time.monotonic()
        reserve = min(COPY_RESERVE_MAX, self.deadline.remaining() / 3)
        single = is_single(job)
        before = set(job.entries_before)
        refusals: dict[str, int] = {}
        collected_now: list[str] = []
        # when each collected node's settle time ends, on this process's monotonic clock
        settle_end = {ip: started + max(0.0, self.settle_seconds - self._since(job, ip)) for ip in collected_ips(job)}
        last_view, last_change, delay = None, started, self.poll_seconds
        busy = False
        while True:
            if job.pending_replicas:
                job, fresh, busy = drive_pending(self.dcs, job, self.now, self.log, refusals)
                for ip in fresh:
                    settle_end[ip] = time.monotonic() + self.settle_seconds
                collected_now += fresh
            entries = self.dcs.list_redislog(job.instance_id)
            view = sorted((e.id, e.status) for e in entries)
            mono = time.monotonic()
            if view != last_view:
                last_change, last_view = mono, view
            quiet = mono - last_change
            new = [e for e in entries if e.id not in before]
            settled = set()
            for ip, ends in settle_end.items():
                mine = node_entries(new, ip, single)
                if any(e.status not in TERMINAL for e in mine):
                    continue
                # a node with nothing listed is over only after its settle time, and not while DCS says a
                # collection of the instance still runs (its entries may not be listed until it ends)
                if quiet >= min(self.poll_seconds, max(0.0, ends - mono)) and (mine or (mono >= ends and not busy)):
                    settled.add(ip)
            all_settled = settled == set(settle_end)
            if all_settled and not job.pending_replicas:
                return job, Watch(entries, settled, collected_now, complete=True)
            if all_settled and all(refusals.get(r.get("replication_ip") or "", 0) >= REFUSALS_PER_INVOCATION
                                   for r in job.pending_replicas):
                # what could be collected is over; the refused replicas wait for the job's next attempt
                return job, Watch(entries, settled, collected_now, complete=False)
            waited = mono - started
            pause = min(delay, POLL_MAX_DRIVING if job.pending_replicas else POLL_MAX)
            unsettled_ends = [settle_end[ip] - mono for ip in settle_end if ip not in settled]
            if unsettled_ends and not job.pending_replicas:
                pause = min(pause, max(min(unsettled_ends), 0.2))
            if waited + pause > self.wait_seconds or pause >= self.deadline.remaining() - reserve:
                self.log.warning("collection_not_settled", waited_s=round(waited, 1),
                                 in_progress=sum(1 for e in new if e.status not in TERMINAL),
                                 nodes_unsettled=sorted(set(settle_end) - settled),
                                 replicas_pending=len(job.pending_replicas))
                return job, Watch(entries, settled, collected_now, complete=False, timed_out=True)
            self.sleep(pause)
            delay *= 1.5

    def _since(self, job: Job, ip: str) -> float:
        moment = job.node_collected_at.get(ip) or job.collected_at or job.requested_at
        return (self.now() - parse_time(moment)).total_seconds()


def no_log_days(job: Job, watch: Watch, collection_day: str, tz: tzinfo) -> dict[str, list[str]]:
    """Per settled node, the finished days its collection covered that listed no file: proven `no-log`.

    A node's collection covers query_time days back from the day of its collect call, up to the day before the
    job's collection day (later days were not finished when collected)."""
    single = is_single(job)
    new = watch.new_entries(job)
    out: dict[str, list[str]] = {}
    for ip in watch.settled:
        moment = job.node_collected_at.get(ip) or job.collected_at or job.requested_at
        first = date.fromisoformat(log_day(parse_time(moment), tz)) - timedelta(days=job.query_time)
        listed = {e.day for e in node_entries(new, ip, single)}
        days, day = [], first
        while day.isoformat() < collection_day:
            if day.isoformat() not in listed:
                days.append(day.isoformat())
            day += timedelta(days=1)
        out[ip] = days
    return out


def pending_summary(job: Job) -> list[dict]:
    return [{"replication_ip": r.get("replication_ip", ""), "attempts": r.get("attempts", 0),
             "last_error": r.get("last_error")} for r in job.pending_replicas]


def first_error(job: Job) -> Optional[str]:
    return next((r.get("last_error") for r in job.pending_replicas if r.get("last_error")), None)
