"""The OBS calls the project makes, sent by esdk-obs-python as in production, against a recording server.

The local cloud runs SeaweedFS in path style, where the SDK turns signature negotiation off and signs V2 with
`x-amz-*` headers. In production (`path_style=False`) it asks the bucket for its API version (`HEAD
/?apiversion`, answered with `x-obs-api: 3.0` by OBS), then signs the OBS way and sends `x-obs-*` headers
(metadata `x-obs-meta-*`, storage classes under their OBS names WARM/COLD): see `_getApiVersion` and the
`obs`/`v2` adapters in esdk-obs-python's `client.py` and `convertor.py`. This file runs the project's own
client (`shared.obs.build_client` and `Obs`) in that mode against a tiny HTTP(S) server on 127.0.0.1 that
answers plausibly and records what it receives (tests/localcloud/recording_obs.py), so a header mapping mistake
shows up here, not in production.

Bucket host names (`<bucket>.obs.localtest`) resolve to 127.0.0.1 through a patched `socket.getaddrinfo`:
virtual-hosted style, as in production (an IP address as the server would make the SDK fall back to path
style and V2). Also here: the TLS checks (certificate chain and host name) and connection reuse, which need a
server of their own.
"""

from __future__ import annotations

import hashlib
import shutil
import ssl
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

import shared.obs as shared_obs
from shared.obs import Obs, ObsError, build_client
from shared.runtime import Credentials
from shared.transfer import copy_link
from tests.localcloud.recording_obs import DOMAIN, RecordingObs, route_localtest_to_loopback

BUCKET = "archive-bkt"
CREDS = Credentials("AKPROTOCOLTEST0000000", "sk-protocol-test")


# --- fixtures ---------------------------------------------------------------------------------------------------


@pytest.fixture(autouse=True)
def _resolve_localtest(monkeypatch):
    """`*.obs.localtest` resolves to 127.0.0.1; every other name as before."""
    route_localtest_to_loopback(monkeypatch)


@pytest.fixture
def server():
    store = RecordingObs().start()
    yield store
    store.stop()


def _obs(store: RecordingObs, **kwargs: Any) -> Obs:
    client = build_client(store.endpoint, CREDS, **kwargs)
    return Obs(client)


# --- the headers of every call --------------------------------------------------------------------------------


def test_the_client_negotiates_the_obs_protocol_and_signs_the_obs_way(server):
    obs = _obs(server)
    obs.put_json(BUCKET, "jobs/pending/i-1.json", {"a": 1})

    probes = [r for r in server.requests if "apiversion" in r.query]
    assert probes and probes[0].method == "HEAD" and probes[0].bucket == BUCKET
    (put,) = server.calls("PUT")
    assert put.bucket == BUCKET and put.key == "jobs/pending/i-1.json", "virtual-hosted style, as in production"
    assert put.headers["authorization"].startswith("OBS AKPROTOCOLTEST0000000:")
    assert put.headers["content-type"] == "application/json"
    assert not [h for h in put.headers if h.startswith("x-amz-")]


def test_a_single_put_copy_sends_metadata_as_x_obs_meta_and_the_storage_class_by_its_obs_name(server):
    obs = _obs(server)
    data = b"1:M 21 Nov 2026 10:00:00.000 * Ready to accept connections\n" * 100
    session = _LinkSession(data)
    result = copy_link(session, "https://link", obs, BUCKET, "logs/i-1/2026-11-21/g/redis.log", compression="none",
                       metadata={"source-id": "RL-1", "log-day": "2026-11-21"}, storage_class="COLD")

    (put,) = server.calls("PUT")
    assert put.obs_headers() == {
        "x-obs-meta-source-id": "RL-1", "x-obs-meta-log-day": "2026-11-21",
        "x-obs-meta-original-size": str(len(data)), "x-obs-meta-sha256": hashlib.sha256(data).hexdigest(),
        "x-obs-storage-class": "COLD",
    }
    assert put.headers["content-type"] == "text/plain" and int(put.headers["content-length"]) == len(data)
    assert put.body == data and result.sha256_in_metadata
    assert server.calls("POST") == [], "no multipart, no copy"


@pytest.mark.parametrize("storage_class", ["WARM", "COLD"])
def test_a_multipart_copy_sends_metadata_and_storage_class_at_initiation_and_nothing_after(server, storage_class):
    obs = _obs(server)
    data = bytes(range(256)) * (48 * 1024)  # 12 MiB: three parts of 5 MiB at most
    result = copy_link(_LinkSession(data), "https://link", obs, BUCKET, "logs/big.log", compression="none",
                       metadata={"source-id": "RL-9"}, storage_class=storage_class, part_size=5 * 2**20,
                       single_put_max=4 * 2**20)

    initiate, complete = server.calls("POST")
    assert "uploads" in initiate.query
    assert initiate.obs_headers() == {"x-obs-meta-source-id": "RL-9", "x-obs-meta-original-size": str(len(data)),
                                      "x-obs-storage-class": storage_class}
    parts = server.calls("PUT")
    assert [int(p.query["partNumber"]) for p in sorted(parts, key=lambda p: int(p.query["partNumber"]))] == [1, 2, 3]
    assert all(p.query["uploadId"] == complete.query["uploadId"] for p in parts)
    assert all(not p.obs_headers() for p in parts), "parts carry no metadata"
    assert b"<PartNumber>3</PartNumber>" in complete.body
    assert [r for r in server.calls() if "x-obs-copy-source" in r.headers] == [], "never a copy"
    assert server.objects["logs/big.log"].data == data and result.multipart


