"""WORM retention and server-side encryption: `setup-buckets --worm-days/--encryption` and the archiver's writes.

Where each part is tested, and why:
- **WORM on SeaweedFS.** SeaweedFS 4.48 implements S3 object lock: a bucket created with
  `x-amz-bucket-object-lock-enabled: true` gets versioning, a default COMPLIANCE retention applies to every
  version written, a locked version cannot be deleted and a delete without a version id adds a delete marker.
  Its V2 signature check leaves out sub-resources esdk-obs-python signs (`object-lock`, `encryption`, both in the
  SDK's `ALLOWED_RESOURCE_PARAMTER_NAMES`): SeaweedFS answers SignatureDoesNotMatch. So the bucket-level calls of
  setup-buckets go through a V4-signing client here (`_v4_obs`); the archiver's object writes stay V2 signed, as
  everywhere in the local cloud. Production speaks the OBS protocol, checked below at the request level.
- **Encryption on a SeaweedFS of its own** (`SseSeaweedFS`), started with an SSE-S3 key (`[s3.sse] kek` in its
  security.toml) and its local KMS provider (a `kms` block in its S3 configuration), whose default key has the
  alias `alias/seaweedfs-default`: SSE-OBS is S3's `AES256` there and SSE-KMS is `aws:kms`. The objects are
  written by the pipeline, single PUT and multipart, and read back byte-exact.
- **The OBS protocol at the request level** (tests/localcloud/recording_obs.py, as test_obs_protocol.py): the
  headers and bodies esdk-obs-python sends to OBS with signature negotiation on (`x-obs-*`), which the local store,
  speaking only the S3 protocol, cannot show; and the S3-protocol names the SDK uses in path style.
"""

from __future__ import annotations

import json
import os
import uuid
import xml.etree.ElementTree as ET
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from obs import GetObjectRequest, ObsClient, Versions

from shared import cli as shared_cli
from shared.buckets import Retention, SetupError, setup_buckets
from shared.config import load_config
from shared.logs import JsonLogger
from shared.manifest import manifest_key
from shared.obs import Encryption, Obs, build_client
from shared.runtime import Credentials
from shared.transfer import copy_link
from tests.integration.test_collector import TAGS
from tests.localcloud.dcs import DcsEmulator
from tests.localcloud.pipeline import LocalCloud
from tests.localcloud.recording_obs import RecordingObs, route_localtest_to_loopback
from tests.localcloud.seaweed import SeaweedFS

ARCHIVE = "redis-run-logs/"
KMS_KEY = "alias/seaweedfs-default"  # the key SeaweedFS's local KMS provider creates at start
CREDS = Credentials("AKWORMENCRYPTION00000", "sk-worm-encryption")


def _worm(days: Any) -> Retention:
    """Retention for setup-buckets on SeaweedFS, which implements no lifecycle transitions (it answers 501
    NotImplemented to a rule with WARM or COLD): expiry rules only."""
    return Retention(warm_after_days=None, cold_after_days=None, worm_days=days)


def pipeline(cloud: LocalCloud, **overrides: str) -> None:
    """Collector, then the archiver fired by the local OBS trigger for every pending job."""
    collected = cloud.run_collector(**overrides)
    assert collected["collect_calls"]["failed"] == 0, collected
    for delivery in cloud.trigger(**overrides).pump():
        assert delivery.ok, delivery.traceback


def _v4_obs(store: SeaweedFS) -> Obs:
    return Obs(ObsClient(access_key_id=store.access_key, secret_access_key=store.secret_key, server=store.endpoint,
                         path_style=True, signature="v4", max_retry_count=0, timeout=30))


def _local_cloud(store: SeaweedFS, monkeypatch: Any, archive: str, queue: str) -> LocalCloud:
    emulator = DcsEmulator(store, ak=store.access_key, sk=store.secret_key).start()
    local = LocalCloud(store, emulator, archive_bucket=archive, queue_bucket=queue)
    for name, value in local.env.items():
        monkeypatch.setenv(name, value)
    return local


def _versions(client: ObsClient, bucket: str, key: str) -> tuple[list, list]:
    """(versions, delete markers) of exactly this key."""
    listed = client.listVersions(bucket, Versions(prefix=key))
    assert listed.status < 300, (listed.status, listed.errorCode)
    return ([v for v in listed.body.versions or [] if v.key == key],
            [m for m in listed.body.markers or [] if m.key == key])


