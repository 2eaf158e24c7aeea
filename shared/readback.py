"""Reading the archive back: which node-days it holds, their lines (one node or all merged by time), and grep.

    <archive prefix><instance_id>/<yyyy-mm-dd>/<group_name>/<file_name>[.partial][.gz]      (shared/keys.py)

The core is pure and works on plain data: parsing keys into node-days, choosing which copy stands for a node-day,
node labels, gunzipping a stream of chunks with bounded output, splitting lines, the time order of lines across
nodes, grep over chunks, and an ordered thread pool with bounded queues. `ArchiveReader` is the thin OBS shell:
one listing (plus a HEAD per object when metadata is wanted) and streaming GETs that resume where they broke.
Memory stays bounded whatever the file sizes: nothing holds a whole file.
"""

from __future__ import annotations

import heapq
import io
import queue
import re
import threading
import zlib
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from datetime import date, timedelta
from typing import Any, Callable, Iterable, Iterator, Optional, Sequence, TypeVar
from urllib.parse import unquote

from obs import GetObjectHeader

from shared.digest import LineClock, parse_metadata
from shared.keys import COMPRESSED_SUFFIX, PARTIAL_SUFFIX, instance_prefix, is_day
from shared.obs import ObjectInfo, Obs, ObsError

CHUNK = 1 << 20  # bytes read from OBS, and the most one gunzip step hands out
READ_RETRIES = 3  # a GET that breaks mid-stream is resumed from where it broke, this many times
ARCHIVED, PARTIAL = "archived", "partial"
_IP_IN_NAME = re.compile(r"redis_(\d{1,3}(?:\.\d{1,3}){3})_")  # DCS names a file redis_<ip>_<day>.log
T = TypeVar("T")
X = TypeVar("X")


class ReadError(Exception):
    """A stored object that cannot be read back as a log (not gzip, cut short, changed while read)."""


# --- node-days ------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class NodeDay:
    """One archived object: a node's log of one day, and what its key and metadata say about it."""

    instance_id: str
    day: str
    group: str
    file: str  # the archived file name, without the .partial and .gz suffixes
    key: str
    partial: bool
    compressed: bool
    stored_size: int  # bytes in the bucket
    node: str  # the replication IP (metadata, else from the file name, else the file name)
    original_size: Optional[int] = None
    sha256: Optional[str] = None
    instance_name: Optional[str] = None
    digest: Optional[dict] = None
    metadata: dict = field(default_factory=dict, compare=False, repr=False)
    recorded_state: Optional[str] = None  # the ledger's state of a node-day with no object (no-log, failed, missing)
    reason: Optional[str] = None

    @property
    def state(self) -> str:
        return self.recorded_state or (PARTIAL if self.partial else ARCHIVED)

    def as_dict(self) -> dict:
        return {"instance_id": self.instance_id, "instance_name": self.instance_name, "day": self.day,
                "group": self.group, "node": self.node, "file": self.file, "state": self.state, "key": self.key,
                "compressed": self.compressed, "stored_size": self.stored_size,
                "original_size": self.original_size, "sha256": self.sha256, "digest": self.digest,
                **({"reason": self.reason} if self.reason else {})}


def with_ledger(rows: Sequence[NodeDay], ledger: Any, days: Sequence[str]) -> list[NodeDay]:
    """The rows completed by the node-day ledger (shared/ledger.py): sizes, SHA-256 and digest of the archived
    node-days from its records (no HEAD needed), and a row for each node-day with no object: no-log, failed or
    missing, with the reason. Rows the ledger does not know stay as they are."""
    by_node_day = {(r.node, r.day): r for r in rows if not r.partial}
    out = list(rows)
    for node, day, state in ledger.node_days(days):
        record = node.days.get(day, {})
        row = by_node_day.get((node.ip, day))
        if row is not None:
            if state == ARCHIVED:
                out[out.index(row)] = replace(
                    row, original_size=row.original_size if row.original_size is not None else record.get("bytes_in"),
                    sha256=row.sha256 or record.get("sha256"), digest=row.digest or record.get("digest"),
                    instance_name=row.instance_name or ledger.instance_name or None)
            continue
        if state == ARCHIVED:
            state, reason = "object-missing", f"the ledger records {record.get('key')}, the listing does not show it"
        else:
            reason = record.get("reason") or (node.last_error if state == "missing" else None)
        out.append(NodeDay(instance_id=ledger.instance_id, day=day, group=node.group, file="", key=f"~{node.ip}/{day}",
                           partial=False, compressed=False, stored_size=0, node=node.ip or "(single node)",
                           instance_name=ledger.instance_name or None, recorded_state=state, reason=reason))
    return sorted(out, key=lambda r: (r.day, r.group, r.node, r.file))


