"""A thin proxy in front of SeaweedFS that refuses what OBS refuses for Archive (COLD) objects, and records
every request it passes on.

SeaweedFS keeps an object's storage class but does not enforce it: it copies a GLACIER (COLD) object like any
other. OBS refuses to copy an Archive object until it is restored, with `403 InvalidObjectState` (OBS error code
page obs_errorcode_0010; the shared reference "Real-cloud-facts"). Pointing a function's `OBS_ENDPOINT` at this
proxy makes the local cloud answer the same way, so a write path that depends on copying an object shows up.

Requests are forwarded unchanged (same path, query, headers, Host), so path-style V2 signatures stay valid;
bodies are read whole (test-sized), chunked bodies are de-chunked. HTTP/1.1 with keep-alive, as the SDK uses.
"""

from __future__ import annotations

import http.client
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Optional
from urllib.parse import unquote, urlsplit

# Archive classes under their OBS and S3 names (esdk-obs-python sends GLACIER for COLD when it signs V2)
ARCHIVE_CLASSES = {"COLD", "GLACIER", "DEEP_ARCHIVE"}
COPY_SOURCE_HEADERS = ("x-amz-copy-source", "x-obs-copy-source")
HOP_BY_HOP = {"connection", "keep-alive", "proxy-connection", "transfer-encoding", "te", "trailer", "upgrade"}
OWN_HEADERS = {"content-length", "date", "server"}  # set by this server itself


@dataclass(frozen=True)
class Recorded:
    method: str
    path: str  # without the query
    query: str
    headers: dict  # lower-case names
    status: int

    @property
    def is_copy(self) -> bool:
        return self.method == "PUT" and any(h in self.headers for h in COPY_SOURCE_HEADERS)


@dataclass
class ColdRefusingProxy:
    """Use as a context manager, or start()/stop(); `endpoint` is what OBS_ENDPOINT takes."""

    seaweed: Any
    requests: list[Recorded] = field(default_factory=list)
    refused: list[Recorded] = field(default_factory=list)
    _server: Optional[ThreadingHTTPServer] = None
    _thread: Optional[threading.Thread] = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def endpoint(self) -> str:
        assert self._server is not None, "not started"
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def copies(self) -> list[Recorded]:
        with self._lock:
            return [r for r in self.requests if r.is_copy]

    def start(self) -> ColdRefusingProxy:
        upstream = urlsplit(self.seaweed.endpoint)
        proxy = self

        class Handler(_Forwarder):
            upstream_host = upstream.hostname or "127.0.0.1"
            upstream_port = upstream.port or 80
            owner = proxy

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> ColdRefusingProxy:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # --- what the handler asks of its owner ---------------------------------------------------------------
    def record(self, entry: Recorded) -> None:
        with self._lock:
            self.requests.append(entry)
            if entry.status == 403 and entry.is_copy:
                self.refused.append(entry)

    def storage_class(self, bucket: str, key: str) -> Optional[str]:
        """The stored class of an object (its S3 name as SeaweedFS reports it), None when missing."""
        client = self.seaweed.client()
        try:
            head = client.getObjectMetadata(bucket, key)
        finally:
            client.close()
        if head.status >= 300:
            return None
        return (head.body.storageClass or "STANDARD").upper()


class _Forwarder(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    upstream_host = "127.0.0.1"
    upstream_port = 80
    owner: ColdRefusingProxy

    def log_message(self, format: str, *args: Any) -> None:  # quiet
        pass

    def do_GET(self) -> None:
        self._handle()

    def do_HEAD(self) -> None:
        self._handle()

    def do_PUT(self) -> None:
        self._handle()

    def do_POST(self) -> None:
        self._handle()

    def do_DELETE(self) -> None:
        self._handle()

    def _body(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            out = bytearray()
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass  # trailers
                    return bytes(out)
                out += self.rfile.read(size)
                self.rfile.readline()
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def _handle(self) -> None:
        body = self._body()
        headers = {k.lower(): v for k, v in self.headers.items()}
        path, _, query = self.path.partition("?")
        source = next((headers[h] for h in COPY_SOURCE_HEADERS if h in headers), None)
        if self.command == "PUT" and source is not None:
            src_bucket, _, src_key = unquote(source.split("?versionId=")[0]).lstrip("/").partition("/")
            stored = self.owner.storage_class(src_bucket, src_key)
            if stored in ARCHIVE_CLASSES:
                self._refuse(path, query, headers, src_bucket, src_key)
                return
        self._forward(body, headers, lambda status: self.owner.record(
            Recorded(self.command, unquote(path), query, headers, status)))

    def _refuse(self, path: str, query: str, headers: dict, bucket: str, key: str) -> None:
        payload = ("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>InvalidObjectState</Code>"
                   "<Message>The operation is not valid for the object's storage class: restore the Archive "
                   f"object first</Message><Resource>/{bucket}/{key}</Resource>"
                   "<RequestId>localcloud-cold-refusal</RequestId></Error>").encode()
        # recorded before the answer: a client that has its answer finds its request in the record
        self.owner.record(Recorded(self.command, unquote(path), query, headers, 403))
        self.send_response(403)
        self.send_header("Content-Type", "application/xml")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def _forward(self, body: bytes, headers: dict, record: Any) -> int:
        conn = http.client.HTTPConnection(self.upstream_host, self.upstream_port, timeout=120)
        try:
            conn.putrequest(self.command, self.path, skip_host=True, skip_accept_encoding=True)
            for name, value in self.headers.items():
                if name.lower() not in HOP_BY_HOP and name.lower() != "content-length":
                    conn.putheader(name, value)
            if body or self.command in ("PUT", "POST"):
                conn.putheader("Content-Length", str(len(body)))
            conn.endheaders(body or None)
            resp = conn.getresponse()
            data = resp.read()
            record(resp.status)  # before the answer, as for a refusal
            self.send_response(resp.status, resp.reason)
            for name, value in resp.getheaders():
                if name.lower() not in HOP_BY_HOP and name.lower() not in OWN_HEADERS:
                    self.send_header(name, value)
            if self.command == "HEAD":
                self.send_header("Content-Length", resp.getheader("Content-Length") or "0")
            else:
                self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            if self.command != "HEAD" and data:
                self.wfile.write(data)
            return resp.status
        finally:
            conn.close()