# --- WORM on SeaweedFS ------------------------------------------------------------------------------------------


@pytest.fixture
def worm_cloud(seaweed, monkeypatch):
    """A LocalCloud whose archive bucket setup-buckets created with WORM (1 day, COMPLIANCE)."""
    suffix = uuid.uuid4().hex[:10]
    local = _local_cloud(seaweed, monkeypatch, f"worm-{suffix}", f"queue-{suffix}")
    report = setup_buckets(_v4_obs(seaweed), local.config(), _worm(1), JsonLogger())
    local.setup_report = report
    try:
        yield local
    finally:
        local.close()
        local.emulator.stop()
        # the archive bucket keeps its locked versions for a day: it stays in the session's temporary store
        for name in (local.queue_bucket, local.emulator.internal_bucket):
            seaweed.delete_bucket(name)


def test_setup_buckets_creates_the_archive_bucket_with_worm_versioning_and_a_default_retention(worm_cloud):
    cloud = worm_cloud
    report = cloud.setup_report["buckets"]
    assert report[cloud.archive_bucket]["created"] and report[cloud.archive_bucket]["versioning"]
    assert report[cloud.archive_bucket]["worm"] == {"mode": "COMPLIANCE", "days": 1, "was_days": None}
    assert "worm" not in report[cloud.queue_bucket] and not report[cloud.queue_bucket]["versioning"]

    setup = _v4_obs(cloud.seaweed)
    lock = setup.client.getBucketObjectLock(cloud.archive_bucket)
    assert lock.status == 200 and lock.body.objectLockEnabled == "Enabled"
    assert (str(lock.body.rule.days), lock.body.rule.mode) == ("1", "COMPLIANCE")
    assert setup.client.getBucketVersioning(cloud.archive_bucket).body == "Enabled"

    # again: idempotent; a longer retention extends the default; a shorter one is refused
    again = setup_buckets(setup, cloud.config(), _worm(3), JsonLogger())["buckets"]
    assert again[cloud.archive_bucket]["created"] is False
    assert again[cloud.archive_bucket]["worm"] == {"mode": "COMPLIANCE", "days": 3, "was_days": 1}
    with pytest.raises(SetupError, match="default retention is 3 days; setup-buckets does not shorten it"):
        setup_buckets(setup, cloud.config(), _worm(2), JsonLogger())


def test_setup_buckets_refuses_worm_on_an_existing_bucket_without_it(seaweed, bucket, monkeypatch):
    env = {"DCS_ENDPOINT": "http://127.0.0.1:9", "PROJECT_ID": "0123456789abcdef", "INSTANCE_TAGS": "a=b",
           "OBS_ENDPOINT": seaweed.endpoint, "OBS_PATH_STYLE": "true", "ARCHIVE_BUCKET": bucket,
           "QUEUE_BUCKET": f"{bucket}-q"}
    setup = _v4_obs(seaweed)
    with pytest.raises(SetupError, match=f"bucket {bucket} exists without WORM"):
        setup_buckets(setup, load_config(env), _worm(30), JsonLogger())
    assert setup.client.getBucketObjectLock(bucket).status == 404, "still no object lock"
    assert setup.client.headBucket(f"{bucket}-q").status == 404, "refused before anything was created"