def parse_key(archive_prefix: str, key: str) -> Optional[dict]:
    """The parts of an archive key, or None for a key of another shape (a report, a manifest, a stray object)."""
    if not key.startswith(archive_prefix):
        return None
    parts = key[len(archive_prefix):].split("/")
    if len(parts) != 4 or not is_day(parts[1]) or not all(parts):
        return None
    instance_id, day, group, name = parts
    compressed = name.endswith(COMPRESSED_SUFFIX)
    if compressed:
        name = name[:-len(COMPRESSED_SUFFIX)]
    partial = name.endswith(PARTIAL_SUFFIX)
    if partial:
        name = name[:-len(PARTIAL_SUFFIX)]
    return {"instance_id": instance_id, "day": day, "group": group, "file": name, "partial": partial,
            "compressed": compressed}


def node_of(file_name: str) -> str:
    m = _IP_IN_NAME.match(file_name)
    return m.group(1) if m else file_name


def rows_from_objects(objects: Iterable[ObjectInfo], archive_prefix: str) -> list[NodeDay]:
    """Node-days from a listing, in key order; keys of another shape are left out."""
    rows = []
    for obj in objects:
        parts = parse_key(archive_prefix, obj.key)
        if parts is not None:
            rows.append(NodeDay(key=obj.key, stored_size=obj.size, node=node_of(parts["file"]), **parts))
    return rows


def keep_final(rows: Iterable[NodeDay]) -> list[NodeDay]:
    """One object per node-day: the final copy when there is one (a partial copy is replaced by it, and may
    linger for a moment), else the partial copy of a day still open."""
    best: dict[tuple, NodeDay] = {}
    for row in rows:
        ident = (row.instance_id, row.day, row.group, row.file)
        if ident not in best or (best[ident].partial and not row.partial):
            best[ident] = row
    return sorted(best.values(), key=lambda r: (r.day, r.group, r.node, r.file))


def with_metadata(row: NodeDay, headers: dict) -> NodeDay:
    """The row completed from its object's headers (user metadata, values as the archiver quoted them)."""
    meta = {k: unquote(str(v)) for k, v in headers.items()}
    digest = None
    if meta.get("digest"):
        try:
            digest = parse_metadata(meta["digest"], row.day)
        except ValueError:
            digest = None  # written by a newer version: shown as absent rather than misread
    size = meta.get("original-size", "")
    return replace(row, node=meta.get("replication-ip") or row.node, original_size=int(size) if size.isdigit()
                   else None, sha256=meta.get("sha256") or None, instance_name=meta.get("instance-name") or None,
                   digest=digest, metadata=meta)


def labels(rows: Sequence[NodeDay]) -> dict[str, str]:
    """key -> how a node is named in output: its IP, or group/IP when the instance has several groups."""
    groups = {r.group for r in rows}
    return {r.key: r.node if len(groups) <= 1 else f"{r.group}/{r.node}" for r in rows}


def select(rows: Iterable[NodeDay], since: Optional[str] = None, until: Optional[str] = None,
           nodes: Sequence[str] = ()) -> list[NodeDay]:
    """The rows of days since..until (inclusive) and of the nodes named (an IP, group/IP or a group)."""
    wanted = set(nodes)
    return [r for r in rows if (since is None or r.day >= since) and (until is None or r.day <= until)
            and (not wanted or wanted & {r.node, f"{r.group}/{r.node}", r.group, r.file})]


def resolve_day(text: str, today: date) -> str:
    """A day argument: yyyy-mm-dd, `today`, `yesterday` or -N (N days before today)."""
    text = text.strip()
    if is_day(text):
        try:
            return date.fromisoformat(text).isoformat()
        except ValueError as exc:
            raise ValueError(f"{text!r}: not a day ({exc}); a day is yyyy-mm-dd, today, yesterday or -N") from exc
    if text == "today":
        return today.isoformat()
    if text == "yesterday":
        return (today - timedelta(days=1)).isoformat()
    if text.startswith("-") and text[1:].isdigit():
        return (today - timedelta(days=int(text[1:]))).isoformat()
    raise ValueError(f"{text!r}: a day is yyyy-mm-dd, today, yesterday or -N (days ago)")


