"""esdk-obs-python against SeaweedFS: the OBS calls the archiver relies on behave here as on OBS.

Also records what differs, so nobody trips on it twice: a path-style client signs V2 (`x-amz-*` headers, not
`x-obs-*`); user metadata comes back among the response headers with its prefix stripped and its name in
lower case; metadata values travel percent-encoded; OBS storage classes are mapped to their S3 names.
SeaweedFS lists open multipart uploads out of key order, so its ListMultipartUploads pages cannot be followed
by their markers: paging is tested against the recording server (tests/integration/test_obs_protocol.py).
SeaweedFS copies a COLD object like any other; the proxy in tests/localcloud/obs_proxy.py refuses it as OBS does.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
import time
from dataclasses import dataclass
from urllib.parse import unquote

import pytest
import requests
from obs import (
    CompleteMultipartUploadRequest,
    CompletePart,
    CopyObjectHeader,
    ListMultipartUploadsRequest,
    ObsClient,
    PutObjectHeader,
)

from shared.obs import Obs, ObsError
from tests.localcloud.obs_proxy import ColdRefusingProxy
from tests.localcloud.seaweed import GRPC_OFFSET, SeaweedFS, port_free

MIB = 1024 * 1024



def _ok(resp) -> None:
    assert resp.status < 300, (resp.status, resp.errorCode, resp.errorMessage)


def _get_bytes(obs, bucket: str, key: str) -> bytes:
    resp = obs.getObject(bucket, key, loadStreamInMemory=True)
    _ok(resp)
    return resp.body.buffer


def _raw_head(obs, bucket: str, key: str) -> requests.Response:
    """A HEAD by presigned URL: the headers as the server sends them, not as esdk renames them."""
    signed = obs.createSignedUrl("HEAD", bucket, key, expires=60)
    return requests.head(signed.signedUrl, headers=signed.actualSignedRequestHeaders, timeout=10)


# --- metadata -----------------------------------------------------------------------------------------------


def test_path_style_client_signs_v2_so_metadata_is_sent_as_amz_meta_headers(obs, bucket):
    # esdk switches a path-style client from the OBS signature to V2, and with it the header prefixes.
    assert obs.signature == "v2"
    _ok(obs.putContent(bucket, "meta/plain.log", b"payload", metadata={"source-id": "RL-1"}))

    raw = _raw_head(obs, bucket, "meta/plain.log")

    assert raw.status_code == 200
    assert raw.headers["x-amz-meta-source-id"] == "RL-1"
    assert "x-obs-meta-source-id" not in raw.headers


def test_head_returns_user_metadata_as_plain_lowercase_headers(obs, bucket):
    metadata = {"source-id": "RL-1", "Log-Day": "2026-11-21", "sha256": "ab" * 32}
    _ok(obs.putContent(bucket, "meta/obj.log", b"payload", metadata=metadata))

    head = obs.getObjectMetadata(bucket, "meta/obj.log")

    _ok(head)
    headers = dict(head.header)
    # esdk strips "x-amz-meta-" (and "x-amz-") from response header names: metadata sits beside the
    # ordinary headers, and a mixed-case name comes back in lower case.
    assert headers["source-id"] == "RL-1"
    assert headers["log-day"] == "2026-11-21"
    assert headers["sha256"] == "ab" * 32
    assert "Log-Day" not in headers
    assert head.body.contentLength == len(b"payload")


def test_non_ascii_metadata_travels_percent_encoded_and_esdk_decodes_it(obs, bucket):
    name = "生产-redis 01"
    _ok(obs.putContent(bucket, "meta/utf8.log", b"x", metadata={"instance-name": name}))

    assert dict(obs.getObjectMetadata(bucket, "meta/utf8.log").header)["instance-name"] == name
    wire = _raw_head(obs, bucket, "meta/utf8.log").headers["x-amz-meta-instance-name"]
    assert wire != name
    assert unquote(wire) == name


# --- multipart ----------------------------------------------------------------------------------------------


def test_multipart_upload_of_three_parts_completes_to_the_exact_bytes(obs, bucket):
    parts_data = [os.urandom(5 * MIB), os.urandom(5 * MIB + 17), b"tail of the log\n"]
    key = "mp/redis_192.168.0.142_2026-11-21.log.gz"
    init = obs.initiateMultipartUpload(bucket, key, metadata={"source-id": "RL-9"})
    _ok(init)
    upload_id = init.body.uploadId

    parts = []
    for number, data in enumerate(parts_data, start=1):
        resp = obs.uploadPart(bucket, key, number, upload_id, object=data)
        _ok(resp)
        parts.append(CompletePart(partNum=number, etag=resp.body.etag))
    listed = obs.listMultipartUploads(bucket, ListMultipartUploadsRequest(prefix="mp/"))
    assert [u.uploadId for u in listed.body.upload] == [upload_id]
    done = obs.completeMultipartUpload(bucket, key, upload_id, CompleteMultipartUploadRequest(parts=parts))
    _ok(done)

    whole = b"".join(parts_data)
    got = _get_bytes(obs, bucket, key)
    assert len(got) == len(whole)
    assert hashlib.sha256(got).hexdigest() == hashlib.sha256(whole).hexdigest()
    head = obs.getObjectMetadata(bucket, key)
    assert dict(head.header)["source-id"] == "RL-9"
    assert head.body.etag.strip('"').endswith("-3")
    assert obs.listMultipartUploads(bucket, ListMultipartUploadsRequest(prefix="mp/")).body.upload == []


def test_aborted_multipart_upload_leaves_no_upload_and_no_object(obs, bucket):
    key = "mp/aborted.log"
    init = obs.initiateMultipartUpload(bucket, key)
    _ok(init)
    upload_id = init.body.uploadId
    _ok(obs.uploadPart(bucket, key, 1, upload_id, object=os.urandom(5 * MIB)))

    _ok(obs.abortMultipartUpload(bucket, key, upload_id))

    listed = obs.listMultipartUploads(bucket, ListMultipartUploadsRequest(prefix="mp/"))
    _ok(listed)
    assert listed.body.upload == []
    assert obs.getObjectMetadata(bucket, key).status == 404
    assert obs.listObjects(bucket, prefix="mp/").body.contents == []


# --- listing ------------------------------------------------------------------------------------------------


def test_listing_by_prefix_pages_with_max_keys_and_marker(obs, bucket):
    inside = [f"jobs/pending/i-{n:02d}.json" for n in range(7)]
    outside = ["jobs/done/i-00.json", "jobsx/pending/i-00.json"]
    for key in inside + outside:
        _ok(obs.putContent(bucket, key, key))

    pages, seen, marker = [], [], None
    while True:
        resp = obs.listObjects(bucket, prefix="jobs/pending/", marker=marker, max_keys=3)
        _ok(resp)
        keys = [c.key for c in resp.body.contents]
        pages.append(keys)
        seen.extend(keys)
        if not resp.body.is_truncated:
            break
        marker = resp.body.next_marker or keys[-1]

    assert seen == sorted(inside)
    assert [len(p) for p in pages] == [3, 3, 1]


# --- credentials --------------------------------------------------------------------------------------------


def test_wrong_secret_key_is_refused_with_403_signature_mismatch(seaweed, bucket):
    bad = seaweed.client(secret_key="not-the-secret")
    try:
        put = bad.putContent(bucket, "denied.txt", b"x")
        head = bad.getObjectMetadata(bucket, "denied.txt")
    finally:
        bad.close()

    assert put.status == 403
    assert put.errorCode == "SignatureDoesNotMatch"
    assert head.status == 403


def test_unknown_access_key_is_refused_with_403(seaweed, obs, bucket):
    _ok(obs.putContent(bucket, "secret.txt", b"x"))
    bad = seaweed.client(access_key="AKUNKNOWN0000000000")
    try:
        got = bad.getObject(bucket, "secret.txt", loadStreamInMemory=True)
    finally:
        bad.close()

    assert got.status == 403
    assert got.errorCode == "InvalidAccessKeyId"


# --- storage class ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("asked", "stored"), [
    ("STANDARD", "STANDARD"),
    ("WARM", "STANDARD_IA"),  # esdk (V2 signature) sends the S3 name; SeaweedFS keeps and reports it
    ("COLD", "GLACIER"),
])
def test_storage_class_header_is_accepted_and_reported_under_its_s3_name(obs, bucket, asked, stored):
    key = f"sc/{asked}.log"
    _ok(obs.putContent(bucket, key, b"x", headers=PutObjectHeader(storageClass=asked)))

    head = obs.getObjectMetadata(bucket, key)

    assert head.body.storageClass == stored
    assert [c.storageClass for c in obs.listObjects(bucket, prefix=key).body.contents] == [stored]


def test_multipart_upload_keeps_the_storage_class_given_at_initiation(obs, bucket):
    key = "sc/multipart.log"
    init = obs.initiateMultipartUpload(bucket, key, storageClass="WARM")
    _ok(init)
    part = obs.uploadPart(bucket, key, 1, init.body.uploadId, object=b"small single part")
    _ok(part)
    _ok(obs.completeMultipartUpload(bucket, key, init.body.uploadId,
                                    CompleteMultipartUploadRequest(parts=[CompletePart(1, part.body.etag)])))

    assert obs.getObjectMetadata(bucket, key).body.storageClass == "STANDARD_IA"


# --- presigned URLs -----------------------------------------------------------------------------------------


def test_presigned_get_url_downloads_the_exact_bytes_with_requests(obs, bucket):
    data = os.urandom(300_000)
    key = "links/redis_10.0.0.1_2026-11-21.log"
    _ok(obs.putContent(bucket, key, data))
    signed = obs.createSignedUrl("GET", bucket, key, expires=60)

    headers = signed.actualSignedRequestHeaders
    with requests.get(signed.signedUrl, headers=headers, stream=True, timeout=10) as r:
        assert r.status_code == 200
        assert int(r.headers["Content-Length"]) == len(data)
        got = b"".join(r.iter_content(64 * 1024))

    assert got == data


def test_presigned_get_url_answers_403_once_expired(obs, bucket):
    _ok(obs.putContent(bucket, "links/expiring.log", b"soon gone"))
    signed = obs.createSignedUrl("GET", bucket, "links/expiring.log", expires=1)

    time.sleep(2.2)
    r = requests.get(signed.signedUrl, headers=signed.actualSignedRequestHeaders, timeout=10)

    assert r.status_code == 403
    assert "expired" in r.text.lower()


def test_presigned_get_url_signed_for_one_key_does_not_open_another(obs, bucket):
    _ok(obs.putContent(bucket, "links/mine.log", b"x"))
    _ok(obs.putContent(bucket, "links/other.log", b"y"))
    signed = obs.createSignedUrl("GET", bucket, "links/mine.log", expires=60)

    r = requests.get(signed.signedUrl.replace("/links/mine.log", "/links/other.log"), timeout=10)

    assert r.status_code == 403


# --- the launcher cleans up ---------------------------------------------------------------------------------


def _bindable(port: int) -> bool:
    return port_free(port)


@dataclass
class _StoppedStore:
    startup_seconds: float
    pgid: int
    ports: list[int]
    workdir: str
    listening_while_up: list[int]
    store: SeaweedFS


@pytest.fixture(scope="module")
def stopped_store():
    """A SeaweedFS of its own, started, looked at, and stopped again."""
    started = time.monotonic()
    store = SeaweedFS().start()
    startup = time.monotonic() - started
    print(f"SeaweedFS started in {startup:.1f} s")
    try:
        facts = _StoppedStore(startup, os.getpgid(store.process.pid), list(store.ports), store.workdir,
                              [p for p in store.ports if not _bindable(p)], store)
        assert facts.pgid == store.process.pid  # its own session, so stop() can signal the whole group
    finally:
        store.stop()
    return facts


@pytest.mark.slow
def test_stopped_seaweedfs_leaves_no_process_and_frees_its_ports(stopped_store):
    assert stopped_store.startup_seconds < 60
    assert stopped_store.listening_while_up == stopped_store.ports

    with pytest.raises(ProcessLookupError):
        os.killpg(stopped_store.pgid, 0)
    for port in stopped_store.ports:
        assert _bindable(port), port
        assert _bindable(port + GRPC_OFFSET), port + GRPC_OFFSET
    assert not os.path.exists(stopped_store.workdir)
    stopped_store.store.stop()  # stopping twice is harmless (fixtures stop in finally blocks)
    assert stopped_store.store.process is None


@pytest.mark.slow
def test_stopped_seaweedfs_leaves_no_files_in_tmp(stopped_store):
    tmp = tempfile.gettempdir()
    names = set(os.listdir(tmp))
    port_names = {str(p) for port in stopped_store.ports for p in (port, port + GRPC_OFFSET)}
    sockets = [n for n in names if n.startswith("seaweedfs-") and n.endswith(".sock")
               and n[:-len(".sock")].rsplit("-", 1)[-1] in port_names]
    glogs = [n for n in names if n.startswith("weed.") and n.endswith(f".{stopped_store.pgid}")]

    assert sockets == []
    assert glogs == []


# --- the store refuses what OBS refuses for Archive objects (tests/localcloud/obs_proxy.py) ----------------


@pytest.fixture
def cold_proxy(seaweed):
    with ColdRefusingProxy(seaweed) as proxy:
        yield proxy


def _proxied(seaweed, proxy):
    return ObsClient(access_key_id=seaweed.access_key, secret_access_key=seaweed.secret_key,
                     server=proxy.endpoint, path_style=True, max_retry_count=0, timeout=30)


@pytest.mark.parametrize("storage_class", ["COLD", "DEEP_ARCHIVE"])
def test_a_copy_of_an_archive_class_object_is_refused_with_invalid_object_state(seaweed, bucket, cold_proxy,
                                                                              storage_class):
    client = _proxied(seaweed, cold_proxy)
    try:
        _ok(client.putContent(bucket, "cold/obj.log", b"payload",
                              headers=PutObjectHeader(storageClass=storage_class)))
        resp = client.copyObject(bucket, "cold/obj.log", bucket, "cold/obj.log", metadata={"sha256": "x"},
                                 headers=CopyObjectHeader(directive="REPLACE"))
        with pytest.raises(ObsError) as info:
            Obs(client).replace_metadata(bucket, "cold/obj.log", {"sha256": "x"})
    finally:
        client.close()
    assert (resp.status, resp.errorCode) == (403, "InvalidObjectState")
    assert info.value.code == "InvalidObjectState" and info.value.status == 403
    assert len(cold_proxy.refused) == 2
    # the object itself is untouched: still there, without the metadata the copy would have written
    head = dict(seaweed_head(seaweed, bucket, "cold/obj.log"))
    assert "sha256" not in head


def test_a_copy_of_a_standard_object_passes_the_proxy_and_answers_an_etag(seaweed, bucket, cold_proxy):
    client = _proxied(seaweed, cold_proxy)
    try:
        _ok(client.putContent(bucket, "std/obj.log", b"payload"))
        etag = Obs(client).replace_metadata(bucket, "std/obj.log", {"sha256": "ab"})
    finally:
        client.close()
    assert etag
    assert dict(seaweed_head(seaweed, bucket, "std/obj.log"))["sha256"] == "ab"
    assert [r.method for r in cold_proxy.copies()] == ["PUT"] and cold_proxy.refused == []


def seaweed_head(seaweed, bucket: str, key: str) -> list:
    client = seaweed.client()
    try:
        head = client.getObjectMetadata(bucket, key)
    finally:
        client.close()
    _ok(head)
    return head.header