def test_the_open_days_partial_copy_in_a_worm_bucket_is_hidden_by_a_delete_marker_and_stays_locked(worm_cloud):
    cloud = worm_cloud
    emu = cloud.emulator
    inst = emu.add_instance(name="single", tags=TAGS, cache_mode="single")
    node = inst.nodes[0]
    day = emu.today().isoformat()
    noon = datetime.fromisoformat(f"{day}T12:00:00+08:00")
    emu.clock.set(noon)
    pipeline(cloud, ARCHIVE_OPEN_DAY="true")
    stem = f"{ARCHIVE}{inst.instance_id}/{day}/{node.group_name}/redis_{node.replication_ip}_{day}.log"
    partial = cloud.read_archived(stem + ".partial.gz")
    assert partial.metadata["copy"] == "partial"
    assert partial.metadata["object-lock-mode"] == "COMPLIANCE", "the bucket's default retention applies"

    emu.clock.set(noon + timedelta(hours=14))
    pipeline(cloud, ARCHIVE_OPEN_DAY="true")
    assert stem + ".partial.gz" not in cloud.archive_keys(), "the partial copy no longer lists"
    final = cloud.read_archived(stem + ".gz")
    assert final.metadata["copy"] == "final" and final.metadata["object-lock-mode"] == "COMPLIANCE"
    assert final.data == emu.log_bytes(inst.instance_id, node.replication_ip, day)

    # its delete added a marker; the version itself stays until its retention ends, and cannot be deleted
    versions, markers = _versions(cloud.obs_client, cloud.archive_bucket, stem + ".partial.gz")
    assert len(versions) == 1 and len(markers) == 1 and markers[0].isLatest
    refused = cloud.obs_client.deleteObject(cloud.archive_bucket, stem + ".partial.gz",
                                            versionId=versions[0].versionId)
    assert refused.status == 403 and refused.errorCode == "AccessDenied"

    # an overwrite of a final copy is a new version: the locked original is still there, and readable
    original = cloud.obs.get_bytes(cloud.archive_bucket, stem + ".gz")
    cloud.obs.put_bytes(cloud.archive_bucket, stem + ".gz", b"tampered")
    versions, _ = _versions(cloud.obs_client, cloud.archive_bucket, stem + ".gz")
    first = next(v for v in versions if not v.isLatest)
    kept = cloud.obs_client.getObject(cloud.archive_bucket, stem + ".gz", loadStreamInMemory=True,
                                      getObjectRequest=GetObjectRequest(versionId=first.versionId))
    assert kept.status == 200 and kept.body.buffer == original
    assert cloud.obs_client.deleteObject(cloud.archive_bucket, stem + ".gz",
                                         versionId=first.versionId).status == 403


# --- encryption on a SeaweedFS with SSE ---------------------------------------------------------------------------


class SseSeaweedFS(SeaweedFS):
    """A SeaweedFS with SSE-S3 (a key-encryption key in security.toml, read from its working directory as
    master.toml is) and SSE-KMS (its local KMS provider, declared in the `kms` block of the S3 configuration)."""

    def _launch(self) -> None:
        workdir = Path(self.workdir)
        (workdir / "security.toml").write_text(f'[s3.sse]\nkek = "{os.urandom(32).hex()}"\n')
        config_path = workdir / "s3.json"
        config = json.loads(config_path.read_text())
        config["kms"] = {"default_provider": "local", "providers": {"local": {"type": "local"}}}
        config_path.write_text(json.dumps(config))
        super()._launch()


@pytest.fixture(scope="module")
def sse_store():
    with SseSeaweedFS() as store:
        yield store


@pytest.fixture
def sse_cloud(sse_store, monkeypatch):
    suffix = uuid.uuid4().hex[:10]
    local = _local_cloud(sse_store, monkeypatch, f"archive-{suffix}", f"queue-{suffix}")
    local.create_buckets()
    try:
        yield local
    finally:
        local.close()
        local.emulator.stop()
        for name in (local.archive_bucket, local.queue_bucket, local.emulator.internal_bucket):
            sse_store.delete_bucket(name)


