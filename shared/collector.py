"""The collector's service: sweep the queue, find the tagged instances, collect their run logs, enqueue jobs."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, timezone
from typing import Callable, Optional

from shared.config import Config
from shared.dcs import Dcs, DcsError, Instance, InstanceGone
from shared.discovery import Skipped, qualify, replicas_to_collect, skip_reason
from shared.events import CollectorRequest
from shared.jobs import Job, JobQueue, iso
from shared.keys import instance_prefix
from shared.logs import JsonLogger
from shared.obs import ObsError
from shared.runtime import Deadline
from shared.selection import archived_days, log_day, query_time_for, recent_marker

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
    error: Optional[dict] = None


def _capped(ids: list[str]) -> list[str]:
    return ids[:ID_LIST_CAP] + ([f"... {len(ids) - ID_LIST_CAP} more"] if len(ids) > ID_LIST_CAP else [])


class Collector:
    def __init__(self, config: Config, dcs: Dcs, queue: JobQueue, log: JsonLogger, deadline: Deadline,
                 now: Callable[[], datetime] = lambda: datetime.now(timezone.utc)) -> None:
        self.config, self.dcs, self.queue, self.log = config, dcs, queue, log
        self.deadline, self.now = deadline, now

    def run(self, request: CollectorRequest) -> dict:
        started = time.monotonic()
        summary: dict = {"action": request.action, "source": request.source}
        summary["sweep"] = self._sweep()
        if request.action == "collect":
            summary.update(self._collect(request.instance_ids))
        summary["duration_s"] = round(time.monotonic() - started, 3)
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
            "instances_gone": _capped([o.instance_id for o in outcomes if o.gone]),
            "up_to_date": len([o for o in outcomes if o.up_to_date]),
            "instances_failed": _capped([o.instance_id for o in outcomes if not o.job_key and not o.gone
                                         and not o.not_reached and not o.up_to_date]),
            "not_reached": _capped([o.instance_id for o in outcomes if o.not_reached]),
        }

    def _collect_instance(self, inst: Instance, mode: Optional[str]) -> InstanceOutcome:
        outcome = InstanceOutcome(inst.instance_id, inst.name)
        log = self.log.bind(instance_id=inst.instance_id)
        if self.deadline.expired():
            outcome.not_reached = True
            log.warning("instance_not_reached", reason="invocation deadline; the next run picks it up")
            return outcome
        query_time, up_to_date = self._window(inst.instance_id)
        if up_to_date:
            outcome.up_to_date = True
            log.info("instance_up_to_date", reason="yesterday is archived; nothing new until today ends")
            return outcome
        try:
            if mode is None:
                _, mode = self.dcs.show_instance(inst.instance_id)
            requested_at = iso(self.now())
            before = [e.id for e in self.dcs.list_redislog(inst.instance_id)]
            if mode == "single":
                targets: list[tuple[Optional[str], str]] = [(None, "")]
            else:
                replicas = replicas_to_collect(self.dcs.list_replicas(inst.instance_id), self.config.replicas)
                targets = [(r.replication_id, r.replication_ip) for r in replicas]
                if not targets:
                    outcome.error = {"code": "NO_REPLICAS", "message": f"cache_mode {mode!r} lists no replica"}
            collected = []
            for replication_id, ip in targets:
                try:
                    self.dcs.create_redislog(inst.instance_id, query_time, replication_id)
                except InstanceGone:
                    raise
                except DcsError as err:
                    outcome.failed_calls.append({**err.as_dict(), "replication_id": replication_id})
                    log.warning("collect_call_failed", replication_id=replication_id, error=err.as_dict())
                    continue
                outcome.ok_calls += 1
                collected.append((replication_id, ip))
        except InstanceGone as err:
            outcome.gone = True
            log.warning("instance_gone", error=err.as_dict())
            return outcome
        except DcsError as err:
            outcome.error = err.as_dict()
            log.error("instance_collect_failed", error=err.as_dict())
            return outcome
        if not collected:
            return outcome
        job = Job(instance_id=inst.instance_id, instance_name=inst.name, project_id=self.config.project_id,
                  region=self.config.region, query_time=query_time,
                  replication_ids=tuple(r for r, _ in collected if r),
                  replication_ips=tuple(ip for r, ip in collected if r),
                  requested_at=requested_at, entries_before=tuple(before),
                  collected_at=self.now().astimezone(timezone.utc).isoformat(timespec="milliseconds"))
        try:
            outcome.job_key = self.queue.enqueue(job)
        except ObsError as err:
            outcome.error = {"stage": "enqueue", **err.as_dict()}
            log.error("job_enqueue_failed", error=err.as_dict())
            return outcome
        log.info("job_enqueued", job_id=job.job_id, key=outcome.job_key, replicas=len(collected),
                 query_time=query_time, failed_calls=len(outcome.failed_calls))
        return outcome

    def _window(self, instance_id: str) -> tuple[int, bool]:
        """The collection window and whether the instance is up to date, from one LIST of its recent archive.

        QUERY_TIME is widened (QUERY_TIME_AUTO) to reach back to the first day not archived yet, so a first
        deployment or a run after an outage archives every day DCS still keeps. An instance whose yesterday is
        archived already has nothing new to give until today ends (unless the open day is archived too): a
        repeated run costs it no DCS call and no job.
        """
        if not self.config.query_time_auto:
            return self.config.query_time, False
        prefix = instance_prefix(self.config.archive_prefix, instance_id)
        today = date.fromisoformat(log_day(self.now(), self.config.log_timezone))
        try:
            keys = [o.key for o in self.queue.obs.list(self.config.archive_bucket, prefix,
                                                       start_after=recent_marker(prefix, today))]
        except ObsError as err:
            self.log.warning("archive_list_failed", instance_id=instance_id, error=err.as_dict())
            return self.config.query_time, False
        days = archived_days(keys, prefix)
        up_to_date = (today - timedelta(days=1)).isoformat() in days and not self.config.archive_open_day
        return query_time_for(days, today, self.config.query_time), up_to_date
