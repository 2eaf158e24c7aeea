"""The archiver's service: from a pending job to verified log files in the archive bucket, exactly once."""

from __future__ import annotations

import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import replace
from datetime import date, datetime, timezone
from typing import Callable, Optional

import requests

from shared.accounting import Bookkeeper
from shared.collection import CollectionWatcher, first_error, pending_summary
from shared.config import Config
from shared.dcs import Dcs, DcsError, InstanceGone
from shared.digest import Digest, notable
from shared.events import ArchiverRequest, ObjectRef
from shared.jobs import Job, JobQueue, MalformedJob, instance_of_pending, iso, parse_time
from shared.keys import instance_prefix
from shared.ledger import LedgerStore, archived_keys
from shared.logs import JsonLogger
from shared.obs import Encryption, Obs, ObsError
from shared.runtime import Deadline
from shared.selection import FINAL, Copy, Note, Plan, log_day, plan_copies, recent_marker
from shared.transfer import (
    CopyError,
    CopyResult,
    LinkRefused,
    check_link,
    copy_link,
    copy_with_retries,
    header_safe,
)


class Archiver:
    def __init__(self, config: Config, dcs: Dcs, archive: Obs, queue: JobQueue, session: requests.Session,
                 log: JsonLogger, deadline: Deadline,
                 now: Callable[[], datetime] = lambda: datetime.now(timezone.utc),
                 sleep: Callable[[float], None] = time.sleep, settle_seconds: Optional[float] = None) -> None:
        self.config, self.dcs, self.archive, self.queue = config, dcs, archive, queue
        self.session, self.log, self.deadline, self.now, self.sleep = session, log, deadline, now, sleep
        self.settle_seconds = config.collect_settle_seconds if settle_seconds is None else settle_seconds
        self.watcher = CollectionWatcher(dcs, log, deadline, settle_seconds=self.settle_seconds,
                                         wait_seconds=config.collect_wait_seconds,
                                         poll_seconds=config.collect_poll_seconds, now=now, sleep=sleep)
        self.bookkeeper = Bookkeeper(LedgerStore(queue.obs, queue.bucket, queue.prefix), archive,
                                     config.archive_bucket, config.log_timezone, now)

    # --- entry points ------------------------------------------------------------------------------
    def handle(self, request: ArchiverRequest) -> dict:
        started = time.monotonic()
        jobs = []
        if request.inline_job is not None:
            jobs.append(self._process_inline(request.inline_job))
        for ref in request.objects:
            jobs.append(self.process_object(ref))
        summary = {"source": request.source, "jobs": jobs, **_totals(jobs), **self.deadline.report(),
                   "duration_s": round(time.monotonic() - started, 3)}
        self.log.info("archiver_summary", **summary)
        return summary

    def _process_inline(self, data: dict) -> dict:
        job = Job.from_dict(data, where="event job")
        return self.process_job(job)

    def process_object(self, ref: ObjectRef) -> dict:
        log = self.log.bind(bucket=ref.bucket, key=ref.key)
        if ref.bucket != self.queue.bucket:
            log.warning("object_ignored", reason=f"bucket is not the queue bucket {self.queue.bucket}")
            return {"key": ref.key, "outcome": "ignored", "reason": "other bucket"}
        if instance_of_pending(self.queue.prefix, ref.key) is None:
            log.info("object_ignored", reason="not a pending job key")
            return {"key": ref.key, "outcome": "ignored", "reason": "outside the pending prefix"}
        try:
            job = self.queue.read(ref.key)
        except MalformedJob as exc:
            target = self.queue.dead_letter_raw(ref.key, getattr(exc, "raw", None), str(exc))
            log.error("job_malformed", reason=str(exc), moved_to=target)
            return {"key": ref.key, "outcome": "failed", "reason": str(exc), "moved_to": target}
        if job is None:
            log.info("job_already_done", reason="the pending object is gone")
            return {"key": ref.key, "outcome": "already done"}
        return self.process_job(job)

    # --- one job -----------------------------------------------------------------------------------
    def process_job(self, job: Job) -> dict:
        log = self.log.bind(instance_id=job.instance_id, job_id=job.job_id)
        started = time.monotonic()
        result: dict = {"instance_id": job.instance_id, "job_id": job.job_id, "attempt": job.attempts + 1,
                        "continuation": job.continuations}
        try:
            job, watch = self.watcher.watch(job)
        except InstanceGone as err:
            moved = self.queue.fail(job, f"instance deleted before its logs were archived ({err.code})")
            log.warning("job_failed", reason="instance deleted", moved_to=moved)
            return {**result, "outcome": "failed", "reason": "instance deleted", "moved_to": moved}
        except DcsError as err:
            return self._park(job, f"ListRedislog: {err}", result, log, [])
        odd = [e for e in watch.entries if e.day_disagrees]
        if odd:  # once per job: DCS's `time` may be the collection date; the file name's day is the log's
            log.warning("log_day_disagrees", entries=len(odd), file=odd[0].file_name, listed_time=odd[0].listed_time,
                        day=odd[0].day, rule="the day in the file name is used")
        prefix = instance_prefix(self.config.archive_prefix, job.instance_id)
        today = date.fromisoformat(log_day(self.now(), self.config.log_timezone))
        collection_day = log_day(parse_time(job.requested_at), self.config.log_timezone)
        try:
            archived = {o.key for o in self.archive.list(self.config.archive_bucket, prefix,
                                                         start_after=recent_marker(prefix, today))}
        except ObsError as err:
            return self._park(job, f"listing the archive failed: {err}", result, log, [])
        book = self.bookkeeper.open(job, watch, collection_day, log)
        plan = plan_copies(watch.entries, entries_before=job.entries_before, collection_day=collection_day,
                           archived_keys=archived | archived_keys(book.ledger),
                           archive_prefix=self.config.archive_prefix, instance_id=job.instance_id,
                           compression=self.config.archive_compression, open_day=self.config.archive_open_day)
        if plan.copies:
            self._abort_stale_uploads(prefix, {c.key for c in plan.copies}, log)
        records, copied, failures, not_started = self._copy_all(job, plan, log)
        progress = self.bookkeeper.close(book, job, watch, plan, records, failures, today)
        files = records + [_note_record(n, "already archived") for n in plan.archived] \
            + [_note_record(n, "failed") for n in plan.failed] \
            + [_note_record(n, "waiting") for n in plan.waiting] \
            + [_note_record(n, "skipped") for n in plan.skipped]
        result.update({
            "files_seen": len(watch.entries), "archived": len(copied), "already_archived": len(plan.archived),
            "failed": [{k: f[k] for k in ("file", "key", "reason")} for f in failures]
            + [{"file": n.entry.file_name, "reason": n.reason} for n in plan.failed],
            "skipped": _count_reasons(plan.skipped), "not_started": len(not_started),
            "bytes_in": sum(c.bytes_in for c in copied), "bytes_out": sum(c.bytes_out for c in copied),
            "replicas_pending": pending_summary(job), "node_days": book.counts,
        })
        if plan.failed:
            job = self._recollect(job, plan, log)
        if failures or plan.failed or plan.waiting or not_started or not watch.complete:
            reasons = [f"{f['file']}: {f['reason']}" for f in result["failed"]]
            if plan.waiting:
                reasons.append(f"{len(plan.waiting)} file(s) still being collected")
            if not_started:
                reasons.append(f"{len(not_started)} file(s) not started before the deadline")
            if job.pending_replicas:
                reasons.append(f"{len(job.pending_replicas)} replica(s) not collected yet"
                               + (f" (last refusal: {first_error(job)})" if first_error(job) else ""))
            if watch.timed_out:
                reasons.append(f"collection not settled within {self.config.collect_wait_seconds}s or the "
                               "invocation's time")
            collecting = bool(job.pending_replicas or watch.timed_out or not_started)
            # progress that lasts: a file archived, a node-day settled, or a replica collected (unless a
            # collection keeps ending failed, which a re-run at once would only repeat)
            made_progress = bool(copied or progress or (watch.collected_now and not plan.failed))
            if collecting and made_progress and job.continuations < self.config.job_max_continuations:
                return self._continue(job, "; ".join(reasons), result, log)
            return self._park(job, "; ".join(reasons), result, log, files)
        try:
            moved = self.queue.finish(job, files, {k: v for k, v in result.items() if k != "failed"})
        except ObsError as err:
            # every file is archived; the job stays pending and a repeat finds them all in place
            log.error("job_finish_failed", error=err.as_dict())
            return {**result, "outcome": "archived, job not moved", "error": err.as_dict()}
        result.update({"outcome": "done", "moved_to": moved,
                       "duration_s": round(time.monotonic() - started, 3)})
        log.info("job_done", archived=len(copied), already_archived=len(plan.archived), moved_to=moved)
        return result

    def _continue(self, job: Job, reason: str, result: dict, log: JsonLogger) -> dict:
        """Progress was made and more is to come (replicas waiting for their turn, a collection still running):
        a new invocation takes the job over at once (its pending object is written again, firing an event)."""
        try:
            moved = self.queue.continue_later(job)
        except ObsError as err:
            log.error("job_continue_failed", error=err.as_dict(), reason=reason)
            raise  # the platform's async retry delivers the event again: the job is still pending
        log.info("job_continued", reason=reason[:1000], continuation=job.continuations + 1,
                 limit=self.config.job_max_continuations, replicas_pending=len(job.pending_replicas))
        return {**result, "outcome": "continued", "reason": reason[:1000], "moved_to": moved}

    def _abort_stale_uploads(self, prefix: str, keys: set[str], log: JsonLogger) -> None:
        """Abort uploads left open on the keys about to be written: an earlier attempt whose own abort failed
        (the store was down), or an invocation that was killed. One listing per job with files to copy."""
        try:
            for key, upload_id in self.archive.open_uploads(self.config.archive_bucket, prefix):
                if key in keys:
                    self.archive.abort_multipart(self.config.archive_bucket, key, upload_id)
                    log.info("open_upload_aborted", key=key, upload_id=upload_id)
        except ObsError as err:  # the bucket's lifecycle rule for incomplete uploads is the backstop
            log.warning("open_uploads_not_cleaned", error=err.as_dict())

    def _park(self, job: Job, error: str, result: dict, log: JsonLogger, files: list[dict]) -> dict:
        try:
            moved = self.queue.park_for_retry(job, error, self.now(), self.config.job_retry_delay_seconds, files)
        except ObsError as err:
            log.error("job_park_failed", error=err.as_dict(), reason=error)
            raise  # the platform's async retry delivers the event again: the job is still pending
        log.warning("job_parked_for_retry", reason=error[:1000], attempts=job.attempts + 1, moved_to=moved)
        return {**result, "outcome": "retry", "reason": error[:1000], "moved_to": moved}

    # --- copying -----------------------------------------------------------------------------------
    def _copy_all(self, job: Job, plan: Plan, log: JsonLogger) -> tuple[list[dict], list[CopyResult],
                                                                        list[dict], list[Copy]]:
        records, copied, failures, not_started = [], [], [], []
        # links are asked for ahead of the copies (at most two per copy thread waiting): with many small files a
        # link call costs as much as the download, and they need not wait for each other
        ahead = threading.Semaphore(2 * self.config.copy_concurrency)

        def link_for(item: Copy) -> Optional[str]:
            ahead.acquire()
            if self.deadline.expired():
                return None  # its copy will not start either
            return self.dcs.create_download_link(job.instance_id, item.entry.id)

        def one(pair: tuple[Copy, Future]) -> None:
            item, link = pair
            try:
                self._one_copy(job, item, link, log, not_started, failures, copied, records)
            finally:
                ahead.release()

        with ThreadPoolExecutor(max_workers=self.config.copy_concurrency, thread_name_prefix="link") as links, \
                ThreadPoolExecutor(max_workers=self.config.copy_concurrency, thread_name_prefix="copy") as pool:
            prefetched = [(item, links.submit(link_for, item)) for item in plan.copies]
            list(pool.map(one, prefetched))
        return records, copied, failures, not_started

    def _one_copy(self, job: Job, item: Copy, link: Future, log: JsonLogger, not_started: list, failures: list,
                  copied: list, records: list) -> None:
        """One file of the job: copied and recorded, or its failure recorded; not started past the deadline."""
        if self.deadline.expired():
            not_started.append(item)
            return
        try:
            res, digest = self._copy_one(job, item, log, link)
        except (CopyError, LinkRefused, DcsError, ObsError) as exc:
            failures.append({"file": item.entry.file_name, "key": item.key, "reason": str(exc)[:1000],
                             "replication_ip": item.entry.replication_ip, "day": item.entry.day})
            log.error("file_failed", file=item.entry.file_name, key=item.key, reason=str(exc)[:1000])
            return
        copied.append(res)
        records.append({"file": item.entry.file_name, "entry_id": item.entry.id, "day": item.entry.day,
                        "group": item.entry.group_name, "replication_ip": item.entry.replication_ip,
                        "key": res.key, "copy": item.kind,
                        "state": "archived", "bytes_in": res.bytes_in, "bytes_out": res.bytes_out,
                        "sha256": res.sha256, "digest": digest})
        if digest and item.kind == FINAL:
            self._alert(job, item, digest, log)

    def _copy_one(self, job: Job, item: Copy, log: JsonLogger,
                  first_link: Optional[Future] = None) -> tuple[CopyResult, Optional[dict]]:
        """Copy one file (the link asked for ahead, then fresh ones on failure), digesting its lines on the way."""
        entry, cfg = item.entry, self.config
        metadata = {
            "source-id": entry.id, "source-file": entry.file_name, "instance-id": job.instance_id,
            "instance-name": job.instance_name, "group": entry.group_name,
            "replication-ip": entry.replication_ip, "log-day": entry.day, "compression": cfg.archive_compression,
            "copy": item.kind, "job-id": job.job_id, "archived-at": iso(self.now()),
        }
        metadata = {k: header_safe(v) for k, v in metadata.items()}

        def get_link() -> str:
            nonlocal first_link
            if first_link is not None:
                prefetched, first_link = first_link, None
                link = prefetched.result()
                if link is not None:
                    return link
            return self.dcs.create_download_link(job.instance_id, entry.id)

        def check(url: str) -> None:
            check_link(url, cfg.link_host_suffixes, cfg.link_allow_http_hosts)

        digests: list[Digest] = []  # one per attempt: the last one saw the copy that stands

        def do_copy(url: str) -> CopyResult:
            digest = Digest(entry.day)
            digests.append(digest)
            return copy_link(self.session, url, self.archive, cfg.archive_bucket, item.key, metadata=metadata,
                             compression=cfg.archive_compression, level=cfg.gzip_level, part_size=cfg.part_size,
                             single_put_max=cfg.single_put_max, storage_class=cfg.archive_storage_class,
                             tap=digest.feed, late_metadata=lambda: {"digest": header_safe(digest.to_metadata())},
                             encryption=Encryption.of(cfg.archive_encryption, cfg.archive_kms_key_id))

        def clean_up() -> None:
            # an earlier attempt (this invocation's, or a killed one's) may have left its upload open
            try:
                aborted = self.archive.abort_open_uploads(cfg.archive_bucket, item.key)
            except ObsError as err:
                log.warning("open_uploads_not_cleaned", key=item.key, error=err.as_dict())
                return
            if aborted:
                log.info("open_uploads_aborted", key=item.key, count=aborted)

        def on_retry(attempt: int, error: str) -> None:
            log.warning("file_copy_retry", file=entry.file_name, attempt=attempt, error=error[:500])
            self.sleep(min(2.0 * attempt, 10.0))
            clean_up()

        result = copy_with_retries(get_link, check, do_copy, cfg.copy_max_attempts, on_retry)
        log.info("file_archived", file=entry.file_name, key=result.key, copy=item.kind, bytes_in=result.bytes_in,
                 bytes_out=result.bytes_out, sha256=result.sha256, multipart=result.multipart)
        if item.kind == FINAL:
            for stale in item.obsolete:
                self.archive.delete(cfg.archive_bucket, stale)
                log.info("partial_replaced", key=stale, by=result.key)
        if result.tap_error:
            log.warning("digest_failed", file=entry.file_name, error=result.tap_error[:500])
            return result, None
        return result, digests[-1].result()

    def _alert(self, job: Job, item: Copy, digest: dict, log: JsonLogger) -> None:
        """One alert-ready line per node-day with notable events (README: an LTS alarm on `notable_events`)."""
        counts = notable(digest)
        if not counts:
            return
        entry = item.entry
        text = f"{job.instance_name or job.instance_id} {entry.replication_ip or entry.group_name} {entry.day}: " \
            + ", ".join(f"{n} {c.replace('_', ' ')}" for c, n in sorted(counts.items(), key=lambda kv: -kv[1]))
        log.warning("notable_events", instance_name=job.instance_name, node=entry.replication_ip,
                    group=entry.group_name, day=entry.day, counts=counts, total=sum(counts.values()),
                    warnings=digest["levels"].get("warning", 0), text=text, key=item.key)

    def _recollect(self, job: Job, plan: Plan, log: JsonLogger) -> Job:
        """A collection that ended `failed` will not fix itself: ask DCS again for those nodes, so the job's
        next attempt finds new copies (made after `requested_at`, so still judged correctly). A node DCS refuses
        now (busy with another collection, or an error) joins the job's pending replicas, asked again later."""
        by_ip = dict(zip(job.replication_ips, job.replication_ids))
        ips = sorted({n.entry.replication_ip for n in plan.failed}) if job.replication_ids else [""]
        pending = list(job.pending_replicas)
        for ip in ips:
            replication_id = by_ip.get(ip) if job.replication_ids else None
            if job.replication_ids and replication_id is None:
                continue
            try:
                self.dcs.create_redislog(job.instance_id, job.query_time, replication_id, retry_busy=False)
                log.info("recollect_requested", replication_id=replication_id)
            except InstanceGone:
                break  # the next attempt finds it gone and ends the job
            except DcsError as err:
                log.warning("recollect_failed", replication_id=replication_id, error=err.as_dict())
                if all(r.get("replication_ip") != ip for r in pending):
                    pending.append({"replication_id": replication_id or "", "replication_ip": ip, "group_name": "",
                                    "attempts": 0 if err.busy else 1,
                                    "last_error": None if err.busy else str(err)[:500]})
        return replace(job, pending_replicas=tuple(pending))


def _note_record(note: Note, state: str) -> dict:
    entry = note.entry
    return {"file": entry.file_name, "entry_id": entry.id, "day": entry.day, "group": entry.group_name,
            "state": state, "reason": note.reason, **({"key": note.key} if note.key else {})}


def _count_reasons(notes: list[Note]) -> dict:
    counts: dict[str, int] = {}
    for note in notes:
        counts[note.reason] = counts.get(note.reason, 0) + 1
    return counts


def _totals(jobs: list[dict]) -> dict:
    return {
        "files_seen": sum(j.get("files_seen", 0) for j in jobs),
        "archived": sum(j.get("archived", 0) for j in jobs),
        "already_archived": sum(j.get("already_archived", 0) for j in jobs),
        "failed": sum(len(j.get("failed", [])) for j in jobs),
        "bytes_in": sum(j.get("bytes_in", 0) for j in jobs),
        "bytes_out": sum(j.get("bytes_out", 0) for j in jobs),
        "outcomes": {o: sum(1 for j in jobs if j.get("outcome") == o) for o in {j.get("outcome") for j in jobs}},
    }