@pytest.mark.parametrize("mode, expected", [("kms", "aws:kms"), ("obs", "AES256")])
def test_every_archived_object_single_put_and_multipart_and_every_manifest_is_encrypted(sse_cloud, monkeypatch,
                                                                                       mode, expected):
    cloud = sse_cloud
    emu = cloud.emulator
    yesterday = emu.today() - timedelta(days=1)
    big = emu.add_instance(name="big", tags=TAGS, cache_mode="single", log_days=[yesterday], log_size=7 * 2**20)
    small = emu.add_instance(name="small", tags=TAGS, cache_mode="ha", replicas=2, log_days=[yesterday])
    settings = {"ARCHIVE_ENCRYPTION": mode, **({"ARCHIVE_KMS_KEY_ID": KMS_KEY} if mode == "kms" else {}),
                "ARCHIVE_COMPRESSION": "none", "SINGLE_PUT_MAX_MB": "1", "PART_SIZE_MB": "5"}
    for name, value in settings.items():  # the functions' environment, which the manifest writer reads
        monkeypatch.setenv(name, value)

    pipeline(cloud, **settings)
    cloud.run_collector(action="sweep", **settings)  # the settled day gets its manifest

    assert len(cloud.archive_keys()) == 3
    multipart = []
    for inst in (big, small):
        for node in inst.nodes:
            name = f"redis_{node.replication_ip}_{yesterday}.log"
            key = f"{ARCHIVE}{inst.instance_id}/{yesterday}/{node.group_name}/{name}"
            archived = cloud.read_archived(key)
            assert archived.data == emu.log_bytes(inst.instance_id, node.replication_ip, yesterday.isoformat())
            assert archived.metadata["server-side-encryption"] == expected, key
            assert ("server-side-encryption-aws-kms-key-id" in archived.metadata) == (mode == "kms")
            if "sha256" not in archived.metadata:  # only a single PUT carries it (multipart: the ledger does)
                multipart.append(inst.instance_id)
    assert multipart == [big.instance_id], "the big file went in parts, the small ones in one PUT each"

    manifests = cloud.manifest_keys()
    assert manifest_key(ARCHIVE, yesterday.isoformat()) in manifests
    for key in manifests:
        assert cloud.obs.head(cloud.archive_bucket, key)["server-side-encryption"] == expected, key


def test_setup_buckets_sets_the_archive_buckets_default_encryption(sse_store, sse_cloud):
    cloud = sse_cloud
    setup = _v4_obs(sse_store)
    report = setup_buckets(setup, cloud.config(), _worm(None), JsonLogger(), Encryption("obs"))["buckets"]
    assert report[cloud.archive_bucket]["encryption"] == {"mode": "obs", "algorithm": "AES256", "kms_key_id": None}
    assert "encryption" not in report[cloud.queue_bucket]
    assert setup.client.getBucketEncryption(cloud.archive_bucket).body.encryption == "AES256"
    # an upload without any encryption header is encrypted by the bucket's default
    cloud.obs.put_bytes(cloud.archive_bucket, f"{ARCHIVE}plain.txt", b"no header")
    assert cloud.obs.head(cloud.archive_bucket, f"{ARCHIVE}plain.txt")["server-side-encryption"] == "AES256"

    setup_buckets(setup, cloud.config(), _worm(None), JsonLogger(), Encryption("kms", KMS_KEY))
    default = setup.client.getBucketEncryption(cloud.archive_bucket).body
    assert (default.encryption, default.key) == ("kms", KMS_KEY), "the SDK reads aws:kms back as kms"
    cloud.obs.put_bytes(cloud.archive_bucket, f"{ARCHIVE}plain-2.txt", b"no header")
    assert cloud.obs.head(cloud.archive_bucket, f"{ARCHIVE}plain-2.txt")["server-side-encryption"] == "aws:kms"


# --- the OBS protocol, at the request level -----------------------------------------------------------------------


@pytest.fixture
def server(monkeypatch):
    route_localtest_to_loopback(monkeypatch)
    store = RecordingObs().start()
    yield store
    store.stop()


def _config(server: RecordingObs, **env: str):
    return load_config({"DCS_REGION": "cn-north-4", "PROJECT_ID": "0123456789abcdef", "INSTANCE_TAGS": "a=b",
                        "OBS_ENDPOINT": server.endpoint, "ARCHIVE_BUCKET": "archive-bkt",
                        "QUEUE_BUCKET": "queue-bkt", **env})


def _bucket_setting(server: RecordingObs, bucket: str, name: str) -> ET.Element:
    (put,) = [r for r in server.calls("PUT") if r.bucket == bucket and r.key == "" and name in r.query]
    return ET.fromstring(put.body)


def _text(root: ET.Element, path: str) -> str:
    found = root.find(path)
    assert found is not None, (path, ET.tostring(root))
    return found.text or ""


