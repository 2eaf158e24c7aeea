"""The OBS shell: `esdk-obs-python` calls, each checked, failures raised as ObsError with what an operator needs.

esdk-obs-python answers with a GetResult (status, errorCode, requestId) instead of raising; this module turns a
bad status into an exception once, so callers cannot forget to look.

The client is built with the server certificate verified (the SDK's default `ssl_verify=False` checks nothing)
and with connections kept alive (its default `long_conn_mode=False` sends `Connection: close` on every request):
see `obs/client.py` of esdk-obs-python 3.26.6, `_init_ssl_context` and `_parse_request_connection`.
"""

from __future__ import annotations

import io
import json
import ssl
import threading
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from email.utils import parsedate_to_datetime
from typing import Any, Iterator, Optional

import certifi
from obs import (
    CompleteMultipartUploadRequest,
    CompletePart,
    CopyObjectHeader,
    ListMultipartUploadsRequest,
    ObsClient,
    PutObjectHeader,
    SseKmsHeader,
)

from shared.runtime import Credentials

META_PREFIX = "x-amz-meta-"
UPLOADS_PAGE = 1000  # ListMultipartUploads answers at most 1000 uploads a page
# A kept-alive connection idle for longer may have been closed by the server (its idle timeout is not
# documented); the SDK would send the next request on it and, for a streamed body, not retry. Pooled
# connections idle longer than this are closed before the next call instead.
KEEPALIVE_IDLE_SECONDS = 20.0


class _PartStream(io.RawIOBase):
    """Reads a part's buffer in slices without copying the whole of it (io.BytesIO copies a bytearray)."""

    def __init__(self, data: bytes | bytearray) -> None:
        super().__init__()
        self._view, self._pos = memoryview(data), 0

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:
        end = len(self._view) if size is None or size < 0 else min(len(self._view), self._pos + size)
        chunk, self._pos = bytes(self._view[self._pos:end]), end
        return chunk

    def close(self) -> None:  # the SDK closes the stream when sent; the buffer stays the caller's
        self._view.release()
        super().close()


@dataclass(frozen=True)
class Encryption:
    """Server-side encryption asked for on each object written: `obs` (SSE-OBS, keys OBS manages) or `kms`
    (SSE-KMS with the KMS key `kms_key_id`). Headers: api-obs obs_04_0188, obs_04_0173, obs_04_0106."""

    mode: str
    kms_key_id: Optional[str] = None

    @classmethod
    def of(cls, mode: str, kms_key_id: Optional[str] = None) -> Optional[Encryption]:
        """The encryption for ARCHIVE_ENCRYPTION's value (`none`: None) and ARCHIVE_KMS_KEY_ID."""
        return None if mode in ("", "none") else cls(mode, kms_key_id or None)


def protocol_prefix(client: ObsClient) -> str:
    """`x-obs-` when the client speaks the OBS protocol, `x-amz-` when it signs the S3 way: with signature
    negotiation on (`path_style=False`, production) the SDK asks the server and OBS answers for its own protocol
    (`_getApiVersion`, `x-obs-api: 3.0`); with it off (path style, the local cloud) the configured signature
    decides (esdk-obs-python 3.26.6 `obs/client.py`, `_BasicClient.__init__`)."""
    if getattr(client, "is_signature_negotiation", False):
        return "x-obs-"
    return "x-obs-" if str(getattr(client, "signature", "")).lower() == "obs" else "x-amz-"


def sse_request(client: ObsClient, encryption: Optional[Encryption]) -> tuple[Optional[SseKmsHeader],
                                                                              Optional[dict]]:
    """The SDK's `sseHeader` and the extension headers that ask for `encryption` (None: neither)."""
    if encryption is None:
        return None, None
    if encryption.mode == "kms":
        # the SDK names and values both protocols' headers: x-obs-server-side-encryption: kms and
        # x-obs-server-side-encryption-kms-key-id, or x-amz-...: aws:kms and ...-aws-kms-key-id
        # (obs/convertor.py `_set_sse_header`)
        return SseKmsHeader.getInstance(key=encryption.kms_key_id), None
    if encryption.mode == "obs":
        # SSE-OBS is `x-obs-server-side-encryption: AES256` (obs_04_0173); through SseKmsHeader the SDK would send
        # "aws:AES256" in the S3 protocol, so the header goes by name
        return None, {f"{protocol_prefix(client)}server-side-encryption": "AES256"}
    raise ValueError(f"unknown encryption mode {encryption.mode!r}")