def test_head_get_list_and_delete_read_back_what_obs_sends(server):
    obs = _obs(server)
    obs.put_buffer(BUCKET, "logs/a.log", b"abc", metadata={"sha256": "ab" * 32, "instance-name": "生产 1"},
                   storage_class="WARM")

    head = obs.head(BUCKET, "logs/a.log")
    assert head["sha256"] == "ab" * 32 and head["instance-name"] == "生产 1"
    assert head["storage-class"] == "WARM"
    assert obs.get_bytes(BUCKET, "logs/a.log") == b"abc"
    assert [o.key for o in obs.list(BUCKET, "logs/")] == ["logs/a.log"]
    obs.delete(BUCKET, "logs/a.log")
    assert obs.head(BUCKET, "logs/missing.log") is None and obs.get_bytes(BUCKET, "logs/a.log") is None

    (lst,) = [r for r in server.calls("GET") if r.key == ""]
    assert lst.query["prefix"] == "logs/" and lst.query["max-keys"] == "1000"
    (delete,) = server.calls("DELETE")
    assert delete.key == "logs/a.log"
    (put,) = server.calls("PUT")
    assert put.headers["x-obs-meta-instance-name"] == "%E7%94%9F%E4%BA%A7 1", "non-ASCII travels percent-encoded"


def test_a_copy_sends_the_obs_copy_headers_and_fails_without_an_etag_in_its_answer(server):
    obs = _obs(server)
    obs.put_bytes(BUCKET, "k", b"x")
    assert obs.replace_metadata(BUCKET, "k", {"sha256": "ab"}) == "copied"
    (copy,) = [r for r in server.calls("PUT") if "x-obs-copy-source" in r.headers]
    assert copy.headers["x-obs-copy-source"] == f"/{BUCKET}/k"
    assert copy.headers["x-obs-metadata-directive"] == "REPLACE"
    assert copy.headers["x-obs-meta-sha256"] == "ab"

    server.copy_answers_etag = False  # 200, and a body without an ETag: the copy did not happen (obs_04_0082)
    with pytest.raises(ObsError) as info:
        obs.replace_metadata(BUCKET, "k", {"sha256": "cd"})
    assert info.value.code == "CopyWithoutETag" and info.value.status == 200


def test_open_uploads_follow_the_listing_markers_to_the_last_page(server, monkeypatch):
    monkeypatch.setattr(shared_obs, "UPLOADS_PAGE", 2)
    obs = _obs(server)
    assert obs.open_uploads(BUCKET, "logs/") == []
    opened = sorted((f"logs/k{n}", obs.initiate_multipart(BUCKET, f"logs/k{n}")) for n in range(3))
    same = sorted(("logs/same", obs.initiate_multipart(BUCKET, "logs/same")) for _ in range(3))

    assert sorted(obs.open_uploads(BUCKET, "logs/")) == sorted(opened + same)
    listings = [r for r in server.calls("GET") if "uploads" in r.query][1:]
    assert len(listings) == 3 and listings[1].query["key-marker"] and listings[1].query["upload-id-marker"]
    assert obs.abort_open_uploads(BUCKET, "logs/same") == 3
    assert sorted(obs.open_uploads(BUCKET, "logs/")) == opened


def test_a_listing_whose_markers_do_not_advance_fails_instead_of_looping(server, monkeypatch):
    monkeypatch.setattr(shared_obs, "UPLOADS_PAGE", 2)
    server.uploads_ignore_markers = True
    obs = _obs(server)
    for n in range(3):
        obs.initiate_multipart(BUCKET, f"logs/k{n}")
    with pytest.raises(ObsError) as info:
        obs.open_uploads(BUCKET, "logs/")
    assert info.value.code == "MarkerNotAdvancing"


# --- connections ----------------------------------------------------------------------------------------------


def test_connections_are_kept_alive_and_reused(server):
    obs = _obs(server)
    for n in range(6):
        obs.put_bytes(BUCKET, f"k{n}", b"x")
        obs.get_bytes(BUCKET, f"k{n}")

    calls = server.calls()
    assert len(calls) == 12
    assert all(r.headers.get("connection", "").lower() != "close" for r in calls)
    assert {r.connection for r in calls} == {calls[0].connection}, "one connection for sequential calls"


