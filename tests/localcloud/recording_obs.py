"""A recording OBS look-alike on 127.0.0.1: answers the calls the project makes plausibly and keeps every request
it receives, so the headers esdk-obs-python sends in the OBS protocol (`path_style=False`: it asks `HEAD
/?apiversion`, is answered `x-obs-api: 3.0`, then signs the OBS way and sends `x-obs-*` headers) can be checked
where no OBS is at hand (tests/integration/test_obs_protocol.py, test_worm_encryption.py).

Bucket host names (`<bucket>.obs.localtest`) resolve to 127.0.0.1 through `route_localtest_to_loopback`:
virtual-hosted style, as in production (an IP address as the server would make the SDK fall back to path style
and V2).
"""

from __future__ import annotations

import hashlib
import socket
import ssl
import threading
import uuid
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Optional
from urllib.parse import parse_qsl, unquote, urlsplit

DOMAIN = "obs.localtest"
TIME = "2026-11-21T00:00:00.000Z"


def route_localtest_to_loopback(monkeypatch: Any) -> None:
    """`*.obs.localtest` (and any `*.localtest`) resolves to 127.0.0.1; every other name as before."""
    real = socket.getaddrinfo

    def getaddrinfo(host, *args, **kwargs):
        if isinstance(host, str) and (host == DOMAIN or host.endswith("." + DOMAIN) or host.endswith(".localtest")):
            host = "127.0.0.1"
        return real(host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)


@dataclass
class Request:
    method: str
    bucket: str
    key: str
    query: dict
    headers: dict  # lower-case names
    body: bytes
    connection: int  # which TCP connection carried it

    def obs_headers(self) -> dict:
        return {k: v for k, v in self.headers.items() if k.startswith(("x-obs-", "x-amz-"))}


@dataclass
class Stored:
    data: bytes
    headers: dict  # the x-obs-meta-* and x-obs-storage-class headers it was written with
    content_type: str


