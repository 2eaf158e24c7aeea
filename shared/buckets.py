"""Bucket setup for a long-term archive: create if missing, lifecycle rules, optional versioning. Idempotent.

Lifecycle constraints (OBS docs): a later transition must come after an earlier one; Infrequent Access (WARM)
and Archive (COLD) bill a minimum storage time of 30 and 90 days; older OBS pages also required objects to
stay 30 days in Standard before WARM and WARM to come 30 days before COLD
(support.huaweicloud.com devg-obs obs_06_0066), so those are warned about, not refused.

WORM (`--worm-days N`): the archive bucket is created with object lock (`x-obs-bucket-object-lock-enabled: true`,
api-obs obs_04_0021; the SDK's own sample does the same, huaweicloud-sdk-python-obs
examples/bucket_related/create_bucket_with_object_lock.py) and a default retention of N days in COMPLIANCE mode
(SetBucketObjectLock, api-obs obs_04_0167: COMPLIANCE is the only mode, 1-36500 days). OBS turns versioning on
for such a bucket and it cannot be suspended. Every version written afterwards is locked for N days from its
upload: nobody, the bucket owner included, deletes or overwrites that version before then. A delete without a
version id only adds a delete marker (api-obs obs_04_0080, "WORM"). The queue's objects (jobs, ledgers) are
rewritten on every run, so WORM needs a queue bucket of its own.

Encryption (`--encryption obs|kms`): the archive bucket's default server-side encryption (SetBucketEncryption,
api-obs obs_04_0062: SSEAlgorithm `kms` with an optional KMSMasterKeyID, or `AES256` for SSE-OBS), which OBS
applies to an upload that carries no encryption header; the archiver asks for ARCHIVE_ENCRYPTION on every
object anyway.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

from obs import (
    AbortIncompleteMultipartUpload,
    Expiration,
    Lifecycle,
    ObjectLockConfiguration,
    ObjectLockRule,
    Rule,
    Transition,
)

from shared.config import Config
from shared.logs import JsonLogger
from shared.obs import Encryption, Obs, ObsError, protocol_prefix

WORM_MODE = "COMPLIANCE"  # the only mode OBS offers (api-obs obs_04_0167)
WORM_MAX_DAYS = 36500


@dataclass(frozen=True)
class Retention:
    warm_after_days: Optional[int] = 30
    cold_after_days: Optional[int] = 90
    expire_after_days: Optional[int] = None
    versioning: bool = False
    done_expire_days: Optional[int] = 30
    abort_uploads_after_days: int = 7
    worm_days: Optional[int] = None  # object lock: default COMPLIANCE retention of the archive bucket, in days


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
    if r.worm_days is not None:
        if not 1 <= r.worm_days <= WORM_MAX_DAYS:
            raise SetupError(f"--worm-days={r.worm_days}: must be 1-{WORM_MAX_DAYS} (OBS WORM retention)")
        if r.expire_after_days is not None and r.expire_after_days < r.worm_days:
            raise SetupError(f"--expire-after-days={r.expire_after_days}: must not come before the WORM retention "
                             f"ends (--worm-days={r.worm_days}): lifecycle cannot delete a locked version")
    return warnings


def check_protection(config: Config, r: Retention, encryption: Optional[Encryption]) -> None:
    """Raise SetupError for WORM or encryption settings that cannot work with this configuration."""
    if r.worm_days is not None and config.queue_bucket == config.archive_bucket:
        raise SetupError(f"--worm-days: the job queue is in the archive bucket ({config.archive_bucket}); its "
                         "objects are rewritten on every run and each version would be kept for the retention "
                         "period: set QUEUE_BUCKET to another bucket")
    if encryption is not None and encryption.mode not in ("obs", "kms"):
        raise SetupError(f"--encryption={encryption.mode}: must be obs or kms")
    if encryption is not None and encryption.kms_key_id and encryption.mode != "kms":
        raise SetupError("--kms-key-id: only with --encryption kms")


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


def setup_buckets(obs: Obs, config: Config, retention: Retention, log: JsonLogger,
                  encryption: Optional[Encryption] = None) -> dict:
    """Create the archive and queue buckets if missing and (re)apply their lifecycle rules; with
    `retention.worm_days`, the archive bucket with WORM and that default retention; with `encryption`, the
    archive bucket's default encryption."""
    warnings = check_retention(retention)
    check_protection(config, retention, encryption)
    for warning in warnings:
        log.warning("retention_warning", message=warning)
    rules: dict[str, list[Rule]] = {config.archive_bucket: archive_rules(config.archive_prefix, retention)}
    rules.setdefault(config.queue_bucket, []).extend(queue_rules(config.queue_prefix, retention))
    report = {}
    for bucket, bucket_rules in rules.items():
        archive = bucket == config.archive_bucket
        worm = retention.worm_days if archive else None
        created = _ensure_bucket(obs, bucket, config.region, worm=worm is not None)
        entry: dict = {"created": created}
        if worm is not None:
            entry["worm"] = _set_worm(obs, bucket, worm, created)
        if bucket_rules:
            _check(obs.client.setBucketLifecycle(bucket, Lifecycle(rule=bucket_rules)), "SetBucketLifecycle",
                   bucket)
        versioning = archive and (retention.versioning or worm is not None)
        if versioning:
            _check(obs.client.setBucketVersioning(bucket, "Enabled"), "SetBucketVersioning", bucket)
        if archive and encryption is not None:
            entry["encryption"] = _set_encryption(obs, bucket, encryption)
        report[bucket] = {**entry, "rules": [r.id for r in bucket_rules], "versioning": versioning}
        log.info("bucket_ready", bucket=bucket, **report[bucket])
    return {"buckets": report, "warnings": warnings}