def test_setup_buckets_in_the_obs_protocol_creates_a_worm_bucket_and_sets_retention_and_encryption(server):
    obs = Obs(build_client(server.endpoint, CREDS))
    setup_buckets(obs, _config(server), Retention(worm_days=2555), JsonLogger(), Encryption("kms", "key-1"))

    creates = {r.bucket: r for r in server.calls("PUT") if r.key == "" and not r.query}
    assert set(creates) == {"archive-bkt", "queue-bkt"}
    assert creates["archive-bkt"].headers["x-obs-bucket-object-lock-enabled"] == "true"
    assert creates["archive-bkt"].headers["authorization"].startswith("OBS ")
    assert "x-obs-bucket-object-lock-enabled" not in creates["queue-bkt"].headers, "the queue is not WORM"

    lock = _bucket_setting(server, "archive-bkt", "object-lock")
    assert _text(lock, "ObjectLockEnabled") == "Enabled"
    assert (_text(lock, "Rule/DefaultRetention/Mode"), _text(lock, "Rule/DefaultRetention/Days")) == \
        ("COMPLIANCE", "2555")
    assert _text(_bucket_setting(server, "archive-bkt", "versioning"), "Status") == "Enabled"
    encryption = _bucket_setting(server, "archive-bkt", "encryption")
    assert _text(encryption, "Rule/ApplyServerSideEncryptionByDefault/SSEAlgorithm") == "kms"
    assert _text(encryption, "Rule/ApplyServerSideEncryptionByDefault/KMSMasterKeyID") == "key-1"
    order = [next(iter(r.query), "create") for r in server.calls("PUT") if r.bucket == "archive-bkt"]
    assert order.index("create") < order.index("object-lock"), order


def test_the_cli_setup_buckets_options_reach_the_requests_and_refuse_what_cannot_work(server, monkeypatch, capsys):
    for name, value in {"DCS_REGION": "cn-north-4", "PROJECT_ID": "0123456789abcdef", "OBS_ENDPOINT": server.endpoint,
                        "ARCHIVE_BUCKET": "archive-bkt", "QUEUE_BUCKET": "queue-bkt", "ARCHIVE_ENCRYPTION": "kms",
                        "ARCHIVE_KMS_KEY_ID": "key-from-config", "HUAWEICLOUD_SDK_AK": CREDS.ak,
                        "HUAWEICLOUD_SDK_SK": CREDS.sk}.items():
        monkeypatch.setenv(name, value)
    assert shared_cli.main(["setup-buckets", "--worm-days", "365", "--encryption", "kms"]) == 0
    report = json.loads(capsys.readouterr().out)["buckets"]["archive-bkt"]
    assert report["worm"]["days"] == 365 and report["encryption"]["kms_key_id"] == "key-from-config"
    assert _text(_bucket_setting(server, "archive-bkt", "encryption"),
                 "Rule/ApplyServerSideEncryptionByDefault/KMSMasterKeyID") == "key-from-config"

    assert shared_cli.main(["setup-buckets", "--encryption", "obs", "--kms-key-id", "k"]) == 2
    assert "--kms-key-id: only with --encryption kms" in capsys.readouterr().err
    monkeypatch.setenv("QUEUE_BUCKET", "archive-bkt")
    assert shared_cli.main(["setup-buckets", "--worm-days", "30"]) == 2
    assert "set QUEUE_BUCKET to another bucket" in capsys.readouterr().err


class _LinkSession:
    """A requests.Session stand-in serving one download link's bytes."""

    def __init__(self, data: bytes) -> None:
        self.data = data

    def get(self, url: str, **kwargs: Any) -> Any:
        data, pos = self.data, [0]

        class Raw:
            def read(self, size: int, decode_content: bool = False) -> bytes:
                out = data[pos[0]:pos[0] + size]
                pos[0] += len(out)
                return out

        class Response:
            status_code = 200
            headers = {"Content-Length": str(len(data))}
            raw = Raw()

            def __enter__(self) -> Any:
                return self

            def __exit__(self, *exc: object) -> None:
                pass

        return Response()


def _copy(obs: Obs, key: str, data: bytes, encryption: Encryption) -> Any:
    return copy_link(_LinkSession(data), "https://link", obs, "archive-bkt", key, compression="none",
                     metadata={"source-id": "RL-1"}, part_size=5 * 2**20, single_put_max=4 * 2**20,
                     encryption=encryption)


SSE_HEADERS = ("server-side-encryption", "server-side-encryption-kms-key-id", "server-side-encryption-aws-kms-key-id")


def _sse(request: Any) -> dict:
    return {k: v for k, v in request.headers.items() if any(k.endswith(h) for h in SSE_HEADERS)}