def test_a_kept_connection_serves_another_bucket_under_that_buckets_host_name(server):
    obs = _obs(server)
    for bucket in (BUCKET, "queue-bkt", BUCKET, "queue-bkt"):
        obs.put_bytes(bucket, f"{bucket}/k", b"x")

    calls = server.calls("PUT")
    assert [r.bucket for r in calls] == [BUCKET, "queue-bkt", BUCKET, "queue-bkt"]
    assert all(r.key == f"{r.bucket}/k" for r in calls)


def test_a_connection_idle_past_the_keepalive_limit_is_not_reused_for_a_streamed_put(server, monkeypatch):
    monkeypatch.setattr(shared_obs, "KEEPALIVE_IDLE_SECONDS", 0.05)
    server.close_after_each_response = True  # the server drops every connection it kept, without saying so
    obs = _obs(server)
    obs.put_bytes(BUCKET, "first", b"x")
    time.sleep(0.2)
    # a stream cannot be replayed, so the SDK does not retry it: sent on the dead connection, it would fail
    obs.put_buffer(BUCKET, "second", bytearray(b"y" * 1000))
    assert server.objects["second"].data == b"y" * 1000


# --- TLS --------------------------------------------------------------------------------------------------------


@dataclass
class _Pki:
    ca: Path
    good: ssl.SSLContext  # a certificate for the bucket's host, signed by the CA
    other_host: ssl.SSLContext  # signed by the CA, for another host
    self_signed: ssl.SSLContext  # for the bucket's host, signed by nobody known


@pytest.fixture(scope="module")
def pki(tmp_path_factory) -> _Pki:
    if shutil.which("openssl") is None:
        pytest.skip("openssl is needed to make test certificates")
    d = tmp_path_factory.mktemp("pki")

    def run(*args: str) -> None:
        subprocess.run(["openssl", *args], cwd=d, check=True, capture_output=True)

    run("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out", "ca.pem", "-days", "2",
        "-subj", "/CN=localtest test CA")

    def leaf(name: str, host: str, signed: bool) -> ssl.SSLContext:
        (d / f"{name}.ext").write_text(f"subjectAltName=DNS:{host}\n")
        if signed:
            run("req", "-newkey", "rsa:2048", "-nodes", "-keyout", f"{name}.key", "-out", f"{name}.csr",
                "-subj", f"/CN={host}")
            run("x509", "-req", "-in", f"{name}.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial",
                "-out", f"{name}.pem", "-days", "2", "-extfile", f"{name}.ext")
        else:
            run("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", f"{name}.key", "-out", f"{name}.pem",
                "-days", "2", "-subj", f"/CN={host}", "-addext", f"subjectAltName=DNS:{host}")
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(d / f"{name}.pem", d / f"{name}.key")
        return context

    host = f"{BUCKET}.{DOMAIN}"
    return _Pki(d / "ca.pem", leaf("good", host, True), leaf("other", "elsewhere.localtest", True),
                leaf("self", host, False))


def _tls_server(context: ssl.SSLContext) -> RecordingObs:
    return RecordingObs(tls=context).start()


def test_tls_a_certificate_signed_by_a_known_ca_for_the_host_is_accepted(pki):
    store = _tls_server(pki.good)
    try:
        _obs(store, ca_bundle=str(pki.ca)).put_bytes(BUCKET, "k", b"x")
    finally:
        store.stop()
    assert store.objects["k"].data == b"x"


def test_tls_a_certificate_no_known_ca_signed_is_refused(pki):
    store = _tls_server(pki.self_signed)
    try:
        with pytest.raises(ObsError) as info:
            _obs(store).put_bytes(BUCKET, "k", b"x")  # the default bundle: certifi's
    finally:
        store.stop()
    assert "CERTIFICATE_VERIFY_FAILED" in str(info.value) or "certificate verify failed" in str(info.value)
    assert store.objects == {}


def test_tls_a_certificate_of_another_host_is_refused_even_from_a_known_ca(pki):
    store = _tls_server(pki.other_host)
    try:
        with pytest.raises(ObsError) as info:
            _obs(store, ca_bundle=str(pki.ca)).put_bytes(BUCKET, "k", b"x")
    finally:
        store.stop()
    assert "hostname" in str(info.value).lower() or "match" in str(info.value).lower()
    assert store.objects == {}


# --- helpers --------------------------------------------------------------------------------------------------


class _LinkSession:
    """A requests.Session stand-in serving one download link's bytes."""

    def __init__(self, data: bytes) -> None:
        self.data = data

    def get(self, url: str, **kwargs: Any) -> Any:
        data = self.data

        class Raw:
            pos = 0

            def read(self, size: int, decode_content: bool = False) -> bytes:
                out = data[self.pos:self.pos + size]
                self.pos += len(out)
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