def _ensure_bucket(obs: Obs, bucket: str, region: str, worm: bool = False) -> bool:
    head = obs.client.headBucket(bucket)
    if head.status < 300:
        return False
    if head.status != 404:
        _check(head, "HeadBucket", bucket)
    # WORM can be enabled only when a bucket is created (api-obs obs_04_0021); the SDK's CreateBucketHeader has
    # no field for it, so the header goes by name, in the client's protocol (x-amz-... when it signs the S3 way)
    extension = {f"{protocol_prefix(obs.client)}bucket-object-lock-enabled": "true"} if worm else None
    resp = obs.client.createBucket(bucket, location=region or None, extensionHeaders=extension)
    if resp.status == 409:  # created meanwhile by someone else: still ready
        return False
    _check(resp, "CreateBucket", bucket)
    return True


def _set_worm(obs: Obs, bucket: str, days: int, created: bool) -> dict:
    """Set the bucket's default WORM retention to `days` (COMPLIANCE). An existing bucket must have WORM
    enabled already, and its default retention is never shortened here."""
    before = None
    if not created:  # a bucket just created with the header has WORM on (or SetBucketObjectLock says otherwise)
        current = obs.client.getBucketObjectLock(bucket)
        if current.status >= 300 or getattr(current.body, "objectLockEnabled", None) != "Enabled":
            raise SetupError(f"--worm-days: bucket {bucket} exists without WORM, which OBS enables only when a "
                             "bucket is created (api-obs obs_04_0021): archive into a new bucket created by "
                             "setup-buckets --worm-days")
        before = _days_of(getattr(current.body, "rule", None))
        if before is not None and days < before:
            raise SetupError(f"--worm-days={days}: bucket {bucket}'s default retention is {before} days; "
                             "setup-buckets does not shorten it (change it in the console if you really mean to)")
    # an ObjectLockRule object, not a dict: the SDK reads `rule.mode` from it (obs/convertor.py
    # trans_put_bucket_object_lock)
    config = ObjectLockConfiguration(objectLockEnabled="Enabled", rule=ObjectLockRule(days=days, mode=WORM_MODE))
    _check(obs.client.setBucketObjectLock(bucket, config), "SetBucketObjectLock", bucket)
    return {"mode": WORM_MODE, "days": days, "was_days": before}


def _days_of(rule: object) -> Optional[int]:
    """The default retention of an ObjectLockRule in days (years as 365 days each), None when unset."""
    if rule is None:
        return None
    days, years = getattr(rule, "days", None), getattr(rule, "years", None)
    if days:
        return int(days)
    return int(years) * 365 if years else None


def _set_encryption(obs: Obs, bucket: str, encryption: Encryption) -> dict:
    # SSEAlgorithm `kms` (the SDK writes `aws:kms` in the S3 protocol) or `AES256` for SSE-OBS (obs_04_0062)
    algorithm = "kms" if encryption.mode == "kms" else "AES256"
    key = encryption.kms_key_id if encryption.mode == "kms" else None
    _check(obs.client.setBucketEncryption(bucket, algorithm, key=key), "SetBucketEncryption", bucket)
    return {"mode": encryption.mode, "algorithm": algorithm, "kms_key_id": key}


def _check(resp: object, op: str, bucket: str) -> None:
    status = getattr(resp, "status", None)
    if status is None or status >= 300:
        raise ObsError(op, bucket, None, status, getattr(resp, "errorCode", None) or str(status),
                       getattr(resp, "errorMessage", None) or "", getattr(resp, "requestId", None))
