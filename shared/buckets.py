"""Bucket setup for a long-term archive: create if missing, lifecycle rules, optional versioning. Idempotent.

Lifecycle constraints (OBS docs): a later transition must come after an earlier one; Infrequent Access (WARM)
and Archive (COLD) bill a minimum storage time of 30 and 90 days; older OBS pages also required objects to
stay 30 days in Standard before WARM and WARM to come 30 days before COLD
(support.huaweicloud.com devg-obs obs_06_0066), so those are warned about, not refused.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

from obs import AbortIncompleteMultipartUpload, Expiration, Lifecycle, Rule, Transition

from shared.config import Config
from shared.logs import JsonLogger
from shared.obs import Obs, ObsError


@dataclass(frozen=True)
class Retention:
    warm_after_days: Optional[int] = 30
    cold_after_days: Optional[int] = 90
    expire_after_days: Optional[int] = None
    versioning: bool = False
    done_expire_days: Optional[int] = 30
    abort_uploads_after_days: int = 7


class SetupError(ValueError):
    """The retention settings contradict each other."""


def check_retention(r: Retention) -> list[str]:
    """Raise SetupError for impossible settings; return warnings for costly or possibly refused ones."""
    steps = [(name, days) for name, days in (("warm", r.warm_after_days), ("cold", r.cold_after_days),
                                            ("expire", r.expire_after_days)) if days is not None]
    for name, days in steps:
        if days < 1:
            raise SetupError(f"--{name}-after-days={days}: must be at least 1")
    for (a, da), (b, db) in zip(steps, steps[1:]):
        if db <= da:
            raise SetupError(f"--{b}-after-days={db}: must be later than --{a}-after-days={da}")
    warnings = []
    if r.warm_after_days is not None and r.warm_after_days < 30:
        warnings.append("WARM before 30 days: billed for 30 days of Infrequent Access, refused by older OBS")
    if r.warm_after_days is not None and r.cold_after_days is not None \
            and r.cold_after_days - r.warm_after_days < 30:
        warnings.append("COLD less than 30 days after WARM: refused by older OBS")
    if r.done_expire_days is not None and r.done_expire_days < 1:
        raise SetupError("--done-expire-days must be at least 1")
    return warnings


def archive_rules(prefix: str, r: Retention) -> list[Rule]:
    transitions = [Transition(storageClass=cls, days=days) for cls, days in
                   (("WARM", r.warm_after_days), ("COLD", r.cold_after_days)) if days is not None]
    rule = Rule(id="redis-run-log-archive", prefix=prefix, status="Enabled",
                transition=transitions or None,
                expiration=Expiration(days=r.expire_after_days) if r.expire_after_days else None,
                abortIncompleteMultipartUpload=AbortIncompleteMultipartUpload(
                    daysAfterInitiation=r.abort_uploads_after_days))
    return [rule]


def queue_rules(prefix: str, r: Retention) -> list[Rule]:
    if not r.done_expire_days:
        return []
    return [Rule(id="redis-run-log-jobs-done", prefix=f"{prefix}done/", status="Enabled",
                 expiration=Expiration(days=r.done_expire_days))]


def setup_buckets(obs: Obs, config: Config, retention: Retention, log: JsonLogger) -> dict:
    """Create the archive and queue buckets if missing and (re)apply their lifecycle rules."""
    warnings = check_retention(retention)
    for warning in warnings:
        log.warning("retention_warning", message=warning)
    rules: dict[str, list[Rule]] = {config.archive_bucket: archive_rules(config.archive_prefix, retention)}
    rules.setdefault(config.queue_bucket, []).extend(queue_rules(config.queue_prefix, retention))
    report = {}
    for bucket, bucket_rules in rules.items():
        created = _ensure_bucket(obs, bucket, config.region)
        if bucket_rules:
            _check(obs.client.setBucketLifecycle(bucket, Lifecycle(rule=bucket_rules)), "SetBucketLifecycle",
                   bucket)
        if bucket == config.archive_bucket and retention.versioning:
            _check(obs.client.setBucketVersioning(bucket, "Enabled"), "SetBucketVersioning", bucket)
        report[bucket] = {"created": created, "rules": [r.id for r in bucket_rules],
                          "versioning": bucket == config.archive_bucket and retention.versioning}
        log.info("bucket_ready", bucket=bucket, **report[bucket])
    return {"buckets": report, "warnings": warnings}


def _ensure_bucket(obs: Obs, bucket: str, region: str) -> bool:
    head = obs.client.headBucket(bucket)
    if head.status < 300:
        return False
    if head.status != 404:
        _check(head, "HeadBucket", bucket)
    resp = obs.client.createBucket(bucket, location=region or None)
    if resp.status == 409:  # created meanwhile by someone else: still ready
        return False
    _check(resp, "CreateBucket", bucket)
    return True


def _check(resp: object, op: str, bucket: str) -> None:
    status = getattr(resp, "status", None)
    if status is None or status >= 300:
        raise ObsError(op, bucket, None, status, getattr(resp, "errorCode", None) or str(status),
                       getattr(resp, "errorMessage", None) or "", getattr(resp, "requestId", None))
