"""Stream one presigned link into OBS: never the whole file in memory or on disk, verified, all or nothing.

The download (with SHA-256 and optional gzip on the way) runs in the calling thread; finished parts go through
a small bounded queue to uploader threads, so download, compression and upload overlap while memory stays at a
few parts. Below the single-PUT threshold the object is written with one PUT; above it, or when the size is not
known, as a multipart upload that is completed only after the byte count is verified, and aborted on any error,
so a half-written object never stands under the archive key.
"""

from __future__ import annotations

import hashlib
import queue
import threading
import zlib
from dataclasses import dataclass
from typing import Callable, Optional
from urllib.parse import quote, urlsplit

import requests

from shared.obs import Obs, ObsError

READ_CHUNK = 1024 * 1024
UPLOAD_THREADS = 2


class LinkRefused(Exception):
    """The download link points somewhere it must not: it is never fetched."""


class CopyError(Exception):
    """One attempt to copy a file failed; the multipart upload, if any, has been aborted."""


def check_link(url: str, host_suffixes: tuple[str, ...], allow_http_hosts: tuple[str, ...] = ()) -> None:
    """A link must be https on a host ending in one of the suffixes; plain http only for hosts named exactly
    in LINK_ALLOW_HTTP_HOSTS (the local cloud), never a blanket switch."""
    parts = urlsplit(url)
    host = (parts.hostname or "").lower()
    if not host:
        raise LinkRefused(f"link has no host: {redact_link(url)}")
    if parts.username or parts.password:
        raise LinkRefused(f"link carries user info: {redact_link(url)}")
    if parts.scheme == "http":
        if host not in allow_http_hosts:
            raise LinkRefused(f"link is plain http on {host}, not https: {redact_link(url)}")
    elif parts.scheme != "https":
        raise LinkRefused(f"link scheme {parts.scheme!r} is not https: {redact_link(url)}")
    if not any(host == s.lstrip(".") or host.endswith("." + s.lstrip(".")) for s in host_suffixes):
        raise LinkRefused(f"link host {host} does not end in {', '.join(host_suffixes)}")


