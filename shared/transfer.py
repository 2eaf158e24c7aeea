"""Stream one presigned link into OBS: never the whole file in memory or on disk, verified, all or nothing.

The download (with SHA-256) runs in the calling thread; a packer thread compresses (gzip, optional: one member,
its chunks deflated on DEFLATE_THREADS threads) and cuts parts, which go through a small bounded queue to uploader
threads, so download, compression and upload overlap while memory stays at a few parts; an optional tap sees the
original bytes on a thread of its own.

An output that stays within the single-PUT threshold is written with one PUT, which carries the original size
and the SHA-256 in the object's metadata; a larger one becomes a multipart upload, initiated with what is known
then (the original size, from Content-Length) and completed only after the byte count is verified, and aborted
on any error, so a half-written object never stands under the archive key. A multipart object's SHA-256 is
known only after its last byte: it is returned in the CopyResult for the job's record and the ledger. It is
never sealed on afterwards by copying the object onto itself: OBS refuses to copy an Archive (COLD) object
(error code page obs_errorcode_0010, InvalidObjectState).
"""

from __future__ import annotations

import hashlib
import os
import queue
import struct
import threading
import zlib
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Callable, Optional
from urllib.parse import quote, urlsplit

import requests

from shared.obs import Encryption, Obs, ObsError

READ_CHUNK = 1024 * 1024
UPLOAD_THREADS = 2
CHUNK_QUEUE = 4  # downloaded chunks waiting for the packer: 4 MiB at most
PART_ATTEMPTS = 2
TAP_SLICE = 256 * 1024  # the tap is fed in slices: a scan holding the GIL holds it for less at a time
WINDOW = 32 * 1024  # deflate's window (RFC 1951): what a chunk compressed on its own is primed with
# gzip on two threads where the machine has two cores or more (at most 2 chunks in flight, ~2 MiB). More would
# hold more memory per copy, and a copy already overlaps with the download, the digest and the uploads.
DEFLATE_THREADS = min(2, os.cpu_count() or 1)


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
    """What one copy wrote. `sha256` and `bytes_in` are of the original bytes. `sha256_in_metadata`: the object's
    own metadata carries them (one PUT); otherwise (multipart) only its record here proves its content."""

    key: str
    bytes_in: int
    bytes_out: int
    sha256: str
    multipart: bool
    sha256_in_metadata: bool = False
    tap_error: Optional[str] = None  # the tap raised: it was not called again, the copy went on


class _Compressor:
    """No compression, or one gzip member on one thread (zlib, wbits 31: header and trailer included)."""

    def __init__(self, compression: str, level: int) -> None:
        self._z = zlib.compressobj(level, zlib.DEFLATED, 31) if compression == "gzip" else None

    def feed(self, data: bytes) -> bytes:
        return self._z.compress(data) if self._z else data

    def finish(self) -> bytes:
        return self._z.flush() if self._z else b""

    def close(self) -> None:
        pass


class _ParallelGzip:
    """One gzip member (RFC 1952), compressed on a few threads, as pigz does: each chunk becomes a run of raw
    deflate blocks, primed with the 32 KiB of input before it (what its window would hold in a one-thread stream)
    and ended by a sync flush, which leaves it byte-aligned and not final, so the runs join into one deflate
    stream. finish() adds an empty final block and the trailer (CRC-32 and size of the input). The output is a
    plain .gz of about one-thread zlib's size (a sync flush adds 5 bytes a chunk); zlib releases the GIL while it
    compresses, so the chunks in flight use every core the function has. At most `threads` chunks are in flight
    beyond the one being handed back: memory stays at a few chunks."""

    HEADER = bytes((0x1F, 0x8B, 8, 0, 0, 0, 0, 0, 0, 3))  # deflate, no flags, no mtime, no extra flags, Unix
    FINAL_EMPTY_BLOCK = b"\x03\x00"  # BFINAL 1, fixed Huffman codes, end of block (RFC 1951 3.2.6)

    def __init__(self, level: int, threads: int) -> None:
        self.level = level
        self.depth = threads
        self._pool = ThreadPoolExecutor(threads, thread_name_prefix="deflate")
        self._pending: deque = deque()
        self._window = b""
        self._crc = 0
        self._size = 0
        self._head = self.HEADER

    def _deflate(self, data: bytes, window: bytes) -> bytes:
        z = zlib.compressobj(self.level, zlib.DEFLATED, -15, zdict=window) if window else \
            zlib.compressobj(self.level, zlib.DEFLATED, -15)
        return z.compress(data) + z.flush(zlib.Z_SYNC_FLUSH)

    def feed(self, data: bytes) -> bytes:
        if not data:
            return b""
        self._crc = zlib.crc32(data, self._crc)
        self._size += len(data)
        self._pending.append(self._pool.submit(self._deflate, data, self._window))
        self._window = (self._window + data)[-WINDOW:] if len(data) < WINDOW else data[-WINDOW:]
        out = [self._head]
        self._head = b""
        while len(self._pending) > self.depth:
            out.append(self._pending.popleft().result())
        return b"".join(out)

    def finish(self) -> bytes:
        out = [self._head] + [f.result() for f in self._pending]
        self._pending.clear()
        out += [self.FINAL_EMPTY_BLOCK, struct.pack("<II", self._crc & 0xFFFFFFFF, self._size & 0xFFFFFFFF)]
        return b"".join(out)  # the owner calls close(), after an error as after the end

    def close(self) -> None:
        """Stop the threads (after the chunks in flight); safe to call twice."""
        self._pool.shutdown(wait=True)


