"""The collector's service: sweep the queue, find the tagged instances, collect their run logs, enqueue jobs."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import date, datetime, timezone
from typing import Callable, Optional

from shared.collection import request_collections
from shared.config import Config
from shared.dcs import Dcs, DcsError, Instance, InstanceGone, Replica
from shared.discovery import Skipped, qualify, replicas_to_collect, skip_reason
from shared.events import CollectorRequest
from shared.jobs import Job, JobQueue, iso
from shared.ledger import (
    Ledger,
    LedgerStore,
    MalformedLedger,
    observe_topology,
    oldest_missing,
    query_time_for,
    up_to_date,
)
from shared.ledger import summary as ledger_summary
from shared.logs import JsonLogger
from shared.manifest import ManifestWriter, manifest_key
from shared.obs import Encryption, ObsError
from shared.runtime import Deadline
from shared.selection import log_day

ID_LIST_CAP = 100  # ids listed per category in the summary line; counts are always complete


@dataclass
class InstanceOutcome:
    instance_id: str
    name: str
    ok_calls: int = 0
    failed_calls: list[dict] = field(default_factory=list)
    job_key: Optional[str] = None
    gone: bool = False
    not_reached: bool = False
    up_to_date: bool = False
    deferred: int = 0  # replicas left in the job for the archiver to collect (refused or DCS busy)
    node_days: Optional[dict] = None  # the ledger's counts before this run (None: no ledger yet)
    error: Optional[dict] = None


def _capped(ids: list[str]) -> list[str]:
    return ids[:ID_LIST_CAP] + ([f"... {len(ids) - ID_LIST_CAP} more"] if len(ids) > ID_LIST_CAP else [])


class Collector:
    def __init__(self, config: Config, dcs: Dcs, queue: JobQueue, log: JsonLogger, deadline: Deadline,
                 now: Callable[[], datetime] = lambda: datetime.now(timezone.utc)) -> None:
        self.config, self.dcs, self.queue, self.log = config, dcs, queue, log
        self.deadline, self.now = deadline, now
        self.ledgers = LedgerStore(queue.obs, queue.bucket, queue.prefix)
        self._ledgers_read: dict[str, Optional[Ledger]] = {}
        self.manifests = ManifestWriter(queue.obs, config.archive_bucket, config.archive_prefix, queue.obs,
                                        queue.bucket, queue.prefix, self.ledgers,
                                        Encryption.of(config.archive_encryption, config.archive_kms_key_id))

    def run(self, request: CollectorRequest) -> dict:
        started = time.monotonic()
        phases: dict[str, float] = {}  # seconds per phase: where a slow run spent its time

        def timed(phase: str, work: Callable[[], object]) -> object:
            begun = time.monotonic()
            try:
                return work()
            finally:
                phases[phase] = round(time.monotonic() - begun, 3)

        summary: dict = {"action": request.action, "source": request.source, **self.deadline.report()}
        summary["sweep"] = timed("sweep", self._sweep)
        if request.action == "collect":
            summary.update(timed("collect", lambda: self._collect(request.instance_ids)))
        summary["manifests_written"] = timed("manifests", self._write_manifests)
        summary["report_written"] = timed("report", lambda: self._write_report(
            bool(summary["manifests_written"]), jobs_in_flight=request.action == "collect"))
        summary["duration_s"] = round(time.monotonic() - started, 3)
        summary["phases_s"] = phases
        self.log.info("collector_summary", **summary)
        return summary

    # --- sweep -------------------------------------------------------------------------------------
    def _sweep(self) -> dict:
        try:
            result = self.queue.sweep(self.now(), stale_after=self.config.pending_redrive_seconds,
                                      max_attempts=self.config.job_max_attempts)
        except ObsError as err:
            self.log.error("sweep_failed", error=err.as_dict())
            return {"error": err.as_dict()}
        for instance_id in result["dead_lettered"]:
            self.log.warning("job_dead_lettered", instance_id=instance_id)
        for key in result["malformed"]:
            self.log.warning("job_malformed_dead_lettered", key=key)
        return {"redriven": len(result["redriven"]), "rewritten": len(result["rewritten"]),
                "dead_lettered": len(result["dead_lettered"]), "malformed": len(result["malformed"]),
                "waiting": result["waiting"], "errors": result["errors"][:ID_LIST_CAP],
                "instance_ids": _capped(result["redriven"] + result["rewritten"]),
                "dead_lettered_ids": _capped(result["dead_lettered"])}

    # --- discovery and collection -------------------------------------------------------------------
    def _discover(self, instance_ids: Optional[tuple[str, ...]]) -> tuple[list[Instance], list[Skipped],
                                                                          dict[str, str]]:
        tags = self.config.instance_tags
        if instance_ids is None:
            return (*qualify(self.dcs.list_instances(self.config.tags_filter), tags), {})
        # A manual run names instances, but they must still carry the configured tags: the tags are the
        # scope the operator agreed to archive, and a typo must not reach outside it.
        matched, skipped, modes = [], [], {}
        for instance_id in instance_ids:
            try:
                inst, mode = self.dcs.show_instance(instance_id)
            except DcsError as err:
                skipped.append(Skipped(instance_id, "", f"ShowInstance failed: {err.code}"))
                continue
            reason = skip_reason(inst, tags)
            if reason:
                skipped.append(Skipped(inst.instance_id, inst.name, reason))
            else:
                matched.append(inst)
                modes[inst.instance_id] = mode
        return matched, skipped, modes

    def _collect(self, instance_ids: Optional[tuple[str, ...]]) -> dict:
        try:
            matched, skipped, modes = self._discover(instance_ids)
        except DcsError as err:
            self.log.error("discovery_failed", error=err.as_dict())
            return {"error": {"stage": "discovery", **err.as_dict()}, "matched": 0}
        for item in skipped:
            self.log.info("instance_skipped", instance_id=item.instance_id, name=item.name, reason=item.reason)
        try:  # which instances each day must account for: the manifests list them, and the skipped ones
            self.manifests.note_run(log_day(self.now(), self.config.log_timezone),
                                    [(i.instance_id, i.name) for i in matched],
                                    [(i.instance_id, i.name, i.reason) for i in skipped])
        except ObsError as err:
            self.log.error("fleet_record_failed", error=err.as_dict())
        with ThreadPoolExecutor(max_workers=self.config.collect_concurrency,
                                thread_name_prefix="collect") as pool:
            outcomes = list(pool.map(lambda inst: self._collect_instance(inst, modes.get(inst.instance_id)),
                                     matched))
        by_reason: dict[str, list[str]] = {}
        for item in skipped:
            by_reason.setdefault(item.reason, []).append(item.instance_id)
        failed_calls = [call for o in outcomes for call in o.failed_calls]
        return {
            "matched": len(matched),
            "skipped": {reason: {"count": len(ids), "instance_ids": _capped(ids)}
                        for reason, ids in sorted(by_reason.items())},
            "collect_calls": {"ok": sum(o.ok_calls for o in outcomes), "failed": len(failed_calls),
                              "failures": failed_calls[:ID_LIST_CAP]},
            "jobs_enqueued": sum(1 for o in outcomes if o.job_key),
            "replicas_deferred": sum(o.deferred for o in outcomes),
            "instances_gone": _capped([o.instance_id for o in outcomes if o.gone]),
            "up_to_date": len([o for o in outcomes if o.up_to_date]),
            "instances_failed": _capped([o.instance_id for o in outcomes if not o.job_key and not o.gone
                                         and not o.not_reached and not o.up_to_date]),
            "not_reached": _capped([o.instance_id for o in outcomes if o.not_reached]),
            # the ledgers as this run found them: "is anything missing?" is one query on this line
            "node_days": {state: sum((o.node_days or {}).get(state, 0) for o in outcomes)
                          for state in ("archived", "no_log", "failed", "missing")},
            "instances_missing_node_days": [
                {"instance_id": o.instance_id, "name": o.name, "missing": o.node_days["missing"],
                 "failed": o.node_days["failed"], "first": o.node_days["missing_node_days"][:3]}
                for o in outcomes if o.node_days and (o.node_days["missing"] or o.node_days["failed"])][:ID_LIST_CAP],
            "instances_without_ledger": len([o for o in outcomes if o.node_days is None and not o.gone]),
        }

    def _collect_instance(self, inst: Instance, mode: Optional[str]) -> InstanceOutcome:
        outcome = InstanceOutcome(inst.instance_id, inst.name)
        log = self.log.bind(instance_id=inst.instance_id)
        if self.deadline.expired():
            outcome.not_reached = True
            log.warning("instance_not_reached", reason="invocation deadline; the next run picks it up")
            return outcome
        today = date.fromisoformat(log_day(self.now(), self.config.log_timezone))
        ledger = self._ledger(inst.instance_id, log)
        outcome.node_days = ledger_summary(ledger, today) if ledger else None
        if self.config.query_time_auto and not self.config.archive_open_day and up_to_date(ledger, today):
            outcome.up_to_date = True
            log.info("instance_up_to_date", reason="every node's yesterday is archived or proven empty; nothing "
                                                   "new until today ends")
            return outcome
        try:
            mode = mode or (ledger.cache_mode if ledger else None)  # the cache mode does not change day to day
            if not mode:
                _, mode = self.dcs.show_instance(inst.instance_id)
            requested_at = iso(self.now())
            before = [e.id for e in self.dcs.list_redislog(inst.instance_id)]
            if mode == "single":
                targets = [Replica("", "", "master", "")]
            else:
                targets = replicas_to_collect(self.dcs.list_replicas(inst.instance_id), self.config.replicas)
                if not targets:
                    outcome.error = {"code": "NO_REPLICAS", "message": f"cache_mode {mode!r} lists no replica"}
                    return outcome
            query_time, needed = self._window(ledger, mode, targets, today)
            collected, pending, failures = request_collections(self.dcs, inst.instance_id, query_time, needed,
                                                               self.now, log)
            outcome.ok_calls, outcome.failed_calls = len(collected), failures
        except InstanceGone as err:
            outcome.gone = True
            log.warning("instance_gone", error=err.as_dict())
            return outcome
        except DcsError as err:
            outcome.error = err.as_dict()
            log.error("instance_collect_failed", error=err.as_dict())
            return outcome
        job = Job(instance_id=inst.instance_id, instance_name=inst.name, project_id=self.config.project_id,
                  region=self.config.region, query_time=query_time,
                  replication_ids=tuple(r.replication_id for r, _ in collected if r.replication_id),
                  replication_ips=tuple(r.replication_ip for r, _ in collected if r.replication_id),
                  requested_at=requested_at, entries_before=tuple(before),
                  collected_at=max((at for _, at in collected), default=None), cache_mode=mode,
                  topology=tuple({"replication_id": r.replication_id, "replication_ip": r.replication_ip,
                                  "group_name": r.group_name, "role": r.role} for r in targets if r.replication_id),
                  pending_replicas=tuple(pending),
                  node_collected_at={r.replication_ip: at for r, at in collected})
        try:
            outcome.job_key = self.queue.enqueue(job)
        except ObsError as err:
            outcome.error = {"stage": "enqueue", **err.as_dict()}
            log.error("job_enqueue_failed", error=err.as_dict())
            return outcome
        outcome.deferred = len(pending)
        log.info("job_enqueued", job_id=job.job_id, key=outcome.job_key, replicas=len(collected),
                 replicas_pending=len(pending), query_time=query_time, failed_calls=len(outcome.failed_calls))
        return outcome

    def _ledger(self, instance_id: str, log: JsonLogger) -> Optional[Ledger]:
        try:
            ledger = self.ledgers.read(instance_id)
        except (MalformedLedger, ObsError) as exc:
            log.warning("ledger_unreadable", reason=str(exc)[:500], action="collecting the whole window")
            return None
        self._ledgers_read[instance_id] = ledger
        return ledger

    def _write_manifests(self) -> list[str]:
        """The daily manifests that are due (their days settled in every ledger), chained; never fatal."""
        if self.deadline.expired():
            return []  # the next run writes them
        today = date.fromisoformat(log_day(self.now(), self.config.log_timezone))
        try:
            days = self.manifests.write_due(today, iso(self.now()), self._ledgers_read)
        except (ObsError, ValueError, KeyError) as exc:
            self.log.error("manifest_write_failed", error=str(exc)[:500])
            return []
        for day in days:
            self.log.info("manifest_written", day=day, key=manifest_key(self.config.archive_prefix, day))
        return days

    def _write_report(self, manifests_written: bool, jobs_in_flight: bool) -> bool:
        """The HTML report at <ARCHIVE_PREFIX>_report/index.html (shared/report.py), rewritten when manifests were
        written, a ledger changed since, or it is from an earlier day (a collect run, whose jobs are still being
        archived: only for manifests or a first report; shared.report.due); never fatal: it is a view."""
        if self.deadline.expired():
            return False
        try:
            from shared.report import publish  # Jinja2 is loaded only by the runs that write the report

            written = publish(self.queue.obs, self.config, self.ledgers, self.now(),
                              manifests_written=manifests_written, jobs_in_flight=jobs_in_flight)
        except Exception as exc:  # noqa: BLE001 - whatever breaks the report must not fail the collector's run
            self.log.error("report_write_failed", error=f"{type(exc).__name__}: {exc}"[:500])
            return False
        if written:
            self.log.info("report_written", **written)
        return bool(written)

    def _window(self, ledger: Optional[Ledger], mode: str, targets: list[Replica],
                today: date) -> tuple[int, list[Replica]]:
        """The collection window and the replicas to ask: QUERY_TIME, widened (QUERY_TIME_AUTO) back to the oldest
        node-day still missing in the ledger, counting the nodes listed now (a node seen for the first time is
        expected from the day before); only the replicas with a node-day missing are asked (all of them with the
        open day, which changes all day). A first deployment, or a run after an outage, catches up by itself."""
        if not self.config.query_time_auto:
            return self.config.query_time, targets
        if ledger is None:
            return query_time_for(oldest_missing(None, today), today, self.config.query_time), targets
        view = Ledger.from_dict(ledger.to_dict())
        view.cache_mode = mode
        observe_topology(view, [{"replication_ip": r.replication_ip, "replication_id": r.replication_id}
                                for r in targets if r.replication_id], today, single=mode == "single")
        missing = view.missing(today)
        query_time = query_time_for(min((d for _, d in missing), default=None), today, self.config.query_time)
        if self.config.archive_open_day or mode == "single":
            return query_time, targets
        lacking = {ip for ip, _ in missing}
        return query_time, [r for r in targets if r.replication_ip in lacking] or targets