# --- streams of bytes and lines -----------------------------------------------------------------------------
def gunzip(chunks: Iterable[bytes], name: str = "", out_chunk: int = CHUNK) -> Iterator[bytes]:
    """The decompressed bytes of a gzip stream (several members allowed), at most `out_chunk` at a time: a
    highly compressible log never unpacks into one huge buffer. Raises ReadError on a stream cut short."""
    d = zlib.decompressobj(wbits=31)
    open_member = False  # a member has begun and not ended
    try:
        for data in chunks:
            while data:
                open_member = True
                while True:
                    out = d.decompress(data, out_chunk)
                    if out:
                        yield out
                    data = d.unconsumed_tail
                    if d.eof or (not data and len(out) < out_chunk):
                        break
                if not d.eof:
                    break
                data, d, open_member = d.unused_data, zlib.decompressobj(wbits=31), False
    except zlib.error as exc:
        raise ReadError(f"{name}: not a readable gzip stream ({exc})") from exc
    if open_member:
        raise ReadError(f"{name}: the gzip stream ends early (object cut short?)")


def split_lines(chunks: Iterable[bytes]) -> Iterator[bytes]:
    """Lines with their newline (the last one may have none), whatever the chunk boundaries; only b"\\n" ends a
    line (a stray carriage return stays inside its line, so output is byte-exact)."""
    carry = b""
    for chunk in chunks:
        if not chunk:
            continue
        lines = io.BytesIO(carry + chunk if carry else chunk).readlines()
        carry = b"" if lines[-1].endswith(b"\n") else lines.pop()
        yield from lines
    if carry:
        yield carry


def timed(lines: Iterable[bytes], day: str, source: int) -> Iterator[tuple[bytes, int, int, bytes]]:
    """(time, source, n, line) for each line; a line without a time of its own (a crash report's, a signal
    handler's) keeps the time of the line before it, so it stays beside it in a merge."""
    clock = LineClock(date.fromisoformat(day))
    current = b""
    for n, line in enumerate(lines):
        current = clock(line) or current
        yield current, source, n, line


def merge(sources: Sequence[tuple[str, Iterable[bytes]]], day: str) -> Iterator[bytes]:
    """The lines of several nodes' logs of one day in time order, each prefixed by its node's label and a space.
    Equal times keep the order of `sources`, then of the lines; every output line ends with a newline."""
    streams = [timed(lines, day, i) for i, (_, lines) in enumerate(sources)]
    prefixes = [label.encode() + b" " for label, _ in sources]
    for _, i, _, line in heapq.merge(*streams):
        yield prefixes[i] + (line if line.endswith(b"\n") else line + b"\n")


def compile_pattern(pattern: str, ignore_case: bool = False) -> re.Pattern:
    """A grep pattern (Python regex syntax) for bytes; `^` and `$` match at each line's start and end."""
    flags = re.MULTILINE | (re.IGNORECASE if ignore_case else 0)
    try:
        return re.compile(pattern.encode("utf-8"), flags)
    except re.error as exc:
        raise ValueError(f"pattern {pattern!r}: {exc}") from exc


def grep_lines(chunks: Iterable[bytes], pattern: re.Pattern) -> Iterator[bytes]:
    """The lines that match, as grep finds them: the regex runs over whole chunks (fast: no Python code per
    line that does not match), and each hit is checked again on its own line, so a match spanning lines
    counts for none."""
    carry = b""
    for chunk in chunks:
        data = carry + chunk if carry else chunk
        end = data.rfind(b"\n")
        if end < 0:
            carry = data
            continue
        yield from _hits(data, end, pattern)
        carry = data[end + 1:]
    if carry:
        yield from _hits(carry, len(carry), pattern)


def _hits(data: bytes, end: int, pattern: re.Pattern) -> Iterator[bytes]:
    """Matching lines of data[:end]; data[end] is the newline of the last line (or end == len(data))."""
    pos = 0
    while pos <= end:
        m = pattern.search(data, pos, end)
        if m is None:
            return
        start = data.rfind(b"\n", 0, m.start()) + 1
        if start < pos:  # the match starts on the newline that ended the previous line
            start = pos
        stop = data.find(b"\n", m.start(), end)
        stop = end if stop < 0 else stop
        if m.end() <= stop or pattern.search(data, start, stop):
            yield data[start:stop] + b"\n"
        pos = stop + 1


# --- an ordered pool --------------------------------------------------------------------------------------
_DONE = object()