def _compressor(compression: str, level: int, threads: int):
    """The packer's compressor: gzip on `threads` threads when there are several, else on the packer's own."""
    if compression == "gzip" and threads > 1:
        return _ParallelGzip(level, threads)
    return _Compressor(compression, level)


class _PartUploader:
    """Uploads numbered parts from a bounded queue on a few threads; remembers the first error."""

    def __init__(self, obs: Obs, bucket: str, key: str, upload_id: str, threads: int) -> None:
        self.obs, self.bucket, self.key, self.upload_id = obs, bucket, key, upload_id
        self.etags: dict[int, str] = {}
        self.error: Optional[BaseException] = None
        self._queue: queue.Queue = queue.Queue(maxsize=1)
        self._closed = False
        self._threads = [threading.Thread(target=self._run, daemon=True) for _ in range(threads)]
        for t in self._threads:
            t.start()

    def _run(self) -> None:
        while True:
            item = self._queue.get()
            if item is None:
                return
            number, data = item
            for attempt in range(1, PART_ATTEMPTS + 1):
                if self.error is not None:
                    break
                try:
                    self.etags[number] = self.obs.upload_part(self.bucket, self.key, self.upload_id, number, data)
                    break
                except ObsError as exc:  # a streamed part is not retried by the SDK: one more try here
                    if attempt == PART_ATTEMPTS:
                        self.error = exc
                except BaseException as exc:  # noqa: BLE001 - handed to the copying thread
                    self.error = exc

    def submit(self, number: int, data: bytes) -> None:
        if self.error is not None:
            raise self.error
        self._queue.put((number, data))

    def close(self) -> None:
        """Wait for the queued parts and stop the threads; a second call does nothing."""
        if self._closed:
            return
        self._closed = True
        for _ in self._threads:
            self._queue.put(None)
        for t in self._threads:
            t.join()