def redact_link(url: str) -> str:
    """A link without its query string (which carries the signature) for logs and errors."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    port = f":{parts.port}" if parts.port else ""
    return f"{parts.scheme}://{host}{port}{parts.path}"


def header_safe(value: object) -> str:
    """Metadata values travel as HTTP headers: keep them ASCII and printable (names come from an API)."""
    return quote(str(value), safe=" -_.:/+=@,~")[:1024]


@dataclass(frozen=True)
class CopyResult:
    key: str
    bytes_in: int
    bytes_out: int
    sha256: str
    multipart: bool


class _Compressor:
    def __init__(self, compression: str, level: int) -> None:
        # wbits 31: a gzip member (header and trailer), so the object is a plain .gz file
        self._z = zlib.compressobj(level, zlib.DEFLATED, 31) if compression == "gzip" else None

    def feed(self, data: bytes) -> bytes:
        return self._z.compress(data) if self._z else data

    def finish(self) -> bytes:
        return self._z.flush() if self._z else b""


class _PartUploader:
    """Uploads numbered parts from a bounded queue on a few threads; remembers the first error."""

    def __init__(self, obs: Obs, bucket: str, key: str, upload_id: str, threads: int) -> None:
        self.obs, self.bucket, self.key, self.upload_id = obs, bucket, key, upload_id
        self.etags: dict[int, str] = {}
        self.error: Optional[BaseException] = None
        self._queue: queue.Queue = queue.Queue(maxsize=1)
        self._threads = [threading.Thread(target=self._run, daemon=True) for _ in range(threads)]
        for t in self._threads:
            t.start()

    def _run(self) -> None:
        while True:
            item = self._queue.get()
            if item is None:
                return
            number, data = item
            if self.error is not None:
                continue
            try:
                self.etags[number] = self.obs.upload_part(self.bucket, self.key, self.upload_id, number, data)
            except BaseException as exc:  # noqa: BLE001 - handed to the downloading thread
                self.error = exc

    def submit(self, number: int, data: bytes) -> None:
        if self.error is not None:
            raise self.error
        self._queue.put((number, data))

    def close(self) -> None:
        for _ in self._threads:
            self._queue.put(None)
        for t in self._threads:
            t.join()


def copy_link(session: requests.Session, url: str, obs: Obs, bucket: str, key: str, *,
              metadata: dict, compression: str = "gzip", level: int = 6, part_size: int = 16 * 2**20,
              single_put_max: int = 16 * 2**20, storage_class: Optional[str] = None,
              timeout: tuple[float, float] = (10, 120),
              uploader_threads: int = UPLOAD_THREADS) -> CopyResult:
    """Copy the file behind `url` to `bucket/key`; raise CopyError (after cleaning up) on any failure."""
    content_type = "application/gzip" if compression == "gzip" else "text/plain"
    try:
        resp = session.get(url, stream=True, timeout=timeout)
    except requests.RequestException as exc:
        raise CopyError(f"download failed to start: {type(exc).__name__}: {exc}") from exc
    with resp:
        if resp.status_code != 200:
            raise CopyError(f"download answered {resp.status_code} {_error_code(resp)}".rstrip())
        expected = _content_length(resp)
        sha, compressor = hashlib.sha256(), _Compressor(compression, level)
        bytes_in = bytes_out = 0
        buffer = bytearray()
        uploader: Optional[_PartUploader] = None
        upload_id: Optional[str] = None
        part_number = 0
        try:
            while True:
                try:
                    chunk = resp.raw.read(READ_CHUNK, decode_content=False)
                except Exception as exc:  # urllib3 raises when the peer closes before Content-Length
                    raise CopyError(f"download broke after {bytes_in} bytes: {type(exc).__name__}") from exc
                if not chunk:
                    break
                bytes_in += len(chunk)
                sha.update(chunk)
                buffer += compressor.feed(chunk)
                if len(buffer) >= part_size and (uploader or bytes_in > single_put_max
                                                 or expected is None or expected > single_put_max):
                    if uploader is None:
                        upload_id = obs.initiate_multipart(bucket, key, metadata=metadata,
                                                           content_type=content_type,
                                                           storage_class=storage_class)
                        uploader = _PartUploader(obs, bucket, key, upload_id, uploader_threads)
                    while len(buffer) >= part_size:
                        part_number += 1
                        part = bytes(buffer[:part_size])
                        del buffer[:part_size]
                        bytes_out += len(part)
                        uploader.submit(part_number, part)
            if expected is not None and bytes_in != expected:
                raise CopyError(f"download truncated: {bytes_in} of {expected} bytes")
            buffer += compressor.finish()
            digest = sha.hexdigest()
            sealed = {**metadata, "original-size": str(bytes_in), "sha256": digest}
            if uploader is None:
                bytes_out = len(buffer)
                obs.put_bytes(bucket, key, bytes(buffer), metadata=sealed, content_type=content_type,
                              storage_class=storage_class)
                return CopyResult(key, bytes_in, bytes_out, digest, False)
            if buffer:
                part_number += 1
                bytes_out += len(buffer)
                uploader.submit(part_number, bytes(buffer))
                buffer = bytearray()
            uploader.close()
            if uploader.error is not None:
                raise uploader.error
            obs.complete_multipart(bucket, key, upload_id, [uploader.etags[n] for n in range(1, part_number + 1)])
            upload_id = None
            # the checksum is known only now: seal it onto the object (a server-side copy onto itself)
            obs.replace_metadata(bucket, key, sealed, content_type=content_type, storage_class=storage_class)
            return CopyResult(key, bytes_in, bytes_out, digest, True)
        except (CopyError, ObsError) as exc:
            _abort(obs, bucket, key, upload_id, uploader)
            if isinstance(exc, ObsError):
                raise CopyError(f"upload failed: {exc}") from exc
            raise
        except BaseException:
            _abort(obs, bucket, key, upload_id, uploader)
            raise


def _abort(obs: Obs, bucket: str, key: str, upload_id: Optional[str], uploader: Optional[_PartUploader]) -> None:
    if uploader is not None:
        uploader.close()
    if upload_id is not None:
        try:
            obs.abort_multipart(bucket, key, upload_id)
        except ObsError:
            pass  # an upload left open is cleaned by the bucket's lifecycle rule for incomplete uploads


def _content_length(resp: requests.Response) -> Optional[int]:
    value = resp.headers.get("Content-Length")
    try:
        return int(value) if value is not None else None
    except ValueError:
        return None


def _error_code(resp: requests.Response) -> str:
    """The OBS error code of an XML error body (e.g. AccessDenied for an expired link), if small enough."""
    try:
        text = resp.raw.read(4096, decode_content=True).decode("utf-8", "replace")
    except Exception:
        return ""
    start, end = text.find("<Code>"), text.find("</Code>")
    return text[start + 6:end] if 0 <= start < end else ""


def copy_with_retries(get_link: Callable[[], str], check: Callable[[str], None],
                      do_copy: Callable[[str], CopyResult], attempts: int,
                      on_retry: Callable[[int, str], None] = lambda n, e: None) -> CopyResult:
    """Each attempt with a fresh link (a link may have expired or been cut); LinkRefused is not retried."""
    errors: list[str] = []
    for attempt in range(1, attempts + 1):
        url = get_link()
        check(url)
        try:
            return do_copy(url)
        except CopyError as exc:
            errors.append(f"attempt {attempt}: {exc}")
            if attempt < attempts:
                on_retry(attempt, str(exc))
    raise CopyError("; ".join(errors))