@dataclass
class RecordingObs:
    """An OBS look-alike: objects, multipart uploads and their listings kept in memory; every request kept."""

    tls: Optional[ssl.SSLContext] = None
    copy_answers_etag: bool = True
    close_after_each_response: bool = False  # as a server whose keep-alive idle timeout has passed
    uploads_ignore_markers: bool = False  # a broken listing: every page is the first
    requests: list[Request] = field(default_factory=list)
    objects: dict = field(default_factory=dict)
    uploads: dict = field(default_factory=dict)
    buckets: set = field(default_factory=set)  # created by a PUT of the bucket itself
    connections: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)
    server: Optional[ThreadingHTTPServer] = None

    @property
    def endpoint(self) -> str:
        scheme = "https" if self.tls else "http"
        return f"{scheme}://{DOMAIN}:{self.server.server_address[1]}"

    def start(self) -> RecordingObs:
        owner = self

        class Handler(_Handler):
            store = owner

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        if self.tls is not None:
            self.server.socket = self.tls.wrap_socket(self.server.socket, server_side=True)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()

    def calls(self, method: Optional[str] = None) -> list[Request]:
        """The requests the project made (the SDK's own API-version probes left out)."""
        with self.lock:
            return [r for r in self.requests if "apiversion" not in r.query and (method is None or
                                                                               r.method == method)]


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    store: RecordingObs

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def setup(self) -> None:
        super().setup()
        with self.store.lock:
            self.store.connections += 1
            self.connection_number = self.store.connections

    def do_HEAD(self) -> None:
        self._handle()

    def do_GET(self) -> None:
        self._handle()

    def do_PUT(self) -> None:
        self._handle()

    def do_POST(self) -> None:
        self._handle()

    def do_DELETE(self) -> None:
        self._handle()

    def _handle(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        host = (self.headers.get("Host") or "").split(":")[0]
        bucket = host[:-len(DOMAIN) - 1] if host.endswith("." + DOMAIN) else ""
        parts = urlsplit(self.path)
        key = unquote(parts.path.lstrip("/"))
        query = dict(parse_qsl(parts.query, keep_blank_values=True))
        req = Request(self.command, bucket, key, query, {k.lower(): v for k, v in self.headers.items()}, body,
                      self.connection_number)
        with self.store.lock:
            self.store.requests.append(req)
        status, headers, payload = self._answer(req)
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name, value)
        self.send_header("x-obs-request-id", uuid.uuid4().hex[:16])
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(payload)
        if self.store.close_after_each_response:
            self.close_connection = True  # silently: no `Connection: close` header, as an idle timeout does

    def _answer(self, req: Request) -> tuple[int, dict, bytes]:
        s, q = self.store, req.query
        if "apiversion" in q:
            return 200, {"x-obs-api": "3.0"}, b""
        if req.key == "" and req.method == "PUT" and not q:  # CreateBucket
            s.buckets.add(req.bucket)
            return 200, {}, b""
        if req.key == "" and req.method == "HEAD":  # HeadBucket
            return (200 if req.bucket in s.buckets else 404), {}, b""
        if req.key == "" and req.method == "PUT":  # a bucket setting (?object-lock, ?versioning, ...): recorded only
            return 200, {}, b""
        meta = {k: v for k, v in req.headers.items() if k.startswith("x-obs-meta-") or k == "x-obs-storage-class"}
        ctype = req.headers.get("content-type", "")
        if req.method == "PUT" and "x-obs-copy-source" in req.headers:
            etag = "<ETag>\"copied\"</ETag>" if s.copy_answers_etag else ""
            return 200, {}, _xml(f"<CopyObjectResult><LastModified>{TIME}</LastModified>{etag}</CopyObjectResult>")
        if req.method == "PUT" and "uploadId" in q:
            s.uploads[q["uploadId"]]["parts"][int(q["partNumber"])] = req.body
            return 200, {"ETag": f"\"{hashlib.md5(req.body).hexdigest()}\""}, b""
        if req.method == "PUT":
            s.objects[req.key] = Stored(req.body, meta, ctype)
            return 200, {"ETag": f"\"{hashlib.md5(req.body).hexdigest()}\""}, b""
        if req.method == "POST" and "uploads" in q:
            upload_id = uuid.uuid4().hex
            s.uploads[upload_id] = {"key": req.key, "headers": meta, "ctype": ctype, "parts": {}}
            return 200, {}, _xml(f"<InitiateMultipartUploadResult><Bucket>{req.bucket}</Bucket><Key>{req.key}"
                                 f"</Key><UploadId>{upload_id}</UploadId></InitiateMultipartUploadResult>")
        if req.method == "POST" and "uploadId" in q:
            up = s.uploads.pop(q["uploadId"])
            data = b"".join(up["parts"][n] for n in sorted(up["parts"]))
            s.objects[up["key"]] = Stored(data, up["headers"], up["ctype"])
            return 200, {}, _xml(f"<CompleteMultipartUploadResult><Bucket>{req.bucket}</Bucket><Key>{up['key']}"
                                 "</Key><ETag>\"done-1\"</ETag></CompleteMultipartUploadResult>")
        if req.method == "DELETE" and "uploadId" in q:
            s.uploads.pop(q["uploadId"], None)
            return 204, {}, b""
        if req.method == "DELETE":
            s.objects.pop(req.key, None)
            return 204, {}, b""
        if req.method == "GET" and req.key == "" and "uploads" in q:
            return 200, {}, self._list_uploads(q)
        if req.method == "GET" and req.key == "":
            prefix, marker = q.get("prefix", ""), q.get("marker", "")
            keys = sorted(k for k in s.objects if k.startswith(prefix) and k > marker)
            items = "".join(f"<Contents><Key>{k}</Key><LastModified>{TIME}</LastModified><ETag>\"e\"</ETag>"
                            f"<Size>{len(s.objects[k].data)}</Size><StorageClass>STANDARD</StorageClass>"
                            "</Contents>" for k in keys)
            return 200, {}, _xml(f"<ListBucketResult><Name>{req.bucket}</Name><Prefix>{prefix}</Prefix>"
                                 f"<MaxKeys>1000</MaxKeys><IsTruncated>false</IsTruncated>{items}"
                                 "</ListBucketResult>")
        if req.method in ("GET", "HEAD"):
            obj = s.objects.get(req.key)
            if obj is None:
                return 404, {"Content-Type": "application/xml"}, _xml(
                    "<Error><Code>NoSuchKey</Code><Message>missing</Message></Error>")
            headers = {"ETag": "\"e\"", "Content-Type": obj.content_type or "application/octet-stream",
                       "Last-Modified": "Sat, 21 Nov 2026 00:00:00 GMT", **obj.headers}
            return 200, headers, obj.data
        return 400, {}, _xml("<Error><Code>BadRequest</Code><Message>not recorded</Message></Error>")

    def _list_uploads(self, q: dict) -> bytes:
        prefix, limit = q.get("prefix", ""), int(q.get("max-uploads") or 1000)
        after = (q.get("key-marker", ""), q.get("upload-id-marker", ""))
        found = sorted((u["key"], uid) for uid, u in self.store.uploads.items() if u["key"].startswith(prefix))
        found = [f for f in found if f > after] if after != ("", "") and not self.store.uploads_ignore_markers \
            else found
        page, truncated = found[:limit], len(found) > limit
        items = "".join(f"<Upload><Key>{k}</Key><UploadId>{u}</UploadId><Initiator><ID>i</ID></Initiator>"
                        f"<Owner><ID>o</ID></Owner><StorageClass>STANDARD</StorageClass><Initiated>{TIME}"
                        "</Initiated></Upload>" for k, u in page)
        markers = (f"<NextKeyMarker>{page[-1][0]}</NextKeyMarker><NextUploadIdMarker>{page[-1][1]}"
                   "</NextUploadIdMarker>") if truncated else ""
        return _xml(f"<ListMultipartUploadsResult><Bucket>b</Bucket><MaxUploads>{limit}</MaxUploads>"
                    f"<IsTruncated>{str(truncated).lower()}</IsTruncated>{markers}{items}"
                    "</ListMultipartUploadsResult>")


def _xml(inner: str) -> bytes:
    return ('<?xml version="1.0" encoding="UTF-8"?>' + inner).encode()