class _Packer(threading.Thread):
    """Compresses the downloaded chunks and cuts them into parts, on its own thread, so that hashing and
    downloading (the caller's thread), compression (this one) and uploads (the uploader's) overlap.

    The multipart upload starts only once the output is known to need one: at the first full part when the
    original is already known to be larger than the single-PUT threshold (no compression, Content-Length),
    else once the output itself passes the threshold. Until then the output is held, so a file whose
    compressed output fits one PUT gets its checksum in its metadata."""

    def __init__(self, obs: Obs, bucket: str, key: str, *, known_large: bool, compression: str, level: int,
                 part_size: int, single_put_max: int, metadata: dict, content_type: str,
                 storage_class: Optional[str], uploader_threads: int,
                 encryption: Optional[Encryption] = None, deflate_threads: int = DEFLATE_THREADS) -> None:
        super().__init__(daemon=True)
        self.encryption = encryption
        self.obs, self.bucket, self.key = obs, bucket, key
        self.known_large, self.part_size, self.single_put_max = known_large, part_size, single_put_max
        self.uploader_threads = uploader_threads
        self.metadata, self.content_type, self.storage_class = metadata, content_type, storage_class
        self.compressor = _compressor(compression, level, deflate_threads)
        self.tail = b""  # the compressor's last output, once the stream has ended
        self.chunks: queue.Queue = queue.Queue(maxsize=CHUNK_QUEUE)
        self.buffer = bytearray()
        self.bytes_out = 0
        self.parts = 0
        self.upload_id: Optional[str] = None
        self.uploader: Optional[_PartUploader] = None
        self.error: Optional[BaseException] = None

    def run(self) -> None:
        ended = False
        try:
            while True:
                chunk = self.chunks.get()
                if chunk is None:
                    ended = True
                    if self.error is None:
                        self.tail = self.compressor.finish()
                    return
                if self.error is not None:
                    continue  # keep draining, so the caller never blocks on a full queue
                self.buffer += self.compressor.feed(chunk)
                if len(self.buffer) >= self.part_size and (
                        self.uploader is not None or self.known_large or len(self.buffer) > self.single_put_max):
                    self._cut()
        except BaseException as exc:  # noqa: BLE001 - handed to the copying thread
            self.error = exc
            if not ended:
                self._drain()
        finally:
            self.compressor.close()

    def _drain(self) -> None:
        """After an error: take what the caller still queues until it stops, so that it never blocks."""
        while self.chunks.get() is not None:
            pass

    def put(self, chunk: bytes) -> None:
        if self.error is not None:
            raise self.error
        self.chunks.put(chunk)

    def stop(self) -> None:
        """Let the thread finish what is queued and end; raise its error, if any."""
        self.chunks.put(None)
        self.join()
        if self.error is not None:
            raise self.error

    def _cut(self) -> None:
        if self.uploader is None:
            self.upload_id = self.obs.initiate_multipart(self.bucket, self.key, metadata=self.metadata,
                                                         content_type=self.content_type,
                                                         storage_class=self.storage_class,
                                                         **_encrypted(self.encryption))
            self.uploader = _PartUploader(self.obs, self.bucket, self.key, self.upload_id, self.uploader_threads)
        # a part may run past part_size (by less than a chunk, or up to the single-PUT threshold for the first):
        # parts need only be >= 5 MiB (but the last); the buffer itself is handed over, not copied
        part, self.buffer = self.buffer, bytearray()
        self.parts += 1
        self.bytes_out += len(part)
        self.uploader.submit(self.parts, part)

    def finish(self) -> bytearray:
        """After stop(): the compressor's tail joined to what is left in the buffer (handed over, not copied)."""
        self.buffer += self.tail
        tail, self.buffer, self.tail = self.buffer, bytearray(), b""
        return tail


class _TapFeeder(threading.Thread):
    """Calls the tap with each original chunk, in order, on its own thread: a tap that holds the GIL (a regex
    scan) then overlaps with compression, which releases it, instead of adding to it on the packer thread."""

    def __init__(self, tap: Callable[[bytes], None]) -> None:
        super().__init__(daemon=True)
        self.tap = tap
        self.chunks: queue.Queue = queue.Queue(maxsize=CHUNK_QUEUE)
        self.error: Optional[str] = None

    def run(self) -> None:
        while True:
            chunk = self.chunks.get()
            if chunk is None:
                return
            if self.error is not None:
                continue
            try:
                for start in range(0, len(chunk), TAP_SLICE):
                    self.tap(chunk[start:start + TAP_SLICE])
            except Exception as exc:  # noqa: BLE001 - a failing observer must not cost the archive copy
                self.error = f"{type(exc).__name__}: {exc}"[:300]

    def put(self, chunk: bytes) -> None:
        if self.error is None:
            self.chunks.put(chunk)

    def stop(self) -> Optional[str]:
        """Wait until every queued chunk has been fed; the tap's error, if any."""
        self.chunks.put(None)
        self.join()
        return self.error


