"""The archiver's bookkeeping: what one job invocation proved about each node-day, written into the ledger.

Opened before the copies (the ledger's archived keys join the plan) and closed after them: archived copies,
days proven empty (`no-log`), copies and collections that failed, refused replicas, and node-days that left DCS's
window while still missing. The ledger is written in every outcome but an error before the copies, so a job
parked or continued has its progress recorded too.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, tzinfo
from typing import Callable, Optional

from shared.collection import Watch, collected_ips, is_single, no_log_days
from shared.jobs import Job, iso, parse_time
from shared.ledger import (
    ARCHIVED,
    SETTLED,
    Ledger,
    LedgerStore,
    MalformedLedger,
    learn_single_ip,
    node_for,
    observe_topology,
    record_archived,
    record_collect,
    record_missing,
    record_no_log,
    settle_expired,
    summary,
    window,
)
from shared.logs import JsonLogger
from shared.obs import Obs, ObsError
from shared.selection import FINAL, Plan, log_day


@dataclass
class Book:
    ledger: Ledger
    settled_before: int
    log: JsonLogger
    counts: Optional[dict] = None


def _settled(ledger: Ledger, today: date) -> int:
    return sum(1 for _, _, s in ledger.node_days(window(today)) if s in SETTLED)


class Bookkeeper:
    def __init__(self, store: LedgerStore, archive: Obs, archive_bucket: str, tz: tzinfo,
                 now: Callable[[], datetime]) -> None:
        self.store, self.archive, self.archive_bucket, self.tz, self.now = store, archive, archive_bucket, tz, now

    def open(self, job: Job, watch: Watch, collection_day: str, log: JsonLogger) -> Book:
        """The instance's ledger, brought up to date with the job's topology (scale-out, scale-in)."""
        try:
            ledger = self.store.read(job.instance_id)
        except (MalformedLedger, ObsError) as exc:
            log.warning("ledger_unreadable", reason=str(exc)[:500], action="starting from the archive listing")
            ledger = None
        ledger = ledger or Ledger(job.instance_id)
        ledger.instance_name = job.instance_name or ledger.instance_name
        single = is_single(job)
        ledger.cache_mode = job.cache_mode or ledger.cache_mode or ("single" if single else "")
        listed_on = date.fromisoformat(collection_day)
        if job.topology:
            changes = observe_topology(ledger, job.topology, listed_on, single=single)
        else:  # a job from before the ledger: only the collected replicas are known, nobody is removed
            known = [{"replication_ip": ip} for ip in collected_ips(job)]
            changes = observe_topology(ledger, known, listed_on, single=single, whole=False)
        if single:
            learn_single_ip(ledger, next((e.replication_ip for e in watch.entries if e.replication_ip), ""))
        for change in changes:
            log.info("ledger_topology_changed", change=change)
        today = date.fromisoformat(log_day(self.now(), self.tz))
        return Book(ledger, _settled(ledger, today), log)

    def close(self, book: Book, job: Job, watch: Watch, plan: Plan, records: list[dict], failures: list[dict],
              today: date) -> bool:
        """Record the invocation's outcome and write the ledger; True when node-days were settled by it."""
        ledger, log = book.ledger, book.log
        for rec in records:
            if rec["copy"] == FINAL:
                record_archived(ledger, rec["replication_ip"], rec["day"], {
                    "key": rec["key"], "bytes_in": rec["bytes_in"], "bytes_out": rec["bytes_out"],
                    "sha256": rec["sha256"], "entry_id": rec["entry_id"], "job_id": job.job_id,
                    "archived_at": iso(self.now()), **({"digest": rec["digest"]} if rec.get("digest") else {})})
        for note in plan.archived:
            self._adopt(ledger, note.entry.replication_ip, note.entry.day, note.key, log)
        for fail in failures:
            record_missing(ledger, fail["replication_ip"], fail["day"], fail["reason"])
        for note in plan.failed:
            record_missing(ledger, note.entry.replication_ip, note.entry.day, "collection ended failed")
        collection_day = log_day(parse_time(job.requested_at), self.tz)
        for ip, days in no_log_days(job, watch, collection_day, self.tz).items():
            at = job.node_collected_at.get(ip) or job.collected_at or job.requested_at
            for day in days:
                record_no_log(ledger, ip, day, {"job_id": job.job_id, "collected_at": at,
                                                "query_time": job.query_time})
        for ip in job.node_collected_at:
            record_collect(ledger, ip, None)
        for rep in job.pending_replicas:
            if rep.get("last_error"):
                record_collect(ledger, rep.get("replication_ip") or "", rep["last_error"])
        for ip, day in settle_expired(ledger, today):
            log.warning("node_day_failed", replication_ip=ip, day=day, reason=ledger.nodes[ip].days[day]["reason"])
        ledger.updated_at = iso(self.now())
        book.counts = summary(ledger, today)
        try:
            self.store.write(ledger)
        except ObsError as err:  # the next job records it again: the archive and DCS still hold the truth
            log.error("ledger_write_failed", error=err.as_dict())
        log.info("ledger_updated", instance_name=ledger.instance_name, **book.counts)
        return _settled(ledger, today) > book.settled_before

    def _adopt(self, ledger: Ledger, ip: str, day: str, key: str, log: JsonLogger) -> None:
        """A final copy found in the archive that the ledger does not know (a job stopped between its copy and
        its ledger write, or an archive older than the ledger): recorded from the object's metadata."""
        node = node_for(ledger, ip)
        if node is None or node.state(day) == ARCHIVED:
            return
        try:
            head = self.archive.head(self.archive_bucket, key)
        except ObsError as err:
            log.warning("archive_head_failed", key=key, error=err.as_dict())
            return
        if head is None:
            return
        size = head.get("original-size")
        record_archived(ledger, ip, day, {
            "key": key, "bytes_in": int(size) if size and size.isdigit() else None,
            "bytes_out": int(head.get("content-length") or 0), "sha256": head.get("sha256"),
            "entry_id": head.get("source-id"), "job_id": head.get("job-id"), "recorded_from": "archive metadata"})
