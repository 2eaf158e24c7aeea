"""setup-buckets' WORM and encryption decisions (shared/buckets.py), on a fake ObsClient that records the calls,
and the KMS grant beside the agency policy (deploy/kms-*.json). The requests themselves, in both protocols, are
checked in tests/integration/test_worm_encryption.py."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace
from typing import Any, Optional

import hcl2
import pytest
from hcl2.utils import SerializationOptions
from obs import ObjectLockConfiguration, ObjectLockRule

from shared.buckets import Retention, SetupError, _days_of, check_protection, check_retention, setup_buckets
from shared.config import load_config
from shared.logs import JsonLogger
from shared.obs import Encryption, Obs

ROOT = Path(__file__).resolve().parents[2]
ENV = {"DCS_REGION": "cn-north-4", "PROJECT_ID": "0123456789abcdef", "INSTANCE_TAGS": "a=b",
       "ARCHIVE_BUCKET": "archive-bkt", "QUEUE_BUCKET": "queue-bkt"}
NO_TRANSITIONS = {"warm_after_days": None, "cold_after_days": None}


def _answer(status: int = 200, body: Any = None) -> SimpleNamespace:
    return SimpleNamespace(status=status, body=body, errorCode=None if status < 300 else "Refused",
                           errorMessage="", requestId="r-1")


class FakeClient:
    """The ObsClient calls setup_buckets makes; `existing` buckets answer HeadBucket, `locks` their object lock."""

    def __init__(self, existing: tuple[str, ...] = (), locks: Optional[dict] = None, negotiation: bool = True,
                 signature: str = "obs") -> None:
        self.existing, self.locks = set(existing), dict(locks or {})
        self.is_signature_negotiation, self.signature = negotiation, signature
        self.calls: list[tuple[str, str, dict]] = []

    def _record(self, name: str, bucket: str, **kwargs: Any) -> None:
        self.calls.append((name, bucket, kwargs))

    def headBucket(self, bucket: str) -> SimpleNamespace:
        self._record("headBucket", bucket)
        return _answer(200 if bucket in self.existing else 404)

    def createBucket(self, bucket: str, location: Optional[str] = None,
                     extensionHeaders: Optional[dict] = None) -> SimpleNamespace:
        self._record("createBucket", bucket, location=location, extensionHeaders=extensionHeaders)
        self.existing.add(bucket)
        return _answer()

    def getBucketObjectLock(self, bucket: str) -> SimpleNamespace:
        self._record("getBucketObjectLock", bucket)
        lock = self.locks.get(bucket)
        return _answer(404, "no lock") if lock is None else _answer(200, lock)

    def setBucketObjectLock(self, bucket: str, config: ObjectLockConfiguration) -> SimpleNamespace:
        self._record("setBucketObjectLock", bucket, config=config)
        return _answer()

    def setBucketLifecycle(self, bucket: str, lifecycle: Any) -> SimpleNamespace:
        self._record("setBucketLifecycle", bucket)
        return _answer()

    def setBucketVersioning(self, bucket: str, status: str) -> SimpleNamespace:
        self._record("setBucketVersioning", bucket, status=status)
        return _answer()

    def setBucketEncryption(self, bucket: str, encryption: str, key: Optional[str] = None) -> SimpleNamespace:
        self._record("setBucketEncryption", bucket, encryption=encryption, key=key)
        return _answer()

    def names(self, bucket: str) -> list[str]:
        return [name for name, b, _ in self.calls if b == bucket]

    def call(self, name: str, bucket: str) -> dict:
        (found,) = [kwargs for n, b, kwargs in self.calls if (n, b) == (name, bucket)]
        return found


def _setup(client: FakeClient, encryption: Optional[Encryption] = None, **retention: Any) -> dict:
    return setup_buckets(Obs(client), load_config(ENV), Retention(**retention), JsonLogger(), encryption)


def _lock(days: Optional[str] = None, years: Optional[str] = None) -> ObjectLockConfiguration:
    rule = ObjectLockRule(days=days, years=years, mode="COMPLIANCE") if days or years else None
    return ObjectLockConfiguration(objectLockEnabled="Enabled", rule=rule)


# --- the checks (pure) ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("days", [0, -1, 36501])
def test_a_worm_retention_outside_1_to_36500_days_is_refused(days):
    with pytest.raises(SetupError, match=f"--worm-days={days}: must be 1-36500"):
        check_retention(Retention(worm_days=days))


def test_an_expiry_before_the_worm_retention_ends_is_refused_and_one_after_it_accepted():
    with pytest.raises(SetupError, match="lifecycle cannot delete a locked version"):
        check_retention(Retention(worm_days=400, expire_after_days=365))
    assert check_retention(Retention(worm_days=365, expire_after_days=400)) == []


def test_worm_needs_a_queue_bucket_of_its_own():
    one_bucket = load_config({**ENV, "QUEUE_BUCKET": "archive-bkt"})
    with pytest.raises(SetupError, match="set QUEUE_BUCKET to another bucket"):
        check_protection(one_bucket, Retention(worm_days=30), None)
    check_protection(one_bucket, Retention(), Encryption("obs"))  # encryption alone is fine in one bucket


def test_a_kms_key_is_refused_without_kms():
    with pytest.raises(SetupError, match="--kms-key-id: only with --encryption kms"):
        check_protection(load_config(ENV), Retention(), Encryption("obs", "key-1"))


def test_a_default_retention_in_years_counts_365_days_each():
    assert _days_of(None) is None
    assert _days_of(ObjectLockRule(days="30")) == 30
    assert _days_of(ObjectLockRule(years="7")) == 7 * 365


# --- setup_buckets on a fake client ---------------------------------------------------------------------------


def test_a_new_archive_bucket_is_created_with_worm_then_its_retention_versioning_and_encryption():
    client = FakeClient()
    report = _setup(client, Encryption("kms", "key-1"), worm_days=365)["buckets"]

    assert client.names("archive-bkt") == ["headBucket", "createBucket", "setBucketObjectLock", "setBucketLifecycle",
                                           "setBucketVersioning", "setBucketEncryption"]
    assert client.call("createBucket", "archive-bkt")["extensionHeaders"] == {
        "x-obs-bucket-object-lock-enabled": "true"}
    config = client.call("setBucketObjectLock", "archive-bkt")["config"]
    assert isinstance(config.rule, ObjectLockRule), "an ObjectLockRule object: the SDK reads rule.mode from it"
    assert (config.objectLockEnabled, config.rule.days, config.rule.mode) == ("Enabled", 365, "COMPLIANCE")
    assert client.call("setBucketVersioning", "archive-bkt")["status"] == "Enabled"
    assert client.call("setBucketEncryption", "archive-bkt") == {"encryption": "kms", "key": "key-1"}
    assert client.call("createBucket", "queue-bkt")["extensionHeaders"] is None
    assert client.names("queue-bkt") == ["headBucket", "createBucket", "setBucketLifecycle"]
    assert report["archive-bkt"] == {"created": True, "worm": {"mode": "COMPLIANCE", "days": 365, "was_days": None},
                                     "encryption": {"mode": "kms", "algorithm": "kms", "kms_key_id": "key-1"},
                                     "rules": ["redis-run-log-archive"], "versioning": True}


def test_sse_obs_is_the_aes256_default_and_the_s3_protocol_names_the_lock_header_x_amz():
    client = FakeClient(negotiation=False, signature="v2")  # path style: no negotiation, V2 signing
    _setup(client, Encryption("obs"), worm_days=1)
    assert client.call("createBucket", "archive-bkt")["extensionHeaders"] == {
        "x-amz-bucket-object-lock-enabled": "true"}
    assert client.call("setBucketEncryption", "archive-bkt") == {"encryption": "AES256", "key": None}


def test_an_existing_worm_bucket_gets_a_longer_retention_but_never_a_shorter_one():
    client = FakeClient(existing=("archive-bkt", "queue-bkt"), locks={"archive-bkt": _lock(days="30")})
    report = _setup(client, worm_days=90)["buckets"]
    assert "createBucket" not in client.names("archive-bkt")
    assert report["archive-bkt"]["worm"] == {"mode": "COMPLIANCE", "days": 90, "was_days": 30}

    client = FakeClient(existing=("archive-bkt", "queue-bkt"), locks={"archive-bkt": _lock(years="1")})
    with pytest.raises(SetupError, match="default retention is 365 days; setup-buckets does not shorten it"):
        _setup(client, worm_days=30)
    assert "setBucketObjectLock" not in client.names("archive-bkt")


def test_an_existing_bucket_without_worm_is_refused_before_any_change():
    client = FakeClient(existing=("archive-bkt",))
    with pytest.raises(SetupError, match="exists without WORM, which OBS enables only when a bucket is created"):
        _setup(client, worm_days=30)
    assert client.names("archive-bkt") == ["headBucket", "getBucketObjectLock"]
    assert client.names("queue-bkt") == []


def test_without_worm_or_encryption_nothing_of_either_is_asked():
    client = FakeClient()
    report = _setup(client, **NO_TRANSITIONS)["buckets"]
    assert client.call("createBucket", "archive-bkt")["extensionHeaders"] is None
    assert not {"setBucketObjectLock", "setBucketVersioning", "setBucketEncryption"} & set(client.names("archive-bkt"))
    assert "worm" not in report["archive-bkt"] and "encryption" not in report["archive-bkt"]


# --- the KMS grant --------------------------------------------------------------------------------------------


def test_the_kms_grant_has_the_same_actions_in_both_policy_forms():
    role = json.loads((ROOT / "deploy" / "kms-agency-policy.json").read_text())
    identity = json.loads((ROOT / "deploy" / "kms-identity-policy.json").read_text())
    assert (role["Version"], identity["Version"]) == ("1.1", "5.0")
    for policy in (role, identity):
        (statement,) = policy["Statement"]
        assert statement["Effect"] == "Allow"
        # DEW's policy actions (api-dew dew_02_0309): create a DEK, encrypt/decrypt a DEK, query the key
        assert sorted(statement["Action"]) == ["kms:cmk:get", "kms:dek:create", "kms:dek:crypto"]
    iam = (ROOT / "deploy" / "terraform" / "iam.tf").read_text()
    assert "../kms-agency-policy.json" in iam and "../kms-identity-policy.json" in iam


def test_terraform_grants_kms_only_with_kms_encryption():
    with (ROOT / "deploy" / "terraform" / "iam.tf").open() as handle:
        parsed = hcl2.load(handle, serialization_options=SerializationOptions(with_comments=False,
                                                                             strip_string_quotes=True))
    kms = {type_name: named["kms"] for entry in parsed["resource"] for type_name, named in entry.items()
           if "kms" in named}
    assert set(kms) == {"huaweicloud_identity_role", "huaweicloud_identityv5_policy",
                        "huaweicloud_identityv5_policy_agency_attach"}
    assert all('var.archive_encryption == "kms"' in body["count"] for body in kms.values())
    assert all("var.attach_identity_policy" in kms[t]["count"] for t in kms if t.startswith("huaweicloud_identityv5"))
    assert kms["huaweicloud_identity_role"]["type"] == "XA", "KMS is regional: granted in the region's project"