def copy_link(session: requests.Session, url: str, obs: Obs, bucket: str, key: str, *,
              metadata: dict, compression: str = "gzip", level: int = 6, part_size: int = 16 * 2**20,
              single_put_max: int = 16 * 2**20, storage_class: Optional[str] = None,
              timeout: tuple[float, float] = (10, 120), uploader_threads: int = UPLOAD_THREADS,
              tap: Optional[Callable[[bytes], None]] = None,
              late_metadata: Optional[Callable[[], dict]] = None,
              encryption: Optional[Encryption] = None, deflate_threads: int = DEFLATE_THREADS) -> CopyResult:
    """Copy the file behind `url` to `bucket/key`; raise CopyError (after cleaning up) on any failure.

    `tap`, if given, is called with every downloaded chunk of the original bytes, in order, on a thread of its
    own, and has seen them all when this returns. An attempt that fails has fed part of the file: give each
    attempt a fresh tap. An exception from it is kept in CopyResult.tap_error and does not fail the copy.
    `late_metadata`, if given, is called once every byte is read (the tap included) and its items join the
    metadata of an object written with one PUT (a multipart object's metadata was fixed at its initiation).
    `encryption`, if given, is asked for on the single PUT or at the multipart upload's initiation.
    """
    content_type = "application/gzip" if compression == "gzip" else "text/plain"
    try:
        resp = session.get(url, stream=True, timeout=timeout)
    except requests.RequestException as exc:
        raise CopyError(f"download failed to start: {type(exc).__name__}: {exc}") from exc
    with resp:
        if resp.status_code != 200:
            raise CopyError(f"download answered {resp.status_code} {_error_code(resp)}".rstrip())
        expected = _content_length(resp)
        # a multipart object's metadata is written at initiation: the original size is known then from
        # Content-Length (and the upload is completed only if the byte count matches it)
        initial = {**metadata, "original-size": str(expected)} if expected is not None else dict(metadata)
        packer = _Packer(obs, bucket, key,
                         known_large=compression == "none" and expected is not None and expected > single_put_max,
                         compression=compression, level=level, part_size=part_size, single_put_max=single_put_max,
                         metadata=initial, content_type=content_type, storage_class=storage_class,
                         uploader_threads=uploader_threads, encryption=encryption, deflate_threads=deflate_threads)
        packer.start()
        feeder = _TapFeeder(tap) if tap is not None else None
        if feeder is not None:
            feeder.start()
        sha, bytes_in, stopped = hashlib.sha256(), 0, False
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
                packer.put(chunk)
                if feeder is not None:
                    feeder.put(chunk)
            stopped = True
            packer.stop()
            tap_error = feeder.stop() if feeder is not None else None
            if expected is not None and bytes_in != expected:
                raise CopyError(f"download truncated: {bytes_in} of {expected} bytes")
            tail = packer.finish()
            digest = sha.hexdigest()
            if packer.uploader is None:
                extra = late_metadata() if late_metadata is not None and tap_error is None else {}
                sealed = {**metadata, **extra, "original-size": str(bytes_in), "sha256": digest}
                _put_with_retry(obs, bucket, key, tail, sealed, content_type, storage_class, encryption)
                return CopyResult(key, bytes_in, len(tail), digest, False, True, tap_error)
            uploader = packer.uploader
            if tail:
                packer.parts += 1
                packer.bytes_out += len(tail)
                uploader.submit(packer.parts, tail)
            uploader.close()
            if uploader.error is not None:
                raise uploader.error
            obs.complete_multipart(bucket, key, packer.upload_id,
                                   [uploader.etags[n] for n in range(1, packer.parts + 1)])
            packer.upload_id = None
            return CopyResult(key, bytes_in, packer.bytes_out, digest, True, False, tap_error)
        except BaseException as exc:
            if not stopped:
                try:
                    packer.stop()
                except BaseException:  # noqa: BLE001 - the first error is the one reported
                    pass
            if feeder is not None and feeder.is_alive():
                feeder.stop()
            _abort(obs, bucket, key, packer.upload_id, packer.uploader)
            if isinstance(exc, ObsError):
                raise CopyError(f"upload failed: {exc}") from exc
            raise


def _encrypted(encryption: Optional[Encryption]) -> dict:
    """The `encryption` keyword of the Obs writes, given only when there is one to ask for (so a writer without
    that argument, such as the unit tests' fake, still serves unencrypted copies)."""
    return {"encryption": encryption} if encryption is not None else {}


def _put_with_retry(obs: Obs, bucket: str, key: str, data: bytearray, metadata: dict, content_type: str,
                    storage_class: Optional[str], encryption: Optional[Encryption] = None) -> None:
    # a streamed PUT is not retried by the SDK: one more try here, as for a part
    for attempt in range(1, PART_ATTEMPTS + 1):
        try:
            obs.put_buffer(bucket, key, data, metadata=metadata, content_type=content_type,
                           storage_class=storage_class, **_encrypted(encryption))
            return
        except ObsError:
            if attempt == PART_ATTEMPTS:
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