def test_sse_kms_headers_go_on_the_single_put_and_the_multipart_initiation_in_the_obs_protocol(server):
    obs = Obs(build_client(server.endpoint, CREDS))
    kms = Encryption("kms", "0d0466b0-e727-4d9c-b35d-f84bb474a37f")
    small = b"1:M 21 Nov 2026 10:00:00.000 * Ready to accept connections\n" * 100
    big = bytes(range(256)) * (48 * 1024)  # 12 MiB: three parts
    assert not _copy(obs, "logs/small.log", small, kms).multipart
    assert _copy(obs, "logs/big.log", big, kms).multipart

    (put,) = [r for r in server.calls("PUT") if r.key == "logs/small.log"]
    expected = {"x-obs-server-side-encryption": "kms",
                "x-obs-server-side-encryption-kms-key-id": "0d0466b0-e727-4d9c-b35d-f84bb474a37f"}
    assert _sse(put) == expected and put.body == small
    initiate, complete = server.calls("POST")
    assert "uploads" in initiate.query and _sse(initiate) == expected
    parts = [r for r in server.calls("PUT") if "partNumber" in r.query]
    assert len(parts) == 3 and not any(_sse(p) for p in parts) and not _sse(complete), \
        "parts and completion carry no encryption header (OBS takes it at initiation)"
    assert server.objects["logs/big.log"].data == big


def test_sse_obs_is_x_obs_server_side_encryption_aes256_on_puts_and_initiations(server):
    obs = Obs(build_client(server.endpoint, CREDS))
    sse_obs = Encryption("obs")
    obs.put_bytes("archive-bkt", "logs/_manifest/2026-11-21.json", b"{}", encryption=sse_obs)
    obs.initiate_multipart("archive-bkt", "logs/big.log", encryption=sse_obs)
    obs.put_bytes("archive-bkt", "logs/plain", b"x")

    put_manifest, put_plain = server.calls("PUT")
    assert _sse(put_manifest) == {"x-obs-server-side-encryption": "AES256"}
    assert _sse(server.calls("POST")[0]) == {"x-obs-server-side-encryption": "AES256"}
    assert _sse(put_plain) == {}, "no encryption asked for: no header (the bucket's default applies)"


def test_in_the_s3_protocol_the_same_requests_carry_the_x_amz_names_and_values(server):
    # path style (an IP address as the server), as the local cloud: signature negotiation off, V2 signing
    obs = Obs(build_client(f"http://127.0.0.1:{server.server.server_address[1]}", CREDS, path_style=True))
    obs.put_bytes("archive-bkt", "logs/a", b"x", encryption=Encryption("kms", "key-1"))
    obs.put_bytes("archive-bkt", "logs/b", b"x", encryption=Encryption("obs"))
    obs.initiate_multipart("archive-bkt", "logs/c", encryption=Encryption("obs"))
    setup_buckets(obs, _config(server, OBS_ENDPOINT=f"http://127.0.0.1:{server.server.server_address[1]}",
                               OBS_PATH_STYLE="true"), Retention(worm_days=1), JsonLogger())

    kms_put, obs_put = [r for r in server.calls("PUT") if r.key.startswith("archive-bkt/logs/")]
    assert _sse(kms_put) == {"x-amz-server-side-encryption": "aws:kms",
                             "x-amz-server-side-encryption-aws-kms-key-id": "key-1"}
    assert _sse(obs_put) == {"x-amz-server-side-encryption": "AES256"}, "not the SDK's aws:AES256"
    assert _sse(server.calls("POST")[0]) == {"x-amz-server-side-encryption": "AES256"}
    (create,) = [r for r in server.calls("PUT") if r.key == "archive-bkt" and not r.query]
    assert create.headers["x-amz-bucket-object-lock-enabled"] == "true"
    assert not [h for h in create.headers if h.startswith("x-obs-")]


def test_an_unknown_encryption_mode_is_refused_before_any_request(server):
    obs = Obs(build_client(server.endpoint, CREDS))
    with pytest.raises(ValueError, match="unknown encryption mode"):
        obs.put_bytes("archive-bkt", "k", b"x", encryption=Encryption("sse-c"))
    assert server.calls("PUT") == []