class ObsError(Exception):
    def __init__(self, op: str, bucket: str, key: Optional[str], status: Optional[int], code: str,
                 message: str, request_id: Optional[str] = None) -> None:
        self.op, self.bucket, self.key, self.status = op, bucket, key, status
        self.code, self.message, self.request_id = code, message, request_id
        target = f"{bucket}/{key}" if key else bucket
        super().__init__(f"OBS {op} {target}: {status or '-'} {code} {message} request_id={request_id}")

    def as_dict(self) -> dict:
        return {"op": self.op, "bucket": self.bucket, "key": self.key, "status": self.status,
                "code": self.code, "message": self.message[:300], "request_id": self.request_id}


@dataclass(frozen=True)
class ObjectInfo:
    key: str
    size: int
    last_modified: Optional[datetime]
    etag: str


_CLIENTS: dict[tuple, ObsClient] = {}
_CLIENTS_LOCK = threading.Lock()


def build_client(endpoint: str, creds: Credentials, *, path_style: bool = False,
                 ca_bundle: Optional[str] = None) -> ObsClient:
    """One ObsClient per container and credentials, verifying the server's certificate and host name against
    `ca_bundle` (default: certifi's bundle, shipped in the package) and keeping its connections alive."""
    ca_bundle = ca_bundle or certifi.where()
    key = (endpoint, creds.ak, creds.sk, creds.security_token, path_style, ca_bundle)
    with _CLIENTS_LOCK:
        client = _CLIENTS.get(key)
        if client is None:
            client = ObsClient(access_key_id=creds.ak, secret_access_key=creds.sk,
                               security_token=creds.security_token, server=endpoint, path_style=path_style,
                               max_retry_count=3, timeout=60, ssl_verify=ca_bundle, long_conn_mode=True)
            context = getattr(client, "context", None)
            if isinstance(context, ssl.SSLContext):
                # the SDK loads the bundle and requires a certificate but turns the host name check off
                # (`_init_ssl_context`): a certificate of any host signed by a known CA would pass
                context.verify_mode = ssl.CERT_REQUIRED
                context.check_hostname = True
            for old in _CLIENTS.values():
                old.close()
            _CLIENTS.clear()
            _CLIENTS[key] = client
        return client


def close_idle_connections(client: ObsClient) -> int:
    """Close the connections the SDK keeps for reuse (`long_conn_mode`); returns how many."""
    holder = getattr(client, "connHolder", None)
    if not holder:
        return 0
    closed = 0
    with holder["lock"]:
        while not holder["connSet"].empty():
            try:
                conn = holder["connSet"].get_nowait()
            except Exception:  # queue.Empty: another thread took the last one
                break
            try:
                conn.close()
            except Exception:  # noqa: BLE001 - closing a dead socket may fail; it is dropped either way
                pass
            closed += 1
    return closed


def _parse_time(value: Any) -> Optional[datetime]:
    if not value:
        return None
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=timezone.utc)
    text = str(value)
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        pass
    try:
        return parsedate_to_datetime(text)
    except (TypeError, ValueError):
        return None