def ordered_parallel(tasks: Sequence[T], produce: Callable[[T, Callable[[X], None]], None], workers: int,
                     depth: int = 8) -> Iterator[tuple[T, Iterator[X]]]:
    """Run `produce(task, put)` for several tasks at once, and hand out what each put, task by task in order.

    Each task has a queue of `depth` items; a task ahead of the reader waits when its queue is full, so memory is
    bounded by workers x depth items. An error in a task is raised when the reader reaches it. Closing the
    returned iterator early stops the tasks."""
    stop = threading.Event()
    queues = [queue.Queue(maxsize=depth) for _ in tasks]

    def run(index: int) -> None:
        q = queues[index]

        def put(item: Any) -> None:
            while not stop.is_set():
                try:
                    q.put(item, timeout=0.2)
                    return
                except queue.Full:
                    continue
            raise _Stopped()

        try:
            produce(tasks[index], put)
            put(_DONE)
        except _Stopped:
            return
        except BaseException as exc:  # noqa: BLE001 - handed to the reader, raised there
            try:
                put(_Failure(exc))
            except _Stopped:
                return

    def drain(q: queue.Queue) -> Iterator[Any]:
        while True:
            item = q.get()
            if item is _DONE:
                return
            if isinstance(item, _Failure):
                raise item.exc
            yield item

    pool = ThreadPoolExecutor(max_workers=max(1, workers), thread_name_prefix="read")
    try:
        for i in range(len(tasks)):
            pool.submit(run, i)
        for task, q in zip(tasks, queues):
            items = drain(q)
            yield task, items
            for _ in items:  # what the reader left of this task
                pass
    finally:
        stop.set()
        pool.shutdown(wait=True, cancel_futures=True)


class _Stopped(Exception):
    pass


@dataclass
class _Failure:
    exc: BaseException