class Obs:
    """The object operations the project needs, on one ObsClient."""

    def __init__(self, client: ObsClient) -> None:
        self.client = client
        self._last_call: Optional[float] = None  # none yet: connections kept from a former invocation are old

    def _check(self, op: str, bucket: str, key: Optional[str], resp: Any, ok_missing: bool = False) -> Any:
        status = getattr(resp, "status", None)
        if status is not None and status < 300:
            return resp
        if ok_missing and status == 404:
            return None
        raise ObsError(op, bucket, key, status, getattr(resp, "errorCode", None) or str(status),
                       getattr(resp, "errorMessage", None) or getattr(resp, "reason", "") or "",
                       getattr(resp, "requestId", None))

    def _safe(self, op: str, bucket: str, key: Optional[str], call: Any, *args: Any, **kwargs: Any) -> Any:
        now = time.monotonic()
        if self._last_call is None or now - self._last_call > KEEPALIVE_IDLE_SECONDS:
            close_idle_connections(self.client)
        self._last_call = now
        try:
            return call(*args, **kwargs)
        except Exception as exc:  # the SDK raises on connection trouble after its own retries
            raise ObsError(op, bucket, key, None, type(exc).__name__, str(exc)[:300]) from exc
        finally:
            self._last_call = time.monotonic()

    # --- small objects -------------------------------------------------------------------------------
    def put_bytes(self, bucket: str, key: str, data: bytes, *, metadata: Optional[dict] = None,
                  content_type: str = "application/octet-stream", storage_class: Optional[str] = None,
                  encryption: Optional[Encryption] = None) -> str:
        headers = PutObjectHeader(contentType=content_type)
        if storage_class:
            headers.storageClass = storage_class
        headers.sseHeader, extension = sse_request(self.client, encryption)
        resp = self._safe("PutObject", bucket, key, self.client.putContent, bucket, key, data,
                          metadata=metadata or None, headers=headers, extensionHeaders=extension)
        self._check("PutObject", bucket, key, resp)
        return (getattr(resp.body, "etag", None) or "").strip('"')

    def put_buffer(self, bucket: str, key: str, data: bytes | bytearray, *, metadata: Optional[dict] = None,
                   content_type: str = "application/octet-stream", storage_class: Optional[str] = None,
                   encryption: Optional[Encryption] = None) -> str:
        """One PUT of a buffer streamed as it is read, without the SDK's copies of it; a stream is not
        retried by the SDK, so the caller retries."""
        headers = PutObjectHeader(contentType=content_type, contentLength=len(data))
        if storage_class:
            headers.storageClass = storage_class
        headers.sseHeader, extension = sse_request(self.client, encryption)
        resp = self._safe("PutObject", bucket, key, self.client.putContent, bucket, key, _PartStream(data),
                          metadata=metadata or None, headers=headers, extensionHeaders=extension)
        self._check("PutObject", bucket, key, resp)
        return (getattr(resp.body, "etag", None) or "").strip('"')

    def put_json(self, bucket: str, key: str, document: dict) -> str:
        data = json.dumps(document, indent=1, sort_keys=True).encode()
        return self.put_bytes(bucket, key, data, content_type="application/json")

    def get_bytes(self, bucket: str, key: str) -> Optional[bytes]:
        """The object's bytes, or None when it does not exist."""
        resp = self._safe("GetObject", bucket, key, self.client.getObject, bucket, key,
                          loadStreamInMemory=True)
        if self._check("GetObject", bucket, key, resp, ok_missing=True) is None:
            return None
        return resp.body.buffer or b""

    def head(self, bucket: str, key: str) -> Optional[dict]:
        """The object's headers (lower-case names; user metadata without its prefix), or None if missing."""
        resp = self._safe("HeadObject", bucket, key, self.client.getObjectMetadata, bucket, key)
        if self._check("HeadObject", bucket, key, resp, ok_missing=True) is None:
            return None
        headers = {}
        for name, value in resp.header or []:
            name = name.lower()
            headers[name[len(META_PREFIX):] if name.startswith(META_PREFIX) else name] = value
        return headers

    def delete(self, bucket: str, key: str) -> None:
        resp = self._safe("DeleteObject", bucket, key, self.client.deleteObject, bucket, key)
        self._check("DeleteObject", bucket, key, resp, ok_missing=True)

    def list(self, bucket: str, prefix: str, start_after: Optional[str] = None) -> Iterator[ObjectInfo]:
        """Every object under the prefix (after `start_after`, in key order), every page."""
        marker = start_after
        while True:
            resp = self._safe("ListObjects", bucket, prefix, self.client.listObjects, bucket, prefix=prefix,
                              marker=marker, max_keys=1000)
            self._check("ListObjects", bucket, prefix, resp)
            contents = resp.body.contents or []
            for item in contents:
                yield ObjectInfo(item.key, int(item.size or 0), _parse_time(item.lastModified),
                                 (item.etag or "").strip('"'))
            if not resp.body.is_truncated or not contents:
                return
            marker = resp.body.next_marker or contents[-1].key

    def replace_metadata(self, bucket: str, key: str, metadata: dict, *,
                         content_type: str = "application/octet-stream", storage_class: Optional[str] = None) -> str:
        """Rewrite an object's metadata in place (a server-side copy onto itself with directive REPLACE); the
        new ETag. The archive path never calls it: OBS refuses to copy an Archive (COLD) object until it is
        restored (error code page obs_errorcode_0010, InvalidObjectState)."""
        headers = CopyObjectHeader(directive="REPLACE", contentType=content_type)
        if storage_class:
            headers.storageClass = storage_class
        resp = self._safe("CopyObject", bucket, key, self.client.copyObject, bucket, key, bucket, key,
                          metadata=metadata, headers=headers)
        self._check("CopyObject", bucket, key, resp)
        # a copy may answer 200 and still have failed: only an ETag in the answer's body proves it (api-obs
        # obs_04_0082); esdk-obs-python judges by the status alone
        etag = (getattr(resp.body, "etag", None) or "").strip('"') if resp.body is not None else ""
        if not etag:
            raise ObsError("CopyObject", bucket, key, resp.status, "CopyWithoutETag",
                           "the copy answered without an ETag: it did not complete",
                           getattr(resp, "requestId", None))
        return etag

    # --- multipart -----------------------------------------------------------------------------------
    def initiate_multipart(self, bucket: str, key: str, *, metadata: Optional[dict] = None,
                           content_type: str = "application/octet-stream",
                           storage_class: Optional[str] = None, encryption: Optional[Encryption] = None) -> str:
        # the parts need no encryption headers: they join an upload whose encryption was set at its initiation
        # (api-obs obs_04_0188 lists SSE-KMS/SSE-OBS headers for InitiateMultipartUpload, SSE-C only for parts)
        sse, extension = sse_request(self.client, encryption)
        resp = self._safe("InitiateMultipartUpload", bucket, key, self.client.initiateMultipartUpload, bucket,
                          key, storageClass=storage_class, metadata=metadata or None, contentType=content_type,
                          sseHeader=sse, extensionHeaders=extension)
        self._check("InitiateMultipartUpload", bucket, key, resp)
        return resp.body.uploadId

    def upload_part(self, bucket: str, key: str, upload_id: str, number: int, data: bytes | bytearray) -> str:
        # a stream with its size is sent as it is read; given bytes, the SDK makes copies of the whole part
        resp = self._safe("UploadPart", bucket, key, self.client.uploadPart, bucket, key, number, upload_id,
                          object=_PartStream(data), partSize=len(data))
        self._check("UploadPart", bucket, key, resp)
        return resp.body.etag

    def complete_multipart(self, bucket: str, key: str, upload_id: str, etags: list[str]) -> None:
        parts = [CompletePart(partNum=i + 1, etag=etag) for i, etag in enumerate(etags)]
        resp = self._safe("CompleteMultipartUpload", bucket, key, self.client.completeMultipartUpload, bucket,
                          key, upload_id, CompleteMultipartUploadRequest(parts=parts))
        self._check("CompleteMultipartUpload", bucket, key, resp)

    def abort_multipart(self, bucket: str, key: str, upload_id: str) -> None:
        resp = self._safe("AbortMultipartUpload", bucket, key, self.client.abortMultipartUpload, bucket, key,
                          upload_id)
        self._check("AbortMultipartUpload", bucket, key, resp, ok_missing=True)

    def abort_open_uploads(self, bucket: str, key: str) -> int:
        """Abort the multipart uploads left open on exactly this key (by an attempt whose own abort failed,
        or a process that was killed); returns how many."""
        stale = [upload_id for k, upload_id in self.open_uploads(bucket, key) if k == key]
        for upload_id in stale:
            self.abort_multipart(bucket, key, upload_id)
        return len(stale)

    def open_uploads(self, bucket: str, prefix: str) -> list[tuple[str, str]]:
        """(key, upload id) of the multipart uploads still open under the prefix, every page."""
        found: list[tuple[str, str]] = []
        key_marker: Optional[str] = None
        upload_marker: Optional[str] = None
        seen: set[tuple[str, str]] = set()
        while True:
            resp = self._safe("ListMultipartUploads", bucket, prefix, self.client.listMultipartUploads, bucket,
                              ListMultipartUploadsRequest(prefix=prefix, max_uploads=UPLOADS_PAGE,
                                                          key_marker=key_marker, upload_id_marker=upload_marker))
            self._check("ListMultipartUploads", bucket, prefix, resp)
            uploads = resp.body.upload or []
            found.extend((u.key, u.uploadId) for u in uploads)
            if not resp.body.isTruncated or not uploads:
                return found
            # the next page starts after these markers (api-obs ListMultipartUploads: key-marker and
            # upload-id-marker); a server that omits them is followed from the last upload listed
            next_key = resp.body.nextKeyMarker or uploads[-1].key
            next_upload = resp.body.nextUploadIdMarker or uploads[-1].uploadId
            if (next_key, next_upload) in seen:
                raise ObsError("ListMultipartUploads", bucket, prefix, resp.status, "MarkerNotAdvancing",
                               f"the listing is truncated but its markers come back to {next_key!r}",
                               getattr(resp, "requestId", None))
            seen.add((next_key, next_upload))
            key_marker, upload_marker = next_key, next_upload