# --- the OBS shell --------------------------------------------------------------------------------------------
class ArchiveReader:
    """The archive as node-days, on one Obs. `on_bytes(n)` is called with each stored chunk read (progress)."""

    def __init__(self, obs: Obs, bucket: str, archive_prefix: str, *, workers: int = 8,
                 on_bytes: Optional[Callable[[int], None]] = None) -> None:
        self.obs, self.bucket, self.prefix = obs, bucket, archive_prefix
        self.workers = max(1, workers)
        self.on_bytes = on_bytes

    # which instance
    def instance_ids(self) -> list[str]:
        """The instance folders under the archive prefix (one LIST with a delimiter per 1000)."""
        found, marker = [], None
        while True:
            resp = self._call("ListObjects", self.prefix, self.obs.client.listObjects, self.bucket,
                              prefix=self.prefix, marker=marker, max_keys=1000, delimiter="/")
            for p in resp.body.commonPrefixs or []:
                name = p.prefix[len(self.prefix):].rstrip("/")
                if name and not name.startswith("_"):  # _report/ and the like are not instances
                    found.append(name)
            if not resp.body.is_truncated:
                return found
            marker = resp.body.next_marker or (resp.body.commonPrefixs or [None])[-1].prefix

    def resolve(self, id_or_name: str, today: Optional[date] = None) -> tuple[str, Optional[str]]:
        """(instance id, name) for an id, or for the instance-name its recent objects carry. Raises LookupError
        when nothing matches or a name is ambiguous."""
        if self._first(instance_prefix(self.prefix, id_or_name)) is not None:
            return id_or_name, None
        ids = self.instance_ids()
        with ThreadPoolExecutor(max_workers=self.workers) as pool:
            names = list(pool.map(lambda i: self.recent_name(i, today), ids))
        matches = [(i, n) for i, n in zip(ids, names) if n == id_or_name]
        if len(matches) == 1:
            return matches[0]
        if matches:
            raise LookupError(f"instance name {id_or_name!r} is ambiguous: ids {', '.join(i for i, _ in matches)}")
        known = ", ".join(sorted({n for n in names if n})) or "none"
        raise LookupError(f"no instance {id_or_name!r} in the archive (by id or name; names found: {known})")

    def recent_name(self, instance_id: str, today: Optional[date] = None) -> Optional[str]:
        """The instance-name on one of its recent objects (an instance may be renamed), else on its first."""
        base = instance_prefix(self.prefix, instance_id)
        recent = (today or date.today()) - timedelta(days=8)
        obj = self._first(base, start_after=f"{base}{recent.isoformat()}") or self._first(base)
        if obj is None:
            return None
        headers = self.obs.head(self.bucket, obj.key) or {}
        return unquote(headers["instance-name"]) if headers.get("instance-name") else None

    # the rows
    def node_days(self, instance_id: str, since: Optional[str] = None, until: Optional[str] = None, *,
                  metadata: bool = True) -> list[NodeDay]:
        """THE source of rows: one per node-day in since..until, from the archive's listing (and a HEAD per
        object for its metadata). The node-day ledger (shared/ledger.py) can take this place once it carries
        sizes and digests; everything else works on the rows."""
        base = instance_prefix(self.prefix, instance_id)
        # start after the day before `since`: listed from there by OBS (keys sort after their prefix), from
        # `since` by SeaweedFS (which skips every key under a marker that is a key's prefix); select() trims
        start_after = f"{base}{(date.fromisoformat(since) - timedelta(days=1)).isoformat()}" if since else None
        listed = []
        for obj in self.obs.list(self.bucket, base, start_after=start_after):
            if until is not None and obj.key[len(base):len(base) + 10] > until:
                break
            listed.append(obj)
        rows = select(keep_final(rows_from_objects(listed, self.prefix)), since, until)
        if not metadata or not rows:
            return rows
        with ThreadPoolExecutor(max_workers=self.workers) as pool:
            heads = list(pool.map(lambda r: self.obs.head(self.bucket, r.key) or {}, rows))
        return [with_metadata(r, h) for r, h in zip(rows, heads)]

    # the bytes
    def stored_chunks(self, row: NodeDay) -> Iterator[bytes]:
        """The object's bytes as stored, streamed; a read that breaks is resumed (Range, If-Match) from where it
        broke, up to READ_RETRIES times."""
        offset, etag, failures = 0, None, 0
        while True:
            if offset and offset >= row.stored_size > 0:
                return  # broke right at the end: nothing is left to ask for
            headers = GetObjectHeader(range=f"{offset}-", if_match=etag) if offset else None
            resp = self._call("GetObject", row.key, self.obs.client.getObject, self.bucket, row.key,
                              headers=headers, loadStreamInMemory=False)
            etag = etag or getattr(resp.body, "etag", None)
            body, complete = resp.body.response, False
            try:
                while True:
                    try:
                        chunk = body.read(CHUNK)
                    except Exception as exc:  # the connection broke: resume from the offset reached
                        failures += 1
                        if failures > READ_RETRIES:
                            raise ReadError(f"{row.key}: read broke at byte {offset}: {exc}") from exc
                        break
                    if not chunk:
                        complete = True
                        return
                    offset += len(chunk)
                    if self.on_bytes is not None:
                        self.on_bytes(len(chunk))
                    yield chunk
            finally:
                _close(body, complete)

    def chunks(self, row: NodeDay) -> Iterator[bytes]:
        """The original bytes of the node-day's log, streamed."""
        stored = self.stored_chunks(row)
        return gunzip(stored, row.key) if row.compressed else stored

    def lines(self, row: NodeDay) -> Iterator[bytes]:
        return split_lines(self.chunks(row))

    # helpers
    def _first(self, prefix: str, start_after: Optional[str] = None) -> Optional[ObjectInfo]:
        resp = self._call("ListObjects", prefix, self.obs.client.listObjects, self.bucket, prefix=prefix,
                          marker=start_after, max_keys=1)
        contents = resp.body.contents or []
        if not contents:
            return None
        item = contents[0]
        return ObjectInfo(item.key, int(item.size or 0), None, (item.etag or "").strip('"'))

    def _call(self, op: str, key: Optional[str], call: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        try:
            resp = call(*args, **kwargs)
        except Exception as exc:  # the SDK raises on connection trouble after its own retries
            raise ObsError(op, self.bucket, key, None, type(exc).__name__, str(exc)[:300]) from exc
        status = getattr(resp, "status", None)
        if status is None or status >= 300:
            raise ObsError(op, self.bucket, key, status, getattr(resp, "errorCode", None) or str(status),
                           getattr(resp, "errorMessage", None) or getattr(resp, "reason", "") or "",
                           getattr(resp, "requestId", None))
        return resp


def _close(body: Any, complete: bool) -> None:
    """Give the connection back; one left with unread bytes (a reader that stopped early, a broken read) is
    closed first, or the SDK's pool would hand it to the next request mid-body."""
    if not complete:
        for part in (getattr(body, "result", None), getattr(body, "conn", None)):
            try:
                if part is not None:
                    part.close()
            except Exception:  # noqa: BLE001 - closing a broken connection may fail; it is dropped either way
                pass
    body.close()
